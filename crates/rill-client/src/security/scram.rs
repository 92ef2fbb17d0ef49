//! SCRAM-SHA-256 and SCRAM-SHA-512, the client's side (RFC 5802, RFC 7677), and the salted
//! password that `AlterUserScramCredentials` carries (the client salts, the broker never sees
//! the password).
//!
//! Only what Kafka uses: no channel binding (`n,,`), no authorization identity, no extensions.
//! Usernames are escaped (`=` and `,`) but not SASLprep-normalised, as Kafka's own client does.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SecureRandom as _;
use ring::{digest, hmac, pbkdf2};

/// The fewest iterations accepted from a server, and the default for new credentials: Kafka's
/// minimum (RFC 7677 recommends at least 4096 too).
pub const MIN_ITERATIONS: u32 = 4096;
/// The most iterations accepted from a server: Kafka's maximum. More would let a hostile broker
/// keep the client's CPU busy for minutes.
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism Kafka knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256`.
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl ScramMechanism {
    /// Both, in Kafka's order.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The SASL name (`SCRAM-SHA-256`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism's number in `AlterUserScramCredentials` and
    /// `DescribeUserScramCredentials` (1 and 2; 0 is unknown).
    pub const fn kafka_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The mechanism with this number in a Kafka answer.
    pub const fn from_kafka_type(value: i8) -> Option<Self> {
        match value {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The mechanism with this SASL name (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
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

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// RFC 5802's `SaltedPassword := Hi(password, salt, i)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let mut out = vec![0; self.digest().output_len()];
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut out);
        out
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `len` bytes from the system's secure random source.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0; len];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "the system's random source failed".to_owned())?;
    Ok(out)
}

/// A new salt for a credential: 32 random bytes, as Kafka's tools make.
pub fn new_salt() -> Result<Vec<u8>, String> {
    random_bytes(32)
}

/// One SCRAM exchange, after the client-first message was made.
pub(crate) struct ScramClient {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    nonce: String,
    client_first_bare: String,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("client_first_bare", &self.client_first_bare)
            .finish_non_exhaustive()
    }
}

/// What the server must prove in its final message.
pub(crate) struct ServerProof {
    server_key: hmac::Key,
    auth_message: String,
}

impl ScramClient {
    /// Starts an exchange with a fresh random nonce.
    pub(crate) fn new(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
    ) -> Result<Self, String> {
        let nonce = BASE64.encode(random_bytes(24)?);
        Ok(Self::with_nonce(mechanism, username, password, nonce))
    }

    fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        nonce: String,
    ) -> Self {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Self {
            mechanism,
            password: password.as_bytes().to_vec(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
        }
    }

    /// The client-first message: no channel binding, no authorization identity.
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Reads the server-first message and makes the client-final one, with what the server's
    /// final message must carry. Refuses a nonce that does not extend ours and an iteration
    /// count outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    pub(crate) fn client_final(
        self,
        server_first: &[u8],
    ) -> Result<(Vec<u8>, ServerProof), String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first message is not UTF-8".to_owned())?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in server_first.split(',') {
            match attribute.split_once('=') {
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => salt = Some(value),
                Some(("i", value)) => iterations = Some(value),
                Some(("e", value)) => return Err(format!("the server refused: {value}")),
                Some(("m", _)) => {
                    return Err("the server asks for a SCRAM extension this client lacks".into());
                }
                // Other attributes are optional extensions (RFC 5802 §5.1): skipped.
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first message '{server_first}'"));
        };
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err("the server's nonce does not extend the client's".to_owned());
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| "the server's salt is not base64".to_owned())?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("the server's iteration count '{iterations}' is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "the server's iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let iterations = NonZeroU32::new(iterations).ok_or("zero iterations")?;
        let mech = self.mechanism;
        let salted = mech.salted_password(&self.password, &salt, iterations);
        let salted = hmac::Key::new(mech.hmac(), &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(mech.digest(), client_key.as_ref());
        // `biws` is base64 of the GS2 header `n,,`.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(
            &hmac::Key::new(mech.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((
            message.into_bytes(),
            ServerProof {
                server_key: hmac::Key::new(mech.hmac(), server_key.as_ref()),
                auth_message,
            },
        ))
    }
}

impl ServerProof {
    /// Checks the server-final message: the server knew the credential (its signature, compared
    /// in constant time), or said why not (`e=`).
    pub(crate) fn verify(self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "the server-final message is not UTF-8".to_owned())?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let signature = first
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| format!("malformed server-final message '{text}'"))?;
        hmac::verify(&self.server_key, self.auth_message.as_bytes(), &signature).map_err(|_| {
            "the server's signature is wrong: it does not know this user's credential".to_owned()
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    /// RFC 7677 §3: user `user`, password `pencil`, SCRAM-SHA-256.
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_client() -> ScramClient {
        ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            CLIENT_NONCE.into(),
        )
    }

    #[test]
    fn rfc7677_exchange() {
        let client = rfc_client();
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (client_final, proof) = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), CLIENT_FINAL);
        proof.verify(SERVER_FINAL.as_bytes()).unwrap();
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let (_, proof) = rfc_client().client_final(SERVER_FIRST.as_bytes()).unwrap();
        let err = proof
            .verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(err.contains("signature is wrong"), "{err}");
        let (_, proof) = rfc_client().client_final(SERVER_FIRST.as_bytes()).unwrap();
        let err = proof.verify(b"e=invalid-proof").unwrap_err();
        assert_eq!(err, "the server refused: invalid-proof");
        let (_, proof) = rfc_client().client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert!(proof.verify(b"v=not base64!").is_err());
    }

    #[test]
    fn server_first_is_checked() {
        let bad = [
            // The nonce does not extend ours, or only repeats it.
            "r=somethingElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            // Too few or too many iterations, or none.
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100000",
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
            // A salt that is not base64, a mandatory extension, an error, garbage.
            "r=rOprNGfwEbeRWgbNEkqOxyz,s=***,i=4096",
            "m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "e=unknown-user",
            "",
        ];
        for message in bad {
            assert!(
                rfc_client().client_final(message.as_bytes()).is_err(),
                "{message}"
            );
        }
        assert!(rfc_client().client_final(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn usernames_are_escaped_and_nonces_are_fresh() {
        let client = ScramClient::with_nonce(ScramMechanism::Sha512, "a=b,c", "p", "n".into());
        assert_eq!(client.client_first(), b"n,,n=a=3Db=2Cc,r=n");
        let one = ScramClient::new(ScramMechanism::Sha256, "u", "p").unwrap();
        let two = ScramClient::new(ScramMechanism::Sha256, "u", "p").unwrap();
        assert_ne!(one.nonce, two.nonce);
        assert!(!one.nonce.contains(','));
    }

    #[test]
    fn salted_passwords_are_pbkdf2() {
        // RFC 7677's salted password, checked through its client proof above; here the length
        // and that the mechanism's hash is used.
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let n = NonZeroU32::new(4096).unwrap();
        assert_eq!(
            ScramMechanism::Sha256
                .salted_password(b"pencil", &salt, n)
                .len(),
            32
        );
        assert_eq!(
            ScramMechanism::Sha512
                .salted_password(b"pencil", &salt, n)
                .len(),
            64
        );
        assert_eq!(
            ScramMechanism::from_name("scram-sha-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(
            ScramMechanism::from_kafka_type(1),
            Some(ScramMechanism::Sha256)
        );
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
    }
}
