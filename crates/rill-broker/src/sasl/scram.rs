//! SCRAM (RFC 5802, RFC 7677) on the server side, with Kafka's two hashes: stored credentials
//! (salt, StoredKey, ServerKey, iterations, never the password), and the two-round exchange
//! that checks a client's proof and proves the server knows the credential.
//!
//! The math is `ring`'s (PBKDF2, HMAC, SHA-2, random); this module parses the messages, which
//! come from an unauthenticated client: every field is checked, nothing is trusted.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

/// Kafka's lowest and highest accepted iteration counts (`ScramMechanism.minIterations`, and
/// the cap Kafka puts on AlterUserScramCredentials).
pub(crate) const MIN_ITERATIONS: u32 = 4096;
pub(crate) const MAX_ITERATIONS: u32 = 16384;

/// The SCRAM mechanisms, with Kafka's codes in AlterUserScramCredentials and
/// DescribeUserScramCredentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub(crate) const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` code (0 is UNKNOWN).
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub(crate) fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), message)
            .as_ref()
            .to_vec()
    }

    fn hash(self, bytes: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), bytes).as_ref().to_vec()
    }
}

/// What the broker keeps of a user's password for one mechanism (RFC 5802's server-side
/// values), base64 in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credential {
    #[serde(with = "b64")]
    pub(crate) salt: Vec<u8>,
    #[serde(with = "b64")]
    pub(crate) stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub(crate) server_key: Vec<u8>,
    pub(crate) iterations: u32,
}

impl Credential {
    /// The credential for a salted password (what AlterUserScramCredentials carries).
    pub(crate) fn from_salted(
        mechanism: Mechanism,
        salt: Vec<u8>,
        salted: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.mac(salted, b"Client Key");
        Self {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.mac(salted, b"Server Key"),
            iterations,
        }
    }

    /// A credential for `password` with a fresh random salt.
    pub(crate) fn new(mechanism: Mechanism, password: &str, iterations: u32) -> Option<Self> {
        let mut salt = vec![0; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).ok()?;
        let salted = salt_password(mechanism, password, &salt, iterations)?;
        Some(Self::from_salted(mechanism, salt, &salted, iterations))
    }

    /// Whether `password` is the one this credential was made from (PLAIN's check). Costs
    /// `iterations` rounds of PBKDF2: run it off the async workers.
    pub(crate) fn matches(&self, mechanism: Mechanism, password: &str) -> bool {
        let Some(salted) = salt_password(mechanism, password, &self.salt, self.iterations) else {
            return false;
        };
        let client_key = mechanism.mac(&salted, b"Client Key");
        equal(&mechanism.hash(&client_key), &self.stored_key)
    }
}

/// PBKDF2 of `password` over `salt` (RFC 5802's `Hi`), `None` for zero iterations.
fn salt_password(
    mechanism: Mechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Option<Vec<u8>> {
    let rounds = NonZeroU32::new(iterations)?;
    let mut out = vec![0; mechanism.len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    Some(out)
}

/// Constant-time equality of two secrets.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed: the message a client gets with SASL_AUTHENTICATION_FAILED.
pub(crate) type Refusal = String;

/// One step of the exchange.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as the user: send this (server-final) last.
    Done { user: String, last: Vec<u8> },
}

/// The server's side of one SCRAM exchange.
#[derive(Debug)]
pub(crate) struct ScramServer {
    mechanism: Mechanism,
    state: State,
}

#[derive(Debug)]
enum State {
    First,
    Final {
        user: String,
        credential: Credential,
        /// The client's nonce and ours.
        nonce: String,
        /// The length of the client's part of `nonce`.
        client_nonce_len: usize,
        gs2_header: String,
        /// client-first-message-bare "," server-first-message
        auth_prefix: String,
    },
    Finished,
}

impl ScramServer {
    pub(crate) fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            state: State::First,
        }
    }

    /// Takes the client's next message; `credential` finds a user's stored credential.
    pub(crate) fn step(
        &mut self,
        message: &[u8],
        credential: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<Step, Refusal> {
        let text = std::str::from_utf8(message)
            .map_err(|_| "the SCRAM message is not UTF-8".to_owned())?;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::First => self.first(text, credential),
            State::Final {
                user,
                credential,
                nonce,
                client_nonce_len,
                gs2_header,
                auth_prefix,
            } => {
                let client_nonce = nonce.get(..client_nonce_len).unwrap_or_default();
                let echoed = Echo {
                    nonce: &nonce,
                    client_nonce,
                };
                let last = self.last(text, &credential, echoed, &gs2_header, &auth_prefix)?;
                Ok(Step::Done { user, last })
            }
            State::Finished => Err("the SCRAM exchange is over".to_owned()),
        }
    }

    fn first(
        &mut self,
        text: &str,
        credential: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<Step, Refusal> {
        let bad = || "malformed SCRAM client-first message".to_owned();
        // gs2-header: channel binding flag, optional authzid, then the bare message.
        let (flag, rest) = text.split_once(',').ok_or_else(bad)?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => {
                return Err("SCRAM channel binding is not supported".to_owned());
            }
            _ => return Err(bad()),
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(bad)?;
        let gs2_header = format!("{flag},{authzid},");
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or_else(bad)
            .and_then(|u| unescape(u).ok_or_else(bad))?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or_else(bad)?;
        // Extensions (Kafka's tokenauth=true for delegation tokens), which Rill has none of.
        for extension in fields {
            if extension.starts_with("tokenauth=") {
                return Err("delegation tokens are not supported".to_owned());
            }
        }
        if !authzid.is_empty() {
            let asked = authzid
                .strip_prefix("a=")
                .and_then(unescape)
                .ok_or_else(bad)?;
            if asked != user {
                return Err("an authorization id other than the user is not allowed".to_owned());
            }
        }
        if user.is_empty() {
            return Err(bad());
        }
        let credential = credential(&user).ok_or_else(|| invalid(self.mechanism))?;
        let mut ours = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut ours)
            .map_err(|_| "no randomness for a nonce".to_owned())?;
        let nonce = format!("{client_nonce}{}", B64.encode(ours));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let auth_prefix = format!("{bare},{server_first}");
        self.state = State::Final {
            user,
            credential,
            client_nonce_len: client_nonce.len(),
            nonce,
            gs2_header,
            auth_prefix,
        };
        Ok(Step::Continue(server_first.into_bytes()))
    }

    fn last(
        &self,
        text: &str,
        credential: &Credential,
        expected: Echo<'_>,
        gs2_header: &str,
        auth_prefix: &str,
    ) -> Result<Vec<u8>, Refusal> {
        let bad = || "malformed SCRAM client-final message".to_owned();
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(bad)?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(bad)?;
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err("SCRAM channel binding does not match the client-first message".into());
        }
        let echoed = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(bad)?;
        // librdkafka before 2.6.1 sends its own nonce again in front of the whole one
        // (librdkafka#4895); Kafka 3.x accepts that, and so does Rill, since our random part is
        // still there, exactly once, at the end.
        let doubled = echoed.strip_suffix(expected.nonce) == Some(expected.client_nonce);
        if echoed != expected.nonce && !doubled {
            return Err("SCRAM nonce does not match".to_owned());
        }
        let proof = B64.decode(proof).map_err(|_| bad())?;
        let m = self.mechanism;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let signature = m.mac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(invalid(m));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !equal(&m.hash(&client_key), &credential.stored_key) {
            return Err(invalid(m));
        }
        let server_signature = m.mac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The nonce a client-final message must carry.
#[derive(Clone, Copy)]
struct Echo<'a> {
    /// The client's nonce and ours.
    nonce: &'a str,
    /// The client's part.
    client_nonce: &'a str,
}

/// The refusal for a wrong password or an unknown user, the same for both, so that a client
/// cannot tell which users exist.
pub(crate) fn invalid(mechanism: Mechanism) -> Refusal {
    format!(
        "authentication failed: invalid username or password ({})",
        mechanism.name()
    )
}

/// A SCRAM `saslname`: `=2C` is a comma, `=3D` an equals sign, and a lone `=` is malformed.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Bytes as base64 text in the metadata log.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil", 4096 iterations.
    #[test]
    fn rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salt_password(Mechanism::Sha256, "pencil", &salt, 4096).unwrap();
        let credential = Credential::from_salted(Mechanism::Sha256, salt, &salted, 4096);
        let mut server = ScramServer::new(Mechanism::Sha256);
        let first = server
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| {
                (u == "user").then(|| credential.clone())
            })
            .unwrap();
        let Step::Continue(server_first) = first else {
            panic!("{first:?}")
        };
        let server_first = String::from_utf8(server_first).unwrap();
        // The RFC's server nonce is fixed; ours is random, so redo the client's side with it.
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        assert!(nonce.starts_with("rOprNGfwEbeRWgbNEkqO"));
        assert!(server_first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{server_first},{without_proof}");
        let m = Mechanism::Sha256;
        let client_key = m.mac(&salted, b"Client Key");
        let signature = m.mac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let last = format!("{without_proof},p={}", B64.encode(&proof));

        // A wrong proof is refused; the exchange is then over.
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        let mut other = ScramServer::new(m);
        let _ = other
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |_| {
                Some(credential.clone())
            })
            .unwrap();
        assert!(
            other
                .step(
                    format!("{without_proof},p={}", B64.encode(&wrong)).as_bytes(),
                    |_| None
                )
                .is_err()
        );

        // librdkafka before 2.6.1 repeats its nonce in front: accepted, as Kafka 3 does, but
        // only its own nonce, not any other prefix.
        let mut twice = ScramServer::new(m);
        let Step::Continue(first) = twice
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |_| {
                Some(credential.clone())
            })
            .unwrap()
        else {
            panic!()
        };
        let first = String::from_utf8(first).unwrap();
        let whole = &first[2..first.find(',').unwrap()];
        let doubled = format!("c=biws,r=rOprNGfwEbeRWgbNEkqO{whole},p=AAAA");
        let refusal = twice.step(doubled.as_bytes(), |_| None).unwrap_err();
        assert!(refusal.contains("invalid"), "{refusal}");
        let mut other_prefix = ScramServer::new(m);
        let _ = other_prefix
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |_| {
                Some(credential.clone())
            })
            .unwrap();
        let refusal = other_prefix
            .step(format!("c=biws,r=x{nonce},p=AAAA").as_bytes(), |_| None)
            .unwrap_err();
        assert!(refusal.contains("nonce"), "{refusal}");

        let Step::Done { user, last } = server.step(last.as_bytes(), |_| None).unwrap() else {
            panic!()
        };
        assert_eq!(user, "user");
        let expected = m.mac(&m.mac(&salted, b"Server Key"), auth.as_bytes());
        assert_eq!(last, format!("v={}", B64.encode(expected)).into_bytes());
        assert!(server.step(b"again", |_| None).is_err());
    }

    /// The RFC's own SaltedPassword-derived keys, from the published ClientProof.
    #[test]
    fn rfc_7677_keys() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salt_password(Mechanism::Sha256, "pencil", &salt, 4096).unwrap();
        let m = Mechanism::Sha256;
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_key = m.mac(&salted, b"Client Key");
        let signature = m.mac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server = m.mac(&m.mac(&salted, b"Server Key"), auth.as_bytes());
        assert_eq!(
            B64.encode(server),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn plain_check_uses_the_stored_credential() {
        for m in Mechanism::ALL {
            let c = Credential::new(m, "s3cret", 4096).unwrap();
            assert!(c.matches(m, "s3cret"));
            assert!(!c.matches(m, "s3cret "));
            let json = serde_json::to_string(&c).unwrap();
            assert!(!json.contains("s3cret"));
            assert_eq!(serde_json::from_str::<Credential>(&json).unwrap(), c);
        }
    }

    #[test]
    fn hostile_first_messages_are_refused() {
        let c = Credential::new(Mechanism::Sha256, "p", 4096).unwrap();
        for message in [
            &b""[..],
            b"n",
            b"x,,n=u,r=abc",
            b"p=tls-unique,,n=u,r=abc",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,r=abc,n=u",
            b"n,,n=u=,r=abc",
            b"n,a=v,n=u,r=abc",
            b"n,,n=u,r=abc,tokenauth=true",
            b"n,,n=,r=abc",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(Mechanism::Sha256);
            assert!(s.step(message, |_| Some(c.clone())).is_err(), "{message:?}");
        }
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.step(b"n,,n=nobody,r=abc", |_| None).is_err());
        assert_eq!(unescape("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    }
}
