//! funnelwatch: a live sales-funnel server. CRM events stream in, the
//! recent ones are kept as Arrow batches, DataFusion SQL turns them into the
//! funnel numbers of `docs/metrics.md`, and the results are served as
//! Prometheus metrics.
//!
//! The modules, in the order data flows through them:
//!
//! ```text
//! source::{kafka, file, generator} ─▶ source::Ingest ─▶ event (decode, validate)
//!        ─▶ store (per-partition Arrow batches, dedup, retention)
//!        ─▶ engine (refresh loop: deals + queries/*.sql over a snapshot) ─▶ Snapshot
//!        ─▶ export (Prometheus text) ─▶ web (axum: /metrics, probes, dashboard, /api)
//! ```
//!
//! - [`config`]: the typed configuration (TOML + `FUNNELWATCH_*` env).
//! - [`event`]: the event type, decoding and the fixed rejection reasons.
//! - [`source`]: where events come from (a Kafka consumer group, a file, the
//!   generator), and [`source::Ingest`], the one
//!   path every source takes into the store.
//! - [`store`]: accepted events per partition, deduplicated, evicted past retention.
//! - [`deals`]: per-deal facts (reach times, state, attributes) derived at `T`.
//! - [`engine`]: the DataFusion session, query files and [`engine::Snapshot`].
//! - [`export`]: metric families, the text format and the service metrics.
//! - [`app`]: the shared state and the wiring of sources, refresh loop and server.
//! - [`web`]: the HTTP router: metrics, probes, the dashboard and its JSON API.
//! - [`cli`]: the commands (`serve`, `demo`, `generate`, `publish`, `check`).

pub mod app;
pub mod cli;
pub mod config;
pub mod deals;
pub mod engine;
pub mod event;
pub mod export;
pub mod source;
pub mod store;
pub mod web;
