//! Kafka's variable-length integers, as records and their headers use them.
//!
//! A `varint` is an `i32` and a `varlong` an `i64`, each zigzag-encoded (so small negative
//! numbers stay short) and then written 7 bits at a time, least significant group first, with the
//! high bit of each byte saying that another byte follows (the protobuf encoding). A length of
//! -1 encodes as the single byte `0x01` and is how records write a null key, value or header
//! value.

use bytes::BufMut;

use crate::RecordError;

/// Longest encoding of a varint (`i32`).
pub const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of a varlong (`i64`).
pub const MAX_VARLONG_LEN: usize = 10;

/// Appends `value` as a zigzag varint.
pub fn put_varint<B: BufMut>(buf: &mut B, value: i32) {
    put_unsigned(buf, u64::from(zigzag32(value)));
}

/// Appends `value` as a zigzag varlong.
pub fn put_varlong<B: BufMut>(buf: &mut B, value: i64) {
    put_unsigned(buf, zigzag64(value));
}

/// Bytes [`put_varint`] writes for `value`.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(zigzag32(value)))
}

/// Bytes [`put_varlong`] writes for `value`.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag64(value))
}

/// Decodes the varint at the start of `buf`, returning it and the bytes it took.
///
/// A `buf` that ends inside the varint gives [`RecordError::Truncated`] (whose `need` is then a
/// lower bound); more than five bytes, or bits beyond the 32nd, give
/// [`RecordError::VarintTooLong`].
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let (raw, len) = get_unsigned(buf, MAX_VARINT_LEN)?;
    let raw = u32::try_from(raw).map_err(|_overflow| RecordError::VarintTooLong {
        max_len: MAX_VARINT_LEN,
    })?;
    Ok((unzigzag32(raw), len))
}

/// Decodes the varlong at the start of `buf`, returning it and the bytes it took.
///
/// Errors as [`get_varint`] does, with a ten-byte maximum.
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let (raw, len) = get_unsigned(buf, MAX_VARLONG_LEN)?;
    Ok((unzigzag64(raw), len))
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn put_unsigned<B: BufMut>(buf: &mut B, mut raw: u64) {
    while raw >= 0x80 {
        buf.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.put_u8(raw as u8);
}

fn unsigned_len(raw: u64) -> usize {
    // One byte per started group of 7 significant bits, and at least one byte.
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Reads at most `max_len` bytes of unsigned LEB128, rejecting bits past 64.
fn get_unsigned(buf: &[u8], max_len: usize) -> Result<(u64, usize), RecordError> {
    let mut raw = 0u64;
    for (i, &byte) in buf.iter().take(max_len).enumerate() {
        let shift = 7 * i as u32;
        let group = u64::from(byte & 0x7f);
        // The tenth byte of a varlong may only carry the 64th bit.
        if shift == 63 && group > 1 {
            break;
        }
        raw |= group << shift;
        if byte & 0x80 == 0 {
            return Ok((raw, i + 1));
        }
    }
    if buf.len() < max_len && buf.iter().all(|b| b & 0x80 != 0) {
        return Err(RecordError::Truncated {
            need: buf.len() + 1,
            have: buf.len(),
        });
    }
    Err(RecordError::VarintTooLong { max_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varint(&mut buf, value);
        buf
    }

    fn varlong_bytes(value: i64) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varlong(&mut buf, value);
        buf
    }

    #[test]
    fn known_encodings() {
        // From Kafka's ByteUtilsTest and the protobuf documentation.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            varlong_bytes(i64::MIN),
            [0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn round_trips_and_lengths() -> Result<(), RecordError> {
        for value in [0, 1, -1, 63, -64, 64, 8191, -8192, 8192, i32::MAX, i32::MIN] {
            let buf = varint_bytes(value);
            assert_eq!(buf.len(), varint_len(value));
            assert_eq!(get_varint(&buf)?, (value, buf.len()));
        }
        for value in [0, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let buf = varlong_bytes(value);
            assert_eq!(buf.len(), varlong_len(value));
            assert_eq!(get_varlong(&buf)?, (value, buf.len()));
        }
        Ok(())
    }

    #[test]
    fn trailing_bytes_are_left_alone() -> Result<(), RecordError> {
        assert_eq!(get_varint(&[0x02, 0xff, 0xff])?, (1, 1));
        Ok(())
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(
            get_varint(&[]),
            Err(RecordError::Truncated { need: 1, have: 0 })
        );
        assert_eq!(
            get_varint(&[0x80, 0x80]),
            Err(RecordError::Truncated { need: 3, have: 2 })
        );
        let too_long = RecordError::VarintTooLong { max_len: 5 };
        assert_eq!(get_varint(&[0x80; 6]), Err(too_long.clone()));
        // Five bytes, but bits beyond the 32nd.
        assert_eq!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Err(too_long));
        let too_long = RecordError::VarintTooLong { max_len: 10 };
        assert_eq!(get_varlong(&[0xff; 11]), Err(too_long.clone()));
        let mut beyond_64 = vec![0xff; 9];
        beyond_64.push(0x02);
        assert_eq!(get_varlong(&beyond_64), Err(too_long));
    }
}
