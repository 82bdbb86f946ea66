//! The dashboard's view of one snapshot: every number the page and
//! `/api/funnel` show, looked up in the snapshot's metric families, so the
//! page, the JSON API and `/metrics` cannot disagree. Nothing here
//! computes business numbers beyond reading them and shares of them.

use serde::Serialize;

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
    pub freshness: Freshness,
}

/// Label lookups over one snapshot.
struct Lookup<'a>(&'a Snapshot);

impl<'a> Lookup<'a> {
    /// Samples of `name` whose labels include every pair of `want`.
    fn samples<'q>(&self, name: &'q str, want: &'q [(&'q str, &'q str)]) -> impl Iterator<Item = &'a Sample> + 'q
    where
        'a: 'q,
    {
        self.0
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(move |s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
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

impl FunnelView {
    pub fn build(snap: &Snapshot, p: &Pipeline, window: &str, basis: Basis, freshness: Freshness) -> FunnelView {
        let l = Lookup(snap);
        let pw = [("pipeline", p.id.as_str()), ("window", window)];
        let (count_metric, ratio_metric) = match basis {
            Basis::Period => ("crm_funnel_stage_entries", "crm_funnel_period_conversion_ratio"),
            Basis::Cohort => ("crm_funnel_cohort_deals", "crm_funnel_cohort_conversion_ratio"),
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
                    l.value("crm_funnel_transition_duration_quantile_seconds", &want)
                };
                let mut cumulative: Vec<(f64, &str, f64)> = l
                    .samples("crm_funnel_transition_duration_seconds_bucket", &t)
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
                    count: l.value("crm_funnel_transition_duration_seconds_count", &t).unwrap_or(0.0),
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
                    .by("crm_funnel_open_amount", &ps, "currency")
                    .into_iter()
                    .map(|n| Amount { currency: n.name, amount: n.count })
                    .collect();
                amounts.sort_by(|a, b| a.currency.cmp(&b.currency));
                OpenStage {
                    stage: s.id.clone(),
                    label: s.label.clone(),
                    count: l.value("crm_funnel_open_deals", &ps).unwrap_or(0.0),
                    amounts,
                    stuck: s.sla_ms.and_then(|_| l.value("crm_funnel_stuck_deals", &ps)),
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

        FunnelView {
            version: snap.version,
            pipeline: p.id.clone(),
            window: window.to_string(),
            basis,
            stages,
            won_deals: l.value("crm_funnel_won_deals", &pw).unwrap_or(0.0),
            lost_deals: l.value("crm_funnel_lost_deals", &pw).unwrap_or(0.0),
            win_rate: l.value("crm_funnel_win_rate_ratio", &pw),
            time_to_close_p50: l
                .value("crm_funnel_time_to_close_quantile_seconds", &[pw[0], pw[1], ("quantile", "0.5")]),
            time_to_close_p90: l
                .value("crm_funnel_time_to_close_quantile_seconds", &[pw[0], pw[1], ("quantile", "0.9")]),
            stuck_deals: open.iter().filter_map(|o| o.stuck).sum(),
            open_amount,
            transitions,
            open,
            lost_reasons: l.by("crm_funnel_lost_reason_deals", &pw, "reason"),
            activities: l.by("crm_funnel_activities", &pw, "activity"),
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
