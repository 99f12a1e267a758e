//! Which offsets of one partition a queue has settled (acked or
//! dead-lettered): a cursor below which everything is settled, plus the
//! settled ranges above it. Compact: its size is the number of gaps, i.e.
//! of unsettled messages sitting between settled ones.

use std::collections::BTreeMap;

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
        let mut start = offset;
        let mut end = offset + 1;
        if let Some((&s, &e)) = self.above.range(..offset).next_back() {
            if e == offset {
                start = s;
                self.above.remove(&s);
            }
        }
        if let Some(&e) = self.above.get(&end) {
            self.above.remove(&end);
            end = e;
        }
        if start == self.cursor {
            self.cursor = end;
        } else {
            self.above.insert(start, end);
        }
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
