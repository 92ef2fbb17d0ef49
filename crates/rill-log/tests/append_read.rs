//! Appending and reading: offsets, whole batches, segment boundaries, timestamps.

mod common;

use common::*;
use rill_log::{FlushPolicy, Log, LogConfig, LogError, TimestampOffset};
use rill_record::{Batch, Batches};

#[test]
fn append_assigns_offsets_and_read_returns_the_stored_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let mut first = batch(0, 3, 10, NOW);
    // Whatever baseOffset the producer sent is replaced.
    rill_record::batch::set_base_offset(&mut first, 999)?;
    let info = log.append(&mut first, NOW + 5)?;
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(info.log_append_time_ms, NOW + 5);
    let info = log.append(&mut batch(1, 2, 10, NOW), NOW)?;
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);

    let bytes = log.read(0, 1 << 20)?;
    let batches: Vec<_> = Batches::new(&bytes).collect::<Result<_, _>>()?;
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].as_bytes(), at_offset(batch(0, 3, 10, NOW), 0));
    assert_eq!(batches[1].as_bytes(), at_offset(batch(1, 2, 10, NOW), 3));
    for b in &batches {
        b.verify_crc()?;
    }
    let values: Vec<_> = batches[1]
        .records()?
        .into_iter()
        .map(|r| (r.offset, r.value))
        .collect();
    assert_eq!(values[0].0, 3);
    assert!(
        values[0]
            .1
            .as_deref()
            .is_some_and(|v| v.starts_with(b"1:0:"))
    );
    Ok(())
}

#[test]
fn read_from_the_middle_of_a_batch_returns_that_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(&mut log, vec![batch(0, 4, 10, NOW), batch(1, 4, 10, NOW)])?;
    for offset in 4..8 {
        let bytes = log.read(offset, 1 << 20)?;
        assert_eq!(&bytes[..], &stored[1][..], "read at {offset}");
    }
    Ok(())
}

#[test]
fn read_returns_at_least_one_batch_and_only_whole_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(
        &mut log,
        vec![
            batch(0, 10, 1000, NOW),
            batch(1, 10, 1000, NOW),
            batch(2, 10, 1000, NOW),
        ],
    )?;
    // max_bytes smaller than the first batch: still that one batch.
    assert_eq!(&log.read(0, 1)?[..], &stored[0][..]);
    // max_bytes between one and two batches: one batch, never a partial second.
    let one_and_a_half = stored[0].len() + stored[1].len() / 2;
    assert_eq!(&log.read(0, one_and_a_half)?[..], &stored[0][..]);
    // Exactly two batches.
    let two = stored[0].len() + stored[1].len();
    assert_eq!(log.read(0, two)?.len(), two);
    Ok(())
}

#[test]
fn reads_at_and_beyond_the_ends() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let _ = append_all(&mut log, vec![batch(0, 2, 10, NOW)])?;
    assert!(log.read(2, 1024)?.is_empty(), "the log end reads as empty");
    assert!(matches!(
        log.read(3, 1024),
        Err(LogError::OffsetOutOfRange {
            offset: 3,
            log_start_offset: 0,
            log_end_offset: 2
        })
    ));
    assert!(matches!(
        log.read(-1, 1024),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    Ok(())
}

#[test]
fn reads_cross_segment_boundaries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    let stored = append_all(&mut log, (0..40).map(|i| batch(i, 3, 100, NOW)).collect())?;
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    // Segments are named by their base offset and start where the previous one ended.
    let bases = log.segment_base_offsets();
    assert_eq!(bases[0], 0);
    for name in segment_files(dir.path()) {
        let stem = name
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(stem.len(), 20);
        assert!(bases.contains(&stem.parse()?));
    }
    for max_bytes in [1, 700, 5_000, 1 << 20] {
        assert_eq!(read_all(&log, max_bytes)?, stored, "max_bytes {max_bytes}");
    }
    // Every offset, including each segment's first and last, reads the batch holding it.
    for offset in 0..log.log_end_offset() {
        let bytes = log.read(offset, 1)?;
        let b = Batch::parse(&bytes)?;
        assert!(b.header().base_offset <= offset && offset <= b.header().last_offset());
    }
    Ok(())
}

#[test]
fn a_batch_larger_than_a_segment_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), small_segments(1_000), NOW)?;
    let err = log.append(&mut batch(0, 5, 500, NOW), NOW);
    assert!(matches!(
        err,
        Err(LogError::BatchTooLarge { max: 1_000, .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    Ok(())
}

#[test]
fn malformed_input_is_refused_without_writing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let good = batch(0, 2, 10, NOW);
    for cut in [0, 10, 60, good.len() - 1] {
        let mut short = good[..cut].to_vec();
        assert!(matches!(
            log.append(&mut short, NOW),
            Err(LogError::InvalidBatch { .. })
        ));
    }
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert!(matches!(
        log.append(&mut two, NOW),
        Err(LogError::InvalidBatch { .. })
    ));
    let mut old_magic = good.clone();
    old_magic[16] = 1;
    assert!(matches!(
        log.append(&mut old_magic, NOW),
        Err(LogError::InvalidBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    Ok(())
}

#[test]
fn offsets_by_timestamp() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), small_segments(3_000), NOW)?;
    // Batch i holds 4 records stamped 1000 + 10*i; the timestamps also vary inside one batch.
    for i in 0..30i64 {
        let mut builder = rill_record::BatchBuilder::new();
        for j in 0..4 {
            builder = builder
                .record(rill_record::RecordSpec::new(1_000 + 10 * i + j).value(vec![b'v'; 200]));
        }
        let mut b = builder.build()?.to_vec();
        let _ = log.append(&mut b, NOW)?;
    }
    assert!(log.segment_count() > 3);
    let at = |t| log.offset_for_timestamp(t);
    assert_eq!(
        at(0)?,
        Some(TimestampOffset {
            offset: 0,
            timestamp: 1_000
        })
    );
    assert_eq!(
        at(1_000)?,
        Some(TimestampOffset {
            offset: 0,
            timestamp: 1_000
        })
    );
    // Inside a batch: the first record at or after the time, not the batch start.
    assert_eq!(
        at(1_052)?,
        Some(TimestampOffset {
            offset: 22,
            timestamp: 1_052
        })
    );
    // Between batches: the next batch's first record.
    assert_eq!(
        at(1_055)?,
        Some(TimestampOffset {
            offset: 24,
            timestamp: 1_060
        })
    );
    assert_eq!(
        at(1_293)?,
        Some(TimestampOffset {
            offset: 119,
            timestamp: 1_293
        })
    );
    assert_eq!(at(1_294)?, None);
    // Every record is found exactly.
    for i in 0..30i64 {
        for j in 0..4 {
            let t = 1_000 + 10 * i + j;
            assert_eq!(at(t)?.map(|f| f.offset), Some(4 * i + j), "timestamp {t}");
        }
    }
    assert_eq!(
        log.max_timestamp()?,
        Some(TimestampOffset {
            offset: 119,
            timestamp: 1_293
        })
    );
    // The same answers after a clean reopen and after a crash (reopen without close).
    log.close()?;
    let log = Log::open(dir.path(), small_segments(3_000), NOW)?;
    assert_eq!(log.offset_for_timestamp(1_052)?.map(|f| f.offset), Some(22));
    drop(log);
    let log = Log::open(dir.path(), small_segments(3_000), NOW)?;
    assert_eq!(log.offset_for_timestamp(1_201)?.map(|f| f.offset), Some(81));
    Ok(())
}

#[test]
fn reopen_clean_and_unclean_keeps_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(5_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut stored = append_all(&mut log, (0..20).map(|i| batch(i, 2, 300, NOW)).collect())?;
    log.close()?;
    assert!(dir.path().join(rill_log::dir::CLEAN_SHUTDOWN_FILE).exists());

    // Opened and closed again without a change: the marker stays, and closing has no work.
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    log.close()?;
    // Opened, read and dropped without a close (a crash): nothing changed, so still clean.
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    drop(log);
    assert!(dir.path().join(rill_log::dir::CLEAN_SHUTDOWN_FILE).exists());

    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    stored.extend(append_all(
        &mut log,
        (20..30).map(|i| batch(i, 2, 300, NOW)).collect(),
    )?);
    // The first append removed the marker: a crash from now on is treated as one.
    assert!(!dir.path().join(rill_log::dir::CLEAN_SHUTDOWN_FILE).exists());
    drop(log); // no close: the next open recovers the active segment

    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    log.verify()?;
    Ok(())
}

#[test]
fn segments_roll_by_age() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, NOW)?;
    let _ = log.append(&mut batch(0, 1, 10, NOW), NOW)?;
    let _ = log.append(&mut batch(1, 1, 10, NOW), NOW + 999)?;
    assert_eq!(log.segment_count(), 1);
    let _ = log.append(&mut batch(2, 1, 10, NOW), NOW + 1_000)?;
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    Ok(())
}

#[test]
fn an_idle_segment_rolls_by_age_when_its_deadline_comes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_ms: 1_000,
        flush: FlushPolicy::Interval(std::time::Duration::from_millis(300)),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.next_deadline_ms(), None, "an empty log has nothing due");
    let _ = log.append(&mut batch(0, 1, 10, NOW), NOW)?;
    // The interval flush falls due first, then the roll by age.
    assert_eq!(log.next_deadline_ms(), Some(NOW + 300));
    log.tick(NOW + 300)?;
    assert_eq!(log.flushed_offset(), 1);
    assert_eq!(log.next_deadline_ms(), Some(NOW + 1_000));
    log.tick(NOW + 999)?;
    assert_eq!(log.segment_count(), 1);
    log.tick(NOW + 1_000)?;
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    assert_eq!(log.next_deadline_ms(), None, "the new segment is empty");
    assert_eq!(read_all(&log, 1 << 20)?.len(), 1);
    Ok(())
}

#[test]
fn logs_sharing_a_small_descriptor_cache_read_and_write_correctly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cache = rill_log::FileCache::new(3);
    let config = small_segments(3_000);
    let mut logs = Vec::new();
    let mut stored = Vec::new();
    for p in 0..6 {
        let log_dir = dir.path().join(format!("t-{p}"));
        logs.push(Log::open_cached(&log_dir, config.clone(), NOW, &cache)?);
        stored.push(Vec::new());
    }
    // Interleaved appends: every log rolls several times, every append may reopen a file.
    for round in 0..20 {
        for (log, stored) in logs.iter_mut().zip(&mut stored) {
            stored.extend(append_all(log, vec![batch(round, 2, 300, NOW)])?);
            assert!(cache.open_files() <= 3);
        }
    }
    for (log, stored) in logs.iter().zip(&stored) {
        assert!(log.segment_count() > 2);
        assert_eq!(&read_all(log, 1 << 20)?, stored);
        assert_eq!(log.offset_for_timestamp(NOW)?.map(|f| f.offset), Some(0));
    }
    assert!(cache.opens() > 6, "the cache closed and reopened files");
    // Durable through reopened descriptors: close (fsyncs), reopen with the same small cache.
    for log in logs.drain(..) {
        log.close()?;
    }
    assert_eq!(cache.open_files(), 0, "closed logs keep no descriptor");
    for (p, stored) in stored.iter().enumerate() {
        let log_dir = dir.path().join(format!("t-{p}"));
        let log = Log::open_cached(&log_dir, config.clone(), NOW, &cache)?;
        assert_eq!(&read_all(&log, 1 << 20)?, stored);
        log.verify()?;
    }
    Ok(())
}

#[test]
fn invalid_configs_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    for config in [
        LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        },
        LogConfig {
            segment_bytes: 1 << 32,
            ..LogConfig::default()
        },
        LogConfig {
            retention_ms: -2,
            ..LogConfig::default()
        },
        LogConfig {
            segment_ms: 0,
            ..LogConfig::default()
        },
        LogConfig {
            index_interval_bytes: 0,
            ..LogConfig::default()
        },
    ] {
        assert!(matches!(
            Log::open(dir.path(), config, NOW),
            Err(LogError::InvalidConfig(_))
        ));
    }
    Ok(())
}

/// A batch of records stamped `timestamps`, compressed with `compression`.
fn stamped(timestamps: &[i64], compression: rill_record::Compression) -> Vec<u8> {
    let mut builder = rill_record::BatchBuilder::new().compression(compression);
    for &t in timestamps {
        builder = builder.record(rill_record::RecordSpec::new(t).value(vec![b'v'; 300]));
    }
    builder.build().map(|b| b.to_vec()).unwrap_or_default()
}

#[test]
fn max_timestamp_is_the_record_not_its_batch() -> TestResult {
    use rill_record::Compression;
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    let found = |offset, timestamp| Some(TimestampOffset { offset, timestamp });
    assert_eq!(log.max_timestamp()?, None);
    // KAFKA-16310: 100, 400, 250 in one batch is offset 1, not the batch's last offset.
    let _ = log.append(&mut stamped(&[100, 400, 250], Compression::None), NOW)?;
    assert_eq!(log.max_timestamp()?, found(1, 400));
    // A later batch with the same largest timestamp: the earliest record keeps it, as in Kafka.
    let _ = log.append(&mut stamped(&[300, 400], Compression::Zstd), NOW)?;
    assert_eq!(log.max_timestamp()?, found(1, 400));
    // Inside a compressed batch: 5..=8 hold 50, 900, 900, 10.
    let _ = log.append(&mut stamped(&[50, 900, 900, 10], Compression::Gzip), NOW)?;
    assert_eq!(log.max_timestamp()?, found(6, 900));
    // Newer segments with older timestamps do not move it.
    for _ in 0..4 {
        let _ = log.append(&mut stamped(&[500, 600, 700], Compression::None), NOW)?;
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.max_timestamp()?, found(6, 900));
    // The same after a clean reopen and after a crash (reopen without close).
    log.close()?;
    let log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    assert_eq!(log.max_timestamp()?, found(6, 900));
    drop(log);
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    assert_eq!(log.max_timestamp()?, found(6, 900));
    // A larger timestamp in the active segment wins.
    let info = log.append(
        &mut stamped(&[1_000, 2_000, 1_500], Compression::Snappy),
        NOW,
    )?;
    assert_eq!(log.max_timestamp()?, found(info.base_offset + 1, 2_000));
    Ok(())
}
