//! One segment: a `.log` file of whole batches, its two sparse indexes and, once an ABORT marker
//! in it is recorded, its aborted-transaction index.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_record::{Batch, BatchHeader, HEADER_LEN, RecordError};

use crate::cache::{CachedFile, FileCache};
use crate::dir::{INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, segment_file};
use crate::error::{Corruption, IoContext, LogError};
use crate::index::{IndexFile, OffsetEntry, TimeEntry};
use crate::txn_index::{AbortedTxn, TxnIndex};

/// Fault injection for unit tests: the disk cannot be made to fail an fsync on demand.
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;

    thread_local! {
        /// The next `sync_data` on this thread fails.
        pub(crate) static FAIL_NEXT_SYNC: Cell<bool> = const { Cell::new(false) };
    }
}

/// Bytes read at a time when scanning a segment.
const SCAN_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// The `.log` file, open only while the descriptor cache keeps it.
    file: CachedFile,
    /// Bytes of whole batches; the file is never longer once the segment is open.
    pub(crate) size: u64,
    /// The offset after this segment's last batch.
    pub(crate) next_offset: i64,
    /// Largest batch maxTimestamp in the segment, -1 when none.
    pub(crate) max_timestamp: i64,
    index: IndexFile<OffsetEntry>,
    time_index: IndexFile<TimeEntry>,
    /// The aborted transactions whose markers are in the segment (none, for most segments).
    txn_index: TxnIndex,
    bytes_since_index_entry: u64,
    /// Wall-clock time of the first append, for `segment.ms`.
    pub(crate) first_append_ms: Option<i64>,
    /// Bytes from the start whose writeback has been started (see [`WRITEBACK_CHUNK`]).
    written_back: u64,
}

/// Appended bytes are handed to the disk in chunks of this size as they are written, not left
/// for the kernel's flusher. Left alone, dirty pages pile up until the kernel's dirty limits
/// are reached and then the writer is stalled for as long as the disk needs to catch up
/// (hundreds of milliseconds under a sustained load); started early, writeback runs steadily
/// beside the appends. This is not an fsync: durability is unchanged (RocksDB's
/// `bytes_per_sync` and PostgreSQL's `backend_flush_after` do the same).
pub(crate) const WRITEBACK_CHUNK: u64 = 8 << 20;
/// The page size writeback works in (the smallest x86-64 and arm64 page).
const PAGE: u64 = 4096;

/// What a scan of a segment found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of valid batches from the start.
    pub(crate) valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub(crate) invalid: Option<Corruption>,
}

impl Segment {
    /// Creates the three files of a new, empty segment (the caller fsyncs the directory).
    pub(crate) fn create(
        cache: &Arc<FileCache>,
        dir: &Path,
        base_offset: i64,
    ) -> Result<Self, LogError> {
        let path = segment_file(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .at(&path)?;
        Ok(Self {
            base_offset,
            file: cache.adopt(path, file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            index: IndexFile::create(segment_file(dir, base_offset, INDEX_SUFFIX))?,
            time_index: IndexFile::create(segment_file(dir, base_offset, TIME_INDEX_SUFFIX))?,
            txn_index: TxnIndex::default(),
            bytes_since_index_entry: 0,
            first_append_ms: None,
            written_back: 0,
        })
    }

    /// Opens an existing segment whose log ends at `next_offset` (known for sealed segments from
    /// the next segment's name), trusting its index files when they are whole and consistent,
    /// and rebuilding them from the log otherwise. With good index files, the log file itself is
    /// not opened until it is read.
    pub(crate) fn open_sealed(
        cache: &Arc<FileCache>,
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        index_interval: u32,
    ) -> Result<Self, LogError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let size = std::fs::metadata(&log_path).at(&log_path)?.len();
        let max_relative = u32::try_from(next_offset - base_offset).unwrap_or(u32::MAX);
        if let Some((index, time_index)) = load_indexes(dir, base_offset, size, max_relative)? {
            // A sealed segment with batches always ends its time index with its largest timestamp.
            if size == 0 || time_index.last().is_some() {
                let mut segment =
                    Self::new(base_offset, cache.lazy(log_path), size, index, time_index);
                segment.next_offset = next_offset;
                segment.max_timestamp = segment.time_index.last().map_or(-1, |e| e.timestamp);
                return Ok(segment);
            }
        }
        tracing::warn!(segment = %log_path.display(), "rebuilding damaged or missing indexes");
        let mut segment = Self::open_with_new_indexes(cache, dir, base_offset)?;
        // A cleaned segment may have gaps between its batches (log compaction).
        let outcome = segment.rebuild(index_interval, true)?;
        if let Some(source) = outcome.invalid {
            return Err(LogError::Corrupt {
                path: segment.path().to_path_buf(),
                position: outcome.valid_len,
                source,
            });
        }
        if segment.next_offset != next_offset {
            return Err(LogError::Inconsistent {
                path: segment.path().to_path_buf(),
                reason: format!(
                    "ends at offset {} but the next segment starts at {next_offset}",
                    segment.next_offset
                ),
            });
        }
        segment.seal()?;
        Ok(segment)
    }

    /// Opens the active segment: scans all of it, verifying every batch, rebuilds its indexes and
    /// cuts off whatever follows the last valid batch (a torn or corrupt tail).
    pub(crate) fn open_active(
        cache: &Arc<FileCache>,
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
    ) -> Result<Self, LogError> {
        let mut segment = Self::open_with_new_indexes(cache, dir, base_offset)?;
        let file_len = segment.size;
        let outcome = segment.rebuild(index_interval, false)?;
        if let Some(reason) = &outcome.invalid {
            tracing::warn!(
                segment = %segment.path().display(),
                position = outcome.valid_len,
                dropped_bytes = file_len - outcome.valid_len,
                %reason,
                "truncating torn or corrupt tail"
            );
        }
        if outcome.valid_len < file_len {
            let file = segment.file.get()?;
            let path = segment.path();
            file.set_len(outcome.valid_len).at(path)?;
            file.sync_all().at(path)?;
        }
        Ok(segment)
    }

    /// Opens the active segment after a clean shutdown: its index files are complete, so only the
    /// batches after the last index entry are walked (headers only) to find the end.
    /// `Ok(None)` when anything looks wrong; the caller then recovers it fully.
    pub(crate) fn open_active_clean(
        cache: &Arc<FileCache>,
        dir: &Path,
        base_offset: i64,
    ) -> Result<Option<Self>, LogError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let size = std::fs::metadata(&log_path).at(&log_path)?.len();
        let Some((index, time_index)) = load_indexes(dir, base_offset, size, u32::MAX)? else {
            return Ok(None);
        };
        let mut segment = Self::new(base_offset, cache.lazy(log_path), size, index, time_index);
        let (mut position, mut next_offset) = match segment.index.last() {
            Some(e) => (
                u64::from(e.position),
                base_offset + i64::from(e.relative_offset),
            ),
            None => (0, base_offset),
        };
        let mut max_timestamp = segment.time_index.last().map_or(-1, |e| e.timestamp);
        while position < size {
            match segment.header_at(position) {
                Ok(header) if header.base_offset == next_offset => {
                    position += header.total_len() as u64;
                    next_offset = header.next_offset();
                    max_timestamp = max_timestamp.max(header.max_timestamp);
                }
                _ => return Ok(None),
            }
        }
        if position != size {
            return Ok(None);
        }
        segment.next_offset = next_offset;
        segment.max_timestamp = max_timestamp;
        segment.bytes_since_index_entry =
            size - segment.index.last().map_or(0, |e| u64::from(e.position));
        Ok(Some(segment))
    }

    /// The log file opened (it is about to be scanned) with new, empty index files.
    fn open_with_new_indexes(
        cache: &Arc<FileCache>,
        dir: &Path,
        base_offset: i64,
    ) -> Result<Self, LogError> {
        let path = segment_file(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        let size = file.metadata().at(&path)?.len();
        Ok(Self::new(
            base_offset,
            cache.adopt(path, file),
            size,
            IndexFile::create(segment_file(dir, base_offset, INDEX_SUFFIX))?,
            IndexFile::create(segment_file(dir, base_offset, TIME_INDEX_SUFFIX))?,
        ))
    }

    fn new(
        base_offset: i64,
        file: CachedFile,
        size: u64,
        index: IndexFile<OffsetEntry>,
        time_index: IndexFile<TimeEntry>,
    ) -> Self {
        Self {
            base_offset,
            file,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            index,
            time_index,
            txn_index: TxnIndex::default(),
            bytes_since_index_entry: 0,
            first_append_ms: None,
            // What is already there is the kernel's to write back; appends start from here.
            written_back: size,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends one batch whose baseOffset is already `self.next_offset`.
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        index_interval: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let position = self.size;
        let file = self.file.get()?;
        if let Err(err) = file.write_all_at(batch, position) {
            // Leave no partial batch behind for the next append to land after.
            let _ = file.set_len(position);
            return Err(err).at(self.path());
        }
        self.record_batch(position, header, index_interval);
        let _ = self.first_append_ms.get_or_insert(now_ms);
        // Whole pages only: the last, partial page is still being appended to, and a write
        // to a page under writeback may have to wait for the disk.
        let to = self.size & !(PAGE - 1);
        if to.saturating_sub(self.written_back) >= WRITEBACK_CHUNK {
            let from = self.written_back.min(to);
            start_writeback(&file, from, to);
            self.written_back = to;
        }
        Ok(())
    }

    /// Updates sizes, offsets and indexes for a batch now at `position`.
    fn record_batch(&mut self, position: u64, header: &BatchHeader, index_interval: u32) {
        if self.bytes_since_index_entry >= u64::from(index_interval) {
            self.add_index_entries(header.base_offset, position);
        }
        let len = header.total_len() as u64;
        self.size = position + len;
        self.bytes_since_index_entry += len;
        self.next_offset = header.next_offset();
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    fn add_index_entries(&mut self, offset: i64, position: u64) {
        let relative_offset = self.relative(offset);
        self.index.push(OffsetEntry {
            relative_offset,
            // Segments are at most i32::MAX bytes (LogConfig::validate).
            position: u32::try_from(position).unwrap_or(u32::MAX),
        });
        self.bytes_since_index_entry = 0;
        if self.max_timestamp > self.time_index.last().map_or(-1, |e| e.timestamp) {
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        // The log rolls before a relative offset would overflow u32.
        u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX)
    }

    /// Whether a batch ending at `last_offset` still fits the 32-bit relative offsets.
    pub(crate) fn can_hold_offsets(&self, last_offset: i64) -> bool {
        last_offset - self.base_offset <= i64::from(i32::MAX)
    }

    /// The log file, open, with its path: for an fdatasync that may run on another thread.
    pub(crate) fn data_file(&self) -> Result<(Arc<File>, PathBuf), LogError> {
        Ok((self.file.get()?, self.path().to_path_buf()))
    }

    /// Completes the segment's indexes before it stops being active: the last time index entry,
    /// and both index files written out (not yet fsynced).
    pub(crate) fn seal(&mut self) -> Result<(), LogError> {
        if self.max_timestamp > self.time_index.last().map_or(-1, |e| e.timestamp) {
            let relative_offset = self.relative(self.next_offset);
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
        self.index.write_out()?;
        self.time_index.write_out()
    }

    /// Cuts the segment at `position`, where the batch at `offset` starts, and fsyncs the cut.
    /// The index entries past the cut go, in memory and in their files (which are not fsynced:
    /// the segment is active afterwards, and an active segment's indexes are rebuilt after a
    /// crash). The aborted transactions whose markers were cut off go too, durably, after the
    /// log is cut (a crash in between leaves them past the log end, where recovery drops them).
    /// The largest timestamp is found again from the time index and the batch headers after its
    /// last entry, as Kafka does.
    pub(crate) fn truncate(&mut self, position: u64, offset: i64) -> Result<(), LogError> {
        let file = self.file.get()?;
        file.set_len(position)
            .and_then(|()| file.sync_all())
            .at(self.path())?;
        self.txn_index.truncate(&self.txn_index_path(), offset)?;
        let relative = self.relative(offset);
        self.index.truncate(|e| e.relative_offset < relative)?;
        // An entry at the cut still holds: it speaks of the records before it, all kept.
        self.time_index
            .truncate(|e| e.relative_offset <= relative)?;
        self.size = position;
        self.next_offset = offset;
        self.written_back = self.written_back.min(position);
        self.bytes_since_index_entry =
            position - self.index.last().map_or(0, |e| u64::from(e.position));
        if position == 0 {
            self.first_append_ms = None;
        }
        let (mut at, mut max_timestamp) = match self.time_index.last() {
            Some(e) => (
                u64::from(crate::index::lookup_position(
                    self.index.entries(),
                    e.relative_offset,
                )),
                e.timestamp,
            ),
            None => (0, -1),
        };
        while at < position {
            let header = self.header_at(at)?;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            at += header.total_len() as u64;
        }
        self.max_timestamp = max_timestamp;
        Ok(())
    }

    /// fsyncs the index files that changed since their last fsync.
    pub(crate) fn sync_indexes(&mut self) -> Result<(), LogError> {
        self.index.sync()?;
        self.time_index.sync()
    }

    /// Scans the whole log file with CRC checks and rebuilds both indexes from what is valid.
    /// `gaps`: offsets may skip between batches (a sealed segment that was cleaned).
    fn rebuild(&mut self, index_interval: u32, gaps: bool) -> Result<ScanOutcome, LogError> {
        self.index.replace(Vec::new())?;
        self.time_index.replace(Vec::new())?;
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.bytes_since_index_entry = 0;
        let file = self.file.get()?;
        let path = self.path().to_path_buf();
        scan(
            &file,
            &path,
            (0, self.base_offset),
            gaps,
            &mut |position, header| {
                self.record_batch(position, header, index_interval);
            },
        )
    }

    /// Checks every batch of the segment (structure, CRC, offsets) without changing anything.
    /// `gaps` as for [`Self::rebuild`].
    pub(crate) fn verify(&self, gaps: bool) -> Result<ScanOutcome, LogError> {
        scan(
            self.file.get()?.as_ref(),
            self.path(),
            (0, self.base_offset),
            gaps,
            &mut |_, _| {},
        )
    }

    /// The header of the batch at `position`.
    pub(crate) fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        let mut buf = [0u8; HEADER_LEN];
        let available = usize::try_from(self.size.saturating_sub(position)).unwrap_or(usize::MAX);
        let len = available.min(HEADER_LEN);
        let buf = buf.get_mut(..len).unwrap_or_default();
        self.file
            .get()?
            .read_exact_at(buf, position)
            .at(self.path())?;
        BatchHeader::parse(buf).map_err(|source| LogError::Corrupt {
            path: self.path().to_path_buf(),
            position,
            source: source.into(),
        })
    }

    /// Position of the batch holding `offset`, starting from the sparse index entry before it.
    /// `None` when the segment ends before `offset`.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let relative = u32::try_from(offset - self.base_offset).unwrap_or(0);
        let mut position = u64::from(crate::index::lookup_position(
            self.index.entries(),
            relative,
        ));
        while position < self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Where to start looking for the first record with a timestamp at or after `timestamp`.
    pub(crate) fn time_lookup_offset(&self, timestamp: i64) -> i64 {
        self.base_offset
            + i64::from(crate::index::lookup_timestamp(
                self.time_index.entries(),
                timestamp,
            ))
    }

    /// Reads `len` bytes at `position` (within the segment).
    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file
            .get()?
            .read_exact_at(&mut buf, position)
            .at(self.path())?;
        Ok(buf)
    }

    /// Paths of the segment's files, for deletion and for fsyncs away from the owner: the log
    /// first (a crash while they are deleted leaves no segment without its indexes; an
    /// aborted-transaction index left without its log is removed when the log opens), then the
    /// indexes, the aborted-transaction index only if the segment has one.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![
            self.path().to_path_buf(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        if self.txn_index.exists() {
            files.push(self.txn_index_path());
        }
        files
    }

    /// The path of the segment's aborted-transaction index, whether it exists or not.
    pub(crate) fn txn_index_path(&self) -> PathBuf {
        self.path().with_extension(TXN_INDEX_SUFFIX)
    }

    /// Loads the aborted-transaction index once the segment's end is known (after recovery, for
    /// the active segment), dropping the entries whose markers are not in the segment. Unless
    /// `durable`, the file counts as not yet fsynced.
    pub(crate) fn load_txn_index(&mut self, durable: bool) -> Result<(), LogError> {
        let path = self.txn_index_path();
        self.txn_index = TxnIndex::load(&path, self.base_offset, self.next_offset, durable)?;
        Ok(())
    }

    /// The aborted transactions whose markers are in the segment, by marker offset.
    pub(crate) fn aborted(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    /// Records an aborted transaction whose marker is in the segment (see [`TxnIndex::add`]).
    /// Returns whether that created the segment's aborted-transaction index file.
    pub(crate) fn add_aborted(&mut self, txn: AbortedTxn) -> Result<bool, LogError> {
        let path = self.txn_index_path();
        self.txn_index.add(&path, txn)
    }

    /// The aborted-transaction index file, if it was written since its last fsync.
    pub(crate) fn unsynced_txn_index(&self) -> Option<PathBuf> {
        self.txn_index.is_unsynced().then(|| self.txn_index_path())
    }

    /// Records that the aborted-transaction index file was fsynced.
    pub(crate) fn txn_index_synced(&mut self) {
        self.txn_index.synced();
    }

    /// The log file's modification time in ms since the epoch, when it has no timestamps.
    pub(crate) fn modified_ms(&self) -> Result<i64, LogError> {
        let modified = std::fs::metadata(self.path())
            .and_then(|m| m.modified())
            .at(self.path())?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
}

/// A segment's offset index and time index.
type Indexes = (IndexFile<OffsetEntry>, IndexFile<TimeEntry>);

/// Both index files of a segment whose log is `size` bytes, when both are whole and
/// consistent (time index offsets at most `max_relative`); `None` when either must be rebuilt.
fn load_indexes(
    dir: &Path,
    base_offset: i64,
    size: u64,
    max_relative: u32,
) -> Result<Option<Indexes>, LogError> {
    let index = IndexFile::load(segment_file(dir, base_offset, INDEX_SUFFIX), |e| {
        crate::index::valid_offset_entries(e, size)
    })?;
    let time_index = IndexFile::load(segment_file(dir, base_offset, TIME_INDEX_SUFFIX), |e| {
        crate::index::valid_time_entries(e, max_relative)
    })?;
    Ok(index.zip(time_index))
}

/// Walks the batches of `file` from `position` (where `expected_offset` starts) to its end,
/// checking structure, CRC and offset continuity, and calls `visit` for each valid one. Stops
/// at the first invalid batch. With `gaps`, a batch may start past the offset after the one
/// before it (never before it): a cleaned segment's batches.
fn scan(
    file: &File,
    path: &Path,
    (mut position, mut expected_offset): (u64, i64),
    gaps: bool,
    visit: &mut dyn FnMut(u64, &BatchHeader),
) -> Result<ScanOutcome, LogError> {
    let file_len = file.metadata().at(path)?.len();
    let mut chunk = SCAN_CHUNK;
    let mut buf = Vec::new();
    while position < file_len {
        let want = usize::try_from(file_len - position).map_or(chunk, |left| left.min(chunk));
        buf.resize(want, 0);
        file.read_exact_at(&mut buf, position).at(path)?;
        let mut consumed = 0usize;
        while let Some(rest) = buf.get(consumed..).filter(|rest| !rest.is_empty()) {
            let checked = Batch::parse(rest)
                .map_err(Corruption::from)
                .and_then(|batch| {
                    batch.verify_crc()?;
                    let found = batch.header().base_offset;
                    if found != expected_offset && !(gaps && found > expected_offset) {
                        return Err(Corruption::UnexpectedOffset {
                            expected: expected_offset,
                            found,
                        });
                    }
                    Ok(*batch.header())
                });
            match checked {
                Ok(header) => {
                    visit(position + consumed as u64, &header);
                    consumed += header.total_len();
                    expected_offset = header.next_offset();
                }
                // The batch runs past this chunk but not past the file: read on from its start,
                // with a chunk large enough for it.
                Err(Corruption::Batch(RecordError::Truncated { need, .. }))
                    if position + (consumed + need) as u64 <= file_len =>
                {
                    chunk = chunk.max(need);
                    break;
                }
                Err(reason) => {
                    return Ok(ScanOutcome {
                        valid_len: position + consumed as u64,
                        invalid: Some(reason),
                    });
                }
            }
        }
        position += consumed as u64;
    }
    Ok(ScanOutcome {
        valid_len: position,
        invalid: None,
    })
}

/// Asks the kernel to start writing `from..to` of `file` to the disk, without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). The call itself can block while the disk's
/// queue is full, so it runs on a thread of its own (one per process), never on the appending
/// thread; when that thread is behind, the hint is dropped. A hint: fsync still decides
/// durability, so failures are only logged.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, from: u64, to: u64) {
    use std::sync::OnceLock;
    use std::sync::mpsc::{SyncSender, sync_channel};

    type Job = (File, u64, u64);
    static QUEUE: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(64);
        std::thread::Builder::new()
            .name("rill-writeback".to_owned())
            .spawn(move || {
                for (file, from, to) in rx {
                    sync_file_range(&file, from, to, libc::SYNC_FILE_RANGE_WRITE);
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let (Some(queue), Ok(file)) = (queue, file.try_clone()) {
        let _ = queue.try_send((file, from, to));
    }
}

/// `sync_file_range(2)` over `from..to` of `file` with `flags`; a hint, so failures are only
/// logged.
#[cfg(target_os = "linux")]
pub(crate) fn sync_file_range(file: &File, from: u64, to: u64, flags: libc::c_uint) {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    #[expect(unsafe_code, reason = "libc has no safe sync_file_range")]
    // SAFETY: the descriptor belongs to `file`, which is open for the whole call; the call
    // takes no pointers.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc != 0 {
        tracing::debug!(err = %std::io::Error::last_os_error(), "sync_file_range failed");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _from: u64, _to: u64) {}
