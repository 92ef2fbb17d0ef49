//! Consumer groups: one actor per group driving a `rill_group::Group` state machine, and the
//! durable store of committed offsets, one log per partition of `__consumer_offsets`.

mod coordinator;
mod layout;
mod offsets;

pub(crate) use coordinator::Coordinator;
pub(crate) use offsets::Committed;

/// The name of the internal topic that holds committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether `name` is the directory of a partition of the offsets log (`__consumer_offsets-<p>`).
pub(crate) fn is_offsets_log(name: &str) -> bool {
    name.strip_prefix(OFFSETS_TOPIC)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|p| p.parse::<u32>().is_ok())
}

/// The partition of `__consumer_offsets` that holds `group_id`, as Kafka places it:
/// `Utils.abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode` over UTF-16 code
/// units and `Utils.abs` masking the sign bit (so `i32::MIN` maps to 0, not to itself).
pub(crate) fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    (hash & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's `String.hashCode`, for checking the known values below.
    fn java_hash(s: &str) -> i32 {
        s.encode_utf16().fold(0i32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(i32::from(unit))
        })
    }

    #[test]
    fn groups_land_on_kafkas_partition() {
        // Values of Java's "...".hashCode(), computed with a port of it over UTF-16 units.
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(java_hash("é-groupe"), -1_901_585_622);
        // The crab is outside the BMP: two UTF-16 units, hashed one after the other.
        assert_eq!("🦀 crab".encode_utf16().count(), 7);
        assert_eq!(java_hash("🦀 crab"), 220_228_910);
        let cases = [
            ("", 0),
            ("a", 47),
            ("my-group", 36),
            ("console-consumer-12345", 6),
            ("group-0", 48),
            ("test-group", 12),
            ("é-groupe", 26),
            ("🦀 crab", 10),
        ];
        for (group, partition) in cases {
            assert_eq!(offsets_partition(group, 50), partition, "{group}");
        }
        assert_eq!(offsets_partition("my-group", 1), 0);
    }

    #[test]
    fn the_sign_bit_is_masked_not_negated() {
        // "polygenelubricants".hashCode() is i32::MIN: Math.abs would keep it negative.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(offsets_partition("polygenelubricants", 50), 0);
        // A negative hash: -1906497762 & 0x7fffffff = 240985886, and 240985886 % 7 = 1.
        assert_eq!(offsets_partition("my-group", 7), 1);
    }

    #[test]
    fn offsets_log_names() {
        assert!(is_offsets_log("__consumer_offsets-0"));
        assert!(is_offsets_log("__consumer_offsets-49"));
        assert!(!is_offsets_log("__consumer_offsets"));
        assert!(!is_offsets_log("__consumer_offsets-x"));
        assert!(!is_offsets_log("orders-0"));
    }
}
