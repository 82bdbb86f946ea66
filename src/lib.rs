//! funnelwatch: a live sales-funnel server. CRM events stream in, the
//! recent ones are kept as Arrow batches, DataFusion SQL turns them into the
//! funnel numbers of `docs/metrics.md`, and the results are served as
//! Prometheus metrics.
//!
//! The modules, in the order data flows through them:
//!
//! ```text
//! source::{kafka, file, generator} ─▶ source::Ingest ─▶ event (decode, validate)
//!        ─▶ store (per-deal event logs, dedup, retention; marks touched deals)
//!        ─▶ deals (per-deal facts, derived again only for touched deals)
//!        ─▶ engine (refresh: queries/*.sql over the facts) ─▶ Snapshot ─▶ state
//!        ─▶ export (Prometheus text) ─▶ web (axum: /metrics, probes, dashboard, /api)
//! ```
//!
//! - [`config`]: the typed configuration (TOML + `FUNNELWATCH_*` env).
//! - [`event`]: the event type, decoding and the fixed rejection reasons.
//! - [`source`]: where events come from (a Kafka consumer group, a file, the
//!   generator), and [`source::Ingest`], the one
//!   path every source takes into the store.
//! - [`store`]: every accepted event once, in its deal's log; deduplicated,
//!   evicted past retention; keeps the per-deal facts up to date.
//! - [`deals`]: per-deal facts (reach times, state, attributes) and their tables.
//! - [`segments`]: the segment breakdowns: the segments at `T` and each deal's and spend event's set.
//! - [`engine`]: the DataFusion session (each query planned once, over tables
//!   whose rows each refresh replaces), query files, SQL functions and [`engine::Snapshot`].
//! - [`export`]: metric families, the text format and the service metrics.
//! - [`state`]: the shared state: published snapshot, readiness, versions, shutdown.
//! - [`web`]: the HTTP router: metrics, probes, the dashboard and its JSON API.
//! - [`app`]: the wiring of store, state, source, refresh loop and server.
//! - [`cli`]: the commands (`serve`, `demo`, `generate`, `publish`, `check`).

pub mod app;
pub mod cli;
pub mod config;
pub mod deals;
pub mod engine;
pub mod event;
pub mod export;
pub mod segments;
pub mod source;
pub mod state;
pub mod store;
pub mod web;
