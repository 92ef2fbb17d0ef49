//! A replicated partition's Raft log: the partition's own `rill-log` segments, with no second
//! copy of the data. Raft entry `i` is either one record batch of the log (almost all of them)
//! or an entry without records: the empty entry a new leader appends, or a configuration
//! change. Those take no offset, so they live beside the log in `replica-state`, with the
//! offset they sit before.
//!
//! `replica-state` (JSON, written whole to a temporary file, fsynced, renamed) holds the Raft
//! hard state (term, vote, commit), the group's configuration (voters, learners, and the joint
//! state while one is changed) with the index of the last configuration change it includes, the
//! epoch cache, the **anchor** (the entry just before the log start, and the log start offset)
//! and the record-less entries after it.
//! Opening walks the batch headers from the log start to the log end, taking record-less
//! entries from the file where they belong, so every entry gets back its index; the term of a
//! batch is its `partitionLeaderEpoch`, which the leader stamps with the term before it proposes
//! the batch. Every entry of the log is thus available to a follower that is behind; one that
//! needs entries below the log start (retention removed them, or it lost its data) is sent a
//! snapshot, which says where the log starts: it restarts its log there and takes the rest as
//! ordinary entries.
//!
//! Order on disk, so a crash at any point leaves a log the walk reads right: record-less
//! entries are written to the state file before the batches that follow them are appended; a
//! truncation cuts the log before the state file forgets the entries past the cut (the walk
//! ignores record-less entries whose offset the log no longer reaches).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protobuf::ProtobufEnum as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use rill_log::Log;
use rill_record::{BatchHeader, Batches, set_partition_leader_epoch};
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::meta::write_durably;
use crate::partition::now_ms;

/// The replica state file in the partition's directory.
pub(crate) const STATE_FILE: &str = "replica-state";

/// The entry just before the log start (`index`, of `term`) and the log start `offset`.
/// Entries up to it are compacted away from Raft's point of view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Anchor {
    index: u64,
    term: u64,
    offset: i64,
}

/// An entry without records, kept in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Extra {
    index: u64,
    term: u64,
    /// raft-rs's entry type.
    kind: i32,
    /// The log offset it sits before.
    offset: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    data: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    context: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    term: u64,
    vote: u64,
    commit: u64,
    /// The voters (all of the configuration, for a state written before reassignments).
    voters: Vec<u64>,
    /// The rest of the configuration, when there is more than voters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conf: Option<Membership>,
    /// The index of the last configuration change applied (0: none since the group began).
    #[serde(default, skip_serializing_if = "is_zero")]
    conf_index: u64,
    anchor: Anchor,
    extras: Vec<Extra>,
    /// Where each term's entries start (Kafka's leader epoch cache).
    #[serde(default)]
    epochs: Vec<Epoch>,
}

/// The parts of a Raft configuration besides its voters: learners, and the joint state while
/// the voters change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Membership {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    learners: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    voters_outgoing: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    learners_next: Vec<u64>,
    #[serde(default)]
    auto_leave: bool,
}

impl Membership {
    fn of(conf: &ConfState) -> Option<Self> {
        let membership = Self {
            learners: conf.learners.clone(),
            voters_outgoing: conf.voters_outgoing.clone(),
            learners_next: conf.learners_next.clone(),
            auto_leave: conf.auto_leave,
        };
        (membership != Self::default()).then_some(membership)
    }

    fn conf(voters: Vec<u64>, membership: Option<Self>) -> ConfState {
        let mut conf = ConfState::default();
        conf.set_voters(voters);
        if let Some(m) = membership {
            conf.set_learners(m.learners);
            conf.set_voters_outgoing(m.voters_outgoing);
            conf.set_learners_next(m.learners_next);
            conf.auto_leave = m.auto_leave;
        }
        conf
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The first entry of a term: its index and the offset it starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Epoch {
    term: u64,
    index: u64,
    offset: i64,
}

/// A partition snapshot's data: no records, only where the leader's log starts and the
/// epochs before it. The snapshot's configuration is the leader's latest (a replica being
/// added is in no configuration as old as the log start), as of entry `conf_index`: the
/// receiver skips the configuration changes up to there when they reach it.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    offset: i64,
    epochs: Vec<Epoch>,
    #[serde(default)]
    conf_index: u64,
}

/// Where one entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A batch of the log: its base offset and the offset after it.
    Batch { base: i64, next: i64, term: u64 },
    /// A record-less entry (in `extras`), sitting before offset `at`.
    Extra { at: i64, term: u64 },
    /// One of the entries a span batch at `at` stands for besides its last (the log cleaner
    /// merged the emptied batches of those entries into it, `rill_log::cleaner::span_entries`):
    /// nothing of its own on disk; the span batch's slot follows them.
    SpanPart { at: i64, term: u64 },
}

/// The context of an entry sent for a [`Slot::SpanPart`]: the receiver counts it as part of
/// the span batch that follows, and stores nothing for it.
const SPAN_PART: &[u8] = b"rill.span-part";

impl Slot {
    fn term(self) -> u64 {
        match self {
            Slot::Batch { term, .. } | Slot::Extra { term, .. } | Slot::SpanPart { term, .. } => {
                term
            }
        }
    }

    /// The offset the entry starts at.
    fn start(self) -> i64 {
        match self {
            Slot::Batch { base, .. } => base,
            Slot::Extra { at, .. } | Slot::SpanPart { at, .. } => at,
        }
    }

    /// The offset after the entry (the high watermark when it is the last committed one).
    fn end(self) -> i64 {
        match self {
            Slot::Batch { next, .. } => next,
            Slot::Extra { at, .. } | Slot::SpanPart { at, .. } => at,
        }
    }
}

/// What one append of entries wrote: the batches' headers as stored (for the producer state).
#[derive(Debug, Default)]
pub(crate) struct Appended {
    pub(crate) batches: Vec<(u64, BatchHeader)>,
    /// Entries were dropped from the end of the log first.
    pub(crate) truncated: bool,
}

/// The Raft log, hard state and voters of one replica.
#[derive(Debug)]
pub(crate) struct ReplicaStore {
    log: Log,
    path: PathBuf,
    hard: HardState,
    conf: ConfState,
    /// The index of the last configuration change `conf` includes.
    conf_index: u64,
    anchor: Anchor,
    /// Raft index of `slots[0]`; the entry before it has `before_term`.
    first: u64,
    before_term: u64,
    slots: VecDeque<Slot>,
    extras: BTreeMap<u64, Extra>,
    /// Made by this open: the replica had no state (new, or its data was lost).
    created: bool,
    /// Where each term's entries start, oldest first.
    epochs: Vec<Epoch>,
    /// A batch read from the log (for a client or a follower) failed its checks: this
    /// replica's data is corrupt.
    corrupt: std::sync::atomic::AtomicBool,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Metadata(format!("{}: {what}", path.display()))
}

impl ReplicaStore {
    /// Opens the replica of the partition whose log is `log`: a new one (no state file yet) has
    /// `voters` (raft ids) and must be empty; an existing one is read back from its state file
    /// and log.
    pub(crate) fn open(mut log: Log, voters: &[u64]) -> Result<Self, BrokerError> {
        let path = log.dir().join(STATE_FILE);
        let mut created = false;
        let persisted = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Persisted>(&bytes)
                .map_err(|e| corrupt(&path, format!("unreadable replica state: {e}")))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if log.log_end_offset() != log.log_start_offset() {
                    return Err(corrupt(
                        &path,
                        "the partition holds records but has no replica state",
                    ));
                }
                let persisted = Persisted {
                    voters: voters.to_vec(),
                    anchor: Anchor {
                        index: 0,
                        term: 0,
                        offset: log.log_end_offset(),
                    },
                    ..Persisted::default()
                };
                write_state(&path, &persisted)?;
                created = true;
                persisted
            }
            Err(source) => return Err(BrokerError::Io { path, source }),
        };
        let anchor = persisted.anchor;
        // The anchor may sit below the log start when DeleteRecords cut inside a batch (the
        // batch stays whole in its segment); never beyond the end.
        if anchor.offset > log.log_end_offset() {
            return Err(corrupt(
                &path,
                format!(
                    "the replica state's anchor at offset {} is outside the log ({}..{})",
                    anchor.offset,
                    log.log_start_offset(),
                    log.log_end_offset()
                ),
            ));
        }
        let mut extras: BTreeMap<u64, Extra> = persisted
            .extras
            .into_iter()
            .filter(|e| e.index > anchor.index)
            .map(|e| (e.index, e))
            .collect();
        let slots = walk(&log, anchor, &extras)?;
        if slots.is_empty() && anchor.offset < log.log_end_offset() {
            return Err(corrupt(
                &path,
                format!(
                    "the log at offset {} does not continue the replica state's anchor",
                    anchor.offset
                ),
            ));
        }
        let mut epochs = persisted.epochs;
        for (index, slot) in (anchor.index + 1..).zip(slots.iter()) {
            if epochs.last().is_none_or(|e| e.term < slot.term()) {
                epochs.push(Epoch {
                    term: slot.term(),
                    index,
                    offset: slot.start(),
                });
            }
        }
        let end = slots.back().map_or(anchor.offset, |s| s.end());
        let last = anchor.index + slots.len() as u64;
        extras.retain(|index, _| *index <= last);
        epochs.retain(|e| e.index <= last);
        if end < log.log_end_offset() {
            tracing::warn!(
                dir = %log.dir().display(),
                from = end,
                to = log.log_end_offset(),
                "dropping a log tail the replica state does not account for"
            );
            log.truncate_to(end)?;
        }
        let hard = HardState {
            term: persisted.term,
            vote: persisted.vote,
            // The commit index is written lazily: never past what this log holds.
            commit: persisted.commit.min(last).max(anchor.index),
            ..HardState::default()
        };
        let conf = Membership::conf(persisted.voters, persisted.conf);
        Ok(Self {
            log,
            path,
            hard,
            conf,
            conf_index: persisted.conf_index,
            anchor,
            first: anchor.index + 1,
            before_term: anchor.term,
            slots,
            extras,
            created,
            corrupt: std::sync::atomic::AtomicBool::new(false),
            epochs,
        })
    }

    /// Whether this open made the replica's state (it had none).
    pub(crate) fn created(&self) -> bool {
        self.created
    }

    /// Whether a batch read from the log failed its checks.
    pub(crate) fn corrupt(&self) -> bool {
        self.corrupt.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that a batch read from the log failed its checks.
    pub(crate) fn mark_corrupt(&self) {
        self.corrupt
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    pub(crate) fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    pub(crate) fn into_log(self) -> Log {
        self.log
    }

    /// The index of the last configuration change the stored configuration includes.
    pub(crate) fn conf_index(&self) -> u64 {
        self.conf_index
    }

    /// The index Raft may treat as applied at start: the commit index, or just before the
    /// first committed configuration change not applied yet (a crash can come between a
    /// commit index written with a new vote and the change's application), so that it comes
    /// back to be applied.
    pub(crate) fn applied(&self) -> u64 {
        let from = self.conf_index + 1;
        if from > self.hard.commit {
            return self.hard.commit.max(self.anchor.index);
        }
        self.extras
            .range(from..=self.hard.commit)
            .find(|(_, e)| is_conf_change(e.kind))
            .map_or(self.hard.commit, |(index, _)| index - 1)
            .max(self.anchor.index)
    }

    /// Takes the configuration that applying the change at `index` made, written durably (with
    /// the commit index, which is at least `index`).
    pub(crate) fn set_conf(&mut self, conf: ConfState, index: u64) -> Result<(), BrokerError> {
        self.conf = conf;
        self.conf_index = index;
        self.write()
    }

    fn last(&self) -> u64 {
        self.first + self.slots.len() as u64 - 1
    }

    fn slot(&self, index: u64) -> Option<Slot> {
        let k = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.slots.get(k).copied()
    }

    /// The offset after entry `index`: the high watermark when it is the commit index.
    pub(crate) fn end_of(&self, index: u64) -> Option<i64> {
        if index + 1 == self.first {
            return Some(self.anchor_before_first_end());
        }
        self.slot(index).map(Slot::end)
    }

    fn anchor_before_first_end(&self) -> i64 {
        self.slots
            .front()
            .map_or(self.log.log_end_offset(), |s| s.start())
    }

    /// Kafka's OffsetForLeaderEpoch on this replica: the largest term at or below `term` with
    /// entries here, and the offset its entries end at (where the next term's start, or the log
    /// end). `None` if every term known here is above it.
    pub(crate) fn end_for_term(&self, term: u64) -> Option<(u64, i64)> {
        let at = self.epochs.partition_point(|e| e.term <= term);
        let found = self.epochs.get(at.checked_sub(1)?)?;
        let end = self
            .epochs
            .get(at)
            .map_or(self.log.log_end_offset(), |next| next.offset);
        Some((found.term, end))
    }

    /// Notes the term of an entry appended at `index`, starting at `offset`.
    fn note_term(&mut self, term: u64, index: u64, offset: i64) -> bool {
        if self.epochs.last().is_some_and(|e| e.term >= term) {
            return false;
        }
        self.epochs.push(Epoch {
            term,
            index,
            offset,
        });
        true
    }

    /// Appends entries from Raft, first dropping any from the first one's index on (a leader's
    /// log wins over what a follower had not committed). Batches must continue the log exactly
    /// (the leader assigned their offsets from the same log); they are stamped with their
    /// entry's term as leader epoch. Durable once the log is fsynced; the state file, when
    /// record-less entries or a cut require it, is written durably here, before the batches.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<Appended, BrokerError> {
        let mut appended = Appended::default();
        let Some(first) = entries.first() else {
            return Ok(appended);
        };
        let mut write = false;
        if first.index <= self.last() {
            self.truncate_from(first.index)?;
            appended.truncated = true;
            write = true;
        } else if first.index != self.last() + 1 {
            return Err(corrupt(
                &self.path,
                format!("an append at {} after {}", first.index, self.last()),
            ));
        }
        let mut position = self.log.log_end_offset();
        let mut batches = Vec::new();
        for entry in entries {
            write |= self.note_term(entry.term, entry.index, position);
            if entry.context.as_ref() == SPAN_PART {
                // Counted in the span batch that follows; nothing to store.
                self.slots.push_back(Slot::SpanPart {
                    at: position,
                    term: entry.term,
                });
            } else if is_batch(entry) {
                let header = BatchHeader::parse(&entry.data)
                    .map_err(|e| corrupt(&self.path, format!("entry {}: {e}", entry.index)))?;
                if header.base_offset != position {
                    return Err(corrupt(
                        &self.path,
                        format!(
                            "entry {} holds offset {} where the log continues at {position}",
                            entry.index, header.base_offset
                        ),
                    ));
                }
                let next = header.next_offset();
                self.slots.push_back(Slot::Batch {
                    base: position,
                    next,
                    term: entry.term,
                });
                batches.push(entry);
                position = next;
            } else {
                self.slots.push_back(Slot::Extra {
                    at: position,
                    term: entry.term,
                });
                let _ = self.extras.insert(
                    entry.index,
                    Extra {
                        index: entry.index,
                        term: entry.term,
                        kind: entry.get_entry_type().value(),
                        offset: position,
                        data: entry.data.to_vec(),
                        context: entry.context.to_vec(),
                    },
                );
                write = true;
            }
        }
        if write {
            self.write()?;
        }
        let now = now_ms();
        for entry in batches {
            let mut bytes = entry.data.to_vec();
            let term = i32::try_from(entry.term).unwrap_or(i32::MAX);
            set_partition_leader_epoch(&mut bytes, term).map_err(|e| corrupt(&self.path, e))?;
            let info = self.log.append(&mut bytes, now)?;
            let mut header = BatchHeader::parse(&bytes).map_err(|e| corrupt(&self.path, e))?;
            header.base_offset = info.base_offset;
            appended.batches.push((entry.index, header));
        }
        Ok(appended)
    }

    /// Drops entries `index..`: only ever uncommitted ones.
    fn truncate_from(&mut self, index: u64) -> Result<(), BrokerError> {
        if index <= self.hard.commit || index < self.first {
            return Err(corrupt(
                &self.path,
                format!(
                    "asked to drop entries from {index}, but entries up to {} are committed",
                    self.hard.commit
                ),
            ));
        }
        let Some(slot) = self.slot(index) else {
            return Ok(());
        };
        self.log.truncate_to(slot.start())?;
        let keep = usize::try_from(index - self.first).unwrap_or(usize::MAX);
        self.slots.truncate(keep);
        let _ = self.extras.split_off(&index);
        self.epochs.retain(|e| e.index < index);
        Ok(())
    }

    /// Takes Raft's hard state; a new term or vote is written (durably) at once, since
    /// messages that depend on it are about to go. A new commit index is kept for later.
    pub(crate) fn set_hard_state(&mut self, hard: &HardState) -> Result<(), BrokerError> {
        let vote_changed = hard.term != self.hard.term || hard.vote != self.hard.vote;
        self.hard = hard.clone();
        if vote_changed { self.write() } else { Ok(()) }
    }

    /// Raises the commit index (written lazily: a lower one after a crash is learned again).
    pub(crate) fn set_commit(&mut self, commit: u64) {
        self.hard.commit = self.hard.commit.max(commit);
    }

    /// Writes the state file (durably).
    pub(crate) fn write(&mut self) -> Result<(), BrokerError> {
        let persisted = Persisted {
            term: self.hard.term,
            vote: self.hard.vote,
            commit: self.hard.commit,
            voters: self.conf.voters.clone(),
            conf: Membership::of(&self.conf),
            conf_index: self.conf_index,
            anchor: self.anchor,
            extras: self
                .extras
                .range(self.anchor.index + 1..)
                .map(|(_, e)| e.clone())
                .collect(),
            epochs: self.epochs.clone(),
        };
        write_state(&self.path, &persisted)
    }

    /// After the log cleaner swapped a cleaned segment in for `base..next`: the entries there
    /// are now the new segment's batches, a span batch standing for several (see
    /// `rill_log::cleaner::span_entries`), so their slots are taken anew from it. The count
    /// of entries never changes (entries without records keep their slots); if it did, the
    /// log and the Raft log would disagree, and that is an error.
    pub(crate) fn cleaned(&mut self, base: i64, next: i64) -> Result<(), BrokerError> {
        let mut expanded = VecDeque::new();
        let mut offset = base;
        'read: while offset < next {
            let bytes = read_from(&self.log, offset)?;
            let mut advanced = false;
            for batch in Batches::new(&bytes) {
                let header = *batch.map_err(|e| corrupt(&self.path, e))?.header();
                if header.base_offset >= next {
                    break 'read;
                }
                let term = u64::try_from(header.partition_leader_epoch).unwrap_or(0);
                let at = header.base_offset;
                for _ in 1..rill_log::cleaner::span_entries(&header) {
                    expanded.push_back(Slot::SpanPart { at, term });
                }
                expanded.push_back(Slot::Batch {
                    base: at,
                    next: header.next_offset(),
                    term,
                });
                offset = header.next_offset();
                advanced = true;
            }
            if !advanced {
                break;
            }
        }
        let mut mismatch = None;
        for (k, slot) in self.slots.iter_mut().enumerate() {
            let inside = match *slot {
                Slot::Extra { .. } => false,
                Slot::Batch { base: b, .. } => (base..next).contains(&b),
                Slot::SpanPart { at, .. } => (base..next).contains(&at),
            };
            if !inside {
                continue;
            }
            match expanded.pop_front() {
                Some(new) if new.term() == slot.term() => *slot = new,
                other => {
                    mismatch = Some((k, other));
                    break;
                }
            }
        }
        if mismatch.is_some() || !expanded.is_empty() {
            return Err(corrupt(
                &self.path,
                format!(
                    "the cleaned segment at {base}..{next} does not hold the entries the Raft \
                     log counts there ({mismatch:?}, {} left)",
                    expanded.len()
                ),
            ));
        }
        Ok(())
    }

    /// The offsets that an entry without records sits just before: a log cleaner's span
    /// batch must not reach across one (its entries would no longer be consecutive).
    pub(crate) fn record_less_offsets(&self) -> std::collections::HashSet<i64> {
        self.extras.values().map(|e| e.offset).collect()
    }

    /// Forgets the entries whose batches retention (or DeleteRecords) removed from the log:
    /// Raft sees them as compacted, and the anchor moves to the new log start.
    pub(crate) fn forget_below_log_start(&mut self) -> Result<(), BrokerError> {
        let start = self.log.log_start_offset();
        let mut moved = false;
        while let Some(slot) = self.slots.front().copied() {
            // A batch still holding offsets at or above the start stays (DeleteRecords may cut
            // inside one); so does a record-less entry at the start; a span's parts go only
            // with their span batch (the first slot that is not a part).
            let judged = match slot {
                Slot::SpanPart { .. } => self
                    .slots
                    .iter()
                    .find(|s| !matches!(s, Slot::SpanPart { .. }))
                    .copied()
                    .unwrap_or(slot),
                other => other,
            };
            if judged.end() > start
                || (judged.end() == start && matches!(judged, Slot::Extra { .. }))
            {
                break;
            }
            let _ = self.slots.pop_front();
            self.before_term = slot.term();
            let _ = self.extras.remove(&self.first);
            self.first += 1;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
        self.anchor = Anchor {
            index: self.first - 1,
            term: self.before_term,
            offset: self.slots.front().map_or(start, |s| s.start()),
        };
        self.write()
    }

    /// Installs a snapshot from the leader: this replica is behind the leader's log start, so
    /// its log restarts, empty, where the leader's starts, and the entries after come as usual.
    pub(crate) fn install(&mut self, snapshot: &Snapshot) -> Result<(), BrokerError> {
        let meta = snapshot.get_metadata();
        let about: SnapshotData = serde_json::from_slice(&snapshot.data)
            .map_err(|e| corrupt(&self.path, format!("a snapshot from the leader: {e}")))?;
        self.log.start_at(about.offset)?;
        self.anchor = Anchor {
            index: meta.index,
            term: meta.term,
            offset: about.offset,
        };
        self.first = meta.index + 1;
        self.before_term = meta.term;
        self.slots.clear();
        self.extras.clear();
        self.epochs = about.epochs;
        self.conf = meta.get_conf_state().clone();
        self.conf_index = about.conf_index;
        self.hard.commit = self.hard.commit.max(meta.index);
        self.hard.term = self.hard.term.max(meta.term);
        self.write()
    }

    /// Entries `low..high`, at most `max_size` bytes of data (at least one entry). With
    /// `data` false, batches come without their bytes (Raft only needs index and term then).
    fn read(
        &self,
        low: u64,
        high: u64,
        max_size: u64,
        data: bool,
    ) -> Result<Vec<Entry>, BrokerError> {
        let mut entries = Vec::new();
        let mut size = 0u64;
        let mut index = low;
        // Bytes read ahead from the log, and the offset they start at.
        let mut buffer = Bytes::new();
        let mut buffer_at = 0i64;
        while index < high {
            let Some(slot) = self.slot(index) else { break };
            let mut entry = Entry {
                index,
                term: slot.term(),
                ..Entry::default()
            };
            match slot {
                Slot::Extra { .. } => {
                    if let Some(extra) = self.extras.get(&index) {
                        entry.set_entry_type(
                            EntryType::from_i32(extra.kind).unwrap_or(EntryType::EntryNormal),
                        );
                        entry.data = extra.data.clone().into();
                        entry.context = extra.context.clone().into();
                    }
                }
                Slot::SpanPart { .. } => {
                    entry.context = SPAN_PART.to_vec().into();
                }
                Slot::Batch { base, .. } if data => {
                    let bytes = self.batch_bytes(base, &mut buffer, &mut buffer_at)?;
                    entry.data = bytes;
                }
                Slot::Batch { .. } => {}
            }
            size += entry.data.len() as u64;
            if !entries.is_empty() && size > max_size {
                break;
            }
            entries.push(entry);
            index += 1;
        }
        Ok(entries)
    }

    /// The bytes of the batch at `base`, from `buffer` if it holds it, else read ahead.
    fn batch_bytes(
        &self,
        base: i64,
        buffer: &mut Bytes,
        buffer_at: &mut i64,
    ) -> Result<Bytes, BrokerError> {
        for _ in 0..2 {
            if *buffer_at == base && !buffer.is_empty() {
                let header = BatchHeader::parse(buffer).map_err(|e| corrupt(&self.path, e))?;
                let len = header.total_len();
                if len <= buffer.len() {
                    let bytes = buffer.split_to(len);
                    *buffer_at = header.next_offset();
                    return Ok(bytes);
                }
            }
            *buffer = read_from(&self.log, base).inspect_err(|err| {
                if matches!(err, BrokerError::Log(rill_log::LogError::Corrupt { .. })) {
                    self.mark_corrupt();
                }
            })?;
            *buffer_at = base;
        }
        Err(corrupt(
            &self.path,
            format!("no batch at offset {base} where the replica expects one"),
        ))
    }
}

/// Whether an entry type is a configuration change.
fn is_conf_change(kind: i32) -> bool {
    kind == EntryType::EntryConfChange.value() || kind == EntryType::EntryConfChangeV2.value()
}

/// Whether an entry is a record batch (a DeleteRecords entry has a context, a new leader's and
/// a configuration change are not normal or have no data).
fn is_batch(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal
        && !entry.data.is_empty()
        && entry.context.is_empty()
}

fn write_state(path: &Path, persisted: &Persisted) -> Result<(), BrokerError> {
    let bytes = serde_json::to_vec(persisted).map_err(|e| BrokerError::Internal(e.to_string()))?;
    write_durably(path, &bytes)
}

/// Rebuilds the entries after `anchor` from the log and the record-less entries.
fn walk(
    log: &Log,
    anchor: Anchor,
    extras: &BTreeMap<u64, Extra>,
) -> Result<VecDeque<Slot>, BrokerError> {
    let mut slots = VecDeque::new();
    let mut index = anchor.index + 1;
    let mut position = anchor.offset;
    let end = log.log_end_offset();
    let mut pending: VecDeque<BatchHeader> = VecDeque::new();
    let mut read_at = position;
    loop {
        if let Some(extra) = extras.get(&index) {
            if extra.offset != position {
                break;
            }
            slots.push_back(Slot::Extra {
                at: position,
                term: extra.term,
            });
            index += 1;
            continue;
        }
        if pending.is_empty() && read_at < end {
            let bytes = read_from(log, read_at)?;
            for batch in Batches::new(&bytes) {
                let Ok(batch) = batch else { break };
                pending.push_back(*batch.header());
                read_at = batch.header().next_offset();
            }
        }
        match pending.pop_front() {
            Some(header) if header.base_offset == position => {
                let term = u64::try_from(header.partition_leader_epoch).unwrap_or(0);
                // A span batch stands for several entries: its parts, then itself.
                let entries = rill_log::cleaner::span_entries(&header);
                for _ in 1..entries {
                    slots.push_back(Slot::SpanPart { at: position, term });
                }
                position = header.next_offset();
                slots.push_back(Slot::Batch {
                    base: header.base_offset,
                    next: position,
                    term,
                });
                index += entries;
            }
            _ => break,
        }
    }
    Ok(slots)
}

/// The log's batches from the one holding `offset` on, about a MiB: below the log start (a
/// batch DeleteRecords cut inside, which stays whole), from the batch holding the log start.
fn read_from(log: &Log, offset: i64) -> Result<Bytes, BrokerError> {
    Ok(log.read(offset.max(log.log_start_offset()), 1 << 20)?)
}

fn store_error(err: BrokerError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(err)))
}

impl Storage for ReplicaStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard.clone(),
            conf_state: self.conf.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        // Only entries sent to a follower need their records; applying one only advances the
        // high watermark.
        self.read(low, high, max, context.can_async())
            .map_err(|err| {
                if self.corrupt() {
                    // Nothing is sent from a corrupt log (raft-rs would send a snapshot
                    // instead); the owner takes the replica out of its group.
                    raft::Error::Store(StorageError::LogTemporarilyUnavailable)
                } else {
                    store_error(err)
                }
            })
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx + 1 == self.first {
            return Ok(self.before_term);
        }
        if idx < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.slot(idx)
            .map(Slot::term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// What a follower behind the log start is sent: where the log starts (the anchor) and
    /// the epochs up to there; the records after come as ordinary entries.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let data = SnapshotData {
            offset: self.anchor.offset,
            epochs: self
                .epochs
                .iter()
                .filter(|e| e.index <= self.anchor.index)
                .copied()
                .collect(),
            conf_index: self.conf_index,
        };
        let data = serde_json::to_vec(&data)
            .map_err(|e| store_error(BrokerError::Internal(e.to_string())))?;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = self.anchor.index;
        meta.term = self.anchor.term;
        meta.set_conf_state(self.conf.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_log::LogConfig;

    fn open(dir: &Path, voters: &[u64]) -> Result<ReplicaStore, Box<dyn std::error::Error>> {
        let log = Log::open(dir, LogConfig::default(), now_ms())?;
        Ok(ReplicaStore::open(log, voters)?)
    }

    fn entry(index: u64, kind: EntryType) -> Entry {
        let mut entry = Entry {
            index,
            term: 1,
            ..Entry::default()
        };
        entry.set_entry_type(kind);
        entry
    }

    /// The configuration (learners, a joint state) and the index of the last change it
    /// includes survive a reopen; a committed change not applied yet (a crash between the
    /// commit index written and the change applied) brings the applied index back before it.
    #[test]
    fn the_configuration_survives_a_reopen_and_an_unapplied_change_is_applied_again()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut store = open(dir.path(), &[1, 2, 3])?;
        assert!(store.created());
        assert_eq!(store.applied(), 0);
        let _ = store.append(&[
            entry(1, EntryType::EntryNormal),
            entry(2, EntryType::EntryConfChangeV2),
            entry(3, EntryType::EntryConfChangeV2),
        ])?;
        let mut conf = ConfState::default();
        conf.set_voters(vec![1, 2, 3, 4]);
        conf.set_voters_outgoing(vec![1, 2, 3]);
        conf.set_learners(vec![5]);
        conf.auto_leave = true;
        store.set_commit(3);
        store.set_conf(conf.clone(), 2)?;
        drop(store);

        let store = open(dir.path(), &[9])?;
        assert!(!store.created());
        assert_eq!(store.initial_state()?.conf_state, conf);
        assert_eq!(store.conf_index(), 2);
        // Entry 3 (a change) is committed but not applied: Raft starts applied at 2.
        assert_eq!(store.applied(), 2);
        Ok(())
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use rill_log::cleaner::{build_map, clean_group, groups, span_entries};
    use rill_log::{CleanRules, LogConfig, OffsetMap, Pass, Throttle};
    use rill_record::{BatchBuilder, RecordSpec};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        }
    }

    /// Entry `index` of `term`: a batch of one record of key `key`, at offset `offset`.
    fn batch_entry(
        index: u64,
        term: u64,
        offset: i64,
        key: &str,
    ) -> Result<Entry, Box<dyn std::error::Error>> {
        let mut bytes = BatchBuilder::new()
            .base_offset(offset)
            .record(RecordSpec::new(1_000).key(key.to_owned()).value("v"))
            .build()?
            .to_vec();
        set_partition_leader_epoch(&mut bytes, i32::try_from(term)?)?;
        Ok(Entry {
            index,
            term,
            data: bytes.into(),
            ..Entry::default()
        })
    }

    /// A replica log of 60 single-record batches in terms 1 and 2, with a configuration change
    /// (an entry without records) inside term 1, cleaned as a cleaner thread cleans a
    /// replicated log.
    fn cleaned_store(dir: &Path) -> Result<(ReplicaStore, u64), Box<dyn std::error::Error>> {
        let log = Log::open(dir, config(), now_ms())?;
        let mut store = ReplicaStore::open(log, &[1, 2, 3])?;
        let mut entries = Vec::new();
        let mut offset = 0;
        for index in 1..=61u64 {
            let term = if index <= 45 { 1 } else { 2 };
            if index == 31 {
                let mut change = Entry {
                    index,
                    term,
                    ..Entry::default()
                };
                change.set_entry_type(EntryType::EntryConfChangeV2);
                entries.push(change);
                continue;
            }
            entries.push(batch_entry(
                index,
                term,
                offset,
                &format!("k{}", index % 3),
            )?);
            offset += 1;
        }
        let _ = store.append(&entries)?;
        store.set_commit(61);
        store.write()?;
        store.log_mut().roll()?;
        let breaks = store.record_less_offsets();
        let throttle = Throttle::new(f64::INFINITY);
        let segments = store.log().sealed_segments();
        let mut map = OffsetMap::with_budget(1 << 20);
        let dir = store.log().dir().to_path_buf();
        let map_end = build_map(&dir, &segments, 0, &[], &mut map, &throttle)?;
        let rules = CleanRules {
            map_end,
            keep_every_batch: true,
            span_breaks: breaks,
            index_interval: 4096,
            delete_retention_ms: 1_000_000,
            ..CleanRules::default()
        };
        let mut pass = Pass::default();
        for group in groups(&segments, store.log().config().segment_bytes) {
            if let Some(cleaned) = clean_group(&dir, &group, &map, &rules, &throttle, &mut pass)? {
                // As the owner does: the swap, then the entries counted anew.
                assert!(store.log_mut().swap_cleaned(&cleaned)?);
                store.cleaned(cleaned.base_offset, cleaned.next_offset)?;
            }
        }
        Ok((store, 61))
    }

    /// After cleaning, span batches stand for the entries of the batches they replaced: a
    /// reopened replica finds every entry at its index and term, reads send a follower the
    /// parts and the span, and the follower's log, reopened, counts the same entries.
    #[test]
    fn span_batches_keep_every_raft_entry() -> TestResult {
        let leader_dir = tempfile::tempdir()?;
        let (store, last) = cleaned_store(leader_dir.path())?;
        // The live store, right after the swaps, reads the same entries as a reopened one.
        let live = store.read(1, last + 1, u64::MAX, true)?;
        assert_eq!(live.len(), 61);
        let log = store.into_log();
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20)?;
            for batch in Batches::new(&bytes) {
                let header = *batch?.header();
                offset = header.next_offset();
                headers.push(header);
            }
        }
        let entries: u64 = headers.iter().map(span_entries).sum();
        assert_eq!(entries, 60, "the batches stand for every batch entry");
        assert!(
            headers.len() < 20,
            "{} batches after cleaning",
            headers.len()
        );
        // Reopened: the same entries, terms and end.
        let leader = ReplicaStore::open(log, &[1, 2, 3])?;
        assert_eq!(leader.last_index()?, last);
        for index in 1..=last {
            let want = if index <= 45 { 1 } else { 2 };
            assert_eq!(leader.term(index)?, want, "term of entry {index}");
        }
        assert_eq!(leader.end_of(last), Some(60));
        // A follower with nothing gets every entry, and counts them the same after a reopen.
        let sent = leader.read(1, last + 1, u64::MAX, true)?;
        assert_eq!(sent.len(), 61);
        assert_eq!(
            sent, live,
            "the live store and the reopened one send the same entries"
        );
        assert!(
            sent.iter().any(|e| e.context.as_ref() == SPAN_PART),
            "no span part was sent"
        );
        let follower_dir = tempfile::tempdir()?;
        let log = Log::open(follower_dir.path(), config(), now_ms())?;
        let mut follower = ReplicaStore::open(log, &[1, 2, 3])?;
        let _ = follower.append(&sent)?;
        follower.set_commit(last);
        follower.write()?;
        assert_eq!(follower.last_index()?, last);
        let log = follower.into_log();
        let follower = ReplicaStore::open(log, &[1, 2, 3])?;
        assert_eq!(follower.last_index()?, last);
        for index in 1..=last {
            assert_eq!(follower.term(index)?, leader.term(index)?, "entry {index}");
        }
        assert_eq!(follower.end_of(last), Some(60));
        Ok(())
    }
}
