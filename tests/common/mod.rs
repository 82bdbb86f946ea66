//! Helpers for the integration tests: run the real binary, talk HTTP to it,
//! poll with deadlines (never sleep for correctness), parse the text format.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_funnelwatch");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A running `funnelwatch` process, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `funnelwatch ARGS --listen 127.0.0.1:0` and waits for the address it prints.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start funnelwatch");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("funnelwatch printed nothing").expect("read stdout");
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|s| s.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    /// `serve --config CONFIG --source file:EVENTS --clock event`, ready.
    pub fn replay(config: &Path, events: &Path) -> Server {
        let source = format!("file:{}", events.display());
        let config = config.to_str().expect("UTF-8 path");
        let server = Server::start(&["serve", "--config", config, "--source", &source, "--clock", "event"]);
        server.wait_ready(Duration::from_secs(120));
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        get(&self.url(path))
    }

    /// Polls /readyz until 200.
    pub fn wait_ready(&self, within: Duration) {
        poll(within, "server ready", || self.get("/readyz").0 == 200);
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body
    }

    /// Sends a signal and waits for a clean exit.
    pub fn stop_with(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "funnelwatch did not exit after SIG{signal}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET with a real HTTP client; any status is returned, not an error.
pub fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Calls `f` until it returns true, failing after `within`.
pub fn poll(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parsed samples: (name, sorted labels) → value.
pub type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Samples of the text format whose name starts with `prefix`.
pub fn samples(text: &str, prefix: &str) -> Samples {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(prefix)) {
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').expect("closing brace"))),
            None => (series, vec![]),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(!value.is_nan(), "NaN in {line:?}");
        out.insert((name.to_string(), labels), value);
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels.sort();
    labels
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("funnelwatch-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `funnelwatch generate ARGS` into `path`.
pub fn generate(path: &Path, args: &[&str]) {
    let out = Command::new(BIN).arg("generate").args(args).output().expect("run generate");
    assert!(out.status.success(), "generate failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(path, out.stdout).unwrap();
}

/// Path of a tool the test command installs; fails (never skips) when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} not found on PATH: run the test command from README.md, which installs it"))
}

/// GET with extra request headers.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<(String, String)>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().expect("request");
    let hs = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default(), hs)
}

/// The numbers a dashboard page shows: (path in /api/funnel, raw value).
pub fn page_numbers(html: &str) -> Vec<(Vec<String>, f64)> {
    let unescape = |s: &str| {
        s.replace("&#34;", "\"").replace("&#39;", "'").replace("&#60;", "<").replace("&#62;", ">").replace("&#38;", "&")
    };
    let mut out = Vec::new();
    for part in html.split("data-key=\"").skip(1) {
        let (key, rest) = part.split_once('"').expect("closing quote");
        let value = rest.strip_prefix(" data-value=\"").and_then(|r| r.split_once('"')).expect("data-value").0;
        let path: Vec<String> = serde_json::from_str(&unescape(key)).expect("data-key is a JSON array");
        out.push((path, value.parse().expect("numeric data-value")));
    }
    out
}

/// Follows a page path in the /api/funnel JSON: array elements are named by
/// their stage, name, currency, segment, or "from>to".
pub fn resolve<'a>(v: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(items) => items.iter().find(|e| {
                ["stage", "name", "currency", "segment"].iter().any(|k| e.get(*k).and_then(|x| x.as_str()) == Some(seg))
                    || e.get("from_stage").zip(e.get("to_stage")).is_some_and(|(f, t)| {
                        format!("{}>{}", f.as_str().unwrap_or(""), t.as_str().unwrap_or("")) == *seg
                    })
            })?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The Kafka broker the tests use; fails (never skips) without one.
pub fn brokers() -> String {
    std::env::var("FUNNELWATCH_TEST_BROKERS").unwrap_or_else(|_| {
        panic!("FUNNELWATCH_TEST_BROKERS is not set: run the test command from README.md (it starts a broker) or point it at one")
    })
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `funnelwatch publish` of a file; all of it must be delivered.
pub fn publish(brokers: &str, topic: &str, file: &Path) {
    let out = Command::new(BIN)
        .args(["publish", "--brokers", brokers, "--topic", topic])
        .arg(file)
        .output()
        .expect("run publish");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "publish failed: {stderr}");
    assert!(stderr.contains("(0 failed)"), "{stderr}");
}

/// A configuration reading `topic` as member of `group`.
pub fn kafka_config(dir: &Path, name: &str, brokers: &str, topic: &str, group: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "refresh_interval = \"300ms\"\n[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\n{extra}\n\
         [kafka.properties]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}
