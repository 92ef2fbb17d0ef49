//! The sparse indexes beside each segment, kept in memory and written to their files when the
//! segment is sealed or the log is closed. No descriptor is kept open between those writes.
//!
//! The active segment's index files may lag behind its log after a crash; recovery rebuilds them
//! from the log, so writing them on every entry would buy nothing but system calls.
//!
//! - `.index`: entries of (offset - segment base as u32, byte position as u32), big-endian, as in
//!   Kafka. An entry maps the first offset of a batch to the batch's position; one is added after
//!   every `index.interval.bytes` of log.
//! - `.timeindex`: entries of (timestamp as i64, offset - segment base as u32): every record
//!   before the batch at that offset has a timestamp at most the entry's. Added alongside offset
//!   entries when the segment's largest timestamp has grown, and once more when it is sealed.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};

/// A fixed-size index entry.
pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn encode(self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// (relative offset, position) in the offset index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;

    fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            relative_offset: u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?),
            position: u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?),
        })
    }
}

/// (timestamp, relative offset) in the time index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;

    fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            timestamp: i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            relative_offset: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
        })
    }
}

/// An index file and its entries in memory.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    entries: Vec<E>,
    /// How many of `entries` the file holds.
    written: usize,
    /// The file changed since its last fsync.
    unsynced: bool,
}

impl<E: Entry> IndexFile<E> {
    /// Creates (or empties) the file.
    pub(crate) fn create(path: PathBuf) -> Result<Self, LogError> {
        let _ = truncate(&path)?;
        Ok(Self {
            path,
            entries: Vec::new(),
            written: 0,
            // Empty: once its directory entry is durable, so is all of it.
            unsynced: false,
        })
    }

    /// Loads the file's entries if the file exists, holds whole entries and passes `valid`.
    /// `Ok(None)` means it must be rebuilt.
    pub(crate) fn load(
        path: PathBuf,
        valid: impl Fn(&[E]) -> bool,
    ) -> Result<Option<Self>, LogError> {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).at(&path),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries: Option<Vec<E>> = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        match entries {
            Some(entries) if valid(&entries) => Ok(Some(Self {
                path,
                written: entries.len(),
                entries,
                unsynced: false,
            })),
            _ => Ok(None),
        }
    }

    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    pub(crate) fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Replaces every entry (after a rebuild); the file is rewritten by the next `write_out`.
    pub(crate) fn replace(&mut self, entries: Vec<E>) -> Result<(), LogError> {
        let _ = truncate(&self.path)?;
        self.entries = entries;
        self.written = 0;
        self.unsynced = true;
        Ok(())
    }

    /// Keeps the entries before the first one failing `keep` (entries are sorted, so that is
    /// every entry passing it), in memory and in the file (without fsync).
    pub(crate) fn truncate(&mut self, keep: impl FnMut(&E) -> bool) -> Result<(), LogError> {
        let len = self.entries.partition_point(keep);
        self.entries.truncate(len);
        if self.written > len {
            OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|file| file.set_len((len * E::SIZE) as u64))
                .at(&self.path)?;
            self.written = len;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Writes the entries the file lacks (without fsync).
    pub(crate) fn write_out(&mut self) -> Result<(), LogError> {
        if let Some(pending) = self.entries.get(self.written..).filter(|p| !p.is_empty()) {
            let mut buf = Vec::with_capacity(pending.len() * E::SIZE);
            for entry in pending {
                entry.encode(&mut buf);
            }
            let at = (self.written * E::SIZE) as u64;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .at(&self.path)?;
            file.write_all_at(&buf, at).at(&self.path)?;
            self.written = self.entries.len();
            self.unsynced = true;
        }
        Ok(())
    }

    /// fsyncs the file if it changed since the last time.
    pub(crate) fn sync(&mut self) -> Result<(), LogError> {
        if self.unsynced {
            File::open(&self.path)
                .and_then(|f| f.sync_all())
                .at(&self.path)?;
            self.unsynced = false;
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `path` empty, or empties it.
fn truncate(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at(path)
}

/// Position to start scanning from for `relative_offset`: the last entry at or before it.
pub(crate) fn lookup_position(entries: &[OffsetEntry], relative_offset: u32) -> u32 {
    let after = entries.partition_point(|e| e.relative_offset <= relative_offset);
    after
        .checked_sub(1)
        .and_then(|i| entries.get(i))
        .map_or(0, |e| e.position)
}

/// Relative offset to start scanning from for records with timestamps `>= timestamp`: the last
/// entry whose timestamp is below it (every record before that entry is older).
pub(crate) fn lookup_timestamp(entries: &[TimeEntry], timestamp: i64) -> u32 {
    let after = entries.partition_point(|e| e.timestamp < timestamp);
    after
        .checked_sub(1)
        .and_then(|i| entries.get(i))
        .map_or(0, |e| e.relative_offset)
}

/// Entries must grow strictly and point inside the segment.
pub(crate) fn valid_offset_entries(entries: &[OffsetEntry], segment_len: u64) -> bool {
    entries.windows(2).all(|w| match w {
        [a, b] => a.relative_offset < b.relative_offset && a.position < b.position,
        _ => true,
    }) && entries
        .last()
        .is_none_or(|e| u64::from(e.position) < segment_len)
}

/// Timestamps and offsets must not go back; offsets must lie in the segment.
pub(crate) fn valid_time_entries(entries: &[TimeEntry], max_relative_offset: u32) -> bool {
    entries.windows(2).all(|w| match w {
        [a, b] => a.timestamp <= b.timestamp && a.relative_offset <= b.relative_offset,
        _ => true,
    }) && entries
        .last()
        .is_none_or(|e| e.relative_offset <= max_relative_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oe(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let entries = [oe(0, 0), oe(10, 4096), oe(25, 8200)];
        assert_eq!(lookup_position(&entries, 0), 0);
        assert_eq!(lookup_position(&entries, 9), 0);
        assert_eq!(lookup_position(&entries, 10), 4096);
        assert_eq!(lookup_position(&entries, 24), 4096);
        assert_eq!(lookup_position(&entries, 1000), 8200);
        assert_eq!(lookup_position(&[], 5), 0);
    }

    #[test]
    fn time_lookup_starts_before_candidates() {
        let te = |timestamp, relative_offset| TimeEntry {
            timestamp,
            relative_offset,
        };
        let entries = [te(100, 3), te(200, 9), te(300, 20)];
        assert_eq!(lookup_timestamp(&entries, 50), 0);
        assert_eq!(lookup_timestamp(&entries, 100), 0);
        assert_eq!(lookup_timestamp(&entries, 101), 3);
        assert_eq!(lookup_timestamp(&entries, 250), 9);
        assert_eq!(lookup_timestamp(&entries, 9_999), 20);
    }

    #[test]
    fn validity() {
        assert!(valid_offset_entries(&[oe(0, 0), oe(4, 100)], 200));
        assert!(!valid_offset_entries(&[oe(0, 0), oe(4, 100)], 100));
        assert!(!valid_offset_entries(&[oe(4, 0), oe(4, 100)], 200));
        assert!(!valid_offset_entries(&[oe(0, 50), oe(4, 10)], 200));
    }

    #[test]
    fn file_round_trip_and_damage() -> Result<(), LogError> {
        let dir = tempfile::tempdir().map_err(|source| LogError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("x.index");
        let mut index = IndexFile::<OffsetEntry>::create(path.clone())?;
        index.push(oe(0, 0));
        index.push(oe(3, 64));
        index.write_out()?;
        index.push(oe(7, 128));
        index.write_out()?;
        let loaded =
            IndexFile::<OffsetEntry>::load(path.clone(), |e| valid_offset_entries(e, 200))?;
        assert_eq!(
            loaded.map(|i| i.entries().to_vec()),
            Some(vec![oe(0, 0), oe(3, 64), oe(7, 128)])
        );
        // A torn entry makes the file unusable: it is rebuilt, not trusted.
        std::fs::write(&path, [0u8; 5]).map_err(|source| LogError::Io {
            path: path.clone(),
            source,
        })?;
        assert!(IndexFile::<OffsetEntry>::load(path.clone(), |_| true)?.is_none());
        assert!(
            IndexFile::<OffsetEntry>::load(dir.path().join("missing.index"), |_| true)?.is_none()
        );
        Ok(())
    }
}
