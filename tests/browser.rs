//! The dashboard in a real browser: Debian's Chromium, driven by
//! playwright-core (tests/browser/dashboard.mjs). Screenshots are saved to
//! target/test-artifacts/. Fails (never skips) when Chromium, node or the
//! npm package are missing: the test command installs them.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::*;

/// A second pipeline whose stage label is hostile.
const XSS_PIPELINE: &str = r#"
[[pipelines]]
id = "xss"
stages = [
  { id = "a", label = "<script>alert(1)</script>" },
  { id = "b", label = "Next", sla = "1d" },
  { id = "won", label = "Won", won = true },
]
"#;

#[test]
fn dashboard_in_chromium() {
    let chromium = tool("chromium");
    let node = tool("node");
    let browser_dir = Path::new(ROOT).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run the test command from README.md (it runs npm ci there)"
    );

    let dir = scratch("browser");
    let config = dir.join("c.toml");
    let text = format!("refresh_interval = \"300ms\"\n{}{XSS_PIPELINE}", funnelwatch::config::DEFAULT_TOML);
    std::fs::write(&config, text).unwrap();
    let events = dir.join("events.ndjson");
    generate(
        &events,
        &[
            "--config",
            config.to_str().unwrap(),
            "--deals",
            "3000",
            "--days",
            "90",
            "--seed",
            "3",
            "--until",
            "2026-10-01T00:00:00Z",
        ],
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&events).unwrap();
    let at = 1_790_000_000_000i64; // before --until: inside every window
    writeln!(
        f,
        r#"{{"event_id":"x1","deal_id":"x","pipeline":"xss","type":"deal_created","stage":"a","occurred_at":{at}}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"event_id":"x2","deal_id":"x","pipeline":"xss","type":"deal_lost","lost_reason":"\"><img src=x onerror=alert(1)>","occurred_at":{}}}"#, at + 1).unwrap();
    // New deals, after everything generated, for the live update.
    let extra = dir.join("extra.ndjson");
    let until = 1_790_812_800_000i64; // 2026-10-01T00:00:00Z
    let lines: String = (1..=5)
        .map(|i| format!("{{\"event_id\":\"new-{i}\",\"deal_id\":\"new-{i}\",\"type\":\"deal_created\",\"stage\":\"lead\",\"occurred_at\":{}}}\n", until + i * 1000))
        .collect();
    std::fs::write(&extra, lines).unwrap();

    let server = Server::replay(&config, &events);

    let artifacts = Path::new(ROOT).join("target/test-artifacts");
    let out = Command::new(node)
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(format!("http://{}", server.addr))
        .arg(&events)
        .arg(&extra)
        .arg(&artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser checks passed"), "{stdout}");
    assert!(artifacts.join("dashboard-period-30d.png").is_file());
}
