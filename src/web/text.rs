//! The dashboard's UI text in English and Simplified Chinese. Business
//! names (stage labels, reasons, activity kinds) come from the data and are
//! never translated.

use axum::http::HeaderMap;
use serde::Serialize;

use super::breakdown::Column;
use crate::config::Dimension;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The first of the `Accept-Language` preferences we speak; English otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        let accept = headers.get("accept-language").and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut prefs: Vec<(f32, &str)> = accept
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.parse().ok()).unwrap_or(1.0);
                Some((q, tag))
            })
            .collect();
        prefs.sort_by(|a, b| b.0.total_cmp(&a.0));
        prefs
            .iter()
            .find_map(|(_, tag)| {
                let tag = tag.to_ascii_lowercase();
                if tag.starts_with("zh") {
                    Some(Lang::Zh)
                } else if tag.starts_with("en") {
                    Some(Lang::En)
                } else {
                    None
                }
            })
            .unwrap_or(Lang::En)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }
}

pub struct Text {
    pub html_lang: &'static str,
    pub title: &'static str,
    pub pipeline: &'static str,
    pub window: &'static str,
    pub basis: &'static str,
    pub period: &'static str,
    pub cohort: &'static str,
    pub period_definition: &'static str,
    pub cohort_definition: &'static str,
    pub funnel: &'static str,
    pub stage: &'static str,
    pub deals: &'static str,
    pub step_conversion: &'static str,
    pub from_first: &'static str,
    pub biggest_drop: &'static str,
    pub won_deals: &'static str,
    pub win_rate: &'static str,
    pub time_to_close: &'static str,
    pub open_pipeline: &'static str,
    pub stuck_deals: &'static str,
    pub cycle_time: &'static str,
    pub transition: &'static str,
    pub count: &'static str,
    pub distribution: &'static str,
    pub open_by_stage: &'static str,
    pub open_deals: &'static str,
    pub amount: &'static str,
    pub sla: &'static str,
    pub lost_reasons: &'static str,
    pub activities: &'static str,
    pub none: &'static str,
    pub evaluated_at: &'static str,
    pub last_event: &'static str,
    pub ago: &'static str,
    pub never: &'static str,
    pub ingested: &'static str,
    pub rejected: &'static str,
    pub stale: &'static str,
    pub not_ready: &'static str,
    pub live: &'static str,
    pub lost: &'static str,
    /// Percentage points, for a ratio's change.
    pub points: &'static str,
    pub previous: &'static str,
    pub acquisition_cost: &'static str,
    pub per_lead: &'static str,
    pub spend: &'static str,
    pub no_spend: &'static str,
    pub csat: &'static str,
    pub nps: &'static str,
    pub responses: &'static str,
    pub breakdown: &'static str,
    pub breakdown_note: &'static str,
    pub dimension_label: &'static str,
    /// In the order of [`Dimension::ALL`].
    pub dimensions: [&'static str; 4],
    /// In the order of [`Column::ALL`].
    pub columns: [&'static str; 10],
}

impl Text {
    pub fn dimension(&self, d: Dimension) -> &'static str {
        self.dimensions[Dimension::ALL.iter().position(|x| *x == d).expect("a dimension")]
    }

    pub fn column(&self, c: Column) -> &'static str {
        self.columns[Column::ALL.iter().position(|x| *x == c).expect("a column")]
    }
}

pub static EN: Text = Text {
    html_lang: "en",
    title: "Sales funnel",
    pipeline: "Pipeline",
    window: "Window",
    basis: "Basis",
    period: "Period flow",
    cohort: "Cohort",
    period_definition: "Period flow: each bar counts the deals that first reached that stage within the window (skipped stages count as reached).",
    cohort_definition: "Cohort: each bar counts the deals that entered the funnel within the window and how far they have got by now.",
    funnel: "Funnel",
    stage: "Stage",
    deals: "deals",
    step_conversion: "to next stage",
    from_first: "from first stage",
    biggest_drop: "largest drop-off",
    won_deals: "Won deals",
    win_rate: "Win rate",
    time_to_close: "Time to close p50 / p90",
    open_pipeline: "Open pipeline",
    stuck_deals: "Stuck deals",
    cycle_time: "Cycle time per step",
    transition: "Step",
    count: "Deals",
    distribution: "Distribution",
    open_by_stage: "Open pipeline by stage",
    open_deals: "Open deals",
    amount: "Amount",
    sla: "Stuck (over SLA)",
    lost_reasons: "Lost reasons",
    activities: "Activities",
    none: "none in this window",
    evaluated_at: "As of",
    last_event: "last event",
    ago: "ago",
    never: "never",
    ingested: "events ingested",
    rejected: "rejected",
    stale: "No new events for a while: the numbers may be out of date.",
    not_ready: "Loading events: the numbers are not complete yet.",
    live: "live",
    lost: "Lost deals",
    points: "pp",
    previous: "previous period",
    acquisition_cost: "Acquisition cost",
    per_lead: "per lead",
    spend: "spend",
    no_spend: "no spend in this window",
    csat: "CSAT (satisfied)",
    nps: "NPS",
    responses: "responses",
    breakdown: "Breakdown",
    breakdown_note: "Click a heading to sort. Best value of each column in green, worst in red (for time, spend and cost lower is better); amounts compare in the pipeline currency; other and unspecified stay last.",
    dimension_label: "By",
    dimensions: ["Channel", "Team", "Region", "Owner"],
    columns: [
        "Segment",
        "New deals",
        "Won",
        "Win rate",
        "New → won",
        "Time to close p50",
        "Open pipeline",
        "Spend",
        "CAC",
        "NPS",
    ],
};

pub static ZH: Text = Text {
    html_lang: "zh-CN",
    title: "销售漏斗",
    pipeline: "销售流程",
    window: "时间窗口",
    basis: "口径",
    period: "期间流量",
    cohort: "同期群",
    period_definition: "期间流量：每个阶段统计在该时间窗口内首次到达该阶段的商机数（跳过的阶段视为已到达）。",
    cohort_definition: "同期群：每个阶段统计在该时间窗口内进入漏斗的商机，以及它们至今推进到的阶段。",
    funnel: "漏斗",
    stage: "阶段",
    deals: "个商机",
    step_conversion: "到下一阶段",
    from_first: "相对首阶段",
    biggest_drop: "最大流失",
    won_deals: "赢单数",
    win_rate: "赢单率",
    time_to_close: "成交周期 p50 / p90",
    open_pipeline: "在途金额",
    stuck_deals: "停滞商机",
    cycle_time: "各阶段周期",
    transition: "阶段转化",
    count: "商机数",
    distribution: "分布",
    open_by_stage: "各阶段在途商机",
    open_deals: "在途商机",
    amount: "金额",
    sla: "停滞（超过时限）",
    lost_reasons: "输单原因",
    activities: "销售活动",
    none: "本窗口内没有",
    evaluated_at: "数据时间",
    last_event: "最新事件",
    ago: "前",
    never: "尚无",
    ingested: "已接收事件",
    rejected: "已拒绝",
    stale: "已有一段时间没有新事件：数据可能已过时。",
    not_ready: "正在加载事件：数据尚不完整。",
    live: "实时",
    lost: "输单数",
    points: "个百分点",
    previous: "上一周期",
    acquisition_cost: "获客成本",
    per_lead: "每线索",
    spend: "投入",
    no_spend: "本窗口内没有投入",
    csat: "客户满意度（满意占比）",
    nps: "净推荐值 NPS",
    responses: "份回复",
    breakdown: "分组对比",
    breakdown_note: "点击表头排序。每列最好的值为绿色、最差的为红色（周期、投入与成本越低越好）；金额按该流程的币种比较；other 与 unspecified 始终排在最后。",
    dimension_label: "按",
    dimensions: ["渠道", "团队", "区域", "负责人"],
    columns: [
        "分组",
        "新商机",
        "赢单",
        "赢单率",
        "新商机 → 赢单",
        "成交周期 p50",
        "在途金额",
        "投入",
        "获客成本",
        "NPS",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_we_speak() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("accept-language", v.parse().unwrap());
            m
        };
        assert_eq!(Lang::from_headers(&h("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(Lang::from_headers(&h("fr-FR, en;q=0.5, zh;q=0.4")), Lang::En);
        assert_eq!(Lang::from_headers(&h("de, zh-TW;q=0.7")), Lang::Zh);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }
}
