//! Crash recovery: torn tails are cut off, corruption is reported, indexes are rebuilt.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::*;
use rill_log::{Corruption, Log, LogConfig, LogError};

/// Cut the active segment at every byte of its last batch: the log reopens with exactly the
/// batches before it, and appends continue at the right offset.
#[test]
fn cut_at_every_byte_of_the_last_batch_recovers_the_intact_prefix() -> TestResult {
    let template = tempfile::tempdir()?;
    let mut log = Log::open(template.path(), small_segments(4_000), NOW)?;
    let stored = append_all(&mut log, (0..12).map(|i| batch(i, 3, 100, NOW)).collect())?;
    drop(log);
    let files = segment_files(template.path());
    assert!(
        files.len() > 1,
        "the cut must happen in an active segment after sealed ones"
    );
    let active = files.last().map(|p| p.to_path_buf()).unwrap_or_default();
    let full = std::fs::read(&active)?;
    let last = stored.last().map(Vec::len).unwrap_or_default();
    let prefix_end = full.len() - last;
    let before = stored.len() - 1;
    let next_offset = 3 * before as i64;

    for cut in prefix_end..full.len() {
        let dir = tempfile::tempdir()?;
        for file in std::fs::read_dir(template.path())? {
            let file = file?;
            let _ = std::fs::copy(file.path(), dir.path().join(file.file_name()))?;
        }
        let name = active.file_name().unwrap_or_default();
        std::fs::write(dir.path().join(name), &full[..cut])?;

        let mut log = Log::open(dir.path(), small_segments(4_000), NOW)?;
        assert_eq!(log.log_end_offset(), next_offset, "cut at {cut}");
        assert_eq!(read_all(&log, 1 << 20)?, stored[..before], "cut at {cut}");
        assert_eq!(
            std::fs::metadata(dir.path().join(name))?.len() as usize,
            prefix_end
        );
        let info = log.append(&mut batch(99, 1, 10, NOW), NOW)?;
        assert_eq!(info.base_offset, next_offset);
        log.verify()?;
    }
    Ok(())
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(&mut log, (0..3).map(|i| batch(i, 2, 50, NOW)).collect())?;
    drop(log);
    let active = segment_files(dir.path()).pop().unwrap_or_default();
    let len = std::fs::metadata(&active)?.len();
    for garbage in [
        vec![0u8; 100],
        vec![0xff; 7],
        b"\x00\x00\x00\x00\x00\x00\x00\x06\x00\x00\x10\x00".to_vec(),
    ] {
        let file = OpenOptions::new().write(true).open(&active)?;
        file.write_all_at(&garbage, len)?;
        drop(file);
        let log = Log::open(dir.path(), LogConfig::default(), NOW)?;
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(read_all(&log, 1 << 20)?, stored);
        assert_eq!(std::fs::metadata(&active)?.len(), len);
    }
    Ok(())
}

#[test]
fn a_corrupt_batch_in_the_active_segment_ends_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let stored = append_all(&mut log, (0..3).map(|i| batch(i, 2, 50, NOW)).collect())?;
    drop(log);
    let active = segment_files(dir.path()).pop().unwrap_or_default();
    // Flip a byte in the value of the last batch: its CRC no longer matches.
    let position = (stored[0].len() + stored[1].len() + stored[2].len() - 5) as u64;
    flip_byte(&active, position)?;
    let log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log, 1 << 20)?, stored[..2]);
    Ok(())
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_reported_with_file_and_position() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let stored = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    log.close()?;
    let first = segment_files(dir.path()).remove(0);
    // Inside the second batch of the first (sealed) segment.
    let position = stored[0].len() as u64;
    flip_byte(&first, position + 70)?;

    // Opening does not scan sealed segments, so it succeeds...
    let log = Log::open(dir.path(), config, NOW)?;
    // ...the untouched first batch still reads...
    assert_eq!(&log.read(0, 1)?[..], &stored[0][..]);
    // ...and the damaged one is refused with the file and position, never served.
    match log.read(3, 1 << 20) {
        Err(LogError::Corrupt {
            path,
            position: at,
            source: Corruption::Batch(rill_record::RecordError::CrcMismatch { .. }),
        }) => {
            assert_eq!(path, first);
            assert_eq!(at, position);
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
    match log.read(0, 1 << 20) {
        Err(LogError::Corrupt { path, .. }) => assert_eq!(path, first),
        other => panic!("a read spanning the damage must fail, got {other:?}"),
    }
    match log.verify() {
        Err(LogError::Corrupt {
            path, position: at, ..
        }) => {
            assert_eq!((path, at), (first, position));
        }
        other => panic!("verify must report the damage, got {other:?}"),
    }
    Ok(())
}

#[test]
fn missing_and_damaged_indexes_are_rebuilt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(3_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let stored = append_all(
        &mut log,
        (0..30)
            .map(|i| batch(i, 3, 100, 1_000 + i as i64))
            .collect(),
    )?;
    log.close()?;
    let segments = segment_files(dir.path());
    let index = segments[0].with_extension("index");
    let time_index = segments[1].with_extension("timeindex");
    let original_index = std::fs::read(&index)?;
    assert!(!original_index.is_empty());
    std::fs::remove_file(&index)?;
    std::fs::write(&time_index, b"not an index")?;
    // The active segment's index after a clean close is trusted; make it lie.
    let active_index = segments
        .last()
        .map(|p| p.with_extension("index"))
        .unwrap_or_default();
    std::fs::write(&active_index, [0u8, 0, 0, 9, 0x7f, 0, 0, 0])?;

    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(read_all(&log, 1 << 20)?, stored);
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(
        std::fs::read(&index)?,
        original_index,
        "rebuilt index matches the original"
    );
    assert_eq!(log.offset_for_timestamp(1_015)?.map(|t| t.offset), Some(45));
    Ok(())
}

#[test]
fn a_sealed_segment_that_does_not_reach_the_next_one_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let stored = append_all(&mut log, (0..20).map(|i| batch(i, 3, 100, NOW)).collect())?;
    log.close()?;
    let first = segment_files(dir.path()).remove(0);
    // Lose the sealed segment's last batch and its index: the rebuild sees the gap.
    let len = std::fs::metadata(&first)?.len();
    let file = OpenOptions::new().write(true).open(&first)?;
    file.set_len(len - stored[0].len() as u64)?;
    std::fs::remove_file(first.with_extension("index"))?;
    match Log::open(dir.path(), config, NOW) {
        Err(LogError::Inconsistent { path, .. }) => assert_eq!(path, first),
        other => panic!("expected an inconsistency, got {other:?}"),
    }
    Ok(())
}

fn flip_byte(path: &std::path::Path, position: u64) -> std::io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position)?;
    byte[0] ^= 0x20;
    file.write_all_at(&byte, position)
}
