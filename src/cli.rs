//! The command line: `serve`, `demo`, `generate`, `check`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Clock, Config};
use crate::engine::Engine;
use crate::source::{Source, generator::Generator};

#[derive(Debug, Parser)]
#[command(name = "funnelwatch", version, about = "Live sales-funnel metrics from CRM events")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// TOML configuration (FUNNELWATCH_* variables override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where events come from: file:PATH or generator.
        #[arg(long)]
        source: Option<Source>,
        /// Evaluation clock: wall or event (overrides the config).
        #[arg(long)]
        clock: Option<Clock>,
        /// Address to listen on (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Everything on one machine: built-in generator, default pipeline, no config needed.
    Demo {
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: SocketAddr,
        /// Deals created over the history.
        #[arg(long, default_value_t = 3000)]
        deals: usize,
        /// Days of history to backfill.
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write generated events as NDJSON to stdout (deterministic per seed and --until).
    Generate {
        #[arg(long, default_value_t = 3000)]
        deals: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// End of the history, RFC 3339 (default: the start of the current UTC day).
        #[arg(long)]
        until: Option<String>,
        /// Generate for the pipelines of this configuration (default: the built-in pipeline).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and every query file; prints all errors.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs a command; the exit code is 0 on success.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve { config, source, clock, listen } => {
            let mut c = Config::load(config.as_deref())?;
            if let Some(clock) = clock {
                c.clock = clock;
            }
            if let Some(listen) = listen {
                c.listen = listen;
            }
            let source = source.context("no source: pass --source file:PATH or --source generator")?;
            crate::app::serve(c, source).await?;
        }
        Command::Demo { listen, deals, days, seed } => {
            let mut c = Config::load(None)?;
            c.listen = listen;
            crate::app::serve(c, Source::Generator { deals, days, seed }).await?;
        }
        Command::Generate { deals, seed, days, until, config } => {
            let c = Config::load(config.as_deref())?;
            let until_ms = match until {
                Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
                    .with_context(|| format!("--until {s:?} is not RFC 3339"))?
                    .timestamp_millis(),
                None => {
                    let day = 86_400_000;
                    crate::source::now_ms() / day * day
                }
            };
            let mut g = Generator::new(&c.pipelines, deals, days, seed, until_ms - days as i64 * 86_400_000);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in g.advance(until_ms) {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Command::Check { config } => {
            let c = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(1);
                }
            };
            let errs = match Engine::new(&c) {
                Ok(engine) => engine.check().await,
                Err(errs) => errs,
            };
            if errs.is_empty() {
                println!("configuration and queries are valid");
                return Ok(0);
            }
            eprintln!("invalid queries:");
            for e in errs {
                eprintln!("  {e}");
            }
            return Ok(1);
        }
    }
    Ok(0)
}
