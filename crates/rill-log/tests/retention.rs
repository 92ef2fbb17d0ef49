//! Retention deletes whole sealed segments, oldest first, never the active one.

mod common;

use common::*;
use rill_log::{Log, LogConfig, LogError};

#[test]
fn retention_by_bytes_deletes_only_whole_sealed_segments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_bytes: 5_000,
        ..small_segments(2_000)
    };
    let mut log = Log::open(dir.path(), config, NOW)?;
    let stored = append_all(&mut log, (0..40).map(|i| batch(i, 3, 100, NOW)).collect())?;
    let before = log.segment_base_offsets();
    let size_before = log.size_bytes();
    let deleted = log.apply_retention(NOW)?;
    assert!(!deleted.is_empty());
    assert_eq!(deleted, before[..deleted.len()]);
    // Deleting one more segment would have gone below the limit.
    assert!(log.size_bytes() >= 5_000, "{} bytes left", log.size_bytes());
    assert!(log.size_bytes() < size_before);
    let start = log.segment_base_offsets()[0];
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    for base in &deleted {
        for suffix in ["log", "index", "timeindex"] {
            let path = rill_log::dir::segment_file(dir.path(), *base, suffix);
            assert!(!path.exists(), "{} still exists", path.display());
        }
    }
    // What is left reads back unchanged; what is gone is out of range.
    let kept = stored.len() - (start / 3) as usize;
    assert_eq!(read_all(&log, 1 << 20)?, stored[stored.len() - kept..]);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // A second pass finds nothing more to delete.
    assert!(log.apply_retention(NOW)?.is_empty());
    Ok(())
}

#[test]
fn retention_never_deletes_the_active_segment() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_bytes: 0,
        retention_ms: 0,
        ..small_segments(2_000)
    };
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let _ = append_all(&mut log, (0..40).map(|i| batch(i, 3, 100, NOW)).collect())?;
    let end = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap_or(&-1);
    let _ = log.apply_retention(NOW + 1_000)?;
    assert_eq!(log.segment_base_offsets(), vec![active_base]);
    assert_eq!(log.log_start_offset(), active_base);
    assert_eq!(log.log_end_offset(), end);
    // The start offset survives a reopen (it is the first segment's base).
    drop(log);
    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.log_start_offset(), active_base);
    assert_eq!(log.log_end_offset(), end);
    Ok(())
}

#[test]
fn retention_by_time_uses_each_segments_newest_timestamp() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_ms: 10_000,
        ..small_segments(2_000)
    };
    let mut log = Log::open(dir.path(), config, NOW)?;
    // Old records first, then recent ones.
    let _ = append_all(
        &mut log,
        (0..20).map(|i| batch(i, 3, 100, NOW - 60_000)).collect(),
    )?;
    log.roll()?;
    let recent_start = log.log_end_offset();
    let _ = append_all(
        &mut log,
        (20..40).map(|i| batch(i, 3, 100, NOW - 1_000)).collect(),
    )?;
    let deleted = log.apply_retention(NOW)?;
    assert!(!deleted.is_empty());
    assert_eq!(log.log_start_offset(), recent_start);
    assert!(log.apply_retention(NOW)?.is_empty());
    Ok(())
}

#[test]
fn unlimited_retention_keeps_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        ..small_segments(2_000)
    };
    let mut log = Log::open(dir.path(), config, NOW)?;
    let stored = append_all(&mut log, (0..40).map(|i| batch(i, 3, 100, 0)).collect())?;
    assert!(log.apply_retention(i64::MAX / 2)?.is_empty());
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    Ok(())
}

#[test]
fn delete_records_moves_the_start_and_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let stored = append_all(&mut log, (0..40).map(|i| batch(i, 3, 100, NOW)).collect())?;
    let segments_before = log.segment_count();
    // Offset 50 lies inside batch 16 (offsets 48..=50): that batch is still returned whole by a
    // read at 50, but offsets below 50 are out of range.
    assert_eq!(log.delete_records_before(50)?, 50);
    assert_eq!(log.log_start_offset(), 50);
    assert!(log.segment_count() < segments_before);
    assert!(log.segment_base_offsets()[0] <= 50);
    assert!(matches!(
        log.read(49, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(&log.read(50, 1)?[..], &stored[16][..]);
    // Moving it back is a no-op; past the end is an error.
    assert_eq!(log.delete_records_before(10)?, 50);
    assert!(matches!(
        log.delete_records_before(121),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let mut log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.log_start_offset(), 50);
    // Everything: the log becomes empty but keeps its end offset.
    assert_eq!(log.delete_records_before(120)?, 120);
    assert_eq!(log.log_end_offset(), 120);
    assert!(log.read(120, 100)?.is_empty());
    Ok(())
}

#[test]
fn deleting_segments_whose_seal_is_still_running_does_not_poison_the_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    for round in 0..50u32 {
        let _ = append_all(&mut log, vec![batch(round, 1, 10, NOW)])?;
        // Sealed just now: its fsync may still be running when it is deleted.
        log.roll()?;
        let end = log.log_end_offset();
        assert_eq!(log.delete_records_before(end)?, end);
    }
    let _ = append_all(&mut log, vec![batch(99, 1, 10, NOW)])?;
    log.sync()?;
    assert!(!log.is_poisoned());
    Ok(())
}
