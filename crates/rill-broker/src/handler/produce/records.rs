//! What a topic's configs ask of a batch's records before it is appended, as Kafka's log
//! validator asks it: a key on every record of a compacted topic, CreateTime timestamps inside
//! the topic's window, and the topic's codec. A batch that needs none of this (the defaults)
//! is never decompressed and keeps the zero-copy path.

use bytes::{Bytes, BytesMut};
use rill_protocol::ErrorCode;
use rill_record::{Batch, BatchHeader, Compression, DEFAULT_MAX_RECORDS_LEN, RecordError};

use crate::topic_config::{TopicCompression, TopicConfig};

/// Why a partition's batch is refused: the code, a message, and the records at fault
/// (`batch_index`, message) for ProduceResponse v8+'s `record_errors`.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) records: Vec<(i32, String)>,
}

impl Refusal {
    pub(super) fn new(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message,
            records: Vec::new(),
        }
    }
}

/// The record-level work one batch needs on one topic.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// `cleanup.policy` includes compact: every record needs a key.
    compacted: bool,
    /// The CreateTime timestamps accepted, oldest and newest.
    window: Option<(i64, i64)>,
    /// The codec (and level) the batch must be stored in, when not the one it came in.
    recompress: Option<(Compression, Option<i32>)>,
    max_message_bytes: i32,
}

impl Rules {
    pub(super) fn new(config: &TopicConfig, header: &BatchHeader, now: i64) -> Self {
        let recompress = match config.compression {
            TopicCompression::Producer => None,
            TopicCompression::Codec { codec, level } => {
                // An unknown codec id also takes this path, where decompressing refuses it.
                (header.attributes.compression().ok() != Some(codec)).then_some((codec, level))
            }
        };
        Self {
            compacted: config.cleanup.compact,
            window: config.timestamp_window(now),
            recompress,
            max_message_bytes: config.max_message_bytes,
        }
    }

    /// Nothing to do: the batch is appended as it came.
    pub(super) fn is_empty(&self) -> bool {
        !self.compacted && self.window.is_none() && self.recompress.is_none()
    }

    /// Checks the records and recompresses the batch, as the rules say. `partition` names the
    /// topic partition in messages (`orders-0`). CPU-bound: a large batch is given to a
    /// blocking thread by the caller.
    pub(super) fn apply(&self, batch: BytesMut, partition: &str) -> Result<BytesMut, Refusal> {
        let corrupt = |err: RecordError| {
            Refusal::new(
                ErrorCode::CorruptMessage,
                format!("the record batch cannot be read: {err}"),
            )
        };
        let view = Batch::parse(&batch).map_err(corrupt)?;
        let header = *view.header();
        let section = view
            .records_section(DEFAULT_MAX_RECORDS_LEN)
            .map_err(corrupt)?;
        if self.compacted || self.window.is_some() {
            self.check_records(&header, &section, partition)
                .map_err(|refusal| refusal.unwrap_or_else(corrupt))?;
        }
        let Some((codec, level)) = self.recompress else {
            return Ok(batch);
        };
        let rebuilt = rill_record::rebuild(&header, &section, codec, level).map_err(corrupt)?;
        if rebuilt.len() > usize::try_from(self.max_message_bytes).unwrap_or(0) {
            return Err(Refusal::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "the record batch is {} bytes in the topic's codec {}, more than \
                     max.message.bytes ({})",
                    rebuilt.len(),
                    codec.name(),
                    self.max_message_bytes
                ),
            ));
        }
        // A unique `Bytes` becomes a `BytesMut` without a copy.
        Ok(BytesMut::from(Bytes::from(rebuilt)))
    }

    /// Kafka's per-record rules: a compacted topic's records need a key, and a CreateTime
    /// timestamp must lie in the window. Every record at fault is reported; the batch fails with
    /// INVALID_TIMESTAMP when all faults are timestamps, else INVALID_RECORD.
    fn check_records(
        &self,
        header: &BatchHeader,
        section: &Bytes,
        partition: &str,
    ) -> Result<(), Result<Refusal, RecordError>> {
        let records = rill_record::decode_records(header, section).map_err(Err)?;
        let mut faults = Vec::new();
        let mut only_timestamps = true;
        for (index, record) in records.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            if self.compacted && record.key.is_none() {
                only_timestamps = false;
                faults.push((
                    index,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition \
                         {partition}."
                    ),
                ));
                continue;
            }
            if let Some((oldest, newest)) = self.window {
                let ts = record.timestamp;
                // -1 is "no timestamp", which Kafka lets through.
                if ts != -1 && (ts < oldest || ts > newest) {
                    faults.push((
                        index,
                        format!(
                            "Timestamp {ts} of message with offset {index} is out of range. The \
                             timestamp should be within [{oldest}, {newest}]"
                        ),
                    ));
                }
            }
        }
        let Some((_, first)) = faults.first() else {
            return Ok(());
        };
        let code = if only_timestamps {
            ErrorCode::InvalidTimestamp
        } else {
            ErrorCode::InvalidRecord
        };
        let message = format!(
            "{} of the batch's {} records refused, so none was appended; the first: {first}",
            faults.len(),
            records.len()
        );
        Err(Ok(Refusal {
            code,
            message,
            records: faults,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rill_record::{BatchBuilder, RecordSpec};

    use super::*;
    use crate::config::BrokerConfig;

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        let overrides: BTreeMap<String, String> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        TopicConfig::resolve(&BrokerConfig::default(), &overrides)
    }

    fn batch(records: &[(Option<&str>, i64)], codec: Compression) -> BytesMut {
        let mut builder = BatchBuilder::new().compression(codec);
        for (key, ts) in records {
            let mut spec = RecordSpec::new(*ts).value("v");
            if let Some(key) = key {
                spec = spec.key(key.to_string());
            }
            builder = builder.record(spec);
        }
        builder
            .build()
            .map(|b| BytesMut::from(&b[..]))
            .unwrap_or_default()
    }

    fn rules(config: &TopicConfig, batch: &BytesMut, now: i64) -> Rules {
        let header = BatchHeader::parse(batch).unwrap_or_else(|err| panic!("{err}"));
        Rules::new(config, &header, now)
    }

    #[test]
    fn defaults_need_nothing() {
        let b = batch(&[(None, 5)], Compression::Lz4);
        assert!(rules(&config(&[]), &b, 10).is_empty());
        let same = config(&[("compression.type", "lz4")]);
        assert!(rules(&same, &b, 10).is_empty());
    }

    #[test]
    fn compacted_topics_refuse_keyless_records_each_reported() {
        let compact = config(&[("cleanup.policy", "compact")]);
        let b = batch(&[(Some("a"), 5), (None, 5), (None, 5)], Compression::Gzip);
        let refusal = rules(&compact, &b, 10)
            .apply(b, "t-0")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(refusal.code, ErrorCode::InvalidRecord);
        let indexes: Vec<i32> = refusal.records.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2]);
        assert!(
            refusal.records[0]
                .1
                .contains("without key in topic partition t-0")
        );
        let keyed = batch(&[(Some("a"), 5)], Compression::Gzip);
        assert!(rules(&compact, &keyed, 10).apply(keyed, "t-0").is_ok());
    }

    #[test]
    fn timestamps_outside_the_window_are_invalid_timestamp() {
        let bounded = config(&[
            ("message.timestamp.before.max.ms", "100"),
            ("message.timestamp.after.max.ms", "10"),
        ]);
        let b = batch(
            &[(Some("a"), 950), (Some("b"), 899), (Some("c"), 1011)],
            Compression::None,
        );
        let refusal = rules(&bounded, &b, 1000)
            .apply(b, "t-0")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(refusal.code, ErrorCode::InvalidTimestamp);
        let indexes: Vec<i32> = refusal.records.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2]);
        let inside = batch(&[(Some("a"), 900), (Some("b"), 1010)], Compression::None);
        assert!(rules(&bounded, &inside, 1000).apply(inside, "t-0").is_ok());
    }

    #[test]
    fn batches_are_recompressed_into_the_topic_codec() {
        let gzip = config(&[("compression.type", "gzip")]);
        let b = batch(&[(Some("a"), 5), (None, 6)], Compression::None);
        let before = Batch::parse(&b)
            .and_then(|v| v.records())
            .unwrap_or_default();
        let stored = rules(&gzip, &b, 10)
            .apply(b, "t-0")
            .unwrap_or_else(|r| panic!("{r:?}"));
        let view = Batch::parse(&stored).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(view.verify_crc().ok(), Some(()));
        assert_eq!(
            view.header().attributes.compression().ok(),
            Some(Compression::Gzip)
        );
        assert_eq!(view.records().unwrap_or_default(), before);

        let tiny = config(&[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "70"),
        ]);
        let b = batch(&[(Some("a"), 5), (Some("b"), 6)], Compression::Zstd);
        let refusal = rules(&tiny, &b, 10).apply(b, "t-0").err();
        assert_eq!(refusal.map(|r| r.code), Some(ErrorCode::MessageTooLarge));
    }
}
