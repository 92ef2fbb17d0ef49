//! Kafka's on-disk naming:
//! `<topic>-<partition>/<20-digit base offset>.{log,index,timeindex,txnindex}`.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = "log";
/// Suffix of sparse offset index files.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of aborted-transaction index files (only segments with aborted transactions have one).
pub const TXN_INDEX_SUFFIX: &str = "txnindex";
/// Present in a log directory only between a clean close and the next open.
pub const CLEAN_SHUTDOWN_FILE: &str = ".rill-clean-shutdown";

/// The directory of one partition under a data directory, as Kafka names it.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// `dir/<base offset, 20 digits>.<suffix>`.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The base offset a segment file name carries, if it is one of ours with this suffix.
pub fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Makes a directory entry change (create, delete, rename) durable.
pub fn fsync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/data/orders-3");
        let path = segment_file(dir, 1234, LOG_SUFFIX);
        assert_eq!(path, Path::new("/data/orders-3/00000000000000001234.log"));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(parse_segment_name(name, LOG_SUFFIX), Some(1234));
        assert_eq!(parse_segment_name(name, INDEX_SUFFIX), None);
        assert_eq!(parse_segment_name("1234.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_segment_name("0000000000000000123x.log", LOG_SUFFIX),
            None
        );
        assert_eq!(
            partition_dir(Path::new("/data"), "orders", 3),
            Path::new("/data/orders-3")
        );
    }
}
