//! Kafka's four record codecs: gzip, snappy, LZ4 and zstd, with bounded decompression.
//!
//! A v2 batch compresses its records section as a whole; the codec is named by the low bits of
//! `attributes`. What each codec's bytes look like on the wire:
//!
//! | codec  | compress writes | decompress accepts |
//! |--------|-----------------|--------------------|
//! | gzip   | one gzip member (RFC 1952) | one or more concatenated members |
//! | snappy | xerial framing, as the Java client writes it | xerial framing, or one raw snappy block (librdkafka) |
//! | lz4    | an LZ4 frame, 64 KiB independent blocks, no checksums | complete LZ4 frames, checksums verified when present |
//! | zstd   | a zstd frame with its content size | zstd frames, with or without content size |
//!
//! [`decompress`] never produces more than the caller's `max_len` bytes and never allocates
//! much beyond it (a codec's own window, at most a few MiB, aside): more output is a
//! [`RecordError::DecompressedTooLarge`], which is how a decompression bomb is refused.

use std::io::{Read, Write};

use crate::{Compression, RecordError};

/// How a xerial snappy stream starts.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// What follows the magic: version 1 and compatible version 1, big-endian int32s. Written, but
/// not checked when reading.
const XERIAL_VERSIONS: [u8; 8] = [0, 0, 0, 1, 0, 0, 0, 1];
/// Magic plus versions.
const XERIAL_HEADER_LEN: usize = XERIAL_MAGIC.len() + XERIAL_VERSIONS.len();
/// Uncompressed bytes per xerial chunk, the Java client's (xerial's) default block size.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// zstd level when none is asked for (zstd's and Kafka's default).
const ZSTD_LEVEL: i32 = 3;
/// The smallest zstd window the decoder accepts, whatever the output limit: zstd's standard
/// levels use windows up to 8 MiB when the input size is unknown, as in a client's stream.
const ZSTD_MIN_WINDOW_LOG: u32 = 23;
/// zstd's own default limit on the window a frame may ask for (128 MiB).
const ZSTD_MAX_WINDOW_LOG: u32 = 27;

/// Compresses `data` with `codec`, returning the compressed bytes.
///
/// [`Compression::None`] returns a copy of `data`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    compress_into(codec, data, &mut out)?;
    Ok(out)
}

/// Compresses `data` with `codec`, appending the compressed bytes to `out`.
///
/// A builder uses this to write records straight after a header it has already placed in `out`.
pub fn compress_into(
    codec: Compression,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    compress_into_level(codec, None, data, out)
}

/// Compresses `data` as [`compress_into`] does, at `level` where the codec has levels: gzip
/// 1..=9 and zstd's (out-of-range levels are clamped by the codec). `None`, and snappy and lz4
/// (one level each here), use the codec's default.
pub fn compress_into_level(
    codec: Compression,
    level: Option<i32>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    match codec {
        Compression::Gzip => {
            out.reserve(data.len() / 2 + 32);
            let gzip_level = level
                .and_then(|l| u32::try_from(l.clamp(1, 9)).ok())
                .map_or_else(flate2::Compression::default, flate2::Compression::new);
            let mut encoder = flate2::write::GzEncoder::new(out, gzip_level);
            encoder
                .write_all(data)
                .map_err(|err| codec_error(codec, &err))?;
            let _out = encoder.finish().map_err(|err| codec_error(codec, &err))?;
        }
        Compression::Snappy => snappy_xerial_encode(data, out)?,
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            out.reserve(data.len() / 2 + 32);
            // What the Java client's KafkaLZ4BlockOutputStream writes: its reader decodes each
            // block on its own, and it computes content checksums differently from the spec.
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder = FrameEncoder::with_frame_info(info, out);
            encoder
                .write_all(data)
                .map_err(|err| codec_error(codec, &err))?;
            let _out = encoder.finish().map_err(|err| codec_error(codec, &err))?;
        }
        Compression::Zstd => {
            out.reserve(data.len() / 2 + 32);
            let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))
                .map_err(|err| codec_error(codec, &err))?;
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            encoder
                .set_pledged_src_size(Some(len))
                .and_then(|()| encoder.include_contentsize(true))
                .and_then(|()| encoder.write_all(data))
                .map_err(|err| codec_error(codec, &err))?;
            let _out = encoder.finish().map_err(|err| codec_error(codec, &err))?;
        }
        Compression::None => out.extend_from_slice(data),
    }
    Ok(())
}

/// Decompresses `data`, refusing to produce more than `max_len` bytes.
///
/// Errors are [`RecordError::Codec`] for bytes the codec rejects (truncated, corrupt, trailing
/// garbage) and [`RecordError::DecompressedTooLarge`] past the limit. [`Compression::None`]
/// returns a copy of `data`, subject to the same limit.
pub fn decompress(codec: Compression, data: &[u8], max_len: usize) -> Result<Vec<u8>, RecordError> {
    // A first allocation sized for typical ratios; growth past it is bounded by `max_len`.
    let hint = data.len().saturating_mul(4);
    match codec {
        Compression::None => {
            if data.len() > max_len {
                return Err(too_large(codec, max_len));
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(
            flate2::read::MultiGzDecoder::new(data),
            codec,
            max_len,
            hint,
        ),
        Compression::Snappy => {
            // A raw block cannot start with the magic: 0x82 0x53 is a length, then 'N' would be
            // a copy with nothing before it to copy from.
            if data.starts_with(&XERIAL_MAGIC) {
                snappy_xerial_decode(data, max_len)
            } else {
                let mut out = Vec::new();
                snappy_raw_decode(data, max_len, &mut out)?;
                Ok(out)
            }
        }
        Compression::Lz4 => {
            lz4_check_complete(data)?;
            read_bounded(
                lz4_flex::frame::FrameDecoder::new(data),
                codec,
                max_len,
                hint,
            )
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|err| codec_error(codec, &err))?;
            decoder
                .window_log_max(zstd_window_log_max(max_len))
                .map_err(|err| codec_error(codec, &err))?;
            read_bounded(decoder, codec, max_len, hint)
        }
    }
}

/// Checks that `data` is one or more LZ4 frames, each complete up to its end mark and
/// checksum, by walking block sizes without decompressing.
///
/// lz4_flex ends a frame quietly where the input runs out between blocks (or inside a block
/// size), which would turn a cut frame into a shorter output; Kafka's Java client rejects it.
fn lz4_check_complete(mut data: &[u8]) -> Result<(), RecordError> {
    const MAGIC: u32 = 0x184D_2204;
    const END_MARK: u32 = 0;
    const UNCOMPRESSED_BIT: u32 = 1 << 31;
    let truncated = || lz4_error("truncated lz4 frame");
    if data.is_empty() {
        return Err(truncated());
    }
    while !data.is_empty() {
        let (magic, rest) = data.split_first_chunk::<4>().ok_or_else(truncated)?;
        if u32::from_le_bytes(*magic) != MAGIC {
            return Err(lz4_error("not an lz4 frame (bad magic number)"));
        }
        let (&[flg, _bd], rest) = rest.split_first_chunk::<2>().ok_or_else(truncated)?;
        let block_checksums = flg & 0x10 != 0;
        let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
        let content_checksum = if flg & 0x04 != 0 { 4 } else { 0 };
        let dict_id = if flg & 0x01 != 0 { 4 } else { 0 };
        // Content size and dictionary id, then the one-byte descriptor checksum.
        let mut rest = rest
            .get(content_size + dict_id + 1..)
            .ok_or_else(truncated)?;
        loop {
            let (size, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
            let size = u32::from_le_bytes(*size);
            if size == END_MARK {
                rest = tail;
                break;
            }
            let len = (size & !UNCOMPRESSED_BIT) as usize + if block_checksums { 4 } else { 0 };
            rest = tail.get(len..).ok_or_else(truncated)?;
        }
        data = rest.get(content_checksum..).ok_or_else(truncated)?;
    }
    Ok(())
}

/// The largest zstd window worth allowing for an output of at most `max_len` bytes.
fn zstd_window_log_max(max_len: usize) -> u32 {
    let needed = usize::BITS - max_len.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG)
}

/// Reads `reader` to its end, failing once it yields more than `max_len` bytes.
fn read_bounded(
    reader: impl Read,
    codec: Compression,
    max_len: usize,
    hint: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(hint.min(max_len));
    // One byte more than allowed tells "exactly at the limit" from "past it".
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    let _read = reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|err| codec_error(codec, &err))?;
    if out.len() > max_len {
        return Err(too_large(codec, max_len));
    }
    Ok(out)
}

fn snappy_xerial_encode(data: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
    let chunks = data.len().div_ceil(XERIAL_BLOCK_LEN);
    // Each chunk's worst case, so that no chunk reallocates.
    out.reserve(XERIAL_HEADER_LEN + chunks * (4 + snap::raw::max_compress_len(XERIAL_BLOCK_LEN)));
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSIONS);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK_LEN) {
        let len_pos = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
        let written = match out.get_mut(start..) {
            Some(dst) => encoder
                .compress(chunk, dst)
                .map_err(|err| codec_error(Compression::Snappy, &err))?,
            None => 0,
        };
        out.truncate(start + written);
        let len = i32::try_from(written).map_err(|_overflow| RecordError::TooLarge {
            what: "snappy chunk",
            value: written,
        })?;
        if let Some(field) = out.get_mut(len_pos..start) {
            field.copy_from_slice(&len.to_be_bytes());
        }
    }
    Ok(())
}

fn snappy_xerial_decode(data: &[u8], max_len: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| snappy_error("truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| snappy_error("truncated xerial chunk length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_negative| snappy_error("negative xerial chunk length"))?;
        let (chunk, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| snappy_error("xerial chunk runs past the end of the data"))?;
        let room = max_len.saturating_sub(out.len());
        snappy_raw_decode(chunk, room, &mut out).map_err(|err| match err {
            RecordError::DecompressedTooLarge { .. } => too_large(codec, max_len),
            other => other,
        })?;
        rest = tail;
    }
    Ok(out)
}

/// Decodes one raw snappy block, appending to `out`; the block's declared length is checked
/// against `max_len` before anything is allocated.
fn snappy_raw_decode(block: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|err| codec_error(codec, &err))?;
    if len > max_len {
        return Err(too_large(codec, max_len));
    }
    let start = out.len();
    out.resize(start + len, 0);
    if let Some(dst) = out.get_mut(start..) {
        let _written = snap::raw::Decoder::new()
            .decompress(block, dst)
            .map_err(|err| codec_error(codec, &err))?;
    }
    Ok(())
}

fn codec_error(codec: Compression, err: &dyn std::fmt::Display) -> RecordError {
    RecordError::Codec {
        codec: codec.name(),
        message: err.to_string(),
    }
}

fn snappy_error(message: &str) -> RecordError {
    RecordError::Codec {
        codec: Compression::Snappy.name(),
        message: message.to_owned(),
    }
}

fn lz4_error(message: &str) -> RecordError {
    RecordError::Codec {
        codec: Compression::Lz4.name(),
        message: message.to_owned(),
    }
}

fn too_large(codec: Compression, limit: usize) -> RecordError {
    RecordError::DecompressedTooLarge {
        codec: codec.name(),
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Compressible but not trivial: several xerial chunks and LZ4 blocks.
    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn round_trip_every_codec() -> Result<(), RecordError> {
        for codec in CODECS {
            for len in [0, 1, 100, XERIAL_BLOCK_LEN, XERIAL_BLOCK_LEN + 1, 200_000] {
                let data = sample(len);
                let packed = compress(codec, &data)?;
                assert_eq!(decompress(codec, &packed, len)?, data, "{codec:?} {len}");
            }
        }
        Ok(())
    }

    #[test]
    fn compress_into_appends() -> Result<(), RecordError> {
        for codec in CODECS {
            let mut out = b"head".to_vec();
            compress_into(codec, b"records", &mut out)?;
            assert!(out.starts_with(b"head"));
            assert_eq!(
                decompress(codec, out.get(4..).unwrap_or_default(), 7)?,
                b"records"
            );
        }
        Ok(())
    }

    #[test]
    fn snappy_writes_xerial_chunks() -> Result<(), RecordError> {
        let data = sample(XERIAL_BLOCK_LEN * 2 + 10);
        let packed = compress(Compression::Snappy, &data)?;
        assert_eq!(packed.get(..8), Some(&XERIAL_MAGIC[..]));
        assert_eq!(packed.get(8..16), Some(&XERIAL_VERSIONS[..]));
        // Three chunks: walk their lengths to the exact end.
        let mut rest = packed.get(16..).unwrap_or_default();
        let mut chunks = 0;
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = usize::try_from(i32::from_be_bytes(*len)).unwrap_or(usize::MAX);
            rest = tail.get(len..).unwrap_or_default();
            chunks += 1;
        }
        assert_eq!(chunks, 3);
        Ok(())
    }

    #[test]
    fn snappy_reads_a_raw_block() -> Result<(), RecordError> {
        let data = sample(5_000);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .map_err(|err| codec_error(Compression::Snappy, &err))?;
        assert_eq!(decompress(Compression::Snappy, &raw, data.len())?, data);
        Ok(())
    }

    #[test]
    fn snappy_header_only_is_empty() -> Result<(), RecordError> {
        let header = [XERIAL_MAGIC, XERIAL_VERSIONS].concat();
        assert!(decompress(Compression::Snappy, &header, 10)?.is_empty());
        // The magic alone is a cut header.
        assert!(decompress(Compression::Snappy, &XERIAL_MAGIC, 10).is_err());
        Ok(())
    }

    #[test]
    fn zstd_reads_frames_without_content_size() -> Result<(), RecordError> {
        // As zstd-jni's and librdkafka's streaming encoders write them.
        let data = sample(100_000);
        let mut packed = Vec::new();
        let mut encoder = zstd::stream::write::Encoder::new(&mut packed, 3)
            .map_err(|err| codec_error(Compression::Zstd, &err))?;
        encoder
            .write_all(&data)
            .map_err(|err| codec_error(Compression::Zstd, &err))?;
        let _ = encoder
            .finish()
            .map_err(|err| codec_error(Compression::Zstd, &err))?;
        // Frame header descriptor: no content-size field.
        assert_eq!(packed.get(4).map(|fhd| fhd & 0xc0), Some(0));
        assert_eq!(decompress(Compression::Zstd, &packed, data.len())?, data);
        Ok(())
    }

    #[test]
    fn output_limit_is_enforced() -> Result<(), RecordError> {
        // A megabyte of zeros compresses to almost nothing: a miniature bomb.
        let zeros = vec![0u8; 1 << 20];
        for codec in CODECS {
            let packed = compress(codec, &zeros)?;
            assert_eq!(
                decompress(codec, &packed, (1 << 20) - 1),
                Err(too_large(codec, (1 << 20) - 1)),
                "{codec:?}"
            );
            assert_eq!(decompress(codec, &packed, 1 << 20)?.len(), 1 << 20);
        }
        Ok(())
    }

    #[test]
    fn raw_snappy_length_is_checked_before_allocating() {
        // A raw block claiming 2^32 - 1 bytes of output, followed by nothing.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            decompress(Compression::Snappy, &claim, 1 << 20),
            Err(too_large(Compression::Snappy, 1 << 20))
        );
    }

    #[test]
    fn garbage_and_cuts_are_errors() -> Result<(), RecordError> {
        let data = sample(70_000);
        for codec in CODECS.into_iter().skip(1) {
            let packed = compress(codec, &data)?;
            // Every byte near the ends (headers, end marks, checksums), every fifth between:
            // each cut decodes up to 70 KB, and every byte would take seconds unoptimized.
            let len = packed.len();
            let cuts = (0..len).filter(|&cut| cut < 64 || cut + 64 > len || cut % 5 == 0);
            for cut in cuts {
                let bytes = packed.get(..cut).unwrap_or_default();
                match decompress(codec, bytes, data.len()) {
                    Err(_) => {}
                    // xerial framing has no end marker: a cut between chunks is a shorter
                    // stream, which the record decoder then finds short of records.
                    Ok(out) if codec == Compression::Snappy => {
                        assert!(
                            out.len() < data.len() && data.starts_with(&out),
                            "cut {cut}"
                        );
                    }
                    Ok(out) => panic!("{codec:?} accepted a cut at {cut}: {} bytes", out.len()),
                }
            }
            let mut garbage = packed.clone();
            for byte in garbage.iter_mut().skip(packed.len() / 3).take(16) {
                *byte ^= 0x5a;
            }
            if let Ok(out) = decompress(codec, &garbage, data.len()) {
                assert!(out != data, "{codec:?} garbage decoded to the original");
            }
            assert!(decompress(codec, b"definitely not compressed", 1 << 20).is_err());
        }
        Ok(())
    }

    #[test]
    fn zstd_window_follows_the_limit() {
        assert_eq!(zstd_window_log_max(0), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log_max(1 << 20), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log_max(1 << 25), 25);
        assert_eq!(zstd_window_log_max((1 << 25) + 1), 26);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_MAX_WINDOW_LOG);
    }
}
