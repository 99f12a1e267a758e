//! Which offsets of one partition a queue has settled (acked or
//! dead-lettered): a cursor below which everything is settled, plus the
//! settled ranges above it. Compact: its size is the number of gaps, i.e.
//! of unsettled messages sitting between settled ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// Every offset below this is settled.
    pub cursor: u64,
    /// Settled ranges above the cursor, `start -> end` (exclusive), disjoint,
    /// each starting after the cursor.
    above: BTreeMap<u64, u64>,
}

impl Settled {
    pub fn starting_at(cursor: u64) -> Settled {
        Settled {
            cursor,
            above: BTreeMap::new(),
        }
    }

    pub fn contains(&self, offset: u64) -> bool {
        offset < self.cursor
            || self
                .above
                .range(..=offset)
                .next_back()
                .is_some_and(|(_, end)| offset < *end)
    }

    /// Marks `offset` settled; false if it already was.
    pub fn insert(&mut self, offset: u64) -> bool {
        if self.contains(offset) {
            return false;
        }
        self.insert_range(offset, offset + 1);
        debug_assert!(self.above.keys().all(|s| *s > self.cursor));
        true
    }

    /// Moves the cursor up to `offset` (messages lost to retention).
    pub fn skip_to(&mut self, offset: u64) {
        if offset <= self.cursor {
            return;
        }
        self.cursor = offset;
        let below: Vec<u64> = self.above.range(..offset).map(|(s, _)| *s).collect();
        for start in below {
            if let Some(end) = self.above.remove(&start) {
                if end > self.cursor {
                    self.cursor = end;
                }
            }
        }
        while let Some(end) = self.above.remove(&self.cursor) {
            self.cursor = end;
        }
    }

    /// Marks every offset below `end` settled except those in `keep`
    /// (unsettled offsets to leave as they are, such as messages in
    /// flight); answers how many offsets were newly settled.
    pub fn settle_below_except(&mut self, end: u64, keep: &BTreeSet<u64>) -> u64 {
        if end <= self.cursor {
            return 0;
        }
        let before = self.settled_in(self.cursor, end);
        let keep: Vec<u64> = keep
            .range(self.cursor..end)
            .copied()
            .filter(|&offset| !self.contains(offset))
            .collect();
        // Ranges reaching past `end` keep their part past it.
        let mut above: BTreeMap<u64, u64> = BTreeMap::new();
        for (&start, &stop) in &self.above {
            if stop > end {
                above.insert(start.max(end), stop);
            }
        }
        let mut start = self.cursor;
        for &kept in keep.iter().chain(std::iter::once(&end)) {
            if start < kept {
                above.insert(start, kept);
            }
            start = kept + 1;
        }
        let newly = (end - self.cursor) - keep.len() as u64 - before;
        self.above = BTreeMap::new();
        let cursor = self.cursor;
        for (start, stop) in above {
            self.insert_range(start, stop);
        }
        debug_assert!(self.cursor >= cursor);
        newly
    }

    /// Settled offsets in `[start, end)` above the cursor.
    fn settled_in(&self, start: u64, end: u64) -> u64 {
        self.above
            .iter()
            .map(|(&s, &e)| e.min(end).saturating_sub(s.max(start)))
            .sum()
    }

    /// Adds the settled range `[start, end)` (disjoint from those held),
    /// merging it with its neighbours and the cursor.
    fn insert_range(&mut self, mut start: u64, mut end: u64) {
        if let Some((&s, &e)) = self.above.range(..start).next_back() {
            if e == start {
                start = s;
                self.above.remove(&s);
            }
        }
        if let Some(&e) = self.above.get(&end) {
            self.above.remove(&end);
            end = e;
        }
        if start <= self.cursor {
            self.cursor = self.cursor.max(end);
            while let Some(next) = self.above.remove(&self.cursor) {
                self.cursor = next;
            }
        } else {
            self.above.insert(start, end);
        }
    }

    /// Settled offsets above the cursor.
    pub fn above_count(&self) -> u64 {
        self.above.iter().map(|(s, e)| e - s).sum()
    }

    pub fn gaps(&self) -> usize {
        self.above.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_set(start in 0u64..5, offsets in proptest::collection::vec(0u64..60, 0..120)) {
            let mut settled = Settled::starting_at(start);
            let mut model: std::collections::BTreeSet<u64> = (0..start).collect();
            for offset in offsets {
                prop_assert_eq!(settled.insert(offset), model.insert(offset));
                for probe in 0..70 {
                    prop_assert_eq!(settled.contains(probe), model.contains(&probe));
                }
                let cursor = (0..).find(|o| !model.contains(o)).unwrap();
                prop_assert_eq!(settled.cursor, cursor);
                prop_assert_eq!(settled.above_count(), model.iter().filter(|o| **o >= cursor).count() as u64);
            }
        }
    }

    #[test]
    fn skipping_absorbs_ranges() {
        let mut settled = Settled::starting_at(0);
        settled.insert(5);
        settled.insert(9);
        settled.insert(10);
        settled.skip_to(6);
        assert_eq!(settled.cursor, 6);
        settled.skip_to(9);
        assert_eq!(settled.cursor, 11);
        assert_eq!(settled.gaps(), 0);
    }
}
