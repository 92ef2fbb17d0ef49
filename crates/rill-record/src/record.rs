//! The records inside a v2 batch, and decoding them from a [`Batch`].
//!
//! Each record in the (decompressed) records section is, with Kafka's zigzag varints
//! (see [`crate::varint`]):
//!
//! | field            | type                 |
//! |------------------|----------------------|
//! | length           | varint: bytes after this field |
//! | attributes       | int8 (unused, 0)     |
//! | timestampDelta   | varlong, from the batch's baseTimestamp |
//! | offsetDelta      | varint, from the batch's baseOffset |
//! | keyLength, key   | varint (-1 = null), bytes |
//! | valueLength, value | varint (-1 = null), bytes |
//! | headers count    | varint               |
//! | headers          | keyLength varint, key (UTF-8 by convention), valueLength varint (-1 = null), value |

use bytes::{BufMut, Bytes};

use crate::batch::{Batch, BatchHeader, TimestampType};
use crate::compression::decompress;
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};
use crate::{Compression, RecordError};

/// Default ceiling on a batch's decompressed records section: 64 MiB.
///
/// Far above what Kafka's default `max.request.size`/`message.max.bytes` (1 MiB compressed)
/// let a producer send at ordinary ratios, yet small enough that a decompression bomb cannot
/// exhaust memory.
pub const DEFAULT_MAX_RECORDS_LEN: usize = 64 << 20;

/// The shortest possible record: a one-byte length and six one-byte fields.
const MIN_RECORD_LEN: usize = 7;

/// One record header: a key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The key. Kafka's clients treat it as a UTF-8 string; it is kept as bytes so that any
    /// record decodes and re-encodes unchanged.
    pub key: Bytes,
    /// The value; `None` is a null value, distinct from an empty one.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with this key and value.
    pub fn new(key: impl Into<Bytes>, value: Option<Bytes>) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }

    /// The key as a string, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    fn encoded_len(&self) -> Result<usize, RecordError> {
        Ok(bytes_field_len(Some(&self.key), "header key")?
            + bytes_field_len(self.value.as_deref(), "header value")?)
    }
}

/// A record decoded from a batch, its offset and timestamp made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `baseOffset + offset_delta`.
    pub offset: i64,
    /// `baseTimestamp + timestamp_delta`, or the batch's `maxTimestamp` when the batch uses
    /// [`TimestampType::LogAppendTime`] (as Kafka's clients report it).
    pub timestamp: i64,
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// The key; `None` is null, distinct from empty.
    pub key: Option<Bytes>,
    /// The value; `None` is null (a tombstone on compacted topics), distinct from empty.
    pub value: Option<Bytes>,
    /// Headers in the order they were written.
    pub headers: Vec<Header>,
}

/// How [`Batch::records_with`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Largest decompressed records section accepted, in bytes.
    pub max_records_len: usize,
    /// Check the batch's CRC before decoding.
    pub verify_crc: bool,
}

impl Default for DecodeOptions {
    /// [`DEFAULT_MAX_RECORDS_LEN`], CRC checked.
    fn default() -> Self {
        Self {
            max_records_len: DEFAULT_MAX_RECORDS_LEN,
            verify_crc: true,
        }
    }
}

impl DecodeOptions {
    /// Sets the largest decompressed records section accepted.
    #[must_use]
    pub fn max_records_len(mut self, max_records_len: usize) -> Self {
        self.max_records_len = max_records_len;
        self
    }

    /// Sets whether the CRC is checked first (skip it only for bytes already verified).
    #[must_use]
    pub fn verify_crc(mut self, verify_crc: bool) -> Self {
        self.verify_crc = verify_crc;
        self
    }
}

impl Batch<'_> {
    /// Verifies the CRC, decompresses and decodes every record, with the default options.
    ///
    /// A batch whose header counts no records yields none without looking at its records
    /// section, as Kafka's clients do (compaction leaves such batches behind).
    pub fn records(&self) -> Result<Vec<Record>, RecordError> {
        self.records_with(DecodeOptions::default())
    }

    /// Decodes every record, as [`Batch::records`] does, with `options`.
    ///
    /// Exactly `recordsCount` records must fill the records section: fewer is
    /// [`RecordError::RecordCountMismatch`], leftover bytes [`RecordError::TrailingBytes`],
    /// and a malformed record [`RecordError::InvalidRecord`].
    pub fn records_with(&self, options: DecodeOptions) -> Result<Vec<Record>, RecordError> {
        if options.verify_crc {
            self.verify_crc()?;
        }
        let header = self.header();
        if header.records_count == 0 {
            return Ok(Vec::new());
        }
        let section = self.records_section(options.max_records_len)?;
        decode_records(header, &section)
    }

    /// The records section decompressed (copied when not compressed), refusing more than
    /// `max_len` bytes. The CRC is not checked.
    pub fn records_section(&self, max_len: usize) -> Result<Bytes, RecordError> {
        let raw = self.records_bytes();
        Ok(match self.header().attributes.compression()? {
            Compression::None => {
                if raw.len() > max_len {
                    return Err(RecordError::DecompressedTooLarge {
                        codec: Compression::None.name(),
                        limit: max_len,
                    });
                }
                Bytes::copy_from_slice(raw)
            }
            codec => Bytes::from(decompress(codec, raw, max_len)?),
        })
    }
}

/// Decodes the records of `header`'s batch from its decompressed records section (from
/// [`Batch::records_section`]), as [`Batch::records`] does.
pub fn decode_records(header: &BatchHeader, section: &Bytes) -> Result<Vec<Record>, RecordError> {
    let declared = header.records_count;
    let count = usize::try_from(declared).map_err(|_negative| RecordError::InvalidRecord {
        index: 0,
        reason: "negative records count",
    })?;
    let log_append_time = header.attributes.timestamp_type() == TimestampType::LogAppendTime;
    let mut records = Vec::with_capacity(count.min(section.len() / MIN_RECORD_LEN));
    let mut pos = 0;
    for index in 0..count {
        if pos >= section.len() {
            return Err(RecordError::RecordCountMismatch {
                declared,
                found: index,
            });
        }
        let mut reader = Reader {
            data: section,
            pos,
            end: section.len(),
        };
        let invalid = |reason| RecordError::InvalidRecord { index, reason };
        let len = reader.varint().map_err(invalid)?;
        let len = usize::try_from(len).map_err(|_negative| invalid("negative record length"))?;
        let end = reader
            .pos
            .checked_add(len)
            .filter(|&end| end <= section.len())
            .ok_or(invalid("record length runs past the end of the records"))?;
        reader.end = end;
        let fields = reader.record_fields().map_err(invalid)?;
        if reader.pos != end {
            return Err(invalid("record length exceeds its fields"));
        }
        pos = end;
        let offset = header
            .base_offset
            .checked_add(i64::from(fields.offset_delta))
            .ok_or(invalid("offset overflows"))?;
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header
                .base_timestamp
                .checked_add(fields.timestamp_delta)
                .ok_or(invalid("timestamp overflows"))?
        };
        records.push(Record {
            offset,
            timestamp,
            offset_delta: fields.offset_delta,
            timestamp_delta: fields.timestamp_delta,
            key: fields.key,
            value: fields.value,
            headers: fields.headers,
        });
    }
    if pos != section.len() {
        return Err(RecordError::TrailingBytes {
            declared,
            remaining: section.len() - pos,
        });
    }
    Ok(records)
}

/// A record's fields after its length, before offsets and timestamps are made absolute.
struct Fields {
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

/// Reads `data[pos..end]`; every read checks against `end`. Errors are the reason a record
/// is invalid, which the caller pairs with the record's index.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    end: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..self.end).unwrap_or_default()
    }

    fn varint(&mut self) -> Result<i32, &'static str> {
        let (value, len) = get_varint(self.rest()).map_err(varint_reason)?;
        self.pos += len;
        Ok(value)
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        let (value, len) = get_varlong(self.rest()).map_err(varint_reason)?;
        self.pos += len;
        Ok(value)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        let byte = *self
            .rest()
            .first()
            .ok_or("record ends inside its attributes")?;
        self.pos += 1;
        Ok(byte)
    }

    /// A length-prefixed byte string; `what` names it in errors.
    fn nullable_bytes(&mut self, what: Field) -> Result<Option<Bytes>, &'static str> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_negative| what.negative)?;
        if len > self.rest().len() {
            return Err(what.overrun);
        }
        let bytes = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(Some(bytes))
    }

    fn record_fields(&mut self) -> Result<Fields, &'static str> {
        let _attributes = self.byte()?;
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let key = self.nullable_bytes(KEY)?;
        let value = self.nullable_bytes(VALUE)?;
        let count = self.varint()?;
        let count = usize::try_from(count).map_err(|_negative| "negative header count")?;
        // Each header takes at least two bytes, which bounds the allocation by the input.
        let mut headers = Vec::with_capacity(count.min(self.rest().len() / 2));
        for _ in 0..count {
            let key = self.nullable_bytes(HEADER_KEY)?.ok_or("null header key")?;
            let value = self.nullable_bytes(HEADER_VALUE)?;
            headers.push(Header { key, value });
        }
        Ok(Fields {
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        })
    }
}

/// What to say about a length-prefixed field that is malformed.
#[derive(Clone, Copy)]
struct Field {
    negative: &'static str,
    overrun: &'static str,
}

const KEY: Field = Field {
    negative: "key length below -1",
    overrun: "key runs past the end of the record",
};
const VALUE: Field = Field {
    negative: "value length below -1",
    overrun: "value runs past the end of the record",
};
const HEADER_KEY: Field = Field {
    negative: "header key length below -1",
    overrun: "header key runs past the end of the record",
};
const HEADER_VALUE: Field = Field {
    negative: "header value length below -1",
    overrun: "header value runs past the end of the record",
};

fn varint_reason(err: RecordError) -> &'static str {
    match err {
        RecordError::VarintTooLong { .. } => "varint too long",
        _ => "record ends inside a varint",
    }
}

/// Appends one encoded record (length prefix included) to `buf`.
///
/// Fails only when a key, value or header is too large for the format's 32-bit lengths.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<(), RecordError> {
    let header_count = to_i32(headers.len(), "header count")?;
    let mut body_len = 1
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + bytes_field_len(key, "record key")?
        + bytes_field_len(value, "record value")?
        + varint_len(header_count);
    for header in headers {
        body_len += header.encoded_len()?;
    }
    let body_len_i32 = to_i32(body_len, "record")?;
    buf.reserve(varint_len(body_len_i32) + body_len);
    put_varint(buf, body_len_i32);
    buf.put_u8(0); // attributes: unused
    put_varlong(buf, timestamp_delta);
    put_varint(buf, offset_delta);
    put_nullable(buf, key);
    put_nullable(buf, value);
    put_varint(buf, header_count);
    for header in headers {
        put_nullable(buf, Some(&header.key));
        put_nullable(buf, header.value.as_deref());
    }
    Ok(())
}

/// Encoded size of a nullable byte string: its length varint plus its bytes.
fn bytes_field_len(field: Option<&[u8]>, what: &'static str) -> Result<usize, RecordError> {
    Ok(match field {
        None => varint_len(-1),
        Some(bytes) => varint_len(to_i32(bytes.len(), what)?) + bytes.len(),
    })
}

fn put_nullable(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(buf, -1),
        Some(bytes) => {
            // Lengths were checked against i32 while sizing the record.
            put_varint(buf, i32::try_from(bytes.len()).unwrap_or(i32::MAX));
            buf.extend_from_slice(bytes);
        }
    }
}

fn to_i32(len: usize, what: &'static str) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_overflow| RecordError::TooLarge { what, value: len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_for(count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 100,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: crate::Attributes::default(),
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: count,
        }
    }

    fn encode_one(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> Vec<u8> {
        let mut buf = Vec::new();
        assert!(encode_record(&mut buf, 0, 5, key, value, headers).is_ok());
        buf
    }

    #[test]
    fn a_record_encodes_as_kafka_documents() -> Result<(), RecordError> {
        let headers = [
            Header::new("h", Some(Bytes::from_static(b"v"))),
            Header::new("n", None),
        ];
        let buf = encode_one(Some(b"k"), None, &headers);
        #[rustfmt::skip]
        let expected = [
            0x1c, // length 14
            0x00, // attributes
            0x0a, // timestampDelta 5
            0x00, // offsetDelta 0
            0x02, b'k', // key
            0x01, // null value
            0x04, // two headers
            0x02, b'h', 0x02, b'v',
            0x02, b'n', 0x01,
        ];
        assert_eq!(buf, expected);
        let records = decode_records(&header_for(1), &Bytes::from(buf))?;
        assert_eq!(
            records,
            [Record {
                offset: 100,
                timestamp: 1_005,
                offset_delta: 0,
                timestamp_delta: 5,
                key: Some(Bytes::from_static(b"k")),
                value: None,
                headers: headers.to_vec(),
            }]
        );
        assert_eq!(
            records
                .first()
                .and_then(|r| r.headers.first())
                .and_then(Header::key_str),
            Some("h")
        );
        Ok(())
    }

    #[test]
    fn count_must_match() {
        let one = encode_one(None, Some(b"v"), &[]);
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(
            decode_records(&header_for(3), &Bytes::from(two.clone())),
            Err(RecordError::RecordCountMismatch {
                declared: 3,
                found: 2
            })
        );
        assert_eq!(
            decode_records(&header_for(1), &Bytes::from(two)),
            Err(RecordError::TrailingBytes {
                declared: 1,
                remaining: one.len()
            })
        );
        assert!(matches!(
            decode_records(&header_for(-1), &Bytes::from(one)),
            Err(RecordError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn malformed_fields_name_the_record() {
        let cases: [(&[u8], &str); 7] = [
            (&[0x01], "negative record length"),
            (&[0x10, 0], "record length runs past the end of the records"),
            (&[0x02, 0], "record ends inside a varint"),
            (&[0x0a, 0, 0, 0, 0x03, 0, 0], "key length below -1"),
            (
                &[0x0a, 0, 0, 0, 0x08, 0, 0],
                "key runs past the end of the record",
            ),
            (&[0x0c, 0, 0, 0, 0x01, 0x01, 0x01], "negative header count"),
            (
                &[0x0e, 0, 0, 0, 0x01, 0x01, 0x00, 0],
                "record length exceeds its fields",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                decode_records(&header_for(1), &Bytes::copy_from_slice(bytes)),
                Err(RecordError::InvalidRecord { index: 0, reason }),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn null_header_key_is_rejected() {
        let bytes: &[u8] = &[0x0e, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01];
        assert_eq!(
            decode_records(&header_for(1), &Bytes::copy_from_slice(bytes)),
            Err(RecordError::InvalidRecord {
                index: 0,
                reason: "null header key"
            })
        );
    }

    #[test]
    fn log_append_time_uses_max_timestamp() -> Result<(), RecordError> {
        let mut header = header_for(1);
        header.attributes = crate::Attributes::new(Compression::None, TimestampType::LogAppendTime);
        header.max_timestamp = 9_999;
        let records = decode_records(&header, &Bytes::from(encode_one(None, None, &[])))?;
        assert_eq!(
            records.first().map(|r| (r.timestamp, r.timestamp_delta)),
            Some((9_999, 5))
        );
        Ok(())
    }

    #[test]
    fn huge_count_does_not_preallocate() {
        // Four billion records claimed, seven bytes given: an error, and no 4-billion-slot Vec.
        let bytes = Bytes::from(encode_one(None, None, &[]));
        assert!(matches!(
            decode_records(&header_for(i32::MAX), &bytes),
            Err(RecordError::RecordCountMismatch { found: 1, .. })
        ));
    }
}
