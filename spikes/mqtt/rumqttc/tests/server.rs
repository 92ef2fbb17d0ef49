//! Server-side use of rumqttc's codec modules: rumqttc::mqttbytes::v4 (MQTT 3.1.1) and
//! rumqttc::v5::mqttbytes::v5 (MQTT 5.0). Run: cargo test -p spike-rumqttc -- --nocapture
#[path = "../../common/alloc.rs"]
mod alloc;
#[path = "../../common/fixtures.rs"]
mod fixtures;

#[global_allocator]
static A: alloc::Counting = alloc::Counting;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5::{self as m5, Packet};
use rumqttc::v5::mqttbytes::QoS;
use tokio_util::codec::Decoder;

const MAX: u32 = 1 << 20; // the broker's maximum packet size for these tests

fn read5(bytes: &[u8]) -> Result<Packet, rumqttc::v5::mqttbytes::Error> {
    Packet::read(&mut BytesMut::from(bytes), Some(MAX))
}

#[test]
fn decode_connect_v311() {
    let p = v4::Packet::read(&mut BytesMut::from(&fixtures::connect_v311()[..]), MAX as usize)
        .unwrap();
    let v4::Packet::Connect(c) = p else { panic!("{p:?}") };
    assert_eq!(c.client_id, "c311");
    assert!(c.clean_session);
    assert_eq!(c.keep_alive, 60);
    let login = c.login.unwrap();
    assert_eq!((login.username.as_str(), login.password.as_str()), ("alice", "secret"));
    // The v5 reader refuses a 3.1.1 CONNECT: the server must peek the protocol level
    // (byte 7 of the body) itself and pick the module.
    let e = read5(&fixtures::connect_v311()).unwrap_err();
    println!("v5 reader on a 3.1.1 CONNECT: {e:?}");
    assert!(matches!(e, rumqttc::v5::mqttbytes::Error::InvalidProtocolLevel(4)));
}

#[test]
fn decode_connect_v5_properties() {
    let p = read5(&fixtures::connect_v5()).unwrap();
    let Packet::Connect(c, will, login) = p else { panic!("{p:?}") };
    assert_eq!(c.client_id, "c5");
    assert!(c.clean_start);
    let props = c.properties.unwrap();
    assert_eq!(props.session_expiry_interval, Some(3600));
    assert_eq!(props.receive_maximum, Some(10));
    assert_eq!(props.user_properties, vec![("region".into(), "eu".into())]);
    let will = will.unwrap();
    assert_eq!((&will.topic[..], &will.message[..]), (&b"dead"[..], &b"bye"[..]));
    assert!(login.is_none());
}

#[test]
fn decode_publish_qos1_v5() {
    let p = read5(&fixtures::publish_v5_qos1()).unwrap();
    let Packet::Publish(p) = p else { panic!("{p:?}") };
    assert_eq!((&p.topic[..], p.pkid, p.qos), (&b"a/b"[..], 7, QoS::AtLeastOnce));
    assert_eq!(&p.payload[..], b"hi");
    let props = p.properties.unwrap();
    assert_eq!(props.user_properties, vec![("a".into(), "b".into())]);
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
}

#[test]
fn decode_subscribe_wildcard_and_share() {
    let p = read5(&fixtures::subscribe_v5()).unwrap();
    let Packet::Subscribe(s) = p else { panic!("{p:?}") };
    assert_eq!(s.pkid, 9);
    let paths: Vec<_> = s.filters.iter().map(|f| f.path.as_str()).collect();
    // $share/ is passed through as text: splitting group and filter is the server's job.
    assert_eq!(paths, ["sensors/+/temp", "$share/g1/sensors/#"]);
    assert_eq!(s.filters[1].qos, QoS::AtLeastOnce);
    println!("v5 filter options: {:?}", s.filters[1]);
    let p = v4::Packet::read(&mut BytesMut::from(&fixtures::subscribe_v311()[..]), 1 << 20)
        .unwrap();
    let v4::Packet::Subscribe(s) = p else { panic!("{p:?}") };
    assert_eq!(s.filters[1].path, "$share/g1/sensors/#");
}

#[test]
fn decode_pubrel() {
    let Packet::PubRel(r) = read5(&fixtures::pubrel()).unwrap() else { panic!() };
    assert_eq!(r.pkid, 7);
    let v4::Packet::PubRel(r) =
        v4::Packet::read(&mut BytesMut::from(&fixtures::pubrel()[..]), 1 << 20).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.pkid, 7);
}

#[test]
fn encode_server_packets() {
    let mut out = BytesMut::new();
    // CONNACK 5.0 with receive maximum and topic alias maximum
    // No constructor or Default on the server-side types: every field spelled out.
    let props = m5::ConnAckProperties {
        session_expiry_interval: None,
        receive_max: Some(32),
        max_qos: None,
        retain_available: None,
        max_packet_size: None,
        assigned_client_identifier: None,
        topic_alias_max: Some(16),
        reason_string: None,
        user_properties: vec![],
        wildcard_subscription_available: None,
        subscription_identifiers_available: None,
        shared_subscription_available: None,
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    };
    let ack = m5::ConnAck {
        session_present: false,
        code: m5::ConnectReturnCode::Success,
        properties: Some(props),
    };
    Packet::ConnAck(ack.clone()).write(&mut out, None).unwrap();
    println!("CONNACK v5: {:02x?}", &out[..]);
    assert_eq!(&out[..], &[0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x20, 0x22, 0x00, 0x10]);
    // CONNACK 3.1.1
    let mut o4 = BytesMut::new();
    v4::Packet::ConnAck(v4::ConnAck::new(v4::ConnectReturnCode::Success, true))
        .write(&mut o4, 1 << 20)
        .unwrap();
    assert_eq!(&o4[..], &[0x20, 0x02, 0x01, 0x00]);
    // PUBACK 5.0, success without properties: the 4-byte short form
    let mut o = BytesMut::new();
    Packet::PubAck(m5::PubAck::new(7, None)).write(&mut o, None).unwrap();
    assert_eq!(&o[..], &[0x40, 0x02, 0x00, 0x07]);
    // SUBACK 5.0 granting QoS 1 and refusing the second filter
    let mut o = BytesMut::new();
    let sa = m5::SubAck {
        pkid: 9,
        return_codes: vec![
            m5::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            m5::SubscribeReasonCode::SharedSubscriptionsNotSupported,
        ],
        properties: None,
    };
    Packet::SubAck(sa).write(&mut o, None).unwrap();
    assert_eq!(&o[..], &[0x90, 0x05, 0x00, 0x09, 0x00, 0x01, 0x9E]);
    // PUBLISH 5.0 QoS 1 with user property and content type, back to a subscriber
    let mut pp = m5::PublishProperties::default();
    pp.user_properties.push(("a".into(), "b".into()));
    pp.content_type = Some("text/plain".into());
    pp.topic_alias = Some(3);
    let mut p = m5::Publish::new("a/b", QoS::AtLeastOnce, Bytes::from_static(b"hi"), Some(pp));
    p.pkid = 7;
    let mut o = BytesMut::new();
    Packet::Publish(p.clone()).write(&mut o, None).unwrap();
    let back = read5(&o).unwrap();
    assert_eq!(back, Packet::Publish(p));
    // Round trip of the CONNACK through the reader a client would use
    assert_eq!(read5(&out).unwrap(), Packet::ConnAck(ack));
}

#[test]
fn mosquitto_captures() {
    for (name, bytes) in [
        ("mosq_pub_v5_q1", fixtures::MOSQ_PUB_V5_Q1),
        ("mosq_sub_v5", fixtures::MOSQ_SUB_V5),
        ("mosq_pub_v5_q2", fixtures::MOSQ_PUB_V5_Q2),
    ] {
        let mut buf = BytesMut::from(bytes);
        let mut n = 0;
        while !buf.is_empty() {
            if buf[0] == 0xE0 && buf.len() <= 3 {
                // mosquitto ends with DISCONNECT e0 00 (pub) or e0 01 04 (sub): both valid
                // 5.0 short forms, both refused by rumqttc (see valid_v5_short_forms).
                let raw = format!("{:02x?}", &buf[..]);
                let e = Packet::read(&mut buf, Some(MAX)).unwrap_err();
                println!("{name}: DISCONNECT {raw} -> {e:?}  (GAP)");
                n += 1;
                break;
            }
            let p = Packet::read(&mut buf, Some(MAX)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            println!("{name}: {p:?}");
            if let Packet::Publish(p) = &p {
                let props = p.properties.as_ref().unwrap();
                assert!(!props.user_properties.is_empty());
            }
            n += 1;
        }
        assert!(n >= 3, "{name}");
    }
    let mut buf = BytesMut::from(fixtures::MOSQ_PUB_V311_Q2);
    while !buf.is_empty() {
        let p = v4::Packet::read(&mut buf, 1 << 20).unwrap();
        println!("mosq_pub_v311_q2: {p:?}");
    }
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_varint_over_4_bytes() {
    let e5 = read5(&fixtures::varint_5_bytes()).unwrap_err();
    let e4 = v4::Packet::read(&mut BytesMut::from(&fixtures::varint_5_bytes()[..]), 1 << 20)
        .unwrap_err();
    println!("5-byte remaining length: v5 {e5:?}, v4 {e4:?}");
    assert!(matches!(e5, rumqttc::v5::mqttbytes::Error::MalformedRemainingLength));
}

#[test]
fn hostile_256mib_length_10_bytes_present() {
    let input = fixtures::huge_len_10_bytes();
    let hwm0 = alloc::vm_hwm_kib();
    // 1. Packet::read with no maximum: asks for more bytes, allocates nothing itself.
    let (r, peak, _) = alloc::measure(|| Packet::read(&mut BytesMut::from(&input[..]), None));
    println!("read(None): {r:?}, peak {peak} B");
    assert!(matches!(r, Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(n)) if n == 1 + 4 + 268_435_455 - 15));
    // 2. The crate's tokio_util Codec without max_incoming_size: src.reserve(needed).
    let mut codec = m5::Codec { max_incoming_size: None, max_outgoing_size: None };
    let mut buf = BytesMut::from(&input[..]);
    let (r, peak, largest) = alloc::measure(|| codec.decode(&mut buf).map(|o| o.is_some()));
    println!(
        "Codec(max None): {r:?}, peak {peak} B, largest alloc {largest} B, buf capacity {}, VmHWM +{} KiB",
        buf.capacity(),
        alloc::vm_hwm_kib() - hwm0
    );
    assert!(largest >= 256 << 20, "reserve() asked the allocator for the whole 256 MiB");
    drop(buf);
    // 3. With a maximum: refused before any reservation.
    let mut codec = m5::Codec { max_incoming_size: Some(MAX), max_outgoing_size: None };
    let mut buf = BytesMut::from(&input[..]);
    let (r, peak, _) = alloc::measure(|| codec.decode(&mut buf).map(|o| o.is_some()));
    println!("Codec(max 1 MiB): {r:?}, peak {peak} B");
    assert!(matches!(r, Err(rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { .. })));
    assert!(peak < 4096);
    // v4 reader (max is mandatory there)
    let r = v4::Packet::read(&mut BytesMut::from(&input[..]), 1 << 20);
    println!("v4 read(max 1 MiB): {r:?}");
}

#[test]
fn hostile_truncated_every_prefix() {
    for (name, full) in fixtures::all_good() {
        // captures hold several packets: only their first packet's prefixes matter here
        for cut in 0..full.len().min(120) {
            let r = std::panic::catch_unwind(|| read5(&full[..cut]).map(|_| ()));
            let r = r.unwrap_or_else(|_| panic!("{name}: panic at prefix {cut}"));
            match r {
                Ok(()) => {} // a whole first packet fits in the prefix
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) if name == "connect_v311" => {
                    let _ = e; // v5 reader on a v3 CONNECT: InvalidProtocolLevel once the level byte is in
                }
                Err(e) => panic!("{name}[..{cut}]: {e:?}"),
            }
        }
    }
    println!("every prefix of every fixture: InsufficientBytes or Ok, no panic");
}

#[test]
fn hostile_malformed_cases() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("type 0", fixtures::type0()),
        ("type 15 (AUTH, empty)", fixtures::type15()),
        ("CONNECT level 9", fixtures::connect_level9()),
        ("CONNECT body cut inside frame", fixtures::connect_body_cut()),
        ("PUBLISH topic length overruns frame", fixtures::publish_topic_overrun()),
        ("PUBLISH QoS 3", fixtures::publish_qos3()),
        ("PUBLISH property length overruns", fixtures::publish_v5_prop_overrun()),
        ("SUBSCRIBE flags 0x80", fixtures::subscribe_bad_flags()),
        ("PUBLISH topic with wildcard", fixtures::publish_wildcard_topic()),
    ];
    for (name, bytes) in cases {
        let (r5, peak5, _) = alloc::measure(|| {
            std::panic::catch_unwind(|| read5(&bytes).map(|p| format!("{p:?}")))
        });
        let r4 = std::panic::catch_unwind(|| {
            v4::Packet::read(&mut BytesMut::from(&bytes[..]), 1 << 20).map(|p| format!("{p:?}"))
        });
        println!("{name}:\n    v5 -> {r5:?} (peak {peak5} B)\n    v4 -> {r4:?}");
        assert!(r5.is_ok() && r4.is_ok(), "{name}: panic");
    }
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
        let (r, peak, _) = alloc::measure(|| {
            std::panic::catch_unwind(|| Packet::read(&mut BytesMut::from(&b[..]), Some(MAX)).is_ok())
        });
        match r {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => panic!("panic on {b:02x?}"),
        }
        max_peak = max_peak.max(peak);
    }
    println!("50,000 mutated packets: {ok} decoded, {err} errors, 0 panics, max peak {max_peak} B");
}

#[test]
fn valid_v5_short_forms() {
    let mut refused = 0;
    for (name, bytes) in fixtures::valid_v5_short_forms() {
        let r = read5(&bytes);
        println!("{name}: {r:?}");
        refused += r.is_err() as usize;
    }
    println!("rumqttc v5 refuses {refused} of {} valid short forms", fixtures::valid_v5_short_forms().len());
}

#[test]
fn connect_v5_password_without_username() {
    let r = read5(&fixtures::connect_v5_password_only());
    println!("5.0 CONNECT, password without user name: {r:?}");
}
