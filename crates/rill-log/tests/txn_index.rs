//! The aborted-transaction index (`.txnindex`): entries go to the segment holding their ABORT
//! marker, are found by offset range from memory, survive reopens (clean or not), and go with
//! their segments and with the records they speak of (recovery, truncation, retention).

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use rill_log::dir::{TXN_INDEX_SUFFIX, segment_file};
use rill_log::{AbortedTxn, Log, LogConfig, LogError};

const ENTRY_SIZE: usize = 34;

fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset,
        last_offset,
        last_stable_offset: first_offset,
    }
}

fn txn_file(dir: &Path, base_offset: i64) -> PathBuf {
    segment_file(dir, base_offset, TXN_INDEX_SUFFIX)
}

/// The `.txnindex` files in a log directory, by base offset.
fn txn_files(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    rill_log::dir::parse_segment_name(&name, TXN_INDEX_SUFFIX)
                })
                .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

/// The entries a `.txnindex` file holds, decoded as Kafka lays them out.
fn on_disk(path: &Path) -> Result<Vec<AbortedTxn>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    assert_eq!(
        bytes.len() % ENTRY_SIZE,
        0,
        "{} has a torn entry",
        path.display()
    );
    let mut entries = Vec::new();
    for entry in bytes.chunks_exact(ENTRY_SIZE) {
        let field = |at: usize| -> Result<i64, Box<dyn std::error::Error>> {
            let bytes = entry.get(at..at + 8).ok_or("short entry")?;
            Ok(i64::from_be_bytes(bytes.try_into()?))
        };
        assert_eq!(entry.get(..2), Some(&[0u8, 0][..]), "version 0");
        entries.push(AbortedTxn {
            producer_id: field(2)?,
            first_offset: field(10)?,
            last_offset: field(18)?,
            last_stable_offset: field(26)?,
        });
    }
    Ok(entries)
}

/// Every segment with entries has a file holding exactly them; no other segment has one.
fn assert_files_hold(log: &Log, expected: &[AbortedTxn]) -> TestResult {
    let bases = log.segment_base_offsets();
    let mut with_entries = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let end = bases.get(i + 1).copied().unwrap_or(log.log_end_offset());
        let mine: Vec<AbortedTxn> = expected
            .iter()
            .filter(|t| (base..end).contains(&t.last_offset))
            .copied()
            .collect();
        if !mine.is_empty() {
            assert_eq!(on_disk(&txn_file(log.dir(), base))?, mine, "segment {base}");
            with_entries.push(base);
        }
    }
    assert_eq!(
        txn_files(log.dir()),
        with_entries,
        "no .txnindex without entries"
    );
    Ok(())
}

/// A log of small segments holding `batches` batches of 3 records (about four to a segment).
fn rolled_log(dir: &Path, batches: u32) -> Result<Log, Box<dyn std::error::Error>> {
    let mut log = Log::open(dir, small_segments(2_000), NOW)?;
    let _ = append_all(
        &mut log,
        (0..batches).map(|i| batch(i, 3, 100, NOW)).collect(),
    )?;
    assert!(log.segment_count() > 3, "{:?}", log.segment_base_offsets());
    Ok(log)
}

/// An entry ending in every other batch (its marker taken to be the batch's last record), each
/// begun in the batch before, added as the log grows and rolls.
fn grow_with_aborts(log: &mut Log, batches: u32) -> Result<Vec<AbortedTxn>, LogError> {
    let mut added = Vec::new();
    for i in 0..batches {
        let info = log.append(&mut batch(i, 3, 100, NOW), NOW)?;
        if i % 2 == 1 {
            let entry = txn(i64::from(i), info.base_offset - 2, info.last_offset);
            log.add_aborted(entry)?;
            added.push(entry);
        }
    }
    Ok(added)
}

#[test]
fn entries_go_to_the_segment_holding_their_marker_across_rolls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    let mut expected = grow_with_aborts(&mut log, 20)?;
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3, "{bases:?}");
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // A sealed segment takes an entry after its last one (at its last offset); one begun in the
    // segment before is found from either end.
    let (base, sealed_end) = (1..bases.len() - 1)
        .map(|k| (bases[k], bases[k + 1] - 1))
        .find(|&(_, end)| expected.iter().all(|t| t.last_offset != end))
        .ok_or("every sealed segment ends with an entry")?;
    let spanning = txn(99, base - 1, sealed_end);
    log.add_aborted(spanning)?;
    expected.push(spanning);
    expected.sort_by_key(|t| t.last_offset);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    assert!(log.aborted_between(base - 1, base).contains(&spanning));
    assert!(
        log.aborted_between(sealed_end, sealed_end + 1)
            .contains(&spanning)
    );
    log.sync_txn_index()?;
    log.close()?;
    Ok(())
}

#[test]
fn aborted_between_takes_last_offsets_from_and_first_offsets_before_to() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    let _ = append_all(&mut log, (0..10).map(|i| batch(i, 1, 10, NOW)).collect())?;
    let (a, b, c) = (txn(1, 1, 3), txn(2, 2, 6), txn(3, 7, 8));
    for entry in [a, b, c] {
        log.add_aborted(entry)?;
    }
    let cases: [(i64, i64, Vec<AbortedTxn>); 12] = [
        (0, 10, vec![a, b, c]),
        (3, 10, vec![a, b, c]),
        (4, 10, vec![b, c]),
        (0, 1, vec![]),
        (0, 2, vec![a]),
        (0, 3, vec![a, b]),
        (7, 7, vec![]),
        (7, 8, vec![c]),
        (8, 8, vec![c]),
        (9, 9, vec![]),
        (9, 100, vec![]),
        (5, 3, vec![b]),
    ];
    for (from, to, expected) in cases {
        assert_eq!(log.aborted_between(from, to), expected, "{from}..{to}");
    }
    Ok(())
}

#[test]
fn an_entry_added_again_is_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = rolled_log(dir.path(), 20)?;
    let bases = log.segment_base_offsets();
    let first = txn(1, bases[1], bases[1] + 4);
    log.add_aborted(first)?;
    log.add_aborted(first)?;
    // At or below the last one in that segment, even with other fields: ignored.
    log.add_aborted(txn(2, bases[1], bases[1] + 2))?;
    log.add_aborted(AbortedTxn {
        producer_id: 7,
        ..first
    })?;
    assert_eq!(log.aborted_between(0, i64::MAX), [first]);
    assert_eq!(
        std::fs::metadata(txn_file(dir.path(), bases[1]))?.len(),
        ENTRY_SIZE as u64
    );
    // An earlier segment has entries of its own, below that one.
    let earlier = txn(3, 0, bases[1] - 1);
    log.add_aborted(earlier)?;
    assert_eq!(log.aborted_between(0, i64::MAX), [earlier, first]);

    // As after a crash: the markers replayed add the same entries again.
    drop(log);
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    log.add_aborted(earlier)?;
    log.add_aborted(first)?;
    assert_eq!(log.aborted_between(0, i64::MAX), [earlier, first]);
    assert_files_hold(&log, &[earlier, first])?;
    Ok(())
}

#[test]
fn entries_outside_the_log_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = Log::open(dir.path(), LogConfig::default(), NOW)?;
    assert!(matches!(
        log.add_aborted(txn(1, 0, 0)),
        Err(LogError::OffsetOutOfRange { offset: 0, .. })
    ));
    let _ = append_all(&mut log, (0..5).map(|i| batch(i, 2, 10, NOW)).collect())?;
    let _ = log.delete_records_before(4)?;
    for last_offset in [10, 11, 3, -1] {
        assert!(
            matches!(
                log.add_aborted(txn(1, 0, last_offset)),
                Err(LogError::OffsetOutOfRange { offset, log_start_offset: 4, log_end_offset: 10 })
                    if offset == last_offset
            ),
            "{last_offset}"
        );
    }
    assert!(matches!(
        log.add_aborted(txn(1, 6, 5)),
        Err(LogError::InvalidAbortedTxn {
            first_offset: 6,
            last_offset: 5
        })
    ));
    assert!(log.aborted_between(0, i64::MAX).is_empty());
    assert!(txn_files(dir.path()).is_empty());
    // The bounds themselves are in: the log start, and the offset before the end.
    log.add_aborted(txn(1, 0, 4))?;
    log.add_aborted(txn(2, 8, 9))?;
    assert_eq!(log.aborted_between(0, 10), [txn(1, 0, 4), txn(2, 8, 9)]);
    Ok(())
}

#[test]
fn a_log_without_aborts_has_no_txn_index_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = rolled_log(dir.path(), 20)?;
    log.sync_txn_index()?;
    log.roll()?;
    log.close()?;
    let mut log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    let _ = log.append(&mut batch(0, 1, 10, NOW), NOW)?;
    drop(log);
    let log = Log::open(dir.path(), small_segments(2_000), NOW)?;
    assert!(log.aborted_between(0, i64::MAX).is_empty());
    assert!(txn_files(dir.path()).is_empty());
    Ok(())
}

#[test]
fn entries_survive_a_clean_close_and_a_crash() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    // The last batch (end - 3..end) has no entry yet.
    let mut expected = grow_with_aborts(&mut log, 19)?;
    let end = log.log_end_offset();
    // A crash: dropped without close or sync_txn_index.
    drop(log);
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    log.close()?;
    // Entries added to a log opened clean (nothing else changed), then closed, or followed by
    // a crash: they are there after either.
    for (entry, crash) in [
        (txn(50, end - 3, end - 2), false),
        (txn(51, end - 3, end - 1), true),
    ] {
        let mut log = Log::open(dir.path(), config.clone(), NOW)?;
        assert_eq!(log.aborted_between(0, i64::MAX), expected);
        log.add_aborted(entry)?;
        expected.push(entry);
        if crash {
            drop(log);
        } else {
            log.close()?;
        }
    }
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // And after a crash of a log appended to since.
    expected.extend(grow_with_aborts(&mut log, 6)?);
    drop(log);
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    log.verify()?;
    Ok(())
}

#[test]
fn a_torn_trailing_entry_is_dropped() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut expected = grow_with_aborts(&mut log, 20)?;
    drop(log);
    // A torn write at the end of the active segment's index and of a sealed one's.
    let with_entries = txn_files(dir.path());
    let torn = [with_entries[0], *with_entries.last().unwrap_or(&0)];
    for base in torn {
        let path = txn_file(dir.path(), base);
        let len = std::fs::metadata(&path)?.len();
        let file = OpenOptions::new().write(true).open(&path)?;
        file.write_all_at(&[0u8; ENTRY_SIZE - 1], len)?;
    }
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // Entries added afterwards follow the last whole one.
    expected.extend(grow_with_aborts(&mut log, 4)?);
    assert_files_hold(&log, &expected)?;
    drop(log);
    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    Ok(())
}

#[test]
fn recovery_drops_entries_past_a_cut_tail() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    // The last batch (end - 3..end) has no entry yet; the one before it has, in the same segment.
    let mut expected = grow_with_aborts(&mut log, 19)?;
    let end = log.log_end_offset();
    let active_base = log.segment_base_offsets().last().copied().unwrap_or(0);
    let before = expected.last().copied().ok_or("no entry")?;
    assert_eq!(before.last_offset, end - 4);
    assert!(
        active_base <= end - 6,
        "the active segment holds the last two batches"
    );
    let doomed = txn(70, end - 3, end - 1);
    log.add_aborted(doomed)?;
    assert_eq!(log.aborted_between(end - 4, end), [before, doomed]);
    drop(log);

    // Garbage after the last batch: cut off, the log end is unchanged and so are the entries.
    let active = segment_files(dir.path()).pop().unwrap_or_default();
    let len = std::fs::metadata(&active)?.len();
    let file = OpenOptions::new().write(true).open(&active)?;
    file.write_all_at(&[0xff; 100], len)?;
    drop(file);
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.log_end_offset(), end);
    expected.push(doomed);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    drop(log);

    // Garbage over the end of the last batch: the batch is cut off, and the entry whose marker
    // was in it goes; those before it stay.
    let file = OpenOptions::new().write(true).open(&active)?;
    file.write_all_at(&[0xff; 16], len - 16)?;
    drop(file);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.log_end_offset(), end - 3);
    let _ = expected.pop();
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // Appends reach those offsets again, and the broker records the markers now there.
    let info = log.append(&mut batch(99, 3, 100, NOW), NOW)?;
    assert_eq!(info.base_offset, end - 3);
    let again = txn(72, end - 3, end - 2);
    log.add_aborted(again)?;
    expected.push(again);
    log.close()?;
    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    Ok(())
}

#[test]
fn truncate_to_and_start_at_drop_the_entries_they_cut_off() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut expected = grow_with_aborts(&mut log, 30)?;
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 5, "{bases:?}");

    // Each entry's marker ends a batch of 3 records: where that batch starts is a place to cut
    // that leaves the entries before it.
    let batch_start = |t: &AbortedTxn| t.last_offset - 2;
    // Inside the active segment.
    let active_base = bases[bases.len() - 1];
    let cut = expected
        .iter()
        .rev()
        .map(batch_start)
        .find(|&o| o > active_base)
        .ok_or("no entry inside the active segment")?;
    log.truncate_to(cut)?;
    expected.retain(|t| t.last_offset < cut);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // Inside a sealed segment: the segments after it go with their indexes.
    let cut = expected
        .iter()
        .map(batch_start)
        .find(|&o| o > bases[3] && o < bases[4])
        .ok_or("no entry inside the fourth segment")?;
    log.truncate_to(cut)?;
    expected.retain(|t| t.last_offset < cut);
    assert_eq!(log.segment_base_offsets(), bases[..4]);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    for &base in &bases[4..] {
        assert!(!txn_file(dir.path(), base).exists(), "segment {base}");
    }

    // At a segment's base: it stays, empty, without its index.
    log.truncate_to(bases[2])?;
    expected.retain(|t| t.last_offset < bases[2]);
    assert!(!expected.is_empty());
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    assert!(!txn_file(dir.path(), bases[2]).exists());

    // The cuts are on disk: after a crash and after a clean close, the same entries.
    drop(log);
    let log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    log.close()?;
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    // start_at, above the end and at an old segment's base: nothing is left.
    for offset in [1_000, bases[1]] {
        let _ = grow_with_aborts(&mut log, 10)?;
        assert!(!log.aborted_between(0, i64::MAX).is_empty());
        log.start_at(offset)?;
        assert!(log.aborted_between(0, i64::MAX).is_empty());
        assert!(txn_files(dir.path()).is_empty(), "start_at({offset})");
        drop(log);
        log = Log::open(dir.path(), config.clone(), NOW)?;
        assert!(log.aborted_between(0, i64::MAX).is_empty());
    }
    Ok(())
}

#[test]
fn deleting_segments_deletes_their_indexes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_bytes: 5_000,
        ..small_segments(2_000)
    };
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let mut expected = grow_with_aborts(&mut log, 40)?;
    let with_entries = txn_files(dir.path());
    let deleted = log.apply_retention(NOW)?;
    assert!(!deleted.is_empty());
    assert!(deleted.iter().any(|base| with_entries.contains(base)));
    let start = log.log_start_offset();
    expected.retain(|t| t.last_offset >= start);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    for base in &deleted {
        assert!(!txn_file(dir.path(), *base).exists(), "segment {base}");
    }

    // delete_records_before deletes whole segments too; a segment it only starts inside keeps
    // its entries.
    let bases = log.segment_base_offsets();
    let _ = log.delete_records_before(bases[2] + 1)?;
    expected.retain(|t| t.last_offset >= bases[2]);
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;

    drop(log);
    let log = Log::open(dir.path(), config, NOW)?;
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    Ok(())
}

#[test]
fn leftover_index_files_are_removed_when_the_log_opens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_segments(2_000);
    let mut log = Log::open(dir.path(), config.clone(), NOW)?;
    let expected = grow_with_aborts(&mut log, 20)?;
    let end = log.log_end_offset();
    drop(log);
    // An index whose segment's `.log` was deleted before a crash, where a new segment will
    // start; and the temporary file of an interrupted rewrite.
    let orphan = txn_file(dir.path(), end);
    std::fs::write(&orphan, std::fs::read(txn_file(dir.path(), 0))?)?;
    let temp = dir.path().join(format!("{:020}.txnindex.tmp", 0));
    std::fs::write(&temp, [1u8; 10])?;

    let mut log = Log::open(dir.path(), config, NOW)?;
    assert!(!orphan.exists());
    assert!(!temp.exists());
    log.roll()?;
    let _ = log.append(&mut batch(0, 3, 100, NOW), NOW)?;
    assert_eq!(log.segment_base_offsets().last(), Some(&end));
    assert_eq!(log.aborted_between(0, i64::MAX), expected);
    assert_files_hold(&log, &expected)?;
    Ok(())
}
