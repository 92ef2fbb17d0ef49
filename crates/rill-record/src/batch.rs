//! The RecordBatch v2 header and a zero-copy view over a whole batch.
//!
//! Layout (big-endian), as Kafka defines it:
//!
//! | bytes  | field                |
//! |--------|----------------------|
//! | 0..8   | baseOffset           |
//! | 8..12  | batchLength (bytes after this field) |
//! | 12..16 | partitionLeaderEpoch |
//! | 16     | magic (2)            |
//! | 17..21 | crc (CRC-32C of bytes 21..end) |
//! | 21..23 | attributes           |
//! | 23..27 | lastOffsetDelta      |
//! | 27..35 | baseTimestamp        |
//! | 35..43 | maxTimestamp         |
//! | 43..51 | producerId           |
//! | 51..53 | producerEpoch        |
//! | 53..57 | baseSequence         |
//! | 57..61 | records count        |
//! | 61..   | records (compressed as a whole when attributes say so) |
//!
//! `baseOffset`, `batchLength`, `partitionLeaderEpoch` and `magic` lie outside the CRC, which is
//! why a broker can assign offsets by rewriting `baseOffset` without touching the CRC.

use crate::RecordError;

/// Bytes before `partitionLeaderEpoch`: baseOffset and batchLength (Kafka's `LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header, records excluded.
pub const HEADER_LEN: usize = 61;
/// The only magic this crate reads or writes.
pub const MAGIC_V2: i8 = 2;
/// Position of the magic byte.
pub const MAGIC_POS: usize = 16;
/// Position where the CRC-covered bytes begin (attributes).
pub const CRC_START: usize = 21;
/// Where `maxTimestamp` sits: after attributes (2), lastOffsetDelta (4) and baseTimestamp (8).
const MAX_TIMESTAMP_POS: usize = CRC_START + 2 + 4 + 8;
/// Smallest valid `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// `producerId` of a batch written by a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// Compression codec, the three low bits of `attributes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// snappy; Kafka's Java client frames it the xerial way.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// zstd frame format.
    Zstd,
}

impl Compression {
    /// The codec id as stored in `attributes`.
    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec for an id stored in `attributes`.
    pub fn from_id(id: i16) -> Result<Self, RecordError> {
        Ok(match id {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            id => return Err(RecordError::UnknownCompression { id }),
        })
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// What the batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

/// The `attributes` field of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub i16);

impl Attributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    pub(crate) const CONTROL: i16 = 0x20;
    const DELETE_HORIZON: i16 = 0x40;

    /// Attributes for a plain batch with this codec and timestamp type.
    pub fn new(compression: Compression, timestamp_type: TimestampType) -> Self {
        let mut bits = compression.id();
        if timestamp_type == TimestampType::LogAppendTime {
            bits |= Self::TIMESTAMP_TYPE;
        }
        Self(bits)
    }

    /// The codec the records are compressed with.
    pub fn compression(self) -> Result<Compression, RecordError> {
        Compression::from_id(self.0 & Self::COMPRESSION_MASK)
    }

    /// Create time or log-append time.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// These attributes with the transactional bit set or cleared.
    #[must_use]
    pub fn with_transactional(self, transactional: bool) -> Self {
        if transactional {
            Self(self.0 | Self::TRANSACTIONAL)
        } else {
            Self(self.0 & !Self::TRANSACTIONAL)
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// A control batch (transaction markers), not user data.
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// The base timestamp holds a delete horizon (compacted topics).
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }

    /// These attributes with the delete horizon bit set (KIP-534).
    #[must_use]
    pub fn with_delete_horizon(self) -> Self {
        Self(self.0 | Self::DELETE_HORIZON)
    }
}

/// Every field of a v2 batch header, decoded from its first [`HEADER_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes of the batch after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Always [`MAGIC_V2`] once decoded.
    pub magic: i8,
    /// CRC-32C of bytes `attributes..end`.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: Attributes,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`, checking magic and length.
    ///
    /// Only the first [`HEADER_LEN`] bytes are read; `buf` may hold less than the whole batch,
    /// so a reader can decide how much more to read from [`BatchHeader::total_len`].
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
            // Say what is wrong with the bytes we have, before saying there are too few.
            if let (Some(len), Some(&magic)) = (buf.get(8..12), buf.get(MAGIC_POS)) {
                check_magic(magic as i8)?;
                check_length(be_i32(len))?;
            }
            return Err(RecordError::Truncated {
                need: HEADER_LEN,
                have: buf.len(),
            });
        };
        let magic = h[MAGIC_POS] as i8;
        check_magic(magic)?;
        let batch_length = be_i32(&h[8..12]);
        check_length(batch_length)?;
        Ok(Self {
            base_offset: be_i64(&h[0..8]),
            batch_length,
            partition_leader_epoch: be_i32(&h[12..16]),
            magic,
            crc: be_u32(&h[17..21]),
            attributes: Attributes(be_i16(&h[21..23])),
            last_offset_delta: be_i32(&h[23..27]),
            base_timestamp: be_i64(&h[27..35]),
            max_timestamp: be_i64(&h[35..43]),
            producer_id: be_i64(&h[43..51]),
            producer_epoch: be_i16(&h[51..53]),
            base_sequence: be_i32(&h[53..57]),
            records_count: be_i32(&h[57..61]),
        })
    }

    /// Size of the whole batch on the wire and on disk: `LOG_OVERHEAD + batchLength`.
    pub fn total_len(&self) -> usize {
        // `parse` checked that batch_length is at least MIN_BATCH_LENGTH, so this is positive.
        LOG_OVERHEAD + self.batch_length.unsigned_abs() as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }
}

fn check_magic(magic: i8) -> Result<(), RecordError> {
    if magic == MAGIC_V2 {
        Ok(())
    } else {
        Err(RecordError::UnsupportedMagic { magic })
    }
}

fn check_length(length: i32) -> Result<(), RecordError> {
    if length < MIN_BATCH_LENGTH {
        Err(RecordError::InvalidLength { length })
    } else {
        Ok(())
    }
}

/// A zero-copy view of exactly one record batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> Batch<'a> {
    /// Views the batch at the start of `buf`; bytes after it are ignored.
    ///
    /// Checks magic and length against the bytes, not the CRC (see [`Batch::verify_crc`]).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RecordError> {
        let header = BatchHeader::parse(buf)?;
        let need = header.total_len();
        let bytes = buf.get(..need).ok_or(RecordError::Truncated {
            need,
            have: buf.len(),
        })?;
        Ok(Self { header, bytes })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records section (possibly compressed).
    pub fn records_bytes(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// CRC-32C over `attributes..end`.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(CRC_START..).unwrap_or_default())
    }

    /// Checks the stored CRC against the bytes.
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = self.compute_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(RecordError::CrcMismatch {
                stored: self.header.crc,
                computed,
            })
        }
    }
}

/// Iterates over the batches concatenated in `buf` (a produce request's records, a segment).
///
/// Yields each batch, or one error and then nothing: after a malformed batch the position of the
/// next one is unknown. [`Batches::position`] says where the iterator stopped.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Byte position of the next batch (after an error: of the malformed one).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<Batch<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|rest| !rest.is_empty())?;
        match Batch::parse(rest) {
            Ok(batch) => {
                self.pos += batch.as_bytes().len();
                Some(Ok(batch))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Rewrites `baseOffset` in place. The CRC stays valid: `baseOffset` is outside it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), RecordError> {
    let have = batch.len();
    let field = batch
        .first_chunk_mut::<8>()
        .ok_or(RecordError::Truncated { need: 8, have })?;
    *field = base_offset.to_be_bytes();
    Ok(())
}

/// Rewrites `partitionLeaderEpoch` in place (also outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), RecordError> {
    let have = batch.len();
    let field = batch
        .get_mut(12..16)
        .ok_or(RecordError::Truncated { need: 16, have })?;
    field.copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Marks a whole batch as stamped by the broker at `timestamp` (Kafka's LogAppendTime): sets the
/// timestamp-type bit and `maxTimestamp`, and recomputes the CRC, which covers both. The
/// records and their deltas are untouched: readers take every record's timestamp from
/// `maxTimestamp` when the bit is set.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) -> Result<(), RecordError> {
    let header = BatchHeader::parse(batch)?;
    let have = batch.len();
    if have != header.total_len() {
        return Err(RecordError::Truncated {
            need: header.total_len(),
            have,
        });
    }
    let attributes = header.attributes.0 | Attributes::TIMESTAMP_TYPE;
    if let Some(field) = batch.get_mut(CRC_START..CRC_START + 2) {
        field.copy_from_slice(&attributes.to_be_bytes());
    }
    if let Some(field) = batch.get_mut(MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8) {
        field.copy_from_slice(&timestamp.to_be_bytes());
    }
    write_crc(batch);
    Ok(())
}

/// Computes the CRC-32C of a whole batch (attributes to the end) and stores it in its field.
pub(crate) fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(batch.get(CRC_START..).unwrap_or_default());
    if let Some(field) = batch.get_mut(MAGIC_POS + 1..CRC_START) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
}

// The helpers below take slices whose length the caller fixed with a constant range.
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    i32::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

fn be_i16(b: &[u8]) -> i16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(b);
    i16::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled batch with no records: enough to test the header alone.
    fn empty_batch() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7i64.to_be_bytes()); // baseOffset
        b.extend_from_slice(&MIN_BATCH_LENGTH.to_be_bytes()); // batchLength
        b.extend_from_slice(&3i32.to_be_bytes()); // partitionLeaderEpoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, filled below
        b.extend_from_slice(&0x0011i16.to_be_bytes()); // gzip + transactional
        b.extend_from_slice(&4i32.to_be_bytes()); // lastOffsetDelta
        b.extend_from_slice(&1_000i64.to_be_bytes()); // baseTimestamp
        b.extend_from_slice(&2_000i64.to_be_bytes()); // maxTimestamp
        b.extend_from_slice(&42i64.to_be_bytes()); // producerId
        b.extend_from_slice(&5i16.to_be_bytes()); // producerEpoch
        b.extend_from_slice(&9i32.to_be_bytes()); // baseSequence
        b.extend_from_slice(&0i32.to_be_bytes()); // records count
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn header_fields_decode() -> Result<(), RecordError> {
        let bytes = empty_batch();
        let batch = Batch::parse(&bytes)?;
        let h = batch.header();
        assert_eq!(h.base_offset, 7);
        assert_eq!(h.batch_length, MIN_BATCH_LENGTH);
        assert_eq!(h.partition_leader_epoch, 3);
        assert_eq!(h.magic, 2);
        assert_eq!(h.attributes.compression()?, Compression::Gzip);
        assert!(h.attributes.is_transactional());
        assert!(!h.attributes.is_control());
        assert_eq!(h.attributes.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(h.last_offset(), 11);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 2_000);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 5);
        assert_eq!(h.base_sequence, 9);
        assert_eq!(h.records_count, 0);
        assert_eq!(h.total_len(), HEADER_LEN);
        batch.verify_crc()
    }

    #[test]
    fn log_append_time_stamp_sets_type_max_timestamp_and_crc() -> Result<(), RecordError> {
        let mut bytes = empty_batch();
        set_log_append_time(&mut bytes, 5_000)?;
        let batch = Batch::parse(&bytes)?;
        batch.verify_crc()?;
        let h = batch.header();
        assert_eq!(h.attributes.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.attributes.compression()?, Compression::Gzip);
        assert!(h.attributes.is_transactional());
        assert_eq!(h.max_timestamp, 5_000);
        assert_eq!(h.base_timestamp, 1_000);
        let mut longer = empty_batch();
        longer.push(0);
        assert!(set_log_append_time(&mut longer, 5_000).is_err());
        Ok(())
    }

    #[test]
    fn base_offset_rewrite_keeps_crc() -> Result<(), RecordError> {
        let mut bytes = empty_batch();
        set_base_offset(&mut bytes, 1 << 40)?;
        set_partition_leader_epoch(&mut bytes, 9)?;
        let batch = Batch::parse(&bytes)?;
        assert_eq!(batch.header().base_offset, 1 << 40);
        assert_eq!(batch.header().partition_leader_epoch, 9);
        batch.verify_crc()
    }

    #[test]
    fn flipped_byte_fails_crc() -> Result<(), RecordError> {
        let mut bytes = empty_batch();
        bytes[40] ^= 0x01;
        let batch = Batch::parse(&bytes)?;
        assert!(matches!(
            batch.verify_crc(),
            Err(RecordError::CrcMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn every_cut_is_an_error() {
        let bytes = empty_batch();
        for cut in 0..bytes.len() {
            assert!(Batch::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn bad_magic_and_length_are_reported() {
        let mut bytes = empty_batch();
        bytes[MAGIC_POS] = 1;
        assert_eq!(
            Batch::parse(&bytes).err(),
            Some(RecordError::UnsupportedMagic { magic: 1 })
        );
        let mut bytes = empty_batch();
        bytes[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            Batch::parse(&bytes).err(),
            Some(RecordError::InvalidLength { length: -5 })
        );
        // A length larger than the bytes is a truncation, found before reading past the end.
        let mut bytes = empty_batch();
        bytes[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            Batch::parse(&bytes),
            Err(RecordError::Truncated { .. })
        ));
    }

    #[test]
    fn batches_iterates_and_stops_at_garbage() -> Result<(), RecordError> {
        let one = empty_batch();
        let mut buf = one.clone();
        buf.extend_from_slice(&one);
        buf.extend_from_slice(&[0xff; 5]);
        let mut it = Batches::new(&buf);
        assert!(it.next().transpose()?.is_some());
        assert!(it.next().transpose()?.is_some());
        assert_eq!(it.position(), 2 * one.len());
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        Ok(())
    }
}
