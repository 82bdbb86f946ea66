//! Synthetic CRM deal-event traffic for demos, benchmarks and tests: the deal
//! model (attributes, stage progression, losses, reopenings, activities,
//! satisfaction surveys, resent duplicates), the acquisition spend of each
//! lead channel, and their JSON encoding in the format of docs/metrics.md §1.
//!
//! Channels, teams and regions convert differently (referrals close, cold
//! calls mostly do not), a long sales cycle lowers the customer's scores, and
//! every channel's spend follows its leads, so the breakdowns tell a story.
//!
//! Determinism: each deal draws only from its own ChaCha stream (seed, deal
//! number), each day's spend from its own (seed, day), deals are numbered in
//! arrival order, and events leave in the total order (stream time, deal
//! number, index in deal; a day's spend after every deal). So the same
//! arguments give the same bytes however `advance` calls are split.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Pipeline;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Five reps per team, in `TEAMS` order, so a deal's team follows its owner.
#[rustfmt::skip]
const OWNERS: [&str; 20] = [
    "zhang.wei", "wang.fang", "li.na", "liu.yang", "chen.jie", "yang.li", "zhao.lei", "huang.min",
    "zhou.tao", "wu.xia", "xu.jing", "sun.hao", "ma.lin", "zhu.hong", "hu.bin", "guo.qiang",
    "he.yan", "lin.feng", "luo.hui", "gao.ming",
];
const TEAMS: [&str; 4] = ["enterprise", "mid-market", "smb", "channel"];
/// Median deal size per team, in cents of the pipeline currency.
const TEAM_MEDIAN: [f64; 4] = [50_000_000.0, 18_000_000.0, 5_000_000.0, 12_000_000.0];
const REGIONS: [&str; 5] = ["华东", "华北", "华南", "西部", "海外"];
const REGION_W: [f64; 5] = [0.32, 0.24, 0.2, 0.14, 0.1];
#[rustfmt::skip]
const SOURCES: [&str; 6] = ["website", "referral", "trade_show", "cold_call", "partner", "ads"];
const SOURCE_W: [f64; 6] = [0.3, 0.15, 0.1, 0.15, 0.1, 0.2];
/// How each channel's deals convert, against the funnel's `CONV`.
const SOURCE_LIFT: [f64; 6] = [1.0, 1.3, 1.1, 0.7, 1.15, 0.85];
/// How each team's and region's deals convert.
const TEAM_LIFT: [f64; 4] = [1.05, 1.0, 0.9, 1.1];
const REGION_LIFT: [f64; 5] = [1.05, 1.0, 1.0, 0.9, 0.95];
/// What a lead of each channel costs, in the pipeline currency's units:
/// referrals nearly nothing, trade shows a lot.
const SOURCE_CPL: [f64; 6] = [300.0, 60.0, 2500.0, 150.0, 900.0, 700.0];
/// Trade shows are paid per show (every two weeks), the others daily.
const SHOW_EVERY_DAYS: i64 = 14;
#[rustfmt::skip]
const REASONS: [&str; 8] = [
    "price", "competitor", "no_budget", "no_decision", "timing", "product_fit", "unresponsive",
    "internal_solution",
];
/// Early losses are mostly silence and fit; late ones are price and competition.
const REASON_W_EARLY: [f64; 8] = [1.0, 1.0, 2.0, 1.0, 2.0, 2.0, 3.0, 1.0];
const REASON_W_LATE: [f64; 8] = [3.0, 3.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0];
const ACTIVITIES: [&str; 6] = ["call", "email", "meeting", "demo", "visit", "wechat"];
const ACTIVITY_W: [f64; 6] = [3.0, 3.0, 2.0, 1.0, 1.0, 3.0];
/// Per-step conversion of a five-step funnel, stretched to the pipeline's pre-won stages.
const CONV: [f64; 5] = [0.75, 0.6, 0.55, 0.5, 0.6];
#[rustfmt::skip]
const KINDS: [&str; 10] = [
    "deal_created", "stage_changed", "deal_won", "deal_lost", "deal_reopened", "deal_updated",
    "activity", "feedback", "feedback", "spend",
];

/// Indexes `KINDS`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    #[default]
    Created,
    Changed,
    Won,
    Lost,
    Reopened,
    Updated,
    Activity,
    /// Feedback events, their score in `extra`.
    Csat,
    Nps,
    /// A channel's spend: no deal; its source in `extra`, the team on partner spend.
    Spend,
}

/// One scheduled event. The derived order is `(emit, deal, k)`, unique per event: its place
/// in the stream.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    emit: i64,
    deal: u64,
    k: u32,
    t: i64,
    id: u64,
    kind: Kind,
    pipe: u16,
    stage: Option<u16>,
    /// In cents, so it prints with exactly two decimals.
    amount: Option<i64>,
    owner: Option<u8>,
    /// team, region, source: only on `deal_created`.
    attrs: Option<[u8; 3]>,
    /// Lost reason or activity kind, by `kind`.
    extra: Option<u8>,
    /// 0 epoch ms, 1 "+08:00", 2 "Z".
    ts: u8,
    with_pipeline: bool,
    usd: bool,
}

struct Pipe {
    /// JSON-quoted ids, escaped once here rather than per event.
    id_json: String,
    stage_json: Vec<String>,
    is_default: bool,
    usd_native: bool,
    won: usize,
    conv: Vec<f64>,
    median_ms: Vec<f64>,
}

/// A seeded, endless stream of deal events; see the module doc for its invariant.
pub struct Generator {
    pipes: Vec<Pipe>,
    seed: u64,
    arrivals: ChaCha8Rng,
    start: i64,
    span: i64,
    deals: usize,
    /// Deals simulated so far; also the next deal's number.
    created: u64,
    /// Last order statistic of the in-span arrival times, in [0, 1).
    x: f64,
    next_arrival: Option<i64>,
    next_id: u64,
    heap: BinaryHeap<Reverse<Ev>>,
    timeline: Vec<Ev>,
    /// The next day whose spend is scheduled (days since the epoch).
    next_spend_day: i64,
}

impl Generator {
    /// A generator whose history covers (start_ms, start_ms + days*86_400_000]: exactly `deals`
    /// deals are created (entering the funnel) inside that span, at seeded random times; after
    /// the span, new deals keep arriving at the same average rate (deals/days per day).
    /// Same (pipelines, deals, days, seed, start_ms) => identical output, byte for byte.
    /// With `deals == 0` or `days == 0` nothing is ever generated.
    pub fn new(pipelines: &[Pipeline], deals: usize, days: u32, seed: u64, start_ms: i64) -> Self {
        assert!(!pipelines.is_empty(), "the generator needs a pipeline");
        let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let pipes = pipelines
            .iter()
            .map(|p| {
                let frac = |i: usize| i as f64 / p.won.saturating_sub(1).max(1) as f64;
                Pipe {
                    id_json: quote(&p.id),
                    stage_json: p.stages.iter().map(|s| quote(&s.id)).collect(),
                    is_default: p.id == "default",
                    usd_native: p.currency == "USD",
                    won: p.won,
                    conv: (0..p.won).map(|i| CONV[(frac(i) * 4.0).round() as usize]).collect(),
                    // Dwell medians: 4 hours at the top of the funnel, 10 days before the win.
                    median_ms: (0..p.won).map(|i| (4.0 * HOUR as f64) * 60f64.powf(frac(i))).collect(),
                }
            })
            .collect();
        let mut arrivals = ChaCha8Rng::seed_from_u64(seed);
        arrivals.set_stream(0);
        let mut g = Generator {
            pipes,
            seed,
            arrivals,
            start: start_ms,
            span: i64::from(days) * DAY,
            deals,
            created: 0,
            x: 0.0,
            next_arrival: None,
            next_id: 0,
            heap: BinaryHeap::new(),
            timeline: Vec::with_capacity(64),
            next_spend_day: start_ms.div_euclid(DAY),
        };
        g.next_arrival = g.arrival(start_ms);
        g
    }

    /// All events with occurred_at in (previous advance point, to_ms], in occurred_at order, as
    /// JSON lines. Calling advance repeatedly with growing to_ms yields the stream piecewise;
    /// the concatenation is identical however the calls are split (determinism).
    /// A resent duplicate keeps its original occurred_at but comes out a few seconds to
    /// minutes later in the stream, so it may be older than the lines around it.
    pub fn advance(&mut self, to_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            // A day's spend is scheduled when its day begins (before its events are due).
            if self.deals > 0 && self.span > 0 && self.next_spend_day * DAY <= to_ms {
                self.spend(self.next_spend_day);
                self.next_spend_day += 1;
                continue;
            }
            let arrival = self.next_arrival.filter(|&a| a <= to_ms);
            let due = self.heap.peek().map(|e| e.0.emit).filter(|&h| h <= to_ms);
            match (arrival, due) {
                // A deal is simulated before any event at or after its creation leaves.
                (Some(a), due) if due.is_none_or(|h| a <= h) => {
                    self.simulate(a);
                    self.next_arrival = self.arrival(a);
                }
                (_, Some(_)) => {
                    let Reverse(e) = self.heap.pop().expect("peeked");
                    out.push(self.encode(&e));
                }
                _ => break,
            }
        }
        out
    }

    /// The creation time of the next deal, given the previous one.
    fn arrival(&mut self, prev: i64) -> Option<i64> {
        if self.deals == 0 || self.span == 0 {
            return None;
        }
        let n = self.created as usize;
        let u = 1.0 - self.arrivals.random::<f64>();
        let t = if n < self.deals {
            // The minimum of the remaining uniforms: sorted times without holding them all.
            self.x = 1.0 - (1.0 - self.x) * u.powf(1.0 / (self.deals - n) as f64);
            self.start + 1 + ((self.x * self.span as f64) as i64).min(self.span - 1)
        } else {
            let mean_gap = self.span as f64 / self.deals as f64;
            prev.max(self.start + self.span) + ((-u.ln() * mean_gap).round() as i64).max(1)
        };
        Some(t.max(prev))
    }

    /// Schedules day `day`'s spend: per pipeline and channel, what its
    /// expected leads that day cost (trade shows paid once per show), at
    /// 02:00 UTC. Spend before the history's first day is not sent.
    fn spend(&mut self, day: i64) {
        let at = day * DAY + 2 * HOUR;
        if at <= self.start {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_5e4d);
        rng.set_stream(day as u64);
        let leads_per_day = self.deals as f64 / (self.span as f64 / DAY as f64);
        let pipes = self.pipes.len();
        let total: f64 = SOURCE_W.iter().sum();
        for pipe in 0..pipes {
            let share = match (pipes, pipe) {
                (1, _) => 1.0,
                (_, 0) => 0.75,
                _ => 0.25 / (pipes - 1) as f64,
            };
            for (src, w) in SOURCE_W.iter().enumerate() {
                let days = if src == 2 { SHOW_EVERY_DAYS } else { 1 };
                if day.rem_euclid(days) != 0 {
                    continue;
                }
                let leads = leads_per_day * share * w / total * days as f64;
                let per_lead = SOURCE_CPL[src] / if self.pipes[pipe].usd_native { 7.2 } else { 1.0 };
                let cents = (leads * per_lead * 100.0 * rng.random_range(0.7..1.3)).round() as i64;
                let ev = Ev {
                    emit: at,
                    deal: u64::MAX,
                    k: (pipe * SOURCE_W.len() + src) as u32,
                    t: at,
                    id: day as u64,
                    kind: Kind::Spend,
                    pipe: pipe as u16,
                    amount: Some(cents.max(1)),
                    extra: Some(src as u8),
                    ts: 2,
                    with_pipeline: !self.pipes[pipe].is_default,
                    ..Ev::default()
                };
                self.heap.push(Reverse(ev));
            }
        }
    }

    /// Plays one deal's whole life and schedules its events.
    fn simulate(&mut self, created: i64) {
        let n = self.created;
        self.created += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(n + 1);
        let len = self.pipes.len();
        let pipe = if len > 1 && !rng.random_bool(0.75) { rng.random_range(1..len) } else { 0 };
        let p = &self.pipes[pipe];
        let owner = rng.random_range(0..OWNERS.len());
        let team = owner / 5;
        let region = pick(&mut rng, &REGION_W);
        let source = if team == 3 && rng.random_bool(0.6) { 4 } else { pick(&mut rng, &SOURCE_W) };
        let usd = rng.random_bool(if region == 4 { 0.8 } else { 0.02 });
        // 20k to 2M, redrawn rather than clamped so that no spike sits at a bound.
        let amount = loop {
            let a = TEAM_MEDIAN[team] * (0.7 * normal(&mut rng)).exp();
            if (2e6..=2e8).contains(&a) {
                break a;
            }
        };
        let mut d = Deal {
            rng,
            tl: std::mem::take(&mut self.timeline),
            pipe: pipe as u16,
            default: p.is_default,
            usd,
            owner: owner as u8,
            amount: (amount / if usd && !p.usd_native { 7.2 } else { 1.0 }).round() as i64,
        };
        let won = p.won;
        let mut stage = usize::from(won > 1 && d.rng.random_bool(0.1));
        let (a, o) = (d.amount, d.owner);
        let e = d.push(created, Kind::Created, Some(stage));
        (e.amount, e.owner, e.attrs) = (Some(a), Some(o), Some([team as u8, region as u8, source as u8]));
        let mut t = created;
        let mut reopens = 0;
        let mut is_won = won == 0;
        let lift = SOURCE_LIFT[source] * TEAM_LIFT[team] * REGION_LIFT[region];
        while !is_won {
            let mut dwell = d.lognormal(p.median_ms[stage], 0.9);
            if d.rng.random_bool(0.06) {
                dwell *= d.rng.random_range(4.0..12.0);
            }
            if d.rng.random_bool(0.03) {
                // Goes quiet and stays open: the stuck deals of the dashboard.
                d.stay(t, t + dwell as i64, 3);
                break;
            }
            if stage > 0 && d.rng.random_bool(0.04) {
                let back = d.office(t + (dwell * 0.4) as i64);
                d.stay(t, back, 3);
                d.push(back, Kind::Changed, Some(stage - 1));
                let fwd = d.after(back, 2.0 * DAY as f64, 0.8);
                d.stay(back, fwd, 2);
                d.push(fwd, Kind::Changed, Some(stage));
                (t, dwell) = (fwd, dwell * 0.6);
            }
            if d.rng.random_bool((p.conv[stage] * lift).min(0.95)) {
                let next_t = d.office(t + dwell as i64);
                d.stay(t, next_t, 6);
                let skip = stage + 1 < won && d.rng.random_bool(0.05);
                stage += 1 + usize::from(skip);
                t = next_t;
                if stage == won {
                    let with_stage = d.rng.random_bool(0.2).then_some(won);
                    let final_amount = d.rng.random_bool(0.4).then(|| d.scaled(0.85..1.05));
                    d.push(t, Kind::Won, with_stage).amount = final_amount;
                    is_won = true;
                } else {
                    d.push(t, Kind::Changed, Some(stage));
                }
            } else {
                let lost_t = d.office(t + (dwell * 1.3) as i64);
                d.stay(t, lost_t, 6);
                let w = if stage * 2 < won { &REASON_W_EARLY } else { &REASON_W_LATE };
                let reason = d.rng.random_bool(0.9).then(|| pick(&mut d.rng, w) as u8);
                d.push(lost_t, Kind::Lost, None).extra = reason;
                if reopens == 2 || !d.rng.random_bool(0.05) {
                    break;
                }
                reopens += 1;
                t = d.after(lost_t, 30.0 * DAY as f64, 0.6);
                stage = stage.saturating_sub(d.rng.random_range(0..2));
                d.push(t, Kind::Reopened, Some(stage));
            }
        }
        if is_won {
            // Satisfaction: CSAT soon after the win, NPS from a share of the
            // customers weeks later; a long cycle or a reopening lowers both.
            let cycle_months = (t - created) as f64 / (30.0 * DAY as f64);
            let mood = -0.5 * cycle_months - if reopens > 0 { 0.8 } else { 0.0 };
            if d.rng.random_bool(0.6) {
                let at = d.after(t, 3.0 * DAY as f64, 0.6);
                let score = (4.3 + mood + 0.8 * normal(&mut d.rng)).round().clamp(1.0, 5.0);
                d.push(at, Kind::Csat, None).extra = Some(score as u8);
            }
            if d.rng.random_bool(0.35) {
                let at = d.after(t, 45.0 * DAY as f64, 0.5);
                let score = (8.3 + 1.5 * mood + 1.6 * normal(&mut d.rng)).round().clamp(0.0, 10.0);
                d.push(at, Kind::Nps, None).extra = Some(score as u8);
            }
            for s in won + 1..p.stage_json.len() {
                if !d.rng.random_bool(if s == won + 1 { 0.6 } else { 0.5 }) {
                    break;
                }
                let next_t = d.after(t, 10.0 * DAY as f64, 0.7);
                d.stay(t, next_t, 2);
                d.push(next_t, Kind::Changed, Some(s));
                t = next_t;
            }
        }

        // Stage events were pushed in causal order and activities within their open spans:
        // a stable sort plus distinct milliseconds keeps both.
        let mut tl = d.tl;
        tl.sort_by_key(|e| e.t);
        let mut rng = d.rng;
        let mut last = i64::MIN;
        for (k, e) in tl.iter_mut().enumerate() {
            e.t = e.t.max(last + 1);
            last = e.t;
            (e.emit, e.deal, e.k, e.id) = (e.t, n, k as u32, self.next_id);
            self.next_id += 1;
            self.heap.push(Reverse(*e));
            if rng.random_bool(0.005) {
                let resend = Ev { emit: e.t + rng.random_range(2_000..600_000), k: e.k | 1 << 31, ..*e };
                self.heap.push(Reverse(resend));
            }
        }
        tl.clear();
        self.timeline = tl;
    }

    fn encode(&self, e: &Ev) -> String {
        let p = &self.pipes[e.pipe as usize];
        let mut s = String::with_capacity(256);
        let (seed, kind) = (self.seed, KINDS[e.kind as usize]);
        if e.kind == Kind::Spend {
            _ = write!(s, r#"{{"event_id":"{seed:x}-spend-{}-{}","#, e.id, e.k);
        } else {
            _ = write!(s, r#"{{"event_id":"{seed:x}-{}","deal_id":"D-{seed}-{:06}","#, e.id, e.deal);
        }
        _ = write!(s, r#""type":"{kind}","occurred_at":"#);
        let offset = FixedOffset::east_opt(if e.ts == 1 { 8 * 3600 } else { 0 }).expect("valid offset");
        match DateTime::from_timestamp_millis(e.t).filter(|_| e.ts != 0) {
            Some(dt) => {
                s.push('"');
                s.push_str(&dt.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Millis, true));
                s.push('"');
            }
            None => _ = write!(s, "{}", e.t),
        }
        if e.with_pipeline {
            s.push_str(",\"pipeline\":");
            s.push_str(&p.id_json);
        }
        if let Some(st) = e.stage {
            s.push_str(",\"stage\":");
            s.push_str(&p.stage_json[st as usize]);
        }
        if let Some(a) = e.amount {
            _ = write!(s, ",\"amount\":{}.{:02}", a / 100, a % 100);
            if e.usd {
                s.push_str(",\"currency\":\"USD\"");
            }
        }
        if let Some(o) = e.owner {
            _ = write!(s, ",\"owner\":\"{}\"", OWNERS[o as usize]);
        }
        if let Some([t, r, src]) = e.attrs {
            let (t, r, src) = (TEAMS[t as usize], REGIONS[r as usize], SOURCES[src as usize]);
            _ = write!(s, r#","team":"{t}","region":"{r}","source":"{src}""#);
        }
        match (e.kind, e.extra) {
            (Kind::Csat | Kind::Nps, Some(score)) => {
                let survey = if e.kind == Kind::Csat { "csat" } else { "nps" };
                _ = write!(s, r#","survey":"{survey}","score":{score}"#);
            }
            (Kind::Spend, Some(src)) => {
                _ = write!(s, r#","source":"{}""#, SOURCES[src as usize]);
                if src == 4 {
                    _ = write!(s, r#","team":"{}""#, TEAMS[3]);
                }
            }
            (Kind::Lost, Some(x)) => _ = write!(s, r#","lost_reason":"{}""#, REASONS[x as usize]),
            (_, Some(x)) => _ = write!(s, r#","activity":"{}""#, ACTIVITIES[x as usize]),
            (_, None) => {}
        }
        s.push('}');
        s
    }
}

/// One deal being simulated.
struct Deal {
    rng: ChaCha8Rng,
    tl: Vec<Ev>,
    pipe: u16,
    default: bool,
    usd: bool,
    owner: u8,
    /// Cents.
    amount: i64,
}

impl Deal {
    fn push(&mut self, t: i64, kind: Kind, stage: Option<usize>) -> &mut Ev {
        let ts = pick(&mut self.rng, &[0.3, 0.6, 0.1]) as u8;
        let with_pipeline = !self.default || self.rng.random_bool(0.5);
        let (pipe, usd, stage) = (self.pipe, self.usd, stage.map(|s| s as u16));
        let ev = Ev { t, kind, pipe, stage, ts, with_pipeline, usd, ..Ev::default() };
        self.tl.push(ev);
        self.tl.last_mut().expect("just pushed")
    }

    /// Activities (and now and then an attribute change) while the deal sits in (lo, hi).
    fn stay(&mut self, lo: i64, hi: i64, max_activities: u32) {
        if hi - lo < 2 {
            return;
        }
        let at = |d: &mut Deal| {
            let raw = lo + 1 + d.rng.random_range(0..hi - lo - 1);
            Some(d.office(raw)).filter(|&t| t < hi).unwrap_or(raw)
        };
        for _ in 0..self.rng.random_range(1..=max_activities) {
            let t = at(self);
            let kind = pick(&mut self.rng, &ACTIVITY_W) as u8;
            self.push(t, Kind::Activity, None).extra = Some(kind);
        }
        if self.rng.random_bool(0.1) {
            let t = at(self);
            if self.rng.random_bool(0.7) {
                let a = self.scaled(0.7..1.3);
                self.push(t, Kind::Updated, None).amount = Some(a);
            } else {
                self.owner = self.owner / 5 * 5 + (self.owner % 5 + self.rng.random_range(1..5)) % 5;
                let o = self.owner;
                self.push(t, Kind::Updated, None).owner = Some(o);
            }
        }
    }

    /// Mostly moves an off-hours time (China time, weekends) to the next working day.
    fn office(&mut self, t: i64) -> i64 {
        let local = t + 8 * HOUR;
        let (day, ms) = (local.div_euclid(DAY), local.rem_euclid(DAY));
        let workday = |d: i64| (d + 3).rem_euclid(7) < 5; // 1970-01-01 was a Thursday
        if workday(day) && (9 * HOUR..19 * HOUR).contains(&ms) || self.rng.random_bool(0.2) {
            return t;
        }
        let mut d = day + i64::from(!workday(day) || ms >= 9 * HOUR);
        while !workday(d) {
            d += 1;
        }
        d * DAY + HOUR + self.rng.random_range(0..10 * HOUR)
    }

    /// Scales the amount by a random factor in `range` and returns it.
    fn scaled(&mut self, range: std::ops::Range<f64>) -> i64 {
        self.amount = (self.amount as f64 * self.rng.random_range(range)).round() as i64;
        self.amount
    }

    /// A working-hours time a log-normal wait after `t`.
    fn after(&mut self, t: i64, median: f64, sigma: f64) -> i64 {
        let wait = self.lognormal(median, sigma) as i64;
        self.office(t + wait)
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * normal(&mut self.rng)).exp()
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u = 1.0 - rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.random::<f64>()).cos()
}

fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let mut r = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        r -= w;
        if r < 0.0 {
            return i;
        }
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use serde_json::Value;

    use super::*;
    use crate::config::{Config, Stage};

    const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    /// The demo pipeline plus a short USD one with a post-sale stage.
    fn pipelines() -> Vec<Pipeline> {
        let mut ps = Config::from_toml("").unwrap().pipelines;
        let stage = |id: &str| Stage { id: id.into(), label: id.into(), sla_ms: None };
        let stages = ["signup", "trial", "paid", "renewal"].map(stage).to_vec();
        ps.push(Pipeline { id: "self_serve".into(), currency: "USD".into(), stages, won: 2 });
        ps
    }

    /// A line's JSON, its pipeline and its occurred_at in epoch ms.
    fn parse<'a>(ps: &'a [Pipeline], line: &str) -> (Value, &'a Pipeline, i64) {
        let v: Value = serde_json::from_str(line).expect("valid JSON");
        let id = v.get("pipeline").map_or("default", |p| p.as_str().unwrap());
        let p = ps.iter().find(|p| p.id == id).expect("a configured pipeline");
        let t = match &v["occurred_at"] {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis(),
            t => t.as_i64().expect("epoch milliseconds"),
        };
        (v, p, t)
    }

    #[test]
    fn same_arguments_same_bytes_however_split() {
        let ps = pipelines();
        let end = START + 90 * DAY;
        let whole = Generator::new(&ps, 300, 30, 7, START).advance(end);
        assert!(whole.len() > 2000, "{}", whole.len());
        let mut steps = ChaCha8Rng::seed_from_u64(99);
        let mut g = Generator::new(&ps, 300, 30, 7, START);
        let (mut pieces, mut to) = (Vec::new(), START - DAY);
        while to < end {
            to = (to + steps.random_range(0..2 * DAY)).min(end);
            pieces.extend(g.advance(to));
        }
        assert!(whole == pieces, "split output differs");
        assert!(Generator::new(&ps, 300, 30, 8, START).advance(end) != whole);
    }

    #[test]
    fn exactly_n_deals_enter_within_the_span_then_the_rate_holds() {
        let ps = pipelines();
        let mut g = Generator::new(&ps, 1000, 20, 1, START);
        let mut created = |to| -> HashSet<String> {
            let lines = g.advance(to);
            let vs = lines.iter().map(|l| parse(&ps, l).0);
            vs.filter(|v| v["type"] == "deal_created").map(|v| v["deal_id"].to_string()).collect()
        };
        assert!(created(START).is_empty());
        let first = created(START + 20 * DAY);
        assert_eq!(first.len(), 1000);
        let new = created(START + 40 * DAY).difference(&first).count();
        assert!((850..1150).contains(&new), "{new} deals in the next 20 days");
    }

    /// Checks every line and replays each deal by the rules of docs/metrics.md §4.
    #[test]
    fn lines_are_valid_and_deals_live_realistic_lives() {
        let ps = pipelines();
        let mut g = Generator::new(&ps, 2000, 60, 5, START);
        let mut seen: HashMap<String, String> = HashMap::new();
        // Per deal: current stage, lost, time of the last event.
        let mut deals: HashMap<String, (usize, bool, i64)> = HashMap::new();
        let mut n: HashMap<&str, usize> = HashMap::new();
        let mut count = |k, yes: bool| *n.entry(k).or_default() += usize::from(yes);
        let mut prev = START;
        for to in [START + 5 * DAY, START + 61 * DAY, START + 400 * DAY] {
            let mut last = i64::MIN;
            for line in g.advance(to) {
                let (v, p, t) = parse(&ps, &line);
                assert!(t <= to, "{line}");
                if let Some(first) = seen.insert(v["event_id"].to_string(), line.clone()) {
                    assert_eq!(first, line, "a resend is identical");
                    count("resent", true);
                    continue;
                }
                assert!(t > prev && t >= last, "{line} out of order");
                last = t;
                count("epoch", v["occurred_at"].is_i64());
                count("usd", v["currency"] == "USD");
                count("no_pipeline", v.get("pipeline").is_none());
                let stage = v.get("stage").map(|s| p.stage_index(s.as_str().unwrap()).unwrap());
                let ty = v["type"].as_str().unwrap();
                if ty == "spend" {
                    assert!(v.get("deal_id").is_none() && v["amount"].as_f64().unwrap() > 0.0, "{line}");
                    assert!(SOURCES.iter().any(|s| v["source"] == *s), "{line}");
                    count("spend", true);
                    continue;
                }
                let deal = v["deal_id"].to_string();
                let Some((cur, lost, at)) = deals.get_mut(&deal) else {
                    assert_eq!(ty, "deal_created", "{line}");
                    deals.insert(deal, (stage.unwrap(), false, t));
                    continue;
                };
                assert!(t > *at, "a deal's events have distinct, increasing times");
                let open = !*lost && *cur < p.won;
                let kind = match (ty, stage) {
                    ("stage_changed", Some(s)) if open && s + 1 == *cur => "back",
                    ("stage_changed", Some(s)) if open && s > *cur + 1 => "skip",
                    ("stage_changed", Some(s)) if open && s == *cur + 1 => "forward",
                    ("stage_changed", Some(s)) if !*lost && *cur >= p.won && s > *cur => "post",
                    ("deal_won", s) if open && s.is_none_or(|s| s == p.won) => "won",
                    ("deal_lost", None) if open => "lost",
                    ("deal_reopened", Some(_)) if *lost => "reopened",
                    ("activity", None) => "activity",
                    ("feedback", None) if *cur >= p.won && !*lost => {
                        let (survey, score) = (v["survey"].as_str().unwrap(), v["score"].as_u64().unwrap());
                        assert!(survey == "csat" && (1..=5).contains(&score) || survey == "nps" && score <= 10);
                        if survey == "csat" { "csat" } else { "nps" }
                    }
                    ("deal_updated", None) => "updated",
                    _ => panic!("{line} does not fit its deal's state"),
                };
                count(kind, true);
                count("won_skipping", kind == "won" && *cur + 1 < p.won);
                count("no_reason", kind == "lost" && v.get("lost_reason").is_none());
                count("bad_activity", kind == "activity" && !ACTIVITIES.iter().any(|a| v["activity"] == *a));
                *cur = stage.unwrap_or(if kind == "won" { p.won } else { *cur });
                *lost = kind == "lost" || *lost && kind != "reopened";
                *at = t;
            }
            prev = to;
        }
        eprintln!("{} events, {} deals: {n:?}", seen.len(), deals.len());
        let keys = ["back", "skip", "won_skipping", "post", "no_reason", "reopened", "updated", "csat", "nps", "spend"];
        for k in keys.into_iter().chain(["resent", "epoch", "usd", "no_pipeline"]) {
            assert!(n[k] > 0, "no {k}: {n:?}");
        }
        assert_eq!(n["bad_activity"], 0);
        assert!(seen.values().any(|l| l.contains("+08:00")) && seen.values().any(|l| l.contains("华")));
        let per_deal = seen.len() as f64 / deals.len() as f64;
        assert!((6.0..25.0).contains(&per_deal), "{per_deal} events per deal");
        let win_rate = n["won"] as f64 / (n["won"] + n["lost"]) as f64;
        assert!((0.05..0.3).contains(&win_rate), "win rate {win_rate}");
    }
}
