//! The group state machine alone: join, heartbeat, leave, session expiry,
//! rebalancing and commit fencing, driven by method calls and a clock
//! value; and a property test over random operation sequences.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::domain::{GroupName, OffsetReset, TopicName};
use crate::error::BrokerError;

fn partitions() -> BTreeMap<String, u32> {
    [("t".to_string(), 6), ("u".to_string(), 3)].into()
}

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig {
        default_session_timeout_ms: 10_000,
        empty_group_retention_ms: 60_000,
    })
}

fn args(member_id: &str, topics: &[&str], session_timeout_ms: u32) -> JoinArgs {
    JoinArgs {
        group: GroupName::new("g").unwrap(),
        member_id: member_id.into(),
        client_id: "test".into(),
        topics: topics.iter().map(|t| TopicName::new(*t).unwrap()).collect(),
        assignor: Assignor::Sticky,
        session_timeout_ms,
        offset_reset: OffsetReset::Earliest,
    }
}

fn join(c: &mut Coordinator, id: &str, now: Instant) -> MemberAssignment {
    c.join(args(id, &["t"], 10_000), &partitions(), now)
        .unwrap()
}

#[test]
fn a_partition_moves_only_after_its_owner_lets_go() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, "a", now);
    assert_eq!(a.assignment.len(), 6);
    c.heartbeat("g", "a", a.assignment.clone(), now).unwrap();
    let b = join(&mut c, "b", now);
    assert!(b.assignment.is_empty(), "a still owns everything");
    // a learns it must give up 3; until it reports so, b gets nothing.
    let a2 = c.heartbeat("g", "a", a.assignment.clone(), now).unwrap();
    assert_eq!(a2.assignment.len(), 3);
    assert!(a2.member_epoch > a.member_epoch);
    assert!(c
        .heartbeat("g", "b", BTreeSet::new(), now)
        .unwrap()
        .assignment
        .is_empty());
    // a releases; now b gets its three, none of a's.
    c.heartbeat("g", "a", a2.assignment.clone(), now).unwrap();
    let b2 = c.heartbeat("g", "b", BTreeSet::new(), now).unwrap();
    assert_eq!(b2.assignment.len(), 3);
    assert!(b2.assignment.is_disjoint(&a2.assignment));
    // Commits are fenced by ownership.
    let mine = b2.assignment.iter().next().unwrap().clone();
    assert!(c
        .check_commit("g", "b", std::slice::from_ref(&mine))
        .is_ok());
    assert!(matches!(
        c.check_commit("g", "a", &[mine]),
        Err(BrokerError::FencedMember { .. })
    ));
    assert!(matches!(
        c.check_commit("g", "zombie", &[]),
        Err(BrokerError::FencedMember { .. })
    ));
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_at_once() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, "a", now);
    c.heartbeat("g", "a", a.assignment.clone(), now).unwrap();
    join(&mut c, "b", now);
    c.leave("g", "a", &partitions(), now).unwrap();
    let b = c.heartbeat("g", "b", BTreeSet::new(), now).unwrap();
    assert_eq!(b.assignment.len(), 6, "nobody else holds anything");
    assert!(matches!(
        c.leave("g", "a", &partitions(), now),
        Err(BrokerError::UnknownMember(_))
    ));
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}

#[test]
fn a_lapsed_session_removes_and_fences_the_member() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = c
        .join(args("a", &["t"], 1_000), &partitions(), now)
        .unwrap();
    join(&mut c, "b", now);
    let later = now + Duration::from_millis(1_500);
    c.heartbeat("g", "b", BTreeSet::new(), later).unwrap();
    let expired = c.expire_sessions(&partitions(), later);
    assert_eq!(expired, vec![("g".to_string(), "a".to_string())]);
    let refused = c.heartbeat("g", "a", a.assignment.clone(), later);
    assert!(matches!(refused, Err(BrokerError::FencedMember { .. })));
    let tp = a.assignment.iter().next().unwrap().clone();
    assert!(
        c.check_commit("g", "a", &[tp]).is_err(),
        "zombie commits refused"
    );
    let b = c.heartbeat("g", "b", BTreeSet::new(), later).unwrap();
    assert_eq!(b.assignment.len(), 6);
    // Rejoining clears the fence.
    c.join(args("a", &["t"], 1_000), &partitions(), later)
        .unwrap();
}

#[test]
fn an_empty_group_expires_after_its_retention() {
    let (mut c, now) = (coordinator(), Instant::now());
    join(&mut c, "a", now);
    c.leave("g", "a", &partitions(), now).unwrap();
    assert_eq!(c.list()[0].1, GroupState::Empty);
    assert!(c
        .expired_empty_groups(&[], now + Duration::from_secs(59))
        .is_empty());
    let doomed = c.expired_empty_groups(&[], now + Duration::from_secs(61));
    assert_eq!(doomed, vec!["g".to_string()]);
    assert!(c.describe("g").is_none());
}

#[test]
fn subscriptions_drive_the_target_and_the_state() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = c
        .join(args("a", &["t", "u"], 10_000), &partitions(), now)
        .unwrap();
    assert_eq!(a.assignment.len(), 9);
    c.heartbeat("g", "a", a.assignment.clone(), now).unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    let b = c
        .join(args("b", &["u"], 10_000), &partitions(), now)
        .unwrap();
    assert!(b.assignment.is_empty());
    assert_eq!(c.describe("g").unwrap().state, GroupState::Reconciling);
    c.topic_deleted("u", &[("t".to_string(), 6)].into());
    let view = c.describe("g").unwrap();
    assert!(view.owners.keys().all(|(t, _)| t == "t"));
    assert!(matches!(
        c.join(args("c", &["nope"], 10_000), &partitions(), now),
        Err(BrokerError::UnknownTopic(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    /// Heartbeat reporting the assignment as owned (the member let go).
    Release(u8),
    /// Heartbeat still reporting what it had before.
    Hold(u8),
    Leave(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5).prop_map(Op::Join),
        (0u8..5).prop_map(Op::Release),
        (0u8..5).prop_map(Op::Hold),
        (0u8..5).prop_map(Op::Leave),
        (0u16..1500).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Whatever members do, no partition is ever assigned to two members
    /// at once (the state machine asserts it after every step too), and
    /// once everyone reports its assignment the group converges.
    #[test]
    fn random_operations_never_assign_a_partition_twice(ops in proptest::collection::vec(op(), 1..80)) {
        let mut c = coordinator();
        let mut now = Instant::now();
        let mut last: BTreeMap<u8, BTreeSet<Tp>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Join(m) => {
                    let joined = c.join(args(&format!("m{m}"), &["t", "u"], 1_000), &partitions(), now);
                    if let Ok(answer) = joined {
                        last.insert(m, answer.assignment);
                    }
                }
                Op::Release(m) | Op::Hold(m) => {
                    let owned = match op {
                        Op::Release(_) => last.get(&m).cloned().unwrap_or_default(),
                        _ => BTreeSet::new(),
                    };
                    if let Ok(answer) = c.heartbeat("g", &format!("m{m}"), owned, now) {
                        last.insert(m, answer.assignment);
                    }
                }
                Op::Leave(m) => {
                    let _ = c.leave("g", &format!("m{m}"), &partitions(), now);
                    last.remove(&m);
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    for (_, member) in c.expire_sessions(&partitions(), now) {
                        let id: u8 = member[1..].parse().unwrap();
                        last.remove(&id);
                    }
                }
            }
            let view = c.describe("g");
            let mut seen = BTreeSet::new();
            for member in view.iter().flat_map(|v| v.members.iter()) {
                for tp in &member.assignment {
                    prop_assert!(seen.insert(tp.clone()), "{tp:?} held twice");
                }
            }
        }
        // Everyone keeps reporting what it was given: within a few rounds
        // the group is stable and every partition is assigned.
        let live: Vec<String> = c.describe("g").map(|v| v.members.iter().map(|m| m.member_id.clone()).collect()).unwrap_or_default();
        for _ in 0..6 {
            for id in &live {
                let current = c.describe("g").unwrap().members.iter().find(|m| m.member_id == *id).map(|m| m.assignment.iter().cloned().collect()).unwrap_or_default();
                c.heartbeat("g", id, current, now).unwrap();
            }
        }
        if !live.is_empty() {
            let view = c.describe("g").unwrap();
            prop_assert_eq!(view.state, GroupState::Stable);
            prop_assert_eq!(view.owners.len(), 9);
        }
    }
}
