//! The aborted-transaction index beside a segment (Kafka's `.txnindex`): one entry for each
//! transaction whose ABORT marker is in the segment, in the order of the markers. A
//! read_committed fetch asks it which transactions to filter out of a range of offsets.
//!
//! An entry is 34 bytes, big-endian, as in Kafka: version (i16, always 0), producer id, first
//! offset, last offset (the marker's), last stable offset (i64 each).
//!
//! Unlike the offset and time indexes, it cannot be rebuilt from the log (the log does not know
//! which batches are markers, nor which records they end), so each entry is written to the file
//! as it is added (opened, written, closed: aborts are rare, and no descriptor stays open), and
//! [`crate::Log::sync_txn_index`] fsyncs it. Most segments have no entry and no file: the file
//! is created with the first entry and deleted with the last.
//!
//! Every entry is kept in memory (a `Vec` per segment, empty and unallocated for most), loaded
//! when the log opens. Entries are sorted by strictly growing last offset, and every last offset
//! lies in the segment. On load, a torn trailing entry, an entry of another version, one whose
//! last offset is outside the segment (for the active segment, at or past the log end recovery
//! found) and one out of order are dropped with a warning, and the file is fixed, durably, before
//! the log opens: shortened when only its end goes, otherwise rewritten beside it
//! (`<base>.txnindex.tmp`) and renamed over it. After a crash, what a file holds may not have
//! reached the disk yet: the next `sync_txn_index` fsyncs every file found then.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::dir::fsync_dir;
use crate::error::{IoContext, LogError};

/// Bytes of one entry.
const ENTRY_SIZE: usize = 34;
/// The only entry version, in Kafka as here.
const VERSION: i16 = 0;
/// Suffix of the file a damaged index is rewritten into before it replaces the index; one left
/// by a crash is removed when the log opens.
pub(crate) const REWRITE_SUFFIX: &str = "txnindex.tmp";

/// An aborted transaction (Kafka's AbortedTxn): its producer, its first offset in this partition,
/// the offset of its ABORT marker, and the last stable offset when the marker was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The transaction's first offset in this partition.
    pub first_offset: i64,
    /// The offset of the transaction's ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset when the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        for field in [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }

    /// The entry in `bytes`, or `None` if it is not a whole entry of version 0.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        if i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?) != VERSION {
            return None;
        }
        Some(Self {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// One segment's aborted transactions, and the state of its file (whose path the segment knows).
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// Sorted by strictly growing `last_offset`.
    entries: Vec<AbortedTxn>,
    /// The file exists. It holds `entries`, possibly followed by the remains of a failed write,
    /// which the next write overwrites.
    exists: bool,
    /// The file was written since its last fsync.
    unsynced: bool,
}

impl TxnIndex {
    /// Loads the index at `path` of a segment holding offsets `base_offset..end_offset`; no file
    /// means no entries. What is damaged, out of order or outside the segment is dropped, and the
    /// file fixed durably (see the module docs). `durable` says whether the file is known to be
    /// on disk (the log was closed cleanly); if not, it counts as written since its last fsync.
    pub(crate) fn load(
        path: &Path,
        base_offset: i64,
        end_offset: i64,
        durable: bool,
    ) -> Result<Self, LogError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(err).at(path),
        };
        let chunks = bytes.chunks_exact(ENTRY_SIZE);
        let torn_bytes = chunks.remainder().len();
        let mut entries: Vec<AbortedTxn> = Vec::new();
        let mut dropped = 0usize;
        let mut first_reason = None;
        // Every entry kept is still where the file has it: then the file only needs shortening.
        let mut in_place = true;
        for chunk in chunks {
            let checked = AbortedTxn::decode(chunk)
                .ok_or("not an entry of version 0")
                .and_then(|txn| {
                    if !(base_offset..end_offset).contains(&txn.last_offset) {
                        Err("last offset not in the segment")
                    } else if txn.first_offset > txn.last_offset {
                        Err("first offset after last offset")
                    } else if entries
                        .last()
                        .is_some_and(|previous| txn.last_offset <= previous.last_offset)
                    {
                        Err("last offset not after the entry before it")
                    } else {
                        Ok(txn)
                    }
                });
            match checked {
                Ok(txn) => {
                    in_place &= dropped == 0;
                    entries.push(txn);
                }
                Err(reason) => {
                    dropped += 1;
                    let _ = first_reason.get_or_insert(reason);
                }
            }
        }
        let mut index = Self {
            entries,
            exists: true,
            unsynced: !durable,
        };
        if dropped > 0 || torn_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                kept = index.entries.len(),
                dropped,
                torn_bytes,
                reason = first_reason.unwrap_or("torn trailing entry"),
                "dropping damaged or cut-off aborted transactions"
            );
        } else if !index.entries.is_empty() {
            return Ok(index);
        }
        if in_place || index.entries.is_empty() {
            index.shrink_file(path)?;
        } else {
            index.rewrite_file(path)?;
        }
        Ok(index)
    }

    /// The entries, sorted by last offset.
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Whether the file exists.
    pub(crate) fn exists(&self) -> bool {
        self.exists
    }

    /// Whether the file was written since its last fsync.
    pub(crate) fn is_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Records that the file was fsynced.
    pub(crate) fn synced(&mut self) {
        self.unsynced = false;
    }

    /// Appends `txn` to the file at `path` (without fsync), creating it with the first entry,
    /// and keeps it in memory. An entry whose last offset is not above the last one's is
    /// ignored, which keeps the entries sorted (markers replayed after a crash add their entries
    /// again). Returns whether it created the file (whose directory entry must then be made
    /// durable).
    pub(crate) fn add(&mut self, path: &Path, txn: AbortedTxn) -> Result<bool, LogError> {
        if self
            .entries
            .last()
            .is_some_and(|last| txn.last_offset <= last.last_offset)
        {
            return Ok(false);
        }
        let mut buf = Vec::with_capacity(ENTRY_SIZE);
        txn.encode(&mut buf);
        let at = (self.entries.len() * ENTRY_SIZE) as u64;
        let created = !self.exists;
        // Emptied when it has no entries: anything in it is left over from a failed write, or
        // from a deleted segment whose base a new one got.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(self.entries.is_empty())
            .open(path)
            .at(path)?;
        self.exists = true;
        self.unsynced = true;
        if let Err(err) = file.write_all_at(&buf, at) {
            // Leave no partial entry behind (the next write would overwrite it anyway).
            let _ = file.set_len(at);
            return Err(err).at(path);
        }
        self.entries.push(txn);
        Ok(created)
    }

    /// Drops every entry whose last offset is at or past `offset`, in memory and in the file,
    /// durably: the file is shortened and fsynced, or deleted (and its directory fsynced) when no
    /// entry is left.
    pub(crate) fn truncate(&mut self, path: &Path, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|t| t.last_offset < offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.shrink_file(path)?;
        }
        Ok(())
    }

    /// Makes the file hold exactly `entries`, which it already holds at the start, durably: cut
    /// after them, or deleted when there are none.
    fn shrink_file(&mut self, path: &Path) -> Result<(), LogError> {
        if self.entries.is_empty() {
            match fs::remove_file(path) {
                Err(err) if err.kind() != ErrorKind::NotFound => return Err(err).at(path),
                _ => {}
            }
            if let Some(dir) = path.parent() {
                fsync_dir(dir)?;
            }
            self.exists = false;
        } else {
            let len = (self.entries.len() * ENTRY_SIZE) as u64;
            let file = OpenOptions::new().write(true).open(path).at(path)?;
            file.set_len(len).and_then(|()| file.sync_all()).at(path)?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Replaces the file with one holding exactly `entries`, durably: written beside it, fsynced,
    /// renamed over it, and the directory fsynced; a crash leaves the old file or the new one.
    fn rewrite_file(&mut self, path: &Path) -> Result<(), LogError> {
        let mut buf = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for txn in &self.entries {
            txn.encode(&mut buf);
        }
        let temp = path.with_extension(REWRITE_SUFFIX);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .at(&temp)?;
        file.write_all_at(&buf, 0)
            .and_then(|()| file.sync_all())
            .at(&temp)?;
        fs::rename(&temp, path).at(path)?;
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
        self.unsynced = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: first_offset,
        }
    }

    fn encoded(entries: &[AbortedTxn]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            e.encode(&mut out);
        }
        out
    }

    #[test]
    fn entry_layout_is_kafkas() {
        let entry = AbortedTxn {
            producer_id: 0x0102_0304_0506_0708,
            first_offset: 9,
            last_offset: 0x10_0000_0000,
            last_stable_offset: -1,
        };
        let mut golden = vec![0, 0];
        golden.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        golden.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
        golden.extend_from_slice(&[0, 0, 0, 0x10, 0, 0, 0, 0]);
        golden.extend_from_slice(&[0xff; 8]);
        assert_eq!(encoded(&[entry]), golden);
        assert_eq!(golden.len(), ENTRY_SIZE);
        assert_eq!(AbortedTxn::decode(&golden), Some(entry));
        // Every shorter prefix, and another version, is not an entry.
        for len in 0..ENTRY_SIZE {
            assert_eq!(AbortedTxn::decode(&golden[..len]), None, "{len} bytes");
        }
        golden[1] = 1;
        assert_eq!(AbortedTxn::decode(&golden), None);
    }

    #[test]
    fn add_creates_the_file_appends_and_ignores_repeats() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("00000000000000000010.txnindex");
        let mut index = TxnIndex::default();
        assert!(!index.exists());
        assert!(
            index.add(&path, txn(1, 10, 12))?,
            "the first entry creates the file"
        );
        assert!(!index.add(&path, txn(2, 11, 15))?);
        assert!(!index.add(&path, txn(2, 11, 15))?, "a repeat is ignored");
        assert!(
            !index.add(&path, txn(3, 10, 14))?,
            "so is one below the last"
        );
        assert!(index.is_unsynced());
        assert_eq!(index.entries(), [txn(1, 10, 12), txn(2, 11, 15)]);
        assert_eq!(fs::read(&path)?, encoded(index.entries()));
        let loaded = TxnIndex::load(&path, 10, 20, true)?;
        assert_eq!(loaded.entries(), index.entries());
        assert!(!loaded.is_unsynced());
        Ok(())
    }

    #[test]
    fn load_drops_what_is_damaged_and_fixes_the_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("00000000000000000100.txnindex");
        let temp = path.with_extension(REWRITE_SUFFIX);
        let good = [txn(1, 90, 100), txn(2, 101, 105), txn(3, 95, 110)];
        let mut bad_version = encoded(&[txn(9, 100, 107)]);
        bad_version[1] = 1;
        let cases: Vec<(&str, Vec<u8>, Vec<AbortedTxn>)> = vec![
            ("whole", encoded(&good), good.to_vec()),
            (
                "torn trailing entry",
                {
                    let mut bytes = encoded(&good);
                    bytes.extend_from_slice(&encoded(&[txn(4, 111, 115)])[..20]);
                    bytes
                },
                good.to_vec(),
            ),
            (
                "another version in the middle",
                {
                    let mut bytes = encoded(&good[..2]);
                    bytes.extend_from_slice(&bad_version);
                    bytes.extend_from_slice(&encoded(&good[2..]));
                    bytes
                },
                good.to_vec(),
            ),
            (
                "past the end",
                encoded(&[good[0], good[1], txn(4, 111, 120)]),
                good[..2].to_vec(),
            ),
            (
                "below the base",
                encoded(&[txn(4, 90, 99), good[0]]),
                good[..1].to_vec(),
            ),
            (
                "out of order",
                encoded(&[good[1], good[0], good[2]]),
                vec![good[1], good[2]],
            ),
            (
                "first after last",
                encoded(&[txn(4, 103, 102), good[2]]),
                good[2..].to_vec(),
            ),
            ("nothing valid", bad_version.clone(), vec![]),
            ("empty", Vec::new(), vec![]),
        ];
        for (what, bytes, expected) in cases {
            fs::write(&path, &bytes)?;
            let index = TxnIndex::load(&path, 100, 115, true)?;
            assert_eq!(index.entries(), expected, "{what}");
            assert!(!index.is_unsynced(), "{what}: durable, or fixed durably");
            assert!(!temp.exists(), "{what}");
            if expected.is_empty() {
                assert!(!path.exists(), "{what}: no empty file is left");
                assert!(!index.exists(), "{what}");
            } else {
                assert_eq!(fs::read(&path)?, encoded(&expected), "{what}");
                assert!(index.exists(), "{what}");
            }
        }
        // A file not known to be durable (found after a crash) awaits an fsync, unless fixing
        // it just made it durable.
        fs::write(&path, encoded(&good))?;
        assert!(TxnIndex::load(&path, 100, 115, false)?.is_unsynced());
        fs::write(&path, encoded(&[good[0], good[1], txn(4, 111, 120)]))?;
        assert!(!TxnIndex::load(&path, 100, 115, false)?.is_unsynced());
        assert!(
            TxnIndex::load(&dir.path().join("missing.txnindex"), 0, 10, false)?
                .entries()
                .is_empty()
        );
        Ok(())
    }

    #[test]
    fn truncate_shortens_or_deletes_the_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::default();
        for entry in [txn(1, 0, 3), txn(2, 1, 7), txn(3, 5, 9)] {
            let _ = index.add(&path, entry)?;
        }
        index.truncate(&path, 10)?;
        assert_eq!(index.entries().len(), 3, "nothing at or past 10");
        index.truncate(&path, 7)?;
        assert_eq!(index.entries(), [txn(1, 0, 3)]);
        assert_eq!(fs::read(&path)?, encoded(index.entries()));
        assert!(!index.is_unsynced(), "the cut is durable");
        index.truncate(&path, 0)?;
        assert!(index.entries().is_empty());
        assert!(!path.exists());
        // A new first entry creates the file again.
        assert!(index.add(&path, txn(4, 0, 2))?);
        assert_eq!(fs::read(&path)?, encoded(&[txn(4, 0, 2)]));
        Ok(())
    }
}
