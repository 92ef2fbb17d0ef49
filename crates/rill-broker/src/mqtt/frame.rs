//! MQTT framing: one packet at a time out of a connection's read buffer. The codec crate
//! decodes a packet's body but does not split a stream into packets; this does, bounding a
//! packet's size by its fixed header before any of its body is buffered.

use bytes::{Buf, BytesMut};
use mqtt5_protocol::{FixedHeader, MqttError, Packet, ReasonCode};

/// Why the bytes read cannot be a packet. Each closes the connection; a 5.0 client is told
/// why first (DISCONNECT with [`FrameError::reason`]).
#[derive(Debug)]
pub(super) enum FrameError {
    /// The remaining length runs past its 4 bytes.
    Malformed(String),
    /// The remaining length is over the maximum packet size.
    TooLarge(usize),
    /// The codec refused the packet.
    Decode(MqttError),
}

impl FrameError {
    /// The reason code a 5.0 client is told.
    pub(super) fn reason(&self) -> ReasonCode {
        match self {
            Self::Malformed(_) => ReasonCode::MalformedPacket,
            Self::TooLarge(_) => ReasonCode::PacketTooLarge,
            Self::Decode(MqttError::ProtocolError(_)) => ReasonCode::ProtocolError,
            Self::Decode(_) => ReasonCode::MalformedPacket,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed packet: {why}"),
            Self::TooLarge(len) => write!(f, "a packet of {len} bytes is over the maximum"),
            Self::Decode(err) => write!(f, "{err}"),
        }
    }
}

/// The remaining length of the packet at the start of `buf` and the length of its fixed
/// header, once both are there (`None`: more bytes needed).
fn header_len(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().enumerate().skip(1).take(4) {
        len |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return Ok(Some((i + 1, len)));
        }
    }
    if buf.len() >= 5 {
        return Err(FrameError::Malformed(
            "the remaining length runs past 4 bytes".to_owned(),
        ));
    }
    Ok(None)
}

/// How many more bytes the packet at the start of `buf` needs (0 when it is whole), checking
/// its size against `max` as soon as its fixed header is there.
pub(super) fn missing(buf: &[u8], max: usize) -> Result<usize, FrameError> {
    match header_len(buf)? {
        None => Ok(1),
        Some((_, len)) if len > max => Err(FrameError::TooLarge(len)),
        Some((header, len)) => Ok((header + len).saturating_sub(buf.len())),
    }
}

/// Splits the packet at the start of `buf` off and decodes it for a client of
/// `protocol_version` (4: 3.1.1, 5: 5.0); `None` while it is not whole. The body must be read
/// to its last byte.
pub(super) fn next(
    buf: &mut BytesMut,
    max: usize,
    protocol_version: u8,
) -> Result<Option<Packet>, FrameError> {
    if buf.is_empty() || missing(buf, max)? > 0 {
        return Ok(None);
    }
    let Some((header, len)) = header_len(buf)? else {
        return Ok(None);
    };
    let mut whole = buf.split_to(header + len).freeze();
    let fixed = FixedHeader::decode(&mut whole).map_err(FrameError::Decode)?;
    let packet = Packet::decode_from_body_with_version(
        fixed.packet_type,
        &fixed,
        &mut whole,
        protocol_version,
    )
    .map_err(FrameError::Decode)?;
    if whole.has_remaining() {
        return Err(FrameError::Malformed(format!(
            "{} bytes after the end of a {}",
            whole.remaining(),
            packet.packet_type_name()
        )));
    }
    Ok(Some(packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_split_off_only_when_whole() -> Result<(), String> {
        // PINGREQ, then half of a PUBACK.
        let mut buf = BytesMut::from(&[0xc0, 0x00, 0x40, 0x02, 0x00][..]);
        let first = next(&mut buf, 1024, 4).map_err(|e| e.to_string())?;
        assert!(matches!(first, Some(Packet::PingReq)));
        assert!(
            next(&mut buf, 1024, 4)
                .map_err(|e| e.to_string())?
                .is_none()
        );
        assert_eq!(missing(&buf, 1024).map_err(|e| e.to_string())?, 1);
        buf.extend_from_slice(&[0x07]);
        let ack = next(&mut buf, 1024, 4).map_err(|e| e.to_string())?;
        assert!(matches!(ack, Some(Packet::PubAck(a)) if a.packet_id == 7));
        assert!(buf.is_empty());
        Ok(())
    }

    #[test]
    fn sizes_are_checked_before_anything_is_buffered() {
        // 200 MiB announced, 10 bytes present.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x64, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            next(&mut buf, 1 << 20, 5),
            Err(FrameError::TooLarge(209_715_200))
        ));
        let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        let err = next(&mut buf, 1 << 20, 5);
        assert!(
            matches!(&err, Err(e @ FrameError::Malformed(_)) if e.reason() == ReasonCode::MalformedPacket)
        );
        // Trailing bytes inside the frame: a PINGREQ that claims one byte of body.
        let mut buf = BytesMut::from(&[0xc0, 0x01, 0x00][..]);
        assert!(next(&mut buf, 1024, 4).is_err());
    }
}
