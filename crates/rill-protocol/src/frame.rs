//! Framing: every Kafka request and response is a 4-byte big-endian size followed by that many
//! bytes (header, then body).
//!
//! [`split_frame`] takes one frame off the front of a read buffer, and [`write_frame`] writes one
//! with its size prefix. Neither does I/O; the connection task owns the socket and the buffers.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the size prefix in front of every frame.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB), a sensible `max` for [`split_frame`].
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// A frame's size prefix is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("frame size {size} is negative")]
    Negative {
        /// The size as sent.
        size: i32,
    },
    /// The size is above the limit (reading), or does not fit the `i32` prefix (writing).
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The size as sent, or the size of the frame being written.
        size: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Splits the first complete frame off the front of `buf` and returns its contents (header and
/// body, without the size prefix).
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame: read more bytes into it and
/// call again. The size is checked against `max` (and for being negative) as soon as its four
/// bytes are there, before anything is allocated or waited for; after an error the connection
/// should be closed, since the stream can no longer be trusted to be in step. No allocation
/// happens here: the frame shares `buf`'s memory.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(&[b0, b1, b2, b3]) = buf.get(..SIZE_PREFIX_LEN) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([b0, b1, b2, b3]);
    let size = usize::try_from(size).map_err(|_| FrameError::Negative { size })?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() - SIZE_PREFIX_LEN < size {
        return Ok(None);
    }
    buf.advance(SIZE_PREFIX_LEN);
    Ok(Some(buf.split_to(size).freeze()))
}

/// Appends one frame to `dst`: a size prefix, then whatever `encode` writes (header and body).
///
/// The prefix is reserved first and filled in once the length is known, so the frame is
/// encoded in place. If `encode` fails, or the frame is larger than an `i32` can say, `dst` is
/// left as it was and the error is returned.
pub fn write_frame<E, F>(dst: &mut BytesMut, encode: F) -> Result<(), E>
where
    E: From<FrameError>,
    F: FnOnce(&mut BytesMut) -> Result<(), E>,
{
    let start = dst.len();
    dst.put_i32(0);
    if let Err(err) = encode(dst) {
        dst.truncate(start);
        return Err(err);
    }
    let size = dst.len() - start - SIZE_PREFIX_LEN;
    let Ok(size_prefix) = i32::try_from(size) else {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            size,
            max: i32::MAX as usize,
        }
        .into());
    };
    if let Some(prefix) = dst.get_mut(start..start + SIZE_PREFIX_LEN) {
        prefix.copy_from_slice(&size_prefix.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn need_more_for_partial_prefix_and_partial_body() {
        let full = framed(b"hello");
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(split_frame(&mut buf, 1024), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed at cut {cut}");
        }
    }

    #[test]
    fn exact_frame() {
        let mut buf = BytesMut::from(&framed(b"hello")[..]);
        let frame = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&frame[..], b"hello");
        assert!(buf.is_empty());
        assert_eq!(split_frame(&mut buf, 1024), Ok(None));
    }

    #[test]
    fn empty_frame() {
        let mut buf = BytesMut::from(&framed(b"")[..]);
        assert_eq!(split_frame(&mut buf, 0).unwrap().unwrap().len(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer_then_a_partial_third() {
        let mut bytes = framed(b"one");
        bytes.extend(framed(b"second"));
        bytes.extend(&framed(b"third")[..6]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(&split_frame(&mut buf, 64).unwrap().unwrap()[..], b"one");
        assert_eq!(&split_frame(&mut buf, 64).unwrap().unwrap()[..], b"second");
        assert_eq!(split_frame(&mut buf, 64), Ok(None));
        assert_eq!(buf.len(), 6);
    }

    #[test]
    fn oversize_rejected_from_the_prefix_alone() {
        // Only the prefix has arrived: the size is judged before waiting for, or allocating,
        // the body.
        let mut buf = BytesMut::from(&1025_i32.to_be_bytes()[..]);
        let capacity = buf.capacity();
        assert_eq!(
            split_frame(&mut buf, 1024),
            Err(FrameError::TooLarge {
                size: 1025,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), capacity);
        let mut at_max = BytesMut::from(&1024_i32.to_be_bytes()[..]);
        assert_eq!(split_frame(&mut at_max, 1024), Ok(None));
        let mut huge = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            split_frame(&mut huge, DEFAULT_MAX_FRAME_SIZE),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn negative_size_rejected() {
        for size in [-1_i32, i32::MIN] {
            let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
            assert_eq!(
                split_frame(&mut buf, usize::MAX),
                Err(FrameError::Negative { size })
            );
        }
    }

    #[test]
    fn write_then_split_round_trips() {
        let mut dst = BytesMut::from(&b"already here"[..]);
        write_frame::<FrameError, _>(&mut dst, |b| {
            b.put_slice(b"payload");
            Ok(())
        })
        .unwrap();
        let mut rest = dst.split_off(12);
        assert_eq!(&dst[..], b"already here");
        assert_eq!(
            &split_frame(&mut rest, 64).unwrap().unwrap()[..],
            b"payload"
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn failed_encode_leaves_dst_unchanged() {
        let mut dst = BytesMut::from(&b"keep"[..]);
        let res = write_frame(&mut dst, |b| {
            b.put_slice(b"partial");
            Err(FrameError::Negative { size: -7 })
        });
        assert_eq!(res, Err(FrameError::Negative { size: -7 }));
        assert_eq!(&dst[..], b"keep");
    }
}
