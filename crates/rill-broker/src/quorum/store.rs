//! The metadata quorum's durable state, kept in `__rill_metadata-0`:
//! - the Raft log in a `rill_log::Log`: entry `i` is the one-record batch at offset `i - 1`,
//!   the record's key holding the entry's type and term and its value the entry's data, so every
//!   entry is CRC-checked like any partition's batch;
//! - `snapshot`: the image at some index, with the voters (written whole, then renamed);
//! - `quorum-state`: term, vote and commit (the Raft hard state), in two checksummed slots
//!   written in turn and fdatasynced, so a torn write leaves the other slot.
//!
//! raft-rs reads through the [`Storage`] trait; the Ready loop in `node.rs` writes through
//! [`QuorumStore::append`], [`QuorumStore::set_hard_state`] and [`QuorumStore::sync`], and the
//! vote or the entries are durable before any message that depends on them is sent.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protobuf::ProtobufEnum as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use rill_log::{Log, LogConfig};
use rill_record::{BatchBuilder, Batches, RecordSpec};

use crate::error::BrokerError;
use crate::meta::write_durably;
use crate::partition::now_ms;

/// The hard state file; its presence marks a metadata log already in the quorum's format.
pub(crate) const HARD_STATE_FILE: &str = "quorum-state";
const SNAPSHOT_FILE: &str = "snapshot";
const SLOT: u64 = 64;
const MAGIC: &[u8; 4] = b"RQS1";

/// The Raft log, hard state and snapshot of this broker's replica of the metadata log.
#[derive(Debug)]
pub(crate) struct QuorumStore {
    dir: PathBuf,
    log: Log,
    /// The term of every entry after the snapshot: `terms[k]` is entry `snapshot index + 1 + k`.
    terms: Vec<u64>,
    snapshot: Snapshot,
    hard_state: HardState,
    hard_file: File,
    /// The sequence number of the slot last written.
    hard_seq: u64,
    hard_dirty: bool,
    log_dirty: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(dir: &Path, what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Metadata(format!("{}: {what}", dir.display()))
}

impl QuorumStore {
    /// Whether `dir` holds a metadata log in the quorum's format.
    pub(crate) fn initialized(dir: &Path) -> bool {
        dir.join(HARD_STATE_FILE).exists()
    }

    /// Makes `dir` a quorum store whose history starts with `snapshot` (the image of a fresh
    /// or upgraded broker): the snapshot is written first, then the log is moved past what it
    /// holds, then the hard state, whose file marks the work done. Redone whole if a crash
    /// interrupts it, unless the snapshot was already written (then it is kept).
    pub(crate) fn initialize(dir: &Path, snapshot: &Snapshot) -> Result<(), BrokerError> {
        let path = dir.join(SNAPSHOT_FILE);
        if !path.exists() {
            write_durably(&path, &encode_snapshot(snapshot))?;
        }
        let snapshot = read_snapshot(dir)?;
        let index = snapshot.get_metadata().index;
        let mut log = Log::open(dir, LogConfig::default(), now_ms())?;
        let start = i64::try_from(index).map_err(|_| corrupt(dir, "snapshot index"))?;
        if log.log_start_offset() != start || log.log_end_offset() != start {
            log.start_at(start)?;
        }
        log.close()?;
        let mut hard = HardState::default();
        hard.set_term(snapshot.get_metadata().term);
        hard.set_commit(index);
        let file = open_hard_file(dir)?;
        write_slot(&file, &dir.join(HARD_STATE_FILE), 1, &hard)?;
        rill_log::dir::fsync_dir(dir)?;
        Ok(())
    }

    /// Opens a store made by [`QuorumStore::initialize`].
    pub(crate) fn open(dir: &Path) -> Result<Self, BrokerError> {
        let snapshot = read_snapshot(dir)?;
        let hard_file = open_hard_file(dir)?;
        let (hard_seq, hard_state) = read_slots(&hard_file, &dir.join(HARD_STATE_FILE))?;
        let log = Log::open(dir, LogConfig::default(), now_ms())?;
        let index = snapshot.get_metadata().index;
        let first = i64::try_from(index).map_err(|_| corrupt(dir, "snapshot index"))?;
        if log.log_start_offset() > first || log.log_end_offset() < first {
            return Err(corrupt(
                dir,
                format!(
                    "the log holds offsets {}..{} but the snapshot ends at {index}",
                    log.log_start_offset(),
                    log.log_end_offset()
                ),
            ));
        }
        let mut store = Self {
            dir: dir.to_path_buf(),
            log,
            terms: Vec::new(),
            snapshot,
            hard_state,
            hard_file,
            hard_seq,
            hard_dirty: false,
            log_dirty: false,
        };
        let entries = store.read(index + 1, u64::MAX, u64::MAX)?;
        store.terms = entries.iter().map(|e| e.term).collect();
        Ok(store)
    }

    /// The last snapshot, which also holds the voters.
    pub(crate) fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    #[cfg(test)]
    fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.terms.len() as u64
    }

    /// Appends entries, first dropping any entries from the first one's index on (a leader's
    /// log wins over what a follower had not committed). Durable after [`QuorumStore::sync`].
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), BrokerError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.snapshot_index() {
            return Err(corrupt(
                &self.dir,
                format!("an append at {} below the snapshot", first.index),
            ));
        }
        if first.index <= self.last() {
            let keep = usize::try_from(first.index - self.snapshot_index() - 1).unwrap_or(0);
            self.terms.truncate(keep);
            self.log.truncate_to(offset(first.index))?;
        } else if first.index != self.last() + 1 {
            return Err(corrupt(
                &self.dir,
                format!("an append at {} after {}", first.index, self.last()),
            ));
        }
        for entry in entries {
            let mut key = Vec::with_capacity(9);
            key.push(u8::try_from(entry.get_entry_type().value()).unwrap_or(0));
            key.extend_from_slice(&entry.term.to_be_bytes());
            let record = RecordSpec::new(now_ms())
                .key(Bytes::from(key))
                .value(entry.data.clone());
            let batch = BatchBuilder::new()
                .record(record)
                .build()
                .map_err(|e| BrokerError::Internal(e.to_string()))?;
            let mut batch = batch.to_vec();
            let _ = self.log.append(&mut batch, now_ms())?;
            self.terms.push(entry.term);
        }
        self.log_dirty = true;
        Ok(())
    }

    /// Replaces the hard state; durable after [`QuorumStore::sync`].
    pub(crate) fn set_hard_state(&mut self, hard_state: HardState) {
        if hard_state != self.hard_state {
            self.hard_state = hard_state;
            self.hard_dirty = true;
        }
    }

    /// Raises the stored commit index.
    pub(crate) fn set_commit(&mut self, commit: u64) {
        if commit > self.hard_state.commit {
            self.hard_state.commit = commit;
            self.hard_dirty = true;
        }
    }

    /// Makes every append and hard state change durable.
    pub(crate) fn sync(&mut self) -> Result<(), BrokerError> {
        if self.log_dirty {
            self.log.sync()?;
            self.log_dirty = false;
        }
        if self.hard_dirty {
            self.hard_seq += 1;
            let path = self.dir.join(HARD_STATE_FILE);
            write_slot(&self.hard_file, &path, self.hard_seq, &self.hard_state)?;
            self.hard_dirty = false;
        }
        Ok(())
    }

    /// Replaces the entries up to `index` (applied, with `term`) by a snapshot of the image at
    /// that index: the snapshot file first, then the log's start moves past them. A crash
    /// between the two leaves entries the snapshot already holds, which are skipped.
    pub(crate) fn compact(
        &mut self,
        index: u64,
        term: u64,
        image: Vec<u8>,
    ) -> Result<(), BrokerError> {
        let first = self.snapshot_index();
        if index <= first || index > self.last() {
            return Ok(());
        }
        let voters = self.snapshot.get_metadata().get_conf_state().voters.clone();
        let snapshot = make_snapshot(index, term, voters, image);
        write_durably(&self.dir.join(SNAPSHOT_FILE), &encode_snapshot(&snapshot))?;
        let dropped = usize::try_from(index - first).unwrap_or(usize::MAX);
        let _ = self.terms.drain(..dropped.min(self.terms.len()));
        self.snapshot = snapshot;
        let _ = self.log.delete_records_before(offset(index + 1))?;
        Ok(())
    }

    /// Installs a snapshot from the leader: written whole, then the log restarts after it.
    pub(crate) fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), BrokerError> {
        let index = snapshot.get_metadata().index;
        write_durably(&self.dir.join(SNAPSHOT_FILE), &encode_snapshot(&snapshot))?;
        self.log.start_at(offset(index + 1))?;
        self.terms.clear();
        let term = snapshot.get_metadata().term;
        self.snapshot = snapshot;
        let mut hard = self.hard_state.clone();
        hard.set_commit(hard.commit.max(index));
        hard.set_term(hard.term.max(term));
        self.set_hard_state(hard);
        self.sync()
    }

    /// Entries `low..high`, at most `max_size` bytes of data (at least one entry).
    fn read(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, BrokerError> {
        let mut entries = Vec::new();
        let mut size = 0u64;
        let mut next = offset(low);
        let end = self.log.log_end_offset().min(offset(high));
        while next < end {
            let bytes = self.log.read(next, 1 << 20)?;
            if bytes.is_empty() {
                break;
            }
            for batch in Batches::new(&bytes) {
                let batch = batch.map_err(|e| corrupt(&self.dir, e))?;
                let base = batch.header().base_offset;
                next = batch.header().next_offset();
                if base >= end {
                    return Ok(entries);
                }
                for record in batch.records().map_err(|e| corrupt(&self.dir, e))? {
                    let key = record.key.as_deref().unwrap_or_default();
                    let (kind, term) = match key {
                        [kind, term @ ..] if term.len() == 8 => {
                            let mut bytes = [0u8; 8];
                            bytes.copy_from_slice(term);
                            (*kind, u64::from_be_bytes(bytes))
                        }
                        _ => return Err(corrupt(&self.dir, "an entry without its term")),
                    };
                    let data = record.value.unwrap_or_default();
                    size += data.len() as u64;
                    if !entries.is_empty() && size > max_size {
                        return Ok(entries);
                    }
                    let mut entry = Entry::default();
                    entry.set_entry_type(
                        EntryType::from_i32(i32::from(kind)).unwrap_or(EntryType::EntryNormal),
                    );
                    entry.term = term;
                    entry.index = u64::try_from(base).unwrap_or(0) + 1;
                    entry.data = data;
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }
}

/// The log offset of Raft entry `index` (Raft counts from 1).
fn offset(index: u64) -> i64 {
    i64::try_from(index.saturating_sub(1)).unwrap_or(i64::MAX)
}

fn store_error(err: BrokerError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(err)))
}

impl Storage for QuorumStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        self.read(low, high, max).map_err(store_error)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snapshot = self.snapshot_index();
        if idx == snapshot {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < snapshot {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        usize::try_from(idx - snapshot - 1)
            .ok()
            .and_then(|k| self.terms.get(k).copied())
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

/// A snapshot of `image_json` at `index`/`term` with these voters (raft ids).
pub(crate) fn make_snapshot(index: u64, term: u64, voters: Vec<u64>, data: Vec<u8>) -> Snapshot {
    let mut conf = ConfState::default();
    conf.set_voters(voters);
    let mut metadata = SnapshotMetadata::default();
    metadata.set_conf_state(conf);
    metadata.index = index;
    metadata.term = term;
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(metadata);
    snapshot.data = Bytes::from(data).to_vec().into();
    snapshot
}

/// `index term voters... | data | crc32c`, numbers as big-endian u64.
fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let meta = snapshot.get_metadata();
    let voters = meta.get_conf_state().get_voters();
    let mut out = Vec::with_capacity(32 + voters.len() * 8 + snapshot.data.len());
    out.extend_from_slice(&meta.index.to_be_bytes());
    out.extend_from_slice(&meta.term.to_be_bytes());
    out.extend_from_slice(&(voters.len() as u64).to_be_bytes());
    for voter in voters {
        out.extend_from_slice(&voter.to_be_bytes());
    }
    out.extend_from_slice(&snapshot.data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn read_snapshot(dir: &Path) -> Result<Snapshot, BrokerError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let bad = || corrupt(&path, "a damaged snapshot");
    let (body, crc) = bytes
        .split_at_checked(bytes.len().saturating_sub(4))
        .ok_or_else(bad)?;
    let crc: [u8; 4] = crc.try_into().map_err(|_| bad())?;
    if crc32c::crc32c(body) != u32::from_be_bytes(crc) {
        return Err(bad());
    }
    let mut words = body.chunks_exact(8).map(|w| {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        u64::from_be_bytes(b)
    });
    let index = words.next().ok_or_else(bad)?;
    let term = words.next().ok_or_else(bad)?;
    let count = usize::try_from(words.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let voters: Vec<u64> = words.by_ref().take(count).collect();
    let start = 24 + count.checked_mul(8).ok_or_else(bad)?;
    if voters.len() != count || start > body.len() {
        return Err(bad());
    }
    Ok(make_snapshot(index, term, voters, body[start..].to_vec()))
}

fn open_hard_file(dir: &Path) -> Result<File, BrokerError> {
    let path = dir.join(HARD_STATE_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))
}

/// Writes the hard state into slot `seq % 2`: magic, seq, term, vote, commit, crc32c.
fn write_slot(file: &File, path: &Path, seq: u64, hard: &HardState) -> Result<(), BrokerError> {
    let mut slot = Vec::with_capacity(SLOT as usize);
    slot.extend_from_slice(MAGIC);
    for word in [seq, hard.term, hard.vote, hard.commit] {
        slot.extend_from_slice(&word.to_be_bytes());
    }
    let crc = crc32c::crc32c(&slot);
    slot.extend_from_slice(&crc.to_be_bytes());
    slot.resize(SLOT as usize, 0);
    file.write_all_at(&slot, (seq % 2) * SLOT)
        .and_then(|()| file.sync_data())
        .map_err(io(path))
}

/// The newer of the two valid slots.
fn read_slots(file: &File, path: &Path) -> Result<(u64, HardState), BrokerError> {
    let mut best: Option<(u64, HardState)> = None;
    for slot in 0..2 {
        let mut buf = [0u8; 40];
        if file.read_exact_at(&mut buf, slot * SLOT).is_err() {
            continue;
        }
        let (body, crc) = buf.split_at(36);
        if &body[..4] != MAGIC
            || crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]])
        {
            continue;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[4 + i * 8..12 + i * 8]);
            u64::from_be_bytes(b)
        };
        let seq = word(0);
        if best.as_ref().is_some_and(|(s, _)| *s >= seq) {
            continue;
        }
        let mut hard = HardState::default();
        hard.set_term(word(1));
        hard.set_vote(word(2));
        hard.set_commit(word(3));
        best = Some((seq, hard));
    }
    best.ok_or_else(|| corrupt(path, "no readable hard state (term, vote, commit)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Entry::default()
        }
    }

    #[test]
    fn entries_and_hard_state_survive_reopen_and_conflicts_are_cut()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        QuorumStore::initialize(
            dir.path(),
            &make_snapshot(0, 0, vec![1, 2, 3], b"{}".to_vec()),
        )?;
        {
            let mut store = QuorumStore::open(dir.path())?;
            store.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])?;
            // A new leader's entry 3 replaces ours.
            store.append(&[entry(3, 2, b"C"), entry(4, 2, b"D")])?;
            let mut hard = HardState::default();
            hard.set_term(2);
            hard.set_vote(3);
            hard.set_commit(2);
            store.set_hard_state(hard.clone());
            store.sync()?;
            store.set_commit(4);
            store.sync()?;
            // Dropped without close: as after kill -9.
        }
        let store = QuorumStore::open(dir.path())?;
        assert_eq!(store.last_index()?, 4);
        assert_eq!(store.term(3)?, 2);
        assert_eq!(store.term(0)?, 0);
        let hard = store.hard_state();
        assert_eq!((hard.term, hard.vote, hard.commit), (2, 3, 4));
        let data: Vec<Vec<u8>> = store
            .entries(1, 5, None, GetEntriesContext::empty(false))?
            .into_iter()
            .map(|e| e.data.to_vec())
            .collect();
        assert_eq!(
            data,
            [b"a".to_vec(), b"b".to_vec(), b"C".to_vec(), b"D".to_vec()]
        );
        assert_eq!(store.initial_state()?.conf_state.voters, [1, 2, 3]);
        Ok(())
    }

    #[test]
    fn a_torn_hard_state_slot_falls_back_to_the_other() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        QuorumStore::initialize(dir.path(), &make_snapshot(0, 0, vec![1], Vec::new()))?;
        {
            let mut store = QuorumStore::open(dir.path())?;
            let mut hard = HardState::default();
            hard.set_term(5);
            hard.set_vote(1);
            store.set_hard_state(hard);
            store.sync()?;
        }
        // Damage the newer slot: the older one (term 0) is used.
        let path = dir.path().join(HARD_STATE_FILE);
        let file = OpenOptions::new().write(true).open(&path)?;
        let (seq, _) = read_slots(&file_for_read(&path)?, &path)?;
        file.write_all_at(b"XXXX", (seq % 2) * SLOT)?;
        let store = QuorumStore::open(dir.path())?;
        assert_eq!(store.hard_state().term, 0);
        Ok(())
    }

    fn file_for_read(path: &Path) -> std::io::Result<File> {
        File::open(path)
    }

    #[test]
    fn compaction_keeps_what_follows_the_snapshot_over_a_reopen()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        QuorumStore::initialize(dir.path(), &make_snapshot(0, 0, vec![1, 2], Vec::new()))?;
        {
            let mut store = QuorumStore::open(dir.path())?;
            let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &[b'0' + i as u8])).collect();
            store.append(&entries)?;
            store.sync()?;
            store.compact(3, 1, b"image at 3".to_vec())?;
            assert_eq!((store.first_index()?, store.last_index()?), (4, 5));
            assert!(
                store
                    .entries(2, 4, None, GetEntriesContext::empty(false))
                    .is_err()
            );
            assert_eq!(store.term(3)?, 1);
        }
        let store = QuorumStore::open(dir.path())?;
        assert_eq!((store.first_index()?, store.last_index()?), (4, 5));
        let data: Vec<Vec<u8>> = store
            .entries(4, 6, None, GetEntriesContext::empty(false))?
            .into_iter()
            .map(|e| e.data.to_vec())
            .collect();
        assert_eq!(data, [b"4".to_vec(), b"5".to_vec()]);
        assert_eq!(store.snapshot_ref().data.to_vec(), b"image at 3".to_vec());
        assert_eq!(store.initial_state()?.conf_state.voters, [1, 2]);
        Ok(())
    }

    #[test]
    fn a_snapshot_start_serves_no_entry_below_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        QuorumStore::initialize(dir.path(), &make_snapshot(7, 0, vec![1], b"image".to_vec()))?;
        let mut store = QuorumStore::open(dir.path())?;
        assert_eq!((store.first_index()?, store.last_index()?), (8, 7));
        assert!(store.term(3).is_err());
        store.append(&[entry(8, 1, b"x")])?;
        store.sync()?;
        drop(store);
        let store = QuorumStore::open(dir.path())?;
        assert_eq!(store.last_index()?, 8);
        assert_eq!(store.snapshot_ref().data.to_vec(), b"image".to_vec());
        Ok(())
    }
}
