//! Kafka's message formats before record batches: magic 0 and magic 1 *messages*, sent in
//! *message sets* by Produce v0-2 and expected by Fetch v0-3.
//!
//! A message is `offset: i64, size: i32`, then what its size covers: `crc: u32` (CRC-32, IEEE,
//! over the rest), `magic: i8`, `attributes: i8` (codec in the low three bits; magic 1: bit 3
//! is the timestamp type), magic 1's `timestamp: i64`, then `key` and `value` as `i32` length
//! (-1 for null) and bytes. A compressed message is a *wrapper*: its value is the compressed
//! message set of its inner messages. Inside a magic 1 wrapper the inner offsets are relative
//! (0, 1, 2, ...) and the wrapper carries the last one's absolute offset; inside a magic 0
//! wrapper they are absolute.
//!
//! Rill stores only v2 batches, as Kafka 3.x does: [`message_set_to_batch`] turns a produced
//! message set into one batch (the codec kept, magic 0's missing timestamps as -1), and
//! [`batches_to_message_set`] turns stored batches back into messages for an old fetch
//! (headers dropped, as Kafka drops them; producer ids and control batches have no place there).

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::batch::{Batches, TimestampType};
use crate::builder::{BatchBuilder, RecordSpec};
use crate::compression::{compress, decompress};
use crate::record::DecodeOptions;
use crate::{Compression, RecordError};

/// The first message format (Kafka 0.8): no timestamps.
pub const MAGIC_V0: i8 = 0;
/// The second message format (Kafka 0.10, KIP-32): a timestamp per message, relative offsets
/// inside compressed wrappers.
pub const MAGIC_V1: i8 = 1;

/// `offset` and `size`, before what the size covers.
const MESSAGE_OVERHEAD: usize = 12;
/// Where the magic byte sits in a message, and in a batch (the same place, by design).
const MAGIC_POS: usize = 16;
/// Attributes bit for LogAppendTime (magic 1).
const TIMESTAMP_TYPE_BIT: i8 = 0x08;
/// Attributes bits naming the codec.
const COMPRESSION_MASK: i8 = 0x07;

/// The magic byte of the first message or batch in `records`, if there are enough bytes.
pub fn magic_of(records: &[u8]) -> Option<i8> {
    records.get(MAGIC_POS).map(|&b| i8::from_be_bytes([b]))
}

/// One magic 0 or magic 1 message, as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The offset field: absolute, or relative inside a magic 1 wrapper.
    pub offset: i64,
    /// 0 or 1.
    pub magic: i8,
    /// The codec of a wrapper; [`Compression::None`] for a plain message.
    pub compression: Compression,
    /// Magic 1's timestamp type ([`TimestampType::CreateTime`] for magic 0).
    pub timestamp_type: TimestampType,
    /// Magic 1's timestamp; -1 for magic 0.
    pub timestamp: i64,
    /// The key; `None` is null.
    pub key: Option<Bytes>,
    /// The value (a wrapper's compressed inner messages); `None` is null.
    pub value: Option<Bytes>,
}

/// Splits a message set into its messages, checking each one's CRC. A message cut short at the
/// end is an error: a producer sends whole messages.
pub fn parse_message_set(set: &Bytes) -> Result<Vec<Message>, RecordError> {
    let mut messages = Vec::new();
    let mut pos = 0;
    while pos < set.len() {
        let rest = set.slice(pos..);
        let (message, len) = parse_message(&rest)?;
        messages.push(message);
        pos += len;
    }
    Ok(messages)
}

/// Parses the message at the start of `buf`; returns it and the bytes it took.
fn parse_message(buf: &Bytes) -> Result<(Message, usize), RecordError> {
    let mut reader = Reader { buf, pos: 0 };
    let offset = reader.i64()?;
    let size = reader.i32()?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&size| size >= 14)
        .ok_or(RecordError::InvalidMessageSet {
            reason: "a message size is smaller than a message",
        })?;
    let total = MESSAGE_OVERHEAD + size;
    let body = buf
        .get(MESSAGE_OVERHEAD..total)
        .ok_or(RecordError::Truncated {
            need: total,
            have: buf.len(),
        })?;
    let stored = reader.u32()?;
    let computed = crc32fast::hash(body.get(4..).unwrap_or_default());
    if stored != computed {
        return Err(RecordError::MessageCrcMismatch {
            offset,
            stored,
            computed,
        });
    }
    let magic = reader.i8()?;
    let attributes = reader.i8()?;
    let (timestamp_type, timestamp) = match magic {
        MAGIC_V0 => (TimestampType::CreateTime, -1),
        MAGIC_V1 => {
            let kind = if attributes & TIMESTAMP_TYPE_BIT != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
            (kind, reader.i64()?)
        }
        magic => return Err(RecordError::UnsupportedMagic { magic }),
    };
    let compression = Compression::from_id(i16::from(attributes & COMPRESSION_MASK))?;
    let key = reader.bytes(total)?;
    let value = reader.bytes(total)?;
    if reader.pos != total {
        return Err(RecordError::InvalidMessageSet {
            reason: "a message's size does not match its key and value",
        });
    }
    let message = Message {
        offset,
        magic,
        compression,
        timestamp_type,
        timestamp,
        key,
        value,
    };
    Ok((message, total))
}

/// Converts a produced message set (magic 0 or 1) into one v2 batch holding the same records in
/// the same order, as Kafka 3.x does on append.
///
/// Every message's CRC is checked ([`RecordError::MessageCrcMismatch`]); wrappers are
/// decompressed (at most `max_len` bytes each) and their inner messages must be plain and of the
/// wrapper's magic ([`RecordError::InvalidMessageSet`] otherwise); their offsets are not looked
/// at (records keep the order of the messages, as Kafka assigns them). The batch is compressed
/// with the first wrapper's codec (uncompressed when there is none); magic 0 records get
/// timestamp -1, as in Kafka. Offsets are left for the log to assign.
pub fn message_set_to_batch(set: &Bytes, max_len: usize) -> Result<Bytes, RecordError> {
    let mut codec = Compression::None;
    let mut builder = BatchBuilder::with_capacity(set.len());
    for message in parse_message_set(set)? {
        if message.compression == Compression::None {
            let _ = builder.push(&spec(&message, None));
            continue;
        }
        if codec == Compression::None {
            codec = message.compression;
        }
        let mut compressed = message.value.clone().unwrap_or_default();
        if message.magic == MAGIC_V0 && message.compression == Compression::Lz4 {
            compressed = fix_lz4_header_checksum(&compressed);
        }
        let inner = Bytes::from(decompress(message.compression, &compressed, max_len)?);
        let inner = parse_message_set(&inner)?;
        let Some(last) = inner.last() else {
            return Err(RecordError::InvalidMessageSet {
                reason: "a compressed message holds no messages",
            });
        };
        // Inner offsets are otherwise not checked: some old clients wrote magic 1's relative
        // offsets wrongly (all 0, say), and Kafka has always taken such wrappers and assigned
        // the offsets in the order of the messages, as the batch built here does. What it
        // refuses is a magic 1 wrapper whose own offset (the last inner message's absolute one,
        // or 0 from some librdkafka versions) is below the last relative offset.
        if message.magic == MAGIC_V1 && message.offset != 0 && message.offset < last.offset {
            return Err(RecordError::InvalidMessageSet {
                reason: "a magic 1 wrapper's offset is below its last inner message's relative offset",
            });
        }
        for inner_message in inner {
            if inner_message.compression != Compression::None {
                return Err(RecordError::InvalidMessageSet {
                    reason: "a compressed message holds another compressed message",
                });
            }
            if inner_message.magic != message.magic {
                return Err(RecordError::InvalidMessageSet {
                    reason: "an inner message's magic differs from its wrapper's",
                });
            }
            let _ = builder.push(&spec(&inner_message, Some(&message)));
        }
    }
    if builder.is_empty() {
        return Err(RecordError::EmptyBatch);
    }
    builder.compression(codec).build()
}

/// Magic 0's LZ4 frames carry a header checksum computed over the wrong bytes (the magic number
/// too, KAFKA-3160); writers of magic 0 (librdkafka, kafka-python) keep that mistake for old
/// brokers. Returns the frame with the checksum a standard LZ4 reader expects; bytes too short
/// to hold a frame descriptor are returned as they are, for the decoder to refuse.
fn fix_lz4_header_checksum(frame: &Bytes) -> Bytes {
    // Magic (4), FLG, BD, then an 8-byte content size and a 4-byte dictionary id if FLG says so.
    let Some(&flg) = frame.get(4) else {
        return frame.clone();
    };
    let end = 6 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
    let Some(descriptor) = frame.get(4..end) else {
        return frame.clone();
    };
    let checksum = twox_hash::XxHash32::oneshot(0, descriptor).to_le_bytes()[1];
    let mut fixed = BytesMut::from(frame.as_ref());
    if let Some(slot) = fixed.get_mut(end) {
        *slot = checksum;
    }
    fixed.freeze()
}

/// The record of a plain message (inside `wrapper`, if any).
fn spec(message: &Message, wrapper: Option<&Message>) -> RecordSpec {
    let timestamp = match wrapper {
        // A LogAppendTime wrapper's time stands for every inner message.
        Some(w) if w.timestamp_type == TimestampType::LogAppendTime => w.timestamp,
        _ => message.timestamp,
    };
    RecordSpec {
        timestamp,
        key: message.key.clone(),
        value: message.value.clone(),
        headers: Vec::new(),
    }
}

/// Converts stored v2 batches into a magic `magic` (0 or 1) message set for an old fetch.
///
/// Records before `from_offset` are left out (a fetch may start inside a batch), and so are
/// control batches and headers. A batch compressed with gzip or snappy becomes a wrapper of the
/// same codec; lz4 too for magic 1 (magic 0's lz4 framing was Kafka's broken one, so such
/// batches go uncompressed), and zstd, which old formats cannot carry, goes uncompressed. A
/// batch cut short at the end of `stored` is left out; any other malformation is an error.
/// Stored batches were checked when they were read, so CRCs are not checked again.
pub fn batches_to_message_set(
    stored: &[u8],
    magic: i8,
    from_offset: i64,
    max_len: usize,
) -> Result<Bytes, RecordError> {
    if magic != MAGIC_V0 && magic != MAGIC_V1 {
        return Err(RecordError::UnsupportedMagic { magic });
    }
    let mut out = BytesMut::with_capacity(stored.len() + stored.len() / 4);
    let options = DecodeOptions::default()
        .max_records_len(max_len)
        .verify_crc(false);
    for batch in Batches::new(stored) {
        let batch = match batch {
            Ok(batch) => batch,
            Err(RecordError::Truncated { .. }) => break,
            Err(err) => return Err(err),
        };
        let header = batch.header();
        if header.attributes.is_control() {
            continue;
        }
        let records: Vec<_> = batch
            .records_with(options)?
            .into_iter()
            .filter(|r| r.offset >= from_offset)
            .collect();
        let Some(last) = records.last() else {
            continue;
        };
        let log_append = header.attributes.timestamp_type() == TimestampType::LogAppendTime;
        let codec = match (header.attributes.compression()?, magic) {
            (Compression::Gzip, _) => Compression::Gzip,
            (Compression::Snappy, _) => Compression::Snappy,
            (Compression::Lz4, MAGIC_V1) => Compression::Lz4,
            _ => Compression::None,
        };
        let plain = |r: &crate::Record, offset: i64| Message {
            offset,
            magic,
            compression: Compression::None,
            timestamp_type: if log_append {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp: if log_append {
                header.max_timestamp
            } else {
                r.timestamp
            },
            key: r.key.clone(),
            value: r.value.clone(),
        };
        if codec == Compression::None {
            for record in &records {
                write_message(&mut out, &plain(record, record.offset));
            }
            continue;
        }
        let mut inner = BytesMut::new();
        for record in &records {
            let offset = match magic {
                MAGIC_V1 => record.offset - header.base_offset,
                _ => record.offset,
            };
            write_message(&mut inner, &plain(record, offset));
        }
        let wrapper = Message {
            offset: last.offset,
            magic,
            compression: codec,
            timestamp_type: if log_append {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp: header.max_timestamp,
            key: None,
            value: Some(Bytes::from(compress(codec, &inner)?)),
        };
        write_message(&mut out, &wrapper);
    }
    Ok(out.freeze())
}

/// Appends `message` to `out`, computing its size and CRC.
pub fn write_message(out: &mut BytesMut, message: &Message) {
    let field = |b: &Option<Bytes>| 4 + b.as_ref().map_or(0, Bytes::len);
    let timestamp_len = if message.magic == MAGIC_V0 { 0 } else { 8 };
    let size = 4 + 1 + 1 + timestamp_len + field(&message.key) + field(&message.value);
    out.reserve(MESSAGE_OVERHEAD + size);
    out.put_i64(message.offset);
    out.put_i32(i32::try_from(size).unwrap_or(i32::MAX));
    let crc_at = out.len();
    out.put_u32(0);
    out.put_i8(message.magic);
    let mut attributes = i8::try_from(message.compression.id()).unwrap_or(0);
    if message.magic != MAGIC_V0 && message.timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    out.put_i8(attributes);
    if message.magic != MAGIC_V0 {
        out.put_i64(message.timestamp);
    }
    for part in [&message.key, &message.value] {
        match part {
            Some(bytes) => {
                out.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                out.put_slice(bytes);
            }
            None => out.put_i32(-1),
        }
    }
    let crc = crc32fast::hash(out.get(crc_at + 4..).unwrap_or_default());
    if let Some(mut slot) = out.get_mut(crc_at..crc_at + 4) {
        slot.put_u32(crc);
    }
}

/// Reads big-endian fields from a message, with its own bounds checks.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or(RecordError::Truncated {
                need: self.pos + N,
                have: self.buf.len(),
            })?;
        self.pos += N;
        Ok(bytes)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        self.take::<1>().map(i8::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        self.take::<8>().map(i64::from_be_bytes)
    }

    /// A length-prefixed byte string that must end by `end`; -1 is null.
    fn bytes(&mut self, end: usize) -> Result<Option<Bytes>, RecordError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_negative| RecordError::InvalidMessageSet {
            reason: "a key or value has a negative length",
        })?;
        let stop = self.pos + len;
        if stop > end {
            return Err(RecordError::InvalidMessageSet {
                reason: "a key or value runs past the end of its message",
            });
        }
        let bytes = self.buf.slice(self.pos..stop);
        self.pos = stop;
        Ok(Some(bytes))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;
    use crate::{Batch, Header, Record};

    const MAX: usize = 1 << 20;

    fn message(
        offset: i64,
        magic: i8,
        timestamp: i64,
        key: Option<&'static str>,
        value: Option<&'static str>,
    ) -> Message {
        Message {
            offset,
            magic,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            timestamp: if magic == MAGIC_V0 { -1 } else { timestamp },
            key: key.map(|s| Bytes::from_static(s.as_bytes())),
            value: value.map(|s| Bytes::from_static(s.as_bytes())),
        }
    }

    fn set(messages: &[Message]) -> Bytes {
        let mut out = BytesMut::new();
        for m in messages {
            write_message(&mut out, m);
        }
        out.freeze()
    }

    fn wrapper(magic: i8, codec: Compression, inner: &[Message]) -> Message {
        Message {
            offset: inner.last().map_or(0, |m| m.offset),
            magic,
            compression: codec,
            timestamp_type: TimestampType::CreateTime,
            timestamp: if magic == MAGIC_V0 { -1 } else { 300 },
            key: None,
            value: Some(Bytes::from(compress(codec, &set(inner)).unwrap())),
        }
    }

    fn records(batch: &Bytes) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
        Batch::parse(batch)
            .unwrap()
            .records()
            .unwrap()
            .into_iter()
            .map(|r| (r.timestamp, r.key, r.value))
            .collect()
    }

    fn kv(
        ts: i64,
        k: Option<&'static str>,
        v: Option<&'static str>,
    ) -> (i64, Option<Bytes>, Option<Bytes>) {
        (
            ts,
            k.map(|s| Bytes::from_static(s.as_bytes())),
            v.map(|s| Bytes::from_static(s.as_bytes())),
        )
    }

    #[test]
    fn plain_magic_1_messages_become_one_uncompressed_batch() {
        let wire = set(&[
            message(0, MAGIC_V1, 100, Some("k"), Some("v")),
            message(0, MAGIC_V1, 200, None, None),
        ]);
        let batch = message_set_to_batch(&wire, MAX).unwrap();
        let parsed = Batch::parse(&batch).unwrap();
        parsed.verify_crc().unwrap();
        assert_eq!(
            parsed.header().attributes.compression().unwrap(),
            Compression::None
        );
        assert_eq!(parsed.header().max_timestamp, 200);
        assert_eq!(
            records(&batch),
            [kv(100, Some("k"), Some("v")), kv(200, None, None)]
        );
    }

    #[test]
    fn wrappers_keep_their_codec_and_magic_0_has_no_timestamps() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
            // Magic 0 inner offsets are absolute and arbitrary; magic 1's are relative.
            let v0 = set(&[wrapper(
                MAGIC_V0,
                codec,
                &[
                    message(7, MAGIC_V0, 0, Some("a"), Some("1")),
                    message(7, MAGIC_V0, 0, None, Some("2")),
                ],
            )]);
            let batch = message_set_to_batch(&v0, MAX).unwrap();
            assert_eq!(
                Batch::parse(&batch)
                    .unwrap()
                    .header()
                    .attributes
                    .compression()
                    .unwrap(),
                codec
            );
            assert_eq!(
                records(&batch),
                [kv(-1, Some("a"), Some("1")), kv(-1, None, Some("2"))]
            );

            let v1 = set(&[wrapper(
                MAGIC_V1,
                codec,
                &[
                    message(0, MAGIC_V1, 10, Some("a"), Some("1")),
                    message(1, MAGIC_V1, 20, None, Some("2")),
                ],
            )]);
            let batch = message_set_to_batch(&v1, MAX).unwrap();
            assert_eq!(
                records(&batch),
                [kv(10, Some("a"), Some("1")), kv(20, None, Some("2"))]
            );
        }
    }

    /// librdkafka and kafka-python write magic 0 LZ4 with the header checksum taken over the
    /// magic number too (KAFKA-3160).
    #[test]
    fn magic_0_lz4_with_kafkas_old_header_checksum_is_read() {
        let inner = set(&[message(0, MAGIC_V0, 0, None, Some("old lz4"))]);
        let mut frame = BytesMut::from(compress(Compression::Lz4, &inner).unwrap().as_slice());
        frame[6] = twox_hash::XxHash32::oneshot(0, &frame[..6]).to_le_bytes()[1];
        let mut broken = wrapper(MAGIC_V0, Compression::Lz4, &[]);
        broken.value = Some(frame.freeze());
        let batch = message_set_to_batch(&set(&[broken]), MAX).unwrap();
        assert_eq!(records(&batch), [kv(-1, None, Some("old lz4"))]);
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = set(&[message(0, MAGIC_V1, 1, Some("k"), Some("value"))]);
        // A flipped byte anywhere after the CRC fails the CRC.
        for at in 16..good.len() {
            let mut bad = BytesMut::from(&good[..]);
            bad[at] ^= 0x40;
            assert!(
                matches!(
                    message_set_to_batch(&bad.freeze(), MAX),
                    Err(RecordError::MessageCrcMismatch { .. })
                ),
                "flip at {at}"
            );
        }
        // Cut anywhere: an error, never a panic.
        for cut in 0..good.len() {
            assert!(
                message_set_to_batch(&good.slice(..cut), MAX).is_err(),
                "cut at {cut}"
            );
        }
        let nested = set(&[wrapper(
            MAGIC_V1,
            Compression::Gzip,
            &[wrapper(
                MAGIC_V1,
                Compression::Gzip,
                &[message(0, MAGIC_V1, 1, None, Some("x"))],
            )],
        )]);
        assert!(matches!(
            message_set_to_batch(&nested, MAX),
            Err(RecordError::InvalidMessageSet { .. })
        ));
        let mixed = set(&[wrapper(
            MAGIC_V1,
            Compression::Gzip,
            &[message(0, MAGIC_V0, 1, None, Some("x"))],
        )]);
        assert!(matches!(
            message_set_to_batch(&mixed, MAX),
            Err(RecordError::InvalidMessageSet { .. })
        ));
        assert!(matches!(
            message_set_to_batch(&Bytes::new(), MAX),
            Err(RecordError::EmptyBatch)
        ));
    }

    #[test]
    fn wrong_relative_offsets_are_taken_in_message_order_as_kafka_does() {
        for offsets in [[1, 0], [0, 0], [5, 9]] {
            let wrapped = set(&[wrapper(
                MAGIC_V1,
                Compression::Gzip,
                &[
                    message(offsets[0], MAGIC_V1, 1, None, Some("x")),
                    message(offsets[1], MAGIC_V1, 2, None, Some("y")),
                ],
            )]);
            let batch = message_set_to_batch(&wrapped, MAX).unwrap();
            assert_eq!(
                records(&batch),
                [kv(1, None, Some("x")), kv(2, None, Some("y"))],
                "inner offsets {offsets:?}"
            );
        }
    }

    #[test]
    fn a_wrapper_below_its_last_relative_offset_or_empty_is_refused() {
        let mut low = wrapper(
            MAGIC_V1,
            Compression::Gzip,
            &[
                message(4, MAGIC_V1, 1, None, Some("x")),
                message(5, MAGIC_V1, 2, None, Some("y")),
            ],
        );
        low.offset = 3;
        assert!(matches!(
            message_set_to_batch(&set(&[low.clone()]), MAX),
            Err(RecordError::InvalidMessageSet { .. })
        ));
        // 0 is what some librdkafka versions write, and is taken.
        low.offset = 0;
        assert!(message_set_to_batch(&set(&[low]), MAX).is_ok());
        for magic in [MAGIC_V0, MAGIC_V1] {
            let empty = wrapper(magic, Compression::Snappy, &[]);
            assert!(matches!(
                message_set_to_batch(&set(&[empty]), MAX),
                Err(RecordError::InvalidMessageSet { .. })
            ));
        }
    }

    fn stored(codec: Compression, base: i64, headers: bool) -> Bytes {
        let mut record = RecordSpec::new(1_000).key("k0").value("v0");
        if headers {
            record
                .headers
                .push(Header::new("h", Some(Bytes::from_static(b"x"))));
        }
        let mut batch = BytesMut::from(
            &BatchBuilder::new()
                .compression(codec)
                .record(record)
                .record(RecordSpec::new(3_000).value("v1"))
                .record(RecordSpec::new(2_000).key("k2"))
                .build()
                .unwrap()[..],
        );
        crate::batch::set_base_offset(&mut batch, base).unwrap();
        batch.freeze()
    }

    /// (offset, timestamp, key, value) of a message set, wrappers opened.
    fn opened(set_bytes: &Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
        let mut out = Vec::new();
        for m in parse_message_set(set_bytes).unwrap() {
            if m.compression == Compression::None {
                out.push((m.offset, m.timestamp, m.key, m.value));
                continue;
            }
            let inner =
                Bytes::from(decompress(m.compression, m.value.as_deref().unwrap(), MAX).unwrap());
            let inner = parse_message_set(&inner).unwrap();
            let last = inner.last().unwrap().offset;
            for i in inner {
                let offset = if m.magic == MAGIC_V1 {
                    m.offset - last + i.offset
                } else {
                    i.offset
                };
                out.push((offset, i.timestamp, i.key, i.value));
            }
        }
        out
    }

    #[test]
    fn stored_batches_convert_down_with_absolute_offsets() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut two = BytesMut::from(&stored(codec, 10, true)[..]);
            two.extend_from_slice(&stored(codec, 13, false));
            let two = two.freeze();
            for magic in [MAGIC_V0, MAGIC_V1] {
                let down = batches_to_message_set(&two, magic, 11, MAX).unwrap();
                let ts = |t: i64| if magic == MAGIC_V0 { -1 } else { t };
                let b = |s: &'static str| Some(Bytes::from_static(s.as_bytes()));
                assert_eq!(
                    opened(&down),
                    [
                        (11, ts(3_000), None, b("v1")),
                        (12, ts(2_000), b("k2"), None),
                        (13, ts(1_000), b("k0"), b("v0")),
                        (14, ts(3_000), None, b("v1")),
                        (15, ts(2_000), b("k2"), None),
                    ],
                    "{codec:?} magic {magic}"
                );
                let wrapped = parse_message_set(&down)
                    .unwrap()
                    .iter()
                    .any(|m| m.compression != Compression::None);
                let expect_wrapped = match codec {
                    Compression::Gzip | Compression::Snappy => true,
                    Compression::Lz4 => magic == MAGIC_V1,
                    _ => false,
                };
                assert_eq!(wrapped, expect_wrapped, "{codec:?} magic {magic}");
                // And back up: the same records.
                let up = message_set_to_batch(&down, MAX).unwrap();
                let back: Vec<Record> = Batch::parse(&up).unwrap().records().unwrap();
                assert_eq!(back.len(), 5);
            }
        }
    }

    #[test]
    fn a_cut_last_batch_is_left_out() {
        let whole = stored(Compression::None, 0, false);
        let mut two = BytesMut::from(&whole[..]);
        two.extend_from_slice(&whole[..whole.len() - 5]);
        let down = batches_to_message_set(&two, MAGIC_V1, 0, MAX).unwrap();
        assert_eq!(parse_message_set(&down).unwrap().len(), 3);
    }
}
