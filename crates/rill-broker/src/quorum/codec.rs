//! The quorum's wire encoding of raft-rs messages between voters: our own, fixed-layout and
//! bounds-checked, so that no peer's bytes are ever parsed by rust-protobuf 2 (RUSTSEC-2024-0437:
//! a stack overflow on crafted input). raft-rs's types are plain structs; every field is carried.
//!
//! Layout (big-endian): a version byte, then the message's numbers, its context, its entries and
//! an optional snapshot. Byte strings are a u32 length and the bytes; lists a u32 count.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protobuf::ProtobufEnum as _;
use raft::eraftpb::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};

const VERSION: u8 = 1;

/// Why a frame is not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    #[error("the frame ends inside a message")]
    Short,
    #[error("unknown encoding version {0}")]
    Version(u8),
    #[error("unknown {0} {1}")]
    Enum(&'static str, i32),
    #[error("{0} bytes after the message")]
    Trailing(usize),
}

/// Encodes a message for a peer.
pub(crate) fn encode(message: &Message) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    out.put_u8(VERSION);
    out.put_i32(message.get_msg_type().value());
    for n in [
        message.to,
        message.from,
        message.term,
        message.log_term,
        message.index,
        message.commit,
        message.commit_term,
        message.request_snapshot,
        message.reject_hint,
        message.deprecated_priority,
    ] {
        out.put_u64(n);
    }
    out.put_u8(u8::from(message.reject));
    out.put_i64(message.priority);
    put_bytes(&mut out, &message.context);
    put_len(&mut out, message.entries.len());
    for entry in &message.entries {
        out.put_i32(entry.get_entry_type().value());
        out.put_u64(entry.term);
        out.put_u64(entry.index);
        put_bytes(&mut out, &entry.data);
        put_bytes(&mut out, &entry.context);
        out.put_u8(u8::from(entry.sync_log));
    }
    match message.snapshot.as_ref() {
        None => out.put_u8(0),
        Some(snapshot) => {
            out.put_u8(1);
            put_bytes(&mut out, &snapshot.data);
            let meta = snapshot.get_metadata();
            out.put_u64(meta.index);
            out.put_u64(meta.term);
            let conf = meta.get_conf_state();
            for ids in [
                &conf.voters,
                &conf.learners,
                &conf.voters_outgoing,
                &conf.learners_next,
            ] {
                put_len(&mut out, ids.len());
                for id in ids {
                    out.put_u64(*id);
                }
            }
            out.put_u8(u8::from(conf.auto_leave));
        }
    }
    out.freeze()
}

/// Decodes a peer's message; any frame that is not exactly one message is an error.
pub(crate) fn decode(mut frame: Bytes) -> Result<Message, DecodeError> {
    let buf = &mut frame;
    let version = u8_of(buf)?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = i32_of(buf)?;
    let mut message = Message {
        msg_type: MessageType::from_i32(kind).ok_or(DecodeError::Enum("message type", kind))?,
        to: u64_of(buf)?,
        from: u64_of(buf)?,
        term: u64_of(buf)?,
        log_term: u64_of(buf)?,
        index: u64_of(buf)?,
        commit: u64_of(buf)?,
        commit_term: u64_of(buf)?,
        request_snapshot: u64_of(buf)?,
        reject_hint: u64_of(buf)?,
        deprecated_priority: u64_of(buf)?,
        reject: u8_of(buf)? != 0,
        priority: i64_of(buf)?,
        context: bytes_of(buf)?,
        ..Message::default()
    };
    let count = len_of(buf, 29)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = i32_of(buf)?;
        entries.push(Entry {
            entry_type: EntryType::from_i32(kind).ok_or(DecodeError::Enum("entry type", kind))?,
            term: u64_of(buf)?,
            index: u64_of(buf)?,
            data: bytes_of(buf)?,
            context: bytes_of(buf)?,
            sync_log: u8_of(buf)? != 0,
            ..Entry::default()
        });
    }
    message.entries = entries.into();
    if u8_of(buf)? != 0 {
        let data = bytes_of(buf)?;
        let index = u64_of(buf)?;
        let term = u64_of(buf)?;
        let mut lists: [Vec<u64>; 4] = Default::default();
        for list in &mut lists {
            let n = len_of(buf, 8)?;
            *list = (0..n).map(|_| u64_of(buf)).collect::<Result<_, _>>()?;
        }
        let [voters, learners, voters_outgoing, learners_next] = lists;
        let conf = ConfState {
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave: u8_of(buf)? != 0,
            ..ConfState::default()
        };
        let mut metadata = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        metadata.set_conf_state(conf);
        let mut snapshot = Snapshot {
            data,
            ..Snapshot::default()
        };
        snapshot.set_metadata(metadata);
        message.set_snapshot(snapshot);
    }
    if buf.has_remaining() {
        return Err(DecodeError::Trailing(buf.remaining()));
    }
    Ok(message)
}

fn put_len(out: &mut BytesMut, len: usize) {
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.put_slice(bytes);
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        return Err(DecodeError::Short);
    }
    Ok(())
}

fn u8_of(buf: &mut Bytes) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn i32_of(buf: &mut Bytes) -> Result<i32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn u64_of(buf: &mut Bytes) -> Result<u64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

fn i64_of(buf: &mut Bytes) -> Result<i64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

/// A count of items of at least `item` bytes each, checked against what is left (so a forged
/// count cannot make us allocate more than the frame holds).
fn len_of(buf: &mut Bytes, item: usize) -> Result<usize, DecodeError> {
    need(buf, 4)?;
    let n = buf.get_u32() as usize;
    need(buf, n.saturating_mul(item))?;
    Ok(n)
}

fn bytes_of(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let n = len_of(buf, 1)?;
    Ok(buf.split_to(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let mut message = Message {
            msg_type: MessageType::MsgAppend,
            to: 2,
            from: 1,
            term: 7,
            log_term: 6,
            index: 41,
            commit: 40,
            commit_term: 6,
            request_snapshot: 3,
            reject: true,
            reject_hint: 9,
            context: Bytes::from_static(b"ctx"),
            deprecated_priority: 4,
            priority: -5,
            ..Message::default()
        };
        message.entries = vec![
            Entry {
                entry_type: EntryType::EntryNormal,
                term: 7,
                index: 42,
                data: Bytes::from_static(b"{\"type\":\"InitCluster\"}"),
                ..Entry::default()
            },
            Entry {
                entry_type: EntryType::EntryConfChangeV2,
                term: 7,
                index: 43,
                context: Bytes::from_static(b"c"),
                sync_log: true,
                ..Entry::default()
            },
        ]
        .into();
        let mut snapshot =
            crate::quorum::store::make_snapshot(40, 6, vec![1, 2, 3], b"img".to_vec());
        snapshot.mut_metadata().mut_conf_state().learners = vec![4];
        snapshot.mut_metadata().mut_conf_state().auto_leave = true;
        message.set_snapshot(snapshot);
        message
    }

    #[test]
    fn every_field_round_trips() {
        let message = sample();
        assert_eq!(decode(encode(&message)), Ok(message));
        let bare = Message::default();
        assert_eq!(decode(encode(&bare)), Ok(bare));
    }

    #[test]
    fn every_cut_and_bad_byte_is_an_error_not_a_panic() {
        let whole = encode(&sample());
        for len in 0..whole.len() {
            assert!(decode(whole.slice(..len)).is_err(), "cut at {len}");
        }
        let mut trailing = whole.to_vec();
        trailing.push(0);
        assert_eq!(decode(trailing.into()), Err(DecodeError::Trailing(1)));
        let mut version = whole.to_vec();
        version[0] = 9;
        assert_eq!(decode(version.into()), Err(DecodeError::Version(9)));
        // A forged entry count far beyond the frame.
        let mut forged = BytesMut::new();
        forged.put_u8(VERSION);
        forged.put_i32(0);
        forged.put_bytes(0, 8 * 10 + 1 + 8);
        forged.put_u32(0);
        forged.put_u32(u32::MAX);
        assert_eq!(decode(forged.freeze()), Err(DecodeError::Short));
    }
}
