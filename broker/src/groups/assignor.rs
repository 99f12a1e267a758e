//! Partition assignors: given the members (with their subscriptions and
//! current targets) and the partitions of each topic, compute who should
//! own what. `sticky` (default) keeps every partition where it is unless
//! balance requires moving it; `range` and `roundrobin` are Kafka's.
//!
//! All three are deterministic (members are visited in id order) and
//! balanced per topic: member counts differ by at most one.

use std::collections::{BTreeMap, BTreeSet};

pub type Tp = (String, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Sticky,
    Range,
    RoundRobin,
}

impl Assignor {
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "" | "sticky" => Some(Assignor::Sticky),
            "range" => Some(Assignor::Range),
            "roundrobin" | "round-robin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Sticky => "sticky",
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }
}

pub struct MemberView<'a> {
    pub topics: &'a BTreeSet<String>,
    pub current: &'a BTreeSet<Tp>,
}

/// The target assignment: member id -> partitions.
pub fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, MemberView<'_>>,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut target: BTreeMap<String, BTreeSet<Tp>> = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (topic, count) in partitions {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, v)| v.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() || *count == 0 {
            continue;
        }
        let per_topic = match assignor {
            Assignor::Range => range(&subscribers, *count),
            Assignor::RoundRobin => round_robin(&subscribers, *count),
            Assignor::Sticky => sticky(topic, &subscribers, *count, members),
        };
        for (member, owned) in per_topic {
            let slot = target.entry(member.clone()).or_default();
            slot.extend(owned.into_iter().map(|p| (topic.clone(), p)));
        }
    }
    target
}

fn range<'a>(members: &[&'a String], count: u32) -> Vec<(&'a String, Vec<u32>)> {
    let n = members.len() as u32;
    let (base, extra) = (count / n, count % n);
    let mut next = 0;
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let take = base + u32::from((i as u32) < extra);
            let owned = (next..next + take).collect();
            next += take;
            (*m, owned)
        })
        .collect()
}

fn round_robin<'a>(members: &[&'a String], count: u32) -> Vec<(&'a String, Vec<u32>)> {
    let mut out: Vec<(&String, Vec<u32>)> = members.iter().map(|m| (*m, Vec::new())).collect();
    for p in 0..count {
        let slot = p as usize % out.len();
        out[slot].1.push(p);
    }
    out
}

/// Keep current owners up to each member's quota; hand the rest to the
/// members with the fewest, lowest id first.
fn sticky<'a>(
    topic: &str,
    subscribers: &[&'a String],
    count: u32,
    members: &BTreeMap<String, MemberView<'_>>,
) -> Vec<(&'a String, Vec<u32>)> {
    let n = subscribers.len() as u32;
    let (base, extra) = (count / n, count % n);
    let mut kept: Vec<(&String, Vec<u32>)> = Vec::with_capacity(subscribers.len());
    let mut taken = BTreeSet::new();
    for member in subscribers {
        let mut mine: Vec<u32> = members[*member]
            .current
            .iter()
            .filter(|(t, p)| t == topic && *p < count)
            .map(|(_, p)| *p)
            .filter(|p| !taken.contains(p))
            .collect();
        mine.truncate((base + 1) as usize);
        taken.extend(mine.iter().copied());
        kept.push((*member, mine));
    }
    // At most `extra` members may hold base + 1.
    let mut allowed_extra = extra;
    for (_, mine) in kept.iter_mut() {
        if mine.len() as u32 > base {
            if allowed_extra > 0 {
                allowed_extra -= 1;
            } else {
                while mine.len() as u32 > base {
                    if let Some(p) = mine.pop() {
                        taken.remove(&p);
                    }
                }
            }
        }
    }
    // Whatever is left goes to whoever has the fewest. This stays within the
    // quotas: the remaining partitions never outnumber the remaining room.
    for p in (0..count).filter(|p| !taken.contains(p)) {
        if let Some((_, mine)) = kept.iter_mut().min_by_key(|(_, mine)| mine.len()) {
            mine.push(p);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(topics: &'a BTreeSet<String>, current: &'a BTreeSet<Tp>) -> MemberView<'a> {
        MemberView { topics, current }
    }

    fn counts(target: &BTreeMap<String, BTreeSet<Tp>>) -> Vec<usize> {
        target.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn every_assignor_covers_each_partition_once_and_balances() {
        let topics: BTreeSet<String> = ["t".to_string()].into();
        let empty = BTreeSet::new();
        for assignor in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
            for members_n in 1..6 {
                for partitions in 0..13u32 {
                    let ids: Vec<String> = (0..members_n).map(|i| format!("m{i}")).collect();
                    let members: BTreeMap<String, MemberView> = ids
                        .iter()
                        .map(|id| (id.clone(), view(&topics, &empty)))
                        .collect();
                    let target =
                        assign(assignor, &members, &[("t".to_string(), partitions)].into());
                    let all: Vec<&Tp> = target.values().flatten().collect();
                    assert_eq!(all.len(), partitions as usize);
                    assert_eq!(
                        all.iter().collect::<BTreeSet<_>>().len(),
                        partitions as usize
                    );
                    let c = counts(&target);
                    assert!(
                        c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
                        "{assignor:?} {c:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn sticky_moves_only_what_balance_requires() {
        let topics: BTreeSet<String> = ["t".to_string()].into();
        let none = BTreeSet::new();
        let three: BTreeMap<String, MemberView> = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), view(&topics, &none)))
            .collect();
        let first = assign(Assignor::Sticky, &three, &[("t".to_string(), 6)].into());
        assert_eq!(counts(&first), vec![2, 2, 2]);
        // A fourth member joins: it takes 1 or 2 partitions, nobody else gains any.
        let mut four: BTreeMap<String, MemberView> = first
            .iter()
            .map(|(id, cur)| (id.clone(), view(&topics, cur)))
            .collect();
        four.insert("d".into(), view(&topics, &none));
        let second = assign(Assignor::Sticky, &four, &[("t".to_string(), 6)].into());
        for id in ["a", "b", "c"] {
            assert!(
                second[id].is_subset(&first[id]),
                "{id} gained or swapped partitions"
            );
        }
        let moved: usize = ["a", "b", "c"]
            .iter()
            .map(|id| first[*id].len() - second[*id].len())
            .sum();
        assert_eq!(moved, second["d"].len());
        assert!(moved <= 2);
        // A member leaves: only its partitions move.
        let mut three_again: BTreeMap<String, MemberView> = second
            .iter()
            .map(|(id, cur)| (id.clone(), view(&topics, cur)))
            .collect();
        three_again.remove("b");
        let third = assign(
            Assignor::Sticky,
            &three_again,
            &[("t".to_string(), 6)].into(),
        );
        for id in ["a", "c", "d"] {
            assert!(
                second[id].is_subset(&third[id]),
                "{id} lost a partition it kept"
            );
        }
    }
}
