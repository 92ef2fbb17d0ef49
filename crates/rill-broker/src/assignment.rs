//! Manual replica assignments (CreateTopics, CreatePartitions), checked as Kafka's controller
//! checks them. There is one broker, so the only assignment that passes names it alone.

use std::collections::BTreeSet;

use rill_protocol::ErrorCode;

use crate::broker::TopicError;

fn invalid(message: String) -> TopicError {
    (ErrorCode::InvalidReplicaAssignment, message)
}

/// One partition's replicas: not empty, only registered brokers (`node_id`), none twice, and
/// as many as the other partitions have (`replication_factor`, when known).
pub(crate) fn check_replicas(
    replicas: &[i32],
    node_id: i32,
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
        if broker != node_id {
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
pub(crate) fn check_topic(assignment: &[(i32, &[i32])], node_id: i32) -> Result<i32, TopicError> {
    let mut seen = BTreeSet::new();
    let mut factor = None;
    for &(partition, replicas) in assignment {
        if !seen.insert(partition) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {partition}"
            )));
        }
        check_replicas(replicas, node_id, factor)?;
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

    #[test]
    fn only_the_one_broker_once_passes() {
        assert_eq!(check_replicas(&[0], 0, None), Ok(()));
        assert_eq!(check_replicas(&[0], 0, Some(1)), Ok(()));
        let bad = Some(ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(check_replicas(&[], 0, None)), bad);
        assert_eq!(code(check_replicas(&[1], 0, None)), bad);
        assert_eq!(code(check_replicas(&[0, 1], 0, None)), bad);
        assert_eq!(code(check_replicas(&[0, 0], 0, None)), bad);
        assert_eq!(code(check_replicas(&[0], 0, Some(2))), bad);
    }

    #[test]
    fn a_topic_needs_each_partition_once_from_zero() {
        let one: &[i32] = &[0];
        assert_eq!(check_topic(&[(0, one)], 0), Ok(1));
        assert_eq!(check_topic(&[(2, one), (0, one), (1, one)], 0), Ok(3));
        let bad = Some(ErrorCode::InvalidReplicaAssignment);
        assert_eq!(code(check_topic(&[(0, one), (0, one)], 0)), bad);
        assert_eq!(code(check_topic(&[(1, one)], 0)), bad);
        assert_eq!(code(check_topic(&[(0, one), (2, one)], 0)), bad);
        assert_eq!(code(check_topic(&[(-1, one)], 0)), bad);
        assert_eq!(code(check_topic(&[(0, one), (1, &[0, 0])], 0)), bad);
        assert_eq!(code(check_topic(&[(0, one), (1, &[])], 0)), bad);
    }
}
