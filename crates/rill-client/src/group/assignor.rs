//! The partition assignors the group leader runs over every member's subscription: Kafka's
//! `RangeAssignor`, `RoundRobinAssignor` and a simple cooperative-sticky one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::protocol::{Assignment, Subscription};

/// A member as the assignor sees it: the key it is sorted by (its group instance id when it
/// has one, else its member id, as Kafka's `MemberInfo` orders), its member id and what it
/// asked for.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) sort_key: String,
    pub(crate) member_id: String,
    pub(crate) subscription: Subscription,
}

/// Member id → assignment.
pub(crate) type Plan = BTreeMap<String, Assignment>;

fn sorted(members: &[Member]) -> Vec<&Member> {
    let mut out: Vec<&Member> = members.iter().collect();
    out.sort_by(|a, b| (&a.sort_key, &a.member_id).cmp(&(&b.sort_key, &b.member_id)));
    out
}

fn empty_plan(members: &[Member]) -> Plan {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect()
}

fn give(plan: &mut Plan, member: &str, topic: &str, partition: i32) {
    if let Some(assignment) = plan.get_mut(member) {
        assignment
            .entry(topic.to_owned())
            .or_default()
            .push(partition);
    }
}

/// Kafka's `RangeAssignor`: per topic, its partitions in order are split into contiguous
/// ranges among the members subscribed to it, sorted; the first `partitions % members`
/// members get one more.
pub(crate) fn range(members: &[Member], partitions: &HashMap<String, i32>) -> Plan {
    let mut plan = empty_plan(members);
    let members = sorted(members);
    let topics: BTreeSet<&String> = members
        .iter()
        .flat_map(|m| &m.subscription.topics)
        .collect();
    for topic in topics {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        let subscribed: Vec<&&Member> = members
            .iter()
            .filter(|m| m.subscription.topics.contains(topic))
            .collect();
        let n = i32::try_from(subscribed.len()).unwrap_or(i32::MAX);
        if n == 0 {
            continue;
        }
        let (per, extra) = (count / n, count % n);
        for (i, member) in (0..).zip(subscribed) {
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            for p in start..start + len {
                give(&mut plan, &member.member_id, topic, p);
            }
        }
    }
    plan
}

/// Kafka's `RoundRobinAssignor`: every partition of every topic, sorted by topic then
/// partition, dealt in turn to the sorted members, skipping those not subscribed to it.
pub(crate) fn round_robin(members: &[Member], partitions: &HashMap<String, i32>) -> Plan {
    let mut plan = empty_plan(members);
    let members = sorted(members);
    if members.is_empty() {
        return plan;
    }
    let topics: BTreeSet<&String> = members
        .iter()
        .flat_map(|m| &m.subscription.topics)
        .collect();
    let mut next = 0usize;
    for topic in topics {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        for p in 0..count {
            for _ in 0..members.len() {
                let member = members[next % members.len()];
                next += 1;
                if member.subscription.topics.contains(topic) {
                    give(&mut plan, &member.member_id, topic, p);
                    break;
                }
            }
        }
    }
    plan
}

/// A simple cooperative-sticky assignor: each member keeps what it owns (as long as it is
/// still subscribed and that leaves the group balanced), the rest goes to the members with
/// the fewest partitions; then, as the cooperative protocol requires, a partition that moves
/// from one member to another is left out of this round so that its owner revokes it first
/// and the follow-up rebalance hands it over.
pub(crate) fn cooperative_sticky(members: &[Member], partitions: &HashMap<String, i32>) -> Plan {
    let mut plan = empty_plan(members);
    let members = sorted(members);
    if members.is_empty() {
        return plan;
    }
    let all: BTreeSet<(String, i32)> = members
        .iter()
        .flat_map(|m| &m.subscription.topics)
        .filter_map(|t| partitions.get(t).map(|&n| (t, n)))
        .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let (base, mut extra) = (all.len() / members.len(), all.len() % members.len());
    // The previous owner of each partition (the first claimant wins a conflict).
    let mut owner: HashMap<(String, i32), &str> = HashMap::new();
    let mut kept: BTreeMap<&str, Vec<(String, i32)>> = BTreeMap::new();
    for member in &members {
        let mut mine = Vec::new();
        for (topic, ps) in &member.subscription.owned {
            for &p in ps {
                let tp = (topic.clone(), p);
                if all.contains(&tp)
                    && member.subscription.topics.contains(topic)
                    && !owner.contains_key(&tp)
                {
                    let _ = owner.insert(tp.clone(), &member.member_id);
                    mine.push(tp);
                }
            }
        }
        mine.sort();
        let cap = if mine.len() > base && extra > 0 {
            extra -= 1;
            base + 1
        } else {
            base
        };
        mine.truncate(cap);
        let _ = kept.insert(&member.member_id, mine);
    }
    let taken: BTreeSet<(String, i32)> = kept.values().flatten().cloned().collect();
    for tp in all.difference(&taken) {
        let target = members
            .iter()
            .filter(|m| m.subscription.topics.contains(&tp.0))
            .min_by_key(|m| kept.get(m.member_id.as_str()).map_or(0, Vec::len));
        if let Some(member) = target {
            kept.entry(&member.member_id).or_default().push(tp.clone());
        }
    }
    for (member, tps) in kept {
        for (topic, p) in tps {
            // Moving from a live owner: that owner revokes it this round, the next round
            // assigns it.
            if owner.get(&(topic.clone(), p)).is_some_and(|o| *o != member) {
                continue;
            }
            give(&mut plan, member, &topic, p);
        }
    }
    for assignment in plan.values_mut() {
        for ps in assignment.values_mut() {
            ps.sort_unstable();
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, &[i32])]) -> Member {
        Member {
            sort_key: id.to_owned(),
            member_id: id.to_owned(),
            subscription: Subscription {
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                owned: owned
                    .iter()
                    .map(|(t, ps)| ((*t).to_owned(), ps.to_vec()))
                    .collect(),
            },
        }
    }

    fn flat(plan: &Plan, member: &str) -> Vec<(String, i32)> {
        plan[member]
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    }

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_owned(), p)
    }

    #[test]
    fn range_gives_the_first_members_one_more_per_topic() {
        let members = [member("b", &["t", "u"], &[]), member("a", &["t", "u"], &[])];
        let counts = HashMap::from([("t".to_owned(), 3), ("u".to_owned(), 4)]);
        let plan = range(&members, &counts);
        assert_eq!(
            flat(&plan, "a"),
            [tp("t", 0), tp("t", 1), tp("u", 0), tp("u", 1)]
        );
        assert_eq!(flat(&plan, "b"), [tp("t", 2), tp("u", 2), tp("u", 3)]);
    }

    #[test]
    fn round_robin_deals_across_topics_skipping_unsubscribed() {
        let members = [member("a", &["t", "u"], &[]), member("b", &["t"], &[])];
        let counts = HashMap::from([("t".to_owned(), 3), ("u".to_owned(), 2)]);
        let plan = round_robin(&members, &counts);
        assert_eq!(
            flat(&plan, "a"),
            [tp("t", 0), tp("t", 2), tp("u", 0), tp("u", 1)]
        );
        assert_eq!(flat(&plan, "b"), [tp("t", 1)]);
    }

    #[test]
    fn cooperative_sticky_keeps_owned_and_withholds_moving_partitions() {
        let counts = HashMap::from([("t".to_owned(), 4)]);
        // a owned everything; b is new: a keeps two, the other two are withheld this round.
        let members = [
            member("a", &["t"], &[("t", &[0, 1, 2, 3])]),
            member("b", &["t"], &[]),
        ];
        let plan = cooperative_sticky(&members, &counts);
        assert_eq!(flat(&plan, "a"), [tp("t", 0), tp("t", 1)]);
        assert!(flat(&plan, "b").is_empty());
        // Second round: a owns two now; b gets the rest.
        let members = [
            member("a", &["t"], &[("t", &[0, 1])]),
            member("b", &["t"], &[]),
        ];
        let plan = cooperative_sticky(&members, &counts);
        assert_eq!(flat(&plan, "a"), [tp("t", 0), tp("t", 1)]);
        assert_eq!(flat(&plan, "b"), [tp("t", 2), tp("t", 3)]);
    }
}
