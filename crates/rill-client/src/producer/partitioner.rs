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

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): 32-bit MurmurHash2 with
/// seed `0x9747b28c`, the tail bytes read as signed, as Java does.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Java sign-extends each byte before masking with 0xff, which masks the sign away again;
    // the shifts are what matter.
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record under [`Partitioner::Default`].
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

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
    fn murmur2_matches_kafka_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for &(key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

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
