//! The leadership dashboard over HTTP: the page's numbers equal
//! `/api/funnel`, which equals `/metrics`; CRM strings are escaped; language
//! and bad parameters; live updates announced over SSE.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn json(server: &Server, path: &str) -> Value {
    let (status, body) = server.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn metric(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    want.sort();
    samples.get(&(name.to_string(), want)).copied()
}

#[test]
fn page_numbers_equal_the_api_which_equals_metrics() {
    let dir = scratch("dash-equal");
    let config = format!("{ROOT}/funnelwatch.example.toml");
    let events = dir.join("events.ndjson");
    generate(
        &events,
        &["--config", &config, "--deals", "1500", "--days", "90", "--seed", "5", "--until", "2026-10-01T00:00:00Z"],
    );
    let server = Server::replay(config.as_ref(), &events);
    let metrics = samples(&server.metrics(), "crm_funnel_");
    let pipelines = json(&server, "/api/pipelines");
    let windows: Vec<String> =
        pipelines["windows"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();
    assert_eq!(windows, ["1d", "7d", "30d", "90d"]);

    for p in pipelines["pipelines"].as_array().unwrap() {
        let pid = p["id"].as_str().unwrap();
        let stages: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        for window in &windows {
            for basis in ["period", "cohort"] {
                let query = format!("pipeline={pid}&window={window}&basis={basis}");
                let api = json(&server, &format!("/api/funnel?{query}"));
                let (status, html) = server.get(&format!("/?{query}&lang=en"));
                assert_eq!(status, 200);

                // Every number on the page is the API's number.
                let shown = page_numbers(&html);
                assert!(shown.len() > 30, "{query}: only {} numbers on the page", shown.len());
                for (path, value) in &shown {
                    let api_value = resolve(&api, path).and_then(Value::as_f64);
                    assert_eq!(api_value, Some(*value), "{query}: page shows {value} at {path:?}");
                }
                // One bar per stage, in configured order.
                let bars: Vec<&str> = html
                    .split("<rect class=\"bar\" data-stage=\"")
                    .skip(1)
                    .map(|s| s.split('"').next().unwrap())
                    .collect();
                assert_eq!(bars, stages, "{query}");

                // The API's numbers are /metrics' numbers.
                let pw = [("pipeline", pid), ("window", window.as_str())];
                let (count_metric, ratio_metric) = match basis {
                    "period" => ("crm_funnel_stage_entries", "crm_funnel_period_conversion_ratio"),
                    _ => ("crm_funnel_cohort_deals", "crm_funnel_cohort_conversion_ratio"),
                };
                for (i, s) in api["stages"].as_array().unwrap().iter().enumerate() {
                    let stage = s["stage"].as_str().unwrap();
                    assert_eq!(stage, stages[i]);
                    let want = metric(&metrics, count_metric, &[pw[0], pw[1], ("funnel_stage", stage)]);
                    assert_eq!(s["count"].as_f64(), want, "{query} {stage}");
                    if let Some(next) = stages.get(i + 1) {
                        let want =
                            metric(&metrics, ratio_metric, &[pw[0], pw[1], ("from_stage", stage), ("to_stage", next)]);
                        assert_eq!(s["step_conversion"].as_f64(), want, "{query} {stage}");
                    }
                }
                assert_eq!(api["won_deals"].as_f64(), metric(&metrics, "crm_funnel_won_deals", &pw));
                assert_eq!(api["lost_deals"].as_f64(), metric(&metrics, "crm_funnel_lost_deals", &pw));
                assert_eq!(api["win_rate"].as_f64(), metric(&metrics, "crm_funnel_win_rate_ratio", &pw));
                for (key, q) in [("time_to_close_p50", "0.5"), ("time_to_close_p90", "0.9")] {
                    let want =
                        metric(&metrics, "crm_funnel_time_to_close_quantile_seconds", &[pw[0], pw[1], ("quantile", q)]);
                    assert_eq!(api[key].as_f64(), want, "{query} {key}");
                }
                for t in api["transitions"].as_array().unwrap() {
                    let (from, to) = (t["from_stage"].as_str().unwrap(), t["to_stage"].as_str().unwrap());
                    let l = [pw[0], pw[1], ("from_stage", from), ("to_stage", to)];
                    assert_eq!(
                        t["count"].as_f64(),
                        metric(&metrics, "crm_funnel_transition_duration_seconds_count", &l)
                    );
                    let q = |q| {
                        metric(
                            &metrics,
                            "crm_funnel_transition_duration_quantile_seconds",
                            &[l[0], l[1], l[2], l[3], ("quantile", q)],
                        )
                    };
                    assert_eq!(t["p50"].as_f64(), q("0.5"));
                    assert_eq!(t["p90"].as_f64(), q("0.9"));
                }
                for o in api["open"].as_array().unwrap() {
                    let stage = o["stage"].as_str().unwrap();
                    let l = [("pipeline", pid), ("funnel_stage", stage)];
                    assert_eq!(o["count"].as_f64(), metric(&metrics, "crm_funnel_open_deals", &l));
                    assert_eq!(o["stuck"].as_f64(), metric(&metrics, "crm_funnel_stuck_deals", &l));
                    for a in o["amounts"].as_array().unwrap() {
                        let c = a["currency"].as_str().unwrap();
                        let want = metric(&metrics, "crm_funnel_open_amount", &[l[0], l[1], ("currency", c)]);
                        assert_eq!(a["amount"].as_f64(), want);
                    }
                }
                // A series of family `name` in this pipeline and window.
                let in_view = |n: &str, l: &[(String, String)], name: &str| {
                    n == name
                        && l.contains(&("pipeline".into(), pid.into()))
                        && l.contains(&("window".into(), window.clone()))
                };
                for (key, name, label) in [
                    ("lost_reasons", "crm_funnel_lost_reason_deals", "reason"),
                    ("activities", "crm_funnel_activities", "activity"),
                ] {
                    let items = api[key].as_array().unwrap();
                    let expected = metrics.keys().filter(|(n, l)| in_view(n, l, name));
                    assert_eq!(items.len(), expected.count(), "{query} {key}");
                    for it in items {
                        let want = metric(&metrics, name, &[pw[0], pw[1], (label, it["name"].as_str().unwrap())]);
                        assert_eq!(it["count"].as_f64(), want);
                    }
                }
                // Acquisition cost and satisfaction (docs/metrics.md §5.2, §5.3).
                let spent: Vec<&str> = metrics
                    .keys()
                    .filter(|(n, l)| in_view(n, l, "crm_funnel_acquisition_spend"))
                    .map(|(_, l)| l.iter().find(|(k, _)| k == "currency").unwrap().1.as_str())
                    .collect();
                let acquisition = api["acquisition"].as_array().unwrap();
                let shown: Vec<&str> = acquisition.iter().map(|a| a["currency"].as_str().unwrap()).collect();
                assert!(spent.iter().all(|c| shown.contains(c)), "{query}: spend in {spent:?}, shown {shown:?}");
                for a in acquisition {
                    let l = [pw[0], pw[1], ("currency", a["currency"].as_str().unwrap())];
                    let spend = metric(&metrics, "crm_funnel_acquisition_spend", &l).unwrap_or(0.0);
                    assert_eq!(a["spend"].as_f64(), Some(spend), "{query} {l:?}");
                    for (key, name) in [
                        ("cost_per_lead", "crm_funnel_cost_per_lead"),
                        ("customer_acquisition_cost", "crm_funnel_customer_acquisition_cost"),
                    ] {
                        assert_eq!(a[key].as_f64(), metric(&metrics, name, &l), "{query} {key} {l:?}");
                    }
                }
                let sat = &api["satisfaction"];
                assert_eq!(sat["csat"].as_f64(), metric(&metrics, "crm_funnel_csat_ratio", &pw), "{query}");
                assert_eq!(sat["nps"].as_f64(), metric(&metrics, "crm_funnel_net_promoter_score", &pw), "{query}");
                for survey in ["csat", "nps"] {
                    let l = [pw[0], pw[1], ("survey", survey)];
                    let want = metric(&metrics, "crm_funnel_feedback_score_count", &l).unwrap_or(0.0);
                    assert_eq!(sat[format!("{survey}_responses")].as_f64(), Some(want), "{query} {survey}");
                }
                // Twice every window fits in the 180-day retention: each has a previous period, stage by
                // stage for the period flow; cohort numbers have none (docs/metrics.md §5.5).
                let previous = api["previous"].as_object().unwrap_or_else(|| panic!("{query}: no previous period"));
                let prev_stages: Vec<&str> =
                    previous["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
                assert_eq!(prev_stages, if basis == "period" { stages.clone() } else { vec![] }, "{query}");

                // The breakdown, by every dimension, is the crm_funnel_segment_* families' numbers.
                if basis == "cohort" {
                    continue;
                }
                for dimension in ["source", "team", "region", "owner"] {
                    let api = json(&server, &format!("/api/funnel?{query}&dimension={dimension}"));
                    let b = &api["breakdown"];
                    assert_eq!(b["dimension"], dimension, "{query}");
                    let (_, html) = server.get(&format!("/?{query}&dimension={dimension}&lang=zh"));
                    for (path, value) in &page_numbers(&html) {
                        let api_value = resolve(&api, path).and_then(Value::as_f64);
                        assert_eq!(api_value, Some(*value), "{query} {dimension}: page shows {value} at {path:?}");
                    }
                    let pwd = [pw[0], pw[1], ("dimension", dimension)];
                    let mut want: Vec<&str> = metrics
                        .keys()
                        .filter(|(n, l)| {
                            in_view(n, l, "crm_funnel_segment_cohort_deals")
                                && l.contains(&("dimension".into(), dimension.into()))
                                && l.contains(&("funnel_stage".into(), stages[0].into()))
                        })
                        .map(|(_, l)| l.iter().find(|(k, _)| k == "segment").unwrap().1.as_str())
                        .collect();
                    let rows = b["segments"].as_array().unwrap();
                    let mut got: Vec<&str> = rows.iter().map(|r| r["segment"].as_str().unwrap()).collect();
                    assert!(got.len() >= 3, "{query} {dimension}: {got:?}");
                    got.sort_unstable();
                    want.sort_unstable();
                    assert_eq!(got, want, "{query} {dimension}: the segments are the series'");
                    for r in rows {
                        let seg = r["segment"].as_str().unwrap();
                        let l = [pwd[0], pwd[1], pwd[2], ("segment", seg)];
                        let m = |name: &str, extra: &[(&str, &str)]| {
                            let mut all = l.to_vec();
                            all.extend_from_slice(extra);
                            metric(&metrics, name, &all)
                        };
                        let first = ("funnel_stage", stages[0]);
                        assert_eq!(r["new_deals"].as_f64(), m("crm_funnel_segment_cohort_deals", &[first]), "{seg}");
                        let won = m("crm_funnel_segment_won_deals", &[]).unwrap_or(0.0);
                        assert_eq!(r["won_deals"].as_f64(), Some(won), "{query} {seg}");
                        assert_eq!(r["win_rate"].as_f64(), m("crm_funnel_segment_win_rate_ratio", &[]), "{seg}");
                        let p50 = m("crm_funnel_segment_time_to_close_quantile_seconds", &[("quantile", "0.5")]);
                        assert_eq!(r["time_to_close_p50"].as_f64(), p50, "{query} {seg}");
                        assert_eq!(r["nps"].as_f64(), m("crm_funnel_segment_net_promoter_score", &[]), "{seg}");
                        for (key, name) in [
                            ("spend", "crm_funnel_segment_acquisition_spend"),
                            ("customer_acquisition_cost", "crm_funnel_segment_customer_acquisition_cost"),
                        ] {
                            for a in r[key].as_array().unwrap() {
                                let c = ("currency", a["currency"].as_str().unwrap());
                                assert_eq!(a["amount"].as_f64(), m(name, &[c]), "{query} {seg} {key}");
                            }
                        }
                        for a in r["open_amount"].as_array().unwrap() {
                            let l = [pwd[0], pwd[2], ("segment", seg), ("currency", a["currency"].as_str().unwrap())];
                            let want = metric(&metrics, "crm_funnel_segment_open_amount", &l);
                            assert_eq!(a["amount"].as_f64(), want, "{query} {seg} open");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn crm_strings_are_escaped_and_the_page_has_a_strict_policy() {
    let dir = scratch("dash-xss");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        r#"
[[pipelines]]
id = "default"
stages = [
  { id = "a", label = "<script>alert(1)</script>" },
  { id = "b", label = "\"><img src=x onerror=alert(1)>", sla = "1d" },
  { id = "won", label = "Won", won = true },
]
"#,
    )
    .unwrap();
    let events = dir.join("e.ndjson");
    let mut f = std::fs::File::create(&events).unwrap();
    let base = 1_790_000_000_000i64;
    for (i, line) in [
        format!(r#"{{"event_id":"1","deal_id":"d1","type":"deal_created","stage":"a","occurred_at":{base}}}"#),
        format!(r#"{{"event_id":"2","deal_id":"d1","type":"deal_lost","lost_reason":"\"><img src=x onerror=alert(1)>","occurred_at":{}}}"#, base + 1000),
        format!(r#"{{"event_id":"3","deal_id":"d2","type":"deal_created","stage":"b","occurred_at":{}}}"#, base + 2000),
        format!(r#"{{"event_id":"4","deal_id":"d2","type":"activity","activity":"<script>alert(2)</script>","occurred_at":{}}}"#, base + 3000),
    ]
    .iter()
    .enumerate()
    {
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("line {i}: {e}"));
    }
    let server = Server::replay(&config, &events);
    let (status, html, headers) = get_with(&server.url("/?window=1d"), &[]);
    assert_eq!(status, 200);
    for raw in ["<script>alert", "<img src=x", "onerror=alert(1)>"] {
        assert!(!html.contains(raw), "unescaped {raw:?} in the page");
    }
    for escaped in [
        "&#60;script&#62;alert(1)&#60;/script&#62;",
        "&#34;&#62;&#60;img src=x onerror=alert(1)&#62;",
        "&#60;script&#62;alert(2)",
    ] {
        assert!(html.contains(escaped), "missing {escaped:?}");
    }
    assert!(!html.contains("<script>") && html.contains("<script src=\"/static/app.js\" defer></script>"));
    assert!(!html.contains(" style=") && !html.contains(" onclick="), "inline style or handler");
    let csp = headers.iter().find(|(k, _)| k == "content-security-policy").map(|(_, v)| v.as_str());
    assert_eq!(
        csp,
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    );
    // The JSON API carries the strings as data, unchanged.
    let api = json(&server, "/api/funnel?window=1d");
    assert_eq!(api["lost_reasons"][0]["name"], "\"><img src=x onerror=alert(1)>");
}

#[test]
fn language_follows_the_url_then_accept_language_and_bad_parameters_are_400() {
    let dir = scratch("dash-lang");
    let events = dir.join("e.ndjson");
    generate(&events, &["--deals", "50", "--days", "10", "--until", "2026-10-01T00:00:00Z"]);
    let server = Server::replay(format!("{ROOT}/funnelwatch.example.toml").as_ref(), &events);

    let zh = server.get("/?lang=zh").1;
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("销售漏斗") && zh.contains("赢单率"));
    let (_, by_header, _) = get_with(&server.url("/"), &[("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")]);
    assert!(by_header.contains("销售漏斗"));
    let (_, en, _) = get_with(&server.url("/?lang=en"), &[("Accept-Language", "zh-CN")]);
    assert!(en.contains("<html lang=\"en\">") && en.contains("Win rate") && !en.contains("赢单率"));
    // Links keep the chosen language.
    assert!(zh.contains("lang=zh"));

    for (path, parameter) in [
        ("/?window=8d", "window"),
        ("/?pipeline=nope", "pipeline"),
        ("/?basis=both", "basis"),
        ("/?lang=fr", "lang"),
        ("/api/funnel?window=1y", "window"),
        ("/api/funnel?pipeline=%3Cx%3E", "pipeline"),
        ("/view?basis=", "basis"),
        ("/api/funnel?dimension=country", "dimension"),
        ("/?sort=profit", "sort"),
        ("/api/funnel?sort=nps&order=up", "order"),
    ] {
        let (status, body) = server.get(path);
        assert_eq!(status, 400, "{path}");
        let err: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert_eq!(err["parameter"], parameter, "{path}");
        assert!(err["error"].as_str().unwrap().contains("expected one of"), "{path}");
    }
    assert_eq!(server.get("/?window=7d&unknown=1").0, 200, "unknown parameters are ignored");
}

#[test]
fn without_breakdowns_or_room_for_it_the_view_says_so() {
    let dir = scratch("dash-off");
    let config = dir.join("c.toml");
    let text = format!("retention = \"100d\"\nbreakdowns = []\n{}", funnelwatch::config::DEFAULT_TOML);
    std::fs::write(&config, text).unwrap();
    let events = dir.join("e.ndjson");
    let config_arg = config.to_str().unwrap();
    generate(&events, &["--config", config_arg, "--deals", "200", "--days", "60", "--until", "2026-10-01T00:00:00Z"]);
    let server = Server::replay(&config, &events);

    // 2 × 30d fits in 100 days, 2 × 90d does not (docs/metrics.md §5.5).
    let api = json(&server, "/api/funnel?window=30d");
    assert!(api["previous"].is_object(), "{}", api["previous"]);
    assert!(api["breakdown"].is_null(), "breakdowns are off: {}", api["breakdown"]);
    let api = json(&server, "/api/funnel?window=90d");
    assert!(api["previous"].is_null(), "{}", api["previous"]);
    let (status, html) = server.get("/?window=90d&lang=en");
    assert_eq!(status, 200);
    assert!(!html.contains("p-breakdown") && !html.contains("class=\"prev\""), "{html}");

    let (status, body) = server.get("/api/funnel?dimension=team");
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["parameter"], "dimension");
    assert!(err["error"].as_str().unwrap().contains("breakdowns are off"), "{body}");
}

#[test]
fn new_events_are_announced_and_change_the_numbers() {
    let dir = scratch("dash-live");
    let config = dir.join("c.toml");
    std::fs::write(&config, "refresh_interval = \"200ms\"\n").unwrap();
    let events = dir.join("e.ndjson");
    let base = 1_790_000_000_000i64;
    std::fs::write(&events, format!("{{\"event_id\":\"1\",\"deal_id\":\"d1\",\"type\":\"deal_created\",\"stage\":\"lead\",\"occurred_at\":{base}}}\n")).unwrap();
    let server = Server::replay(&config, &events);
    let lead = |s: &Server| json(s, "/api/funnel?window=1d")["stages"][0]["count"].as_f64().unwrap();
    assert_eq!(lead(&server), 1.0);

    // The stream first announces the current snapshot.
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(stream, "GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut versions = Vec::new();
    while versions.len() < 2 {
        let line = lines.next().expect("stream open").expect("read stream");
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            versions.push(v["version"].as_u64().unwrap());
        }
    }
    assert!(versions[1] > versions[0], "{versions:?}");

    // Lines appended to the file are ingested and the next snapshot shows them.
    let mut f = std::fs::OpenOptions::new().append(true).open(&events).unwrap();
    writeln!(
        f,
        "{{\"event_id\":\"2\",\"deal_id\":\"d2\",\"type\":\"deal_created\",\"stage\":\"lead\",\"occurred_at\":{}}}",
        base + 1000
    )
    .unwrap();
    poll(Duration::from_secs(30), "appended event counted", || lead(&server) == 2.0);
}
