//! The leadership dashboard: the page (`/`), its live fragment (`/view`),
//! and the geometry of its SVG charts. Every number is shown from a
//! [`FunnelView`] and carries its raw value in `data-value`, so tests (and
//! anyone) can check the page against `/api/funnel` and `/metrics`.

use askama::Template;
use askama_web::WebTemplate;

use super::text::{Lang, Text};
use super::view::{Basis, FunnelView, duration, number, percent};
use crate::config::Config;

/// A number as shown: its path in `/api/funnel` (a JSON array: array
/// elements are named by their stage, name, currency or `from>to`), raw
/// value and text.
pub struct Num {
    pub key: String,
    pub value: String,
    pub text: String,
}

fn num<S: AsRef<str>>(path: &[S], value: f64, text: String) -> Num {
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    Num { key: serde_json::to_string(&path).expect("strings serialize"), value: value.to_string(), text }
}

pub struct Link {
    pub href: String,
    pub text: String,
    pub current: bool,
}

/// One bar of the funnel chart, in SVG user units.
pub struct Bar {
    pub stage: String,
    pub label: String,
    pub y: f64,
    pub width: f64,
    pub count: Num,
    pub step: Option<Num>,
    pub from_first: Option<Num>,
    pub drop: bool,
    pub post_sale: bool,
}

pub struct HistBar {
    pub x: f64,
    pub y: f64,
    pub height: f64,
    pub title: String,
}

pub struct TransitionRow {
    pub from_label: String,
    pub to_label: String,
    pub count: Num,
    pub p50: Option<Num>,
    pub p90: Option<Num>,
    pub hist: Vec<HistBar>,
}

pub struct OpenRow {
    pub label: String,
    pub count: Num,
    pub amounts: Vec<Num>,
    pub stuck: Option<Num>,
    pub sla: String,
}

pub struct NamedBar {
    pub name: String,
    pub count: Num,
    pub width: f64,
}

/// The live part of the page, rendered alone by `/view`.
#[derive(Template, WebTemplate)]
#[template(path = "view.html")]
pub struct ViewTemplate {
    pub t: &'static Text,
    pub version: u64,
    pub ready: bool,
    pub definition: &'static str,
    pub evaluated_at: String,
    pub last_event: String,
    pub ingested: Num,
    pub rejected: Num,
    pub stale: bool,
    pub won: Num,
    pub lost: Num,
    pub win_rate: Option<Num>,
    pub ttc_p50: Option<Num>,
    pub ttc_p90: Option<Num>,
    pub open_amount: Vec<Num>,
    pub stuck: Num,
    pub chart_height: f64,
    pub bars: Vec<Bar>,
    pub funnel_title: String,
    pub transitions: Vec<TransitionRow>,
    pub open: Vec<OpenRow>,
    pub lost_reasons: Vec<NamedBar>,
    pub activities: Vec<NamedBar>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct PageTemplate {
    pub t: &'static Text,
    pub pipeline: String,
    pub pipelines: Vec<Link>,
    pub windows: Vec<Link>,
    pub bases: Vec<Link>,
    pub langs: Vec<Link>,
    pub view: ViewTemplate,
}

/// The page's chosen view: everything that is in its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub pipeline: String,
    pub window: String,
    pub basis: Basis,
    pub lang: Lang,
    /// Whether `lang` came from the URL (then links keep it).
    pub lang_in_url: bool,
}

impl Selection {
    pub fn href(&self, pipeline: &str, window: &str, basis: Basis, lang: Option<Lang>) -> String {
        let mut q = vec![("pipeline", pipeline), ("window", window), ("basis", basis.as_str())];
        if let Some(l) = lang.or(self.lang_in_url.then_some(self.lang)) {
            q.push(("lang", l.as_str()));
        }
        format!("/?{}", serde_urlencoded::to_string(q).expect("plain pairs encode"))
    }
}

const CHART_WIDTH: f64 = 500.0;
const BAR_HEIGHT: f64 = 34.0;
const BAR_GAP: f64 = 30.0;

fn ago(now_ms: i64, at_ms: Option<i64>, t: &Text, zh: bool) -> String {
    match at_ms {
        Some(at) => {
            let secs = ((now_ms - at) as f64 / 1000.0).max(0.0);
            if zh {
                format!("{}{}", duration(secs, true), t.ago)
            } else {
                format!("{} {}", duration(secs, false), t.ago)
            }
        }
        None => t.never.to_string(),
    }
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

impl ViewTemplate {
    pub fn new(v: &FunnelView, config: &Config, lang: Lang, ready: bool, now_ms: i64) -> ViewTemplate {
        let t = lang.text();
        let zh = lang == Lang::Zh;
        let p = config.pipeline(&v.pipeline).expect("view of a configured pipeline");
        let max = v.stages.iter().map(|s| s.count).fold(0.0, f64::max);
        let bars = v
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = |k: &str| ["stages", s.stage.as_str(), k].map(String::from);
                Bar {
                    stage: s.stage.clone(),
                    label: s.label.clone(),
                    y: i as f64 * (BAR_HEIGHT + BAR_GAP),
                    // A visible sliver even at zero, so every stage has a bar.
                    width: if max > 0.0 { (s.count / max * CHART_WIDTH).max(2.0) } else { 2.0 },
                    count: num(&key("count"), s.count, number(s.count)),
                    step: s.step_conversion.map(|c| num(&key("step_conversion"), c, percent(c))),
                    from_first: s.from_first.map(|c| num(&key("from_first"), c, percent(c))),
                    drop: s.biggest_drop,
                    post_sale: i > p.won,
                }
            })
            .collect::<Vec<_>>();
        let chart_height = bars.len() as f64 * (BAR_HEIGHT + BAR_GAP);

        let transitions = v
            .transitions
            .iter()
            .map(|tr| {
                let key = |k: &str| ["transitions".to_string(), format!("{}>{}", tr.from_stage, tr.to_stage), k.into()];
                let top = tr.buckets.iter().map(|b| b.count).fold(0.0, f64::max);
                let hist = tr
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let height = if top > 0.0 { b.count / top * 28.0 } else { 0.0 };
                        let upto = match b.le.parse::<f64>() {
                            Ok(s) => format!("≤ {}", duration(s, zh)),
                            Err(_) => "> 180 d".to_string(),
                        };
                        HistBar {
                            x: i as f64 * 9.0,
                            y: 30.0 - height,
                            height,
                            title: format!("{upto}: {}", number(b.count)),
                        }
                    })
                    .collect();
                TransitionRow {
                    from_label: tr.from_label.clone(),
                    to_label: tr.to_label.clone(),
                    count: num(&key("count"), tr.count, number(tr.count)),
                    p50: tr.p50.map(|s| num(&key("p50"), s, duration(s, zh))),
                    p90: tr.p90.map(|s| num(&key("p90"), s, duration(s, zh))),
                    hist,
                }
            })
            .collect();

        let open = v
            .open
            .iter()
            .map(|o| {
                let key = |k: &str| vec!["open".to_string(), o.stage.clone(), k.into()];
                OpenRow {
                    label: o.label.clone(),
                    count: num(&key("count"), o.count, number(o.count)),
                    amounts: o
                        .amounts
                        .iter()
                        .map(|a| {
                            let mut path = key("amounts");
                            path.extend([a.currency.clone(), "amount".into()]);
                            num(&path, a.amount, format!("{} {}", number(a.amount.round()), a.currency))
                        })
                        .collect(),
                    stuck: o.stuck.map(|s| num(&key("stuck"), s, number(s))),
                    sla: o.sla_seconds.map(|s| duration(s, zh)).unwrap_or_default(),
                }
            })
            .collect();

        let named = |items: &[super::view::Named], prefix: &str| -> Vec<NamedBar> {
            let top = items.iter().map(|n| n.count).fold(0.0, f64::max);
            items
                .iter()
                .map(|n| NamedBar {
                    name: n.name.clone(),
                    count: num(&[prefix, n.name.as_str(), "count"], n.count, number(n.count)),
                    width: if top > 0.0 { (n.count / top * 100.0).max(1.0) } else { 1.0 },
                })
                .collect()
        };

        let f = &v.freshness;
        ViewTemplate {
            t,
            version: v.version,
            ready,
            definition: match v.basis {
                Basis::Period => t.period_definition,
                Basis::Cohort => t.cohort_definition,
            },
            evaluated_at: f.evaluated_at_ms.map(timestamp).unwrap_or_default(),
            last_event: ago(now_ms, f.last_ingest_ms, t, zh),
            ingested: num(&["freshness", "events_ingested"], f.events_ingested, number(f.events_ingested)),
            rejected: num(&["freshness", "events_rejected"], f.events_rejected, number(f.events_rejected)),
            stale: f.stale,
            won: num(&["won_deals"], v.won_deals, number(v.won_deals)),
            lost: num(&["lost_deals"], v.lost_deals, number(v.lost_deals)),
            win_rate: v.win_rate.map(|r| num(&["win_rate"], r, percent(r))),
            ttc_p50: v.time_to_close_p50.map(|s| num(&["time_to_close_p50"], s, duration(s, zh))),
            ttc_p90: v.time_to_close_p90.map(|s| num(&["time_to_close_p90"], s, duration(s, zh))),
            open_amount: v
                .open_amount
                .iter()
                .map(|a| {
                    num(
                        &["open_amount", a.currency.as_str(), "amount"],
                        a.amount,
                        format!("{} {}", number(a.amount.round()), a.currency),
                    )
                })
                .collect(),
            stuck: num(&["stuck_deals"], v.stuck_deals, number(v.stuck_deals)),
            chart_height,
            funnel_title: format!("{} — {} · {}", t.funnel, v.pipeline, v.window),
            bars,
            transitions,
            open,
            lost_reasons: named(&v.lost_reasons, "lost_reasons"),
            activities: named(&v.activities, "activities"),
        }
    }
}

impl PageTemplate {
    pub fn new(sel: &Selection, config: &Config, view: ViewTemplate) -> PageTemplate {
        let t = sel.lang.text();
        let pipelines = config
            .pipelines
            .iter()
            .map(|p| Link {
                href: sel.href(&p.id, &sel.window, sel.basis, None),
                text: p.id.clone(),
                current: p.id == sel.pipeline,
            })
            .collect();
        let windows = config
            .windows
            .iter()
            .map(|w| Link {
                href: sel.href(&sel.pipeline, &w.label, sel.basis, None),
                text: w.label.clone(),
                current: w.label == sel.window,
            })
            .collect();
        let bases = [(Basis::Period, t.period), (Basis::Cohort, t.cohort)]
            .into_iter()
            .map(|(b, text)| Link {
                href: sel.href(&sel.pipeline, &sel.window, b, None),
                text: text.to_string(),
                current: b == sel.basis,
            })
            .collect();
        let langs = [(Lang::En, "English"), (Lang::Zh, "中文")]
            .into_iter()
            .map(|(l, text)| Link {
                href: sel.href(&sel.pipeline, &sel.window, sel.basis, Some(l)),
                text: text.to_string(),
                current: l == sel.lang,
            })
            .collect();
        PageTemplate { t, pipeline: sel.pipeline.clone(), pipelines, windows, bases, langs, view }
    }
}
