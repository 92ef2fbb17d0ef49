//! Random appends, rolls and reopens (clean and unclean) always read back exactly what was
//! appended.

mod common;

use common::*;
use proptest::prelude::*;
use rill_log::Log;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_len: usize },
    Roll,
    Sync,
    ReopenClean,
    ReopenCrash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8, 0usize..400).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        1 => Just(Op::Roll),
        1 => Just(Op::Sync),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenCrash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_read_back_exactly(ops in prop::collection::vec(op(), 1..40), segment_bytes in 300u64..5_000) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let config = small_segments(segment_bytes.max(100));
        let fail = |e: rill_log::LogError| TestCaseError::fail(e.to_string());
        let mut log = Log::open(dir.path(), config.clone(), NOW).map_err(fail)?;
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for (tag, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { records, value_len } => {
                    let b = batch(tag as u32, records, value_len, NOW + tag as i64);
                    if b.len() as u64 > config.segment_bytes {
                        continue;
                    }
                    let base = log.log_end_offset();
                    let mut b2 = b.clone();
                    let info = log.append(&mut b2, NOW).map_err(fail)?;
                    prop_assert_eq!(info.base_offset, base);
                    prop_assert_eq!(info.last_offset, base + records as i64 - 1);
                    expected.push(at_offset(b, base));
                }
                Op::Roll => log.roll().map_err(fail)?,
                Op::Sync => log.sync().map_err(fail)?,
                Op::ReopenClean => {
                    log.close().map_err(fail)?;
                    log = Log::open(dir.path(), config.clone(), NOW).map_err(fail)?;
                }
                Op::ReopenCrash => {
                    drop(log);
                    log = Log::open(dir.path(), config.clone(), NOW).map_err(fail)?;
                }
            }
            let total: i64 = expected.iter().map(|b| {
                rill_record::Batch::parse(b).map(|b| i64::from(b.header().last_offset_delta) + 1).unwrap_or(0)
            }).sum();
            prop_assert_eq!(log.log_end_offset(), total);
        }
        prop_assert_eq!(read_all(&log, 1_000).map_err(fail)?, expected.clone());
        log.verify().map_err(fail)?;
    }
}
