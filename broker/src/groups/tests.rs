//! The group state machine alone: join, heartbeat, leave, session expiry,
//! rebalancing, commit fencing, member ids, claims on partitions and the
//! group limits, driven by method calls and a clock value; and a property
//! test over random operation sequences (liars included).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::coordinator::{EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS, OFFSET_ONLY_GROUPS_LIMIT};
use super::*;
use crate::domain::{GroupName, OffsetReset, TopicName};
use crate::error::{BrokerError, FenceReason};

fn partitions() -> BTreeMap<String, u32> {
    [("t".to_string(), 6), ("u".to_string(), 3)].into()
}

fn every_partition() -> BTreeSet<Tp> {
    partitions()
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .collect()
}

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig {
        default_session_timeout_ms: 10_000,
        empty_group_retention_ms: 60_000,
    })
}

fn group(name: &str) -> GroupName {
    GroupName::new(name).unwrap()
}

fn args_in(group_name: &str, member_id: &str, topics: &[&str], session_ms: u32) -> JoinArgs {
    JoinArgs {
        group: group(group_name),
        member_id: member_id.into(),
        client_id: "test".into(),
        topics: topics.iter().map(|t| TopicName::new(*t).unwrap()).collect(),
        assignor: Assignor::Sticky,
        session_timeout_ms: session_ms,
        offset_reset: OffsetReset::Earliest,
    }
}

fn args(member_id: &str, topics: &[&str], session_timeout_ms: u32) -> JoinArgs {
    args_in("g", member_id, topics, session_timeout_ms)
}

/// A new member of "g" on topic t; its id is in the answer.
fn join(c: &mut Coordinator, now: Instant) -> MemberAssignment {
    c.join(args("", &["t"], 10_000), &partitions(), now)
        .unwrap()
}

fn is_fenced(result: Result<(), BrokerError>, expected: FenceReason) -> bool {
    matches!(result, Err(BrokerError::FencedMember { reason, .. }) if reason == expected)
}

#[test]
fn a_partition_moves_only_after_its_owner_lets_go() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, now);
    let a_id = a.member_id.clone();
    assert_eq!(a.assignment.len(), 6);
    c.heartbeat("g", &a_id, a.assignment.clone(), now).unwrap();
    let b = join(&mut c, now);
    let b_id = b.member_id.clone();
    assert!(b.assignment.is_empty(), "a still owns everything");
    // a learns it must give up 3; until it reports so, b gets nothing.
    let a2 = c.heartbeat("g", &a_id, a.assignment.clone(), now).unwrap();
    assert_eq!(a2.assignment.len(), 3);
    assert!(a2.member_epoch > a.member_epoch);
    assert!(c
        .heartbeat("g", &b_id, BTreeSet::new(), now)
        .unwrap()
        .assignment
        .is_empty());
    // While a lets go it may still commit what was taken from it.
    let taken = a
        .assignment
        .difference(&a2.assignment)
        .next()
        .unwrap()
        .clone();
    assert!(c
        .admit_commit(&group("g"), &a_id, std::slice::from_ref(&taken), now)
        .is_ok());
    // a releases; now b gets its three, none of a's.
    c.heartbeat("g", &a_id, a2.assignment.clone(), now).unwrap();
    let b2 = c.heartbeat("g", &b_id, BTreeSet::new(), now).unwrap();
    assert_eq!(b2.assignment.len(), 3);
    assert!(b2.assignment.is_disjoint(&a2.assignment));
    // Commits are fenced by ownership.
    let mine = b2.assignment.iter().next().unwrap().clone();
    assert!(c
        .admit_commit(&group("g"), &b_id, std::slice::from_ref(&mine), now)
        .is_ok());
    let by_a = c.admit_commit(&group("g"), &a_id, &[mine], now);
    assert!(is_fenced(by_a, FenceReason::NotOwner));
    let zombie = c.admit_commit(&group("g"), "zombie", &[], now);
    assert!(is_fenced(zombie, FenceReason::NotAMember));
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_at_once() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, now);
    c.heartbeat("g", &a.member_id, a.assignment.clone(), now)
        .unwrap();
    let b = join(&mut c, now);
    c.leave("g", &a.member_id, &partitions(), now).unwrap();
    let b = c
        .heartbeat("g", &b.member_id, BTreeSet::new(), now)
        .unwrap();
    assert_eq!(b.assignment.len(), 6, "nobody else holds anything");
    assert!(matches!(
        c.leave("g", &a.member_id, &partitions(), now),
        Err(BrokerError::UnknownMember(_))
    ));
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}

#[test]
fn a_lapsed_session_removes_and_fences_the_member() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = c.join(args("", &["t"], 1_000), &partitions(), now).unwrap();
    let b = join(&mut c, now);
    let later = now + Duration::from_millis(1_500);
    c.heartbeat("g", &b.member_id, BTreeSet::new(), later)
        .unwrap();
    let expired = c.expire_sessions(&partitions(), later);
    assert_eq!(expired, vec![("g".to_string(), a.member_id.clone())]);
    let refused = c.heartbeat("g", &a.member_id, a.assignment.clone(), later);
    assert!(matches!(refused, Err(BrokerError::FencedMember { .. })));
    let tp = a.assignment.iter().next().unwrap().clone();
    let zombie = c.admit_commit(&group("g"), &a.member_id, std::slice::from_ref(&tp), later);
    assert!(
        is_fenced(zombie, FenceReason::Removed),
        "zombie commits refused"
    );
    let b = c
        .heartbeat("g", &b.member_id, BTreeSet::new(), later)
        .unwrap();
    assert_eq!(b.assignment.len(), 6);
    // Rejoining makes a new member; the old id stays fenced.
    let again = c
        .join(args(&a.member_id, &["t"], 1_000), &partitions(), later)
        .unwrap();
    assert_ne!(again.member_id, a.member_id);
    let zombie = c.admit_commit(&group("g"), &a.member_id, &[tp], later);
    assert!(is_fenced(zombie, FenceReason::Removed));
}

#[test]
fn member_ids_are_made_by_the_broker_only() {
    let (mut c, now) = (coordinator(), Instant::now());
    let chosen = c
        .join(args("admin", &["t"], 10_000), &partitions(), now)
        .unwrap();
    assert_ne!(chosen.member_id, "admin", "a made-up id is not taken");
    assert!(chosen.member_id.len() <= coordinator::MEMBER_ID_MAX_BYTES);
    // A live member rejoining under its id stays itself.
    let again = c
        .join(args(&chosen.member_id, &["t"], 10_000), &partitions(), now)
        .unwrap();
    assert_eq!(again.member_id, chosen.member_id);
    // An id of another group is not a member here.
    let elsewhere = c
        .join(
            args_in("h", &chosen.member_id, &["t"], 10_000),
            &partitions(),
            now,
        )
        .unwrap();
    assert_ne!(elsewhere.member_id, chosen.member_id);
    let ids: Vec<String> = c
        .describe("g")
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(ids, vec![chosen.member_id]);
    // Client ids are kept within their bound, whatever reaches here.
    let long = JoinArgs {
        client_id: "é".repeat(1000),
        ..args("", &["t"], 10_000)
    };
    let joined = c.join(long, &partitions(), now).unwrap();
    let view = c.describe("g").unwrap();
    let member = view
        .members
        .iter()
        .find(|m| m.member_id == joined.member_id)
        .unwrap();
    assert!(member.client_id.len() <= coordinator::CLIENT_ID_MAX_BYTES);
}

#[test]
fn claims_on_partitions_never_assigned_are_ignored() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, now);
    c.heartbeat("g", &a.member_id, a.assignment.clone(), now)
        .unwrap();
    // b lies from its first heartbeat: it consumes everything.
    let b = c
        .join(args("", &["t", "u"], 10_000), &partitions(), now)
        .unwrap();
    let b1 = c
        .heartbeat("g", &b.member_id, every_partition(), now)
        .unwrap();
    // a still lets go of what moves to b, and b gets it.
    let a2 = c
        .heartbeat("g", &a.member_id, a.assignment.clone(), now)
        .unwrap();
    c.heartbeat("g", &a.member_id, a2.assignment.clone(), now)
        .unwrap();
    let b2 = c
        .heartbeat("g", &b.member_id, every_partition(), now)
        .unwrap();
    assert!(b2.assignment.len() > b1.assignment.len());
    assert!(b2.assignment.is_disjoint(&a2.assignment));
    // a keeps its partitions, and may commit them; b may not.
    let a3 = c
        .heartbeat("g", &a.member_id, a2.assignment.clone(), now)
        .unwrap();
    assert_eq!(a3.assignment, a2.assignment);
    let theirs: Vec<Tp> = a2.assignment.iter().cloned().collect();
    assert!(c
        .admit_commit(&group("g"), &a.member_id, &theirs, now)
        .is_ok());
    let stolen = c.admit_commit(&group("g"), &b.member_id, &theirs[..1], now);
    assert!(is_fenced(stolen, FenceReason::NotOwner));
    // b's lie is cut to what it was given: the group settles all the same.
    c.heartbeat("g", &b.member_id, every_partition(), now)
        .unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
}

#[test]
fn a_member_that_never_lets_go_loses_its_claim_after_its_session_timeout() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = c.join(args("", &["t"], 1_000), &partitions(), now).unwrap();
    let all = a.assignment.clone();
    c.heartbeat("g", &a.member_id, all.clone(), now).unwrap();
    let b = join(&mut c, now);
    let a2 = c.heartbeat("g", &a.member_id, all.clone(), now).unwrap();
    assert_eq!(a2.assignment.len(), 3, "three taken from a");
    let mut at = now;
    for _ in 0..9 {
        at += Duration::from_millis(100);
        c.heartbeat("g", &a.member_id, all.clone(), at).unwrap();
        c.expire_sessions(&partitions(), at);
        let starved = c.heartbeat("g", &b.member_id, BTreeSet::new(), at).unwrap();
        assert!(starved.assignment.is_empty(), "a may still be letting go");
    }
    at += Duration::from_millis(200);
    c.heartbeat("g", &a.member_id, all.clone(), at).unwrap();
    c.expire_sessions(&partitions(), at);
    let b2 = c.heartbeat("g", &b.member_id, BTreeSet::new(), at).unwrap();
    assert_eq!(b2.assignment.len(), 3, "a's claim lapsed");
    let lapsed: Vec<Tp> = b2.assignment.iter().take(1).cloned().collect();
    let late = c.admit_commit(&group("g"), &a.member_id, &lapsed, at);
    assert!(is_fenced(late, FenceReason::NotOwner));
    // Claiming it again changes nothing.
    c.heartbeat("g", &a.member_id, all, at).unwrap();
    let b3 = c
        .heartbeat("g", &b.member_id, b2.assignment.clone(), at)
        .unwrap();
    assert_eq!(b3.assignment, b2.assignment);
}

#[test]
fn an_empty_group_expires_after_its_retention() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = join(&mut c, now);
    c.leave("g", &a.member_id, &partitions(), now).unwrap();
    assert_eq!(c.list()[0].1, GroupState::Empty);
    let held = ["g".to_string()];
    assert!(c
        .expired_empty_groups(&held, now + Duration::from_secs(59))
        .is_empty());
    let doomed = c.expired_empty_groups(&held, now + Duration::from_secs(61));
    assert_eq!(doomed, vec!["g".to_string()]);
    assert!(c.describe("g").is_none());
}

#[test]
fn an_empty_group_without_offsets_goes_before_the_retention() {
    let mut c = Coordinator::new(GroupConfig {
        default_session_timeout_ms: 10_000,
        empty_group_retention_ms: 7 * 24 * 3600 * 1000,
    });
    let now = Instant::now();
    for name in ["bare", "held"] {
        let a = c
            .join(args_in(name, "", &["t"], 10_000), &partitions(), now)
            .unwrap();
        c.leave(name, &a.member_id, &partitions(), now).unwrap();
    }
    let later = now + Duration::from_millis(EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS + 1);
    let doomed = c.expired_empty_groups(&["held".to_string()], later);
    assert_eq!(doomed, vec!["bare".to_string()]);
    assert!(
        c.describe("held").is_some(),
        "offsets are kept the retention"
    );
}

#[test]
fn groups_without_members_have_their_own_smaller_limit() {
    let (mut c, now) = (coordinator(), Instant::now());
    for i in 0..OFFSET_ONLY_GROUPS_LIMIT {
        c.admit_commit(&group(&format!("flood-{i}")), "", &[], now)
            .unwrap();
    }
    let refused = c.admit_commit(&group("one-more"), "", &[], now);
    assert!(matches!(refused, Err(BrokerError::TooManyGroups { .. })));
    // Existing ones still take commits; a commit naming a member to an
    // unknown group creates nothing.
    c.admit_commit(&group("flood-7"), "", &[], now).unwrap();
    let named = c.admit_commit(&group("one-more"), "m-1", &[], now);
    assert!(is_fenced(named, FenceReason::NotAMember));
    // Joins still find room, and a join turns an offset-only group into
    // an ordinary one, which frees a place.
    c.join(args_in("real", "", &["t"], 10_000), &partitions(), now)
        .unwrap();
    c.join(args_in("flood-0", "", &["t"], 10_000), &partitions(), now)
        .unwrap();
    assert_eq!(
        c.counts(),
        (OFFSET_ONLY_GROUPS_LIMIT + 1, OFFSET_ONLY_GROUPS_LIMIT - 1)
    );
    c.admit_commit(&group("one-more"), "", &[], now).unwrap();
    // Forgetting and expiring give places back.
    c.forget("flood-1");
    let later = now + Duration::from_secs(61);
    c.expired_empty_groups(&[], later);
    assert_eq!(c.counts().1, 0);
}

#[test]
fn groups_found_in_the_offset_store_count_against_the_limit() {
    let (mut c, now) = (coordinator(), Instant::now());
    let stored: Vec<String> = (0..OFFSET_ONLY_GROUPS_LIMIT)
        .map(|i| format!("old-{i}"))
        .collect();
    assert!(!c.adopted());
    c.adopt(&stored, now);
    assert!(c.adopted());
    assert_eq!(
        c.counts(),
        (OFFSET_ONLY_GROUPS_LIMIT, OFFSET_ONLY_GROUPS_LIMIT)
    );
    let refused = c.admit_commit(&group("new"), "", &[], now);
    assert!(matches!(refused, Err(BrokerError::TooManyGroups { .. })));
    c.admit_commit(&group("old-3"), "", &[], now).unwrap();
    c.join(args_in("joined", "", &["t"], 10_000), &partitions(), now)
        .unwrap();
}

#[test]
fn subscriptions_drive_the_target_and_the_state() {
    let (mut c, now) = (coordinator(), Instant::now());
    let a = c
        .join(args("", &["t", "u"], 10_000), &partitions(), now)
        .unwrap();
    assert_eq!(a.assignment.len(), 9);
    c.heartbeat("g", &a.member_id, a.assignment.clone(), now)
        .unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    let b = c
        .join(args("", &["u"], 10_000), &partitions(), now)
        .unwrap();
    assert!(b.assignment.is_empty());
    assert_eq!(c.describe("g").unwrap().state, GroupState::Reconciling);
    c.topic_deleted("u", &[("t".to_string(), 6)].into());
    let view = c.describe("g").unwrap();
    assert!(view.owners.keys().all(|(t, _)| t == "t"));
    assert!(matches!(
        c.join(args("", &["nope"], 10_000), &partitions(), now),
        Err(BrokerError::UnknownTopic(_))
    ));
}

#[test]
fn log_fields_are_cut_at_a_character_boundary() {
    let long = "é".repeat(100);
    let cut = for_log(&long);
    assert!(cut.len() <= LOG_FIELD_MAX_BYTES && cut.len() >= LOG_FIELD_MAX_BYTES - 1);
    assert_eq!(for_log("short"), "short");
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    /// Heartbeat reporting the assignment as owned (the member let go).
    Release(u8),
    /// Heartbeat reporting nothing owned.
    Hold(u8),
    /// Heartbeat claiming every partition of the broker.
    Lie(u8),
    Leave(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5).prop_map(Op::Join),
        (0u8..5).prop_map(Op::Release),
        (0u8..5).prop_map(Op::Hold),
        (0u8..5).prop_map(Op::Lie),
        (0u8..5).prop_map(Op::Leave),
        (0u16..1500).prop_map(Op::Advance),
    ]
}

/// The members of the model: number -> (member id, last assignment).
type Model = BTreeMap<u8, (String, BTreeSet<Tp>)>;

fn step(c: &mut Coordinator, model: &mut Model, op: Op, now: &mut Instant) {
    let id = |model: &Model, m: u8| model.get(&m).map(|(id, _)| id.clone()).unwrap_or_default();
    match op {
        Op::Join(m) => {
            let joined = c.join(args(&id(model, m), &["t", "u"], 1_000), &partitions(), *now);
            if let Ok(answer) = joined {
                model.insert(m, (answer.member_id, answer.assignment));
            }
        }
        Op::Release(m) | Op::Hold(m) | Op::Lie(m) => {
            let owned = match op {
                Op::Release(_) => model.get(&m).map(|(_, a)| a.clone()).unwrap_or_default(),
                Op::Lie(_) => every_partition(),
                _ => BTreeSet::new(),
            };
            if let Ok(answer) = c.heartbeat("g", &id(model, m), owned, *now) {
                model.insert(m, (answer.member_id, answer.assignment));
            }
        }
        Op::Leave(m) => {
            let _ = c.leave("g", &id(model, m), &partitions(), *now);
            model.remove(&m);
        }
        Op::Advance(ms) => {
            *now += Duration::from_millis(u64::from(ms));
            for (_, member) in c.expire_sessions(&partitions(), *now) {
                model.retain(|_, (id, _)| *id != member);
            }
        }
    }
}

proptest! {
    /// Whatever members do (liars included), no partition is ever assigned
    /// to two members at once (the state machine asserts it, with claims,
    /// after every step too), and once everyone reports its assignment the
    /// group converges.
    #[test]
    fn random_operations_never_assign_a_partition_twice(ops in proptest::collection::vec(op(), 1..80)) {
        let mut c = coordinator();
        let mut now = Instant::now();
        let mut model = Model::new();
        for op in ops {
            step(&mut c, &mut model, op, &mut now);
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
