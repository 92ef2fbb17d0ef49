//! Building a v2 batch from records, as a producer does.
//!
//! ```
//! use rill_record::{Batch, BatchBuilder, Compression, RecordError, RecordSpec};
//! # fn main() -> Result<(), RecordError> {
//! let bytes = BatchBuilder::new()
//!     .compression(Compression::Zstd)
//!     .record(RecordSpec::new(1_700_000_000_000).key("user-1").value("hello"))
//!     .record(RecordSpec::new(1_700_000_000_005).value("world").header("trace", "abc"))
//!     .build()?;
//! let records = Batch::parse(&bytes)?.records()?;
//! assert_eq!(records.len(), 2);
//! assert_eq!(records[1].offset, 1);
//! # Ok(())
//! # }
//! ```

use bytes::{BufMut, Bytes};

use crate::batch::{Attributes, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, write_crc};
use crate::compression::{compress_into, compress_into_level};
use crate::record::{Header, Record, encode_record};
use crate::{BatchHeader, Compression, RecordError, TimestampType};

/// A record to put in a batch: what a producer sends, before offsets exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordSpec {
    /// Milliseconds since the epoch (CreateTime), absolute: the builder computes deltas.
    pub timestamp: i64,
    /// The key; `None` is null.
    pub key: Option<Bytes>,
    /// The value; `None` is null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl RecordSpec {
    /// A record at `timestamp` (milliseconds) with null key, null value and no headers.
    pub fn new(timestamp: i64) -> Self {
        Self {
            timestamp,
            ..Self::default()
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    #[must_use]
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Appends a header with a value.
    #[must_use]
    pub fn header(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, Some(value.into())));
        self
    }

    /// Appends a header whose value is null.
    #[must_use]
    pub fn null_header(mut self, key: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, None));
        self
    }
}

impl From<Record> for RecordSpec {
    /// The record's timestamp, key, value and headers; its offset is left behind.
    fn from(record: Record) -> Self {
        Self {
            timestamp: record.timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
        }
    }
}

/// Builds one RecordBatch v2.
///
/// Defaults are those of a plain, non-idempotent producer: `baseOffset` 0 (the broker assigns
/// offsets), `partitionLeaderEpoch` -1, no compression, CreateTime, `producerId`,
/// `producerEpoch` and `baseSequence` -1. Records get offset deltas 0, 1, 2, … in push order;
/// `baseTimestamp` is the first record's timestamp and `maxTimestamp` the largest.
///
/// Records are encoded as they are pushed, into one buffer that already holds room for the
/// header, so an uncompressed batch is built without copying. A record that cannot be encoded
/// makes [`BatchBuilder::build`] fail with the first such error.
#[derive(Debug, Clone)]
#[must_use]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// `HEADER_LEN` placeholder bytes, then the uncompressed records.
    buf: Vec<u8>,
    count: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    error: Option<RecordError>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder with the defaults above.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder whose buffer holds `records_len` bytes of encoded records before it
    /// grows (a producer passes its `batch.size`).
    pub fn with_capacity(records_len: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN.saturating_add(records_len));
        buf.resize(HEADER_LEN, 0);
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
            error: None,
        }
    }

    /// Sets `baseOffset` (default 0).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets `partitionLeaderEpoch` (default -1).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the codec the records section is compressed with (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the timestamp type (default CreateTime).
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Marks the batch as part of a transaction (default not).
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets the idempotent producer's id, epoch and the first record's sequence number
    /// (default -1, -1, -1).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Adds a record, by value, for chained calls.
    pub fn record(mut self, record: RecordSpec) -> Self {
        if self.error.is_none() {
            self.error = self.encode(&record).err();
        }
        self
    }

    /// Adds a record; for loops and for callers that keep their records.
    pub fn push(&mut self, record: &RecordSpec) -> &mut Self {
        if self.error.is_none() {
            self.error = self.encode(record).err();
        }
        self
    }

    fn encode(&mut self, record: &RecordSpec) -> Result<(), RecordError> {
        let index = self.count;
        let offset_delta = i32::try_from(index).map_err(|_overflow| RecordError::TooLarge {
            what: "records count",
            value: index.saturating_add(1),
        })?;
        if index == 0 {
            self.base_timestamp = record.timestamp;
            self.max_timestamp = record.timestamp;
        }
        let timestamp_delta = record.timestamp.checked_sub(self.base_timestamp).ok_or(
            RecordError::InvalidRecord {
                index,
                reason: "timestamp too far from the first record's to encode as a delta",
            },
        )?;
        encode_record(
            &mut self.buf,
            offset_delta,
            timestamp_delta,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )?;
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.count += 1;
        Ok(())
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No record pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch would have uncompressed: header plus encoded records.
    ///
    /// A producer compares it with `batch.size` to decide when to close a batch.
    pub fn uncompressed_len(&self) -> usize {
        self.buf.len()
    }

    /// Compresses the records, fills in the header and the CRC, and returns the batch.
    ///
    /// Fails with the first error a push met, with [`RecordError::EmptyBatch`] when no record
    /// was pushed (producers never send empty batches), or when the batch outgrows the
    /// format's 32-bit `batchLength`.
    pub fn build(self) -> Result<Bytes, RecordError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let last_offset_delta = match self.count.checked_sub(1) {
            Some(last) => i32::try_from(last).map_err(|_overflow| RecordError::TooLarge {
                what: "records count",
                value: self.count,
            })?,
            None => return Err(RecordError::EmptyBatch),
        };
        let records_count = last_offset_delta + 1;
        let mut out = match self.compression {
            Compression::None => self.buf,
            codec => {
                let records = self.buf.get(HEADER_LEN..).unwrap_or_default();
                // Compressed records usually shrink; the Vec grows if they do not.
                let mut out = Vec::with_capacity(HEADER_LEN + records.len() / 2 + 64);
                out.resize(HEADER_LEN, 0);
                compress_into(codec, records, &mut out)?;
                out
            }
        };
        let attributes = Attributes::new(self.compression, self.timestamp_type)
            .with_transactional(self.transactional);
        finish(
            &mut out,
            &BatchHeader {
                base_offset: self.base_offset,
                batch_length: 0,
                partition_leader_epoch: self.partition_leader_epoch,
                magic: MAGIC_V2,
                crc: 0,
                attributes,
                last_offset_delta,
                base_timestamp: self.base_timestamp,
                max_timestamp: self.max_timestamp,
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                base_sequence: self.base_sequence,
                records_count,
            },
        )?;
        Ok(Bytes::from(out))
    }
}

/// Rebuilds `header`'s batch around `records` (its decompressed records section) compressed with
/// `codec` at `level` (see [`crate::compress_into_level`]): every header field is kept but the
/// codec bits of `attributes` and `batchLength`, and the CRC is computed anew. This is how a
/// broker stores a batch in its topic's codec rather than the producer's.
pub fn rebuild(
    header: &BatchHeader,
    records: &[u8],
    codec: Compression,
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() / 2 + 64);
    out.resize(HEADER_LEN, 0);
    compress_into_level(codec, level, records, &mut out)?;
    let attributes = Attributes((header.attributes.0 & !0x07) | codec.id());
    finish(
        &mut out,
        &BatchHeader {
            attributes,
            ..*header
        },
    )?;
    Ok(out)
}

/// What [`filter`] kept of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record: the batch as it is.
    All,
    /// Some records: the batch rebuilt around them (see [`filter`]).
    Some(Vec<u8>),
    /// No record.
    None,
}

/// Keeps the records of `batch` for which `keep` says so (a log cleaner's pass), decoding at
/// most `max_len` bytes of records. A rebuilt batch keeps every header field (base offset,
/// `lastOffsetDelta`, so the offsets after it are unchanged; timestamps; producer id, epoch and
/// sequence; attributes) but `batchLength`, the records count and the CRC, and each kept record
/// keeps its offset and timestamp deltas, so every record keeps its offset and timestamp. The
/// records are compressed again with the batch's codec.
///
/// `decide` sees every record and says which stay (one flag each, in order; a missing flag
/// keeps its record) and whether to mark the batch with a delete horizon (KIP-534): then it is
/// rebuilt even when every record stays, its base timestamp becomes the horizon and each
/// record's timestamp delta is taken from it, so every record still reads with its own
/// timestamp.
pub fn filter(
    batch: &crate::Batch<'_>,
    max_len: usize,
    decide: impl FnOnce(&[Record]) -> (Vec<bool>, Option<i64>),
) -> Result<Filtered, RecordError> {
    let header = batch.header();
    let section = batch.records_section(max_len)?;
    let records = crate::decode_records(header, &section)?;
    let (flags, delete_horizon) = decide(&records);
    let kept: Vec<&Record> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| flags.get(*i).copied().unwrap_or(true))
        .map(|(_, r)| r)
        .collect();
    if kept.len() == records.len() && delete_horizon.is_none() {
        return Ok(Filtered::All);
    }
    if kept.is_empty() {
        return Ok(Filtered::None);
    }
    let base_timestamp = delete_horizon.unwrap_or(header.base_timestamp);
    let log_append_time = header.attributes.timestamp_type() == TimestampType::LogAppendTime;
    let mut encoded = Vec::with_capacity(section.len());
    for (index, record) in kept.iter().enumerate() {
        let timestamp_delta =
            match delete_horizon {
                // A LogAppendTime batch's records read the batch's max timestamp whatever their
                // deltas say.
                Some(_) if log_append_time => 0,
                Some(horizon) => record.timestamp.checked_sub(horizon).ok_or(
                    RecordError::InvalidRecord {
                        index,
                        reason: "timestamp too far from the delete horizon to encode as a delta",
                    },
                )?,
                None => record.timestamp_delta,
            };
        encode_record(
            &mut encoded,
            record.offset_delta,
            timestamp_delta,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )?;
    }
    let attributes = match delete_horizon {
        Some(_) => header.attributes.with_delete_horizon(),
        None => header.attributes,
    };
    let codec = header.attributes.compression()?;
    let mut out = Vec::with_capacity(HEADER_LEN + encoded.len());
    out.resize(HEADER_LEN, 0);
    match codec {
        Compression::None => out.extend_from_slice(&encoded),
        codec => compress_into(codec, &encoded, &mut out)?,
    }
    let records_count = i32::try_from(kept.len()).map_err(|_overflow| RecordError::TooLarge {
        what: "records count",
        value: kept.len(),
    })?;
    finish(
        &mut out,
        &BatchHeader {
            records_count,
            attributes,
            base_timestamp,
            ..*header
        },
    )?;
    Ok(Filtered::Some(out))
}

/// `header`'s batch with no records (what a log cleaner keeps of a batch whose records are all
/// gone but whose place must stay, as Kafka keeps a producer's last batch): every header field
/// but the codec (none: there is nothing to decompress), `batchLength`, the records count (0)
/// and the CRC. Its offsets still span `baseOffset..=baseOffset + lastOffsetDelta`.
pub fn empty_batch(header: &BatchHeader) -> Result<Vec<u8>, RecordError> {
    let mut out = vec![0u8; HEADER_LEN];
    finish(
        &mut out,
        &BatchHeader {
            attributes: Attributes(header.attributes.0 & !0x07),
            records_count: 0,
            ..*header
        },
    )?;
    Ok(out)
}

/// Fills in the header of `out` (`HEADER_LEN` bytes of room, then the records section) from
/// `header`: every field but `batchLength`, `magic` and the CRC, which are computed here.
fn finish(out: &mut [u8], header: &BatchHeader) -> Result<(), RecordError> {
    let batch_length = out.len() - LOG_OVERHEAD;
    let batch_length = i32::try_from(batch_length).map_err(|_overflow| RecordError::TooLarge {
        what: "batchLength",
        value: batch_length,
    })?;
    if let Some(mut h) = out.get_mut(..HEADER_LEN) {
        h.put_i64(header.base_offset);
        h.put_i32(batch_length);
        h.put_i32(header.partition_leader_epoch);
        h.put_i8(MAGIC_V2);
        h.put_u32(0); // crc, computed below over what follows it
        h.put_i16(header.attributes.0);
        h.put_i32(header.last_offset_delta);
        h.put_i64(header.base_timestamp);
        h.put_i64(header.max_timestamp);
        h.put_i64(header.producer_id);
        h.put_i16(header.producer_epoch);
        h.put_i32(header.base_sequence);
        h.put_i32(header.records_count);
    }
    write_crc(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Batch;

    #[test]
    fn rebuild_changes_the_codec_and_keeps_everything_else() -> Result<(), RecordError> {
        let original = BatchBuilder::new()
            .producer(7, 2, 40)
            .timestamp_type(TimestampType::LogAppendTime)
            .record(RecordSpec::new(1_000).key("k").value("v").header("h", "x"))
            .record(RecordSpec::new(900).value("w"))
            .build()?;
        let batch = Batch::parse(&original)?;
        let section = batch.records_section(1 << 20)?;
        for (codec, level) in [
            (Compression::Gzip, Some(9)),
            (Compression::Snappy, None),
            (Compression::Lz4, None),
            (Compression::Zstd, Some(19)),
        ] {
            let rebuilt = rebuild(batch.header(), &section, codec, level)?;
            let view = Batch::parse(&rebuilt)?;
            view.verify_crc()?;
            let (h, o) = (view.header(), batch.header());
            assert_eq!(h.attributes.compression()?, codec);
            assert_eq!(h.attributes.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(h.total_len(), rebuilt.len());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (o.producer_id, o.producer_epoch, o.base_sequence)
            );
            assert_eq!(
                (
                    h.base_timestamp,
                    h.max_timestamp,
                    h.last_offset_delta,
                    h.records_count
                ),
                (
                    o.base_timestamp,
                    o.max_timestamp,
                    o.last_offset_delta,
                    o.records_count
                )
            );
            assert_eq!(view.records()?, batch.records()?);
            // And back: the very bytes the producer built.
            let back_section = view.records_section(1 << 20)?;
            let back = rebuild(view.header(), &back_section, Compression::None, None)?;
            assert_eq!(back, original.to_vec());
        }
        Ok(())
    }

    #[test]
    fn filter_keeps_offsets_timestamps_and_the_codec() -> Result<(), RecordError> {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let original = BatchBuilder::new()
                .base_offset(100)
                .compression(codec)
                .producer(7, 2, 40)
                .record(RecordSpec::new(1_000).key("a").value("1"))
                .record(RecordSpec::new(1_005).key("b").value("2"))
                .record(RecordSpec::new(1_010).key("a").header("h", "x"))
                .build()?;
            let batch = Batch::parse(&original)?;
            let all = |records: &[Record]| (vec![true; records.len()], None);
            let none = |records: &[Record]| (vec![false; records.len()], None);
            assert_eq!(filter(&batch, 1 << 20, all)?, Filtered::All);
            assert_eq!(filter(&batch, 1 << 20, none)?, Filtered::None);
            let but_first =
                |records: &[Record]| (records.iter().map(|r| r.offset != 100).collect(), None);
            let Filtered::Some(kept) = filter(&batch, 1 << 20, but_first)? else {
                panic!("some records kept");
            };
            let view = Batch::parse(&kept)?;
            view.verify_crc()?;
            let (h, o) = (view.header(), batch.header());
            assert_eq!(h.records_count, 2);
            assert_eq!(h.attributes, o.attributes);
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.next_offset()),
                (100, 2, 103)
            );
            assert_eq!((h.producer_id, h.base_sequence), (7, 40));
            let records = view.records()?;
            let all = batch.records()?;
            assert_eq!(records.as_slice(), all.get(1..).unwrap_or_default());
            // Nothing left: an empty batch in the same place.
            let empty = empty_batch(o)?;
            let view = Batch::parse(&empty)?;
            view.verify_crc()?;
            assert_eq!(view.header().records_count, 0);
            assert_eq!(view.header().next_offset(), 103);
            assert_eq!(view.header().attributes.compression()?, Compression::None);
            assert!(view.records()?.is_empty());
            // A delete horizon: every record stays, with its timestamp; the base timestamp is
            // the horizon.
            let marking = |records: &[Record]| (vec![true; records.len()], Some(90_000));
            let Filtered::Some(marked) = filter(&batch, 1 << 20, marking)? else {
                panic!("rebuilt with a horizon");
            };
            let view = Batch::parse(&marked)?;
            view.verify_crc()?;
            assert!(view.header().attributes.has_delete_horizon());
            assert_eq!(view.header().base_timestamp, 90_000);
            assert_eq!(view.header().max_timestamp, 1_010);
            let timestamps: Vec<i64> = view.records()?.iter().map(|r| r.timestamp).collect();
            assert_eq!(timestamps, vec![1_000, 1_005, 1_010]);
        }
        Ok(())
    }

    #[test]
    fn defaults_fill_the_header() -> Result<(), RecordError> {
        let bytes = BatchBuilder::new()
            .record(RecordSpec::new(2_000).value("a"))
            .record(RecordSpec::new(1_500))
            .record(RecordSpec::new(2_500).key("k"))
            .build()?;
        let batch = Batch::parse(&bytes)?;
        batch.verify_crc()?;
        let h = batch.header();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.total_len(), bytes.len());
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.attributes, Attributes(0));
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 2_000);
        assert_eq!(h.max_timestamp, 2_500);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!(h.records_count, 3);
        let deltas: Vec<_> = batch
            .records()?
            .iter()
            .map(|r| (r.offset, r.timestamp_delta))
            .collect();
        assert_eq!(deltas, [(0, 0), (1, -500), (2, 500)]);
        Ok(())
    }

    #[test]
    fn settings_reach_the_header() -> Result<(), RecordError> {
        let bytes = BatchBuilder::with_capacity(1024)
            .base_offset(77)
            .partition_leader_epoch(4)
            .compression(Compression::Lz4)
            .timestamp_type(TimestampType::LogAppendTime)
            .transactional(true)
            .producer(9, 2, 300)
            .record(RecordSpec::new(5))
            .build()?;
        let batch = Batch::parse(&bytes)?;
        batch.verify_crc()?;
        let h = batch.header();
        assert_eq!(h.base_offset, 77);
        assert_eq!(h.partition_leader_epoch, 4);
        assert_eq!(h.attributes.compression()?, Compression::Lz4);
        assert_eq!(h.attributes.timestamp_type(), TimestampType::LogAppendTime);
        assert!(h.attributes.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 2, 300)
        );
        Ok(())
    }

    #[test]
    fn empty_builder_is_an_error() {
        let builder = BatchBuilder::new().compression(Compression::Gzip);
        assert!(builder.is_empty());
        assert_eq!(builder.uncompressed_len(), HEADER_LEN);
        assert_eq!(builder.build(), Err(RecordError::EmptyBatch));
    }

    #[test]
    fn push_errors_surface_at_build() {
        let mut builder = BatchBuilder::new();
        let _ = builder
            .push(&RecordSpec::new(i64::MIN))
            .push(&RecordSpec::new(i64::MAX))
            .push(&RecordSpec::new(0));
        assert_eq!(builder.len(), 1);
        assert!(matches!(
            builder.build(),
            Err(RecordError::InvalidRecord { index: 1, .. })
        ));
    }

    #[test]
    fn record_spec_from_a_decoded_record() -> Result<(), RecordError> {
        let spec = RecordSpec::new(42)
            .key("k")
            .header("h", "v")
            .null_header("n");
        let bytes = BatchBuilder::new().record(spec.clone()).build()?;
        let decoded = Batch::parse(&bytes)?.records()?;
        assert_eq!(
            decoded
                .into_iter()
                .map(RecordSpec::from)
                .collect::<Vec<_>>(),
            [spec]
        );
        Ok(())
    }
}
