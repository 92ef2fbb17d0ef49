//! Property tests: arbitrary records survive build → parse → decode with every codec, and
//! arbitrary bytes never make the decoders panic.

use bytes::Bytes;
use proptest::prelude::*;
use rill_record::varint::{get_varint, get_varlong, put_varint, put_varlong};
use rill_record::{
    Batch, BatchBuilder, Compression, DecodeOptions, HEADER_LEN, Header, Record, RecordSpec, legacy,
};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn header() -> impl Strategy<Value = Header> {
    (bytes(12), prop::option::of(bytes(24))).prop_map(|(key, value)| Header { key, value })
}

fn record() -> impl Strategy<Value = RecordSpec> {
    (
        // Timestamps within ±2^40 ms of each other, so deltas always fit.
        -(1i64 << 40)..(1i64 << 40),
        prop::option::of(bytes(40)),
        prop::option::of(bytes(300)),
        prop::collection::vec(header(), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| RecordSpec {
            timestamp,
            key,
            value,
            headers,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn built_batches_decode_to_their_records(
        codec in codec(),
        base_offset in 0i64..(1 << 50),
        producer in (any::<i64>(), any::<i16>(), any::<i32>()),
        specs in prop::collection::vec(record(), 1..24),
    ) {
        let mut builder = BatchBuilder::new()
            .compression(codec)
            .base_offset(base_offset)
            .producer(producer.0, producer.1, producer.2);
        for spec in &specs {
            let _ = builder.push(spec);
        }
        let bytes = builder.build()?;
        let batch = Batch::parse(&bytes)?;
        batch.verify_crc()?;
        let h = batch.header();
        prop_assert_eq!(h.total_len(), bytes.len());
        prop_assert_eq!(h.attributes.compression()?, codec);
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), producer);
        let base_ts = specs.first().map_or(0, |s| s.timestamp);
        prop_assert_eq!(h.base_timestamp, base_ts);
        prop_assert_eq!(Some(h.max_timestamp), specs.iter().map(|s| s.timestamp).max());
        prop_assert_eq!(h.last_offset(), base_offset + specs.len() as i64 - 1);
        let expected: Vec<Record> = specs
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
            .collect();
        prop_assert_eq!(batch.records()?, expected);
    }

    #[test]
    fn arbitrary_records_sections_never_panic(
        codec in codec(),
        count in -2i32..40,
        section in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let built = BatchBuilder::new()
            .compression(codec)
            .record(RecordSpec::new(0))
            .build()?;
        let mut bytes = built.get(..HEADER_LEN).unwrap_or_default().to_vec();
        bytes.extend_from_slice(&section);
        let batch_length = i32::try_from(bytes.len() - 12).unwrap_or(i32::MAX);
        if let Some(field) = bytes.get_mut(8..12) {
            field.copy_from_slice(&batch_length.to_be_bytes());
        }
        if let Some(field) = bytes.get_mut(57..61) {
            field.copy_from_slice(&count.to_be_bytes());
        }
        let options = DecodeOptions::default().verify_crc(false).max_records_len(1 << 16);
        let _ = Batch::parse(&bytes)?.records_with(options);
    }

    #[test]
    fn arbitrary_batches_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(batch) = Batch::parse(&bytes) {
            let _ = batch.records_with(DecodeOptions::default().verify_crc(false));
        }
    }

    /// Stored batches converted down to an old message format and up again keep every record
    /// (key, value, and for magic 1 the timestamp; headers are dropped by design).
    #[test]
    fn old_message_formats_round_trip_through_batches(
        codec in codec(),
        magic in 0i8..=1,
        specs in prop::collection::vec(record(), 1..16),
    ) {
        let mut builder = BatchBuilder::new().compression(codec);
        for spec in &specs {
            builder = builder.record(spec.clone());
        }
        let stored = builder.build()?;
        let set = legacy::batches_to_message_set(&stored, magic, 0, 1 << 20)?;
        let batch = legacy::message_set_to_batch(&set, 1 << 20)?;
        let records: Vec<Record> = Batch::parse(&batch)?.records()?;
        prop_assert_eq!(records.len(), specs.len());
        for (record, spec) in records.iter().zip(&specs) {
            prop_assert_eq!(&record.key, &spec.key);
            prop_assert_eq!(&record.value, &spec.value);
            prop_assert!(record.headers.is_empty());
            prop_assert_eq!(record.timestamp, if magic == 0 { -1 } else { spec.timestamp });
        }
    }

    #[test]
    fn arbitrary_message_sets_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = legacy::message_set_to_batch(&Bytes::from(bytes.clone()), 1 << 16);
        let _ = legacy::batches_to_message_set(&bytes, 1, 0, 1 << 16);
    }

    #[test]
    fn varints_round_trip(int in any::<i32>(), long in any::<i64>()) {
        let mut buf = Vec::new();
        put_varint(&mut buf, int);
        put_varlong(&mut buf, long);
        let (decoded_int, int_len) = get_varint(&buf)?;
        let (decoded_long, long_len) = get_varlong(buf.get(int_len..).unwrap_or_default())?;
        prop_assert_eq!((decoded_int, decoded_long), (int, long));
        prop_assert_eq!(int_len + long_len, buf.len());
    }

    #[test]
    fn arbitrary_varint_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
        let _ = get_varint(&bytes);
        let _ = get_varlong(&bytes);
    }
}
