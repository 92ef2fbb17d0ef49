//! Partition owners: one place mutates each partition's [`rill_log::Log`]; everyone else talks
//! to it by message (CSP). Owners are not threads: they are state machines (`owner.rs`) that a
//! few storage threads (`storage.rs`) run, the way goroutines run on a few Ms. Network tasks
//! never touch the disk; a slow disk stalls only the partitions of its storage thread, never a
//! socket.
//!
//! A storage thread drains its queue in rounds: it appends every batch that arrived (for any of
//! its partitions), then fsyncs each partition with `acks=all` batches waiting, once for all of
//! them (group commit), the round's fsyncs side by side, before it answers them. Reads and
//! offset lookups are answered as they come. Time-based work (interval flushes, rolls by age, retention, producer id
//! expiry) is scheduled by deadline: nothing wakes an idle partition until its next one.

mod owner;
pub(crate) mod replica;
mod storage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rill_log::{AbortedTxn, AppendInfo, LogConfig, TimestampOffset};
use rill_protocol::ErrorCode;
use rill_record::Marker;
use tokio::sync::{oneshot, watch};

use crate::idempotence::ProducerView;
use crate::metrics::TopicMetrics;

pub(crate) use owner::{DELETING_SUFFIX, OpenTxns};

pub(crate) use replica::{Outbox, ReplicaSpec};
pub(crate) use storage::{Router, Storage, parallel};

/// The offsets readers wait on, and the log's size, published by the owner after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) log_start: i64,
    /// The high watermark: the end readers see. With one replica it is the log end; on a
    /// replicated partition, the end of the last committed entry.
    pub(crate) high_watermark: i64,
    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// transaction not yet ended by a committed marker, if lower. read_committed readers stop
    /// here.
    pub(crate) last_stable: i64,
    /// The log end offset (ahead of the high watermark while entries wait for a majority).
    pub(crate) log_end: i64,
    /// Bytes in all segments (for metrics; it changes only when an offset does).
    pub(crate) size_bytes: u64,
    /// A replicated partition's leader epoch (its Raft term) while this replica leads it;
    /// `None` on a follower and on a partition with one replica.
    pub(crate) leading: Option<i32>,
    /// While leading a replicated partition: its in-sync replicas, a bit per position in its
    /// replica list.
    pub(crate) in_sync: u32,
    /// A replicated partition's data here failed its checks: this replica serves nothing more
    /// and waits to be repaired from the leader (the broker quarantines and reopens it).
    pub(crate) corrupt: bool,
}

/// What an owner counts: its topic's produce counters (`None` for the broker's internal logs)
/// and every fsync it does.
#[derive(Debug, Clone)]
pub(crate) struct OwnerMetrics {
    pub(crate) topic: Option<TopicMetrics>,
    pub(crate) fsync: prometheus::Histogram,
}

/// Which offset a ListOffsets query asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OffsetQuery {
    Earliest,
    Latest,
    /// Latest for a read_committed reader.
    LastStable,
    MaxTimestamp,
    Timestamp(i64),
}

/// The ListOffsets queries only the owner can answer: they read the log.
#[derive(Debug, Clone, Copy)]
enum TimeQuery {
    /// The record with the largest timestamp.
    Max,
    /// The first record at or after this timestamp.
    AtOrAfter(i64),
}

type Reply<T> = oneshot::Sender<Result<T, ErrorCode>>;

/// What a log cleaner needs from a partition's owner to clean it (see `crate::cleaner`).
#[derive(Debug, Clone)]
pub(crate) struct CleanPlan {
    pub(crate) dir: std::path::PathBuf,
    /// The sealed segments wholly below the last stable offset (and, replicated, the high
    /// watermark): nothing a reader could not see yet, nor an open transaction.
    pub(crate) segments: Vec<rill_log::SealedSegment>,
    /// Where the last pass ended.
    pub(crate) cleaned_to: i64,
    /// The aborted transactions of those segments.
    pub(crate) aborted: Vec<AbortedTxn>,
    /// Each producer's last batch (idempotence needs it).
    pub(crate) retain: std::collections::HashSet<i64>,
    /// A replicated partition: every batch keeps its place (its Raft entries are its batches).
    pub(crate) keep_every_batch: bool,
    /// Where the Raft log has entries without records: a span batch must not reach across.
    pub(crate) span_breaks: std::collections::HashSet<i64>,
    pub(crate) index_interval: u32,
    pub(crate) segment_bytes: u64,
}

#[derive(Debug)]
enum Command {
    Append {
        batch: BytesMut,
        /// Answer only once the batch is fsynced (one replica).
        durable: bool,
        /// `acks=all`: on a replicated partition, answer once a majority has the batch.
        acks_all: bool,
        /// Stamp the batch with the append time (the topic's `message.timestamp.type`).
        log_append_time: bool,
        reply: Reply<AppendInfo>,
    },
    Read {
        offset: i64,
        max_bytes: usize,
        reply: Reply<Bytes>,
    },
    ListOffset {
        query: TimeQuery,
        reply: Reply<Option<TimestampOffset>>,
    },
    DeleteRecords {
        before: i64,
        reply: Reply<i64>,
    },
    Configure(LogConfig),
    /// The transaction coordinator ends a transaction here: a marker for the producer, fenced
    /// by its epoch and the coordinator's, written as an `acks=all` append.
    WriteMarker {
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
        reply: Reply<AppendInfo>,
    },
    /// The coordinator confirmed that this partition is in the producer's open transaction
    /// (KIP-890): its next transactional batch may open the transaction here.
    Verified {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// A read_committed read: like `Read`, stopping at the last stable offset, with the
    /// aborted transactions that overlap what was read.
    ReadCommitted {
        offset: i64,
        max_bytes: usize,
        reply: Reply<(Bytes, Vec<AbortedTxn>)>,
    },
    /// The producers with state here (DescribeProducers), from the leader.
    DescribeProducers {
        reply: Reply<Vec<ProducerView>>,
    },
    /// OffsetForLeaderEpoch on a replicated partition: the largest epoch at or below this one
    /// with records here, and where its records end.
    EpochEnd {
        epoch: i32,
        reply: Reply<Option<(i32, i64)>>,
    },
    /// ElectLeaders: a replicated partition's leader hands leadership over to the replica on
    /// broker `to` (its preferred leader).
    TransferLeader {
        to: i32,
    },
    /// The partition's replica list changed (in the metadata).
    SetReplicas(Vec<i32>),
    /// A reassignment: the leader takes a step toward `target` and says whether the group is
    /// there (NOT_LEADER_OR_FOLLOWER on other replicas).
    Reassign {
        target: Vec<i32>,
        reply: Reply<bool>,
    },
    /// The log cleaner asks what it may clean.
    CleanPlan {
        reply: Reply<CleanPlan>,
    },
    /// The log cleaner's new segment, to swap in: whether it was (the segments it replaces
    /// may have gone meanwhile).
    SwapCleaned {
        cleaned: Box<rill_log::Cleaned>,
        reply: Reply<bool>,
    },
    /// The log cleaner's pass ended here.
    CleanedTo {
        offset: i64,
        reply: Reply<()>,
    },
}

/// The handle the rest of the broker holds for a partition: its storage thread's queue and the
/// offsets its owner publishes. Dropping the last handle closes the partition cleanly.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: i32,
    /// The owner's key on its storage thread.
    id: u64,
    queue: mpsc::Sender<storage::Message>,
    offsets: watch::Receiver<Offsets>,
    closed: AtomicBool,
    /// A replicated partition's entry in the router, removed when it closes.
    route: Option<(std::sync::Arc<Router>, (uuid::Uuid, i32))>,
    /// The producers with a transaction open here, as its owner publishes them.
    open_txns: OpenTxns,
}

impl Partition {
    pub(crate) fn offsets(&self) -> Offsets {
        *self.offsets.borrow()
    }

    /// Whether this is a replicated partition (led by whichever replica its group elects).
    pub(crate) fn is_replicated(&self) -> bool {
        self.route.is_some()
    }

    /// A receiver that wakes when new records arrive (for long-polling fetches).
    pub(crate) fn watch(&self) -> watch::Receiver<Offsets> {
        self.offsets.clone()
    }

    /// Hands a batch to the owner; the returned future resolves once it is appended (and
    /// fsynced, if `durable`; on a replicated partition with `acks_all`, once a majority of
    /// its replicas has it). The hand-off happens before this returns, so batches from one
    /// connection reach the log in the order they were handed off. With `log_append_time` the
    /// owner stamps the batch with the time it appends it, which the answer carries.
    pub(crate) fn append(
        &self,
        batch: BytesMut,
        durable: bool,
        acks_all: bool,
        log_append_time: bool,
    ) -> impl Future<Output = Result<AppendInfo, ErrorCode>> + use<> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Command::Append {
            batch,
            durable,
            acks_all,
            log_append_time,
            reply,
        });
        async move {
            sent?;
            rx.await.map_err(|_| ErrorCode::NotLeaderOrFollower)?
        }
    }

    /// Whether `producer_id` has a transaction open here at `epoch`, as the owner last
    /// published.
    pub(crate) fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.open_txns
            .read()
            .is_ok_and(|open| open.get(&producer_id) == Some(&epoch))
    }

    /// Writes a transaction marker for the producer (the coordinator ending its transaction
    /// here); resolves once it is durable (and, replicated, committed).
    pub(crate) async fn write_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
    ) -> Result<AppendInfo, ErrorCode> {
        self.ask(|reply| Command::WriteMarker {
            producer_id,
            producer_epoch,
            marker,
            reply,
        })
        .await
    }

    /// Tells the owner that the coordinator confirmed this partition is in the producer's
    /// open transaction; ordered before any append handed off after it.
    pub(crate) fn verified(&self, producer_id: i64, producer_epoch: i16) {
        let _ = self.send(Command::Verified {
            producer_id,
            producer_epoch,
        });
    }

    /// A read_committed read: the batches from `offset` below the last stable offset, and the
    /// aborted transactions overlapping them.
    pub(crate) async fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Bytes, Vec<AbortedTxn>), ErrorCode> {
        self.ask(|reply| Command::ReadCommitted {
            offset,
            max_bytes,
            reply,
        })
        .await
    }

    /// The producers with state in this partition (DescribeProducers).
    pub(crate) async fn describe_producers(&self) -> Result<Vec<ProducerView>, ErrorCode> {
        self.ask(|reply| Command::DescribeProducers { reply }).await
    }

    pub(crate) async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ErrorCode> {
        self.ask(|reply| Command::Read {
            offset,
            max_bytes,
            reply,
        })
        .await
    }

    /// The offset a ListOffsets query asks for. The log's start and end are what the owner last
    /// published, so those need no round trip to it.
    pub(crate) async fn list_offset(
        &self,
        query: OffsetQuery,
    ) -> Result<Option<TimestampOffset>, ErrorCode> {
        let published = |offset| {
            Ok(Some(TimestampOffset {
                offset,
                timestamp: -1,
            }))
        };
        let query = match query {
            OffsetQuery::Earliest => return published(self.offsets().log_start),
            OffsetQuery::Latest => return published(self.offsets().high_watermark),
            OffsetQuery::LastStable => return published(self.offsets().last_stable),
            OffsetQuery::MaxTimestamp => TimeQuery::Max,
            OffsetQuery::Timestamp(t) => TimeQuery::AtOrAfter(t),
        };
        self.ask(|reply| Command::ListOffset { query, reply }).await
    }

    pub(crate) async fn delete_records(&self, before: i64) -> Result<i64, ErrorCode> {
        self.ask(|reply| Command::DeleteRecords { before, reply })
            .await
    }

    /// Kafka's OffsetForLeaderEpoch answer for a replicated partition this broker leads: the
    /// largest leader epoch at or below `epoch` and the offset its records end at; `None` when
    /// every epoch known is above it.
    pub(crate) async fn end_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, ErrorCode> {
        self.ask(|reply| Command::EpochEnd { epoch, reply }).await
    }

    /// Asks this broker's replica, if it leads, to hand leadership over to the replica on
    /// broker `to` (raft-rs's leader transfer); nothing happens otherwise. The metadata shows
    /// the new leader once it announces itself.
    pub(crate) fn transfer_leader(&self, to: i32) {
        let _ = self.send(Command::TransferLeader { to });
    }

    /// Tells the replica its partition's replica list (a reassignment began or ended).
    pub(crate) fn set_replicas(&self, replicas: Vec<i32>) {
        let _ = self.send(Command::SetReplicas(replicas));
    }

    /// Asks this broker's replica, if it leads, to take the next step of moving the group to
    /// `target` (see [`replica::Replica::reassign`]); true once the group is there.
    pub(crate) async fn reassign(&self, target: Vec<i32>) -> Result<bool, ErrorCode> {
        self.ask(|reply| Command::Reassign { target, reply }).await
    }

    /// What the log cleaner may clean (from a cleaner's thread: blocking).
    pub(crate) fn clean_plan_blocking(&self) -> Result<CleanPlan, ErrorCode> {
        self.ask_blocking(|reply| Command::CleanPlan { reply })
    }

    /// Swaps in a segment the log cleaner wrote (blocking); whether it was.
    pub(crate) fn swap_cleaned_blocking(
        &self,
        cleaned: rill_log::Cleaned,
    ) -> Result<bool, ErrorCode> {
        self.ask_blocking(|reply| Command::SwapCleaned {
            cleaned: Box::new(cleaned),
            reply,
        })
    }

    /// Records where the log cleaner's pass ended (blocking).
    pub(crate) fn cleaned_to_blocking(&self, offset: i64) -> Result<(), ErrorCode> {
        self.ask_blocking(|reply| Command::CleanedTo { offset, reply })
    }

    pub(crate) fn configure(&self, config: LogConfig) {
        let _ = self.send(Command::Configure(config));
    }

    fn send(&self, command: Command) -> Result<(), ErrorCode> {
        self.queue
            .send(storage::Message::Command {
                id: self.id,
                command,
            })
            .map_err(|_| ErrorCode::NotLeaderOrFollower)
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorCode> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply))?;
        rx.await.map_err(|_| ErrorCode::NotLeaderOrFollower)?
    }

    /// [`Self::ask`] from a thread outside the runtime.
    fn ask_blocking<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ErrorCode> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply))?;
        rx.blocking_recv()
            .map_err(|_| ErrorCode::NotLeaderOrFollower)?
    }

    /// Asks the owner to close the log cleanly (or delete it); `done` hears when it has.
    /// Commands sent after this get NOT_LEADER_OR_FOLLOWER.
    fn start_close(&self, delete: bool, done: Option<mpsc::Sender<()>>) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            if let Some((router, key)) = &self.route {
                router.remove(*key, self.id);
            }
            let _ = self.queue.send(storage::Message::Close {
                id: self.id,
                delete,
                done,
            });
        }
    }

    /// Closes the log cleanly (or deletes it) and waits until it is. Blocking: call it from a
    /// blocking context. [`Storage::close_all`] closes many at once.
    pub(crate) fn close_blocking(&self, delete: bool) {
        Storage::close_all([self], delete);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.start_close(false, None);
    }
}

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
