//! Kafka's consumer protocol: the `ConsumerProtocolSubscription` a member sends in JoinGroup
//! and the `ConsumerProtocolAssignment` the leader hands out in SyncGroup. Both are opaque
//! bytes to the broker; they come from other clients (confluent-kafka, the Java client), so
//! decoding checks every length and ignores the fields of versions newer than it reads.

use std::collections::BTreeMap;

/// A member's subscription: the topics it wants and, from v1, the partitions it owns now
/// (the cooperative protocol needs them to move only what must move).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) topics: Vec<String>,
    pub(crate) owned: Vec<(String, Vec<i32>)>,
}

/// Topic → partitions, the shape of an assignment.
pub(crate) type Assignment = BTreeMap<String, Vec<i32>>;

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Topic names are at most 249 bytes (Kafka's limit), far below i16::MAX.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
}

fn put_topic_partitions<'a>(
    out: &mut Vec<u8>,
    topics: impl ExactSizeIterator<Item = (&'a String, &'a Vec<i32>)>,
) {
    put_len(out, topics.len());
    for (topic, partitions) in topics {
        put_str(out, topic);
        put_len(out, partitions.len());
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

/// Encodes `sub` as `ConsumerProtocolSubscription` v0 (topics, null user data) or, when
/// `version` is 1, v1 (plus the owned partitions).
pub(crate) fn encode_subscription(sub: &Subscription, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    put_len(&mut out, sub.topics.len());
    for topic in &sub.topics {
        put_str(&mut out, topic);
    }
    out.extend_from_slice(&(-1_i32).to_be_bytes()); // user data: null
    if version >= 1 {
        put_topic_partitions(&mut out, sub.owned.iter().map(|(t, p)| (t, p)));
    }
    out
}

/// Encodes `assignment` as `ConsumerProtocolAssignment` v0 with null user data.
pub(crate) fn encode_assignment(assignment: &Assignment) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0_i16.to_be_bytes());
    put_topic_partitions(&mut out, assignment.iter());
    out.extend_from_slice(&(-1_i32).to_be_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    /// An array length no larger than the bytes left could hold at `min_item` bytes each.
    fn count(&mut self, min_item: usize) -> Option<usize> {
        let count = usize::try_from(self.i32()?).ok()?;
        (count <= self.0.len() / min_item).then_some(count)
    }
    fn nullable_bytes(&mut self) -> Option<()> {
        let len = self.i32()?;
        if len >= 0 {
            let _ = self.take(usize::try_from(len).ok()?)?;
        }
        Some(())
    }
    fn topic_partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        let topics = self.count(6)?;
        let mut out = Vec::with_capacity(topics);
        for _ in 0..topics {
            let name = self.string()?;
            let count = self.count(4)?;
            let mut partitions = Vec::with_capacity(count);
            for _ in 0..count {
                partitions.push(self.i32()?);
            }
            out.push((name, partitions));
        }
        Some(out)
    }
}

/// Decodes a `ConsumerProtocolSubscription` of any version (fields after v1's are ignored);
/// `None` when the bytes are not one.
pub(crate) fn decode_subscription(bytes: &[u8]) -> Option<Subscription> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let count = r.count(2)?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        topics.push(r.string()?);
    }
    r.nullable_bytes()?;
    let owned = if version >= 1 {
        r.topic_partitions()?
    } else {
        Vec::new()
    };
    Some(Subscription { topics, owned })
}

/// Decodes a `ConsumerProtocolAssignment` of any version; empty bytes are an empty
/// assignment (what a leader sends a member it gives nothing).
pub(crate) fn decode_assignment(bytes: &[u8]) -> Option<Assignment> {
    if bytes.is_empty() {
        return Some(Assignment::new());
    }
    let mut r = Reader(bytes);
    if r.i16()? < 0 {
        return None;
    }
    let mut out = Assignment::new();
    for (topic, partitions) in r.topic_partitions()? {
        out.entry(topic).or_default().extend(partitions);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_protocol_subscription_v0_v1_round_trip() {
        let sub = Subscription {
            topics: vec!["a".to_owned(), "bb".to_owned()],
            owned: vec![("a".to_owned(), vec![0, 2])],
        };
        let v0 = encode_subscription(&sub, 0);
        assert_eq!(
            decode_subscription(&v0),
            Some(Subscription {
                topics: sub.topics.clone(),
                owned: Vec::new()
            })
        );
        let v1 = encode_subscription(&sub, 1);
        assert_eq!(decode_subscription(&v1), Some(sub));
        for cut in 0..v1.len() {
            assert_eq!(decode_subscription(&v1[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn consumer_protocol_subscription_v3_extra_fields_are_ignored() {
        let sub = Subscription {
            topics: vec!["t".to_owned()],
            owned: Vec::new(),
        };
        let mut v3 = encode_subscription(&sub, 1);
        v3[1] = 3;
        v3.extend_from_slice(&7_i32.to_be_bytes()); // generation id
        v3.extend_from_slice(&(-1_i16).to_be_bytes()); // rack id: null
        assert_eq!(decode_subscription(&v3), Some(sub));
    }

    #[test]
    fn consumer_protocol_assignment_v0_round_trip_and_garbage() {
        let mut assignment = Assignment::new();
        let _ = assignment.insert("orders".to_owned(), vec![0, 2]);
        let _ = assignment.insert("audit".to_owned(), vec![1]);
        let bytes = encode_assignment(&assignment);
        assert_eq!(decode_assignment(&bytes), Some(assignment));
        assert_eq!(decode_assignment(&[]), Some(Assignment::new()));
        assert_eq!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_assignment(&bytes[..bytes.len() - 6]), None);
    }
}
