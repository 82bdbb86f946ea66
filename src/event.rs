//! The [`Event`] type and its decoding: raw message bytes → validated
//! `Event` or a [`Rejection`] with exactly one [`Reason`] (docs/metrics.md §1).
//!
//! Decoding is all-or-nothing: an event is either fully valid or rejected,
//! never half-applied. The store-dependent checks (`too_old`, duplicates)
//! happen in the store, which knows `T`; everything else is here. A flat
//! object is read by a fast scanner (`flat`), anything else by serde_json.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::config::Pipeline;

mod flat;

/// Largest accepted message, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventType {
    DealCreated,
    StageChanged,
    DealWon,
    DealLost,
    DealReopened,
    DealUpdated,
    Activity,
    Feedback,
    /// Money spent to acquire customers: it belongs to no deal.
    Spend,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::DealCreated,
        EventType::StageChanged,
        EventType::DealWon,
        EventType::DealLost,
        EventType::DealReopened,
        EventType::DealUpdated,
        EventType::Activity,
        EventType::Feedback,
        EventType::Spend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::DealCreated => "deal_created",
            EventType::StageChanged => "stage_changed",
            EventType::DealWon => "deal_won",
            EventType::DealLost => "deal_lost",
            EventType::DealReopened => "deal_reopened",
            EventType::DealUpdated => "deal_updated",
            EventType::Activity => "activity",
            EventType::Feedback => "feedback",
            EventType::Spend => "spend",
        }
    }

    fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Events after which the deal is in a stage (docs/metrics.md §4).
    pub fn bears_stage(self) -> bool {
        matches!(self, EventType::DealCreated | EventType::StageChanged | EventType::DealWon | EventType::DealReopened)
    }
}

/// The satisfaction question a `feedback` event answers (docs/metrics.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Survey {
    /// "How satisfied are you": 1–5.
    Csat,
    /// "How likely are you to recommend us": 0–10.
    Nps,
}

impl Survey {
    pub const ALL: [Survey; 2] = [Survey::Csat, Survey::Nps];

    pub fn as_str(self) -> &'static str {
        match self {
            Survey::Csat => "csat",
            Survey::Nps => "nps",
        }
    }

    /// The scores a response may give.
    pub fn scores(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Survey::Csat => 1..=5,
            Survey::Nps => 0..=10,
        }
    }
}

/// A `feedback` event's answer: its survey and score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Answer {
    pub survey: Survey,
    pub score: u8,
}

/// Why an event was rejected: the fixed set of docs/metrics.md §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidJson,
    InvalidUtf8,
    TooLarge,
    MissingField,
    InvalidField,
    UnknownType,
    UnknownPipeline,
    UnknownStage,
    FutureTimestamp,
    TooOld,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::InvalidJson,
        Reason::InvalidUtf8,
        Reason::TooLarge,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::UnknownType,
        Reason::UnknownPipeline,
        Reason::UnknownStage,
        Reason::FutureTimestamp,
        Reason::TooOld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::TooLarge => "too_large",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::UnknownType => "unknown_type",
            Reason::UnknownPipeline => "unknown_pipeline",
            Reason::UnknownStage => "unknown_stage",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::TooOld => "too_old",
        }
    }
}

/// A rejected message: its reason and a human-readable detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

impl std::error::Error for Rejection {}

fn reject(reason: Reason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// A validated event. `pipeline` and `stage` are indexes into the configured
/// pipelines and that pipeline's stages. Strings borrow from the message
/// unless JSON escapes had to be decoded. A `spend` event has no deal: its
/// `deal_id` is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub deal_id: Cow<'a, str>,
    pub kind: EventType,
    pub occurred_at: i64,
    pub pipeline: u16,
    pub stage: Option<u16>,
    pub amount: Option<f64>,
    pub currency: Option<Cow<'a, str>>,
    pub owner: Option<Cow<'a, str>>,
    pub team: Option<Cow<'a, str>>,
    pub region: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub lost_reason: Option<Cow<'a, str>>,
    pub activity: Option<Cow<'a, str>>,
    /// On `feedback` events.
    pub answer: Option<Answer>,
}

/// A JSON value as far as validation cares: its type, and strings borrowed
/// when possible. Any JSON type is accepted here so that a wrong type
/// becomes `invalid_field` rather than `invalid_json`.
#[derive(Debug)]
enum Val<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Num(f64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Val<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Val<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Val<'a>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E>(self) -> Result<Val<'a>, E> {
                Ok(Val::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Val<'a>, E> {
                Ok(Val::Other)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'a>, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'a>, E> {
                Ok(i64::try_from(v).map(Val::Int).unwrap_or(Val::Num(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Val<'a>, E> {
                Ok(Val::Num(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val<'a>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Any JSON document, read only to check that no object in it repeats a
/// key, at any depth (docs/metrics.md §7: that is `invalid_json`).
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Unique;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
                Ok(Unique)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
                while a.next_element::<Unique>()?.is_some() {}
                Ok(Unique)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Unique, A::Error> {
                let mut keys = std::collections::HashSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    a.next_value::<Unique>()?;
                    if !keys.insert(k) {
                        return Err(serde::de::Error::custom("an object repeats a key"));
                    }
                }
                Ok(Unique)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
struct Raw<'a> {
    #[serde(borrow)]
    event_id: Option<Val<'a>>,
    #[serde(borrow)]
    deal_id: Option<Val<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Val<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Val<'a>>,
    #[serde(borrow)]
    pipeline: Option<Val<'a>>,
    #[serde(borrow)]
    stage: Option<Val<'a>>,
    #[serde(borrow)]
    amount: Option<Val<'a>>,
    #[serde(borrow)]
    currency: Option<Val<'a>>,
    #[serde(borrow)]
    owner: Option<Val<'a>>,
    #[serde(borrow)]
    team: Option<Val<'a>>,
    #[serde(borrow)]
    region: Option<Val<'a>>,
    #[serde(borrow)]
    source: Option<Val<'a>>,
    #[serde(borrow)]
    lost_reason: Option<Val<'a>>,
    #[serde(borrow)]
    activity: Option<Val<'a>>,
    #[serde(borrow)]
    survey: Option<Val<'a>>,
    #[serde(borrow)]
    score: Option<Val<'a>>,
}

/// `null` and absent are the same (docs/metrics.md §1).
fn present<'a>(v: Option<Val<'a>>) -> Option<Val<'a>> {
    v.filter(|v| !matches!(v, Val::Null))
}

fn required<'a>(v: Option<Val<'a>>, name: &str) -> Result<Val<'a>, Rejection> {
    present(v).ok_or_else(|| reject(Reason::MissingField, format!("{name} is missing")))
}

/// A string of `min..=max` bytes, or `invalid_field`.
fn string<'a>(v: Val<'a>, name: &str, min: usize, max: usize) -> Result<Cow<'a, str>, Rejection> {
    match v {
        Val::Str(s) if (min..=max).contains(&s.len()) => Ok(s),
        Val::Str(s) => {
            Err(reject(Reason::InvalidField, format!("{name} must be {min} to {max} bytes, is {}", s.len())))
        }
        _ => Err(reject(Reason::InvalidField, format!("{name} must be a string"))),
    }
}

fn optional_string<'a>(v: Option<Val<'a>>, name: &str, max: usize) -> Result<Option<Cow<'a, str>>, Rejection> {
    present(v).map(|v| string(v, name, 0, max)).transpose()
}

/// Integer timestamps are kept within ±2^53 ms, bounds included (docs/metrics.md §7).
const MAX_INT_MS: i64 = 1 << 53;

/// Epoch milliseconds from an integer or an RFC 3339 string with offset;
/// finer digits are truncated (floored).
fn timestamp(v: Val<'_>) -> Result<i64, Rejection> {
    match v {
        Val::Int(ms) if (-MAX_INT_MS..=MAX_INT_MS).contains(&ms) => Ok(ms),
        Val::Int(ms) => Err(reject(Reason::InvalidField, format!("occurred_at {ms} is outside ±2^53 ms"))),
        Val::Str(s) => rfc3339_ms(&s).ok_or_else(|| {
            reject(
                Reason::InvalidField,
                format!("occurred_at {s:?} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac] and Z or ±HH:MM)"),
            )
        }),
        _ => Err(reject(Reason::InvalidField, "occurred_at must be an RFC 3339 string or integer epoch milliseconds")),
    }
}

/// RFC 3339 as its section 5.6 writes it (`full-date "T" full-time`; `T`
/// and `Z` in either case; ASCII digits; no leap second; years 0001–9999)
/// → epoch milliseconds, the fraction truncated.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year == 0 || !(1..=12).contains(&month) || !(1..=days_in_month).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let ms = &b[i + 1..i + 1 + digits.min(3)];
        millis = ms.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')) * 10i64.pow(3 - ms.len() as u32);
        i += 1 + digits;
    }
    let offset_min = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' { -(h * 60 + m) } else { h * 60 + m }
        }
        _ => return None,
    };
    // Days from 1970-01-01 of the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(seconds * 1000 + millis)
}

/// Decodes and validates messages for a fixed set of pipelines.
pub struct Decoder {
    pipelines: Vec<Pipeline>,
    by_id: HashMap<String, u16>,
    max_clock_skew_ms: i64,
}

impl Decoder {
    pub fn new(pipelines: &[Pipeline], max_clock_skew_ms: i64) -> Decoder {
        let by_id = pipelines.iter().enumerate().map(|(i, p)| (p.id.clone(), i as u16)).collect();
        Decoder { pipelines: pipelines.to_vec(), by_id, max_clock_skew_ms }
    }

    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }

    /// Decodes one message received at wall time `received_ms`.
    pub fn decode<'a>(&self, bytes: &'a [u8], received_ms: i64) -> Result<Event<'a>, Rejection> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(reject(Reason::TooLarge, format!("{} bytes, at most {MAX_EVENT_BYTES}", bytes.len())));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| reject(Reason::InvalidUtf8, e.to_string()))?;
        let raw: Raw = match flat::scan(text) {
            Some(raw) => raw,
            None => {
                let invalid = |e: serde_json::Error| reject(Reason::InvalidJson, e.to_string());
                serde_json::from_str::<Unique>(text).map_err(invalid)?;
                serde_json::from_str(text).map_err(invalid)?
            }
        };

        let event_id = string(required(raw.event_id, "event_id")?, "event_id", 1, 128)?;
        // A spend event belongs to no deal: its deal_id is not read (docs/metrics.md §7).
        let spend = matches!(&raw.kind, Some(Val::Str(s)) if s == "spend");
        let deal_id = match spend {
            true => Cow::Borrowed(""),
            false => string(required(raw.deal_id, "deal_id")?, "deal_id", 1, 128)?,
        };
        let kind = match required(raw.kind, "type")? {
            Val::Str(s) => EventType::parse(&s).ok_or_else(|| reject(Reason::UnknownType, format!("type {s:?}")))?,
            _ => return Err(reject(Reason::InvalidField, "type must be a string")),
        };
        let occurred_at = timestamp(required(raw.occurred_at, "occurred_at")?)?;
        let pipeline = match present(raw.pipeline) {
            None => "default".into(),
            Some(Val::Str(s)) => s,
            Some(_) => return Err(reject(Reason::InvalidField, "pipeline must be a string")),
        };
        let p_idx = *self
            .by_id
            .get(pipeline.as_ref())
            .ok_or_else(|| reject(Reason::UnknownPipeline, format!("pipeline {pipeline:?}")))?;
        let p = &self.pipelines[p_idx as usize];

        let stage_of = |v: Val<'_>| -> Result<usize, Rejection> {
            let id = match v {
                Val::Str(s) => s,
                _ => return Err(reject(Reason::InvalidField, "stage must be a string")),
            };
            p.stage_index(&id)
                .ok_or_else(|| reject(Reason::UnknownStage, format!("stage {id:?} is not in pipeline {:?}", p.id)))
        };
        let stage = match kind {
            EventType::DealCreated | EventType::StageChanged | EventType::DealReopened => {
                Some(stage_of(required(raw.stage, "stage")?)?)
            }
            EventType::DealWon => {
                if let Some(v) = present(raw.stage) {
                    let s = stage_of(v)?;
                    if s != p.won {
                        return Err(reject(
                            Reason::InvalidField,
                            format!("deal_won names stage {:?}, not the won stage", p.stages[s].id),
                        ));
                    }
                }
                Some(p.won)
            }
            _ => None,
        };

        // The fields a type requires, then the optional ones; a field a type
        // does not use is ignored, not validated (docs/metrics.md §7).
        let activity = match kind {
            EventType::Activity => Some(string(required(raw.activity, "activity")?, "activity", 1, 64)?),
            _ => None,
        };
        let answer = match kind {
            EventType::Feedback => Some(answer(raw.survey, raw.score)?),
            _ => None,
        };
        if kind == EventType::Spend && matches!(raw.amount, None | Some(Val::Null)) {
            return Err(reject(Reason::MissingField, "amount is missing (a spend event needs one)"));
        }
        let amount = match present(raw.amount) {
            None => None,
            Some(Val::Int(n)) if n >= 0 => Some(n as f64),
            Some(Val::Num(n)) if n.is_finite() && n >= 0.0 => Some(n),
            Some(_) => return Err(reject(Reason::InvalidField, "amount must be a finite number >= 0")),
        };
        let currency = match present(raw.currency) {
            None => None,
            Some(Val::Str(s)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => Some(s),
            Some(_) => return Err(reject(Reason::InvalidField, "currency must be 3 letters")),
        };
        let owner = optional_string(raw.owner, "owner", 128)?;
        let team = optional_string(raw.team, "team", 128)?;
        let region = optional_string(raw.region, "region", 128)?;
        let source = optional_string(raw.source, "source", 128)?;
        let lost_reason = match kind {
            EventType::DealLost => optional_string(raw.lost_reason, "lost_reason", 128)?,
            _ => None,
        };

        if occurred_at > received_ms.saturating_add(self.max_clock_skew_ms) {
            return Err(reject(
                Reason::FutureTimestamp,
                format!("occurred_at is {} ms after arrival", occurred_at - received_ms),
            ));
        }
        Ok(Event {
            event_id,
            deal_id,
            kind,
            occurred_at,
            pipeline: p_idx,
            stage: stage.map(|s| s as u16),
            amount,
            currency,
            owner,
            team,
            region,
            source,
            lost_reason,
            activity,
            answer,
        })
    }
}

/// A `feedback` event's `survey`, then its `score`: a JSON integer in the survey's range.
fn answer(survey: Option<Val<'_>>, score: Option<Val<'_>>) -> Result<Answer, Rejection> {
    let survey = match required(survey, "survey")? {
        Val::Str(s) => Survey::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| reject(Reason::InvalidField, format!("survey {s:?} is not \"csat\" or \"nps\"")))?,
        _ => return Err(reject(Reason::InvalidField, "survey must be a string")),
    };
    let range = survey.scores();
    match required(score, "score")? {
        Val::Int(n) if (i64::from(*range.start())..=i64::from(*range.end())).contains(&n) => {
            Ok(Answer { survey, score: n as u8 })
        }
        _ => Err(reject(
            Reason::InvalidField,
            format!("score must be an integer from {} to {} for {}", range.start(), range.end(), survey.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const NOW: i64 = 1_780_000_000_000;

    fn decoder() -> Decoder {
        let c = Config::from_toml("").unwrap();
        Decoder::new(&c.pipelines, 300_000)
    }

    fn decode(json: &str) -> Result<Event<'_>, Rejection> {
        decoder().decode(json.as_bytes(), NOW)
    }

    fn reason(json: &str) -> &'static str {
        decode(json).expect_err(json).reason.as_str()
    }

    #[test]
    fn decodes_a_full_event() {
        let e = decode(
            r#"{"event_id":"e1","deal_id":"d1","type":"stage_changed","occurred_at":"2026-05-28T10:00:00.123987+08:00",
                "stage":"needs","amount":1200.5,"currency":"USD","owner":"li","team":"t","region":"华东","source":"web",
                "lost_reason":null,"extra":{"nested":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(e.occurred_at, 1_779_933_600_123);
        assert_eq!(e.stage, Some(2));
        assert_eq!(e.amount, Some(1200.5));
        assert_eq!(e.region.as_deref(), Some("华东"));
        assert_eq!(e.lost_reason, None);
        assert_eq!(e.pipeline, 0);
    }

    #[test]
    fn integer_timestamps_and_won_without_stage() {
        let e = decode(r#"{"event_id":"e","deal_id":"d","type":"deal_won","occurred_at":1700000000000}"#).unwrap();
        assert_eq!(e.occurred_at, 1_700_000_000_000);
        assert_eq!(e.stage, Some(5));
    }

    #[test]
    fn every_rejection_reason() {
        let big = format!(r#"{{"event_id":"e","pad":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES));
        assert_eq!(reason(&big), "too_large");
        assert_eq!(decoder().decode(b"{\"event_id\":\"\xff\"}", NOW).unwrap_err().reason, Reason::InvalidUtf8);
        for (json, want) in [
            ("{not json", "invalid_json"),
            ("[1,2]", "invalid_json"),
            (r#"{"deal_id":"d","type":"activity","occurred_at":1,"activity":"call"}"#, "missing_field"),
            (r#"{"event_id":null,"deal_id":"d","type":"activity","occurred_at":1}"#, "missing_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"stage_changed","occurred_at":1}"#, "missing_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"activity","occurred_at":1}"#, "missing_field"),
            (r#"{"event_id":"","deal_id":"d","type":"activity","occurred_at":1}"#, "invalid_field"),
            (r#"{"event_id":7,"deal_id":"d","type":"activity","occurred_at":1}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":"yesterday"}"#, "invalid_field"),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":"2026-01-01T00:00:00"}"#,
                "invalid_field",
            ),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1.5}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"amount":-1}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"amount":"5"}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"currency":"EURO"}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_won","occurred_at":1,"stage":"lead"}"#, "invalid_field"),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_deleted","occurred_at":1}"#, "unknown_type"),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"pipeline":"nope"}"#,
                "unknown_pipeline",
            ),
            (
                r#"{"event_id":"e","deal_id":"d","type":"stage_changed","occurred_at":1,"stage":"closing"}"#,
                "unknown_stage",
            ),
            (r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1780000300001}"#, "future_timestamp"),
        ] {
            assert_eq!(reason(json), want, "{json}");
        }
        let long = format!(
            r#"{{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"owner":"{}"}}"#,
            "o".repeat(129)
        );
        assert_eq!(reason(&long), "invalid_field");
    }

    /// docs/metrics.md §7: a field a type does not use is ignored, not
    /// validated; the field a type requires is checked before the optional ones.
    #[test]
    fn fields_a_type_does_not_use_are_ignored() {
        let long = "x".repeat(129);
        for json in [
            format!(r#"{{"event_id":"e","deal_id":"d","type":"deal_updated","occurred_at":1,"lost_reason":"{long}"}}"#),
            r#"{"event_id":"e","deal_id":"d","type":"deal_won","occurred_at":1,"lost_reason":7}"#.to_string(),
            r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"activity":7}"#.to_string(),
            r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"stage":3}"#.to_string(),
        ] {
            let e = decode(&json).unwrap_or_else(|r| panic!("{json}: {r:?}"));
            assert_eq!((e.lost_reason, e.activity), (None, None), "{json}");
        }
        let lost = decode(r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"lost_reason":""}"#);
        assert_eq!(lost.unwrap().lost_reason.as_deref(), Some(""));
        let bad_reason =
            format!(r#"{{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"lost_reason":"{long}"}}"#);
        assert_eq!(reason(&bad_reason), "invalid_field");
        // activity (required) before owner (optional): missing_field, not invalid_field.
        assert_eq!(
            reason(r#"{"event_id":"e","deal_id":"d","type":"activity","occurred_at":1,"owner":7}"#),
            "missing_field"
        );
    }

    /// docs/metrics.md §1 and §7: a spend event needs no deal_id but an
    /// amount; a feedback event needs a survey, then an integer score in its range.
    #[test]
    fn spend_and_feedback() {
        let e = decode(r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":250,"source":"ads","deal_id":7}"#)
            .unwrap();
        assert_eq!((e.kind, e.deal_id.as_ref(), e.amount), (EventType::Spend, "", Some(250.0)));
        assert_eq!(e.source.as_deref(), Some("ads"));
        let e = decode(r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"nps","score":0}"#)
            .unwrap();
        assert_eq!(e.answer, Some(Answer { survey: Survey::Nps, score: 0 }));
        let csat = r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":5}"#;
        assert_eq!(decode(csat).unwrap().answer, Some(Answer { survey: Survey::Csat, score: 5 }));
        let ignored = r#"{"event_id":"a","deal_id":"d","type":"deal_updated","occurred_at":1,"survey":1,"score":"x"}"#;
        assert_eq!(decode(ignored).unwrap().answer, None);
        for (json, want) in [
            // deal_id is read unless type is the string "spend".
            (r#"{"event_id":"s","type":7,"occurred_at":1}"#, "missing_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1}"#, "missing_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":null}"#, "missing_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":-1}"#, "invalid_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":"9"}"#, "invalid_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"owner":7}"#, "missing_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":1,"currency":"EURO"}"#, "invalid_field"),
            (r#"{"event_id":"s","type":"spend","occurred_at":1,"amount":1,"pipeline":"x"}"#, "unknown_pipeline"),
            (r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"score":3}"#, "missing_field"),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"ces","score":3}"#,
                "invalid_field",
            ),
            (r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat"}"#, "missing_field"),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":0}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":6}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"nps","score":11}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"nps","score":-1}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":4.0}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":true}"#,
                "invalid_field",
            ),
            (
                r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"survey":"csat","score":"4"}"#,
                "invalid_field",
            ),
            // survey and score (required) before owner (optional).
            (r#"{"event_id":"f","deal_id":"d","type":"feedback","occurred_at":1,"owner":7}"#, "missing_field"),
            (r#"{"event_id":"f","type":"feedback","occurred_at":1,"survey":"csat","score":4}"#, "missing_field"),
        ] {
            assert_eq!(reason(json), want, "{json}");
        }
    }

    /// docs/metrics.md §7, "JSON shape" and "Timestamps".
    #[test]
    fn json_shape_and_timestamp_readings() {
        let ev = |at: &str| format!(r#"{{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":{at}}}"#);
        for (json, want) in [
            (ev(r#""2026-01-01t00:00:00z""#), None),
            (ev(r#""2026-01-01T00:00:00.5+08:00""#), None),
            (ev(r#""2026-01-01 00:00:00Z""#), Some("invalid_field")),
            (ev(r#""2026-01-01T00:00:60Z""#), Some("invalid_field")),
            (ev(r#""0000-01-01T00:00:00Z""#), Some("invalid_field")),
            (ev(r#""2026-01-01T00:00:00.١Z""#), Some("invalid_field")),
            (ev("9007199254740992"), None),
            (ev("-9007199254740992"), None),
            (ev("9007199254740993"), Some("invalid_field")),
            (ev("-9007199254740993"), Some("invalid_field")),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"x":{"a":1,"a":2}}"#.into(),
                Some("invalid_json"),
            ),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"x":[{"a":1,"b":{"c":1,"c":1}}]}"#
                    .into(),
                Some("invalid_json"),
            ),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"event_id":"f"}"#.into(),
                Some("invalid_json"),
            ),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"x":"\ud800"}"#.into(),
                Some("invalid_json"),
            ),
            (
                r#"{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":1,"x":NaN}"#.into(),
                Some("invalid_json"),
            ),
            ("   ".into(), Some("invalid_json")),
        ] {
            let got = decoder().decode(json.as_bytes(), i64::MAX / 2).err().map(|r| r.reason.as_str());
            assert_eq!(got, want, "{json}");
        }
    }

    #[test]
    fn skew_is_inclusive() {
        let at = NOW + 300_000;
        let json = format!(r#"{{"event_id":"e","deal_id":"d","type":"deal_lost","occurred_at":{at}}}"#);
        assert!(decode(&json).is_ok());
    }
}
