//! One deal's accepted events, packed into a byte string in
//! (`occurred_at`, `event_id` bytes) order: the order of docs/metrics.md §4.
//!
//! The log is the store's only copy of an event. Each event is a varint
//! time delta (the first one zigzag-encoded absolute time), a tag byte
//! (type, stage present, amount present), the stage index, the
//! attribute-set key, the partition index, the amount's 8 bytes when
//! present, and the length-prefixed `event_id`. About 20 bytes for a
//! typical event. The log begins with the deal's own name (its `deal_id`),
//! so the deal index needs no second copy of it.

use crate::event::EventType;

/// One decoded event of a log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ev<'a> {
    pub at: i64,
    pub kind: EventType,
    /// Stage index within the deal's pipeline.
    pub stage: Option<u16>,
    pub amount: Option<f64>,
    /// The store's attribute-set key (the event's seven optional strings).
    pub attrs: u32,
    /// The store's partition index.
    pub part: u16,
    pub id: &'a [u8],
}

impl Ev<'_> {
    /// The order of docs/metrics.md §4: by time, then by `event_id` bytes.
    fn key(&self) -> (i64, &[u8]) {
        (self.at, self.id)
    }
}

const HAS_STAGE: u8 = 0x08;
const HAS_AMOUNT: u8 = 0x10;

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

fn put_event(out: &mut Vec<u8>, e: &Ev, prev_at: Option<i64>) {
    match prev_at {
        Some(p) => put_varint(out, (e.at - p) as u64),
        None => put_varint(out, zigzag(e.at)),
    }
    let mut tag = e.kind as u8;
    if e.stage.is_some() {
        tag |= HAS_STAGE;
    }
    if e.amount.is_some() {
        tag |= HAS_AMOUNT;
    }
    out.push(tag);
    if let Some(s) = e.stage {
        put_varint(out, u64::from(s));
    }
    put_varint(out, u64::from(e.attrs));
    put_varint(out, u64::from(e.part));
    if let Some(a) = e.amount {
        out.extend_from_slice(&a.to_le_bytes());
    }
    put_varint(out, e.id.len() as u64);
    out.extend_from_slice(e.id);
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
/// grows by a quarter of its size at a time, and [`Log::shrink`] gives the room
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
        Events { b: &self.bytes, pos: self.body_start(), prev: None }
    }

    /// Adds an event at its place in the order (`scratch`: a reusable buffer
    /// for the event's encoding).
    pub fn insert(&mut self, e: &Ev, scratch: &mut Vec<u8>) {
        if self.last_at().is_none_or(|last| e.at > last) {
            scratch.clear();
            put_event(scratch, e, self.last_at());
            // A replay appends to each deal many times before it is derived:
            // grow by a quarter, not by one event (a reallocation each).
            if self.bytes.capacity() - self.bytes.len() < scratch.len() {
                self.bytes.reserve_exact(scratch.len().max(self.bytes.len() / 4));
            }
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
            .map(|e| Removed { at: e.at, kind: e.kind, attrs: e.attrs, part: e.part, id: e.id.to_vec() })
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
        for e in events {
            put_event(&mut out, e, prev);
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
}

impl<'a> Iterator for Events<'a> {
    type Item = Ev<'a>;

    fn next(&mut self) -> Option<Ev<'a>> {
        if self.pos >= self.b.len() {
            return None;
        }
        let b = self.b;
        let p = &mut self.pos;
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
            let a = f64::from_le_bytes(b[*p..*p + 8].try_into().expect("8 bytes"));
            *p += 8;
            a
        });
        let n = varint(b, p) as usize;
        let id = &b[*p..*p + n];
        *p += n;
        Some(Ev { at, kind: EventType::ALL[usize::from(tag & 0x07)], stage, amount, attrs, part, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: i64, id: &'static str) -> Ev<'static> {
        Ev { at, kind: EventType::Activity, stage: None, amount: None, attrs: 3, part: 1, id: id.as_bytes() }
    }

    #[test]
    fn events_stay_in_time_then_id_order_and_round_trip() {
        let mut log = Log::new("D-1");
        let mut won = ev(-5, "w");
        (won.kind, won.stage, won.amount, won.attrs, won.part) =
            (EventType::DealWon, Some(300), Some(1.5e300), 70000, 9);
        for e in [ev(10, "b"), ev(10, "a"), ev(20, "c"), won, ev(10, "ab"), ev(i64::MAX / 2, "z")] {
            log.insert(&e, &mut Vec::new());
        }
        let got: Vec<(i64, &[u8])> = log.events().map(|e| (e.at, e.id)).collect();
        let want: Vec<(i64, &[u8])> =
            vec![(-5, b"w"), (10, b"a"), (10, b"ab"), (10, b"b"), (20, b"c"), (i64::MAX / 2, b"z")];
        assert_eq!(got, want);
        // Appends leave room; shrinking gives it back and keeps every event.
        let grown = log.bytes();
        log.shrink();
        assert!(log.bytes() < grown, "{} then {}", grown, log.bytes());
        assert_eq!(log.events().map(|e| (e.at, e.id)).collect::<Vec<_>>(), want);
        assert_eq!(log.events().next(), Some(won));
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
}
