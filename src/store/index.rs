//! A shard's deal index: the deals' local slots by hash, in an
//! open-addressing table whose positions the store can compute, so that a
//! push can ask for an entry's cache line before it looks the deal up
//! ([`DealIndex::prefetch`]), which a general-purpose hash table does not
//! allow.
//!
//! An entry is one `u64`: the hash's top 32 bits (its tag) and the local
//! slot plus one (0 = empty). A hash's home is given by its top bits, so an
//! entry's home is known from its tag: the table grows and deletes
//! (backward shift, no tombstones) without hashing any deal again. Linear
//! probing, at most 7/8 full: about 9 bytes a deal.

/// Bits of the tag, the top bits of the hash.
const TAG_BITS: u32 = 32;

#[derive(Default)]
pub struct DealIndex {
    entries: Vec<u64>,
    len: usize,
}

fn tag(hash: u64) -> u64 {
    hash >> (64 - TAG_BITS)
}

impl DealIndex {
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The position where a tag's probe starts.
    fn home(&self, tag: u64) -> usize {
        let bits = self.entries.len().trailing_zeros();
        (tag >> (TAG_BITS - bits)) as usize
    }

    /// Asks for the cache line where `hash`'s probe starts.
    pub fn prefetch(&self, hash: u64) {
        if !self.entries.is_empty() {
            super::prefetch(&self.entries[self.home(tag(hash))]);
        }
    }

    /// The local slots whose tag is `hash`'s, in probe order: the deal with
    /// this hash, if indexed, is one of them.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let t = tag(hash);
        let start = if self.entries.is_empty() { 0 } else { self.home(t) };
        let n = self.entries.len();
        (0..n)
            .map(move |i| self.entries[(start + i) & (n - 1)])
            .take_while(|&e| e != 0)
            .filter(move |&e| e >> 32 == t)
            .map(|e| (e as u32) - 1)
    }

    /// Indexes `local` under `hash` (not indexed yet).
    pub fn insert(&mut self, hash: u64, local: u32) {
        if (self.len + 1) * 8 > self.entries.len() * 7 {
            self.grow();
        }
        self.place(tag(hash) << 32 | (u64::from(local) + 1));
        self.len += 1;
    }

    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut i = self.home(entry >> 32);
        while self.entries[i] != 0 {
            i = (i + 1) & mask;
        }
        self.entries[i] = entry;
    }

    fn grow(&mut self) {
        let size = (self.entries.len() * 2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![0; size]);
        for e in old.into_iter().filter(|&e| e != 0) {
            self.place(e);
        }
    }

    /// Takes `local` (indexed under `hash`) out.
    pub fn remove(&mut self, hash: u64, local: u32) {
        let want = tag(hash) << 32 | (u64::from(local) + 1);
        let mask = self.mask();
        let mut i = self.home(tag(hash));
        while self.entries[i] != want {
            assert_ne!(self.entries[i], 0, "removing a deal that is not indexed");
            i = (i + 1) & mask;
        }
        // Backward shift: move up each later entry of the run that may sit at
        // the hole (its home is not strictly between the hole and itself).
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.entries[j] != 0 {
            let home = self.home(self.entries[j] >> 32);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.entries[hole] = self.entries[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.entries[hole] = 0;
        self.len -= 1;
    }

    pub fn bytes(&self) -> usize {
        self.entries.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain map, with hashes made to share tags and homes so that
    /// runs wrap around the table's end and deletions shift.
    #[test]
    fn finds_what_it_holds_through_growth_and_removal() {
        let mut index = DealIndex::default();
        let mut held: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let hash = |k: u32| -> u64 {
            let x = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            match k % 4 {
                0 => x,
                1 => u64::MAX - u64::from(k % 8), // near the end: wraps
                2 => 0x8000_0000_0000_0000,       // one shared tag
                _ => x & 0xffff_0000_0000_0000,   // shared homes
            }
        };
        let mut rng = 7u64;
        for step in 0..20_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let k = (rng % 3_000) as u32;
            if let Some(h) = held.remove(&k) {
                index.remove(h, k);
            } else {
                index.insert(hash(k), k);
                held.insert(k, hash(k));
            }
            if step % 997 == 0 {
                for k in 0..3_000u32 {
                    let found = index.candidates(hash(k)).any(|l| l == k);
                    assert_eq!(found, held.contains_key(&k), "step {step}, deal {k}");
                }
            }
        }
        assert_eq!(index.len, held.len());
    }
}
