//! Cutting a log: `truncate_to` drops a suffix, `start_at` empties the log at a new offset; both
//! are durable, and appends, reads, timestamp lookups and reopens go on as if the cut-off
//! records had never been there.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use rill_log::{FileCache, Log, LogConfig, LogError, TimestampOffset};
use rill_record::{Batch, Batches};

/// Every file in a log directory with its bytes.
fn dir_contents(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, std::io::Error> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let _ = files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path())?,
        );
    }
    Ok(files)
}

/// A copy of a log directory as a crash would leave it (the log still open).
fn copy_dir(from: &Path) -> Result<tempfile::TempDir, std::io::Error> {
    let to = tempfile::tempdir()?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let _ = std::fs::copy(entry.path(), to.path().join(entry.file_name()))?;
    }
    Ok(to)
}

/// The first offset of each stored batch, and the offset after the last.
fn boundaries(stored: &[Vec<u8>]) -> Result<Vec<i64>, rill_record::RecordError> {
    let mut out = Vec::new();
    for b in stored {
        out.push(Batch::parse(b)?.header().base_offset);
    }
    if let Some(last) = stored.last() {
        out.push(Batch::parse(last)?.header().next_offset());
    }
    Ok(out)
}

/// The log's segments on disk are exactly the ones it reports.
fn assert_files_match(log: &Log) {
    let on_disk: Vec<_> = segment_files(log.dir())
        .iter()
        .filter_map(|p| p.file_stem()?.to_str()?.parse::<i64>().ok())
        .collect();
    assert_eq!(on_disk, log.segment_base_offsets());
}

/// Opens a copy of the log's directory taken while it is open, then reopens the log after a
/// crash (a drop without close), then after a clean close, and checks each time that it holds
/// exactly `stored` between the same start and end. Returns the log, open again.
fn assert_survives_reopen(
    log: Log,
    config: &LogConfig,
    stored: &[Vec<u8>],
) -> Result<Log, Box<dyn std::error::Error>> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let check = |what: &str, log: &Log| -> TestResult {
        assert_eq!(log.log_start_offset(), start, "{what}");
        assert_eq!(log.log_end_offset(), end, "{what}");
        assert_eq!(read_all(log, 1 << 20)?, stored, "{what}");
        assert_files_match(log);
        log.verify()?;
        Ok(())
    };
    let copy = copy_dir(log.dir())?;
    check("copy", &Log::open(copy.path(), config.clone(), NOW)?)?;
    let dir = log.dir().to_path_buf();
    drop(log);
    let log = Log::open(&dir, config.clone(), NOW)?;
    check("crash", &log)?;
    log.close()?;
    let log = Log::open(&dir, config.clone(), NOW)?;
    check("clean", &log)?;
    Ok(log)
}

/// Closes the log and checks that its files (segments, indexes, marker) are byte for byte those
/// of a log that was only ever given the batches it now holds: the cut left no trace. Returns
/// the log, open again.
fn assert_files_as_if_never_cut(
    log: Log,
    config: &LogConfig,
) -> Result<Log, Box<dyn std::error::Error>> {
    assert_eq!(log.log_start_offset(), 0, "a fresh log starts at 0");
    let stored = read_all(&log, 1 << 20)?;
    // A cut at a segment's base leaves that segment, empty, as a roll would have.
    let rolled =
        log.segment_count() > 1 && log.segment_base_offsets().last() == Some(&log.log_end_offset());
    let dir = log.dir().to_path_buf();
    log.close()?;
    let fresh = tempfile::tempdir()?;
    let mut other = Log::open(fresh.path(), config.clone(), NOW)?;
    let _ = append_all(&mut other, stored)?;
    if rolled {
        other.roll()?;
    }
    other.close()?;
    let (ours, theirs) = (dir_contents(&dir)?, dir_contents(fresh.path())?);
    let sizes = |files: &BTreeMap<String, Vec<u8>>| -> Vec<(String, usize)> {
        files
            .iter()
            .map(|(name, bytes)| (name.clone(), bytes.len()))
            .collect()
    };
    assert!(
        ours == theirs,
        "{:?}\n!=\n{:?}",
        sizes(&ours),
        sizes(&theirs)
    );
    Ok(Log::open(&dir, config.clone(), NOW)?)
}

#[test]
fn truncate_in_the_active_segment_then_append_continues_there() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig::default();
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut stored = append_all(&mut log, (0..5).map(|i| batch(i, 3, 10, NOW)).collect())?;
    log.truncate_to(9)?;
    stored.truncate(3);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.flushed_offset(), 9);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    assert!(log.read(10, 100).is_err(), "no read past the new end");

    let info = log.append(&mut batch(10, 2, 10, NOW), NOW)?;
    assert_eq!((info.base_offset, info.last_offset), (9, 10));
    stored.push(at_offset(batch(10, 2, 10, NOW), 9));
    // A read at the cut gets the new batch, not the old one.
    assert_eq!(&log.read(9, 1)?[..], &stored[3][..]);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    log.verify()?;
    let log = assert_files_as_if_never_cut(log, &config)?;
    let _ = assert_survives_reopen(log, &config, &stored)?;
    Ok(())
}

#[test]
fn truncate_in_a_sealed_segment_makes_it_active_again() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    // A cache of one file: a deleted segment's descriptor must not serve a new one.
    let cache = FileCache::new(1);
    let mut log = Log::open_cached(dir.path(), config.clone(), NOW, &cache)?;
    let mut stored = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3, "{bases:?}");
    let offsets = boundaries(&stored)?;
    // The second batch of the second segment.
    let cut = offsets
        .iter()
        .copied()
        .find(|&o| o > bases[1])
        .ok_or("no batch after the second segment's first")?;
    assert!(cut < bases[2]);
    log.truncate_to(cut)?;
    assert_eq!(log.log_end_offset(), cut);
    assert_eq!(log.segment_base_offsets(), bases[..2]);
    assert_files_match(&log);
    stored.truncate(offsets.iter().position(|&o| o == cut).unwrap_or(0));
    assert_eq!(read_all(&log, 1 << 20)?, stored);

    // Appends fill the cut segment up again and roll on from it.
    stored.extend(append_all(
        &mut log,
        (100..110).map(|i| batch(i, 3, 100, NOW)).collect(),
    )?);
    assert!(log.segment_count() > 3);
    assert_eq!(log.segment_base_offsets()[..2], bases[..2]);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    assert_files_match(&log);
    log.verify()?;
    let log = assert_files_as_if_never_cut(log, &config)?;
    let _ = assert_survives_reopen(log, &config, &stored)?;
    Ok(())
}

#[test]
fn truncate_at_a_segment_base_leaves_that_segment_empty() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut stored = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    let bases = log.segment_base_offsets();
    let cut = bases[2];
    log.truncate_to(cut)?;
    assert_eq!(log.log_end_offset(), cut);
    assert_eq!(log.segment_base_offsets(), bases[..3]);
    assert_files_match(&log);
    let offsets = boundaries(&stored)?;
    stored.truncate(offsets.iter().position(|&o| o == cut).unwrap_or(0));
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    assert!(log.read(cut, 100)?.is_empty());
    let log = assert_files_as_if_never_cut(log, &config)?;
    let log = assert_survives_reopen(log, &config, &stored)?;
    assert_eq!(log.segment_base_offsets(), bases[..3]);

    // The same at the active segment's base, right after a roll.
    let mut log = log;
    log.roll()?;
    let end = log.log_end_offset();
    stored.extend(append_all(&mut log, vec![batch(50, 2, 10, NOW)])?);
    log.truncate_to(end)?;
    let _ = stored.pop();
    assert_eq!(log.segment_base_offsets().last(), Some(&end));
    let _ = assert_survives_reopen(log, &config, &stored)?;
    Ok(())
}

#[test]
fn truncate_at_or_past_the_end_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(&mut log, (0..3).map(|i| batch(i, 2, 10, NOW)).collect())?;
    log.close()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let before = dir_contents(dir.path())?;
    log.truncate_to(6)?;
    log.truncate_to(1_000)?;
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    // Not even the clean-shutdown marker went: nothing changed.
    assert_eq!(dir_contents(dir.path())?, before);
    Ok(())
}

#[test]
fn truncate_inside_a_batch_is_refused_and_changes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let stored = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    log.close()?;
    let mut log = Log::open(dir.path(), config, NOW)?;
    let before = dir_contents(dir.path())?;
    // Inside the first batch of a sealed segment, and inside the last batch.
    let bases = log.segment_base_offsets();
    for offset in [bases[1] + 1, 58] {
        match log.truncate_to(offset) {
            Err(LogError::NotABatchBoundary {
                offset: at,
                batch_base_offset,
            }) => {
                assert_eq!(at, offset);
                assert_eq!(batch_base_offset, offset - 1);
            }
            other => panic!("expected NotABatchBoundary, got {other:?}"),
        }
    }
    assert!(!log.is_poisoned());
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    assert_eq!(dir_contents(dir.path())?, before);
    Ok(())
}

#[test]
fn truncate_at_or_below_the_log_start_empties_the_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let _ = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    assert_eq!(log.delete_records_before(50)?, 50);

    // At the start: empty, and still starting there.
    log.truncate_to(50)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
    assert_eq!(log.segment_base_offsets(), [50]);
    let mut log = assert_survives_reopen(log, &config, &[])?;

    // Below the start: the log starts (and ends) lower, as in Kafka.
    let _ = append_all(&mut log, (0..3).map(|i| batch(i, 3, 100, NOW)).collect())?;
    assert_eq!(log.log_end_offset(), 59);
    log.truncate_to(20)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
    let mut log = assert_survives_reopen(log, &config, &[])?;
    let info = log.append(&mut batch(9, 1, 10, NOW), NOW)?;
    assert_eq!(info.base_offset, 20);
    assert!(matches!(
        log.truncate_to(-1),
        Err(LogError::NegativeOffset { offset: -1 })
    ));
    assert_eq!(log.log_end_offset(), 21);
    Ok(())
}

/// Batch `i` of `records` records stamped `first + 10 * i + j`.
fn stamped(i: i64, records: i64, first: i64) -> Result<Vec<u8>, rill_record::RecordError> {
    let mut builder = rill_record::BatchBuilder::new();
    for j in 0..records {
        builder =
            builder.record(rill_record::RecordSpec::new(first + 10 * i + j).value(vec![b'v'; 200]));
    }
    Ok(builder.build()?.to_vec())
}

/// `offset_for_timestamp` and `max_timestamp` agree with a scan of every record.
fn assert_timestamps_right(log: &Log) -> TestResult {
    let mut records = Vec::new();
    for b in read_all(log, 1 << 20)? {
        for r in Batch::parse(&b)?.records()? {
            records.push(TimestampOffset {
                offset: r.offset,
                timestamp: r.timestamp,
            });
        }
    }
    let stamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
    for t in stamps
        .iter()
        .flat_map(|&t| [t - 1, t, t + 1])
        .chain([0, i64::MAX])
    {
        let want = records.iter().find(|r| r.timestamp >= t).copied();
        assert_eq!(log.offset_for_timestamp(t)?, want, "timestamp {t}");
    }
    let max = stamps.iter().copied().max();
    let want = max.and_then(|m| records.iter().find(|r| r.timestamp == m).copied());
    assert_eq!(log.max_timestamp()?, want);
    Ok(())
}

#[test]
fn timestamp_lookups_are_right_after_truncate_and_append() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(3_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    for i in 0..30 {
        let _ = log.append(&mut stamped(i, 4, 1_000)?, NOW)?;
    }
    assert!(log.segment_count() > 3);
    assert_timestamps_right(&log)?;
    // Into a sealed segment: its largest timestamp must shrink with it.
    log.truncate_to(4 * 17)?;
    assert_eq!(
        log.max_timestamp()?,
        Some(TimestampOffset {
            offset: 67,
            timestamp: 1_163
        })
    );
    assert_eq!(log.offset_for_timestamp(1_164)?, None);
    assert_timestamps_right(&log)?;
    // New records with later, then earlier timestamps than the ones cut off.
    for i in 0..8 {
        let _ = log.append(&mut stamped(i, 4, 2_000)?, NOW)?;
    }
    for i in 0..4 {
        let _ = log.append(&mut stamped(i, 4, 500)?, NOW)?;
    }
    assert_timestamps_right(&log)?;
    // Into the active segment, then a clean reopen and a crash.
    log.truncate_to(4 * 17 + 4 * 9)?;
    assert_timestamps_right(&log)?;
    let log = assert_files_as_if_never_cut(log, &config)?;
    assert_timestamps_right(&log)?;
    drop(log);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_timestamps_right(&log)?;
    log.truncate_to(4 * 5)?;
    drop(log);
    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.log_end_offset(), 20);
    assert_timestamps_right(&log)?;
    Ok(())
}

#[test]
fn start_at_above_and_below_the_end_then_append_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let _ = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    log.close()?;
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;

    for offset in [1_000, 7] {
        log.start_at(offset)?;
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (offset, offset)
        );
        assert_eq!(log.flushed_offset(), offset);
        assert_eq!(log.segment_base_offsets(), [offset]);
        assert_files_match(&log);
        assert!(log.read(offset, 100)?.is_empty());
        assert!(log.read(offset - 1, 100).is_err());
        log = assert_survives_reopen(log, &config, &[])?;
        let stored = append_all(&mut log, (0..10).map(|i| batch(i, 3, 100, NOW)).collect())?;
        assert_eq!(log.log_end_offset(), offset + 30);
        assert_eq!(
            Batch::parse(&stored[0])?.header().base_offset,
            offset,
            "appends continue at the new start"
        );
        log = assert_survives_reopen(log, &config, &stored)?;
    }
    assert!(matches!(
        log.start_at(-5),
        Err(LogError::NegativeOffset { offset: -5 })
    ));
    assert_eq!(log.log_end_offset(), 37);
    Ok(())
}

#[test]
fn a_start_at_lost_half_way_leaves_an_empty_log_at_its_checkpoint() -> TestResult {
    // The state a crash leaves after the segments went and the checkpoint was written, before
    // the new segment was created.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("log-start-offset"), "500\n")?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.append(&mut batch(0, 1, 10, NOW), NOW)?.base_offset, 500);
    Ok(())
}

#[test]
fn truncate_right_after_a_roll_leaves_no_failing_seal_behind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut stored = Vec::new();
    for round in 0..20u32 {
        let start = log.log_end_offset();
        stored.extend(append_all(&mut log, vec![batch(round, 3, 100, NOW)])?);
        // Two more segments, sealed just now: their fsyncs may still be running when the
        // truncation deletes one of them and cuts the other.
        for _ in 0..2 {
            log.roll()?;
            let _ = append_all(&mut log, vec![batch(round, 3, 100, NOW)])?;
        }
        log.roll()?;
        log.truncate_to(start + 3)?;
        assert_eq!(log.log_end_offset(), start + 3);
    }
    log.sync()?;
    assert!(!log.is_poisoned());
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    let _ = assert_survives_reopen(log, &config, &stored)?;
    Ok(())
}

#[test]
fn a_sync_begun_before_a_truncate_does_not_count_after_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let _ = append_all(&mut log, (0..5).map(|i| batch(i, 2, 10, NOW)).collect())?;
    let pending = log.begin_sync()?.ok_or("nothing to sync")?;
    log.truncate_to(4)?;
    let _ = append_all(&mut log, vec![batch(9, 1, 10, NOW)])?;
    let result = pending.run();
    log.finish_sync(pending, result)?;
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(
        log.flushed_offset(),
        4,
        "the sync ended at 10 in the old log, and covered nothing appended since the cut"
    );
    log.sync()?;
    assert_eq!(log.flushed_offset(), 5);
    Ok(())
}

#[test]
fn read_after_truncate_never_returns_cut_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(&mut log, (0..4).map(|i| batch(i, 2, 10, NOW)).collect())?;
    log.truncate_to(4)?;
    let bytes = log.read(0, 1 << 20)?;
    let batches: Vec<_> = Batches::new(&bytes).collect::<Result<_, _>>()?;
    assert_eq!(batches.len(), 2);
    assert_eq!(&bytes[..], [&stored[0][..], &stored[1][..]].concat());
    Ok(())
}
