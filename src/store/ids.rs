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

impl IdSet {
    /// Adds `id`; false if it was already held.
    pub fn insert(&mut self, id: &[u8]) -> bool {
        let (b, v) = split(id);
        let bucket = &mut self.buckets[b];
        match bucket.binary_search(&v) {
            Ok(_) => false,
            Err(at) => {
                if bucket.len() == bucket.capacity() {
                    bucket.reserve_exact(4.max(bucket.len() / 8));
                }
                bucket.insert(at, v);
                self.len += 1;
                true
            }
        }
    }

    pub fn remove(&mut self, id: &[u8]) {
        let (b, v) = split(id);
        let bucket = &mut self.buckets[b];
        if let Ok(at) = bucket.binary_search(&v) {
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
    fn holds_each_id_once_and_gives_it_back() {
        let mut s = IdSet::default();
        for i in 0..10_000 {
            assert!(s.insert(format!("e{i}").as_bytes()));
        }
        assert!(!s.insert(b"e42"));
        assert_eq!(s.len(), 10_000);
        for i in 0..5_000 {
            s.remove(format!("e{i}").as_bytes());
        }
        assert_eq!(s.len(), 5_000);
        assert!(s.insert(b"e42"), "a removed id may come back");
        assert!(!s.insert(b"e9999"));
    }
}
