//! Wire bytes shared by both spikes: hand-built packets (the builders below write
//! only test input) and the bytes mosquitto 2.0 clients sent (captures/).
#![allow(dead_code)]

pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}
pub fn s(x: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(x.len() as u16).to_be_bytes());
    out.extend_from_slice(x.as_bytes());
}
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    varint(body.len(), &mut v);
    v.extend_from_slice(body);
    v
}
fn props(p: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    varint(p.len(), &mut v);
    v.extend_from_slice(p);
    v
}

/// CONNECT 3.1.1: clean session, keep-alive 60, client id "c311", user "alice", password "secret".
pub fn connect_v311() -> Vec<u8> {
    let mut b = Vec::new();
    s("MQTT", &mut b);
    b.extend_from_slice(&[4, 0b1100_0010, 0, 60]);
    s("c311", &mut b);
    s("alice", &mut b);
    s("secret", &mut b);
    frame(0x10, &b)
}

/// CONNECT 5.0: clean start, keep-alive 30, session expiry 3600, receive maximum 10,
/// user property ("region", "eu"), client id "c5", will on "dead" with payload "bye".
pub fn connect_v5() -> Vec<u8> {
    let mut b = Vec::new();
    s("MQTT", &mut b);
    b.extend_from_slice(&[5, 0b0000_0110, 0, 30]); // will flag + clean start
    let mut p = vec![0x11];
    p.extend_from_slice(&3600u32.to_be_bytes());
    p.extend_from_slice(&[0x21, 0, 10]);
    p.push(0x26);
    s("region", &mut p);
    s("eu", &mut p);
    b.extend(props(&p));
    s("c5", &mut b);
    b.extend(props(&[])); // will properties
    s("dead", &mut b);
    s("bye", &mut b);
    frame(0x10, &b)
}

/// CONNECT with protocol level 9.
pub fn connect_level9() -> Vec<u8> {
    let mut b = Vec::new();
    s("MQTT", &mut b);
    b.extend_from_slice(&[9, 0b0000_0010, 0, 30]);
    b.extend(props(&[]));
    s("c9", &mut b);
    frame(0x10, &b)
}

/// PUBLISH 5.0 QoS 1, packet id 7, topic "a/b", user property ("a","b"),
/// content type "text/plain", payload "hi".
pub fn publish_v5_qos1() -> Vec<u8> {
    let mut b = Vec::new();
    s("a/b", &mut b);
    b.extend_from_slice(&7u16.to_be_bytes());
    let mut p = vec![0x26];
    s("a", &mut p);
    s("b", &mut p);
    p.push(0x03);
    s("text/plain", &mut p);
    b.extend(props(&p));
    b.extend_from_slice(b"hi");
    frame(0x32, &b)
}

/// SUBSCRIBE 5.0, packet id 9: "sensors/+/temp" QoS 1 and "$share/g1/sensors/#" QoS 1
/// with retain handling 2 (no-local stays 0: it is illegal on a shared subscription).
pub fn subscribe_v5() -> Vec<u8> {
    let mut b = 9u16.to_be_bytes().to_vec();
    b.extend(props(&[]));
    s("sensors/+/temp", &mut b);
    b.push(0x01);
    s("$share/g1/sensors/#", &mut b);
    b.push(0x01 | 0b0010_0000); // QoS 1, retain handling 2
    frame(0x82, &b)
}

/// SUBSCRIBE 3.1.1, packet id 9, same two filters.
pub fn subscribe_v311() -> Vec<u8> {
    let mut b = 9u16.to_be_bytes().to_vec();
    s("sensors/+/temp", &mut b);
    b.push(0x01);
    s("$share/g1/sensors/#", &mut b);
    b.push(0x01);
    frame(0x82, &b)
}

/// PUBREL, packet id 7, the short form (reason Success omitted; valid in 3.1.1 and 5.0).
pub fn pubrel() -> Vec<u8> {
    vec![0x62, 0x02, 0x00, 0x07]
}

// ---- hostile input ----

/// Remaining length 0xFF 0xFF 0xFF 0xFF: a fifth length byte would be needed (over the limit).
pub fn varint_5_bytes() -> Vec<u8> {
    vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00]
}
/// Remaining length 268,435,455 (0xFF 0xFF 0xFF 0x7F, the 4-byte maximum, 256 MiB - 1)
/// followed by only 10 bytes.
pub fn huge_len_10_bytes() -> Vec<u8> {
    let mut v = vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    v.extend_from_slice(&[0u8; 10]);
    v
}
/// Packet type 0 (reserved in both versions).
pub fn type0() -> Vec<u8> {
    vec![0x00, 0x00]
}
/// Packet type 15 (AUTH: reserved in 3.1.1, needs a v5 session).
pub fn type15() -> Vec<u8> {
    vec![0xF0, 0x00]
}
/// CONNECT whose frame is complete (remaining length 5) but whose body is cut:
/// the protocol name says 4 bytes, 3 follow.
pub fn connect_body_cut() -> Vec<u8> {
    vec![0x10, 0x05, 0x00, 0x04, b'M', b'Q', b'T']
}
/// PUBLISH QoS 1 whose topic length (0xFFFF) runs past the end of the frame.
pub fn publish_topic_overrun() -> Vec<u8> {
    vec![0x32, 0x04, 0xFF, 0xFF, b'a', b'b']
}
/// PUBLISH with QoS 3 (both QoS bits set): malformed.
pub fn publish_qos3() -> Vec<u8> {
    let mut b = Vec::new();
    s("a", &mut b);
    b.extend_from_slice(&[0, 1]);
    frame(0x36, &b)
}
/// PUBLISH 5.0 with a property length of 0x0FFFFFFF inside a 10-byte body.
pub fn publish_v5_prop_overrun() -> Vec<u8> {
    let mut b = Vec::new();
    s("a", &mut b);
    b.extend_from_slice(&[0x00, 0x01, 0xFF, 0xFF, 0xFF, 0x7F, 0x26]);
    frame(0x32, &b)
}
/// SUBSCRIBE with wrong fixed-header flags (0x80 instead of 0x82).
pub fn subscribe_bad_flags() -> Vec<u8> {
    let mut v = subscribe_v5();
    v[0] = 0x80;
    v
}
/// PUBLISH 5.0 QoS 0 whose topic contains a wildcard (not allowed in a topic name).
pub fn publish_wildcard_topic() -> Vec<u8> {
    let mut b = Vec::new();
    s("a/+", &mut b);
    b.push(0); // empty properties
    b.extend_from_slice(b"x");
    frame(0x30, &b)
}

// ---- captures (see captures/capture.py) ----

/// mosquitto_pub -V mqttv5 -q 1 with -D connect session-expiry-interval/receive-maximum/
/// user-property and -D publish user-property a b, content-type, message-expiry-interval.
/// CONNECT, PUBLISH, DISCONNECT.
pub const MOSQ_PUB_V5_Q1: &[u8] = include_bytes!("../captures/conn-0.bin");
/// mosquitto_pub -V mqttv311 -q 2 -u alice -P secret --will-topic: CONNECT, PUBLISH,
/// PUBREL, DISCONNECT.
pub const MOSQ_PUB_V311_Q2: &[u8] = include_bytes!("../captures/conn-1.bin");
/// mosquitto_sub -V mqttv5 -t 'rill/+/temp' -t '$share/g1/rill/#' -q 1: CONNECT, SUBSCRIBE,
/// DISCONNECT (reason 0x04).
pub const MOSQ_SUB_V5: &[u8] = include_bytes!("../captures/conn-2.bin");
/// mosquitto_pub -V mqttv5 -q 2 -D publish user-property k v: CONNECT, PUBLISH, PUBREL,
/// DISCONNECT.
pub const MOSQ_PUB_V5_Q2: &[u8] = include_bytes!("../captures/conn-3.bin");

/// Every well-formed fixture, for the prefix and mutation checks.
pub fn all_good() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("connect_v311", connect_v311()),
        ("connect_v5", connect_v5()),
        ("publish_v5_qos1", publish_v5_qos1()),
        ("subscribe_v5", subscribe_v5()),
        ("pubrel", pubrel()),
        ("mosq_pub_v5_q1", MOSQ_PUB_V5_Q1.to_vec()),
        ("mosq_sub_v5", MOSQ_SUB_V5.to_vec()),
        ("mosq_pub_v5_q2", MOSQ_PUB_V5_Q2.to_vec()),
    ]
}

/// Deterministic xorshift for the mutation loop (no rand dependency).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Valid 5.0 short forms a server receives: the spec lets a sender omit the reason code
/// (meaning Success/Normal) and the property length (meaning none).
pub fn valid_v5_short_forms() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("DISCONNECT e0 00 (normal)", vec![0xE0, 0x00]),
        ("DISCONNECT e0 01 04 (with will, no props)", vec![0xE0, 0x01, 0x04]),
        ("AUTH f0 00 (success)", vec![0xF0, 0x00]),
        ("PUBACK 40 03 .. 10 (no subscribers, no props)", vec![0x40, 0x03, 0x00, 0x07, 0x10]),
        ("PUBREC 50 03 .. 10 (no subscribers, no props)", vec![0x50, 0x03, 0x00, 0x07, 0x10]),
        ("PUBREL 62 03 .. 92 (pkid not found, no props)", vec![0x62, 0x03, 0x00, 0x07, 0x92]),
        ("PUBCOMP 70 02 (success)", vec![0x70, 0x02, 0x00, 0x07]),
    ]
}

/// CONNECT 5.0 with a password and no user name: allowed in 5.0 (3.1.3.5), not in 3.1.1.
pub fn connect_v5_password_only() -> Vec<u8> {
    let mut b = Vec::new();
    s("MQTT", &mut b);
    b.extend_from_slice(&[5, 0b0100_0010, 0, 30]); // password flag + clean start
    b.push(0); // no properties
    s("c5p", &mut b);
    s("token", &mut b);
    frame(0x10, &b)
}
