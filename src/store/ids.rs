//! The set of held `event_id`s, for dedup.
//!
//! An id is kept as 80 bits of its xxh3-128 hash: the top 16 bits choose
//! one of 65,536 buckets, each a sorted vector of the next 64 bits. Two
//! different ids collide with probability about n²/2⁸¹ (4·10⁻¹¹ at 10M
//! held events). That is 8 bytes an event plus the vectors' spare room,
//! kept under 1/8 by growing each vector by an eighth at a time, against 19–34
//! bytes for a hash set of 128-bit values.

const BUCKET_BITS: u32 = 16;

pub struct IdSet {
    buckets: Vec<Vec<u64>>,
    len: usize,
}

impl Default for IdSet {
    fn default() -> IdSet {
        IdSet { buckets: (0..1 << BUCKET_BITS).map(|_| Vec::new()).collect(), len: 0 }
    }
}

fn split(id: &[u8]) -> (usize, u64) {
    let h = xxhash_rust::xxh3::xxh3_128(id);
    ((h >> (128 - BUCKET_BITS)) as usize, h as u64)
}

/// How far ahead [`IdSet::insert_all`] prefetches.
const AHEAD: usize = 16;

/// `binary_search` for a sorted bucket of uniform hash values: the search
/// starts where `v` would sit if the values were evenly spread and steps
/// from there (a few steps, in one or two cache lines, instead of a binary
/// search's scattered reads of a large bucket).
fn search(bucket: &[u64], v: u64) -> Result<usize, usize> {
    let n = bucket.len();
    let mut i = ((u128::from(v) * n as u128) >> 64) as usize;
    while i < n && bucket[i] < v {
        i += 1;
    }
    while i > 0 && bucket[i - 1] >= v {
        i -= 1;
    }
    if bucket.get(i) == Some(&v) { Ok(i) } else { Err(i) }
}

/// Adds `v` to a bucket; false if it was already held.
fn add(bucket: &mut Vec<u64>, v: u64) -> bool {
    match search(bucket, v) {
        Ok(_) => false,
        Err(at) => {
            super::grow_by_eighth(bucket, 4);
            bucket.insert(at, v);
            true
        }
    }
}

impl IdSet {
    /// Adds each of `ids` in order; false for one already held (or earlier
    /// in `ids`). With `parallel`, the two halves of the buckets on two threads.
    pub fn insert_all(&mut self, ids: &[&[u8]], parallel: bool) -> Vec<bool> {
        let keys: Vec<(usize, u64)> = ids.iter().map(|id| split(id)).collect();
        let half = self.buckets.len() / 2;
        let (low, high) = self.buckets.split_at_mut(half);
        let run = |buckets: &mut [Vec<u64>], base: usize| -> Vec<bool> {
            let range = base..base + buckets.len();
            let mine: Vec<(usize, u64)> =
                keys.iter().filter(|(b, _)| range.contains(b)).map(|&(b, v)| (b - base, v)).collect();
            let mut added = Vec::with_capacity(mine.len());
            for (i, &(b, v)) in mine.iter().enumerate() {
                // The buckets of a large set are mostly out of cache: ask for
                // the vector of the id AHEAD places on, and for the place in
                // its values where the id half as far on will be searched.
                if let Some(&(b, _)) = mine.get(i + AHEAD) {
                    super::prefetch(&buckets[b]);
                }
                if let Some(&(b, v)) = mine.get(i + AHEAD / 2) {
                    let bucket = &buckets[b];
                    if !bucket.is_empty() {
                        super::prefetch(&bucket[((u128::from(v) * bucket.len() as u128) >> 64) as usize]);
                    }
                }
                added.push(add(&mut buckets[b], v));
            }
            added
        };
        let (low, high) = super::both(parallel, || run(low, 0), || run(high, half));
        let (mut low, mut high) = (low.into_iter(), high.into_iter());
        let added: Vec<bool> = keys
            .iter()
            .map(|&(b, _)| if b < half { low.next() } else { high.next() }.expect("one answer per id"))
            .collect();
        self.len += added.iter().filter(|&&a| a).count();
        added
    }

    pub fn remove(&mut self, id: &[u8]) {
        let (b, v) = split(id);
        let bucket = &mut self.buckets[b];
        if let Ok(at) = search(bucket, v) {
            bucket.remove(at);
            self.len -= 1;
            if bucket.capacity() > 2 * bucket.len() + 8 {
                bucket.shrink_to(bucket.len() + bucket.len() / 8);
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held, vectors' spare room included.
    pub fn bytes(&self) -> usize {
        self.buckets.iter().map(|b| b.capacity() * 8).sum::<usize>() + self.buckets.len() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_agrees_with_binary_search() {
        let mut values: Vec<u64> = (0..500u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        values.extend([0, u64::MAX, 7, 7 << 60]);
        values.sort();
        values.dedup();
        for n in [0, 1, 2, 17, values.len()] {
            let bucket = &values[..n];
            let probes = values.iter().flat_map(|&v| [v, v.wrapping_add(1), v.wrapping_sub(1)]);
            for v in probes.chain([0, u64::MAX]) {
                assert_eq!(search(bucket, v), bucket.binary_search(&v), "{v} in {n} values");
            }
        }
    }

    #[test]
    fn holds_each_id_once_and_gives_it_back() {
        let mut s = IdSet::default();
        let ids: Vec<String> = (0..10_000).map(|i| format!("e{i}")).collect();
        let ids: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes()).collect();
        assert!(s.insert_all(&ids, true).iter().all(|&a| a));
        assert_eq!(s.insert_all(&[b"e42".as_slice(), b"new", b"new", b"e7"], false), [false, true, false, false]);
        assert_eq!(s.len(), 10_001);
        let again: Vec<&[u8]> = ids.iter().chain(&ids).copied().collect();
        assert!(s.insert_all(&again, true).iter().all(|&a| !a), "held ids, on both threads, twice");
        for id in &ids[..5_000] {
            s.remove(id);
        }
        assert_eq!(s.len(), 5_001);
        assert_eq!(
            s.insert_all(&[b"e42".as_slice(), b"e42", b"e9999"], true),
            [true, false, false],
            "a removed id may come back"
        );
    }
}
