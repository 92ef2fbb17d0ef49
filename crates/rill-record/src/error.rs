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
}
