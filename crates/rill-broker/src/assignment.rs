//! Replica assignments: the default one, spread over the live brokers round robin with rack
//! awareness as Kafka's default assignor does, and manual ones (CreateTopics,
//! CreatePartitions), checked as Kafka's controller checks them. Partitions have one replica
//! until replication comes, so a manual assignment names one registered broker per partition.

use std::collections::{BTreeMap, BTreeSet};

use rill_protocol::ErrorCode;

use crate::broker::TopicError;

fn invalid(message: String) -> TopicError {
    (ErrorCode::InvalidReplicaAssignment, message)
}

/// `partitions` new partitions, one replica each, starting at broker `start` of the
/// rack-alternated list of `brokers` (id, rack): with racks, consecutive partitions land in
/// different racks first, as Kafka's rack-aware assignor places them.
pub(crate) fn spread(
    brokers: &[(i32, Option<String>)],
    partitions: usize,
    start: usize,
) -> Vec<Vec<i32>> {
    let ordered = rack_alternated(brokers);
    if ordered.is_empty() {
        return Vec::new();
    }
    (0..partitions)
        .map(|p| vec![ordered[(start + p) % ordered.len()]])
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

/// One partition's replicas: not empty, only `registered` brokers, none twice, one replica
/// (more come with replication), and as many as the other partitions have
/// (`replication_factor`, when known).
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
    if replicas.len() > 1 {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "the manual partition assignment has {} replicas for a partition; partitions \
                 have one replica until replication is supported",
                replicas.len()
            ),
        ));
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
        assert_eq!(
            code(check_replicas(&[0, 1], &two, None)),
            Some(ErrorCode::InvalidReplicationFactor)
        );
    }

    #[test]
    fn spread_is_round_robin_alternating_racks() {
        let plain = [(3, None), (1, None), (2, None)];
        assert_eq!(spread(&plain, 4, 1), [[2], [3], [1], [2]]);
        let racks = |r: &str| Some(r.to_owned());
        // Rack a: 1, 2; rack b: 3, 4; rack c: 5. Alternated: 1 3 5 2 4.
        let racked = [
            (1, racks("a")),
            (2, racks("a")),
            (3, racks("b")),
            (4, racks("b")),
            (5, racks("c")),
        ];
        assert_eq!(spread(&racked, 6, 0), [[1], [3], [5], [2], [4], [1]]);
        assert!(spread(&[], 3, 0).is_empty());
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
