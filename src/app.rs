//! The wiring of a running server: the store, the shared [`State`], the
//! source, the refresh loop and the HTTP server, with graceful shutdown.
//! The only module that knows all the others.
//!
//! The refresh loop runs on its own thread and runtime so that a heavy
//! refresh never starves ingestion or scrapes; scrapes only read the latest
//! published snapshot.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{Clock, Config};
use crate::engine::Engine;
use crate::export::ServiceMetrics;
use crate::source::{Ingest, Source, now_ms};
use crate::state::State;
use crate::store::Store;

pub struct App {
    config: Arc<Config>,
    store: Arc<Mutex<Store>>,
    metrics: Arc<ServiceMetrics>,
    state: Arc<State>,
    ingest: Ingest,
}

impl App {
    pub fn new(config: Config) -> App {
        let metrics = Arc::new(ServiceMetrics::new());
        let state = Arc::new(State::new(metrics.ready.clone()));
        let store = Arc::new(Mutex::new(Store::new(&config.pipelines, config.retention_ms, &config.breakdowns)));
        let ingest = Ingest::new(&config, store.clone(), state.clone(), metrics.clone());
        App { config: Arc::new(config), store, metrics, state, ingest }
    }

    /// The handle sources push through.
    pub fn ingest(&self) -> Ingest {
        self.ingest.clone()
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// One refresh: bring the store to `T`, run the queries, publish.
    /// While the source is behind (rebuilding partitions), nothing is
    /// published: the last snapshot stays, never half-rebuilt numbers.
    pub async fn refresh(&self, engine: &Engine) {
        let start = Instant::now();
        let ticket = self.state.begin_refresh();
        let m = &self.metrics;
        let report = |store: &Store| {
            let stats = store.stats();
            m.store_rows.set(stats.rows as i64);
            m.store_bytes.set(stats.bytes as i64);
            m.store_deals.set(stats.deals as i64);
        };
        let (input, t_ms) = {
            let mut store = self.store.lock().expect("store lock");
            if ticket.is_none() {
                report(&store);
                return;
            }
            let t_ms = match self.config.clock {
                Clock::Wall => now_ms(),
                Clock::Event => store.max_occurred_at().unwrap_or(0),
            };
            let input = engine.gather(&mut store, t_ms);
            report(&store);
            (input, t_ms)
        };
        let snap = match engine.refresh(input, t_ms).await {
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
        if self.state.publish(snap, ticket.expect("checked above")) {
            m.refreshes.inc();
            m.refresh_duration.observe(start.elapsed().as_secs_f64());
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
    let app = Arc::new(App::new(config));
    let state = app.state.clone();

    let refresher = {
        let app = app.clone();
        std::thread::Builder::new().name("refresh".into()).spawn(move || {
            let rt = refresh_runtime().expect("refresh runtime");
            rt.block_on(async move {
                let interval = app.config.refresh_interval;
                let mut was_ready = false;
                loop {
                    app.refresh(&engine).await;
                    let ready = app.state.is_ready();
                    if ready && !was_ready {
                        release_free_memory();
                    }
                    was_ready = ready;
                    if !app.state.next_refresh(interval).await {
                        return;
                    }
                }
            })
        })?
    };

    let source_task = {
        let ingest = app.ingest();
        let stop = state.shutdown_signal();
        let (state, config) = (state.clone(), app.config.clone());
        tokio::spawn(async move {
            let result = source.run(ingest, &config, stop).await;
            if result.is_err() {
                // A source that cannot run (a missing file, a bad Kafka property) stops the server.
                state.shut_down();
            }
            result
        })
    };

    println!("funnelwatch listening on http://{addr}/");
    println!("  dashboard: http://{addr}/");
    println!("  metrics:   http://{addr}/metrics");
    tracing::info!(%addr, "serving");
    let signal_state = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        signal_state.shut_down();
    });
    let mut stop = state.shutdown_signal();
    let router = crate::web::router(state.clone(), app.config.clone(), app.metrics.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    state.shut_down();
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

/// Gives the memory a rebuild freed back to the system. A replay allocates
/// and frees far more than the store keeps (decoded pushes, logs that grew
/// and moved), and glibc keeps what it freed inside its arenas; trimming once
/// when the server becomes ready (not on every refresh: it takes 50–100 ms
/// at 10M events) returns it.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The refresh's own runtime: two workers, so DataFusion runs a query's two
/// partitions on both cores, at a lower scheduling priority (nice 10), so
/// that ingestion and scrapes go first when both want a core.
fn refresh_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("refresh-worker")
        .on_thread_start(|| {
            // SAFETY: setpriority only reads its arguments; 0 = the calling thread on Linux.
            #[cfg(target_os = "linux")]
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        })
        .enable_all()
        .build()
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
