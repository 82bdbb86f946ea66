//! The dashboard's view of one snapshot: every number the page and
//! `/api/funnel` show, looked up in the snapshot's metric families, so the
//! page, the JSON API and `/metrics` cannot disagree. Nothing here
//! computes business numbers beyond reading them and shares of them.

use serde::Serialize;

use super::breakdown::Breakdown;
use super::families as f;
use crate::config::Pipeline;
use crate::engine::Snapshot;
use crate::export::Sample;

/// Which count the funnel shows (docs/metrics.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Deals that first reached each stage in the window.
    Period,
    /// Deals that entered the funnel in the window, by how far they got.
    Cohort,
}

impl Basis {
    pub fn parse(s: &str) -> Option<Basis> {
        match s {
            "period" => Some(Basis::Period),
            "cohort" => Some(Basis::Cohort),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Period => "period",
            Basis::Cohort => "cohort",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageBar {
    pub stage: String,
    pub label: String,
    pub count: f64,
    /// Conversion to the next stage, as exported (absent when this stage's count is 0).
    pub step_conversion: Option<f64>,
    /// This stage's count over the first stage's.
    pub from_first: Option<f64>,
    /// The step out of this stage loses the largest share before the won stage.
    pub biggest_drop: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Amount {
    pub currency: String,
    pub amount: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Upper bound label as exported (`"3600"`, …, `"+Inf"`).
    pub le: String,
    /// Observations in this bucket alone (not cumulative).
    pub count: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from_stage: String,
    pub to_stage: String,
    pub from_label: String,
    pub to_label: String,
    pub count: f64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenStage {
    pub stage: String,
    pub label: String,
    pub count: f64,
    pub amounts: Vec<Amount>,
    /// Present for stages with an SLA.
    pub stuck: Option<f64>,
    pub sla_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub name: String,
    pub count: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// T of the snapshot (ms); absent before the first refresh.
    pub evaluated_at_ms: Option<i64>,
    /// Newest `occurred_at` held (ms).
    pub last_event_ms: Option<i64>,
    /// Wall time an event was last accepted (ms).
    pub last_ingest_ms: Option<i64>,
    pub events_ingested: f64,
    pub events_rejected: f64,
    /// No event arrived for longer than `stale_after`.
    pub stale: bool,
}

/// Acquisition spend and cost in one currency (docs/metrics.md §5.2).
#[derive(Debug, Clone, Serialize)]
pub struct Acquisition {
    pub currency: String,
    pub spend: f64,
    pub cost_per_lead: Option<f64>,
    pub customer_acquisition_cost: Option<f64>,
}

/// Satisfaction in the window (docs/metrics.md §5.3): absent ratios had no responses.
#[derive(Debug, Clone, Serialize)]
pub struct Satisfaction {
    pub csat: Option<f64>,
    pub csat_responses: f64,
    pub nps: Option<f64>,
    pub nps_responses: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousStage {
    pub stage: String,
    pub count: f64,
    pub step_conversion: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousTransition {
    pub from_stage: String,
    pub to_stage: String,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

/// The previous period's values (docs/metrics.md §5.5: the same numbers at
/// `T − W` over `(T − 2W, T − W]`), under the names of the current ones.
/// Cohort numbers have none, so `stages` is empty on the cohort basis.
#[derive(Debug, Clone, Serialize)]
pub struct Previous {
    pub stages: Vec<PreviousStage>,
    pub won_deals: f64,
    pub lost_deals: f64,
    pub win_rate: Option<f64>,
    pub time_to_close_p50: Option<f64>,
    pub time_to_close_p90: Option<f64>,
    pub transitions: Vec<PreviousTransition>,
    pub acquisition: Vec<Acquisition>,
    pub satisfaction: Satisfaction,
}

/// Everything the dashboard shows for one pipeline, window and basis.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelView {
    pub version: u64,
    pub pipeline: String,
    pub window: String,
    pub basis: Basis,
    pub stages: Vec<StageBar>,
    pub won_deals: f64,
    pub lost_deals: f64,
    pub win_rate: Option<f64>,
    pub time_to_close_p50: Option<f64>,
    pub time_to_close_p90: Option<f64>,
    pub open_amount: Vec<Amount>,
    pub stuck_deals: f64,
    pub transitions: Vec<Transition>,
    pub open: Vec<OpenStage>,
    pub lost_reasons: Vec<Named>,
    pub activities: Vec<Named>,
    /// By currency, those with spend in the window.
    pub acquisition: Vec<Acquisition>,
    pub satisfaction: Satisfaction,
    /// Absent when the window has no previous period (twice it exceeds the retention).
    pub previous: Option<Previous>,
    /// Absent when breakdowns are off.
    pub breakdown: Option<Breakdown>,
    pub freshness: Freshness,
}

/// Label lookups over one snapshot.
pub struct Lookup<'a>(pub &'a Snapshot);

impl<'a> Lookup<'a> {
    /// Samples of `name` whose labels include every pair of `want`.
    pub fn samples<'q>(&self, name: &'q str, want: &'q [(&'q str, &'q str)]) -> impl Iterator<Item = &'a Sample> + 'q
    where
        'a: 'q,
    {
        self.0
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(move |s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.samples(name, want).next().map(|s| s.value)
    }

    /// (label value, sample value) of `name` by `label`, largest first, ties by name.
    fn by(&self, name: &str, want: &[(&str, &str)], label: &str) -> Vec<Named> {
        let mut v: Vec<Named> = self
            .samples(name, want)
            .filter_map(|s| s.label(label).map(|n| Named { name: n.to_string(), count: s.value }))
            .collect();
        v.sort_by(|a, b| b.count.total_cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

impl Lookup<'_> {
    /// Spend, cost per lead and acquisition cost by currency, from the
    /// three families named (current or previous), for the currencies with spend.
    fn acquisition(&self, pw: &[(&str, &str); 2], [spend, per_lead, cac]: [&str; 3]) -> Vec<Acquisition> {
        let mut out: Vec<Acquisition> = self
            .by(spend, pw, "currency")
            .into_iter()
            .map(|n| {
                let pwc = [pw[0], pw[1], ("currency", n.name.as_str())];
                Acquisition {
                    cost_per_lead: self.value(per_lead, &pwc),
                    customer_acquisition_cost: self.value(cac, &pwc),
                    currency: n.name,
                    spend: n.count,
                }
            })
            .collect();
        out.sort_by(|a, b| a.currency.cmp(&b.currency));
        out
    }

    /// The previous period's values, if the window has a previous period
    /// (then the previous won deals always have a series).
    fn previous(&self, p: &Pipeline, pw: &[(&str, &str); 2], basis: Basis) -> Option<Previous> {
        let won_deals = self.value(f::PREVIOUS_WON_DEALS, pw)?;
        let stages = match basis {
            Basis::Cohort => Vec::new(),
            Basis::Period => p
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| PreviousStage {
                    stage: s.id.clone(),
                    count: self
                        .value(f::PREVIOUS_STAGE_ENTRIES, &[pw[0], pw[1], ("funnel_stage", &s.id)])
                        .unwrap_or(0.0),
                    step_conversion: p.stages.get(i + 1).and_then(|next| {
                        let want = [pw[0], pw[1], ("from_stage", s.id.as_str()), ("to_stage", next.id.as_str())];
                        self.value(f::PREVIOUS_PERIOD_CONVERSION, &want)
                    }),
                })
                .collect(),
        };
        let transitions = p
            .stages
            .windows(2)
            .map(|pair| {
                let q = |q| {
                    let want = [
                        pw[0],
                        pw[1],
                        ("from_stage", pair[0].id.as_str()),
                        ("to_stage", pair[1].id.as_str()),
                        ("quantile", q),
                    ];
                    self.value(f::PREVIOUS_TRANSITION_QUANTILE, &want)
                };
                PreviousTransition {
                    from_stage: pair[0].id.clone(),
                    to_stage: pair[1].id.clone(),
                    p50: q("0.5"),
                    p90: q("0.9"),
                }
            })
            .collect();
        let responses =
            |survey| self.value(f::PREVIOUS_FEEDBACK_RESPONSES, &[pw[0], pw[1], ("survey", survey)]).unwrap_or(0.0);
        Some(Previous {
            stages,
            won_deals,
            lost_deals: self.value(f::PREVIOUS_LOST_DEALS, pw).unwrap_or(0.0),
            win_rate: self.value(f::PREVIOUS_WIN_RATE, pw),
            time_to_close_p50: self.value(f::PREVIOUS_TIME_TO_CLOSE_QUANTILE, &[pw[0], pw[1], ("quantile", "0.5")]),
            time_to_close_p90: self.value(f::PREVIOUS_TIME_TO_CLOSE_QUANTILE, &[pw[0], pw[1], ("quantile", "0.9")]),
            transitions,
            acquisition: self.acquisition(
                pw,
                [f::PREVIOUS_ACQUISITION_SPEND, f::PREVIOUS_COST_PER_LEAD, f::PREVIOUS_ACQUISITION_COST],
            ),
            satisfaction: Satisfaction {
                csat: self.value(f::PREVIOUS_CSAT, pw),
                csat_responses: responses("csat"),
                nps: self.value(f::PREVIOUS_NPS, pw),
                nps_responses: responses("nps"),
            },
        })
    }
}

impl FunnelView {
    pub fn build(
        snap: &Snapshot,
        p: &Pipeline,
        window: &str,
        basis: Basis,
        breakdown: Option<Breakdown>,
        freshness: Freshness,
    ) -> FunnelView {
        let l = Lookup(snap);
        let pw = [("pipeline", p.id.as_str()), ("window", window)];
        let (count_metric, ratio_metric) = match basis {
            Basis::Period => (f::STAGE_ENTRIES, f::PERIOD_CONVERSION),
            Basis::Cohort => (f::COHORT_DEALS, f::COHORT_CONVERSION),
        };
        let mut stages: Vec<StageBar> = p
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let count = l.value(count_metric, &[pw[0], pw[1], ("funnel_stage", &s.id)]).unwrap_or(0.0);
                let step_conversion = p.stages.get(i + 1).and_then(|next| {
                    l.value(ratio_metric, &[pw[0], pw[1], ("from_stage", &s.id), ("to_stage", &next.id)])
                });
                StageBar {
                    stage: s.id.clone(),
                    label: s.label.clone(),
                    count,
                    step_conversion,
                    from_first: None,
                    biggest_drop: false,
                }
            })
            .collect();
        let first = stages.first().map_or(0.0, |s| s.count);
        for s in &mut stages {
            s.from_first = (first > 0.0).then(|| s.count / first);
        }
        let drop = stages[..p.won]
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.step_conversion.filter(|&c| c < 1.0).map(|c| (i, c)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = drop {
            stages[i].biggest_drop = true;
        }

        let transitions = p
            .stages
            .windows(2)
            .map(|pair| {
                let t = [pw[0], pw[1], ("from_stage", pair[0].id.as_str()), ("to_stage", pair[1].id.as_str())];
                let quantile = |q| {
                    let want = [t[0], t[1], t[2], t[3], ("quantile", q)];
                    l.value(f::TRANSITION_QUANTILE, &want)
                };
                let mut cumulative: Vec<(f64, &str, f64)> = l
                    .samples(&format!("{}_bucket", f::TRANSITION_DURATION), &t)
                    .filter_map(|s| s.label("le").map(|le| (le.parse().unwrap_or(f64::INFINITY), le, s.value)))
                    .collect();
                cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut below = 0.0;
                let buckets = cumulative
                    .iter()
                    .map(|&(_, le, c)| {
                        let b = Bucket { le: le.to_string(), count: c - below };
                        below = c;
                        b
                    })
                    .collect();
                Transition {
                    from_stage: pair[0].id.clone(),
                    to_stage: pair[1].id.clone(),
                    from_label: pair[0].label.clone(),
                    to_label: pair[1].label.clone(),
                    count: l.value(&format!("{}_count", f::TRANSITION_DURATION), &t).unwrap_or(0.0),
                    p50: quantile("0.5"),
                    p90: quantile("0.9"),
                    buckets,
                }
            })
            .collect();

        let open: Vec<OpenStage> = p
            .stages
            .iter()
            .take(p.won)
            .map(|s| {
                let ps = [("pipeline", p.id.as_str()), ("funnel_stage", s.id.as_str())];
                let mut amounts: Vec<Amount> = l
                    .by(f::OPEN_AMOUNT, &ps, "currency")
                    .into_iter()
                    .map(|n| Amount { currency: n.name, amount: n.count })
                    .collect();
                amounts.sort_by(|a, b| a.currency.cmp(&b.currency));
                OpenStage {
                    stage: s.id.clone(),
                    label: s.label.clone(),
                    count: l.value(f::OPEN_DEALS, &ps).unwrap_or(0.0),
                    amounts,
                    stuck: s.sla_ms.and_then(|_| l.value(f::STUCK_DEALS, &ps)),
                    sla_seconds: s.sla_ms.map(|ms| ms as f64 / 1000.0),
                }
            })
            .collect();
        let mut open_amount: Vec<Amount> = Vec::new();
        for a in open.iter().flat_map(|o| &o.amounts) {
            match open_amount.iter_mut().find(|t| t.currency == a.currency) {
                Some(t) => t.amount += a.amount,
                None => open_amount.push(a.clone()),
            }
        }
        open_amount.sort_by(|a, b| a.currency.cmp(&b.currency));
        let responses = format!("{}_count", f::FEEDBACK_SCORE);

        FunnelView {
            version: snap.version,
            pipeline: p.id.clone(),
            window: window.to_string(),
            basis,
            stages,
            won_deals: l.value(f::WON_DEALS, &pw).unwrap_or(0.0),
            lost_deals: l.value(f::LOST_DEALS, &pw).unwrap_or(0.0),
            win_rate: l.value(f::WIN_RATE, &pw),
            time_to_close_p50: l.value(f::TIME_TO_CLOSE_QUANTILE, &[pw[0], pw[1], ("quantile", "0.5")]),
            time_to_close_p90: l.value(f::TIME_TO_CLOSE_QUANTILE, &[pw[0], pw[1], ("quantile", "0.9")]),
            stuck_deals: open.iter().filter_map(|o| o.stuck).sum(),
            open_amount,
            transitions,
            open,
            lost_reasons: l.by(f::LOST_REASONS, &pw, "reason"),
            activities: l.by(f::ACTIVITIES, &pw, "activity"),
            acquisition: l.acquisition(&pw, [f::ACQUISITION_SPEND, f::COST_PER_LEAD, f::ACQUISITION_COST]),
            satisfaction: Satisfaction {
                csat: l.value(f::CSAT, &pw),
                csat_responses: l.value(&responses, &[pw[0], pw[1], ("survey", "csat")]).unwrap_or(0.0),
                nps: l.value(f::NPS, &pw),
                nps_responses: l.value(&responses, &[pw[0], pw[1], ("survey", "nps")]).unwrap_or(0.0),
            },
            previous: l.previous(p, &pw, basis),
            breakdown,
            freshness,
        }
    }
}

/// Thousands separators: 1234567 → "1,234,567"; fractions keep one digit.
pub fn number(v: f64) -> String {
    let rounded = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    let (int, frac) = rounded.split_once('.').map_or((rounded.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// A ratio as a percentage with one decimal: 0.41666 → "41.7 %".
pub fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// Seconds for people: "45 s", "12 min", "5.1 h", "3.2 d" (or in Chinese units).
pub fn duration(secs: f64, zh: bool) -> String {
    let units: [(&str, &str, f64); 4] =
        [(" d", " 天", 86_400.0), (" h", " 小时", 3_600.0), (" min", " 分钟", 60.0), (" s", " 秒", 1.0)];
    for (en, cn, size) in units {
        if secs.abs() >= size || size == 1.0 {
            let v = secs / size;
            let text = if v >= 10.0 || size == 1.0 || size == 60.0 { format!("{v:.0}") } else { format!("{v:.1}") };
            return format!("{text}{}", if zh { cn } else { en });
        }
    }
    unreachable!("the last unit always matches")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(999.0), "999");
        assert_eq!(number(-1234.5), "-1,234.5");
        assert_eq!(percent(0.416666), "41.7 %");
        assert_eq!(duration(3.2 * 86_400.0, false), "3.2 d");
        assert_eq!(duration(5.06 * 3_600.0, false), "5.1 h");
        assert_eq!(duration(720.0, false), "12 min");
        assert_eq!(duration(45.0, true), "45 秒");
        assert_eq!(duration(36.0 * 86_400.0, true), "36 天");
    }
}
