//! Whole-process figures, measured from outside a real server, never
//! asserted: for generated files of about 1M, 10M and 17M events
//! (`funnelwatch generate`, deterministic per seed), `serve --source file:
//! --clock event` is started and the bench prints
//! - load: start → `/readyz` 200, and events/s;
//! - refresh: the mean of `funnelwatch_refresh_duration_seconds` over the
//!   refreshes after ready (the clock does not move with `--clock event`
//!   and a file that is not appended to, so these are clock-only refreshes),
//!   and the slowest queries from `funnelwatch_query_duration_seconds`;
//! - memory: RSS (VmRSS, VmHWM) and `funnelwatch_store_bytes` per event;
//! - scrapes: `/metrics` latency p50/p99 at 100 requests/s for 10 s while
//!   refreshes run every 200 ms.
//!
//! `cargo bench --bench serve -- 1M 10M` (default: 1M); set
//! `FUNNELWATCH_BENCH_BIN` to measure another build of the server on the
//! same files. The files go to
//! `$CARGO_TARGET_DIR/bench-data/` and are reused. Run the DuckDB peer on the
//! same files by hand to compare (it is a measuring tool: nothing here calls
//! it); each file's path is printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server measured: this build's, or `FUNNELWATCH_BENCH_BIN` (an older build, to compare).
fn bin() -> String {
    std::env::var("FUNNELWATCH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_funnelwatch").to_string())
}

/// (name, deals): the generator makes ~12 events per deal over 120 days.
const SETS: [(&str, usize); 3] = [("1M", 82_000), ("10M", 820_000), ("17M", 1_400_000)];

fn data_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let d = Path::new(&target).join("bench-data");
    std::fs::create_dir_all(&d).expect("bench-data dir");
    d
}

fn generate(name: &str, deals: usize) -> PathBuf {
    let path = data_dir().join(format!("events-{name}.ndjson"));
    if !path.exists() {
        eprintln!("generating {} ({deals} deals)…", path.display());
        let tmp = path.with_extension("part");
        let out = std::fs::File::create(&tmp).expect("data file");
        let status = Command::new(env!("CARGO_BIN_EXE_funnelwatch"))
            .args(["generate", "--deals", &deals.to_string(), "--days", "120", "--seed", "2"])
            .args(["--until", "2026-10-01T00:00:00Z"])
            .stdout(out)
            .status()
            .expect("funnelwatch generate");
        assert!(status.success(), "generate failed");
        std::fs::rename(&tmp, &path).expect("rename");
    }
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One HTTP/1.1 GET on a fresh connection: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The value of the first sample of `metrics` whose name and labels start with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn run(name: &str, path: &Path) {
    let port = free_port();
    let lines = BufReader::new(std::fs::File::open(path).expect("data")).lines().count();
    let start = Instant::now();
    let child = Command::new(bin())
        .args(["serve", "--source", &format!("file:{}", path.display()), "--clock", "event"])
        .env("FUNNELWATCH_LISTEN", format!("127.0.0.1:{port}"))
        .env("FUNNELWATCH_REFRESH_INTERVAL", "200ms")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("serve");
    let pid = child.id();
    let _server = Server(child);
    while get(port, "/readyz").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(600), "not ready after 600 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let load = start.elapsed().as_secs_f64();
    let (rss_ready, _) = rss(pid);
    let metrics = |port| get(port, "/metrics").expect("metrics").1;
    let m0 = metrics(port);
    let (sum0, n0) = (
        sample(&m0, "funnelwatch_refresh_duration_seconds_sum").unwrap_or(0.0),
        sample(&m0, "funnelwatch_refresh_duration_seconds_count").unwrap_or(0.0),
    );
    // Scrapes at 100/s for 10 s while refreshes run.
    let mut lat = Vec::new();
    let t0 = Instant::now();
    for i in 0..1000u32 {
        let due = t0 + Duration::from_millis(10 * u64::from(i));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let (status, _) = get(port, "/metrics").expect("scrape");
        assert_eq!(status, 200);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let m1 = metrics(port);
    let sum1 = sample(&m1, "funnelwatch_refresh_duration_seconds_sum").unwrap_or(0.0);
    let n1 = sample(&m1, "funnelwatch_refresh_duration_seconds_count").unwrap_or(0.0);
    let refresh_ms = if n1 > n0 { (sum1 - sum0) / (n1 - n0) * 1e3 } else { f64::NAN };
    let rows = sample(&m1, "funnelwatch_store_rows").unwrap_or(0.0);
    let deals = sample(&m1, "funnelwatch_store_deals").unwrap_or(0.0);
    let store = sample(&m1, "funnelwatch_store_bytes").unwrap_or(0.0);
    let (rss_now, hwm) = rss(pid);
    let mut queries: Vec<(String, f64)> = m1
        .lines()
        .filter_map(|l| l.strip_prefix("funnelwatch_query_duration_seconds{query=\""))
        .filter_map(|l| {
            let (q, v) = l.split_once("\"} ")?;
            Some((q.to_string(), v.parse::<f64>().ok()? * 1e3))
        })
        .collect();
    queries.sort_by(|a, b| b.1.total_cmp(&a.1));
    let series = m1.lines().filter(|l| l.starts_with("crm_funnel_")).count();
    println!("\n== {name}: {} ({lines} lines, {rows} events held, {deals} deals)", path.display());
    println!("  load: start → ready {load:.2} s = {:.2} M lines/s", lines as f64 / load / 1e6);
    println!("  refresh (clock only, mean of {} refreshes): {refresh_ms:.1} ms", n1 - n0);
    println!(
        "  slowest queries (last refresh): {}",
        queries.iter().take(5).map(|(q, ms)| format!("{q} {ms:.1} ms")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "  memory: RSS {rss_now:.0} MiB ({:.1} B/event; {rss_ready:.0} MiB at ready), peak {hwm:.0} MiB; store {:.1} B/event",
        rss_now * 1048576.0 / rows.max(1.0),
        store / rows.max(1.0)
    );
    println!(
        "  /metrics at 100/s while refreshing: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} business samples)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
        series
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted: Vec<&str> = if args.is_empty() { vec!["1M"] } else { args.iter().map(String::as_str).collect() };
    for (name, deals) in SETS {
        if wanted.contains(&name) {
            let path = generate(name, deals);
            run(name, &path);
        }
    }
}
