//! The command line: `serve`, `demo`, `generate`, `publish`, `check`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Clock, Config};
use crate::engine::Engine;
use crate::source::{Source, generator::Generator, kafka};

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
        /// Where events come from: kafka (the default when the config has [kafka]), file:PATH or generator.
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
    /// Generate realistic CRM events: NDJSON to stdout (deterministic per seed and --until), or with
    /// --brokers published to Kafka (keyed by deal_id): the history, then live traffic until interrupted.
    Generate {
        #[arg(long, default_value_t = 3000)]
        deals: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// End of the history, RFC 3339 (default: the start of the current UTC day). Not with --brokers.
        #[arg(long, conflicts_with = "brokers")]
        until: Option<String>,
        /// Generate for the pipelines of this configuration (default: the built-in pipeline).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        kafka: Publish,
        /// At most this many events per second (default: as fast as the broker takes them).
        #[arg(long, requires = "brokers")]
        rate: Option<f64>,
    },
    /// Publish an NDJSON file to Kafka line by line, unchanged (key: the line's deal_id when it has one).
    Publish {
        #[command(flatten)]
        kafka: Publish,
        /// The NDJSON file, or - for standard input.
        file: PathBuf,
    },
    /// Validate a configuration and every query file; prints all errors.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Where `generate` and `publish` send events.
#[derive(Debug, clap::Args)]
pub struct Publish {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, requires = "topic")]
    brokers: Option<String>,
    /// The topic to publish to.
    #[arg(long, requires = "brokers")]
    topic: Option<String>,
    /// A librdkafka property (TLS, SASL, compression, ...); repeatable.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
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
            let source = match source {
                Some(s) => s,
                None if c.kafka.is_some() => Source::Kafka,
                None => anyhow::bail!(
                    "no source: add a [kafka] section to the configuration, or pass --source file:PATH or --source generator"
                ),
            };
            if source == Source::Kafka && c.kafka.is_none() {
                anyhow::bail!(
                    "--source kafka needs a [kafka] section in the configuration (or FUNNELWATCH_KAFKA_BROKERS)"
                );
            }
            crate::app::serve(c, source).await?;
        }
        Command::Demo { listen, deals, days, seed } => {
            let mut c = Config::load(None)?;
            c.listen = listen;
            crate::app::serve(c, Source::Generator { deals, days, seed }).await?;
        }
        Command::Generate { deals, seed, days, until, config, kafka, rate } => {
            let c = Config::load(config.as_deref())?;
            let day = 86_400_000;
            if kafka.brokers.is_some() {
                let now = crate::source::now_ms();
                let mut g = Generator::new(&c.pipelines, deals, days, seed, now - days as i64 * day);
                let mut out = Publisher::new(&kafka, rate)?;
                // SIGINT/SIGTERM stop the backfill too, between two events.
                let signal = crate::app::shutdown_signal();
                let stop = out.stop.clone();
                tokio::spawn(async move {
                    signal.await;
                    stop.store(true, Ordering::SeqCst);
                });
                out.send_all(g.advance(now).iter().map(|l| l.as_bytes()));
                if !out.stop.load(Ordering::SeqCst) {
                    eprintln!("history published; now live (Ctrl-C to stop)");
                }
                while !out.stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    out.send_all(g.advance(crate::source::now_ms()).iter().map(|l| l.as_bytes()));
                }
                return Ok(out.finish());
            }
            let until_ms = match until {
                Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
                    .with_context(|| format!("--until {s:?} is not RFC 3339"))?
                    .timestamp_millis(),
                None => crate::source::now_ms() / day * day,
            };
            let mut g = Generator::new(&c.pipelines, deals, days, seed, until_ms - days as i64 * day);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in g.advance(until_ms) {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Command::Publish { kafka, file } => {
            let data = if file.as_os_str() == "-" {
                let mut data = Vec::new();
                std::io::stdin().lock().read_to_end(&mut data)?;
                data
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let mut out = Publisher::new(&kafka, None)?;
            out.send_all(crate::source::file::lines(&data));
            return Ok(out.finish());
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
                Ok(engine) => {
                    let mut errs = engine.check().await;
                    let made: Vec<&str> = engine
                        .queries()
                        .iter()
                        .filter_map(|q| match &q.output {
                            crate::engine::Output::Metric(m) => Some(m.name.as_str()),
                            crate::engine::Output::Table(_) => None,
                        })
                        .collect();
                    errs.extend(crate::web::families::missing(&made));
                    errs
                }
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

/// Publishes lines to a topic, keyed by their deal_id, at most `rate` per second.
struct Publisher {
    producer: kafka::CountingProducer,
    topic: String,
    rate: Option<f64>,
    started: Instant,
    sent: u64,
    /// Set to stop sending.
    stop: Arc<AtomicBool>,
}

impl Publisher {
    fn new(to: &Publish, rate: Option<f64>) -> anyhow::Result<Publisher> {
        if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            anyhow::bail!("--rate must be a positive number of events per second");
        }
        let (Some(brokers), Some(topic)) = (&to.brokers, &to.topic) else {
            anyhow::bail!("--brokers and --topic are required");
        };
        let properties = to.properties.iter().cloned().collect();
        let producer = kafka::producer(brokers, &properties)?;
        let stop = Arc::default();
        Ok(Publisher { producer, topic: topic.clone(), rate, started: Instant::now(), sent: 0, stop })
    }

    fn send_all<'a>(&mut self, lines: impl IntoIterator<Item = &'a [u8]>) {
        #[derive(serde::Deserialize)]
        struct Key<'a> {
            #[serde(borrow)]
            deal_id: Option<std::borrow::Cow<'a, str>>,
        }
        for line in lines {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            if let Some(rate) = self.rate {
                let due = self.started + std::time::Duration::from_secs_f64(self.sent as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            let key = serde_json::from_slice::<Key>(line).ok().and_then(|k| k.deal_id);
            kafka::send_blocking(&self.producer, &self.topic, key.as_deref().map(str::as_bytes), line);
            self.sent += 1;
        }
    }

    /// Waits for the deliveries, reports them and returns the exit code.
    fn finish(self) -> i32 {
        use rdkafka::producer::Producer;
        let unconfirmed = match self.producer.flush(std::time::Duration::from_secs(30)) {
            Ok(()) => 0,
            Err(_) => self.producer.in_flight_count().max(0) as u64,
        };
        let d = self.producer.context();
        let (delivered, failed) = (d.delivered.load(Ordering::SeqCst), d.failed.load(Ordering::SeqCst) + unconfirmed);
        eprintln!("published {delivered} events to {} ({failed} failed)", self.topic);
        i32::from(failed > 0)
    }
}
