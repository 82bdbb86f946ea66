//! The leadership dashboard: the page (`/`), its live fragment (`/view`),
//! and the geometry of its SVG charts. Every number is shown from a
//! [`FunnelView`] and carries its raw value in `data-value`, so tests (and
//! anyone) can check the page against `/api/funnel` and `/metrics`.

use askama::Template;
use askama_web::WebTemplate;

use super::breakdown::{Breakdown, Column, Order};
use super::text::{Lang, Text};
use super::view::{Amount, Basis, FunnelView, duration, number, percent};
use crate::config::{Config, Dimension};

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

/// A number's change against the previous period (docs/metrics.md §5.5):
/// the arrow and difference ("—" when either value is missing), and the
/// previous value.
pub struct Change {
    pub arrow: &'static str,
    pub text: String,
    /// `up`/`down`/`same`, and `good`/`bad` by whether the move is an improvement.
    pub class: String,
    pub previous: Option<Num>,
}

/// How a change is told.
#[derive(Clone, Copy)]
enum Diff {
    /// The difference, in the value's own unit.
    Same,
    /// A ratio's difference in percentage points.
    Points,
}

#[allow(clippy::too_many_arguments)]
fn change(
    t: &Text,
    path: &[String],
    now: Option<f64>,
    prev: Option<f64>,
    show: &dyn Fn(f64) -> String,
    diff: Diff,
    higher_is_better: bool,
) -> Change {
    let mut key = vec!["previous".to_string()];
    key.extend_from_slice(path);
    let previous = prev.map(|p| num(&key, p, show(p)));
    let (Some(now), Some(prev)) = (now, prev) else {
        return Change { arrow: "—", text: String::new(), class: "none".into(), previous };
    };
    let d = now - prev;
    let text = match diff {
        Diff::Same => show(d.abs()),
        Diff::Points => format!("{:.1} {}", d.abs() * 100.0, t.points),
    };
    let (arrow, dir) = if d > 0.0 {
        ("▲", "up")
    } else if d < 0.0 {
        ("▼", "down")
    } else {
        ("=", "same")
    };
    let verdict = match (d > 0.0, d < 0.0) {
        (false, false) => "",
        (up, _) if up == higher_is_better => " good",
        _ => " bad",
    };
    Change { arrow, text: if d == 0.0 { String::new() } else { text }, class: format!("{dir}{verdict}"), previous }
}

/// Acquisition cost and cost per lead in one currency, for a KPI tile.
pub struct AcquisitionTile {
    pub currency: String,
    pub cac: Option<Num>,
    pub cac_change: Change,
    pub per_lead: Option<Num>,
    pub per_lead_change: Change,
    pub spend: Num,
}

/// A satisfaction KPI tile: the score, its change and the responses.
pub struct SatisfactionTile {
    pub value: Option<Num>,
    pub change: Change,
    pub responses: Num,
}

/// A column heading of the breakdown table: a link that sorts by it.
pub struct Heading {
    pub text: &'static str,
    pub href: String,
    /// `▲`/`▼` on the column the table is sorted by.
    pub sorted: &'static str,
}

/// One cell: its numbers (several currencies, or none), and `best`/`worst`.
pub struct Cell {
    pub nums: Vec<Num>,
    pub mark: &'static str,
}

pub struct SegmentLine {
    pub segment: String,
    pub catch_all: bool,
    pub cells: Vec<Cell>,
}

pub struct BreakdownTable {
    pub dimensions: Vec<Link>,
    pub headings: Vec<Heading>,
    pub rows: Vec<SegmentLine>,
    pub currency: String,
}

/// One bar of the funnel chart, in SVG user units.
pub struct Bar {
    pub stage: String,
    pub label: String,
    pub y: f64,
    pub width: f64,
    pub count: Num,
    /// On the period basis (cohorts have no previous value).
    pub count_change: Option<Change>,
    pub step: Option<Num>,
    pub step_change: Option<Change>,
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
    pub p50_change: Change,
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
    pub won_change: Change,
    pub lost: Num,
    pub lost_change: Change,
    pub win_rate: Option<Num>,
    pub win_rate_change: Change,
    pub ttc_p50: Option<Num>,
    pub ttc_p50_change: Change,
    pub ttc_p90: Option<Num>,
    pub acquisition: Vec<AcquisitionTile>,
    pub csat: SatisfactionTile,
    pub nps: SatisfactionTile,
    pub breakdown: Option<BreakdownTable>,
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
    /// The breakdown table's dimension; none when breakdowns are off.
    pub dimension: Option<Dimension>,
    pub sort: Column,
    pub order: Order,
}

impl Selection {
    /// The page's URL for this selection.
    pub fn href(&self) -> String {
        let mut q =
            vec![("pipeline", self.pipeline.as_str()), ("window", &self.window), ("basis", self.basis.as_str())];
        if let Some(d) = self.dimension {
            q.extend([("dimension", d.as_str()), ("sort", self.sort.as_str()), ("order", self.order.as_str())]);
        }
        if self.lang_in_url {
            q.push(("lang", self.lang.as_str()));
        }
        format!("/?{}", serde_urlencoded::to_string(q).expect("plain pairs encode"))
    }

    /// The URL of this selection changed by `f`.
    fn href_with(&self, f: impl FnOnce(&mut Selection)) -> String {
        let mut s = self.clone();
        f(&mut s);
        s.href()
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
    pub fn new(v: &FunnelView, config: &Config, sel: &Selection, ready: bool, now_ms: i64) -> ViewTemplate {
        let t = sel.lang.text();
        let zh = sel.lang == Lang::Zh;
        let p = config.pipeline(&v.pipeline).expect("view of a configured pipeline");
        let prev = v.previous.as_ref();
        let ratio = |r: f64| percent(r);
        let count = |c: f64| number(c);
        let secs = move |s: f64| duration(s, zh);
        let max = v.stages.iter().map(|s| s.count).fold(0.0, f64::max);
        let bars = v
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = |k: &str| ["stages", s.stage.as_str(), k].map(String::from);
                // On the period basis every step has its previous value, or "—" without a previous period.
                let before = prev.and_then(|pv| pv.stages.iter().find(|b| b.stage == s.stage));
                let period = v.basis == Basis::Period;
                Bar {
                    count_change: period.then(|| {
                        change(t, &key("count"), Some(s.count), before.map(|b| b.count), &count, Diff::Same, true)
                    }),
                    step_change: (period && i + 1 < v.stages.len()).then(|| {
                        let was = before.and_then(|b| b.step_conversion);
                        change(t, &key("step_conversion"), s.step_conversion, was, &ratio, Diff::Points, true)
                    }),
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
                let pair = format!("{}>{}", tr.from_stage, tr.to_stage);
                let was = prev
                    .and_then(|pv| {
                        pv.transitions.iter().find(|b| b.from_stage == tr.from_stage && b.to_stage == tr.to_stage)
                    })
                    .and_then(|b| b.p50);
                TransitionRow {
                    p50_change: change(
                        t,
                        &["transitions".to_string(), pair, "p50".into()],
                        tr.p50,
                        was,
                        &secs,
                        Diff::Same,
                        false,
                    ),
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
        let path = |k: &str| vec![k.to_string()];
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
            won_change: change(
                t,
                &path("won_deals"),
                Some(v.won_deals),
                prev.map(|p| p.won_deals),
                &count,
                Diff::Same,
                true,
            ),
            lost: num(&["lost_deals"], v.lost_deals, number(v.lost_deals)),
            lost_change: change(
                t,
                &path("lost_deals"),
                Some(v.lost_deals),
                prev.map(|p| p.lost_deals),
                &count,
                Diff::Same,
                false,
            ),
            win_rate: v.win_rate.map(|r| num(&["win_rate"], r, percent(r))),
            win_rate_change: change(
                t,
                &path("win_rate"),
                v.win_rate,
                prev.and_then(|p| p.win_rate),
                &ratio,
                Diff::Points,
                true,
            ),
            ttc_p50: v.time_to_close_p50.map(|s| num(&["time_to_close_p50"], s, duration(s, zh))),
            ttc_p50_change: change(
                t,
                &path("time_to_close_p50"),
                v.time_to_close_p50,
                prev.and_then(|p| p.time_to_close_p50),
                &secs,
                Diff::Same,
                false,
            ),
            acquisition: acquisition_tiles(t, v),
            csat: satisfaction_tile(t, v, "csat"),
            nps: satisfaction_tile(t, v, "nps"),
            breakdown: v.breakdown.as_ref().map(|b| breakdown_table(t, config, sel, b, zh)),
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
                href: sel.href_with(|s| s.pipeline = p.id.clone()),
                text: p.id.clone(),
                current: p.id == sel.pipeline,
            })
            .collect();
        let windows = config
            .windows
            .iter()
            .map(|w| Link {
                href: sel.href_with(|s| s.window = w.label.clone()),
                text: w.label.clone(),
                current: w.label == sel.window,
            })
            .collect();
        let bases = [(Basis::Period, t.period), (Basis::Cohort, t.cohort)]
            .into_iter()
            .map(|(b, text)| Link {
                href: sel.href_with(|s| s.basis = b),
                text: text.to_string(),
                current: b == sel.basis,
            })
            .collect();
        let langs = [(Lang::En, "English"), (Lang::Zh, "中文")]
            .into_iter()
            .map(|(l, text)| Link {
                href: sel.href_with(|s| {
                    s.lang = l;
                    s.lang_in_url = true;
                }),
                text: text.to_string(),
                current: l == sel.lang,
            })
            .collect();
        PageTemplate { t, pipeline: sel.pipeline.clone(), pipelines, windows, bases, langs, view }
    }
}

/// A money amount for people: rounded to whole units below 1,000 only when whole.
fn money(v: f64, currency: &str) -> String {
    let v = if v.abs() >= 100.0 { v.round() } else { (v * 100.0).round() / 100.0 };
    let text = if v.fract() == 0.0 { number(v) } else { format!("{v:.2}") };
    format!("{text} {currency}")
}

fn acquisition_tiles(t: &Text, v: &FunnelView) -> Vec<AcquisitionTile> {
    v.acquisition
        .iter()
        .map(|a| {
            let c = a.currency.as_str();
            let key = |k: &str| vec!["acquisition".to_string(), c.to_string(), k.to_string()];
            let was = v.previous.as_ref().and_then(|p| p.acquisition.iter().find(|b| b.currency == a.currency));
            let show = |x: f64| money(x, c);
            // A cost and its change: lower is better.
            let cost = |k: &str, now: Option<f64>, prev: Option<f64>| {
                (now.map(|x| num(&key(k), x, show(x))), change(t, &key(k), now, prev, &show, Diff::Same, false))
            };
            let (cac, cac_change) = cost(
                "customer_acquisition_cost",
                a.customer_acquisition_cost,
                was.and_then(|b| b.customer_acquisition_cost),
            );
            let (per_lead, per_lead_change) = cost("cost_per_lead", a.cost_per_lead, was.and_then(|b| b.cost_per_lead));
            AcquisitionTile {
                currency: c.to_string(),
                cac,
                cac_change,
                per_lead,
                per_lead_change,
                spend: num(&key("spend"), a.spend, money(a.spend, c)),
            }
        })
        .collect()
}

fn satisfaction_tile(t: &Text, v: &FunnelView, survey: &str) -> SatisfactionTile {
    let pick = |s: &super::view::Satisfaction| match survey {
        "csat" => (s.csat, s.csat_responses),
        _ => (s.nps, s.nps_responses),
    };
    let (value, responses) = pick(&v.satisfaction);
    let was = v.previous.as_ref().and_then(|p| pick(&p.satisfaction).0);
    let key = |k: &str| vec!["satisfaction".to_string(), k.to_string()];
    let responses_key = format!("{survey}_responses");
    let (show, diff): (&dyn Fn(f64) -> String, Diff) =
        if survey == "csat" { (&|r| percent(r), Diff::Points) } else { (&|x| format!("{x:.1}"), Diff::Same) };
    SatisfactionTile {
        value: value.map(|x| num(&key(survey), x, show(x))),
        change: change(t, &key(survey), value, was, show, diff, true),
        responses: num(&key(&responses_key), responses, number(responses)),
    }
}

fn breakdown_table(t: &Text, config: &Config, sel: &Selection, b: &Breakdown, zh: bool) -> BreakdownTable {
    let dimensions = config
        .breakdowns
        .dimensions
        .iter()
        .map(|&d| Link {
            href: sel.href_with(|s| s.dimension = Some(d)),
            text: t.dimension(d).to_string(),
            current: Some(d) == sel.dimension,
        })
        .collect();
    let headings = Column::ALL
        .iter()
        .map(|&c| {
            let order = if c == b.sort { b.order.flip() } else { c.first_order() };
            Heading {
                text: t.column(c),
                href: sel.href_with(|s| {
                    s.sort = c;
                    s.order = order;
                }),
                sorted: match (c == b.sort, b.order) {
                    (false, _) => "",
                    (true, Order::Asc) => "▲",
                    (true, Order::Desc) => "▼",
                },
            }
        })
        .collect();
    let rows = b
        .segments
        .iter()
        .map(|r| {
            let key = |k: &str| vec!["breakdown".to_string(), "segments".into(), r.segment.clone(), k.to_string()];
            let one = |k: &str, x: Option<f64>, show: &dyn Fn(f64) -> String| x.map(|x| num(&key(k), x, show(x)));
            let amounts = |k: &str, v: &[Amount]| -> Vec<Num> {
                v.iter()
                    .map(|a| {
                        let mut path = key(k);
                        path.extend([a.currency.clone(), "amount".into()]);
                        num(&path, a.amount, money(a.amount, &a.currency))
                    })
                    .collect()
            };
            let cells = Column::ALL[1..]
                .iter()
                .map(|&c| {
                    let nums: Vec<Num> = match c {
                        Column::Segment => Vec::new(),
                        Column::NewDeals => one("new_deals", Some(r.new_deals), &|x| number(x)).into_iter().collect(),
                        Column::WonDeals => one("won_deals", Some(r.won_deals), &|x| number(x)).into_iter().collect(),
                        Column::WinRate => one("win_rate", r.win_rate, &|x| percent(x)).into_iter().collect(),
                        Column::CohortConversion => {
                            one("cohort_conversion", r.cohort_conversion, &|x| percent(x)).into_iter().collect()
                        }
                        Column::TimeToCloseP50 => {
                            one("time_to_close_p50", r.time_to_close_p50, &|x| duration(x, zh)).into_iter().collect()
                        }
                        Column::OpenAmount => amounts("open_amount", &r.open_amount),
                        Column::Spend => amounts("spend", &r.spend),
                        Column::CustomerAcquisitionCost => {
                            amounts("customer_acquisition_cost", &r.customer_acquisition_cost)
                        }
                        Column::Nps => one("nps", r.nps, &|x| format!("{x:.1}")).into_iter().collect(),
                    };
                    let mark = b.marks.iter().find(|m| m.column == c).map_or("", |m| {
                        if m.best == r.segment {
                            "best"
                        } else if m.worst == r.segment {
                            "worst"
                        } else {
                            ""
                        }
                    });
                    Cell { nums, mark }
                })
                .collect();
            SegmentLine { segment: r.segment.clone(), catch_all: r.is_catch_all(), cells }
        })
        .collect();
    BreakdownTable { dimensions, headings, rows, currency: b.currency.clone() }
}
