//! Shared by the storage tests: batches, logs in temporary directories, and comparisons.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use rill_log::{Log, LogConfig, LogError};
use rill_record::{Batch, Batches};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A wall-clock "now" for tests that do not care about time.
pub const NOW: i64 = 1_700_000_000_000;

/// A batch of `records` records of `value_len` bytes each, all stamped `timestamp`, with values
/// that say which batch they came from (`tag`).
pub fn batch(tag: u32, records: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let mut builder = rill_record::BatchBuilder::new();
    for i in 0..records {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_len.max(value.len()), b'x');
        builder = builder.record(
            rill_record::RecordSpec::new(timestamp)
                .key(format!("k{i}").into_bytes())
                .value(value),
        );
    }
    builder.build().map(|b| b.to_vec()).unwrap_or_default()
}

/// Config with small segments so that tests roll often.
pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Reads every batch from the log start to the log end, in order.
pub fn read_all(log: &Log, max_bytes: usize) -> Result<Vec<Vec<u8>>, LogError> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, max_bytes)?;
        assert!(
            !bytes.is_empty(),
            "empty read at {offset} below the log end"
        );
        for batch in Batches::new(&bytes) {
            let batch = batch?;
            assert!(batch.header().last_offset() >= offset);
            offset = batch.header().next_offset();
            out.push(batch.as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// The batch as the log stores it: `baseOffset` rewritten, nothing else.
pub fn at_offset(mut batch: Vec<u8>, base_offset: i64) -> Vec<u8> {
    let _ = rill_record::batch::set_base_offset(&mut batch, base_offset);
    batch
}

/// Appends `batches` and returns them as stored.
pub fn append_all(log: &mut Log, batches: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, LogError> {
    let mut stored = Vec::new();
    for mut b in batches {
        let info = log.append(&mut b, NOW)?;
        assert_eq!(Batch::parse(&b)?.header().base_offset, info.base_offset);
        stored.push(b);
    }
    Ok(stored)
}

/// The `.log` files in a log directory, sorted.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
