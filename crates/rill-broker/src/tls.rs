//! TLS for SSL listeners: the server config read from Kafka's PEM keystore and truststore, and
//! the principal a client certificate names (`User:CN=...`, as Kafka's default principal
//! builder gives it).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::BrokerError;

/// `ssl.client.auth`: whether clients must show a certificate the truststore vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// One is asked for and checked if given; a client without one is served.
    Requested,
    /// A client without a valid certificate is refused in the handshake.
    Required,
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            _ => Err(format!(
                "ssl.client.auth is required, requested or none, not '{text}'"
            )),
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Requested => "requested",
            Self::Required => "required",
        })
    }
}

/// A TLS listener's settings, ready to accept with (cheap to clone: the listeners and the admin
/// listener share one).
///
/// The server config can be swapped while the broker runs ([`TlsConfig::reload`]): a new
/// connection takes whichever config is current when it is accepted (a pointer copy, nothing
/// waits on file I/O), and connections already open keep the one they started with.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Reloadable>,
}

struct Reloadable {
    keystore: PathBuf,
    truststore: Option<PathBuf>,
    client_auth: ClientAuth,
    current: watch::Sender<Arc<ServerConfig>>,
    /// The files as last read (or last found broken), so a poll reads them only when they
    /// change and a broken file is reported once, not at every poll.
    seen: Mutex<Stamps>,
}

/// Modification time and size of the keystore and the truststore (`None`: unreadable).
type Stamps = Vec<Option<(SystemTime, u64)>>;

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("keystore", &self.inner.keystore)
            .field("truststore", &self.inner.truststore)
            .field("client_auth", &self.inner.client_auth)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// TLS 1.2 and 1.3 with `keystore` (one PEM file: the private key and the certificate
    /// chain, leaf first, as Kafka's PEM keystore) and, for client authentication, `truststore`
    /// (PEM CA certificates).
    pub fn from_pem(
        keystore: &Path,
        truststore: Option<&Path>,
        client_auth: ClientAuth,
    ) -> Result<Self, BrokerError> {
        let seen = stamps(keystore, truststore);
        let config = server_config(keystore, truststore, client_auth)?;
        Ok(Self {
            inner: Arc::new(Reloadable {
                keystore: keystore.to_owned(),
                truststore: truststore.map(Path::to_owned),
                client_auth,
                current: watch::Sender::new(Arc::new(config)),
                seen: Mutex::new(seen),
            }),
        })
    }

    /// The acceptor for a new connection, with the config current now.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.inner.current.borrow().clone())
    }

    /// Reads the keystore and truststore again and serves them to new connections. On failure
    /// the current config stays and the error says which file and why. Blocking file I/O: call
    /// it off the runtime's workers.
    pub fn reload(&self) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let seen = stamps(&inner.keystore, inner.truststore.as_deref());
        if let Ok(mut last) = inner.seen.lock() {
            *last = seen;
        }
        let config = server_config(
            &inner.keystore,
            inner.truststore.as_deref(),
            inner.client_auth,
        )?;
        let _ = inner.current.send_replace(Arc::new(config));
        Ok(())
    }

    /// Reloads if the keystore or truststore changed (modification time or size) since they
    /// were last read: `None` if they did not, else what [`TlsConfig::reload`] gave. A file
    /// that fails to load is tried again only once it changes again.
    pub fn reload_if_changed(&self) -> Option<Result<(), BrokerError>> {
        let inner = &self.inner;
        let now = stamps(&inner.keystore, inner.truststore.as_deref());
        let changed = inner.seen.lock().map_or(true, |last| *last != now);
        changed.then(|| self.reload())
    }
}

fn stamps(keystore: &Path, truststore: Option<&Path>) -> Stamps {
    std::iter::once(keystore)
        .chain(truststore)
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn server_config(
    keystore: &Path,
    truststore: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<ServerConfig, BrokerError> {
    let bad = |what: &str, path: &Path, why: &dyn std::fmt::Display| {
        BrokerError::Config(format!("{what} {}: {why}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(keystore)
        .map_err(|e| bad("ssl.keystore.location", keystore, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("ssl.keystore.location", keystore, &e))?;
    if chain.is_empty() {
        return Err(bad(
            "ssl.keystore.location",
            keystore,
            &"holds no certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(keystore)
        .map_err(|e| bad("ssl.keystore.location", keystore, &e))?;
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange (aws-lc-rs has); ring builds with the C \
                  compiler alone, and aws-lc-rs's build on these machines (no cmake) is untried"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| BrokerError::Config(format!("TLS: {e}")))?;
    let builder = match (client_auth, truststore) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(BrokerError::Config(format!(
                "ssl.client.auth = {client_auth} needs ssl.truststore.location"
            )));
        }
        (_, Some(truststore)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(truststore)
                .map_err(|e| bad("ssl.truststore.location", truststore, &e))?
            {
                let cert = cert.map_err(|e| bad("ssl.truststore.location", truststore, &e))?;
                roots
                    .add(cert)
                    .map_err(|e| bad("ssl.truststore.location", truststore, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match client_auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| bad("ssl.truststore.location", truststore, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| bad("ssl.keystore.location", keystore, &e))
}

/// The principal of a client that showed `cert`: `User:` and its subject as RFC 2253 writes it
/// (most specific first, `User:CN=client,O=Example`); `None` if the subject cannot be read.
pub(crate) fn principal(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = der(cert)?;
    let (_, mut tbs, _) = der(certificate)?;
    // version [0] (optional), serialNumber, signature, issuer, validity, subject.
    let mut fields = Vec::with_capacity(6);
    while fields.len() < 6 {
        let (tag, content, rest) = der(tbs)?;
        if fields.is_empty() && tag != 0xa0 {
            fields.push(&[][..]);
        }
        fields.push(content);
        tbs = rest;
    }
    let mut subject = *fields.get(5)?;
    let mut names = Vec::new();
    while !subject.is_empty() {
        let (_, mut set, rest) = der(subject)?;
        subject = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (_, pair, rest) = der(set)?;
            set = rest;
            let (_, oid, value) = der(pair)?;
            let (tag, value, _) = der(value)?;
            let text = match tag {
                // UTF8String, PrintableString, T61String, IA5String
                0x0c | 0x13 | 0x14 | 0x16 => escape(&String::from_utf8_lossy(value)),
                _ => value.iter().fold(String::from("#"), |mut s, b| {
                    s.push_str(&format!("{b:02x}"));
                    s
                }),
            };
            parts.push(format!("{}={text}", attribute(oid)));
        }
        names.push(parts.join("+"));
    }
    names.reverse();
    Some(format!("User:{}", names.join(",")))
}

/// One DER element: its tag, its content and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// An attribute's RFC 2253 name, or its OID in dotted form.
fn attribute(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".to_owned(),
        [0x55, 0x04, 0x06] => "C".to_owned(),
        [0x55, 0x04, 0x07] => "L".to_owned(),
        [0x55, 0x04, 0x08] => "ST".to_owned(),
        [0x55, 0x04, 0x09] => "STREET".to_owned(),
        [0x55, 0x04, 0x0a] => "O".to_owned(),
        [0x55, 0x04, 0x0b] => "OU".to_owned(),
        _ => {
            let mut arcs: Vec<u64> = Vec::new();
            let mut arc = 0u64;
            for b in oid {
                arc = (arc << 7) | u64::from(b & 0x7f);
                if b & 0x80 == 0 {
                    if arcs.is_empty() {
                        let first = (arc / 40).min(2);
                        arcs.extend([first, arc - first * 40]);
                    } else {
                        arcs.push(arc);
                    }
                    arc = 0;
                }
            }
            arcs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge =
            (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_parses_kafka_values() {
        assert_eq!("required".parse(), Ok(ClientAuth::Required));
        assert_eq!(" Requested ".parse(), Ok(ClientAuth::Requested));
        assert_eq!("none".parse(), Ok(ClientAuth::None));
        assert!("yes".parse::<ClientAuth>().is_err());
    }

    #[test]
    fn garbage_has_no_principal() {
        assert_eq!(principal(b""), None);
        assert_eq!(principal(&[0x30, 0x82, 0xff]), None);
        assert_eq!(principal(&[0x30, 0x03, 0x30, 0x01]), None);
    }

    /// A certificate made by openssl: its subject, most specific first.
    #[test]
    #[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
    fn the_principal_is_the_subject_as_rfc_2253_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/C=NL/O=Rill, Inc./CN=client",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
            ])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let cert = CertificateDer::from_pem_file(dir.path().join("c.pem")).unwrap();
        assert_eq!(
            principal(&cert).as_deref(),
            Some("User:CN=client,O=Rill\\, Inc.,C=NL")
        );
    }

    #[test]
    fn escapes_as_rfc_2253() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" x "), "\\ x\\ ");
    }
}
