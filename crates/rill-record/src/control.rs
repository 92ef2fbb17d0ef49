//! Transaction markers: the control batches a transaction coordinator has written into each
//! partition of a transaction when it commits or aborts (KIP-98).
//!
//! A marker is a batch with the transactional and control bits set, the producer's id and
//! epoch, no sequence, and one record: its key is a version (0) and the control type (0 abort,
//! 1 commit), its value a version (0) and the coordinator's epoch, all big-endian.

use bytes::Bytes;

use crate::batch::{Attributes, Batch, write_crc};
use crate::builder::{BatchBuilder, RecordSpec};
use crate::error::RecordError;

/// The control type of a commit marker's key.
const COMMIT: i16 = 1;
/// The control type of an abort marker's key.
const ABORT: i16 = 0;

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The transaction committed (its records are visible to read_committed consumers) or was
    /// aborted (they are not).
    pub commit: bool,
    /// The epoch of the coordinator that wrote it, so a deposed coordinator's late markers can
    /// be refused.
    pub coordinator_epoch: i32,
}

/// Builds the marker batch ending a transaction of producer `producer_id` at `producer_epoch`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    timestamp: i64,
) -> Result<Bytes, RecordError> {
    let kind = if marker.commit { COMMIT } else { ABORT };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let batch = BatchBuilder::new()
        .transactional(true)
        .producer(producer_id, producer_epoch, -1)
        .record(RecordSpec::new(timestamp).key(key).value(value))
        .build()?;
    let mut bytes = batch.to_vec();
    set_control(&mut bytes)?;
    Ok(Bytes::from(bytes))
}

/// Sets the control bit of a built batch and recomputes its CRC.
fn set_control(batch: &mut [u8]) -> Result<(), RecordError> {
    const ATTRIBUTES: usize = 21;
    let have = batch.len();
    let field: &mut [u8; 2] = batch
        .get_mut(ATTRIBUTES..ATTRIBUTES + 2)
        .and_then(|f| f.try_into().ok())
        .ok_or(RecordError::Truncated { need: 23, have })?;
    let bits = i16::from_be_bytes(*field) | Attributes::CONTROL;
    *field = bits.to_be_bytes();
    write_crc(batch);
    Ok(())
}

/// The marker a control batch holds; `None` for a control batch of another kind (Kafka has
/// others, which carry no transaction outcome). Errors if the batch is not readable.
pub fn parse_marker(batch: &Batch<'_>) -> Result<Option<Marker>, RecordError> {
    let records = batch.records()?;
    let Some(record) = records.first() else {
        return Ok(None);
    };
    let field = |bytes: Option<&Bytes>, at: usize| -> Option<i16> {
        let b = bytes?.get(at..at + 2)?;
        Some(i16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let kind = match field(record.key.as_ref(), 2) {
        Some(COMMIT) => true,
        Some(ABORT) => false,
        _ => return Ok(None),
    };
    let coordinator_epoch = record
        .value
        .as_ref()
        .and_then(|v| v.get(2..6))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(-1, i32::from_be_bytes);
    Ok(Some(Marker {
        commit: kind,
        coordinator_epoch,
    }))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        for commit in [true, false] {
            let marker = Marker {
                commit,
                coordinator_epoch: 7,
            };
            let bytes = marker_batch(42, 3, marker, 1_000).unwrap();
            let batch = Batch::parse(&bytes).unwrap();
            batch.verify_crc().unwrap();
            let header = batch.header();
            assert!(header.attributes.is_control());
            assert!(header.attributes.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!(header.records_count, 1);
            assert_eq!(parse_marker(&batch).unwrap(), Some(marker));
            let record = &batch.records().unwrap()[0];
            let kind = if commit { 1 } else { 0 };
            assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, kind][..]));
            assert_eq!(record.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 7][..]));
        }
    }

    #[test]
    fn other_control_records_carry_no_marker() {
        let bytes = BatchBuilder::new()
            .record(RecordSpec::new(0).key(vec![0u8, 0, 0, 9]))
            .build()
            .unwrap();
        let batch = Batch::parse(&bytes).unwrap();
        assert_eq!(parse_marker(&batch).unwrap(), None);
    }
}
