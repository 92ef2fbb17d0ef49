//! The record accumulator: per-partition queues of batches, filled up to `batch_size` and
//! released after `linger`. Sans-io: the time is passed in, and the sender task decides what
//! to do with what is ready.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::Pending;

/// A topic and partition.
pub(crate) type TopicPartition = (String, i32);

/// Records bound for one partition, sent together as one record batch.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    pub(crate) tp: TopicPartition,
    pub(crate) records: Vec<Pending>,
    /// Estimated encoded size of the records.
    pub(crate) size: usize,
    pub(crate) created: Instant,
    /// When the oldest record in it was handed to the producer, kept as records are added:
    /// the delivery timeout is checked against it on every turn of the sender loop, which
    /// must not walk every queued record.
    oldest: Instant,
    /// Sends so far.
    pub(crate) attempts: u32,
    /// Not to be sent before this (retry backoff).
    pub(crate) retry_at: Option<Instant>,
    /// The idempotent producer's sequence of the first record, once assigned (kept across
    /// retries so the broker recognises a retry).
    pub(crate) base_sequence: Option<i32>,
    /// No more records go in (it was full, or it has been sent).
    pub(crate) closed: bool,
}

impl ProducerBatch {
    /// When the oldest record in it was handed to the producer.
    pub(crate) fn oldest(&self) -> Instant {
        self.oldest
    }
}

#[derive(Debug, Default)]
struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    in_flight: usize,
    /// The base sequences of the batches in flight (idempotence).
    in_flight_sequences: Vec<i32>,
}

impl PartitionQueue {
    fn forget_sequence(&mut self, sequence: Option<i32>) {
        if let Some(at) =
            sequence.and_then(|s| self.in_flight_sequences.iter().position(|x| *x == s))
        {
            let _ = self.in_flight_sequences.swap_remove(at);
        }
    }
}

/// Per-partition batch queues.
#[derive(Debug)]
pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    queues: HashMap<TopicPartition, PartitionQueue>,
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration) -> Self {
        Self {
            batch_size,
            linger,
            queues: HashMap::new(),
        }
    }

    /// Adds a record to the partition's open batch, or to a new one when it would overflow
    /// `batch_size` (a record larger than that gets a batch of its own). Returns `true` when a
    /// batch was closed to make room (the sticky partitioner moves on).
    pub(crate) fn append(&mut self, tp: TopicPartition, pending: Pending, now: Instant) -> bool {
        let size = pending.size;
        let queue = self.queues.entry(tp.clone()).or_default();
        if let Some(open) = queue.batches.back_mut().filter(|b| !b.closed) {
            if open.size + size <= self.batch_size || open.records.is_empty() {
                open.size += size;
                open.oldest = open.oldest.min(pending.enqueued);
                open.records.push(pending);
                return false;
            }
            open.closed = true;
        }
        let closed_one = !queue.batches.is_empty();
        queue.batches.push_back(ProducerBatch {
            tp,
            oldest: pending.enqueued,
            records: vec![pending],
            size,
            created: now,
            attempts: 0,
            retry_at: None,
            base_sequence: None,
            closed: size >= self.batch_size,
        });
        closed_one
    }

    fn sendable(&self, batch: &ProducerBatch, queued: usize, now: Instant, flush: bool) -> bool {
        if batch.retry_at.is_some_and(|at| at > now) {
            return false;
        }
        flush
            || batch.closed
            || batch.attempts > 0
            || queued > 1
            || batch.size >= self.batch_size
            || now >= batch.created + self.linger
    }

    /// Partitions whose first batch may be sent now, given at most `max_in_flight` batches in
    /// flight per partition (1 while a retried batch heads the queue, so that retries go out
    /// alone and in order). `flush` ignores `linger`.
    pub(crate) fn ready(
        &self,
        now: Instant,
        flush: bool,
        max_in_flight: usize,
    ) -> Vec<TopicPartition> {
        let mut ready: Vec<TopicPartition> = self
            .queues
            .iter()
            .filter(|(_, q)| {
                let Some(front) = q.batches.front() else {
                    return false;
                };
                let limit = if front.attempts > 0 { 1 } else { max_in_flight };
                q.in_flight < limit && self.sendable(front, q.batches.len(), now, flush)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        ready.sort();
        ready
    }

    /// The earliest instant at which a batch of a partition `sendable` allows becomes
    /// sendable by time (linger or backoff).
    pub(crate) fn next_wakeup(
        &self,
        sendable: impl Fn(&TopicPartition) -> bool,
    ) -> Option<Instant> {
        self.queues
            .iter()
            .filter(|(tp, _)| sendable(tp))
            .filter_map(|(_, q)| q.batches.front())
            .map(|b| b.retry_at.unwrap_or(b.created + self.linger))
            .min()
    }

    /// Takes the partition's first batch to send it; it counts as in flight until
    /// [`Accumulator::done`] or [`Accumulator::requeue`].
    pub(crate) fn take(&mut self, tp: &TopicPartition) -> Option<ProducerBatch> {
        let queue = self.queues.get_mut(tp)?;
        let mut batch = queue.batches.pop_front()?;
        batch.closed = true;
        queue.in_flight += 1;
        Some(batch)
    }

    /// A batch taken with [`Accumulator::take`] went out with this base sequence.
    pub(crate) fn sent(&mut self, tp: &TopicPartition, sequence: i32) {
        if let Some(queue) = self.queues.get_mut(tp) {
            queue.in_flight_sequences.push(sequence);
        }
    }

    /// A batch taken with [`Accumulator::take`] (with this base sequence, if any) is finished
    /// (delivered or failed for good).
    pub(crate) fn done(&mut self, tp: &TopicPartition, sequence: Option<i32>) {
        if let Some(queue) = self.queues.get_mut(tp) {
            queue.forget_sequence(sequence);
            queue.in_flight = queue.in_flight.saturating_sub(1);
            if queue.in_flight == 0 && queue.batches.is_empty() {
                let _ = self.queues.remove(tp);
            }
        }
    }

    /// Puts a batch taken with [`Accumulator::take`] back for a retry at `retry_at`, before
    /// every batch with a later sequence (or none yet), so that order is kept.
    pub(crate) fn requeue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        let queue = self.queues.entry(batch.tp.clone()).or_default();
        queue.in_flight = queue.in_flight.saturating_sub(1);
        let seq = batch.base_sequence;
        queue.forget_sequence(seq);
        let at = queue
            .batches
            .iter()
            .position(|b| match (b.base_sequence, seq) {
                (None, _) => true,
                (Some(theirs), Some(ours)) => theirs > ours,
                (Some(_), None) => false,
            })
            .unwrap_or(queue.batches.len());
        queue.batches.insert(at, batch);
    }

    /// Whether the partition has a batch with a sequence below `seq` queued (an earlier batch
    /// being retried) or still in flight (an earlier batch sent to a leader that has not
    /// answered yet, e.g. the previous one of a partition whose leader moved): either explains
    /// an `OUT_OF_ORDER_SEQUENCE_NUMBER`, which is then retried, as Kafka's producer does.
    pub(crate) fn has_earlier(&self, tp: &TopicPartition, seq: i32) -> bool {
        self.queues.get(tp).is_some_and(|q| {
            q.in_flight_sequences.iter().any(|s| *s < seq)
                || q.batches
                    .iter()
                    .any(|b| b.base_sequence.is_some_and(|s| s < seq))
        })
    }

    /// Removes and returns the queued (not in-flight) batches whose oldest record was handed
    /// over at or before `deadline`.
    pub(crate) fn expire(&mut self, older_than: Instant) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for queue in self.queues.values_mut() {
            // Called on every turn of the sender loop: only move batches around when one has
            // expired.
            if !queue.batches.iter().any(|b| b.oldest <= older_than) {
                continue;
            }
            let (old, keep): (Vec<_>, Vec<_>) = queue
                .batches
                .drain(..)
                .partition(|b| b.oldest() <= older_than);
            queue.batches = keep.into();
            expired.extend(old);
        }
        if !expired.is_empty() {
            self.queues
                .retain(|_, q| q.in_flight > 0 || !q.batches.is_empty());
        }
        expired
    }

    /// Removes and returns the queued batches never sent (a batch being retried stays: the
    /// broker may have it, and its outcome must be known).
    pub(crate) fn take_unsent(&mut self) -> Vec<ProducerBatch> {
        let mut unsent = Vec::new();
        for queue in self.queues.values_mut() {
            if !queue.batches.iter().any(|b| b.attempts == 0) {
                continue;
            }
            let (never, sent): (Vec<_>, Vec<_>) =
                queue.batches.drain(..).partition(|b| b.attempts == 0);
            queue.batches = sent.into();
            unsent.extend(never);
        }
        if !unsent.is_empty() {
            self.queues
                .retain(|_, q| q.in_flight > 0 || !q.batches.is_empty());
        }
        unsent
    }

    /// Forgets every assigned sequence (after a new producer id): batches get new ones when
    /// next sent, in queue order.
    pub(crate) fn reset_sequences(&mut self) {
        for queue in self.queues.values_mut() {
            queue.in_flight_sequences.clear();
            for batch in &mut queue.batches {
                batch.base_sequence = None;
            }
        }
    }

    /// Batches in flight, over all partitions.
    pub(crate) fn in_flight(&self) -> usize {
        self.queues.values().map(|q| q.in_flight).sum()
    }

    /// No batch queued or in flight.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::{ProducerRecord, Reply};

    fn pending(size: usize, now: Instant) -> Pending {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        Pending {
            id: 0,
            record: ProducerRecord::new("t").value(vec![0; size]),
            reply: Reply::Sync(tx),
            enqueued: now,
            timestamp: 0,
            size,
        }
    }

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn linger_then_ready_and_batch_size_splits() {
        let now = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_millis(5));
        assert!(!acc.append(tp(0), pending(40, now), now));
        assert!(!acc.append(tp(0), pending(40, now), now));
        assert!(acc.ready(now, false, 5).is_empty(), "lingering");
        assert_eq!(acc.ready(now, true, 5), [tp(0)], "flush ignores linger");
        assert_eq!(
            acc.next_wakeup(|_| true),
            Some(now + Duration::from_millis(5))
        );
        assert_eq!(acc.next_wakeup(|_| false), None);
        assert_eq!(acc.ready(now + Duration::from_millis(5), false, 5), [tp(0)]);
        // The third record does not fit: a new batch, and the first becomes sendable at once.
        assert!(acc.append(tp(0), pending(40, now), now));
        assert_eq!(acc.ready(now, false, 5), [tp(0)]);
        let first = acc.take(&tp(0)).map(|b| b.records.len());
        assert_eq!(first, Some(2));
        assert!(acc.ready(now, false, 5).is_empty());
        // A record larger than batch_size gets a batch of its own, closed at once.
        let _ = acc.append(tp(1), pending(500, now), now);
        assert_eq!(acc.ready(now, false, 5), [tp(1)]);
    }

    #[test]
    fn in_flight_limit_and_retries_go_first_and_alone() {
        let now = Instant::now();
        let mut acc = Accumulator::new(10, Duration::ZERO);
        for _ in 0..4 {
            let _ = acc.append(tp(0), pending(10, now), now);
        }
        let mut a = acc.take(&tp(0)).into_iter().next();
        let b = acc.take(&tp(0));
        assert!(acc.ready(now, false, 2).is_empty(), "two in flight");
        assert_eq!(acc.ready(now, false, 3), [tp(0)]);
        assert_eq!(acc.in_flight(), 2);
        if let Some(batch) = a.as_mut() {
            batch.base_sequence = Some(0);
            batch.attempts = 1;
        }
        acc.requeue(a.into_iter().next().unwrap_or_else(|| panic!("taken")), now);
        assert!(acc.has_earlier(&tp(0), 1));
        // One still in flight and a retry at the front: wait for it.
        assert!(acc.ready(now, false, 5).is_empty());
        drop(b);
        acc.done(&tp(0), None);
        assert_eq!(acc.ready(now, false, 5), [tp(0)]);
        assert_eq!(acc.take(&tp(0)).and_then(|b| b.base_sequence), Some(0));
    }

    #[test]
    fn a_batch_still_in_flight_explains_a_gap() {
        let now = Instant::now();
        let mut acc = Accumulator::new(10, Duration::ZERO);
        for _ in 0..2 {
            let _ = acc.append(tp(0), pending(10, now), now);
        }
        // Sequence 0 goes to the old leader and has no answer yet; sequence 1 reaches the new
        // leader first and is refused as a gap: the earlier batch in flight explains it.
        let _first = acc.take(&tp(0));
        acc.sent(&tp(0), 0);
        let _second = acc.take(&tp(0));
        acc.sent(&tp(0), 1);
        assert!(acc.has_earlier(&tp(0), 1));
        assert!(!acc.has_earlier(&tp(0), 0));
        // Once the first is answered, a gap at 1 is unexplained.
        acc.done(&tp(0), Some(0));
        assert!(!acc.has_earlier(&tp(0), 1));
    }

    #[test]
    fn expire_takes_old_queued_batches_only() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut acc = Accumulator::new(10, Duration::ZERO);
        let _ = acc.append(tp(0), pending(10, now), now);
        let _ = acc.append(tp(1), pending(10, later), later);
        let expired = acc.expire(now);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].tp, tp(0));
        assert!(!acc.is_empty());
        assert!(acc.expire(later).len() == 1 && acc.is_empty());
    }

    #[test]
    fn a_batch_is_as_old_as_its_oldest_record_whatever_the_order() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut acc = Accumulator::new(100, Duration::ZERO);
        // Handed over by two tasks: the older record can arrive second.
        let _ = acc.append(tp(0), pending(10, later), later);
        let _ = acc.append(tp(0), pending(10, now), later);
        assert!(acc.expire(now - Duration::from_secs(1)).is_empty());
        let expired = acc.expire(now);
        assert_eq!(expired.iter().map(|b| b.records.len()).sum::<usize>(), 2);
        assert_eq!(expired.first().map(ProducerBatch::oldest), Some(now));
        assert!(acc.is_empty());
    }
}
