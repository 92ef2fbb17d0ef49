//! Choosing a partition for a record: Kafka's murmur2 for keys (the Java client's and
//! librdkafka's `murmur2_random`), sticky for null keys (KIP-480), random, round-robin, or the
//! record's own.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

/// How the producer picks a partition for a record that does not name one.
///
/// A record that names its partition (`ProducerRecord::partition`) goes there with every
/// partitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Partitioner {
    /// Keyed records: `(murmur2(key) & 0x7fffffff) % partitions`, the same partition the Java
    /// client and librdkafka's `murmur2_random` choose. Records without a key stick to one
    /// random partition until its batch is sent or full, then move on (KIP-480), so that
    /// keyless records form large batches.
    #[default]
    Default,
    /// A random partition per record.
    Random,
    /// Partitions in turn, per topic.
    RoundRobin,
    /// The record must name its partition; one that does not is an error.
    Manual,
}

pub use rill_record::{murmur2, partition_for_key};

/// The partitioner's per-topic memory: sticky partitions and round-robin counters.
#[derive(Debug)]
pub(crate) struct PartitionerState {
    kind: Partitioner,
    sticky: HashMap<String, i32>,
    next: HashMap<String, u32>,
    rng: u64,
}

impl PartitionerState {
    pub(crate) fn new(kind: Partitioner) -> Self {
        Self {
            kind,
            sticky: HashMap::new(),
            next: HashMap::new(),
            rng: RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }

    fn random(&mut self, below: i32) -> i32 {
        // xorshift64*: plenty for spreading records over partitions.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        (r % u64::from(below.max(1).unsigned_abs())) as i32
    }

    /// The partition for a record of `topic` with `key` that names no partition, or `None`
    /// for [`Partitioner::Manual`].
    pub(crate) fn choose(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        partitions: i32,
    ) -> Option<i32> {
        match (self.kind, key) {
            (Partitioner::Manual, _) => None,
            (Partitioner::Default, Some(key)) => Some(partition_for_key(key, partitions)),
            (Partitioner::Default, None) => {
                if let Some(&p) = self.sticky.get(topic).filter(|&&p| p < partitions) {
                    return Some(p);
                }
                let p = self.random(partitions);
                let _ = self.sticky.insert(topic.to_owned(), p);
                Some(p)
            }
            (Partitioner::Random, _) => Some(self.random(partitions)),
            (Partitioner::RoundRobin, _) => {
                let n = self.next.entry(topic.to_owned()).or_insert(0);
                let p = (*n % partitions.max(1).unsigned_abs()) as i32;
                *n = n.wrapping_add(1);
                Some(p)
            }
        }
    }

    /// A batch of `topic`/`partition` was closed (sent or full): keyless records move on to
    /// another partition (KIP-480).
    pub(crate) fn batch_closed(&mut self, topic: &str, partition: i32) {
        if self.sticky.get(topic) == Some(&partition) {
            let _ = self.sticky.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_records_use_positive_murmur2_modulo() {
        for key in [&b"a"[..], b"key-1", b"", b"\xff\xfe\xfd"] {
            let p = partition_for_key(key, 6);
            assert_eq!(p, (murmur2(key) & 0x7fff_ffff) % 6);
            assert!((0..6).contains(&p));
        }
    }

    #[test]
    fn sticky_stays_until_its_batch_closes() {
        let mut state = PartitionerState::new(Partitioner::Default);
        let first = state.choose("t", None, 8);
        for _ in 0..20 {
            assert_eq!(state.choose("t", None, 8), first);
        }
        let Some(p) = first else {
            panic!("default partitioner chose nothing")
        };
        state.batch_closed("t", p);
        let moved = (0..20).any(|_| {
            let next = state.choose("t", None, 8);
            if let Some(n) = next {
                state.batch_closed("t", n);
            }
            next != first
        });
        assert!(moved);
    }

    #[test]
    fn round_robin_and_manual() {
        let mut state = PartitionerState::new(Partitioner::RoundRobin);
        let got: Vec<_> = (0..5).map(|_| state.choose("t", Some(b"k"), 3)).collect();
        assert_eq!(got, [Some(0), Some(1), Some(2), Some(0), Some(1)]);
        let mut manual = PartitionerState::new(Partitioner::Manual);
        assert_eq!(manual.choose("t", None, 3), None);
        let mut random = PartitionerState::new(Partitioner::Random);
        assert!((0..100).all(|_| {
            random
                .choose("t", None, 3)
                .is_some_and(|p| (0..3).contains(&p))
        }));
    }
}
