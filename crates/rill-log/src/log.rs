//! A partition log: an ordered run of segments, the last one active, and the aborted
//! transactions whose ABORT markers it holds (in each segment's `.txnindex`).

use std::collections::VecDeque;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rill_record::{Batch, BatchHeader};

use crate::background::{self, Pending};
use crate::cache::FileCache;
use crate::dir::{
    CLEAN_SHUTDOWN_FILE, LOG_SUFFIX, TXN_INDEX_SUFFIX, fsync_dir, parse_segment_name, segment_file,
};
use crate::error::{IoContext, LogError};
use crate::segment::Segment;
use crate::txn_index::{self, AbortedTxn};
use crate::{FlushPolicy, LogConfig};

/// The file in a log directory that keeps a log start offset moved by
/// [`Log::delete_records_before`].
const LOG_START_CHECKPOINT: &str = "log-start-offset";
/// Where the log cleaner's last pass ended (the first dirty offset), in the partition's
/// directory. Losing it costs a pass over the whole log, nothing else.
const CLEANER_CHECKPOINT: &str = "cleaner-checkpoint";

fn read_log_start_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    read_checkpoint(dir, LOG_START_CHECKPOINT)
}

fn read_checkpoint(dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse() {
            Ok(offset) => Ok(Some(offset)),
            Err(_) => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable log start checkpoint");
                Ok(None)
            }
        },
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).at(&path),
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The time the log appended it (ms since the epoch), as passed to [`Log::append`].
    pub log_append_time_ms: i64,
}

/// A record found by [`Log::offset_for_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// An fsync of a log's active segment, taken out of the log by [`Log::begin_sync`] so that it
/// can run beside others, and handed back to [`Log::finish_sync`].
#[derive(Debug)]
pub struct PendingSync {
    file: Arc<fs::File>,
    path: PathBuf,
    /// The log end it makes durable.
    end: i64,
    /// The records it makes durable.
    records: u64,
    /// The log's `truncations` when it began: after a cut, what it made durable may be gone.
    truncations: u64,
}

impl PendingSync {
    /// The fdatasync itself (blocking).
    pub fn run(&self) -> Result<(), LogError> {
        #[cfg(test)]
        if crate::segment::fault::FAIL_NEXT_SYNC.with(|fail| fail.replace(false)) {
            return Err(std::io::Error::other("injected fsync failure")).at(&self.path);
        }
        self.file.sync_data().at(&self.path)
    }
}

/// One partition's log in its own directory.
///
/// The log has a single owner: `append`, `sync` and retention take `&mut self`, reads `&self`.
/// It is synchronous and does blocking file I/O; async callers run it on a thread of its own.
/// Its segment files are opened through a [`FileCache`], which may be shared by many logs.
///
/// Beside the records, it keeps the aborted transactions the broker records
/// ([`Log::add_aborted`]), each with the segment holding its ABORT marker, all in memory, for
/// read_committed fetches ([`Log::aborted_between`]). They go with their segments (retention,
/// truncation) and survive restarts; [`Log::sync_txn_index`] makes them durable.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    cache: Arc<FileCache>,
    /// The clean-shutdown marker is still in the directory: nothing has changed since a clean
    /// close, so a crash now needs no recovery, and closing needs no work. The first change
    /// removes it.
    clean_marker: bool,
    /// Sealed segments, ordered by base offset and contiguous with each other and `active`.
    sealed: Vec<Segment>,
    /// The segment appends go to.
    active: Segment,
    log_start_offset: i64,
    /// Records appended since the last fsync.
    unflushed_records: u64,
    /// The offset up to which everything is fsynced (exclusive).
    flushed_offset: i64,
    last_flush_ms: i64,
    /// Set by a failed fsync, with the file it failed on.
    poisoned: Option<PathBuf>,
    /// Sealed segments still being fsynced on threads of their own, oldest first.
    pending_seals: VecDeque<PendingSeal>,
    /// How many times the log has been cut ([`Log::truncate_to`], [`Log::start_at`]).
    truncations: u64,
    /// An aborted-transaction index was written since the last [`Log::sync_txn_index`].
    txn_index_unsynced: bool,
    /// An aborted-transaction index file was created since then: the directory needs an fsync.
    txn_index_dir_unsynced: bool,
    /// Where the log cleaner's last pass ended: the first dirty offset.
    cleaned_to: i64,
}

/// A sealed segment whose files are being fsynced away from the owner's thread, so that a roll
/// never stalls appends for the time it takes to flush a whole segment.
#[derive(Debug)]
struct PendingSeal {
    base_offset: i64,
    fsync: Pending,
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, and recovers it.
    ///
    /// Sealed segments are trusted with their index files (which are rebuilt if missing or
    /// damaged). The active segment is recovered: after a clean [`Log::close`] only its last
    /// index interval is walked; otherwise every batch in it is checked (length, magic, CRC and
    /// offset continuity) and whatever follows the last good batch is cut off. Then the
    /// aborted-transaction indexes are loaded; an entry whose marker is not in its segment (in
    /// the active one, at or past the log end just recovered) or that is damaged is dropped, and
    /// its file fixed. Opening never reads more than the active segment and the index files.
    ///
    /// The log keeps its files open through a cache of its own; [`Log::open_cached`] shares one.
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig, now_ms: i64) -> Result<Self, LogError> {
        Self::open_cached(dir, config, now_ms, &FileCache::unbounded())
    }

    /// [`Log::open`], with the segment files opened through `cache`, which bounds how many
    /// descriptors all the logs sharing it keep open.
    pub fn open_cached(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        now_ms: i64,
        cache: &Arc<FileCache>,
    ) -> Result<Self, LogError> {
        config.validate()?;
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).at(&dir)?;
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
        }
        // A cleaning pass a crash interrupted: finished if it had committed, else undone.
        crate::cleaner::recover(&dir)?;
        let (bases, txn_bases) = list_segments(&dir)?;

        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let checkpoint = read_log_start_checkpoint(&dir)?;
        let mut sealed = Vec::with_capacity(bases.len());
        for pair in bases.windows(2) {
            if let [base, next] = *pair {
                sealed.push(Segment::open_sealed(
                    cache,
                    &dir,
                    base,
                    next,
                    config.index_interval_bytes,
                )?);
            }
        }
        let mut clean_marker = false;
        let mut active = match bases.last() {
            Some(&base) => {
                let recovered = if clean {
                    Segment::open_active_clean(cache, &dir, base)?
                } else {
                    None
                };
                match recovered {
                    Some(segment) => {
                        clean_marker = true;
                        segment
                    }
                    None => Segment::open_active(cache, &dir, base, config.index_interval_bytes)?,
                }
            }
            None => {
                // A log emptied by `start_at` may have lost its segment to a crash, never its
                // checkpoint (written first).
                let base = checkpoint.unwrap_or(0).max(0);
                let segment = Segment::create(cache, &dir, base)?;
                fsync_dir(&dir)?;
                segment
            }
        };
        if clean && !clean_marker {
            // The marker lied (the active segment needed recovery): it must not be trusted again.
            fs::remove_file(&marker).at(&marker)?;
            fsync_dir(&dir)?;
        }

        // After a crash, an aborted-transaction index may hold entries that never reached the
        // disk: the first `sync_txn_index` fsyncs it. After a clean close, `close` did.
        let mut txn_index_unsynced = false;
        for segment in sealed.iter_mut().chain(std::iter::once(&mut active)) {
            if txn_bases.binary_search(&segment.base_offset).is_ok() {
                segment.load_txn_index(clean_marker)?;
                txn_index_unsynced |= segment.unsynced_txn_index().is_some();
            }
        }

        let log_end_offset = active.next_offset;
        let log_start_offset = checkpoint
            .unwrap_or(0)
            .max(sealed.first().unwrap_or(&active).base_offset)
            .min(log_end_offset);
        let cleaned_to = read_checkpoint(&dir, CLEANER_CHECKPOINT)?
            .unwrap_or(log_start_offset)
            .clamp(log_start_offset, log_end_offset);
        tracing::debug!(
            dir = %dir.display(),
            segments = sealed.len() + 1,
            log_start_offset,
            log_end_offset,
            clean,
            "log opened"
        );
        Ok(Self {
            dir,
            config,
            cache: cache.clone(),
            clean_marker,
            sealed,
            active,
            log_start_offset,
            unflushed_records: 0,
            // What recovery found is on disk; after a power loss it could not have found more.
            flushed_offset: log_end_offset,
            last_flush_ms: now_ms,
            poisoned: None,
            pending_seals: VecDeque::new(),
            truncations: 0,
            txn_index_unsynced,
            txn_index_dir_unsynced: txn_index_unsynced,
            cleaned_to,
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Removes the clean-shutdown marker before the first change since a clean open: from then on
    /// a crash must be treated as one.
    fn changing(&mut self) -> Result<(), LogError> {
        if self.clean_marker {
            let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
            fs::remove_file(&marker).at(&marker)?;
            fsync_dir(&self.dir)?;
            self.clean_marker = false;
        }
        Ok(())
    }

    /// Replaces the configuration (for example after a topic config change); it applies to the
    /// next append, roll and retention pass.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record will get (Kafka's log end offset). On a single
    /// replica this is also the high watermark.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    /// Everything below this offset has been fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments().map(|s| s.size).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().map(|s| s.base_offset).collect()
    }

    /// All segments, oldest first, the active one last.
    fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    /// Appends one record batch, assigning its offsets by rewriting `baseOffset` in place, and
    /// writes the bytes verbatim. Then fsyncs if the flush policy says so.
    ///
    /// The batch must be exactly one well-formed v2 batch; its CRC is the caller's to check
    /// (a broker checks it on receipt, before the batch reaches the log).
    pub fn append(&mut self, batch: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        let parsed = Batch::parse(batch)?;
        let len = parsed.as_bytes().len();
        if len != batch.len() {
            return Err(LogError::InvalidBatch {
                source: rill_record::RecordError::InvalidLength {
                    length: parsed.header().batch_length,
                },
            });
        }
        let mut header = *parsed.header();
        if header.last_offset_delta < 0 {
            return Err(LogError::InvalidBatch {
                source: rill_record::RecordError::InvalidRecord {
                    index: 0,
                    reason: "negative lastOffsetDelta",
                },
            });
        }
        if len as u64 > self.config.segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: len,
                max: self.config.segment_bytes,
            });
        }
        self.reap_seals(false)?;
        self.changing()?;
        let base_offset = self.log_end_offset();
        header.base_offset = base_offset;
        if self.should_roll(&header, now_ms) {
            self.roll()?;
        }
        rill_record::batch::set_base_offset(batch, base_offset)?;
        let index_interval = self.config.index_interval_bytes;
        self.active.append(batch, &header, index_interval, now_ms)?;
        self.unflushed_records += u64::from(header.last_offset_delta.unsigned_abs()) + 1;
        self.flush_if_due(now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms: now_ms,
        })
    }

    fn should_roll(&self, header: &BatchHeader, now_ms: i64) -> bool {
        let active = &self.active;
        if active.is_empty() {
            return false;
        }
        let full = active.size + header.total_len() as u64 > self.config.segment_bytes;
        let old = self.config.segment_ms >= 0
            && active
                .first_append_ms
                .is_some_and(|first| now_ms - first >= self.config.segment_ms);
        full || old || !active.can_hold_offsets(header.last_offset())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    ///
    /// The sealed segment's files and the directory are fsynced on a thread of their own; the
    /// next [`Log::sync`] waits for it, so `sync` still covers everything appended before it.
    pub fn roll(&mut self) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        self.changing()?;
        let next = self.log_end_offset();
        self.active.seal()?;
        let segment = Segment::create(&self.cache, &self.dir, next)?;
        let sealed = std::mem::replace(&mut self.active, segment);
        let files = sealed.files();
        let base_offset = sealed.base_offset;
        self.sealed.push(sealed);
        // The directory fsync after the files also makes the new segment's entry durable.
        let dir = self.dir.clone();
        let fsync = background::run(move || {
            for path in &files {
                fsync_path(path)?;
            }
            fsync_dir(&dir)
        });
        self.pending_seals
            .push_back(PendingSeal { base_offset, fsync });
        tracing::debug!(dir = %self.dir.display(), base_offset = next, "rolled segment");
        Ok(())
    }

    /// Collects finished background fsyncs of sealed segments (all of them, waiting, if `wait`).
    /// A failed one poisons the log.
    fn reap_seals(&mut self, wait: bool) -> Result<(), LogError> {
        while let Some(seal) = self.pending_seals.pop_front() {
            let result = if wait {
                seal.fsync.wait()
            } else if let Some(result) = seal.fsync.try_outcome() {
                result
            } else {
                self.pending_seals.push_front(seal);
                break;
            };
            let result = result.map_err(|err| match err {
                LogError::Io { path, source } if path.as_os_str().is_empty() => LogError::Io {
                    path: crate::dir::segment_file(&self.dir, seal.base_offset, LOG_SUFFIX),
                    source,
                },
                err => err,
            });
            if let Err(err) = result {
                self.poison(&err);
                return Err(err);
            }
        }
        Ok(())
    }

    /// Makes everything appended so far durable with one fsync (group commit). A failure
    /// poisons the log: every later append and sync fails.
    pub fn sync(&mut self) -> Result<(), LogError> {
        match self.begin_sync()? {
            Some(pending) => {
                let result = pending.run();
                self.finish_sync(pending, result)
            }
            None => Ok(()),
        }
    }

    /// The first half of [`Log::sync`], for an owner of many logs that fsyncs several at once:
    /// the fsync to run (on any thread: [`PendingSync::run`]), or `None` when everything is
    /// already durable. Appends may go on while it runs; they are not covered by it (the next
    /// sync covers them). Begin the next one only after [`Log::finish_sync`] of this one.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>, LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        let end = self.log_end_offset();
        if self.flushed_offset == end {
            return Ok(None);
        }
        self.reap_seals(true)?;
        // Failing to reopen the file (no descriptor left) is not a failed fsync: the data is
        // still in the page cache, so the log is not poisoned and a later sync may succeed.
        let (file, path) = self.active.data_file()?;
        Ok(Some(PendingSync {
            file,
            path,
            end,
            records: self.unflushed_records,
            truncations: self.truncations,
        }))
    }

    /// The second half of [`Log::sync`]: records what the fsync achieved (a failure poisons the
    /// log, as in `sync`).
    pub fn finish_sync(
        &mut self,
        pending: PendingSync,
        result: Result<(), LogError>,
    ) -> Result<(), LogError> {
        if let Err(err) = result {
            self.poison(&err);
            return Err(err);
        }
        if pending.truncations != self.truncations {
            // The log was cut after it began; the cut made everything it kept durable.
            return Ok(());
        }
        // What was appended after it began is still unflushed.
        self.unflushed_records = self.unflushed_records.saturating_sub(pending.records);
        self.flushed_offset = self.flushed_offset.max(pending.end);
        Ok(())
    }

    /// Fsyncs if the flush policy says one is due; owners call it on a timer so that
    /// [`crate::FlushPolicy::Interval`] holds while no appends arrive.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self
            .config
            .flush
            .is_due(self.unflushed_records, now_ms - self.last_flush_ms)
        {
            self.sync()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// When time-based work next falls due (ms since the epoch, the clock [`Log::append`] is
    /// given): an interval flush of unflushed appends, or a roll of the active segment by age
    /// (`segment.ms`). `None` when nothing falls due until something is appended. An owner of
    /// many logs sleeps until the earliest of them and then calls [`Log::tick`].
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let flush = match self.config.flush {
            FlushPolicy::Interval(every) if self.unflushed_records > 0 => Some(
                self.last_flush_ms
                    .saturating_add(i64::try_from(every.as_millis()).unwrap_or(i64::MAX)),
            ),
            _ => None,
        };
        let roll = match self.active.first_append_ms {
            Some(first) if self.config.segment_ms >= 0 && !self.active.is_empty() => {
                Some(first.saturating_add(self.config.segment_ms))
            }
            _ => None,
        };
        flush.into_iter().chain(roll).min()
    }

    /// Does the time-based work that is due at `now_ms`: an interval flush, and a roll of an
    /// active segment older than `segment.ms` even if nothing is appended to it (so that
    /// retention can delete it, as Kafka does).
    pub fn tick(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.flush_if_due(now_ms)?;
        let old = self.config.segment_ms >= 0
            && !self.active.is_empty()
            && self
                .active
                .first_append_ms
                .is_some_and(|first| now_ms - first >= self.config.segment_ms);
        if old {
            self.roll()?;
        }
        Ok(())
    }

    fn poison(&mut self, err: &LogError) {
        let path = match err {
            LogError::Io { path, .. } => path.clone(),
            _ => self.dir.clone(),
        };
        tracing::error!(%err, path = %path.display(), "fsync failed; the log refuses further writes");
        self.poisoned = Some(path);
    }

    /// Whether a failed fsync has poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Reads whole batches starting with the one that holds `offset`, up to `max_bytes`, but
    /// always at least one batch, even a larger one (as Kafka does, so a consumer never stalls).
    /// Data comes from one segment; the next read continues in the next one. Reading at the log
    /// end gives no bytes. Every batch returned has passed its CRC check.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        let end = self.log_end_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        // Skip the segments that end at or before `offset` (at most one empty one follows).
        for segment in self.segments().skip_while(|s| s.next_offset <= offset) {
            let Some((position, first)) = segment.find_batch(offset)? else {
                continue;
            };
            let available = segment.size - position;
            let want = (max_bytes as u64)
                .max(first.total_len() as u64)
                .min(available);
            let buf = segment.read_at(position, usize::try_from(want).unwrap_or(usize::MAX))?;
            let mut whole = 0usize;
            for batch in rill_record::Batches::new(&buf) {
                let Ok(batch) = batch else { break };
                batch.verify_crc().map_err(|source| LogError::Corrupt {
                    path: segment.path().to_path_buf(),
                    position: position + whole as u64,
                    source: source.into(),
                })?;
                whole += batch.as_bytes().len();
            }
            let mut bytes = Bytes::from(buf);
            bytes.truncate(whole);
            return Ok(bytes);
        }
        Ok(Bytes::new())
    }

    /// The first record whose timestamp is at or after `timestamp` (Kafka's ListOffsets by
    /// time), or `None` when every record is older.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        for segment in self.segments().filter(|s| s.max_timestamp >= timestamp) {
            if let Some(found) = first_at_or_after(segment, timestamp, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (Kafka's ListOffsets `MAX_TIMESTAMP`, KIP-734):
    /// its own offset and timestamp, found by decoding the batch that holds it, since a batch
    /// header only has its largest timestamp. With ties, the earliest such record, as Kafka
    /// (which keeps a segment's first batch with its largest timestamp). Like Kafka, it looks
    /// at whole segments, so after DeleteRecords the record may lie below the log start.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        let max = self.segments().map(|s| s.max_timestamp).max().unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        match self.segments().find(|s| s.max_timestamp == max) {
            Some(segment) => first_at_or_after(segment, max, segment.base_offset),
            None => Ok(None),
        }
    }

    /// Records an aborted transaction whose ABORT marker is at `txn.last_offset`, which must be
    /// an offset already in the log (below the log end, at or above the log start; otherwise
    /// [`LogError::OffsetOutOfRange`]), and not before `txn.first_offset` (otherwise
    /// [`LogError::InvalidAbortedTxn`]). Appended to the `.txnindex` of the segment holding
    /// `last_offset`, which the first entry creates (not fsynced here:
    /// [`Log::sync_txn_index`]). An entry whose `last_offset` is at or below the last one
    /// recorded in that segment is ignored (the broker replays markers after a crash and may add
    /// one again).
    pub fn add_aborted(&mut self, txn: AbortedTxn) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        let end = self.log_end_offset();
        if txn.last_offset < self.log_start_offset || txn.last_offset >= end {
            return Err(LogError::OffsetOutOfRange {
                offset: txn.last_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        if txn.first_offset > txn.last_offset {
            return Err(LogError::InvalidAbortedTxn {
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
            });
        }
        // The first segment ending after the offset holds it (it is below the log end).
        let holding = self
            .sealed
            .partition_point(|s| s.next_offset <= txn.last_offset);
        let recorded = self.sealed.get(holding).unwrap_or(&self.active).aborted();
        if recorded
            .last()
            .is_some_and(|last| txn.last_offset <= last.last_offset)
        {
            tracing::debug!(
                dir = %self.dir.display(),
                last_offset = txn.last_offset,
                "ignoring an aborted transaction at or below the last one recorded"
            );
            return Ok(());
        }
        // The clean-shutdown marker vouches that every index file is durable. (The broker
        // appends the marker batch first, which has already removed it.)
        self.changing()?;
        let segment = self.sealed.get_mut(holding).unwrap_or(&mut self.active);
        let created = segment.add_aborted(txn)?;
        self.txn_index_unsynced = true;
        self.txn_index_dir_unsynced |= created;
        Ok(())
    }

    /// Every recorded aborted transaction with `last_offset >= from` and `first_offset < to`,
    /// ordered by `last_offset`: those a read_committed fetch of `from..to` filters out. From
    /// memory: no disk read.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Segments ending at or before `from` hold only markers before it; a transaction
        // aborted in any later segment may have begun before `to`.
        let first = self.sealed.partition_point(|s| s.next_offset <= from);
        self.sealed
            .get(first..)
            .unwrap_or_default()
            .iter()
            .chain(std::iter::once(&self.active))
            .flat_map(Segment::aborted)
            .filter(|txn| txn.last_offset >= from && txn.first_offset < to)
            .copied()
            .collect()
    }

    /// fsyncs every `.txnindex` file written since the last call, and the directory if one was
    /// created (the broker calls it before it writes a snapshot of its producer state).
    /// [`Log::close`] does it too. A failed fsync poisons the log, as in [`Log::sync`]: after
    /// one, what the file holds is unknown, and a retry could succeed without making it durable.
    pub fn sync_txn_index(&mut self) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        if !self.txn_index_unsynced {
            return Ok(());
        }
        let mut failed = None;
        for segment in self
            .sealed
            .iter_mut()
            .chain(std::iter::once(&mut self.active))
        {
            let Some(path) = segment.unsynced_txn_index() else {
                continue;
            };
            // Failing to open the file (no descriptor left) is not a failed fsync: the log is
            // not poisoned, and the next call tries again.
            let file = fs::File::open(&path).at(&path)?;
            if let Err(err) = sync_all(&file, &path) {
                failed = Some(err);
                break;
            }
            segment.txn_index_synced();
        }
        if self.txn_index_dir_unsynced && failed.is_none() {
            let dir = fs::File::open(&self.dir).at(&self.dir)?;
            match sync_all(&dir, &self.dir) {
                Ok(()) => self.txn_index_dir_unsynced = false,
                Err(err) => failed = Some(err),
            }
        }
        if let Some(err) = failed {
            self.poison(&err);
            return Err(err);
        }
        self.txn_index_unsynced = false;
        Ok(())
    }

    /// Deletes whole sealed segments past `retention.ms` (by their largest timestamp) or while
    /// the log exceeds `retention.bytes`. The active segment is never deleted. Returns the base
    /// offsets of the deleted segments.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<Vec<i64>, LogError> {
        let mut excess = match self.config.retention_bytes {
            -1 => 0,
            limit => i64::try_from(self.size_bytes()).unwrap_or(i64::MAX) - limit,
        };
        let mut doomed = 0;
        for segment in &self.sealed {
            let by_size = excess > 0 && excess >= i64::try_from(segment.size).unwrap_or(i64::MAX);
            let by_time = self.config.retention_ms >= 0 && {
                let newest = match segment.max_timestamp {
                    -1 => segment.modified_ms()?,
                    ts => ts,
                };
                now_ms - newest > self.config.retention_ms
            };
            if !(by_size || by_time) {
                break;
            }
            excess -= i64::try_from(segment.size).unwrap_or(i64::MAX);
            doomed += 1;
        }
        if doomed > 0 {
            self.changing()?;
        }
        let deleted = self.delete_oldest(doomed)?;
        if !deleted.is_empty() {
            tracing::info!(
                dir = %self.dir.display(),
                deleted = deleted.len(),
                log_start_offset = self.log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(deleted.iter().map(|s| s.base_offset).collect())
    }

    /// Moves the log start offset up to `offset` (Kafka's DeleteRecords): records below it are no
    /// longer readable, and segments wholly below it are deleted. The new start survives
    /// restarts. Returns the log start offset after the call.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let end = self.log_end_offset();
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.changing()?;
        self.write_log_start_checkpoint(offset)?;
        self.log_start_offset = offset;
        let doomed = self
            .sealed
            .iter()
            .take_while(|s| s.next_offset <= offset)
            .count();
        let _ = self.delete_oldest(doomed)?;
        Ok(offset)
    }

    /// Writes the log start offset checkpoint, durably.
    fn write_log_start_checkpoint(&self, offset: i64) -> Result<(), LogError> {
        let path = self.dir.join(LOG_START_CHECKPOINT);
        let file = fs::File::create(&path).at(&path)?;
        use std::io::Write as _;
        (&file)
            .write_all(format!("{offset}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .at(&path)?;
        fsync_dir(&self.dir)
    }

    /// Removes every record at or after `offset`, so that the log ends there (Kafka's
    /// `truncateTo`, for a follower dropping a suffix its leader does not have); appends then
    /// continue at `offset`. Durable before it returns: the cut segment is fsynced, and the
    /// directory too when segments were deleted.
    ///
    /// - At or past the log end it does nothing.
    /// - At or below the log start it empties the log as [`Log::start_at`]`(offset)` does: the
    ///   log then starts and ends at `offset` (below the old start, as in Kafka).
    /// - Otherwise `offset` must be the first offset of a batch, or it fails with
    ///   [`LogError::NotABatchBoundary`] and changes nothing. The segments based above `offset`
    ///   are deleted, newest first (a crash part-way leaves the log cut at a segment boundary,
    ///   with no hole); the one holding it is cut and becomes the active segment. A segment
    ///   based exactly at `offset` stays, empty, as in Kafka.
    ///
    /// A failure once files have started to change poisons the log, since what is on disk is
    /// then unknown.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.start_at(offset);
        }
        // The newest segment based at or below `offset` holds it (it is below the log end).
        let index = if self.active.base_offset <= offset {
            self.sealed.len()
        } else {
            let newer = self.sealed.partition_point(|s| s.base_offset <= offset);
            newer.saturating_sub(1)
        };
        let segment = self.sealed.get(index).unwrap_or(&self.active);
        let position = match segment.find_batch(offset)? {
            Some((position, header)) if header.base_offset == offset => position,
            Some((_, header)) => {
                return Err(LogError::NotABatchBoundary {
                    offset,
                    batch_base_offset: header.base_offset,
                });
            }
            None => {
                return Err(LogError::Inconsistent {
                    path: segment.path().to_path_buf(),
                    reason: format!("ends at offset {}, before {offset}", segment.next_offset),
                });
            }
        };
        // No fsync of a segment about to go may still be running, nor fail later.
        self.reap_seals(true)?;
        self.changing()?;
        let result = self.cut(index, position, offset);
        if let Err(err) = &result {
            self.poison(err);
        }
        result
    }

    /// [`Log::truncate_to`] once checked: segment `index` (the active one if past the sealed
    /// ones) is cut at `position`, where `offset` starts, and the segments after it deleted.
    fn cut(&mut self, index: usize, position: u64, offset: i64) -> Result<(), LogError> {
        if index < self.sealed.len() {
            let mut doomed = self.sealed.split_off(index + 1);
            if let Some(segment) = self.sealed.pop() {
                doomed.push(std::mem::replace(&mut self.active, segment));
            }
            for segment in doomed.iter().rev() {
                remove_files(segment)?;
            }
            fsync_dir(&self.dir)?;
        }
        self.active.truncate(position, offset)?;
        // Every sealed segment left has been fsynced (no seal is pending) and the cut one was
        // just fsynced whole: everything the log holds is durable.
        self.flushed_offset = offset;
        self.unflushed_records = 0;
        self.truncations += 1;
        tracing::info!(dir = %self.dir.display(), log_end_offset = offset, "truncated log");
        Ok(())
    }

    /// Deletes every segment and restarts the log, empty, at `offset`, above or below its end
    /// (Kafka's `truncateFullyAndStartAt`, for a replica too far behind its leader's log start,
    /// or one installing a snapshot): the log start and end both become `offset`, and appends
    /// continue there. Durable before it returns.
    ///
    /// The segments are deleted newest first, then the log start checkpoint is written, then the
    /// new segment is created, each step durable before the next. A crash part-way therefore
    /// leaves the old log cut at a segment boundary, an empty log at the last checkpointed start
    /// (0 if none was ever written), or the new log (an empty directory with a checkpoint opens
    /// as an empty log starting there). A failure once files have started to change poisons the
    /// log.
    pub fn start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        if offset < 0 {
            return Err(LogError::NegativeOffset { offset });
        }
        self.reap_seals(true)?;
        self.changing()?;
        let result = self.restart(offset);
        if let Err(err) = &result {
            self.poison(err);
        }
        result
    }

    /// [`Log::start_at`] once checked.
    fn restart(&mut self, offset: i64) -> Result<(), LogError> {
        for segment in self.segments().rev() {
            remove_files(segment)?;
        }
        // One left by a segment whose deletion failed must not become the new segment's.
        remove_file_if_any(&segment_file(&self.dir, offset, TXN_INDEX_SUFFIX))?;
        fsync_dir(&self.dir)?;
        self.write_log_start_checkpoint(offset)?;
        let segment = Segment::create(&self.cache, &self.dir, offset)?;
        fsync_dir(&self.dir)?;
        self.sealed.clear();
        self.active = segment;
        self.log_start_offset = offset;
        self.flushed_offset = offset;
        self.unflushed_records = 0;
        self.truncations += 1;
        tracing::info!(dir = %self.dir.display(), log_start_offset = offset, "restarted log");
        Ok(())
    }

    fn delete_oldest(&mut self, count: usize) -> Result<Vec<Segment>, LogError> {
        if count > 0 {
            // A seal still being fsynced would fail on the deleted files and poison the log.
            self.reap_seals(true)?;
        }
        let deleted: Vec<Segment> = self.sealed.drain(..count).collect();
        for segment in &deleted {
            remove_files(segment)?;
        }
        if !deleted.is_empty() {
            fsync_dir(&self.dir)?;
            let first = self.sealed.first().unwrap_or(&self.active);
            self.log_start_offset = self.log_start_offset.max(first.base_offset);
        }
        Ok(deleted)
    }

    /// The sealed segments, oldest first: what a log cleaner may clean.
    pub fn sealed_segments(&self) -> Vec<crate::SealedSegment> {
        self.sealed
            .iter()
            .map(|s| crate::SealedSegment {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
            })
            .collect()
    }

    /// Where the log cleaner's last pass ended (the first dirty offset), at least the log start.
    pub fn cleaned_to(&self) -> i64 {
        self.cleaned_to.max(self.log_start_offset)
    }

    /// The bytes of sealed segments cleaned and not yet cleaned (dirty), for the cleaner's
    /// choice of log (`min.cleanable.dirty.ratio`). A segment the last pass ended inside
    /// counts as dirty.
    pub fn cleanable_bytes(&self) -> (u64, u64) {
        let cleaned_to = self.cleaned_to();
        self.sealed.iter().fold((0, 0), |(clean, dirty), s| {
            if s.next_offset <= cleaned_to {
                (clean + s.size, dirty)
            } else {
                (clean, dirty + s.size)
            }
        })
    }

    /// Records where a cleaning pass ended (durably: a temporary file renamed into place).
    pub fn set_cleaned_to(&mut self, offset: i64) -> Result<(), LogError> {
        let path = self.dir.join(CLEANER_CHECKPOINT);
        let tmp = self.dir.join(format!("{CLEANER_CHECKPOINT}.tmp"));
        fs::write(&tmp, format!("{offset}\n")).at(&tmp)?;
        fsync_path(&tmp)?;
        fs::rename(&tmp, &path).at(&tmp)?;
        fsync_dir(&self.dir)?;
        self.cleaned_to = offset;
        Ok(())
    }

    /// Swaps the segment a cleaning pass wrote ([`crate::cleaner::clean_group`]) in for the
    /// segments it replaces, crash-safely (see [`crate::cleaner`]). `Ok(false)`, with the new
    /// files removed, when those segments changed meanwhile (retention or a truncation took
    /// them), so the pass no longer applies.
    pub fn swap_cleaned(&mut self, cleaned: &crate::Cleaned) -> Result<bool, LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        let at = self
            .sealed
            .iter()
            .position(|s| s.base_offset == cleaned.base_offset);
        let unchanged = at.is_some_and(|at| {
            let now = self.sealed.get(at..at + cleaned.replaces.len());
            now.is_some_and(|segments| {
                segments.iter().zip(&cleaned.replaces).all(|(s, r)| {
                    s.base_offset == r.base_offset
                        && s.next_offset == r.next_offset
                        && s.size == r.size
                })
            })
        });
        let Some(at) = at.filter(|_| unchanged) else {
            crate::cleaner::discard(&self.dir, cleaned)?;
            return Ok(false);
        };
        // A seal still being fsynced would fail on a deleted file and poison the log.
        self.reap_seals(true)?;
        self.changing()?;
        let swapped = crate::cleaner::commit(&self.dir, cleaned.base_offset, cleaned.next_offset)
            .and_then(|()| {
                Segment::open_sealed(
                    &self.cache,
                    &self.dir,
                    cleaned.base_offset,
                    cleaned.next_offset,
                    self.config.index_interval_bytes,
                )
            });
        let mut segment = match swapped {
            Ok(segment) => segment,
            Err(err) => {
                // What is on disk is no longer what the log holds in memory.
                self.poisoned = Some(self.dir.clone());
                return Err(err);
            }
        };
        if segment.txn_index_path().exists() {
            segment.load_txn_index(true)?;
        }
        let _ = self
            .sealed
            .splice(at..at + cleaned.replaces.len(), std::iter::once(segment));
        tracing::debug!(
            dir = %self.dir.display(),
            base_offset = cleaned.base_offset,
            replaced = cleaned.replaces.len(),
            size = cleaned.size,
            "swapped in a cleaned segment"
        );
        Ok(true)
    }

    /// Checks every batch of every segment (length, magic, CRC, offsets), reading the whole log.
    /// For tools and tests; opening does not do this.
    pub fn verify(&self) -> Result<(), LogError> {
        for segment in self.segments() {
            let sealed = segment.base_offset != self.active.base_offset;
            let outcome = segment.verify(sealed)?;
            if let Some(source) = outcome.invalid {
                return Err(LogError::Corrupt {
                    path: segment.path().to_path_buf(),
                    position: outcome.valid_len,
                    source,
                });
            }
        }
        Ok(())
    }

    /// Flushes everything, writes the active segment's indexes and marks the shutdown clean, so
    /// the next open skips the full scan of the active segment.
    pub fn close(mut self) -> Result<(), LogError> {
        if let Some(path) = &self.poisoned {
            return Err(LogError::Poisoned { path: path.clone() });
        }
        if self.clean_marker {
            // Unchanged since it was closed cleanly last time: the files are as that close left them.
            return Ok(());
        }
        self.reap_seals(true)?;
        // Only what changed is fsynced: a log with nothing appended since its last fsync costs
        // no fsync of its data, and index files with nothing new none of theirs.
        self.sync()?;
        self.sync_txn_index()?;
        self.active.seal()?;
        self.active.sync_indexes()?;
        // The marker is written after everything it vouches for is durable. Its own directory
        // entry is not fsynced: if a power loss takes it, the next open only recovers the
        // active segment, which is safe; so a clean close of many idle logs costs no fsync.
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        fs::write(&marker, b"").at(&marker)
    }
}

/// Deletes a segment's files (one already gone is no error; the caller fsyncs the directory).
fn remove_files(segment: &Segment) -> Result<(), LogError> {
    for path in segment.files() {
        remove_file_if_any(&path)?;
    }
    Ok(())
}

/// Deletes a file; one already gone is no error (the caller fsyncs the directory).
fn remove_file_if_any(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err).at(path),
        _ => Ok(()),
    }
}

/// The base offsets of the segments in `dir` (by their `.log` files) and of those that have an
/// aborted-transaction index, both sorted. Aborted-transaction index files without a segment
/// (left by a crash while a segment was deleted, which deletes its `.log` first) and those of
/// an interrupted rewrite are removed, durably: a new segment at the same base must not take
/// them for its own.
fn list_segments(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), LogError> {
    let mut bases = Vec::new();
    let mut txn_bases = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_name(name, TXN_INDEX_SUFFIX) {
            txn_bases.push(base);
        } else if parse_segment_name(name, txn_index::REWRITE_SUFFIX).is_some() {
            leftovers.push(entry.path());
        }
    }
    bases.sort_unstable();
    txn_bases.sort_unstable();
    let (txn_bases, orphans): (Vec<i64>, Vec<i64>) = txn_bases
        .into_iter()
        .partition(|base| bases.binary_search(base).is_ok());
    leftovers.extend(
        orphans
            .into_iter()
            .map(|base| segment_file(dir, base, TXN_INDEX_SUFFIX)),
    );
    if !leftovers.is_empty() {
        for path in &leftovers {
            tracing::warn!(path = %path.display(), "removing a leftover aborted-transaction index");
            remove_file_if_any(path)?;
        }
        fsync_dir(dir)?;
    }
    Ok((bases, txn_bases))
}

/// fsync of a file by its path (a descriptor opened for the purpose: any descriptor of a file
/// makes all of its written pages durable).
fn fsync_path(path: &Path) -> Result<(), LogError> {
    fs::File::open(path).and_then(|f| f.sync_all()).at(path)
}

/// fsync of an open file (or directory) at `path`.
fn sync_all(file: &fs::File, path: &Path) -> Result<(), LogError> {
    #[cfg(test)]
    if crate::segment::fault::FAIL_NEXT_SYNC.with(|fail| fail.replace(false)) {
        return Err(std::io::Error::other("injected fsync failure")).at(path);
    }
    file.sync_all().at(path)
}

/// The first record of `segment` at or after offset `from` whose timestamp is at or after
/// `timestamp`: the time index gives where to start, the batches' headers which batch to
/// decode.
fn first_at_or_after(
    segment: &Segment,
    timestamp: i64,
    from: i64,
) -> Result<Option<TimestampOffset>, LogError> {
    let start = segment.time_lookup_offset(timestamp).max(from);
    let Some((mut position, _)) = segment.find_batch(start)? else {
        return Ok(None);
    };
    while position < segment.size {
        let header = segment.header_at(position)?;
        if header.max_timestamp >= timestamp {
            let bytes = segment.read_at(position, header.total_len())?;
            let corrupt = |source: rill_record::RecordError| LogError::Corrupt {
                path: segment.path().to_path_buf(),
                position,
                source: source.into(),
            };
            // `records` checks the CRC before it decodes (and decompresses).
            let records = Batch::parse(&bytes)
                .and_then(|batch| batch.records())
                .map_err(corrupt)?;
            if let Some(found) = records
                .iter()
                .find(|r| r.offset >= from && r.timestamp >= timestamp)
            {
                return Ok(Some(TimestampOffset {
                    offset: found.offset,
                    timestamp: found.timestamp,
                }));
            }
        }
        position += header.total_len() as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::FlushPolicy;
    use crate::segment::fault::FAIL_NEXT_SYNC;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn batch(records: usize) -> Result<Vec<u8>, rill_record::RecordError> {
        let mut builder = rill_record::BatchBuilder::new();
        for i in 0..records {
            builder = builder.record(rill_record::RecordSpec::new(0).value(vec![i as u8; 10]));
        }
        Ok(builder.build()?.to_vec())
    }

    fn open(dir: &Path, flush: FlushPolicy) -> Result<Log, LogError> {
        let config = LogConfig {
            flush,
            ..LogConfig::default()
        };
        Log::open(dir, config, 0)
    }

    #[test]
    fn a_failed_fsync_poisons_the_log() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut log = open(dir.path(), FlushPolicy::Never)?;
        let _ = log.append(&mut batch(2)?, 0)?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        assert!(matches!(log.sync(), Err(LogError::Io { .. })));
        assert!(log.is_poisoned());
        assert_eq!(log.flushed_offset(), 0);
        // Every later write fails, naming the file whose fsync failed, even though the next
        // fsync would succeed: what reached the disk is unknown.
        let segment = crate::dir::segment_file(dir.path(), 0, crate::dir::LOG_SUFFIX);
        for result in [
            log.append(&mut batch(1)?, 0).map(|_| ()),
            log.sync(),
            log.roll(),
        ] {
            match result {
                Err(LogError::Poisoned { path }) => assert_eq!(path, segment),
                other => panic!("expected Poisoned, got {other:?}"),
            }
        }
        assert_eq!(log.log_end_offset(), 2);
        // Reads still serve what was written.
        assert!(!log.read(0, 100)?.is_empty());
        assert!(matches!(log.close(), Err(LogError::Poisoned { .. })));
        Ok(())
    }

    #[test]
    fn a_failed_fsync_inside_append_poisons_too() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut log = open(dir.path(), FlushPolicy::EveryAppend)?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        assert!(matches!(
            log.append(&mut batch(1)?, 0),
            Err(LogError::Io { .. })
        ));
        assert!(matches!(
            log.append(&mut batch(1)?, 0),
            Err(LogError::Poisoned { .. })
        ));
        Ok(())
    }

    #[test]
    fn txn_index_fsyncs_run_only_after_writes_and_a_failed_one_poisons() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut log = open(dir.path(), FlushPolicy::Never)?;
        let _ = log.append(&mut batch(3)?, 0)?;
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 2,
            last_stable_offset: 0,
        };
        // Nothing written: no fsync (the injected failure stays armed).
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        log.sync_txn_index()?;
        assert!(FAIL_NEXT_SYNC.with(|fail| fail.replace(false)));
        log.add_aborted(aborted)?;
        log.sync_txn_index()?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        log.sync_txn_index()?;
        assert!(
            FAIL_NEXT_SYNC.with(|fail| fail.replace(false)),
            "synced already"
        );

        // An entry ignored as a repeat writes nothing, but a new one does, and its fsync fails.
        log.add_aborted(aborted)?;
        log.add_aborted(AbortedTxn {
            last_offset: 2,
            ..aborted
        })?;
        let _ = log.append(&mut batch(1)?, 0)?;
        let later = AbortedTxn {
            last_offset: 3,
            ..aborted
        };
        log.add_aborted(later)?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        assert!(matches!(log.sync_txn_index(), Err(LogError::Io { .. })));
        assert!(log.is_poisoned());
        let index = crate::dir::segment_file(dir.path(), 0, TXN_INDEX_SUFFIX);
        for result in [
            log.sync_txn_index(),
            log.add_aborted(AbortedTxn {
                last_offset: 3,
                ..later
            }),
            log.sync(),
        ] {
            match result {
                Err(LogError::Poisoned { path }) => assert_eq!(path, index),
                other => panic!("expected Poisoned, got {other:?}"),
            }
        }
        // What is recorded is still served.
        assert_eq!(log.aborted_between(0, 4), [aborted, later]);
        assert!(matches!(log.close(), Err(LogError::Poisoned { .. })));
        Ok(())
    }

    #[test]
    fn txn_indexes_found_after_a_crash_are_fsynced_by_the_next_sync() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut log = open(dir.path(), FlushPolicy::Never)?;
        let _ = log.append(&mut batch(3)?, 0)?;
        log.add_aborted(AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 2,
            last_stable_offset: 0,
        })?;
        // A crash before the entry was fsynced: it may be only in the page cache.
        drop(log);
        let mut log = open(dir.path(), FlushPolicy::Never)?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        assert!(matches!(log.sync_txn_index(), Err(LogError::Io { .. })));
        drop(log);
        // After a clean close it is durable: nothing to fsync.
        let log = open(dir.path(), FlushPolicy::Never)?;
        log.close()?;
        let mut log = open(dir.path(), FlushPolicy::Never)?;
        FAIL_NEXT_SYNC.with(|fail| fail.set(true));
        log.sync_txn_index()?;
        assert!(FAIL_NEXT_SYNC.with(|fail| fail.replace(false)));
        assert_eq!(log.aborted_between(0, 3).len(), 1);
        Ok(())
    }

    #[test]
    fn flush_policies_decide_when_appends_are_synced() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut every = open(&dir.path().join("every"), FlushPolicy::EveryAppend)?;
        let _ = every.append(&mut batch(3)?, 0)?;
        assert_eq!(every.flushed_offset(), 3);

        let mut messages = open(&dir.path().join("messages"), FlushPolicy::Messages(5))?;
        let _ = messages.append(&mut batch(3)?, 0)?;
        assert_eq!(messages.flushed_offset(), 0);
        let _ = messages.append(&mut batch(2)?, 0)?;
        assert_eq!(messages.flushed_offset(), 5);

        let policy = FlushPolicy::Interval(Duration::from_millis(100));
        let mut interval = open(&dir.path().join("interval"), policy)?;
        let _ = interval.append(&mut batch(1)?, 50)?;
        assert_eq!(interval.flushed_offset(), 0);
        interval.flush_if_due(99)?;
        assert_eq!(interval.flushed_offset(), 0);
        interval.flush_if_due(100)?;
        assert_eq!(interval.flushed_offset(), 1);

        let mut never = open(&dir.path().join("never"), FlushPolicy::Never)?;
        let _ = never.append(&mut batch(4)?, 0)?;
        never.flush_if_due(i64::MAX / 2)?;
        assert_eq!(never.flushed_offset(), 0);
        // Group commit: one sync covers every append before it.
        let _ = never.append(&mut batch(4)?, 0)?;
        never.sync()?;
        assert_eq!(never.flushed_offset(), 8);
        Ok(())
    }
}
