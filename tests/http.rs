//! The server as a user meets it: the real binary, a real HTTP client, and
//! Prometheus's own `promtool` on a real scrape.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn readyz_waits_for_the_source_and_metrics_pass_promtool() {
    let dir = scratch("fifo");
    let events = dir.join("events.ndjson");
    generate(&events, &["--deals", "300", "--days", "60", "--until", "2026-10-01T00:00:00Z"]);
    // A FIFO holds the file source back until the test writes: the server is
    // up but has not caught up, so it must not be ready.
    let fifo = dir.join("fifo.ndjson");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let server = Server::start(&["serve", "--source", &format!("file:{}", fifo.display()), "--clock", "event"]);
    poll(Duration::from_secs(20), "healthz", || server.get("/healthz").0 == 200);
    assert_eq!(server.get("/readyz").0, 503, "ready before any event was read");
    assert!(!server.metrics().contains("crm_funnel_stage_entries{"), "business numbers before the source caught up");

    std::fs::write(&fifo, std::fs::read(&events).unwrap()).unwrap();
    server.wait_ready(Duration::from_secs(60));
    let text = server.metrics();
    let s = samples(&text, "crm_funnel_stage_entries");
    let lead_90d = (
        "crm_funnel_stage_entries".to_string(),
        vec![
            ("funnel_stage".into(), "lead".into()),
            ("pipeline".into(), "default".into()),
            ("window".into(), "90d".into()),
        ],
    );
    assert!(s[&lead_90d] > 100.0, "{s:?}");
    assert!(text.contains("funnelwatch_events_ingested_total "));
    assert!(!text.contains("NaN"));

    let mut promtool = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_serves_funnel_metrics_and_stops_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let server = Server::start(&["demo", "--deals", "400"]);
        server.wait_ready(Duration::from_secs(60));
        let s = samples(&server.metrics(), "crm_funnel_");
        let entries: f64 = s.iter().filter(|((n, _), _)| n == "crm_funnel_stage_entries").map(|(_, v)| v).sum();
        assert!(entries > 0.0, "demo shows no funnel entries");
        assert!(s.keys().any(|(n, _)| n == "crm_funnel_open_deals"));
        let status = server.stop_with(signal);
        assert!(status.success(), "exit after SIG{signal}: {status:?}");
    }
}

#[test]
fn unknown_paths_are_404_and_health_is_plain() {
    let dir = scratch("health");
    let events = dir.join("e.ndjson");
    std::fs::write(&events, "").unwrap();
    let server = Server::start(&["serve", "--source", &format!("file:{}", events.display()), "--clock", "event"]);
    server.wait_ready(Duration::from_secs(30));
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(server.get("/nope").0, 404);
    // No events: every count series still exists, at zero; ratios do not.
    let s = samples(&server.metrics(), "crm_funnel_");
    assert_eq!(s.iter().filter(|((n, _), _)| n == "crm_funnel_stage_entries").count(), 7 * 4);
    assert!(s.iter().filter(|((n, _), _)| n == "crm_funnel_stage_entries").all(|(_, v)| *v == 0.0));
    assert!(!s.keys().any(|(n, _)| n.ends_with("_ratio")));
}

#[test]
fn check_reports_every_error_and_exits_nonzero() {
    let ok =
        Command::new(BIN).args(["check", "--config", &format!("{ROOT}/funnelwatch.example.toml")]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let dir = scratch("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "clock = \"sundial\"\nwindows = [\"1d\", \"soon\"]\n[[pipelines]]\nid = \"p\"\nstages = [{ id = \"a\" }, { id = \"b\" }]\n").unwrap();
    let out = Command::new(BIN).args(["check", "--config", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["clock:", "windows[1]:", "pipelines[0].stages: exactly one"] {
        assert!(err.contains(key), "missing {key} in:\n{err}");
    }

    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(
        queries.join("broken.sql"),
        "-- metric: crm_x\n-- help: x\n-- labels: pipeline\nSELECT nope FROM deals\n",
    )
    .unwrap();
    let cfg = dir.join("q.toml");
    std::fs::write(&cfg, format!("queries_dir = {:?}\n", queries.display().to_string())).unwrap();
    let out = Command::new(BIN).args(["check", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.sql") && err.contains("nope"), "{err}");

    // A file that replaces a built-in one under another family name leaves the dashboard without its family.
    std::fs::remove_file(queries.join("broken.sql")).unwrap();
    std::fs::write(
        queries.join("won_deals.sql"),
        "-- metric: crm_funnel_deals_won\n-- help: renamed\n-- labels: pipeline, window\nSELECT pipeline, window, won AS value FROM outcomes\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the dashboard reads the family crm_funnel_won_deals, which no query makes"), "{err}");
    assert!(!err.contains("crm_funnel_lost_deals"), "only the missing family is reported:\n{err}");
}
