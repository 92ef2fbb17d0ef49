//! Random appends, rolls, truncations and reopens (clean and unclean) always read back exactly
//! what a plain list of batches says the log holds.

mod common;

use common::*;
use proptest::prelude::*;
use rill_log::{Log, LogError};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
    },
    Roll,
    Sync,
    ReopenClean,
    ReopenCrash,
    /// `truncate_to` the start of batch `pick` (modulo their number, the end included), or
    /// one offset past it when `inside`.
    Truncate {
        pick: usize,
        inside: bool,
    },
    /// `start_at` the log end plus `delta` (at least 0).
    StartAt {
        delta: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8, 0usize..400).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        1 => Just(Op::Roll),
        1 => Just(Op::Sync),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenCrash),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, inside)| Op::Truncate { pick, inside }),
        1 => (-20i64..20).prop_map(|delta| Op::StartAt { delta }),
    ]
}

fn records(batch: &[u8]) -> i64 {
    rill_record::Batch::parse(batch).map_or(0, |b| i64::from(b.header().last_offset_delta) + 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_read_back_exactly(ops in prop::collection::vec(op(), 1..40), segment_bytes in 300u64..5_000) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let config = small_segments(segment_bytes.max(100));
        let fail = |e: rill_log::LogError| TestCaseError::fail(e.to_string());
        let mut log = Log::open(dir.path(), config.clone(), NOW).map_err(fail)?;
        // The model: the log start, and the batches from there.
        let mut start = 0i64;
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
                Op::Truncate { pick, inside } => {
                    let keep = pick % (expected.len() + 1);
                    let offset = start + expected[..keep].iter().map(|b| records(b)).sum::<i64>();
                    match expected.get(keep) {
                        Some(b) if inside && records(b) > 1 => {
                            let refused = matches!(
                                log.truncate_to(offset + 1),
                                Err(LogError::NotABatchBoundary { .. })
                            );
                            prop_assert!(refused);
                        }
                        _ => {
                            log.truncate_to(offset).map_err(fail)?;
                            expected.truncate(keep);
                        }
                    }
                }
                Op::StartAt { delta } => {
                    start = (log.log_end_offset() + delta).max(0);
                    log.start_at(start).map_err(fail)?;
                    expected.clear();
                }
            }
            let end = start + expected.iter().map(|b| records(b)).sum::<i64>();
            prop_assert_eq!(log.log_start_offset(), start);
            prop_assert_eq!(log.log_end_offset(), end);
            prop_assert!(log.flushed_offset() <= end);
        }
        prop_assert_eq!(read_all(&log, 1_000).map_err(fail)?, expected.clone());
        log.verify().map_err(fail)?;
        // Batch `tag` is stamped NOW + tag, and tags only grow: each batch is found by its time.
        for b in &expected {
            let header = *rill_record::Batch::parse(b).map_err(|e| TestCaseError::fail(e.to_string()))?.header();
            let found = log.offset_for_timestamp(header.max_timestamp).map_err(fail)?;
            prop_assert_eq!(found.map(|f| f.offset), Some(header.base_offset));
        }
    }
}
