//! Replica assignments: the default one, spread over the live brokers round robin with rack
//! awareness as Kafka's default assignor does, and manual ones (CreateTopics,
//! CreatePartitions), checked as Kafka's controller checks them.

use std::collections::{BTreeMap, BTreeSet};

use rill_protocol::ErrorCode;

use crate::broker::TopicError;

fn invalid(message: String) -> TopicError {
    (ErrorCode::InvalidReplicaAssignment, message)
}

/// `partitions` new partitions of `factor` replicas each (at most one per broker), the first
/// replicas taken in turn from broker `start` of the rack-alternated list of `brokers` (id,
/// rack): with racks, consecutive partitions land in different racks first, as Kafka's
/// rack-aware assignor places them. The other replicas follow the first at a shift that
/// changes every round of the brokers, so the followers of one broker's partitions spread
/// over the others (Kafka's scheme).
pub(crate) fn spread(
    brokers: &[(i32, Option<String>)],
    partitions: usize,
    factor: usize,
    start: usize,
) -> Vec<Vec<i32>> {
    let ordered = rack_alternated(brokers);
    let n = ordered.len();
    if n == 0 {
        return Vec::new();
    }
    let factor = factor.clamp(1, n);
    (0..partitions)
        .map(|p| {
            let first = (start + p) % n;
            let shift = start + p / n;
            (0..factor)
                .map(|k| {
                    let at = if k == 0 {
                        first
                    } else {
                        (first + 1 + (shift + k - 1) % (n - 1)) % n
                    };
                    ordered[at]
                })
                .collect()
        })
        .collect()
}

/// Brokers sorted by id within each rack, then taken one rack at a time in turn (racks sorted
/// by name); without racks (or when some broker has none), simply sorted by id.
fn rack_alternated(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    if brokers.iter().any(|(_, rack)| rack.is_none()) {
        let mut ids: Vec<i32> = brokers.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        return ids;
    }
    let mut racks: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        racks
            .entry(rack.as_deref().unwrap_or_default())
            .or_default()
            .push(*id);
    }
    for ids in racks.values_mut() {
        ids.sort_unstable();
    }
    let longest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

/// One partition's replicas: not empty, only `registered` brokers, none twice, and as many as
/// the other partitions have (`replication_factor`, when known).
pub(crate) fn check_replicas(
    replicas: &[i32],
    registered: &BTreeSet<i32>,
    replication_factor: Option<usize>,
) -> Result<(), TopicError> {
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_owned(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if !registered.contains(&broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker \
                 is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    match replication_factor {
        Some(factor) if factor != replicas.len() => Err(invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this \
             is not consistent with previous partitions, which have {factor} replica(s).",
            replicas.len()
        ))),
        _ => Ok(()),
    }
}

/// A new topic's assignment, `(partition index, replicas)` in request order: the partition
/// count it implies. CreateTopics must then leave `num_partitions` and `replication_factor`
/// at -1 (INVALID_REQUEST otherwise, checked by the caller).
pub(crate) fn check_topic(
    assignment: &[(i32, &[i32])],
    registered: &BTreeSet<i32>,
) -> Result<i32, TopicError> {
    let mut seen = BTreeSet::new();
    let mut factor = None;
    for &(partition, replicas) in assignment {
        if !seen.insert(partition) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {partition}"
            )));
        }
        check_replicas(replicas, registered, factor)?;
        factor = Some(replicas.len());
    }
    let count = i32::try_from(seen.len()).unwrap_or(i32::MAX);
    if !seen.iter().copied().eq(0..count) {
        return Err(invalid(
            "partitions should be a consecutive 0-based integer sequence".to_owned(),
        ));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<impl Sized, TopicError>) -> Option<ErrorCode> {
        result.err().map(|(code, _)| code)
    }

    fn zero() -> BTreeSet<i32> {
        BTreeSet::from([0])
    }

    #[test]
    fn one_registered_broker_once_passes() {
        assert_eq!(check_replicas(&[0], &zero(), None), Ok(()));
        assert_eq!(check_replicas(&[0], &zero(), Some(1)), Ok(()));
        let bad = Some(ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(check_replicas(&[], &zero(), None)), bad);
        assert_eq!(code(check_replicas(&[1], &zero(), None)), bad);
        assert_eq!(code(check_replicas(&[0, 1], &zero(), None)), bad);
        assert_eq!(code(check_replicas(&[0, 0], &zero(), None)), bad);
        assert_eq!(code(check_replicas(&[0], &zero(), Some(2))), bad);
        let two = BTreeSet::from([0, 1]);
        assert_eq!(check_replicas(&[1], &two, None), Ok(()));
        assert_eq!(check_replicas(&[1, 0], &two, Some(2)), Ok(()));
        assert_eq!(code(check_replicas(&[1, 0], &two, Some(1))), bad);
    }

    #[test]
    fn spread_is_round_robin_alternating_racks() {
        let plain = [(3, None), (1, None), (2, None)];
        assert_eq!(spread(&plain, 4, 1, 1), [[2], [3], [1], [2]]);
        let racks = |r: &str| Some(r.to_owned());
        // Rack a: 1, 2; rack b: 3, 4; rack c: 5. Alternated: 1 3 5 2 4.
        let racked = [
            (1, racks("a")),
            (2, racks("a")),
            (3, racks("b")),
            (4, racks("b")),
            (5, racks("c")),
        ];
        assert_eq!(spread(&racked, 6, 1, 0), [[1], [3], [5], [2], [4], [1]]);
        assert!(spread(&[], 3, 1, 0).is_empty());
    }

    #[test]
    fn replicas_are_distinct_and_followers_spread_over_the_others() {
        let brokers = [(1, None), (2, None), (3, None)];
        let placed = spread(&brokers, 6, 3, 0);
        for replicas in &placed {
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
        // Leaders round robin; broker 1's followers differ between its two partitions.
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, [1, 2, 3, 1, 2, 3]);
        assert_ne!(placed[0], placed[3]);
        // Two of three: every broker leads and follows.
        let two = spread(&brokers, 3, 2, 0);
        assert_eq!(two, [[1, 2], [2, 3], [3, 1]]);
        // More replicas than brokers: as many as there are brokers.
        assert_eq!(spread(&brokers[..2], 1, 3, 0), [[1, 2]]);
    }

    #[test]
    fn a_topic_needs_each_partition_once_from_zero() {
        let one: &[i32] = &[0];
        assert_eq!(check_topic(&[(0, one)], &zero()), Ok(1));
        assert_eq!(check_topic(&[(2, one), (0, one), (1, one)], &zero()), Ok(3));
        let bad = Some(ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(check_topic(&[(0, one), (0, one)], &zero())), bad);
        assert_eq!(code(check_topic(&[(1, one)], &zero())), bad);
        assert_eq!(code(check_topic(&[(0, one), (2, one)], &zero())), bad);
        assert_eq!(code(check_topic(&[(-1, one)], &zero())), bad);
        assert_eq!(code(check_topic(&[(0, one), (1, &[0, 0])], &zero())), bad);
        assert_eq!(code(check_topic(&[(0, one), (1, &[])], &zero())), bad);
    }
}
