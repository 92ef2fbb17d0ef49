//! The one error type of this crate.

/// Everything that can be wrong with a record batch's bytes.
///
/// Each variant carries enough context to say which bytes were at fault; none of them is
/// produced by a panic path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than the structure being read needs.
    #[error("truncated record batch: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The `magic` byte is not 2 (only RecordBatch v2 is supported).
    #[error("unsupported record batch magic {magic} (only magic 2 is supported)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// `batchLength` is smaller than a v2 header or larger than allowed.
    #[error("invalid record batch length {length}")]
    InvalidLength {
        /// The batchLength field.
        length: i32,
    },
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over attributes..end.
        computed: u32,
    },
    /// The compression bits of `attributes` name no known codec.
    #[error("unknown compression codec id {id}")]
    UnknownCompression {
        /// The three low bits of attributes.
        id: i16,
    },
    /// Compressing or decompressing the records failed.
    #[error("{codec} codec error: {message}")]
    Codec {
        /// The codec's name.
        codec: &'static str,
        /// What the codec library said.
        message: String,
    },
    /// A record inside the batch is malformed.
    #[error("invalid record at index {index}: {reason}")]
    InvalidRecord {
        /// Index of the record within the batch.
        index: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Decompressed records would exceed the caller's limit (a decompression bomb, or a limit
    /// set too low for the data).
    #[error("{codec} records decompress to more than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// A varint or varlong is longer than its type allows (5 and 10 bytes).
    #[error("varint longer than {max_len} bytes or out of range")]
    VarintTooLong {
        /// The longest encoding the type allows.
        max_len: usize,
    },
    /// The records section ended before `recordsCount` records were read.
    #[error("record batch declares {declared} records but holds {found}")]
    RecordCountMismatch {
        /// The header's records count.
        declared: i32,
        /// Records actually decoded before the bytes ran out.
        found: usize,
    },
    /// Bytes remain in the records section after the declared number of records.
    #[error("{remaining} bytes remain after the last of {declared} records")]
    TrailingBytes {
        /// The header's records count.
        declared: i32,
        /// Bytes left over.
        remaining: usize,
    },
    /// A magic 0 or 1 message's CRC-32 does not match its bytes.
    #[error(
        "message crc mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    MessageCrcMismatch {
        /// The message's offset field.
        offset: i64,
        /// CRC stored in the message.
        stored: u32,
        /// CRC-32 (IEEE) computed over magic..end.
        computed: u32,
    },
    /// A magic 0 or 1 message set breaks one of the format's rules.
    #[error("invalid message set: {reason}")]
    InvalidMessageSet {
        /// Which rule.
        reason: &'static str,
    },
    /// A builder was asked to build a batch without records.
    #[error("record batch has no records")]
    EmptyBatch,
    /// A built batch would not fit the format's 32-bit lengths and counts.
    #[error("record batch too large: {what} is {value}")]
    TooLarge {
        /// Which quantity overflowed (`batchLength`, `records count`).
        what: &'static str,
        /// Its value.
        value: usize,
    },
}
