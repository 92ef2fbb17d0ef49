//! Log compaction, as Kafka's log cleaner does it: keep the latest record of each key.
//!
//! A pass over one log has three steps; the first two run on a cleaner's thread, away from the
//! log's owner, reading only sealed segments (which never change until they are deleted):
//!
//! 1. [`build_map`]: from the first dirty offset (where the last pass stopped) on, each key's
//!    latest offset, in an [`OffsetMap`] of bounded size that holds a 128-bit hash of each key.
//!    When the map fills, the pass covers less of the log and the next pass goes on from there.
//! 2. [`clean_group`], once per group of consecutive sealed segments from the log start (a
//!    group fits one segment once cleaned): writes the records to keep into a new segment
//!    beside the old ones, `<base>.log.cleaned` with its `.index.cleaned`, `.timeindex.cleaned`
//!    and, when it holds aborted transactions' markers, `.txnindex.cleaned`, all fsynced.
//!    A record is dropped when the map knows a later offset of its key, when it has no key,
//!    when it belongs to an aborted transaction, or when it is a tombstone (a null value) below
//!    the map's end and older than `delete.retention.ms`. Offsets and timestamps never change
//!    (gaps are allowed); a batch keeps its header and codec; a batch left with no record is
//!    dropped, unless it is a producer's last batch (idempotence needs it), the group's last
//!    (so a segment always ends where the next one starts) or the log keeps every batch (a
//!    replicated partition's Raft log counts them); then it stays, empty.
//! 3. [`crate::Log::swap_cleaned`], on the owner: swaps the new segment in for the group.
//!
//! # Crash safety
//! The swap is a sequence of renames whose every intermediate state recovery understands
//! ([`recover`], run by [`crate::Log::open`] before anything else):
//!
//! 1. the new files are written as `.cleaned` and fsynced;
//! 2. the index files are renamed `.cleaned` → `.swap`, then the log file last: a
//!    `<base>.log.swap` is the commit point (directory fsynced);
//! 3. every file of the old segments in `base..next` (the new segment's offsets) is deleted:
//!    the index files, then the logs, `<base>.log` last;
//! 4. the `.swap` files are renamed to their final names, the log file last (directory fsynced).
//!
//! On open: `.cleaned` files are deleted (the pass never committed); a `<base>.log.swap`
//! finishes steps 3 and 4 (while the old `<base>.log` is there, step 4 has not begun, so the
//! files named `<base>.*` are old; once it is gone, they are new); an index `.swap` left
//! without its log `.swap` belongs to an uncommitted pass (step 4 renames the log last) and is
//! deleted. So a crash at any point
//! leaves either the old segments or the new one, never both nor a hole. Tests stop the
//! process at each step with [`FAULT_ENV`].

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rill_record::{Batch, BatchHeader, Batches, Filtered, RecordError};

use crate::dir::{
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, fsync_dir, parse_segment_name,
    segment_file,
};
use crate::error::{IoContext, LogError};
use crate::index::{IndexFile, OffsetEntry, TimeEntry};
use crate::txn_index::AbortedTxn;

/// The environment variable naming a step at which a cleaning pass stops the process (as a
/// kill -9 would), for crash tests: `cleaned` (new files written, nothing renamed), `swap`
/// (committed, old segments still there), `deleted` (old segments gone, new one not yet
/// renamed), `indexes-renamed` (the new index files in place, the log not yet).
pub const FAULT_ENV: &str = "RILL_CLEANER_FAULT";

/// The suffix of a cleaning pass's new files.
const CLEANED: &str = "cleaned";
/// The suffix of a committed pass's new files not yet in place.
const SWAP: &str = "swap";
/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;
/// Largest decompressed records section a cleaner decodes (a batch is at most a segment).
const MAX_RECORDS_LEN: usize = 1 << 30;
/// Bytes one slot of an [`OffsetMap`]'s hash table takes: the key's 128-bit hash (two `u64`s,
/// so no 16-byte alignment), the offset, and the table's control byte.
pub const MAP_SLOT_BYTES: usize = std::mem::size_of::<([u64; 2], i64)>() + 1;

/// Stops the process if the crash tests asked for it at `step`. (Unit tests stop the pass
/// with an error instead, leaving the files as a crash would.)
fn fault(step: &str) -> Result<(), LogError> {
    #[cfg(test)]
    if tests::STOP_AT.with(|s| s.get()) == Some(step) {
        return Err(LogError::Inconsistent {
            path: PathBuf::from(step),
            reason: "stopped at a fault point".to_owned(),
        });
    }
    static STEP: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if STEP
        .get_or_init(|| std::env::var(FAULT_ENV).ok())
        .as_deref()
        == Some(step)
    {
        tracing::warn!(step, "stopping at a cleaner fault point");
        std::process::abort();
    }
    Ok(())
}

/// The segments of a pass grouped for [`clean_group`]: consecutive runs of at most
/// `max_bytes` (`segment.bytes`) before cleaning and of offsets a segment can index.
pub fn groups(segments: &[SealedSegment], max_bytes: u64) -> Vec<Vec<SealedSegment>> {
    let mut groups: Vec<Vec<SealedSegment>> = Vec::new();
    for segment in segments {
        let fits = groups.last().is_some_and(|group| {
            let size: u64 = group.iter().map(|s| s.size).sum();
            let base = group.first().map_or(segment.base_offset, |s| s.base_offset);
            size + segment.size <= max_bytes && segment.next_offset - base <= i64::from(i32::MAX)
        });
        match groups.last_mut() {
            Some(group) if fits => group.push(*segment),
            _ => groups.push(vec![*segment]),
        }
    }
    groups
}

/// A sealed segment as a cleaning pass sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedSegment {
    /// Its first offset (its files' name).
    pub base_offset: i64,
    /// The offset after it (the next segment's base).
    pub next_offset: i64,
    /// Bytes of its `.log` file.
    pub size: u64,
    /// Its largest batch timestamp, -1 if none.
    pub max_timestamp: i64,
}

/// Each key's latest offset, by a 128-bit hash of the key (two independent 64-bit hashes;
/// Kafka's map keeps an MD5), within a budget of bytes.
///
/// The map is a hash table of [`MAP_SLOT_BYTES`] a slot, a power of two of slots at most 7/8
/// full, grown as keys come (a small log takes little), and growing holds the old table beside
/// the new for a moment. So the most keys it takes is 7/8 of the largest power of two whose
/// table, with half of it again, fits the budget: about 1.8 million keys in 128 MiB.
#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<[u64; 2], i64>,
    capacity: usize,
    hashers: (std::hash::RandomState, std::hash::RandomState),
}

impl OffsetMap {
    /// A map that never takes more than `bytes` of memory (and takes at least one key).
    pub fn with_budget(bytes: usize) -> Self {
        let mut slots: usize = 1;
        while slots
            .checked_mul(2)
            .and_then(|next| next.checked_mul(MAP_SLOT_BYTES * 3 / 2))
            .is_some_and(|peak| peak <= bytes)
        {
            slots *= 2;
        }
        Self::with_capacity((slots / 8 * 7).max(1))
    }

    /// A map of at most `keys` keys.
    pub fn with_capacity(keys: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: keys.max(1),
            hashers: (std::hash::RandomState::new(), std::hash::RandomState::new()),
        }
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        let mut a = self.hashers.0.build_hasher();
        let mut b = self.hashers.1.build_hasher();
        a.write(key);
        b.write(key);
        [a.finish(), b.finish()]
    }

    /// The latest offset recorded for `key`.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&self.hash(key)).copied()
    }

    /// Records `offset` for `key`; `false` (and nothing recorded) when the map is full and the
    /// key new.
    fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&hash) {
            return false;
        }
        let _ = self.entries.insert(hash, offset);
        true
    }

    /// Keys recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No key recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A shared bound on the bytes cleaners read and write per second
/// (`log.cleaner.io.max.bytes.per.second`).
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: f64,
    /// Bytes counted so far, by every pass through this throttle.
    total: std::sync::atomic::AtomicU64,
    /// When the bytes read so far may all have been read.
    next_free: Mutex<Option<Instant>>,
}

impl Throttle {
    /// A throttle of `bytes_per_second` (infinite or not positive: no limit).
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            bytes_per_second,
            total: std::sync::atomic::AtomicU64::new(0),
            next_free: Mutex::new(None),
        }
    }

    /// The bytes read through this throttle so far.
    pub fn total(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `bytes` read, sleeping as long as the rate needs.
    pub fn consume(&self, bytes: usize) {
        let _ = self
            .total
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        self.pace(bytes);
    }

    /// Sleeps as long as the rate needs for `bytes` more read or written.
    pub fn pace(&self, bytes: usize) {
        if !(self.bytes_per_second.is_finite() && self.bytes_per_second > 0.0) {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        let wait = {
            let Ok(mut next) = self.next_free.lock() else {
                return;
            };
            let now = Instant::now();
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let done = start + cost;
            *next = Some(done);
            done.saturating_duration_since(now)
        };
        // A burst of up to a tenth of a second goes unthrottled.
        if wait > Duration::from_millis(100) {
            std::thread::sleep(wait);
        }
    }
}

/// What a pass needs besides the segments and the map.
#[derive(Debug, Clone, Default)]
pub struct CleanRules {
    /// The time of the pass (ms): a tombstone or an empty transaction's marker goes once the
    /// delete horizon its batch was marked with is at or before it.
    pub now_ms: i64,
    /// `delete.retention.ms`: a batch with a tombstone or an empty transaction's marker that
    /// stays gets the delete horizon `now_ms + delete_retention_ms` (KIP-534), once.
    pub delete_retention_ms: i64,
    /// The map covers the log up to here: a tombstone at or past it stays (older records of
    /// its key may not be dropped yet).
    pub map_end: i64,
    /// Batches (by base offset) that stay, empty if need be: each producer's last batch.
    pub retain: HashSet<i64>,
    /// The log's aborted transactions: their records are dropped.
    pub aborted: Vec<AbortedTxn>,
    /// Keep every batch's place (a replicated partition's log, whose Raft entries are its
    /// batches, one each): a run of batches left empty becomes one span batch that stands for
    /// all of their entries (see [`span_entries`]).
    pub keep_every_batch: bool,
    /// Where a span must not reach across (offsets a batch starts at with a Raft entry of no
    /// records just before it).
    pub span_breaks: HashSet<i64>,
    /// `index.interval.bytes`.
    pub index_interval: u32,
}

/// What [`clean_group`] wrote: a new segment for `replaces`.
#[derive(Debug, Clone)]
pub struct Cleaned {
    /// The new segment's base offset (the first replaced segment's).
    pub base_offset: i64,
    /// The offset after it (the last replaced segment's next offset).
    pub next_offset: i64,
    /// The segments it replaces.
    pub replaces: Vec<SealedSegment>,
    /// Its size in bytes.
    pub size: u64,
}

/// What one pass carries from group to group: its counts, and for each producer whether its
/// transaction (the one since its last marker, in log order) has records that stay, which
/// decides whether that transaction's marker may go.
#[derive(Debug, Default)]
pub struct Pass {
    /// The pass's counts so far.
    pub stats: CleanStats,
    txn_has_records: HashMap<i64, bool>,
}

/// Counts of cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Records dropped (superseded, keyless, aborted, or expired tombstones).
    pub records_dropped: u64,
    /// The earliest delete horizon of a batch whose tombstones or marker stayed (`i64::MAX`
    /// if none): a pass after it would drop them.
    pub next_horizon_ms: i64,
}

impl Default for CleanStats {
    fn default() -> Self {
        Self {
            bytes_read: 0,
            bytes_written: 0,
            records_kept: 0,
            records_dropped: 0,
            next_horizon_ms: i64::MAX,
        }
    }
}

impl std::ops::AddAssign for CleanStats {
    fn add_assign(&mut self, other: Self) {
        self.next_horizon_ms = self.next_horizon_ms.min(other.next_horizon_ms);
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.records_kept += other.records_kept;
        self.records_dropped += other.records_dropped;
    }
}

fn corrupt(path: &Path, position: u64, source: RecordError) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        source: source.into(),
    }
}

/// Calls `visit` with each batch of a segment file (CRC checked) and its position, reading a
/// chunk at a time through `throttle`.
fn for_each_batch(
    path: &Path,
    throttle: &Throttle,
    mut visit: impl FnMut(u64, &Batch<'_>) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let mut position = 0u64;
    let mut chunk = READ_CHUNK;
    let mut buf = Vec::new();
    while position < len {
        let want = usize::try_from(len - position).map_or(chunk, |left| left.min(chunk));
        buf.resize(want, 0);
        file.read_exact_at(&mut buf, position).at(path)?;
        throttle.consume(want);
        let mut consumed = 0usize;
        let mut grown = false;
        let mut batches = Batches::new(&buf);
        loop {
            match batches.next() {
                Some(Ok(batch)) => {
                    batch
                        .verify_crc()
                        .map_err(|e| corrupt(path, position + consumed as u64, e))?;
                    visit(position + consumed as u64, &batch)?;
                    consumed += batch.as_bytes().len();
                }
                // A batch longer than what was read: read again from its start, enough of it.
                Some(Err(RecordError::Truncated { need, .. }))
                    if position + (consumed + need) as u64 <= len =>
                {
                    grown = need > chunk;
                    chunk = chunk.max(need);
                    break;
                }
                Some(Err(err)) => return Err(corrupt(path, position + consumed as u64, err)),
                None => break,
            }
        }
        if consumed == 0 && !grown {
            return Err(corrupt(
                path,
                position,
                RecordError::Truncated { need: 0, have: 0 },
            ));
        }
        position += consumed as u64;
    }
    Ok(position)
}

/// How many Raft entries a batch of a replicated partition's log stands for: one, or, for a
/// span batch (no records, no producer, its `baseSequence` one less than the count, which no
/// producer's batch can be: produce refuses batches without records), the entries of the
/// batches a cleaning pass merged into it.
pub fn span_entries(header: &BatchHeader) -> u64 {
    let span = header.records_count == 0
        && header.producer_id < 0
        && !header.attributes.is_control()
        && header.base_sequence >= 1;
    if span {
        u64::try_from(header.base_sequence).map_or(1, |s| s + 1)
    } else {
        1
    }
}

/// A run of a replicated log's batches left empty, to be written as one span batch.
#[derive(Debug)]
struct Run {
    base_offset: i64,
    next_offset: i64,
    term: i32,
    entries: u64,
    base_timestamp: i64,
    max_timestamp: i64,
    /// It replaces more than one batch, or a batch that had records: writing it changes the
    /// log.
    changes: bool,
}

impl Run {
    fn of(header: &BatchHeader, changes: bool) -> Self {
        Self {
            base_offset: header.base_offset,
            next_offset: header.next_offset(),
            term: header.partition_leader_epoch,
            entries: span_entries(header),
            base_timestamp: header.base_timestamp,
            max_timestamp: header.max_timestamp,
            changes,
        }
    }

    /// Whether `header`'s batch may join the run.
    fn continues(&self, header: &BatchHeader, breaks: &HashSet<i64>) -> bool {
        header.base_offset == self.next_offset
            && header.partition_leader_epoch == self.term
            && !breaks.contains(&header.base_offset)
            && i32::try_from(header.next_offset() - self.base_offset).is_ok()
            && i32::try_from(self.entries + span_entries(header)).is_ok()
    }

    /// Takes `header`'s batch into the run (two batches become one: a change).
    fn join(&mut self, header: &BatchHeader) {
        self.next_offset = header.next_offset();
        self.entries += span_entries(header);
        self.base_timestamp = self.base_timestamp.min(header.base_timestamp);
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.changes = true;
    }

    /// The span batch: no records, no producer, the entries it stands for in `baseSequence`.
    fn batch(&self) -> Result<(Vec<u8>, BatchHeader), RecordError> {
        let last_offset_delta =
            i32::try_from(self.next_offset - self.base_offset - 1).map_err(|_| {
                RecordError::TooLarge {
                    what: "span",
                    value: usize::MAX,
                }
            })?;
        let header = BatchHeader {
            base_offset: self.base_offset,
            batch_length: 0,
            partition_leader_epoch: self.term,
            magic: rill_record::MAGIC_V2,
            crc: 0,
            attributes: rill_record::Attributes(0),
            last_offset_delta,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: i32::try_from(self.entries - 1).unwrap_or(i32::MAX),
            records_count: 0,
        };
        let bytes = rill_record::empty_batch(&header)?;
        let header = BatchHeader::parse(&bytes)?;
        Ok((bytes, header))
    }
}

/// Whether the batch belongs to an aborted transaction.
fn is_aborted(header: &BatchHeader, aborted: &[AbortedTxn]) -> bool {
    header.attributes.is_transactional()
        && !header.attributes.is_control()
        && aborted.iter().any(|t| {
            t.producer_id == header.producer_id
                && t.first_offset <= header.base_offset
                && header.base_offset <= t.last_offset
        })
}

/// Adds the keys of `segments` (sealed, in order) from offset `from` on to `map`, skipping
/// aborted transactions' records and control batches. Returns the offset the map covers the
/// log up to: the end of the last segment read whole, or the point where the map filled.
pub fn build_map(
    dir: &Path,
    segments: &[SealedSegment],
    from: i64,
    aborted: &[AbortedTxn],
    map: &mut OffsetMap,
    throttle: &Throttle,
) -> Result<i64, LogError> {
    let mut end = from;
    for segment in segments.iter().filter(|s| s.next_offset > from) {
        let path = segment_file(dir, segment.base_offset, LOG_SUFFIX);
        let mut full = false;
        let _ = for_each_batch(&path, throttle, |position, batch| {
            let header = batch.header();
            if full || header.next_offset() <= from {
                return Ok(());
            }
            if header.attributes.is_control() || is_aborted(header, aborted) {
                end = header.next_offset();
                return Ok(());
            }
            let records = batch
                .records_with(
                    rill_record::DecodeOptions::default().max_records_len(MAX_RECORDS_LEN),
                )
                .map_err(|e| corrupt(&path, position, e))?;
            for record in &records {
                let Some(key) = &record.key else { continue };
                if !map.put(key, record.offset) {
                    full = true;
                    // The map covers the log up to this record: the next pass starts here.
                    end = record.offset;
                    return Ok(());
                }
            }
            end = header.next_offset();
            Ok(())
        })?;
        if full {
            return Ok(end);
        }
        end = end.max(segment.next_offset);
    }
    Ok(end)
}

/// Builds the sparse indexes of a segment being written, as an active segment's are.
struct IndexBuilder {
    base_offset: i64,
    interval: u64,
    bytes_since_entry: u64,
    max_timestamp: i64,
    index: IndexFile<OffsetEntry>,
    time_index: IndexFile<TimeEntry>,
}

impl IndexBuilder {
    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX)
    }

    fn add(&mut self, position: u64, header: &BatchHeader) {
        if self.bytes_since_entry >= self.interval {
            let relative_offset = self.relative(header.base_offset);
            self.index.push(OffsetEntry {
                relative_offset,
                position: u32::try_from(position).unwrap_or(u32::MAX),
            });
            self.bytes_since_entry = 0;
            if self.max_timestamp > self.time_index.last().map_or(-1, |e| e.timestamp) {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset,
                });
            }
        }
        self.bytes_since_entry += header.total_len() as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// Seals the indexes (the last time entry) and writes them, fsynced.
    fn finish(mut self, next_offset: i64) -> Result<(), LogError> {
        if self.max_timestamp > self.time_index.last().map_or(-1, |e| e.timestamp) {
            let relative_offset = self.relative(next_offset);
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
        self.index.write_out()?;
        self.time_index.write_out()?;
        sync_path(self.index.path())?;
        sync_path(self.time_index.path())
    }
}

fn sync_path(path: &Path) -> Result<(), LogError> {
    File::open(path).and_then(|f| f.sync_all()).at(path)
}

/// A cleaning pass's name for one of the new segment's files: `<base>.<suffix>.cleaned`.
fn pass_file(dir: &Path, base_offset: i64, suffix: &str, stage: &str) -> PathBuf {
    let mut path = segment_file(dir, base_offset, suffix).into_os_string();
    path.push(".");
    path.push(stage);
    PathBuf::from(path)
}

/// Cleans one group of consecutive sealed segments into a new segment written beside them as
/// `.cleaned` files, fsynced (see the module docs). `None` when cleaning would change nothing
/// (the files are then removed). `pass` counts the group, changed or not; a pass cleans its
/// groups in log order, starting at the log start.
pub fn clean_group(
    dir: &Path,
    group: &[SealedSegment],
    map: &OffsetMap,
    rules: &CleanRules,
    throttle: &Throttle,
    pass: &mut Pass,
) -> Result<Option<Cleaned>, LogError> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Ok(None);
    };
    let base_offset = first.base_offset;
    let log_path = pass_file(dir, base_offset, LOG_SUFFIX, CLEANED);
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&log_path)
        .at(&log_path)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, Paced::new(&out, throttle));
    let mut indexes = IndexBuilder {
        base_offset,
        interval: u64::from(rules.index_interval),
        bytes_since_entry: 0,
        max_timestamp: -1,
        index: IndexFile::create(pass_file(dir, base_offset, INDEX_SUFFIX, CLEANED))?,
        time_index: IndexFile::create(pass_file(dir, base_offset, TIME_INDEX_SUFFIX, CLEANED))?,
    };
    let mut stats = CleanStats::default();
    // Merging small segments into one is worth a swap even when every record stays.
    let mut changed = group.len() > 1;
    let mut written = 0u64;
    // A replicated log's run of emptied batches, written as one span when it ends.
    let mut run: Option<Run> = None;
    for (k, segment) in group.iter().enumerate() {
        let path = segment_file(dir, segment.base_offset, LOG_SUFFIX);
        let last_segment = k + 1 == group.len();
        let mut held: Option<(Vec<u8>, BatchHeader, bool)> = None;
        let mut emit = |bytes: &[u8], header: &BatchHeader| -> Result<(), LogError> {
            indexes.add(written, header);
            writer.write_all(bytes).at(&log_path)?;
            written += bytes.len() as u64;
            Ok(())
        };
        let read = for_each_batch(&path, throttle, |position, batch| {
            if rules.keep_every_batch {
                let header = *batch.header();
                // An empty batch of no producer is a span (of one entry or more): it joins.
                let span = header.records_count == 0
                    && header.producer_id < 0
                    && !header.attributes.is_control();
                let (kept, outcome) = if span {
                    (0, Filtered::None)
                } else {
                    keep(batch, rules, map, &mut stats, &mut pass.txn_has_records)
                        .map_err(|e| corrupt(&path, position, e))?
                };
                let records = u64::try_from(header.records_count).unwrap_or(0);
                stats.records_kept += kept;
                stats.records_dropped += records.saturating_sub(kept);
                // (A marker that goes joins the run too: the span that stands for it is no
                // control batch.)
                let emptied = matches!(outcome, Filtered::None)
                    && !rules.retain.contains(&header.base_offset);
                if emptied {
                    // Part of a run of emptied batches: one span batch stands for them all.
                    match &mut run {
                        Some(r) if r.continues(&header, &rules.span_breaks) => {
                            r.join(&header);
                        }
                        _ => {
                            if let Some(done) = run.take() {
                                changed |= done.changes;
                                let (bytes, header) =
                                    done.batch().map_err(|e| corrupt(&path, position, e))?;
                                emit(&bytes, &header)?;
                            }
                            run = Some(Run::of(&header, !span));
                        }
                    }
                    return Ok(());
                }
                if let Some(done) = run.take() {
                    changed |= done.changes;
                    let (bytes, header) = done.batch().map_err(|e| corrupt(&path, position, e))?;
                    emit(&bytes, &header)?;
                }
                let bytes = match outcome {
                    Filtered::All => batch.as_bytes().to_vec(),
                    Filtered::Some(bytes) => {
                        changed = true;
                        bytes
                    }
                    Filtered::None => {
                        // A producer's last batch (or a marker, which a replicated log keeps).
                        changed = true;
                        rill_record::empty_batch(&header)
                            .map_err(|e| corrupt(&path, position, e))?
                    }
                };
                emit(&bytes, &header)?;
                return Ok(());
            }
            // The batch before this one was not the segment's last: it goes out as decided.
            if let Some((bytes, header, true)) = held.take() {
                emit(&bytes, &header)?;
            }
            let header = *batch.header();
            let (kept, outcome) = keep(batch, rules, map, &mut stats, &mut pass.txn_has_records)
                .map_err(|e| corrupt(&path, position, e))?;
            let records = u64::try_from(header.records_count).unwrap_or(0);
            stats.records_kept += kept;
            stats.records_dropped += records.saturating_sub(kept);
            let bytes = match outcome {
                Filtered::All => batch.as_bytes().to_vec(),
                Filtered::Some(bytes) => {
                    changed = true;
                    bytes
                }
                Filtered::None if header.attributes.is_control() => {
                    // A marker that may go goes whole; if it must stay after all (the group's
                    // last batch), it stays whole: clients expect a marker to hold its record.
                    changed = true;
                    held = Some((batch.as_bytes().to_vec(), header, false));
                    return Ok(());
                }
                Filtered::None => {
                    changed = true;
                    let stays =
                        rules.keep_every_batch || rules.retain.contains(&header.base_offset);
                    let empty = rill_record::empty_batch(&header)
                        .map_err(|e| corrupt(&path, position, e))?;
                    // Dropped, unless it must stay; the segment's last batch is decided when
                    // the segment ends.
                    held = Some((empty, header, stays));
                    return Ok(());
                }
            };
            held = Some((bytes, header, true));
            Ok(())
        })?;
        stats.bytes_read += read;
        // The group's last batch always stays, so the new segment ends where the old ones did.
        if let Some((bytes, header, stays)) = held.take()
            && (stays || last_segment)
        {
            emit(&bytes, &header)?;
        }
        if last_segment && let Some(done) = run.take() {
            changed |= done.changes;
            let (bytes, header) = done.batch().map_err(|e| corrupt(&path, 0, e))?;
            emit(&bytes, &header)?;
        }
    }
    writer.flush().at(&log_path)?;
    drop(writer);
    stats.bytes_written = written;
    pass.stats += stats;
    if !changed {
        drop(out);
        remove_pass_files(dir, base_offset, CLEANED)?;
        return Ok(None);
    }
    out.sync_all().at(&log_path)?;
    drop(out);
    indexes.finish(last.next_offset)?;
    // The aborted transactions whose markers the new segment holds (markers always stay).
    let aborted: Vec<&AbortedTxn> = rules
        .aborted
        .iter()
        .filter(|t| (base_offset..last.next_offset).contains(&t.last_offset))
        .collect();
    if !aborted.is_empty() {
        let path = pass_file(dir, base_offset, TXN_INDEX_SUFFIX, CLEANED);
        let mut bytes = Vec::with_capacity(aborted.len() * 34);
        for txn in aborted {
            txn.encode(&mut bytes);
        }
        fs::write(&path, &bytes).at(&path)?;
        sync_path(&path)?;
    }
    fault("cleaned")?;
    Ok(Some(Cleaned {
        base_offset,
        next_offset: last.next_offset,
        replaces: group.to_vec(),
        size: written,
    }))
}

/// The bytes a cleaner may leave unwritten to the disk: written chunks of this size are sent
/// to the disk as they fill, and the chunk before waited for.
const WRITEBACK_CHUNK: u64 = 1 << 20;

/// Writes a cleaned segment at a steady pace, its bytes counted by the cleaners' throttle (as
/// Kafka's cleaner counts what it writes with what it reads). The file's pages go to the disk a
/// chunk at a time as they are written, so at most two chunks are ever dirty: otherwise the
/// segment's hundred megabytes reach the disk at once at its fsync, and the produce path's
/// fsyncs wait in the same queue (and, on ext4's ordered journal, in the same commit).
struct Paced<'a> {
    file: &'a File,
    throttle: &'a Throttle,
    written: u64,
    /// Where the chunk being filled starts: everything before it has been sent to the disk.
    sent: u64,
}

impl<'a> Paced<'a> {
    fn new(file: &'a File, throttle: &'a Throttle) -> Self {
        Self {
            file,
            throttle,
            written: 0,
            sent: 0,
        }
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.throttle.pace(n);
        self.written += n as u64;
        #[cfg(target_os = "linux")]
        if self.written - self.sent >= WRITEBACK_CHUNK {
            let (from, to) = (self.sent, self.written);
            // Wait for the previous chunk, then start this one.
            if from > 0 {
                let before = from.saturating_sub(WRITEBACK_CHUNK);
                crate::segment::sync_file_range(
                    self.file,
                    before,
                    from,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            crate::segment::sync_file_range(self.file, from, to, libc::SYNC_FILE_RANGE_WRITE);
            self.sent = to;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Which records of `batch` stay, and how many.
fn keep(
    batch: &Batch<'_>,
    rules: &CleanRules,
    map: &OffsetMap,
    stats: &mut CleanStats,
    txn_has_records: &mut HashMap<i64, bool>,
) -> Result<(u64, Filtered), RecordError> {
    let header = batch.header();
    // KIP-534: a batch is marked with its delete horizon the first time a pass keeps a
    // tombstone (or an empty transaction's marker) in it; a pass after the horizon drops them.
    let marked = header.attributes.has_delete_horizon();
    let horizon_passed = marked && header.base_timestamp <= rules.now_ms;
    let new_horizon = rules.now_ms.saturating_add(rules.delete_retention_ms);
    if header.attributes.is_control() {
        // A transaction's marker goes once none of its records is left (they were superseded,
        // or it aborted) and the horizon has passed, as in Kafka: until then a reader or a
        // rebuild of the producers' state may need it. (In a replicated log the span batch
        // that stands for it is no control batch.)
        let has_records = txn_has_records.remove(&header.producer_id).unwrap_or(false);
        let count = u64::try_from(header.records_count).unwrap_or(0);
        if has_records {
            return Ok((count, Filtered::All));
        }
        if horizon_passed {
            return Ok((0, Filtered::None));
        }
        if marked {
            stats.next_horizon_ms = stats.next_horizon_ms.min(header.base_timestamp);
            return Ok((count, Filtered::All));
        }
        stats.next_horizon_ms = stats.next_horizon_ms.min(new_horizon);
        let outcome = rill_record::filter(batch, MAX_RECORDS_LEN, |records| {
            (vec![true; records.len()], Some(new_horizon))
        })?;
        return Ok((count, outcome));
    }
    if is_aborted(header, &rules.aborted) {
        let _ = txn_has_records.entry(header.producer_id).or_insert(false);
        return Ok((0, Filtered::None));
    }
    let mut kept = 0u64;
    let outcome = rill_record::filter(batch, MAX_RECORDS_LEN, |records| {
        let mut tombstones = false;
        let flags = records
            .iter()
            .map(|record| {
                let Some(key) = &record.key else {
                    // A compacted log's records need a key (a topic switched to compact may
                    // hold some without): Kafka's cleaner drops them too.
                    return false;
                };
                let latest = map.latest(key).is_none_or(|newest| newest <= record.offset);
                // A tombstone the map has covered (its key's older records are gone) goes
                // after its horizon.
                let covered = record.value.is_none() && record.offset < rules.map_end;
                let stays = latest && !(covered && horizon_passed);
                tombstones |= stays && covered;
                stays
            })
            .collect::<Vec<bool>>();
        kept = flags.iter().filter(|k| **k).count() as u64;
        let horizon = if !tombstones {
            None
        } else if marked {
            stats.next_horizon_ms = stats.next_horizon_ms.min(header.base_timestamp);
            None
        } else {
            stats.next_horizon_ms = stats.next_horizon_ms.min(new_horizon);
            Some(new_horizon)
        };
        (flags, horizon)
    })?;
    if header.attributes.is_transactional() {
        *txn_has_records.entry(header.producer_id).or_insert(false) |= kept > 0;
    }
    Ok((kept, outcome))
}

/// Removes the new segment's files of one stage (`cleaned` or `swap`) at `base_offset`.
fn remove_pass_files(dir: &Path, base_offset: i64, stage: &str) -> Result<(), LogError> {
    for suffix in [
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
        LOG_SUFFIX,
    ] {
        remove_if_any(&pass_file(dir, base_offset, suffix, stage))?;
    }
    Ok(())
}

fn remove_if_any(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err).at(path),
        _ => Ok(()),
    }
}

/// Abandons a pass whose new segment was written but will not be swapped in.
pub fn discard(dir: &Path, cleaned: &Cleaned) -> Result<(), LogError> {
    discard_at(dir, cleaned.base_offset)
}

/// Removes what a pass that failed part-way wrote for the group starting at `base_offset`.
pub fn discard_at(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    remove_pass_files(dir, base_offset, CLEANED)
}

/// Steps 2-4 of the swap (module docs) for the new segment at `base_offset` ending at
/// `next_offset`, whose files are `.cleaned`.
pub(crate) fn commit(dir: &Path, base_offset: i64, next_offset: i64) -> Result<(), LogError> {
    for suffix in [
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
        LOG_SUFFIX,
    ] {
        let from = pass_file(dir, base_offset, suffix, CLEANED);
        if from.exists() {
            let to = pass_file(dir, base_offset, suffix, SWAP);
            fs::rename(&from, &to).at(&from)?;
        }
    }
    fsync_dir(dir)?;
    fault("swap")?;
    finish(dir, base_offset, next_offset)
}

/// Steps 3-4: deletes the old segments' files in `base_offset..next_offset`, then renames the
/// `.swap` files into place, the log last.
fn finish(dir: &Path, base_offset: i64, next_offset: i64) -> Result<(), LogError> {
    // Step 3 deletes `<base>.log` last and step 4 begins after it: while it is there, every
    // file named `<base>.*` is old; once it is gone, those are the new segment's.
    let first_log = segment_file(dir, base_offset, LOG_SUFFIX);
    let step_3_done = !first_log.exists();
    let mut old = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let replaced = [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ]
        .iter()
        .filter_map(|suffix| Some((parse_segment_name(name, suffix)?, *suffix)))
        .any(|(base, _)| {
            (base_offset..next_offset).contains(&base) && !(step_3_done && base == base_offset)
        });
        if replaced {
            old.push(entry.path());
        }
    }
    // Index files, then logs, the first segment's log last.
    old.sort_by_key(|p| {
        let is_log = p.extension().is_some_and(|e| e == LOG_SUFFIX);
        (is_log, *p == first_log)
    });
    for path in &old {
        remove_if_any(path)?;
    }
    fault("deleted")?;
    for suffix in [
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
        LOG_SUFFIX,
    ] {
        if suffix == LOG_SUFFIX {
            fault("indexes-renamed")?;
        }
        let from = pass_file(dir, base_offset, suffix, SWAP);
        if from.exists() {
            let to = segment_file(dir, base_offset, suffix);
            fs::rename(&from, &to).at(&from)?;
        }
    }
    fsync_dir(dir)
}

/// Recovery, before a log opens: finishes committed swaps and removes what uncommitted passes
/// left (module docs).
pub(crate) fn recover(dir: &Path) -> Result<(), LogError> {
    let mut cleaned = Vec::new();
    let mut swapped_logs = Vec::new();
    let mut swapped_indexes = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".cleaned") {
            cleaned.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(".swap") {
            if let Some(base) = parse_segment_name(stem, LOG_SUFFIX) {
                swapped_logs.push(base);
            } else {
                swapped_indexes.push((stem.to_owned(), entry.path()));
            }
        }
    }
    if cleaned.is_empty() && swapped_logs.is_empty() && swapped_indexes.is_empty() {
        return Ok(());
    }
    for path in &cleaned {
        tracing::warn!(path = %path.display(), "removing an unfinished cleaning pass's file");
        remove_if_any(path)?;
    }
    for (stem, path) in &swapped_indexes {
        let committed = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX]
            .iter()
            .filter_map(|suffix| parse_segment_name(stem, suffix))
            .any(|base| swapped_logs.contains(&base));
        if !committed {
            tracing::warn!(path = %path.display(), "removing an uncommitted cleaning pass's file");
            remove_if_any(path)?;
        }
    }
    for base in swapped_logs {
        let path = pass_file(dir, base, LOG_SUFFIX, SWAP);
        let next = segment_end(&path, base)?;
        tracing::warn!(path = %path.display(), next, "finishing a cleaning pass's swap");
        finish(dir, base, next)?;
    }
    fsync_dir(dir)
}

/// The offset after the last batch of a segment file (its base when it is empty).
fn segment_end(path: &Path, base_offset: i64) -> Result<i64, LogError> {
    let mut next = base_offset;
    let _ = for_each_batch(path, &Throttle::new(f64::INFINITY), |_, batch| {
        next = batch.header().next_offset();
        Ok(())
    })?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Log, LogConfig};
    use rill_record::{BatchBuilder, RecordSpec};
    use std::cell::Cell;

    thread_local! {
        /// The fault point at which this thread's pass stops.
        pub(super) static STOP_AT: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    const KEYS: usize = 20;
    const VERSIONS: usize = 50;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    /// 20 keys x 50 versions (two records a batch, key `k<i>`, value `v<n>`), then a
    /// tombstone for k0 and k1, then the records of a key never repeated.
    fn fill(log: &mut Log) -> Result<(), Box<dyn std::error::Error>> {
        let mut n = 0usize;
        for _ in 0..KEYS * VERSIONS / 2 {
            let mut builder = BatchBuilder::new();
            for _ in 0..2 {
                builder = builder.record(
                    RecordSpec::new(1_000)
                        .key(format!("k{}", n % KEYS))
                        .value(format!("v{n}")),
                );
                n += 1;
            }
            let _ = log.append(&mut builder.build()?.to_vec(), 0)?;
        }
        for key in ["k0", "k1"] {
            let tombstone = BatchBuilder::new().record(RecordSpec::new(1_000).key(key));
            let _ = log.append(&mut tombstone.build()?.to_vec(), 0)?;
        }
        let last = BatchBuilder::new().record(RecordSpec::new(1_000).key("once").value("x"));
        let _ = log.append(&mut last.build()?.to_vec(), 0)?;
        log.roll()?;
        Ok(())
    }

    /// Every record of the log: (offset, key, value).
    type Seen = Vec<(i64, String, Option<String>)>;

    fn records(log: &Log) -> Result<Seen, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20)?;
            if bytes.is_empty() {
                break;
            }
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                for r in batch.records()? {
                    let text = |b: &Option<bytes::Bytes>| {
                        b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
                    };
                    out.push((r.offset, text(&r.key).unwrap_or_default(), text(&r.value)));
                }
                offset = batch.header().next_offset();
            }
        }
        Ok(out)
    }

    /// One whole pass over `log`, as a broker's cleaner runs it.
    fn pass(log: &mut Log, rules: &CleanRules) -> Result<CleanStats, LogError> {
        let throttle = Throttle::new(f64::INFINITY);
        let segments = log.sealed_segments();
        let mut map = OffsetMap::with_budget(1 << 20);
        let map_end = build_map(
            log.dir(),
            &segments,
            log.cleaned_to(),
            &[],
            &mut map,
            &throttle,
        )?;
        let rules = CleanRules {
            map_end,
            ..rules.clone()
        };
        let dir = log.dir().to_path_buf();
        let mut pass_state = Pass::default();
        let cleanable: Vec<_> = segments
            .into_iter()
            .filter(|s| s.base_offset < map_end)
            .collect();
        for group in groups(&cleanable, log.config().segment_bytes) {
            if let Some(cleaned) =
                clean_group(&dir, &group, &map, &rules, &throttle, &mut pass_state)?
            {
                assert!(log.swap_cleaned(&cleaned)?);
            }
        }
        log.set_cleaned_to(map_end)?;
        Ok(pass_state.stats)
    }

    fn rules() -> CleanRules {
        CleanRules {
            now_ms: 0,
            delete_retention_ms: 1_000_000,
            index_interval: 256,
            ..CleanRules::default()
        }
    }

    /// The latest record of each key in `all`, in offset order.
    fn latest(all: &Seen, drop_tombstones: bool) -> Seen {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, (_, key, _)) in all.iter().enumerate() {
            let _ = last.insert(key, i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        keep.into_iter()
            .filter_map(|i| all.get(i).cloned())
            .filter(|(_, _, value)| !(drop_tombstones && value.is_none()))
            .collect()
    }

    #[test]
    fn a_pass_keeps_the_latest_record_of_each_key_at_its_offset()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path(), config(), 0)?;
        fill(&mut log)?;
        let before = records(&log)?;
        let (start, end, segments) = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count(),
        );
        let stats = pass(&mut log, &rules())?;
        let after = records(&log)?;
        assert_eq!(
            after,
            latest(&before, false),
            "tombstones stay until their horizon"
        );
        assert_eq!(stats.records_kept, after.len() as u64);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
        log.verify()?;
        // A fetch inside a removed range gets the next record.
        let first_gone = (start..end)
            .find(|o| !after.iter().any(|(offset, _, _)| offset == o))
            .ok_or("nothing was removed")?;
        let bytes = log.read(first_gone, 1)?;
        let batch = Batches::new(&bytes).next().ok_or("no batch")??;
        assert!(batch.header().last_offset() > first_gone);
        // Cleaning again keeps every record, and merges the small segments left.
        let _ = pass(&mut log, &rules())?;
        assert_eq!(records(&log)?, after);
        assert!(
            log.segment_count() < segments,
            "{} segments",
            log.segment_count()
        );
        // Past the horizon the first pass marked, the tombstones go.
        let horizon = CleanRules {
            now_ms: 2_000_000,
            ..rules()
        };
        log.set_cleaned_to(0)?;
        let _ = pass(&mut log, &horizon)?;
        assert_eq!(records(&log)?, latest(&before, true));
        // The cleaned log reopens as it was, after a clean close or not.
        let kept = records(&log)?;
        drop(log);
        let log = Log::open(dir.path(), config(), 0)?;
        assert_eq!(records(&log)?, kept);
        assert_eq!(log.log_end_offset(), end);
        log.verify()?;
        Ok(())
    }

    #[test]
    fn a_crash_at_any_step_leaves_the_old_log_or_the_new_one()
    -> Result<(), Box<dyn std::error::Error>> {
        for step in ["cleaned", "swap", "deleted", "indexes-renamed"] {
            let dir = tempfile::tempdir()?;
            let mut log = Log::open(dir.path(), config(), 0)?;
            fill(&mut log)?;
            let before = records(&log)?;
            STOP_AT.with(|s| s.set(Some(step)));
            let stopped = pass(&mut log, &rules());
            STOP_AT.with(|s| s.set(None));
            assert!(stopped.is_err(), "{step}: the pass stopped");
            drop(log);
            let log = Log::open(dir.path(), config(), 0)?;
            log.verify()?;
            let after = records(&log)?;
            let cleaned = latest(&before, false);
            // The first group is swapped in whole or not at all; later groups never started.
            let first_group_new = after.len() < before.len();
            assert_eq!(
                first_group_new,
                step != "cleaned",
                "{step}: {} of {} records",
                after.len(),
                before.len()
            );
            for record in &cleaned {
                assert!(after.contains(record), "{step}: lost {record:?}");
            }
            let names: Vec<String> = fs::read_dir(dir.path())?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .collect();
            assert!(names.is_empty(), "{step}: left {names:?}");
            // And a pass after the restart finishes the job.
            let mut log = log;
            let _ = pass(&mut log, &rules())?;
            assert_eq!(records(&log)?, cleaned, "{step}");
        }
        Ok(())
    }

    #[test]
    fn a_small_map_cleans_in_several_passes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path(), config(), 0)?;
        fill(&mut log)?;
        let before = records(&log)?;
        let throttle = Throttle::new(f64::INFINITY);
        let mut passes = 0;
        while log.cleaned_to() < log.log_end_offset() && passes < 1_000 {
            let segments = log.sealed_segments();
            let mut map = OffsetMap::with_capacity(7);
            let from = log.cleaned_to();
            let map_end = build_map(log.dir(), &segments, from, &[], &mut map, &throttle)?;
            assert!(map_end > from, "a pass makes progress");
            let rules = CleanRules { map_end, ..rules() };
            let dir = log.dir().to_path_buf();
            let cleanable: Vec<_> = segments
                .into_iter()
                .filter(|s| s.base_offset < map_end)
                .collect();
            let mut pass_state = Pass::default();
            for group in groups(&cleanable, log.config().segment_bytes) {
                if let Some(cleaned) =
                    clean_group(&dir, &group, &map, &rules, &throttle, &mut pass_state)?
                {
                    let _ = log.swap_cleaned(&cleaned)?;
                }
            }
            log.set_cleaned_to(map_end)?;
            passes += 1;
        }
        assert!(passes > 1, "{passes} passes");
        assert_eq!(records(&log)?, latest(&before, false));
        Ok(())
    }

    #[test]
    fn markers_go_once_their_transaction_has_no_records_left_and_the_horizon_passed()
    -> Result<(), Box<dyn std::error::Error>> {
        use rill_record::{Marker, marker_batch};
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path(), config(), 0)?;
        let txn = |pid: i64, seq: i32, key: &str| {
            BatchBuilder::new()
                .transactional(true)
                .producer(pid, 0, seq)
                .record(RecordSpec::new(1_000).key(key.to_owned()).value("t"))
                .build()
        };
        let marker = |pid: i64, commit: bool| {
            let end = Marker {
                commit,
                coordinator_epoch: 0,
            };
            marker_batch(pid, 0, end, 1_000)
        };
        let plain = |key: &str, value: &str| {
            BatchBuilder::new()
                .record(
                    RecordSpec::new(1_000)
                        .key(key.to_owned())
                        .value(value.to_owned()),
                )
                .build()
        };
        // Producer 1 commits a (superseded later); producer 2 aborts b; producer 3 commits c,
        // which stays the latest value of c.
        for batch in [
            txn(1, 0, "a")?,
            marker(1, true)?,
            txn(2, 0, "b")?,
            marker(2, false)?,
            txn(3, 0, "c")?,
            marker(3, true)?,
            plain("a", "new")?,
            plain("end", "x")?,
        ] {
            let _ = log.append(&mut batch.to_vec(), 0)?;
        }
        log.roll()?;
        let aborted = vec![AbortedTxn {
            producer_id: 2,
            first_offset: 2,
            last_offset: 3,
            last_stable_offset: 4,
        }];
        let controls = |log: &Log| -> Result<Vec<i64>, Box<dyn std::error::Error>> {
            let bytes = log.read(0, 1 << 20)?;
            let mut out = Vec::new();
            for batch in Batches::new(&bytes) {
                let header = *batch?.header();
                if header.attributes.is_control() {
                    out.push(header.base_offset);
                }
            }
            Ok(out)
        };
        // Before the horizon every marker stays; the aborted record and the old a go.
        let keep = CleanRules {
            aborted: aborted.clone(),
            ..rules()
        };
        let _ = pass(&mut log, &keep)?;
        assert_eq!(controls(&log)?, vec![1, 3, 5]);
        // (The markers' own records count as records here.)
        let kept: Vec<i64> = records(&log)?.iter().map(|r| r.0).collect();
        assert_eq!(kept, vec![1, 3, 4, 5, 6, 7]);
        // Past it, the markers of the transactions with nothing left go; producer 3's stays.
        log.set_cleaned_to(0)?;
        let past = CleanRules {
            aborted,
            now_ms: 2_000_000,
            ..rules()
        };
        let _ = pass(&mut log, &past)?;
        assert_eq!(controls(&log)?, vec![5]);
        assert_eq!(
            records(&log)?.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![4, 5, 6, 7]
        );
        Ok(())
    }

    #[test]
    fn a_replicated_log_drops_its_markers_into_spans() -> Result<(), Box<dyn std::error::Error>> {
        use rill_record::{Marker, marker_batch};
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path(), config(), 0)?;
        let end = |commit| Marker {
            commit,
            coordinator_epoch: 0,
        };
        let txn = BatchBuilder::new()
            .transactional(true)
            .producer(2, 0, 0)
            .record(RecordSpec::new(1_000).key("b").value("t"))
            .build()?;
        let plain = BatchBuilder::new()
            .record(RecordSpec::new(1_000).key("end").value("x"))
            .build()?;
        for batch in [txn, marker_batch(2, 0, end(false), 1_000)?, plain] {
            let _ = log.append(&mut batch.to_vec(), 0)?;
        }
        log.roll()?;
        let aborted = vec![AbortedTxn {
            producer_id: 2,
            first_offset: 0,
            last_offset: 1,
            last_stable_offset: 2,
        }];
        let replicated = |now_ms| CleanRules {
            aborted: aborted.clone(),
            keep_every_batch: true,
            now_ms,
            ..rules()
        };
        // The aborted record goes at once, the marker once past its horizon: both into one
        // span standing for their two entries.
        let _ = pass(&mut log, &replicated(0))?;
        log.set_cleaned_to(0)?;
        let _ = pass(&mut log, &replicated(2_000_000))?;
        let bytes = log.read(0, 1 << 20)?;
        let headers: Vec<BatchHeader> = Batches::new(&bytes)
            .map(|b| b.map(|b| *b.header()))
            .collect::<Result<_, _>>()?;
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert!(!headers.iter().any(|h| h.attributes.is_control()));
        assert_eq!(headers.iter().map(span_entries).sum::<u64>(), 3);
        assert_eq!(
            headers.first().map(|h| (h.base_offset, h.next_offset())),
            Some((0, 2))
        );
        Ok(())
    }

    #[test]
    fn batches_that_must_stay_stay_empty() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut log = Log::open(dir.path(), config(), 0)?;
        fill(&mut log)?;
        let batches_before = count_batches(&log)?;
        let keep_all = CleanRules {
            keep_every_batch: true,
            ..rules()
        };
        let _ = pass(&mut log, &keep_all)?;
        // Runs of emptied batches became span batches standing for the entries they replace.
        let (batches, entries) = count_batches(&log)?;
        assert_eq!(entries, batches_before.1, "every batch's entry stays");
        assert!(batches < batches_before.0, "{batches} batches");
        // Later passes merge the small segments left, and with them their spans, until
        // nothing changes: spans are not rewritten for nothing.
        let mut last = (batches, entries);
        let mut passes = 0;
        loop {
            let _ = pass(&mut log, &keep_all)?;
            let now = count_batches(&log)?;
            assert_eq!(now.1, entries);
            if now == last {
                break;
            }
            last = now;
            passes += 1;
            assert!(passes < 5, "still changing after {passes} passes: {now:?}");
        }
        // Offsets continue from batch to batch, as a Raft log walk needs.
        let mut next = log.log_start_offset();
        let mut offset = next;
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20)?;
            for batch in Batches::new(&bytes) {
                let header = *batch?.header();
                assert_eq!(header.base_offset, next);
                next = header.next_offset();
            }
            offset = next;
        }
        Ok(())
    }

    /// The log's batches, and the Raft entries they stand for.
    fn count_batches(log: &Log) -> Result<(usize, u64), Box<dyn std::error::Error>> {
        let (mut batches, mut entries) = (0, 0);
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20)?;
            if bytes.is_empty() {
                break;
            }
            for batch in Batches::new(&bytes) {
                let header = *batch?.header();
                offset = header.next_offset();
                batches += 1;
                entries += span_entries(&header);
            }
        }
        Ok((batches, entries))
    }

    #[test]
    fn a_budget_bounds_the_table_and_its_last_growth() {
        // 128 MiB: 2^21 slots (52 MiB; with the half-size table beside it while it grows,
        // 79 MiB), 7/8 of them keys.
        let map = OffsetMap::with_budget(128 << 20);
        assert_eq!(map.capacity(), (1 << 21) / 8 * 7);
        const { assert!((1 << 21) * MAP_SLOT_BYTES * 3 / 2 <= 128 << 20) };
        const { assert!((1 << 22) * MAP_SLOT_BYTES * 3 / 2 > 128 << 20) };
        assert_eq!(OffsetMap::with_budget(0).capacity(), 1);
    }

    #[test]
    fn the_map_keeps_the_latest_offset_within_its_budget() {
        let mut map = OffsetMap::with_capacity(2);
        assert_eq!(map.capacity(), 2);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"a", 3), "a known key is updated even when full");
        assert!(!map.put(b"c", 4), "a new key does not fit");
        assert_eq!(map.latest(b"a"), Some(3));
        assert_eq!(map.latest(b"b"), Some(2));
        assert_eq!(map.latest(b"c"), None);
        assert_eq!(map.len(), 2);
    }
}
