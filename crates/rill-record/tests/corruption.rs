//! Cut, flipped and garbage bytes give errors, never panics.

use bytes::Bytes;
use rill_record::{
    Batch, BatchBuilder, Compression, DecodeOptions, HEADER_LEN, LOG_OVERHEAD, RecordError,
    RecordSpec,
};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn sample(codec: Compression) -> Result<Bytes, RecordError> {
    BatchBuilder::new()
        .compression(codec)
        .producer(7, 1, 0)
        .record(
            RecordSpec::new(1_000)
                .key("key")
                .value("value")
                .header("h", "v"),
        )
        .record(RecordSpec::new(990).null_header("n"))
        .record(RecordSpec::new(1_200).key("k2").value(vec![b'x'; 200]))
        .build()
}

/// Parses and decodes, checking the CRC.
fn decode(bytes: &[u8]) -> Result<usize, RecordError> {
    Ok(Batch::parse(bytes)?.records()?.len())
}

/// Parses and decodes without the CRC, so that corrupt bytes reach the decoders.
fn decode_unchecked(bytes: &[u8]) -> Result<usize, RecordError> {
    let options = DecodeOptions::default().verify_crc(false);
    Ok(Batch::parse(bytes)?.records_with(options)?.len())
}

/// Sets `batchLength` to the bytes' length and recomputes the CRC: only the records decoder
/// can then tell that something is wrong.
fn reseal(bytes: &mut [u8]) -> Result<(), RecordError> {
    let batch_length = i32::try_from(bytes.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    if let Some(field) = bytes.get_mut(8..12) {
        field.copy_from_slice(&batch_length.to_be_bytes());
    }
    let crc = Batch::parse(bytes)?.compute_crc();
    if let Some(field) = bytes.get_mut(17..21) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

#[test]
fn every_cut_is_an_error() -> Result<(), RecordError> {
    for codec in CODECS {
        let bytes = sample(codec)?;
        assert_eq!(decode(&bytes)?, 3);
        for cut in 0..bytes.len() {
            let cut_bytes = bytes.get(..cut).unwrap_or_default();
            assert!(decode(cut_bytes).is_err(), "{codec:?} cut at {cut}");
        }
    }
    Ok(())
}

#[test]
fn every_cut_of_the_records_is_an_error_even_resealed() -> Result<(), RecordError> {
    for codec in CODECS {
        let bytes = sample(codec)?;
        for cut in HEADER_LEN..bytes.len() {
            let mut cut_bytes = bytes.get(..cut).unwrap_or_default().to_vec();
            reseal(&mut cut_bytes)?;
            assert!(Batch::parse(&cut_bytes)?.verify_crc().is_ok());
            assert!(decode(&cut_bytes).is_err(), "{codec:?} cut at {cut}");
        }
    }
    Ok(())
}

#[test]
fn trailing_bytes_after_the_records_are_an_error() -> Result<(), RecordError> {
    let mut bytes = sample(Compression::None)?.to_vec();
    bytes.push(0);
    reseal(&mut bytes)?;
    assert!(matches!(
        decode(&bytes),
        Err(RecordError::TrailingBytes { remaining: 1, .. })
    ));
    Ok(())
}

#[test]
fn flipped_bytes_fail_the_crc_and_never_panic() -> Result<(), RecordError> {
    for codec in CODECS {
        let bytes = sample(codec)?;
        // From attributes (the first CRC-covered byte) to the end.
        for pos in 21..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = bytes.to_vec();
                if let Some(byte) = flipped.get_mut(pos) {
                    *byte ^= mask;
                }
                let batch = Batch::parse(&flipped)?;
                assert!(
                    matches!(batch.verify_crc(), Err(RecordError::CrcMismatch { .. })),
                    "{codec:?} flip {mask:#x} at {pos}"
                );
                assert!(matches!(
                    decode(&flipped),
                    Err(RecordError::CrcMismatch { .. })
                ));
                // Past the CRC, the decoders see the corruption: any answer but a panic.
                let _ = decode_unchecked(&flipped);
            }
        }
    }
    Ok(())
}

#[test]
fn flipped_records_resealed_never_panic() -> Result<(), RecordError> {
    let mut errors = 0;
    let mut total = 0;
    for codec in CODECS {
        let bytes = sample(codec)?;
        for pos in HEADER_LEN..bytes.len() {
            for mask in [0x01u8, 0x40, 0xff] {
                let mut flipped = bytes.to_vec();
                if let Some(byte) = flipped.get_mut(pos) {
                    *byte ^= mask;
                }
                reseal(&mut flipped)?;
                total += 1;
                // A flip inside a key or value can decode to different but well-formed
                // records; structural flips must be errors. Either way, no panic.
                if decode(&flipped).is_err() {
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > total / 4, "{errors} errors in {total} flips");
    Ok(())
}

#[test]
fn garbage_records_never_panic() -> Result<(), RecordError> {
    // A fixed pseudo-random stream (xorshift), so failures reproduce.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for codec in CODECS {
        let header = sample(codec)?
            .get(..HEADER_LEN)
            .unwrap_or_default()
            .to_vec();
        for len in [0usize, 1, 2, 7, 16, 64, 300] {
            for _ in 0..50 {
                let mut bytes = header.clone();
                bytes.extend((0..len).map(|_| next() as u8));
                reseal(&mut bytes)?;
                let _ = decode(&bytes);
            }
        }
    }
    Ok(())
}
