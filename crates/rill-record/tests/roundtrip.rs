//! Builder → parse → CRC → records, for every codec.

use bytes::Bytes;
use rill_record::batch::set_base_offset;
use rill_record::{
    Batch, BatchBuilder, Batches, Compression, DecodeOptions, HEADER_LEN, Header, Record,
    RecordError, RecordSpec, TimestampType,
};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

const T0: i64 = 1_700_000_000_000;

/// Records covering every nullable and every kind of timestamp step.
fn specs() -> Vec<RecordSpec> {
    vec![
        RecordSpec::new(T0).key("k0").value("v0"),
        RecordSpec::new(T0 + 10).value("no key"),
        RecordSpec::new(T0 - 20).key("tombstone"),
        RecordSpec::new(T0),
        RecordSpec::new(T0 + 86_400_000)
            .key("")
            .value("")
            .header("trace-id", "abc")
            .null_header("null-valued")
            .header("", ""),
        RecordSpec::new(T0 + 1).value(Bytes::from(vec![0xffu8; 3_000])),
    ]
}

/// What decoding `specs` at `base_offset` must give.
fn expected(specs: &[RecordSpec], base_offset: i64) -> Vec<Record> {
    let base_ts = specs.first().map_or(0, |s| s.timestamp);
    specs
        .iter()
        .zip(0..)
        .map(|(spec, i)| Record {
            offset: base_offset + i64::from(i),
            timestamp: spec.timestamp,
            offset_delta: i,
            timestamp_delta: spec.timestamp - base_ts,
            key: spec.key.clone(),
            value: spec.value.clone(),
            headers: spec.headers.clone(),
        })
        .collect()
}

fn build(codec: Compression, specs: &[RecordSpec]) -> Result<Bytes, RecordError> {
    let mut builder = BatchBuilder::new().compression(codec).base_offset(1_000);
    for spec in specs {
        let _ = builder.push(spec);
    }
    builder.build()
}

#[test]
fn round_trip_every_codec() -> Result<(), RecordError> {
    let specs = specs();
    for codec in CODECS {
        let bytes = build(codec, &specs)?;
        let batch = Batch::parse(&bytes)?;
        batch.verify_crc()?;
        let h = batch.header();
        assert_eq!(h.attributes.compression()?, codec);
        assert_eq!(h.records_count, 6);
        assert_eq!(h.last_offset(), 1_005);
        assert_eq!(h.base_timestamp, T0);
        assert_eq!(h.max_timestamp, T0 + 86_400_000);
        assert_eq!(batch.records()?, expected(&specs, 1_000), "{codec:?}");
        let headers = batch.records()?.get(4).map(|r| r.headers.clone());
        assert_eq!(
            headers
                .as_deref()
                .and_then(<[Header]>::first)
                .and_then(Header::key_str),
            Some("trace-id")
        );
    }
    Ok(())
}

#[test]
fn single_record_every_codec() -> Result<(), RecordError> {
    for codec in CODECS {
        for spec in [
            RecordSpec::new(0),
            RecordSpec::new(-1).key("k"),
            RecordSpec::new(i64::MAX),
        ] {
            let specs = [spec];
            let bytes = build(codec, &specs)?;
            assert_eq!(
                Batch::parse(&bytes)?.records()?,
                expected(&specs, 1_000),
                "{codec:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn compressed_batches_are_smaller() -> Result<(), RecordError> {
    let specs: Vec<_> = (0..200)
        .map(|i| RecordSpec::new(T0 + i).value(format!("a fairly repetitive value number {i}")))
        .collect();
    let plain = build(Compression::None, &specs)?.len();
    for codec in CODECS.into_iter().skip(1) {
        let packed = build(codec, &specs)?.len();
        assert!(packed < plain / 2, "{codec:?}: {packed} of {plain}");
    }
    Ok(())
}

#[test]
fn large_batch_spans_many_codec_blocks() -> Result<(), RecordError> {
    // About 300 KB uncompressed: several xerial chunks and LZ4 blocks.
    let specs: Vec<_> = (0..3_000)
        .map(|i| {
            let value: Vec<u8> = (0..100).map(|j| ((i * 7 + j * 13) % 256) as u8).collect();
            RecordSpec::new(T0 + i).key(format!("key-{i}")).value(value)
        })
        .collect();
    for codec in CODECS {
        let bytes = build(codec, &specs)?;
        assert_eq!(
            Batch::parse(&bytes)?.records()?,
            expected(&specs, 1_000),
            "{codec:?}"
        );
    }
    Ok(())
}

#[test]
fn log_append_time_records_report_max_timestamp() -> Result<(), RecordError> {
    let bytes = BatchBuilder::new()
        .timestamp_type(TimestampType::LogAppendTime)
        .compression(Compression::Lz4)
        .record(RecordSpec::new(5))
        .record(RecordSpec::new(9))
        .build()?;
    let records = Batch::parse(&bytes)?.records()?;
    let stamps: Vec<_> = records
        .iter()
        .map(|r| (r.timestamp, r.timestamp_delta))
        .collect();
    assert_eq!(stamps, [(9, 0), (9, 4)]);
    Ok(())
}

#[test]
fn decode_limit_refuses_large_records() -> Result<(), RecordError> {
    let spec = RecordSpec::new(T0).value(Bytes::from(vec![0u8; 1 << 20]));
    for codec in CODECS {
        let bytes = build(codec, std::slice::from_ref(&spec))?;
        let batch = Batch::parse(&bytes)?;
        assert!(
            matches!(
                batch.records_with(DecodeOptions::default().max_records_len(4_096)),
                Err(RecordError::DecompressedTooLarge { limit: 4_096, .. })
            ),
            "{codec:?}"
        );
        assert_eq!(batch.records()?.len(), 1);
    }
    Ok(())
}

#[test]
fn empty_batch_left_by_compaction_has_no_records() -> Result<(), RecordError> {
    for codec in CODECS {
        // Keep only the header, say "no records", and seal it again.
        let built = build(codec, &specs())?;
        let mut bytes = built.get(..HEADER_LEN).unwrap_or_default().to_vec();
        let batch_length = i32::try_from(HEADER_LEN - 12).unwrap_or(i32::MAX);
        if let Some(field) = bytes.get_mut(8..12) {
            field.copy_from_slice(&batch_length.to_be_bytes());
        }
        if let Some(field) = bytes.get_mut(57..61) {
            field.copy_from_slice(&0i32.to_be_bytes());
        }
        let crc = Batch::parse(&bytes)?.compute_crc();
        if let Some(field) = bytes.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        let batch = Batch::parse(&bytes)?;
        assert_eq!(batch.header().last_offset(), 1_005, "offsets stay consumed");
        assert!(batch.records()?.is_empty());
    }
    Ok(())
}

#[test]
fn rewritten_base_offset_moves_every_record() -> Result<(), RecordError> {
    let specs = specs();
    let mut log = Vec::new();
    for codec in CODECS {
        log.extend_from_slice(&build(codec, &specs)?);
    }
    let mut position = 0;
    let mut next_offset = 0;
    for len in Batches::new(&log.clone()).map(|b| b.map(|b| b.as_bytes().len())) {
        let len = len?;
        let batch_bytes = log.get_mut(position..position + len).unwrap_or_default();
        set_base_offset(batch_bytes, next_offset)?;
        position += len;
        next_offset += 6;
    }
    let mut offsets = Vec::new();
    for batch in Batches::new(&log) {
        offsets.extend(batch?.records()?.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..30).collect::<Vec<i64>>());
    Ok(())
}
