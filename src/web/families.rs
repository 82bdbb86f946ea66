//! The metric families the dashboard and `/api/funnel` read: the one place
//! that names them. A query directory may replace a built-in file; if it
//! drops or renames one of these, `funnelwatch check` says so
//! ([`missing`]) instead of the page quietly showing dashes.

pub const STAGE_ENTRIES: &str = "crm_funnel_stage_entries";
pub const PERIOD_CONVERSION: &str = "crm_funnel_period_conversion_ratio";
pub const COHORT_DEALS: &str = "crm_funnel_cohort_deals";
pub const COHORT_CONVERSION: &str = "crm_funnel_cohort_conversion_ratio";
/// A histogram: its samples are `_bucket` and `_count`.
pub const TRANSITION_DURATION: &str = "crm_funnel_transition_duration_seconds";
pub const TRANSITION_QUANTILE: &str = "crm_funnel_transition_duration_quantile_seconds";
pub const TIME_TO_CLOSE_QUANTILE: &str = "crm_funnel_time_to_close_quantile_seconds";
pub const WON_DEALS: &str = "crm_funnel_won_deals";
pub const LOST_DEALS: &str = "crm_funnel_lost_deals";
pub const WIN_RATE: &str = "crm_funnel_win_rate_ratio";
pub const LOST_REASONS: &str = "crm_funnel_lost_reason_deals";
pub const ACTIVITIES: &str = "crm_funnel_activities";
pub const OPEN_DEALS: &str = "crm_funnel_open_deals";
pub const OPEN_AMOUNT: &str = "crm_funnel_open_amount";
pub const STUCK_DEALS: &str = "crm_funnel_stuck_deals";
pub const ACQUISITION_SPEND: &str = "crm_funnel_acquisition_spend";
pub const COST_PER_LEAD: &str = "crm_funnel_cost_per_lead";
pub const ACQUISITION_COST: &str = "crm_funnel_customer_acquisition_cost";
/// A histogram: its `_count` is the responses per survey.
pub const FEEDBACK_SCORE: &str = "crm_funnel_feedback_score";
pub const CSAT: &str = "crm_funnel_csat_ratio";
pub const NPS: &str = "crm_funnel_net_promoter_score";

pub const SEGMENT_COHORT_DEALS: &str = "crm_funnel_segment_cohort_deals";
pub const SEGMENT_WON_DEALS: &str = "crm_funnel_segment_won_deals";
pub const SEGMENT_WIN_RATE: &str = "crm_funnel_segment_win_rate_ratio";
pub const SEGMENT_TIME_TO_CLOSE_QUANTILE: &str = "crm_funnel_segment_time_to_close_quantile_seconds";
pub const SEGMENT_OPEN_AMOUNT: &str = "crm_funnel_segment_open_amount";
pub const SEGMENT_SPEND: &str = "crm_funnel_segment_acquisition_spend";
pub const SEGMENT_ACQUISITION_COST: &str = "crm_funnel_segment_customer_acquisition_cost";
pub const SEGMENT_NPS: &str = "crm_funnel_segment_net_promoter_score";

/// The previous period's values (docs/metrics.md §5.5), not on `/metrics`.
pub const PREVIOUS_STAGE_ENTRIES: &str = "crm_funnel_previous_stage_entries";
pub const PREVIOUS_PERIOD_CONVERSION: &str = "crm_funnel_previous_period_conversion_ratio";
pub const PREVIOUS_TRANSITION_QUANTILE: &str = "crm_funnel_previous_transition_duration_quantile_seconds";
pub const PREVIOUS_TIME_TO_CLOSE_QUANTILE: &str = "crm_funnel_previous_time_to_close_quantile_seconds";
pub const PREVIOUS_WON_DEALS: &str = "crm_funnel_previous_won_deals";
pub const PREVIOUS_LOST_DEALS: &str = "crm_funnel_previous_lost_deals";
pub const PREVIOUS_WIN_RATE: &str = "crm_funnel_previous_win_rate_ratio";
pub const PREVIOUS_ACQUISITION_SPEND: &str = "crm_funnel_previous_acquisition_spend";
pub const PREVIOUS_COST_PER_LEAD: &str = "crm_funnel_previous_cost_per_lead";
pub const PREVIOUS_ACQUISITION_COST: &str = "crm_funnel_previous_customer_acquisition_cost";
/// Responses per survey: the previous value of [`FEEDBACK_SCORE`]'s `_count`.
pub const PREVIOUS_FEEDBACK_RESPONSES: &str = "crm_funnel_previous_feedback_responses";
pub const PREVIOUS_CSAT: &str = "crm_funnel_previous_csat_ratio";
pub const PREVIOUS_NPS: &str = "crm_funnel_previous_net_promoter_score";

const ALL: [&str; 42] = [
    STAGE_ENTRIES,
    PERIOD_CONVERSION,
    COHORT_DEALS,
    COHORT_CONVERSION,
    TRANSITION_DURATION,
    TRANSITION_QUANTILE,
    TIME_TO_CLOSE_QUANTILE,
    WON_DEALS,
    LOST_DEALS,
    WIN_RATE,
    LOST_REASONS,
    ACTIVITIES,
    OPEN_DEALS,
    OPEN_AMOUNT,
    STUCK_DEALS,
    ACQUISITION_SPEND,
    COST_PER_LEAD,
    ACQUISITION_COST,
    FEEDBACK_SCORE,
    CSAT,
    NPS,
    SEGMENT_COHORT_DEALS,
    SEGMENT_WON_DEALS,
    SEGMENT_WIN_RATE,
    SEGMENT_TIME_TO_CLOSE_QUANTILE,
    SEGMENT_OPEN_AMOUNT,
    SEGMENT_SPEND,
    SEGMENT_ACQUISITION_COST,
    SEGMENT_NPS,
    PREVIOUS_STAGE_ENTRIES,
    PREVIOUS_PERIOD_CONVERSION,
    PREVIOUS_TRANSITION_QUANTILE,
    PREVIOUS_TIME_TO_CLOSE_QUANTILE,
    PREVIOUS_WON_DEALS,
    PREVIOUS_LOST_DEALS,
    PREVIOUS_WIN_RATE,
    PREVIOUS_ACQUISITION_SPEND,
    PREVIOUS_COST_PER_LEAD,
    PREVIOUS_ACQUISITION_COST,
    PREVIOUS_FEEDBACK_RESPONSES,
    PREVIOUS_CSAT,
    PREVIOUS_NPS,
];

/// An error for every family the dashboard reads that no query makes.
pub fn missing(made: &[&str]) -> Vec<String> {
    ALL.iter()
        .filter(|name| !made.contains(name))
        .map(|name| {
            format!(
                "the dashboard reads the family {name}, which no query makes (a query file that replaces a built-in one must keep its metric name)"
            )
        })
        .collect()
}
