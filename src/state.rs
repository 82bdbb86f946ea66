//! The shared state of a running server: the published [`Snapshot`],
//! readiness, the source's connection, live-update versions and shutdown.
//!
//! Readiness: the server is ready once a refresh that *began* while the
//! source was caught up has published, and stays ready until the source
//! falls behind again (a Kafka rebalance). A refresh that begins while the
//! source is behind, or during which it falls behind, publishes nothing, so
//! half-rebuilt numbers are never served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntGauge;
use tokio::sync::{Notify, watch};

use crate::engine::Snapshot;

pub struct State {
    snapshot: ArcSwap<Snapshot>,
    caught_up: AtomicBool,
    /// Bumped whenever the source falls behind.
    behind_epoch: AtomicU64,
    ready: AtomicBool,
    /// False while the source's brokers are unreachable (always true for files).
    connected: AtomicBool,
    refresh_now: Notify,
    versions: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// `funnelwatch_ready`, kept equal to `ready`.
    ready_gauge: IntGauge,
}

/// A refresh in progress: see [`State::begin_refresh`].
pub struct Ticket {
    epoch: u64,
}

impl State {
    pub fn new(ready_gauge: IntGauge) -> State {
        State {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            caught_up: AtomicBool::new(false),
            behind_epoch: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            connected: AtomicBool::new(true),
            refresh_now: Notify::new(),
            versions: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            ready_gauge,
        }
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// True while the source holds everything it had to deliver so far.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Records whether the source reaches its brokers; returns the previous value.
    pub fn set_connected(&self, connected: bool) -> bool {
        self.connected.swap(connected, Ordering::SeqCst)
    }

    /// The source reports whether its backlog is in the store. Falling behind
    /// makes the server unready at once; catching up asks for a refresh,
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
                self.ready_gauge.set(0);
                tracing::info!("source fell behind; not ready until it catches up");
            }
        }
    }

    /// Starts a refresh; `None` while the source is behind (nothing may be published).
    pub fn begin_refresh(&self) -> Option<Ticket> {
        let epoch = self.behind_epoch.load(Ordering::SeqCst);
        self.is_caught_up().then_some(Ticket { epoch })
    }

    /// Publishes the snapshot of a refresh begun with `ticket`, with the
    /// next version, and the server is ready. If the source fell behind
    /// since the refresh began (a rebalance), the snapshot is dropped: the
    /// numbers of an assignment that is gone are not published.
    pub fn publish(&self, mut snap: Snapshot, ticket: Ticket) -> bool {
        if self.behind_epoch.load(Ordering::SeqCst) != ticket.epoch {
            tracing::debug!("the source fell behind during the refresh; its snapshot is dropped");
            return false;
        }
        snap.version = self.snapshot.load().version + 1;
        let (version, t_ms) = (snap.version, snap.t_ms);
        self.snapshot.store(Arc::new(snap));
        self.versions.send_replace(version);
        if !self.ready.swap(true, Ordering::SeqCst) {
            self.ready_gauge.set(1);
            tracing::info!(t_ms, "refresh over caught-up sources published; ready");
        }
        true
    }

    /// Waits for the next refresh: `interval`, or sooner when the source
    /// catches up. False when the server shuts down instead.
    pub async fn next_refresh(&self, interval: Duration) -> bool {
        let mut stop = self.shutdown.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(interval) => true,
            _ = self.refresh_now.notified() => true,
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// Every published version, starting with the current one.
    pub fn versions(&self) -> watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// Starts the shutdown: long-lived responses end, sources and the refresh stop.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Turns true when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
