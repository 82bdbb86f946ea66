//! The deals, in two shards by the hash of (pipeline, `deal_id`), so that
//! two threads can append a push's events at once. A deal's slot (its
//! `deal_key`) is `local << 1 | shard`; a shard reuses the slots of deals
//! that are gone.

use super::index::DealIndex;
use super::log::{Ev, Log};

/// One deal: its log and what the store needs to find its events.
pub struct Deal {
    pub log: Log,
    pub pipeline: u16,
    /// Bit `p % 32` is set when the log may hold events of partition index `p`.
    pub parts: u32,
    /// Waiting in its shard's `dirty` to be derived again.
    dirty: bool,
}

/// An event to append to the log of deal (`pipeline`, `name`).
pub struct Append<'a> {
    pub pipeline: u16,
    pub name: &'a str,
    pub ev: Ev<'a>,
}

pub fn deal_hash(pipeline: u16, deal_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(deal_id.as_bytes(), u64::from(pipeline))
}

/// The shard of a hash: its lowest bit (the index uses the top ones).
fn shard_of(hash: u64) -> usize {
    hash as usize & 1
}

/// How far ahead of the deal it appends to a shard asks for the cache lines
/// it will need: the index entry `AHEAD` events on, the deal slot half as
/// far, the log a quarter as far (each found through what came before).
const AHEAD: usize = 16;

#[derive(Default)]
struct Shard {
    /// Local slots, hashed by [`deal_hash`].
    index: DealIndex,
    /// Deals by local slot; `None` is a free slot.
    deals: Vec<Option<Deal>>,
    free: Vec<u32>,
    /// Slots (global) to derive again at the next refresh.
    dirty: Vec<u32>,
    /// A reused buffer for an event's encoding.
    scratch: Vec<u8>,
}

impl Shard {
    /// The deal (`pipeline`, `name`) with hash `hash`, if it is here.
    fn find(&self, hash: u64, pipeline: u16, name: &str) -> Option<u32> {
        self.index
            .candidates(hash)
            .find(|&l| self.deals[l as usize].as_ref().is_some_and(|d| d.pipeline == pipeline && d.log.is_named(name)))
    }

    /// The slot of the first indexed deal with `hash`'s tag: almost always
    /// its deal's (for prefetching only).
    fn likely(&self, hash: u64) -> Option<&Option<Deal>> {
        self.deals.get(self.index.candidates(hash).next()? as usize)
    }

    /// Appends each of `appends` (with their hashes) that belongs to this
    /// shard; true when a deal was created.
    fn append_all(&mut self, me: u32, appends: &[Append], hashes: &[u64]) -> bool {
        let mine: Vec<usize> = (0..appends.len()).filter(|&i| shard_of(hashes[i]) == me as usize).collect();
        let mut new = false;
        for (n, &i) in mine.iter().enumerate() {
            // A large store's deals are mostly out of cache: fetch ahead.
            if let Some(&j) = mine.get(n + AHEAD) {
                self.index.prefetch(hashes[j]);
            }
            if let Some(&j) = mine.get(n + AHEAD / 2)
                && let Some(slot) = self.likely(hashes[j])
            {
                super::prefetch(slot);
            }
            if let Some(&j) = mine.get(n + AHEAD / 4)
                && let Some(Some(d)) = self.likely(hashes[j])
            {
                d.log.prefetch();
            }
            new |= self.append(me, hashes[i], &appends[i]);
        }
        new
    }

    /// Appends to the deal's log, creating the deal; true when it is new.
    fn append(&mut self, me: u32, hash: u64, a: &Append) -> bool {
        let (local, new) = match self.find(hash, a.pipeline, a.name) {
            Some(l) => (l, false),
            None => (self.create(hash, a), true),
        };
        let deal = self.deals[local as usize].as_mut().expect("live slot");
        deal.log.insert(&a.ev, &mut self.scratch);
        deal.parts |= 1 << (a.ev.part % 32);
        if !deal.dirty {
            deal.dirty = true;
            self.dirty.push(local << 1 | me);
        }
        new
    }

    fn create(&mut self, hash: u64, a: &Append) -> u32 {
        let deal = Deal { log: Log::new(a.name), pipeline: a.pipeline, parts: 0, dirty: false };
        let local = match self.free.pop() {
            Some(l) => {
                self.deals[l as usize] = Some(deal);
                l
            }
            None => {
                super::grow_by_eighth(&mut self.deals, 16);
                self.deals.push(Some(deal));
                (self.deals.len() - 1) as u32
            }
        };
        self.index.insert(hash, local);
        local
    }
}

#[derive(Default)]
pub struct Deals {
    shards: [Shard; 2],
}

fn split(slot: u32) -> (usize, usize) {
    ((slot & 1) as usize, (slot >> 1) as usize)
}

impl Deals {
    /// Appends each event to its deal's log, creating deals; with `parallel`,
    /// the two shards on two threads. True when a deal was created.
    pub fn append_all(&mut self, appends: &[Append], parallel: bool) -> bool {
        let hashes: Vec<u64> = appends.iter().map(|a| deal_hash(a.pipeline, a.name)).collect();
        let [first, second] = &mut self.shards;
        let (a, b) =
            super::both(parallel, || first.append_all(0, appends, &hashes), || second.append_all(1, appends, &hashes));
        a | b
    }

    pub fn get(&self, slot: u32) -> Option<&Deal> {
        let (s, l) = split(slot);
        self.shards[s].deals.get(l)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Deal> {
        let (s, l) = split(slot);
        self.shards[s].deals.get_mut(l)?.as_mut()
    }

    /// Marks a live deal to be derived again.
    pub fn mark_dirty(&mut self, slot: u32) {
        let (s, l) = split(slot);
        let shard = &mut self.shards[s];
        if let Some(Some(d)) = shard.deals.get_mut(l)
            && !d.dirty
        {
            d.dirty = true;
            shard.dirty.push(slot);
        }
    }

    /// Folds up to `limit` deals a shard of those marked (unmarked now) into
    /// one accumulator a shard: `f(acc, slot, deal)`; with `parallel`, the
    /// two shards on two threads.
    pub fn drain_dirty<A: Default + Send>(
        &mut self,
        limit: usize,
        parallel: bool,
        f: impl Fn(&mut A, u32, &mut Deal) + Sync,
    ) -> [A; 2] {
        let run = |shard: &mut Shard| {
            let mut acc = A::default();
            for slot in shard.dirty.split_off(shard.dirty.len().saturating_sub(limit)) {
                if let Some(Some(d)) = shard.deals.get_mut(split(slot).1) {
                    d.dirty = false;
                    f(&mut acc, slot, d);
                }
            }
            acc
        };
        let [first, second] = &mut self.shards;
        let (a, b) = super::both(parallel, || run(first), || run(second));
        [a, b]
    }

    /// How many deals are marked.
    pub fn dirty(&self) -> usize {
        self.shards.iter().map(|s| s.dirty.len()).sum()
    }

    /// Removes a deal; its slot is free for a new one.
    pub fn remove(&mut self, slot: u32) {
        let (s, l) = split(slot);
        let shard = &mut self.shards[s];
        let deal = shard.deals[l].take().expect("live slot");
        shard.index.remove(deal_hash(deal.pipeline, deal.log.name()), l as u32);
        shard.free.push(l as u32);
    }

    /// One past the largest slot that may be live.
    pub fn end(&self) -> u32 {
        self.shards.iter().map(|s| s.deals.len()).max().unwrap_or(0) as u32 * 2
    }

    /// The live deals in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Deal)> {
        (0..self.end()).filter_map(|s| Some((s, self.get(s)?)))
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.deals.len() - s.free.len()).sum()
    }

    /// Bytes held by the slots and the index (the logs not included).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.deals.capacity() * std::mem::size_of::<Option<Deal>>() + s.index.bytes()).sum()
    }
}
