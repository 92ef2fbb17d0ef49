//! Server-side use of mqtt5-protocol. The crate decodes a fixed header and a packet body
//! but has no framing (no "is a whole packet in the buffer?" step): `frame()` below is the
//! ~30 lines Rill would write. Run: cargo test -p spike-mqtt5-protocol -- --nocapture
#[path = "../../common/alloc.rs"]
mod alloc;
#[path = "../../common/fixtures.rs"]
mod fixtures;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

use bytes::{Buf, BytesMut};
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::puback::PubAckPacket;
use mqtt5_protocol::packet::publish::PublishPacket;
use mqtt5_protocol::packet::suback::{SubAckPacket, SubAckReasonCode};
use mqtt5_protocol::packet::MqttPacket;
use mqtt5_protocol::{
    parse_shared_subscription, FixedHeader, MqttError, Packet, PropertyId, PropertyValue, QoS,
    ReasonCode,
};

const MAX: usize = 1 << 20;

#[derive(Debug)]
enum FrameError {
    /// remaining length over the 4-byte limit
    Malformed,
    TooLarge(usize),
    Decode(#[allow(dead_code)] MqttError),
}

/// Rill's own framing: peek the fixed header, bound the remaining length before any
/// allocation, split off exactly one packet and hand the body to the crate.
fn frame(buf: &mut BytesMut, version: u8, max: usize) -> Result<Option<Packet>, FrameError> {
    let mut len = 0usize;
    let mut i = 1;
    loop {
        if i >= buf.len() {
            return Ok(None);
        }
        let b = buf[i];
        len |= ((b & 0x7F) as usize) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i == 5 {
            return Err(FrameError::Malformed);
        }
    }
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let mut whole = buf.split_to(i + len).freeze();
    let fh = FixedHeader::decode(&mut whole).map_err(FrameError::Decode)?;
    let mut body = whole; // exactly `len` bytes
    let p = Packet::decode_from_body_with_version(fh.packet_type, &fh, &mut body, version)
        .map_err(FrameError::Decode)?;
    if body.has_remaining() {
        // the crate does not check that the body was consumed: Rill has to
        return Err(FrameError::Decode(MqttError::MalformedPacket(format!(
            "{} trailing bytes",
            body.remaining()
        ))));
    }
    Ok(Some(p))
}

fn one(bytes: &[u8], version: u8) -> Result<Packet, FrameError> {
    frame(&mut BytesMut::from(bytes), version, MAX).map(|p| p.expect("a whole packet"))
}

fn user_props(p: &mqtt5_protocol::Properties) -> Vec<(String, String)> {
    p.iter()
        .filter_map(|(id, v)| match (id, v) {
            (PropertyId::UserProperty, PropertyValue::Utf8StringPair(k, v)) => {
                Some((k.clone(), v.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn decode_connect_v311() {
    // One CONNECT decoder for both versions: it reads the level and branches.
    let Packet::Connect(c) = one(&fixtures::connect_v311(), 4).unwrap() else { panic!() };
    assert_eq!(c.protocol_version, 4);
    assert_eq!(c.client_id, "c311");
    assert!(c.clean_start);
    assert_eq!(c.username.as_deref(), Some("alice"));
    assert_eq!(c.password.as_deref(), Some(&b"secret"[..])); // binary, as the spec says
}

#[test]
fn decode_connect_v5_properties() {
    let Packet::Connect(c) = one(&fixtures::connect_v5(), 5).unwrap() else { panic!() };
    assert_eq!(c.protocol_version, 5);
    assert_eq!(c.client_id, "c5");
    assert_eq!(c.properties.get_session_expiry_interval(), Some(3600));
    assert_eq!(c.properties.get_receive_maximum(), Some(10));
    assert_eq!(user_props(&c.properties), vec![("region".into(), "eu".into())]);
    let will = c.will.as_ref().unwrap();
    println!("will: {will:?}");
    assert_eq!(will.topic, "dead");
}

#[test]
fn decode_publish_qos1_v5() {
    let Packet::Publish(p) = one(&fixtures::publish_v5_qos1(), 5).unwrap() else { panic!() };
    assert_eq!((p.topic_name.as_str(), p.packet_id, p.qos), ("a/b", Some(7), QoS::AtLeastOnce));
    assert_eq!(&p.payload[..], b"hi");
    assert_eq!(user_props(&p.properties), vec![("a".into(), "b".into())]);
    assert_eq!(p.properties.get_content_type().as_deref(), Some("text/plain"));
}

#[test]
fn decode_subscribe_wildcard_and_share() {
    let Packet::Subscribe(s) = one(&fixtures::subscribe_v5(), 5).unwrap() else { panic!() };
    assert_eq!(s.packet_id, 9);
    let f: Vec<_> = s.filters.iter().map(|f| f.filter.as_str()).collect();
    assert_eq!(f, ["sensors/+/temp", "$share/g1/sensors/#"]);
    println!("options: {:?}", s.filters[1].options);
    // the crate ships the $share split and filter validation a server needs
    assert_eq!(parse_shared_subscription(f[1]), ("sensors/#", Some("g1")));
    assert!(mqtt5_protocol::is_valid_topic_filter("sensors/+/temp"));
    assert!(!mqtt5_protocol::is_valid_topic_filter("sensors/#/x"));
    assert!(!mqtt5_protocol::is_valid_topic_name("a/+"));
    let Packet::Subscribe(s) = one(&fixtures::subscribe_v311(), 4).unwrap() else { panic!() };
    assert_eq!(s.filters[1].filter, "$share/g1/sensors/#");
}

#[test]
fn decode_pubrel() {
    for v in [4, 5] {
        let Packet::PubRel(r) = one(&fixtures::pubrel(), v).unwrap() else { panic!() };
        assert_eq!(r.packet_id, 7);
    }
}

#[test]
fn encode_server_packets() {
    let mut out = BytesMut::new();
    let ack = ConnAckPacket::new(false, ReasonCode::Success)
        .with_receive_maximum(32)
        .with_topic_alias_maximum(16);
    ack.encode(&mut out).unwrap();
    println!("CONNACK v5: {:02x?}", &out[..]);
    assert_eq!(out[0], 0x20);
    let mut o4 = BytesMut::new();
    ConnAckPacket::new_v311(true, ReasonCode::Success).encode(&mut o4).unwrap();
    println!("CONNACK 3.1.1: {:02x?}", &o4[..]);
    assert_eq!(&o4[..], &[0x20, 0x02, 0x01, 0x00]);
    let mut o = BytesMut::new();
    PubAckPacket::new(7).encode(&mut o).unwrap();
    println!("PUBACK v5: {:02x?}", &o[..]);
    let mut o = BytesMut::new();
    SubAckPacket::new(9)
        .add_reason_code(SubAckReasonCode::GrantedQoS1)
        .add_reason_code(SubAckReasonCode::SharedSubscriptionsNotSupported)
        .encode(&mut o)
        .unwrap();
    assert_eq!(&o[..], &[0x90, 0x05, 0x00, 0x09, 0x00, 0x01, 0x9E]);
    let p = PublishPacket::new("a/b", &b"hi"[..], QoS::AtLeastOnce)
        .with_packet_id(7)
        .with_user_property("a".into(), "b".into())
        .with_content_type("text/plain".into())
        .with_topic_alias(3);
    let mut o = BytesMut::new();
    p.encode(&mut o).unwrap();
    let Packet::Publish(back) = one(&o, 5).unwrap() else { panic!() };
    assert_eq!(user_props(&back.properties), vec![("a".into(), "b".into())]);
    assert_eq!(back.properties.get_topic_alias(), Some(3));
    let Packet::ConnAck(back) = one(&out, 5).unwrap() else { panic!() };
    assert_eq!(back.receive_maximum(), Some(32));
}

#[test]
fn mosquitto_captures() {
    for (name, bytes, v) in [
        ("mosq_pub_v5_q1", fixtures::MOSQ_PUB_V5_Q1, 5),
        ("mosq_sub_v5", fixtures::MOSQ_SUB_V5, 5),
        ("mosq_pub_v5_q2", fixtures::MOSQ_PUB_V5_Q2, 5),
        ("mosq_pub_v311_q2", fixtures::MOSQ_PUB_V311_Q2, 4),
    ] {
        let mut buf = BytesMut::from(bytes);
        let mut n = 0;
        while let Some(p) = frame(&mut buf, v, MAX).unwrap_or_else(|e| panic!("{name}: {e:?}")) {
            println!("{name}: {p:?}");
            if let (Packet::Publish(p), 5) = (&p, v) {
                assert!(!user_props(&p.properties).is_empty());
            }
            n += 1;
        }
        assert!(buf.is_empty() && n >= 3, "{name}");
    }
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_varint_over_4_bytes() {
    let r = frame(&mut BytesMut::from(&fixtures::varint_5_bytes()[..]), 5, MAX);
    println!("own framing: {r:?}");
    // and the crate's own FixedHeader::decode on the same bytes:
    let e = FixedHeader::decode(&mut &fixtures::varint_5_bytes()[..]).unwrap_err();
    println!("FixedHeader::decode: {e:?}");
}

#[test]
fn hostile_256mib_length_10_bytes_present() {
    let input = fixtures::huge_len_10_bytes();
    let (r, peak, largest) =
        alloc::measure(|| frame(&mut BytesMut::from(&input[..]), 5, MAX).map(|p| p.is_some()));
    println!("own framing, max 1 MiB: {r:?}, peak {peak} B, largest {largest} B");
    assert!(matches!(r, Err(FrameError::TooLarge(268_435_455))));
    // The crate itself only reads the header; it never sizes a buffer from it:
    let (r, peak, _) = alloc::measure(|| FixedHeader::decode(&mut &input[..]).map(|h| h.remaining_length));
    println!("FixedHeader::decode: {r:?}, peak {peak} B");
    // If a caller skipped the bound and handed the 10 bytes as the body anyway:
    let fh = FixedHeader::decode(&mut &input[..]).unwrap();
    let (r, peak, _) = alloc::measure(|| {
        Packet::decode_from_body_with_version(fh.packet_type, &fh, &mut &input[5..], 5).map(|_| ())
    });
    println!("decode_from_body on 10 of 268435455 bytes: {r:?}, peak {peak} B");
    assert!(peak < 4096);
}

#[test]
fn hostile_truncated_every_prefix() {
    let (mut none, mut err) = (0, 0);
    for (name, full) in fixtures::all_good() {
        let v = if name == "connect_v311" { 4 } else { 5 };
        for cut in 0..full.len() {
            let r = std::panic::catch_unwind(|| {
                frame(&mut BytesMut::from(&full[..cut]), v, MAX).map(|p| p.is_some())
            })
            .unwrap_or_else(|_| panic!("{name}: panic at prefix {cut}"));
            match r {
                Ok(false) => none += 1,
                Ok(true) => {}
                Err(e) => {
                    err += 1;
                    println!("{name}[..{cut}]: {e:?}")
                }
            }
        }
    }
    println!("prefixes: {none} need-more, {err} errors, 0 panics");
}

#[test]
fn hostile_malformed_cases() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("type 0", fixtures::type0()),
        ("type 15 (AUTH, empty) as 3.1.1", fixtures::type15()),
        ("CONNECT level 9", fixtures::connect_level9()),
        ("CONNECT body cut inside frame", fixtures::connect_body_cut()),
        ("PUBLISH topic length overruns frame", fixtures::publish_topic_overrun()),
        ("PUBLISH QoS 3", fixtures::publish_qos3()),
        ("PUBLISH property length overruns", fixtures::publish_v5_prop_overrun()),
        ("SUBSCRIBE flags 0x80", fixtures::subscribe_bad_flags()),
        ("PUBLISH topic with wildcard", fixtures::publish_wildcard_topic()),
    ];
    for (name, bytes) in cases {
        let v = if name.contains("3.1.1") { 4 } else { 5 };
        let (r, peak, _) = alloc::measure(|| {
            std::panic::catch_unwind(|| one(&bytes, v).map(|p| format!("{p:?}")))
        });
        println!("{name}: {r:?} (peak {peak} B)");
        assert!(r.is_ok(), "{name}: panic");
    }
}

#[test]
fn valid_v5_short_forms() {
    let mut refused = 0;
    for (name, bytes) in fixtures::valid_v5_short_forms() {
        let r = one(&bytes, 5);
        println!("{name}: {r:?}");
        refused += r.is_err() as usize;
    }
    println!("mqtt5-protocol refuses {refused} of {} valid short forms", fixtures::valid_v5_short_forms().len());
}

#[test]
fn hostile_random_mutations() {
    let mut rng = fixtures::Rng(0x9E37_79B9_7F4A_7C15);
    let goods = fixtures::all_good();
    let (mut ok, mut err, mut max_peak) = (0u32, 0u32, 0usize);
    for i in 0..50_000 {
        let (_, base) = &goods[i % goods.len()];
        let mut b = base.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % b.len();
            b[at] = rng.next() as u8;
        }
        let v = if rng.next() % 2 == 0 { 4 } else { 5 };
        let (r, peak, _) = alloc::measure(|| {
            std::panic::catch_unwind(|| matches!(frame(&mut BytesMut::from(&b[..]), v, MAX), Ok(Some(_))))
        });
        match r {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => panic!("panic on {b:02x?} (v{v})"),
        }
        max_peak = max_peak.max(peak);
    }
    println!("50,000 mutated packets: {ok} decoded, {err} errors/need-more, 0 panics, max peak {max_peak} B");
}

#[test]
fn connect_level_9_is_not_refused_by_the_crate() {
    // Straight to the crate, without frame()'s trailing-bytes check: a CONNECT with
    // protocol level 9 decodes (as if 3.1.1-shaped), so Rill must check the level itself
    // and answer CONNACK 0x01 (3.1.1) / 0x84 Unsupported Protocol Version (5.0).
    let b = fixtures::connect_level9();
    let mut whole = bytes::Bytes::from(b);
    let fh = FixedHeader::decode(&mut whole).unwrap();
    let r = Packet::decode_from_body_with_version(fh.packet_type, &fh, &mut whole, 5);
    println!("level 9: {r:?}, {} body bytes left unread", whole.remaining());
    let Ok(Packet::Connect(c)) = r else { panic!("{r:?}") };
    assert_eq!(c.protocol_version, 9);
    assert!(whole.has_remaining(), "the crate does not check the body was consumed");
}

#[test]
fn connect_v5_password_without_username() {
    let r = one(&fixtures::connect_v5_password_only(), 5);
    println!("5.0 CONNECT, password without user name: {r:?}");
    assert!(r.is_err(), "refused although 5.0 allows it (GAP)");
}
