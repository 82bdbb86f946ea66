//! The running server: shared state ([`App`]) and the wiring of the source,
//! the refresh loop and the HTTP server, with graceful shutdown.
//!
//! The refresh loop runs on its own thread and runtime so that a heavy
//! refresh never starves ingestion or scrapes; scrapes only read the latest
//! published [`Snapshot`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};

use crate::config::{Clock, Config};
use crate::engine::{Engine, Snapshot};
use crate::event::Decoder;
use crate::export::ServiceMetrics;
use crate::source::{Ingest, RejectionLog, Source, now_ms};
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub decoder: Decoder,
    pub store: Mutex<Store>,
    pub metrics: ServiceMetrics,
    pub snapshot: ArcSwap<Snapshot>,
    /// True while the source has delivered its backlog (see [`App::set_caught_up`]).
    caught_up: AtomicBool,
    /// Bumped whenever the source falls behind, so that a refresh that began
    /// before cannot declare the server ready.
    behind_epoch: AtomicU64,
    /// Set by a refresh that started while the source was caught up.
    ready: AtomicBool,
    /// False while the source's brokers are unreachable (always true for files).
    pub connected: AtomicBool,
    pub refresh_now: Notify,
    pub rejection_log: RejectionLog,
    /// The version of the latest published snapshot, for live updates.
    pub versions: watch::Sender<u64>,
    /// Turns true when the server shuts down; long-lived responses end then.
    pub shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(config: Config) -> Arc<App> {
        Arc::new(App {
            decoder: Decoder::new(&config.pipelines, config.max_clock_skew_ms),
            store: Mutex::new(Store::new(&config.pipelines, config.retention_ms)),
            metrics: ServiceMetrics::new(),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            caught_up: AtomicBool::new(false),
            behind_epoch: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            connected: AtomicBool::new(true),
            refresh_now: Notify::new(),
            rejection_log: RejectionLog::default(),
            versions: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            config,
        })
    }

    /// True once a snapshot over caught-up sources is published, until the
    /// source falls behind again (a Kafka rebalance).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// True while the source holds everything it had to deliver so far.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// The source reports whether its backlog is in the store. Falling behind
    /// makes the server unready at once; catching up triggers a refresh,
    /// whose publication makes it ready.
    pub fn set_caught_up(&self, caught_up: bool) {
        if caught_up {
            if !self.caught_up.swap(true, Ordering::SeqCst) {
                self.refresh_now.notify_one();
            }
        } else {
            self.behind_epoch.fetch_add(1, Ordering::SeqCst);
            self.caught_up.store(false, Ordering::SeqCst);
            if self.ready.swap(false, Ordering::SeqCst) {
                self.metrics.ready.set(0);
                tracing::info!("source fell behind; not ready until it catches up");
            }
        }
    }

    /// One refresh: evict, snapshot the store, run the queries, publish.
    /// While the source is behind (rebuilding partitions), nothing is
    /// published: the last snapshot stays, never half-rebuilt numbers.
    pub async fn refresh(&self, engine: &Engine) {
        let start = Instant::now();
        let epoch = self.behind_epoch.load(Ordering::SeqCst);
        let caught_up = self.is_caught_up();
        let m = &self.metrics;
        let (events, t_ms) = {
            let mut store = self.store.lock().expect("store lock");
            let stats = store.stats();
            m.store_rows.set(stats.rows as i64);
            m.store_bytes.set(stats.bytes as i64);
            m.store_deals.set(stats.deals as i64);
            if !caught_up {
                return;
            }
            let t_ms = match self.config.clock {
                Clock::Wall => now_ms(),
                Clock::Event => store.max_occurred_at().unwrap_or(0),
            };
            (store.snapshot(t_ms.saturating_sub(self.config.retention_ms)), t_ms)
        };
        let mut snap = match engine.refresh(events, t_ms).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("refresh failed: {e}");
                m.query_errors.with_label_values(&["refresh"]).inc();
                return;
            }
        };
        for (file, result) in &snap.queries {
            match result {
                Ok(secs) => m.query_duration.with_label_values(&[file]).set(*secs),
                Err(e) => {
                    tracing::error!(query = %file, "query failed: {e}");
                    m.query_errors.with_label_values(&[file]).inc();
                }
            }
        }
        snap.version = self.snapshot.load().version + 1;
        let version = snap.version;
        self.snapshot.store(Arc::new(snap));
        self.versions.send_replace(version);
        m.refreshes.inc();
        m.refresh_duration.observe(start.elapsed().as_secs_f64());
        if self.behind_epoch.load(Ordering::SeqCst) == epoch && !self.ready.swap(true, Ordering::SeqCst) {
            m.ready.set(1);
            tracing::info!(t_ms, "refresh over caught-up sources published; ready");
        }
    }
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn serve(config: Config, source: Source) -> anyhow::Result<()> {
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("invalid queries:\n  {}", e.join("\n  ")))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = App::new(config);
    let stop_rx = app.shutdown.subscribe();

    let refresher = {
        let app = app.clone();
        let mut stop = stop_rx.clone();
        std::thread::Builder::new().name("refresh".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("refresh runtime");
            rt.block_on(async move {
                let interval = app.config.refresh_interval;
                loop {
                    app.refresh(&engine).await;
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = app.refresh_now.notified() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            })
        })?
    };

    let source_task = {
        let ingest = Ingest::new(app.clone());
        let stop = stop_rx.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let result = source.run(ingest, stop).await;
            if result.is_err() {
                // A source that cannot run (a missing file, a bad Kafka property) stops the server.
                app.shutdown.send_replace(true);
            }
            result
        })
    };

    println!("funnelwatch listening on http://{addr}/");
    println!("  dashboard: http://{addr}/");
    println!("  metrics:   http://{addr}/metrics");
    tracing::info!(%addr, "serving");
    let signal_app = app.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        signal_app.shutdown.send_replace(true);
    });
    let mut stop = stop_rx.clone();
    axum::serve(listener, crate::web::router(app.clone()))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    app.shutdown.send_replace(true);
    // A source finishes its work (a Kafka commit) unless that takes too long.
    let abort = source_task.abort_handle();
    let source_result = tokio::time::timeout(Duration::from_secs(15), source_task).await;
    tokio::task::spawn_blocking(move || refresher.join()).await?.ok();
    match source_result {
        Ok(Ok(result)) => result.context("source failed"),
        Ok(Err(panicked)) => Err(anyhow::anyhow!("source failed: {panicked}")),
        Err(_) => {
            tracing::warn!("the source did not stop within 15 s; exiting anyway");
            abort.abort();
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
