//! The running server: shared state ([`App`]) and the wiring of the source,
//! the refresh loop and the HTTP server, with graceful shutdown.
//!
//! The refresh loop runs on its own thread and runtime so that a heavy
//! refresh never starves ingestion or scrapes; scrapes only read the latest
//! published [`Snapshot`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// Set by the source once its backlog is in the store.
    pub sources_caught_up: AtomicBool,
    /// Set by the first refresh that started after the sources caught up.
    pub ready: AtomicBool,
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
            sources_caught_up: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            refresh_now: Notify::new(),
            rejection_log: RejectionLog::default(),
            versions: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            config,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// One refresh: evict, snapshot the store, run the queries, publish.
    pub async fn refresh(&self, engine: &Engine) {
        let start = Instant::now();
        let caught_up = self.sources_caught_up.load(Ordering::SeqCst);
        let (events, t_ms, stats) = {
            let mut store = self.store.lock().expect("store lock");
            let t_ms = match self.config.clock {
                Clock::Wall => now_ms(),
                Clock::Event => store.max_occurred_at().unwrap_or(0),
            };
            let events = store.snapshot(t_ms.saturating_sub(self.config.retention_ms));
            (events, t_ms, store.stats())
        };
        let m = &self.metrics;
        m.store_rows.set(stats.rows as i64);
        m.store_bytes.set(stats.bytes as i64);
        m.store_deals.set(stats.deals as i64);
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
        if caught_up && !self.ready.swap(true, Ordering::SeqCst) {
            m.ready.set(1);
            tracing::info!(t_ms, "first refresh over caught-up sources published; ready");
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
        tokio::spawn(async move {
            if let Err(e) = source.run(ingest, stop).await {
                tracing::error!("source failed: {e:#}");
            }
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
    source_task.abort();
    let _ = source_task.await;
    tokio::task::spawn_blocking(move || refresher.join()).await?.ok();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
