//! Timestamps counted by key, for counts over windows `(start, T]` that
//! cost what the windows need, not what the events are: each key's
//! timestamps sit in day buckets, sorted, so a count adds up whole days and
//! binary-searches the two boundary days. A timestamp is kept as its
//! millisecond within its day (4 bytes), and a day's vector grows by an
//! eighth at a time.

use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// The millisecond of `at` within its day.
fn in_day(at: i64) -> u32 {
    at.rem_euclid(DAY_MS) as u32
}

#[derive(Default)]
pub struct TimeCounts<K> {
    keys: BTreeMap<K, BTreeMap<i64, Vec<u32>>>,
    len: usize,
}

impl<K: Ord + Copy> TimeCounts<K> {
    pub fn add(&mut self, key: K, at: i64) {
        let day = self.keys.entry(key).or_default().entry(at.div_euclid(DAY_MS)).or_default();
        let t = in_day(at);
        let pos = day.partition_point(|&x| x <= t);
        super::grow_by_eighth(day, 4);
        day.insert(pos, t);
        self.len += 1;
    }

    pub fn remove(&mut self, key: K, at: i64) {
        let Some(days) = self.keys.get_mut(&key) else { return };
        let d = at.div_euclid(DAY_MS);
        let Some(day) = days.get_mut(&d) else { return };
        if let Ok(pos) = day.binary_search(&in_day(at)) {
            day.remove(pos);
            self.len -= 1;
        }
        if day.is_empty() {
            days.remove(&d);
            if days.is_empty() {
                self.keys.remove(&key);
            }
        }
    }

    /// Timestamps of `key` in `(start, end]`.
    fn count(days: &BTreeMap<i64, Vec<u32>>, start: i64, end: i64) -> usize {
        if end <= start {
            return 0;
        }
        let (first, last) = (start.div_euclid(DAY_MS), end.div_euclid(DAY_MS));
        days.range(first..=last)
            .map(|(&d, ts)| {
                if d != first && d != last {
                    ts.len()
                } else {
                    // Wrapping: the day's start may lie below i64::MIN, the timestamp does not.
                    let at = |t: u32| d.wrapping_mul(DAY_MS).wrapping_add(i64::from(t));
                    ts.partition_point(|&t| at(t) <= end) - ts.partition_point(|&t| at(t) <= start)
                }
            })
            .sum()
    }

    /// For every key, the count in each `(start, end]` of `ranges`; keys with no count in any range are left out.
    pub fn counts(&self, ranges: &[(i64, i64)]) -> Vec<(K, Vec<usize>)> {
        self.keys
            .iter()
            .map(|(k, days)| (*k, ranges.iter().map(|&(s, e)| Self::count(days, s, e)).collect::<Vec<_>>()))
            .filter(|(_, c)| c.iter().any(|&n| n > 0))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.keys.values().flat_map(|d| d.values()).map(|v| v.capacity() * 4 + 48).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ranges_across_day_boundaries() {
        let mut c = TimeCounts::default();
        for at in [-1, 0, 5, DAY_MS, DAY_MS + 1, 3 * DAY_MS, 3 * DAY_MS] {
            c.add('a', at);
        }
        c.add('b', 7);
        assert_eq!(
            c.counts(&[(0, 3 * DAY_MS), (-2, DAY_MS), (5, 5)]),
            vec![('a', vec![5, 4, 0]), ('b', vec![1, 1, 0])]
        );
        c.remove('a', 3 * DAY_MS);
        c.remove('b', 7);
        c.remove('b', 7);
        assert_eq!(c.counts(&[(0, 3 * DAY_MS)]), vec![('a', vec![4])]);
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn keeps_timestamps_at_the_ends_of_the_range() {
        let mut c = TimeCounts::default();
        for at in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            c.add('a', at);
        }
        let counts = c.counts(&[(i64::MIN, i64::MIN + 1), (i64::MAX - 1, i64::MAX), (i64::MIN, i64::MAX)]);
        assert_eq!(counts, vec![('a', vec![1, 1, 3])]);
        c.remove('a', i64::MIN);
        assert_eq!(c.len(), 3);
    }
}
