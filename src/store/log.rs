//! One deal's accepted events, packed into a byte string in
//! (`occurred_at`, `event_id` bytes) order: the order of docs/metrics.md §4.
//!
//! The log is the store's only copy of an event. Each event is a varint
//! time delta (the first one zigzag-encoded absolute time), a tag byte
//! (type, stage present, amount present and how), the stage index, the
//! attribute-set key, the partition index, the amount when present (a
//! zigzag varint of cents when that gives back the same `f64`, else its 8
//! bytes), and the `event_id`: the first event's whole, every other one's
//! as the length of the prefix it shares with the first event's and the
//! bytes after it (an id header byte, see [`put_id`]). About 13 bytes for
//! a typical event. The log begins with the deal's own name (its
//! `deal_id`), so the deal index needs no second copy of it.

use std::cmp::Ordering;

use crate::event::{Answer, EventType, Survey};

/// One decoded event of a log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ev<'a> {
    pub at: i64,
    pub kind: EventType,
    /// Stage index within the deal's pipeline.
    pub stage: Option<u16>,
    pub amount: Option<f64>,
    /// A `feedback` event's answer.
    pub answer: Option<Answer>,
    /// The store's attribute-set key (the event's seven optional strings).
    pub attrs: u32,
    /// The store's partition index.
    pub part: u16,
    pub id: Id<'a>,
}

impl Ev<'_> {
    /// The order of docs/metrics.md §4: by time, then by `event_id` bytes.
    fn key(&self) -> (i64, Id<'_>) {
        (self.at, self.id)
    }
}

/// An `event_id` as a log holds it: a prefix of another id, then its own bytes.
#[derive(Debug, Clone, Copy)]
pub struct Id<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl<'a> Id<'a> {
    pub fn new(id: &'a [u8]) -> Id<'a> {
        Id { head: &[], tail: id }
    }

    fn len(self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn bytes(self) -> impl Iterator<Item = u8> + 'a {
        self.head.iter().chain(self.tail).copied()
    }

    /// Appends the id's bytes to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.head);
        out.extend_from_slice(self.tail);
    }
}

impl PartialEq for Id<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

impl Eq for Id<'_> {}

impl PartialOrd for Id<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id<'_> {
    /// Byte-wise, as docs/metrics.md §4 orders `event_id`s.
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes().cmp(other.bytes())
    }
}

const HAS_STAGE: u8 = 0x08;
const HAS_AMOUNT: u8 = 0x10;
/// With [`HAS_AMOUNT`]: the amount is a zigzag varint of cents.
const IN_CENTS: u8 = 0x20;
/// A feedback answer follows the amount: one byte, the survey's bit 4 and the score.
const HAS_ANSWER: u8 = 0x40;
/// The event type's bits of the tag (a log holds no `spend` events).
const KIND: u8 = 0x07;
const NPS: u8 = 0x10;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The amount as a whole number of cents, when dividing that by 100 gives
/// back exactly `a` (division is correctly rounded, so it does for every
/// amount written with at most two decimals).
fn cents(a: f64) -> Option<i64> {
    let c = (a * 100.0).round();
    if c.abs() >= 2f64.powi(53) {
        return None;
    }
    let c = c as i64;
    // From the integer, as decoding does: -0.0 comes back as 0.0, so it keeps its 8 bytes.
    ((c as f64 / 100.0).to_bits() == a.to_bits()).then_some(c)
}

/// Writes `id` against `base` (the log's first id; `None` for the first
/// event itself). The header is one byte `shared << 3 | tail` when the
/// shared prefix is under 16 bytes and the rest under 8, else 0x80 and
/// the two lengths as varints; the bytes after the shared prefix follow.
fn put_id(out: &mut Vec<u8>, id: Id, base: Option<Id>) {
    let shared = base.map_or(0, |b| id.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count());
    let tail = id.len() - shared;
    if shared < 16 && tail < 8 {
        out.push((shared << 3 | tail) as u8);
    } else {
        out.push(0x80);
        put_varint(out, shared as u64);
        put_varint(out, tail as u64);
    }
    out.extend(id.bytes().skip(shared));
}

fn put_event(out: &mut Vec<u8>, e: &Ev, prev_at: Option<i64>, base: Option<Id>) {
    match prev_at {
        Some(p) => put_varint(out, (e.at - p) as u64),
        None => put_varint(out, zigzag(e.at)),
    }
    // Ok: cents; Err: the amount's own bits.
    let amount = e.amount.map(|a| cents(a).ok_or(a));
    debug_assert!(e.kind as u8 <= KIND, "a log holds deal events only");
    let mut tag = e.kind as u8;
    if e.stage.is_some() {
        tag |= HAS_STAGE;
    }
    if e.answer.is_some() {
        tag |= HAS_ANSWER;
    }
    match amount {
        Some(Ok(_)) => tag |= HAS_AMOUNT | IN_CENTS,
        Some(Err(_)) => tag |= HAS_AMOUNT,
        None => {}
    }
    out.push(tag);
    if let Some(s) = e.stage {
        put_varint(out, u64::from(s));
    }
    put_varint(out, u64::from(e.attrs));
    put_varint(out, u64::from(e.part));
    match amount {
        Some(Ok(c)) => put_varint(out, zigzag(c)),
        Some(Err(a)) => out.extend_from_slice(&a.to_le_bytes()),
        None => {}
    }
    if let Some(a) = e.answer {
        out.push(if a.survey == Survey::Nps { NPS } else { 0 } | a.score);
    }
    put_id(out, e.id, base);
}

/// An event taken out of a log, with what releasing it needs.
pub struct Removed {
    pub at: i64,
    pub kind: EventType,
    pub attrs: u32,
    pub part: u16,
    pub id: Vec<u8>,
}

/// A deal's name and events. Appending the newest event is cheap (the log
/// doubles its room when full, and [`Log::shrink`] gives the room
/// back once the deal is derived); any other change rewrites the log (a
/// deal holds few events).
#[derive(Debug)]
pub struct Log {
    bytes: Vec<u8>,
    /// `occurred_at` of the first event (the smallest) and of the last
    /// (the largest); `first > last` while the log holds no event (two
    /// plain fields: 8 bytes a deal less than an `Option` of the pair).
    first: i64,
    last: i64,
}

const EMPTY: (i64, i64) = (i64::MAX, i64::MIN);

impl Log {
    pub fn new(name: &str) -> Log {
        let mut out = Vec::with_capacity(name.len() + 1);
        put_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        Log { bytes: out, first: EMPTY.0, last: EMPTY.1 }
    }

    /// Where the name's bytes are (after their length).
    fn name_range(&self) -> std::ops::Range<usize> {
        let mut pos = 0;
        let n = varint(&self.bytes, &mut pos) as usize;
        pos..pos + n
    }

    fn body_start(&self) -> usize {
        self.name_range().end
    }

    /// Whether the log's name is `name` (without decoding it).
    pub fn is_named(&self, name: &str) -> bool {
        &self.bytes[self.name_range()] == name.as_bytes()
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.name_range()]).expect("names are stored from str")
    }

    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    pub fn first_at(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.first)
    }

    pub fn last_at(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.last)
    }

    /// Asks for the cache lines of the name (looked up) and of the end (appended to).
    pub fn prefetch(&self) {
        super::prefetch(&self.bytes[0]);
        super::prefetch(&self.bytes[self.bytes.len() - 1]);
    }

    /// Bytes held on the heap.
    pub fn bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Gives back the room left for appends.
    pub fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// The events in order.
    pub fn events(&self) -> Events<'_> {
        Events { b: &self.bytes, pos: self.body_start(), prev: None, base: &[] }
    }

    /// The first event's id (held whole), if there is an event.
    fn base(&self) -> Option<Id<'_>> {
        self.events().next().map(|e| e.id)
    }

    /// Adds an event at its place in the order (`scratch`: a reusable buffer
    /// for the event's encoding).
    pub fn insert(&mut self, e: &Ev, scratch: &mut Vec<u8>) {
        if self.last_at().is_none_or(|last| e.at > last) {
            scratch.clear();
            put_event(scratch, e, self.last_at(), self.base());
            // A replay appends to each deal many times before it is derived:
            // the room doubles, as a `Vec`'s does, so a deal of n events is
            // moved about log₂ n times while it is replayed.
            self.bytes.extend_from_slice(scratch);
            self.first = self.first.min(e.at);
            self.last = e.at;
            return;
        }
        let mut events: Vec<Ev> = self.events().collect();
        let at = events.partition_point(|x| x.key() < e.key());
        events.insert(at, *e);
        *self = self.with_events(&events);
    }

    /// Removes the events for which `remove` is true, and returns them.
    pub fn remove(&mut self, mut remove: impl FnMut(&Ev) -> bool) -> Vec<Removed> {
        let (gone, kept): (Vec<Ev>, Vec<Ev>) = self.events().partition(|e| remove(e));
        if gone.is_empty() {
            return Vec::new();
        }
        let removed = gone
            .iter()
            .map(|e| {
                let mut id = Vec::with_capacity(e.id.len());
                e.id.write(&mut id);
                Removed { at: e.at, kind: e.kind, attrs: e.attrs, part: e.part, id }
            })
            .collect();
        *self = self.with_events(&kept);
        removed
    }

    /// This log's name with `events` (in order) as its events.
    fn with_events(&self, events: &[Ev]) -> Log {
        let start = self.body_start();
        let mut out = Vec::with_capacity(self.bytes.len() + 32);
        out.extend_from_slice(&self.bytes[..start]);
        let mut prev = None;
        let base = events.first().map(|e| e.id);
        for (i, e) in events.iter().enumerate() {
            put_event(&mut out, e, prev, base.filter(|_| i > 0));
            prev = Some(e.at);
        }
        let (first, last) = events.first().zip(events.last()).map_or(EMPTY, |(first, last)| (first.at, last.at));
        Log { bytes: out, first, last }
    }
}

/// Iterator over a log's events.
pub struct Events<'a> {
    b: &'a [u8],
    pos: usize,
    prev: Option<i64>,
    /// The first event's id, once read.
    base: &'a [u8],
}

impl<'a> Iterator for Events<'a> {
    type Item = Ev<'a>;

    fn next(&mut self) -> Option<Ev<'a>> {
        if self.pos >= self.b.len() {
            return None;
        }
        let b = self.b;
        let p = &mut self.pos;
        let first = self.prev.is_none();
        let v = varint(b, p);
        let at = match self.prev {
            Some(prev) => prev + v as i64,
            None => unzigzag(v),
        };
        self.prev = Some(at);
        let tag = b[*p];
        *p += 1;
        let stage = (tag & HAS_STAGE != 0).then(|| varint(b, p) as u16);
        let attrs = varint(b, p) as u32;
        let part = varint(b, p) as u16;
        let amount = (tag & HAS_AMOUNT != 0).then(|| {
            if tag & IN_CENTS != 0 {
                return unzigzag(varint(b, p)) as f64 / 100.0;
            }
            let a = f64::from_le_bytes(b[*p..*p + 8].try_into().expect("8 bytes"));
            *p += 8;
            a
        });
        let answer = (tag & HAS_ANSWER != 0).then(|| {
            let byte = b[*p];
            *p += 1;
            let survey = if byte & NPS != 0 { Survey::Nps } else { Survey::Csat };
            Answer { survey, score: byte & !NPS }
        });
        let header = b[*p];
        *p += 1;
        let (shared, n) = if header < 0x80 {
            (usize::from(header >> 3), usize::from(header & 7))
        } else {
            (varint(b, p) as usize, varint(b, p) as usize)
        };
        let id = Id { head: &self.base[..shared], tail: &b[*p..*p + n] };
        *p += n;
        if first {
            self.base = id.tail;
        }
        Some(Ev { at, kind: EventType::ALL[usize::from(tag & KIND)], stage, amount, answer, attrs, part, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, id: &str) -> Ev<'_> {
        Ev {
            at,
            kind: EventType::Activity,
            stage: None,
            amount: None,
            answer: None,
            attrs: 3,
            part: 1,
            id: Id::new(id.as_bytes()),
        }
    }

    fn id_of(e: &Ev) -> Vec<u8> {
        let mut out = Vec::new();
        e.id.write(&mut out);
        out
    }

    #[test]
    fn events_stay_in_time_then_id_order_and_round_trip() {
        let mut log = Log::new("D-1");
        let mut won = ev(-5, "w");
        (won.kind, won.stage, won.amount, won.attrs, won.part) =
            (EventType::DealWon, Some(300), Some(1.5e300), 70000, 9);
        let mut nps = ev(20, "c");
        (nps.kind, nps.answer) = (EventType::Feedback, Some(Answer { survey: Survey::Nps, score: 10 }));
        for e in [ev(10, "b"), ev(10, "a"), nps, won, ev(10, "ab"), ev(i64::MAX / 2, "z")] {
            log.insert(&e, &mut Vec::new());
        }
        let got: Vec<(i64, Vec<u8>)> = log.events().map(|e| (e.at, id_of(&e))).collect();
        let want: Vec<(i64, Vec<u8>)> = [(-5, "w"), (10, "a"), (10, "ab"), (10, "b"), (20, "c"), (i64::MAX / 2, "z")]
            .map(|(at, id)| (at, id.as_bytes().to_vec()))
            .into();
        assert_eq!(got, want);
        // Appends leave room; shrinking gives it back and keeps every event.
        let grown = log.bytes();
        log.shrink();
        assert!(log.bytes() < grown, "{} then {}", grown, log.bytes());
        assert_eq!(log.events().map(|e| (e.at, id_of(&e))).collect::<Vec<_>>(), want);
        assert_eq!(log.events().next(), Some(won));
        assert_eq!(log.events().nth(4), Some(nps));
        assert_eq!(log.name(), "D-1");
        assert_eq!((log.first_at(), log.last_at()), (Some(-5), Some(i64::MAX / 2)));
        assert_eq!(log.remove(|e| e.at <= 10).len(), 4);
        assert_eq!(log.events().map(|e| e.at).collect::<Vec<_>>(), [20, i64::MAX / 2]);
        assert!(log.remove(|_| false).is_empty());
        log.remove(|_| true);
        assert!(log.is_empty());
        assert_eq!((log.first_at(), log.last_at()), (None, None));
        assert_eq!(log.name(), "D-1");
        // The span's extremes are times like any other, not "empty".
        for at in [i64::MAX, i64::MIN] {
            let mut log = Log::new("D-2");
            log.insert(&ev(at, "x"), &mut Vec::new());
            assert_eq!((log.first_at(), log.last_at()), (Some(at), Some(at)));
        }
    }

    /// Ids are held against the first event's, amounts as cents where they
    /// can be: whatever the ids and amounts, every event comes back whole,
    /// through appends, inserts before the first event, and removals.
    #[test]
    fn ids_and_amounts_come_back_exactly() {
        let long = "长".repeat(42) + "xy"; // 128 bytes
        let ids: Vec<String> = [
            "2-1234560",
            "2-1234561",
            "2-1234569",
            "2-1234570",
            "2-123",
            "2-1234560a",
            "2-12345601234567",
            "1",
            "2-1234560-resent-later",
            "长a",
            "长b",
            "长",
            &long,
            &long[..127],
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let amounts = [
            None,
            Some(0.0),
            Some(-0.0),
            Some(0.1),
            Some(1200.5),
            Some(45_000.07),
            Some(1e-9),
            Some(123.456),
            Some(9.0e15),
            Some(1e14 + 0.5),
            Some(f64::MAX),
            Some(f64::MIN_POSITIVE),
            Some(5e-324),
        ];
        let events: Vec<Ev> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Ev { amount: amounts[i % amounts.len()], ..ev(100 + i as i64, id) })
            .collect();
        let check = |log: &Log, want: &[&Ev]| {
            let got: Vec<(Ev, Vec<u8>)> = log.events().map(|e| (e, id_of(&e))).collect();
            assert_eq!(got.len(), want.len());
            for ((g, gid), w) in got.iter().zip(want) {
                assert_eq!((g.at, gid.as_slice()), (w.at, id_of(w).as_slice()));
                assert_eq!(g.amount.map(f64::to_bits), w.amount.map(f64::to_bits), "{:?}", w.amount);
                assert_eq!(g, *w);
            }
        };
        // In time order: each one an append against the first id.
        let mut log = Log::new("D-1");
        for e in &events {
            log.insert(e, &mut Vec::new());
        }
        check(&log, &events.iter().collect::<Vec<_>>());
        // Newest first: each insert comes before the first event and rewrites the log.
        let mut log = Log::new("D-1");
        for e in events.iter().rev() {
            log.insert(e, &mut Vec::new());
        }
        check(&log, &events.iter().collect::<Vec<_>>());
        // Removing the first event re-encodes the rest against the new first id.
        assert_eq!(log.remove(|e| e.at == 100).iter().map(|r| r.id.clone()).collect::<Vec<_>>(), [b"2-1234560"]);
        check(&log, &events[1..].iter().collect::<Vec<_>>());
        // A shared prefix is held once: generated ids take a few bytes each, not their length.
        let mut log = Log::new("D-1");
        for e in &events[..4] {
            log.insert(&Ev { amount: None, ..*e }, &mut Vec::new());
        }
        log.shrink();
        assert!(log.bytes() < 4 + 8 + 9 + 3 * 8, "{}", log.bytes());
        assert_eq!(cents(1200.5), Some(120_050));
        assert_eq!((cents(-0.0), cents(123.456), cents(f64::MAX)), (None, None, None));
    }
}
