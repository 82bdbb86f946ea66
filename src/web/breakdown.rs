//! The dashboard's breakdown table: a row per segment of one dimension
//! (docs/metrics.md §5.4) with the numbers of one pipeline and window,
//! sorted by any column, and each column's best and worst segment.

use std::cmp::Ordering;

use serde::Serialize;

use super::families as f;
use super::view::{Amount, Lookup};
use crate::config::{Dimension, Pipeline};
use crate::engine::Snapshot;

/// A column of the table, as named in the URL (`sort=`) and in `/api/funnel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Segment,
    NewDeals,
    WonDeals,
    WinRate,
    CohortConversion,
    TimeToCloseP50,
    OpenAmount,
    Spend,
    CustomerAcquisitionCost,
    Nps,
}

impl Column {
    pub const ALL: [Column; 10] = [
        Column::Segment,
        Column::NewDeals,
        Column::WonDeals,
        Column::WinRate,
        Column::CohortConversion,
        Column::TimeToCloseP50,
        Column::OpenAmount,
        Column::Spend,
        Column::CustomerAcquisitionCost,
        Column::Nps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Column::Segment => "segment",
            Column::NewDeals => "new_deals",
            Column::WonDeals => "won_deals",
            Column::WinRate => "win_rate",
            Column::CohortConversion => "cohort_conversion",
            Column::TimeToCloseP50 => "time_to_close_p50",
            Column::OpenAmount => "open_amount",
            Column::Spend => "spend",
            Column::CustomerAcquisitionCost => "customer_acquisition_cost",
            Column::Nps => "nps",
        }
    }

    pub fn parse(s: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Costs and durations are better low; every other number high.
    fn higher_is_better(self) -> bool {
        !matches!(self, Column::TimeToCloseP50 | Column::Spend | Column::CustomerAcquisitionCost)
    }

    /// The order a first click on the column's heading sorts in.
    pub fn first_order(self) -> Order {
        if self == Column::Segment { Order::Asc } else { Order::Desc }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }

    pub fn flip(self) -> Order {
        match self {
            Order::Asc => Order::Desc,
            Order::Desc => Order::Asc,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentRow {
    pub segment: String,
    /// Deals that entered the funnel in the window.
    pub new_deals: f64,
    pub won_deals: f64,
    pub win_rate: Option<f64>,
    /// Of the new deals, the share that has reached the won stage.
    pub cohort_conversion: Option<f64>,
    pub time_to_close_p50: Option<f64>,
    pub open_amount: Vec<Amount>,
    pub spend: Vec<Amount>,
    pub customer_acquisition_cost: Vec<Amount>,
    pub nps: Option<f64>,
}

impl SegmentRow {
    /// The segments that stand for many values or none: never ranked, always last.
    pub fn is_catch_all(&self) -> bool {
        self.segment == "other" || self.segment == "unspecified"
    }

    /// The number `column` sorts and compares by; amounts in `currency`
    /// (no spend or open deals in it is 0; no acquisition cost is none).
    pub fn number(&self, column: Column, currency: &str) -> Option<f64> {
        let amount = |v: &[Amount]| v.iter().find(|a| a.currency == currency).map(|a| a.amount);
        match column {
            Column::Segment => None,
            Column::NewDeals => Some(self.new_deals),
            Column::WonDeals => Some(self.won_deals),
            Column::WinRate => self.win_rate,
            Column::CohortConversion => self.cohort_conversion,
            Column::TimeToCloseP50 => self.time_to_close_p50,
            Column::OpenAmount => Some(amount(&self.open_amount).unwrap_or(0.0)),
            Column::Spend => Some(amount(&self.spend).unwrap_or(0.0)),
            Column::CustomerAcquisitionCost => amount(&self.customer_acquisition_cost),
            Column::Nps => self.nps,
        }
    }
}

/// A column's best and worst segment (among the ranked segments with a value, when they differ).
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub column: Column,
    pub best: String,
    pub worst: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    pub dimension: String,
    pub sort: Column,
    pub order: Order,
    /// The currency amount columns sort and compare by: the pipeline's.
    pub currency: String,
    /// In the order asked, `other` and then `unspecified` last.
    pub segments: Vec<SegmentRow>,
    pub marks: Vec<Mark>,
}

impl Breakdown {
    pub fn build(
        snap: &Snapshot,
        p: &Pipeline,
        window: &str,
        dimension: Dimension,
        sort: Column,
        order: Order,
    ) -> Self {
        let l = Lookup(snap);
        let dim = dimension.as_str();
        let pwd = [("pipeline", p.id.as_str()), ("window", window), ("dimension", dim)];
        let first = p.stages[0].id.as_str();
        let won = p.stages[p.won].id.as_str();
        let amounts = |name: &str, want: &[(&str, &str)]| -> Vec<Amount> {
            let mut v: Vec<Amount> = l
                .samples(name, want)
                .filter_map(|s| s.label("currency").map(|c| Amount { currency: c.to_string(), amount: s.value }))
                .collect();
            v.sort_by(|a, b| a.currency.cmp(&b.currency));
            v
        };
        let mut rows: Vec<SegmentRow> = l
            .samples(f::SEGMENT_COHORT_DEALS, &[pwd[0], pwd[1], pwd[2], ("funnel_stage", first)])
            .filter_map(|s| s.label("segment").map(|seg| (seg.to_string(), s.value)))
            .map(|(segment, new_deals)| {
                let w = [pwd[0], pwd[1], pwd[2], ("segment", segment.as_str())];
                let won_cohort = l.value(f::SEGMENT_COHORT_DEALS, &[w[0], w[1], w[2], w[3], ("funnel_stage", won)]);
                SegmentRow {
                    new_deals,
                    won_deals: l.value(f::SEGMENT_WON_DEALS, &w).unwrap_or(0.0),
                    win_rate: l.value(f::SEGMENT_WIN_RATE, &w),
                    cohort_conversion: won_cohort.filter(|_| new_deals > 0.0).map(|n| n / new_deals),
                    time_to_close_p50: l
                        .value(f::SEGMENT_TIME_TO_CLOSE_QUANTILE, &[w[0], w[1], w[2], w[3], ("quantile", "0.5")]),
                    open_amount: amounts(f::SEGMENT_OPEN_AMOUNT, &[w[0], w[2], w[3]]),
                    spend: amounts(f::SEGMENT_SPEND, &w),
                    customer_acquisition_cost: amounts(f::SEGMENT_ACQUISITION_COST, &w),
                    nps: l.value(f::SEGMENT_NPS, &w),
                    segment,
                }
            })
            .collect();
        let currency = p.currency.as_str();
        rows.sort_by(|a, b| {
            let last = |r: &SegmentRow| match r.segment.as_str() {
                "other" => 1,
                "unspecified" => 2,
                _ => 0,
            };
            let ordered = |o: Ordering| if order == Order::Desc { o.reverse() } else { o };
            let by_column = match (sort, a.number(sort, currency), b.number(sort, currency)) {
                (Column::Segment, _, _) => ordered(a.segment.cmp(&b.segment)),
                (_, Some(x), Some(y)) => ordered(x.total_cmp(&y)),
                // Rows without the number come after those with it, whichever the order.
                (_, Some(_), None) => Ordering::Less,
                (_, None, Some(_)) => Ordering::Greater,
                (_, None, None) => Ordering::Equal,
            };
            last(a).cmp(&last(b)).then(by_column).then_with(|| a.segment.cmp(&b.segment))
        });
        let marks = Column::ALL[1..]
            .iter()
            .filter_map(|&column| {
                let valued =
                    rows.iter().filter(|r| !r.is_catch_all()).filter_map(|r| Some((r.number(column, currency)?, r)));
                let mut valued: Vec<(f64, &SegmentRow)> = valued.collect();
                valued.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.segment.cmp(&b.1.segment)));
                let (low, high) = (valued.first()?, valued.last()?);
                if low.0 == high.0 {
                    return None;
                }
                let (best, worst) = if column.higher_is_better() { (high, low) } else { (low, high) };
                Some(Mark { column, best: best.1.segment.clone(), worst: worst.1.segment.clone() })
            })
            .collect();
        Breakdown { dimension: dim.to_string(), sort, order, currency: currency.to_string(), segments: rows, marks }
    }
}
