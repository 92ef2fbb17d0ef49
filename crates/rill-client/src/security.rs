//! How a connection is secured: TLS (rustls with the ring provider) and SASL (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512), configured in code or from Kafka's client properties
//! ([`Security::from_properties`]).
//!
//! The SASL exchange itself runs in [`Connection::connect`](crate::Connection::connect), after
//! `ApiVersions`: `SaslHandshake` v1, then `SaslAuthenticate` (KIP-152) at the highest version
//! both sides speak.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::{ClientError, Result};

pub(crate) mod sasl;
pub mod scram;

pub use scram::ScramMechanism;

/// Where the system keeps its CA bundle, tried in order when no CA is configured (Debian and
/// Ubuntu, then Fedora and RHEL, then Alpine and openSUSE).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// Kafka's `security.protocol`: whether the connection is TLS, SASL, both or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Plain TCP (the default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name for it (`SASL_SSL`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [
            Self::Plaintext,
            Self::Ssl,
            Self::SaslPlaintext,
            Self::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("'{text}' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"))
    }
}

/// TLS settings: whom to trust, who we are, and whether the broker's name is checked.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS trusting the CAs in the PEM file `ca` (the system's bundle when `None`), presenting
    /// the client certificate chain and key in `identity` (PEM files; one file may hold both)
    /// if given, and checking that the broker's certificate names the host dialled unless
    /// `verify_hostname` is false (the chain is checked either way).
    pub fn from_pem(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
        verify_hostname: bool,
    ) -> Result<Self> {
        let ca = match ca {
            Some(ca) => ca.to_owned(),
            None => SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    ClientError::Config(
                        "no CA configured (ssl.ca.location) and no system CA bundle found".into(),
                    )
                })?,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|err| pem_error(&ca, &err))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ClientError::Config(format!(
                "{}: no CA certificate in it",
                ca.display()
            )));
        }
        #[expect(
            deprecated,
            reason = "ring, as the broker uses: no post-quantum key exchange, but it builds with \
                      the C compiler alone"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| ClientError::Config(format!("TLS: {err}")))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| ClientError::Config(format!("TLS trust store: {err}")))?;
        let builder = if verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        };
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|err| pem_error(cert, &err))?;
                if chain.is_empty() {
                    return Err(ClientError::Config(format!(
                        "{}: no certificate in it",
                        cert.display()
                    )));
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error(key, &err))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| ClientError::Config(format!("client certificate: {err}")))?
            }
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
    }

    /// The name the broker's certificate must carry: the host of `addr` (`host:port`,
    /// `[v6]:port`), a DNS name or an IP address.
    pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned())
            .map_err(|_| ClientError::Config(format!("'{host}' is not a valid TLS server name")))
    }
}

fn pem_error(path: &Path, err: &rustls_pki_types::pem::Error) -> ClientError {
    let why = match err {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind".to_owned(),
        other => format!("{other:?}"),
    };
    ClientError::Config(format!("{}: {why}", path.display()))
}

/// Checks the broker's chain but not its name (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain: a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A SASL mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`: the password, in the clear (use it over TLS).
    Plain,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// The SASL name (`PLAIN`, `SCRAM-SHA-256`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("PLAIN") {
            return Ok(Self::Plain);
        }
        ScramMechanism::from_name(text)
            .map(Self::Scram)
            .ok_or_else(|| format!("'{text}' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"))
    }
}

/// Who to authenticate as, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS and SASL for every connection; both off by default (Kafka's `PLAINTEXT`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Security {
    /// TLS, when the protocol is `SSL` or `SASL_SSL`.
    pub tls: Option<Tls>,
    /// SASL, when the protocol is `SASL_PLAINTEXT` or `SASL_SSL`.
    pub sasl: Option<Sasl>,
}

/// The properties [`Security::from_properties`] reads.
pub const SECURITY_PROPERTIES: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
];

impl Security {
    /// TLS and SASL from Kafka's client properties (Java's and librdkafka's names):
    /// `security.protocol`; `ssl.ca.location` or `ssl.truststore.location` (PEM),
    /// `ssl.certificate.location` + `ssl.key.location` or `ssl.keystore.location` (one PEM
    /// with key and chain), `ssl.truststore.type`/`ssl.keystore.type` (`PEM` only),
    /// `ssl.endpoint.identification.algorithm` (`https`, the default, or empty for none);
    /// `sasl.mechanism` (or librdkafka's `sasl.mechanisms`; `PLAIN` by default),
    /// `sasl.username` + `sasl.password` or `sasl.jaas.config`. Any other key, a bad value, or
    /// a setting the protocol does not use is a [`ClientError::Config`] naming the property.
    ///
    /// ```
    /// use rill_client::Security;
    /// let security = Security::from_properties([
    ///     ("security.protocol", "SASL_PLAINTEXT"),
    ///     ("sasl.mechanism", "SCRAM-SHA-256"),
    ///     ("sasl.username", "alice"),
    ///     ("sasl.password", "secret"),
    /// ])?;
    /// assert_eq!(security.sasl.map(|s| s.username), Some("alice".to_owned()));
    /// # Ok::<(), rill_client::ClientError>(())
    /// ```
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut props = BTreeMap::new();
        for (key, value) in properties {
            let key = key.as_ref();
            if !SECURITY_PROPERTIES.contains(&key) {
                return Err(ClientError::Config(format!(
                    "unknown property '{key}' (known: {})",
                    SECURITY_PROPERTIES.join(", ")
                )));
            }
            let _ = props.insert(key.to_owned(), value.as_ref().trim().to_owned());
        }
        let bad = |key: &str, why: String| ClientError::Config(format!("property '{key}': {why}"));
        let protocol: SecurityProtocol = match props.get("security.protocol") {
            Some(value) => value.parse().map_err(|why| bad("security.protocol", why))?,
            None => SecurityProtocol::Plaintext,
        };
        // A setting the protocol would not use is a mistake worth saying, not ignoring.
        for key in props.keys() {
            let unused = (key.starts_with("ssl.") && !protocol.tls())
                || (key.starts_with("sasl.") && !protocol.sasl());
            if unused {
                return Err(bad(
                    key,
                    format!("not used with security.protocol={}", protocol.name()),
                ));
            }
        }
        let path = |key: &str| props.get(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let Some(kind) = props.get(key)
                && !kind.eq_ignore_ascii_case("PEM")
            {
                return Err(bad(key, format!("'{kind}' is not supported, only PEM")));
            }
        }
        let tls = if protocol.tls() {
            let ca = match (path("ssl.ca.location"), path("ssl.truststore.location")) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "ssl.truststore.location",
                        "set ssl.ca.location or ssl.truststore.location, not both".into(),
                    ));
                }
                (Some(ca), None) => Some(("ssl.ca.location", ca)),
                (None, Some(ca)) => Some(("ssl.truststore.location", ca)),
                (None, None) => None,
            };
            let identity = match (
                path("ssl.certificate.location"),
                path("ssl.key.location"),
                path("ssl.keystore.location"),
            ) {
                (None, None, None) => None,
                (Some(cert), Some(key), None) => Some(("ssl.certificate.location", cert, key)),
                (None, None, Some(store)) => Some(("ssl.keystore.location", store.clone(), store)),
                (Some(_), None, None) => {
                    return Err(bad(
                        "ssl.certificate.location",
                        "needs ssl.key.location".into(),
                    ));
                }
                (None, Some(_), None) => {
                    return Err(bad(
                        "ssl.key.location",
                        "needs ssl.certificate.location".into(),
                    ));
                }
                _ => {
                    return Err(bad(
                        "ssl.keystore.location",
                        "set it or ssl.certificate.location + ssl.key.location, not both".into(),
                    ));
                }
            };
            let verify_hostname = match props
                .get("ssl.endpoint.identification.algorithm")
                .map(String::as_str)
            {
                None => true,
                Some(v) if v.eq_ignore_ascii_case("https") => true,
                Some(v) if v.is_empty() || v.eq_ignore_ascii_case("none") => false,
                Some(v) => {
                    return Err(bad(
                        "ssl.endpoint.identification.algorithm",
                        format!("'{v}' is not 'https' or empty"),
                    ));
                }
            };
            // Checked one part at a time so the error names the property at fault.
            if let Some((key, ca)) = &ca {
                let _ = Tls::from_pem(Some(ca), None, true).map_err(|e| bad(key, why(&e)))?;
            }
            let ca = ca.map(|(_, p)| p);
            let tls = match &identity {
                None => Tls::from_pem(ca.as_deref(), None, verify_hostname),
                Some((key, cert, private)) => {
                    Tls::from_pem(ca.as_deref(), Some((cert, private)), verify_hostname)
                        .map_err(|e| bad(key, why(&e)))
                }
            }?;
            Some(tls)
        } else {
            None
        };
        let sasl = if protocol.sasl() {
            let mechanism = match props
                .get("sasl.mechanism")
                .or_else(|| props.get("sasl.mechanisms"))
            {
                Some(m) => m.parse().map_err(|why| bad("sasl.mechanism", why))?,
                None => SaslMechanism::Plain,
            };
            let (username, password) = match props.get("sasl.jaas.config") {
                Some(jaas) => {
                    if props.contains_key("sasl.username") || props.contains_key("sasl.password") {
                        return Err(bad(
                            "sasl.jaas.config",
                            "set it or sasl.username + sasl.password, not both".into(),
                        ));
                    }
                    parse_jaas(jaas, mechanism).map_err(|why| bad("sasl.jaas.config", why))?
                }
                None => {
                    let get = |key: &str| {
                        props
                            .get(key)
                            .cloned()
                            .ok_or_else(|| bad(key, format!("required with {}", protocol.name())))
                    };
                    (get("sasl.username")?, get("sasl.password")?)
                }
            };
            if username.is_empty() {
                return Err(bad("sasl.username", "must not be empty".into()));
            }
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        Ok(Self { tls, sasl })
    }
}

/// An error's text without the `invalid configuration:` prefix.
fn why(err: &ClientError) -> String {
    match err {
        ClientError::Config(text) => text.clone(),
        other => other.to_string(),
    }
}

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// The username and password of a `sasl.jaas.config` entry: `<module> required
/// username="..." password="...";`, the module matching the mechanism.
fn parse_jaas(text: &str, mechanism: SaslMechanism) -> Result<(String, String), String> {
    let text = text.trim();
    let body = text
        .strip_suffix(';')
        .ok_or("must end with ';'")?
        .trim_end();
    let (module, rest) = body
        .split_once(char::is_whitespace)
        .ok_or("expects '<LoginModule> required username=\"...\" password=\"...\";'")?;
    let wanted = match mechanism {
        SaslMechanism::Plain => PLAIN_MODULE,
        SaslMechanism::Scram(_) => SCRAM_MODULE,
    };
    if module != wanted {
        return Err(format!(
            "login module '{module}' does not fit sasl.mechanism={}; expects {wanted}",
            mechanism.name()
        ));
    }
    let rest = rest.trim_start();
    let (flag, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !["required", "requisite", "sufficient", "optional"].contains(&flag) {
        return Err(format!("'{flag}' is not a login module flag (required)"));
    }
    let (mut username, mut password) = (None, None);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("expects key=value at '{rest}'"))?;
        let key = key.trim();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated quote in {key}"))?;
            (value, &quoted[end..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        match key {
            "username" => username = Some(value),
            "password" => password = Some(value),
            // Options of the login modules that need no action here.
            _ => {}
        }
        rest = remainder;
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("needs username=\"...\" and password=\"...\"".to_owned()),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    fn err(props: &[(&str, &str)]) -> String {
        Security::from_properties(props.iter().copied())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn plaintext_by_default() {
        let security = Security::from_properties(Vec::<(&str, &str)>::new()).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
        let security = Security::from_properties([("security.protocol", "plaintext")]).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
    }

    #[test]
    fn sasl_properties() {
        let security = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw"),
        ])
        .unwrap();
        let sasl = security.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Plain);
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("alice", "pw")
        );
        assert!(!format!("{sasl:?}").contains("pw"));

        let security = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="p \"q\";";"#,
            ),
        ])
        .unwrap();
        let sasl = security.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Scram(ScramMechanism::Sha512));
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("bob", "p \"q\";")
        );
    }

    #[test]
    fn jaas_config() {
        let plain = SaslMechanism::Plain;
        assert_eq!(
            parse_jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule required\n  username=\"a\"\n  password=\"b=c\";",
                plain
            ),
            Ok(("a".into(), "b=c".into()))
        );
        assert_eq!(
            parse_jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=a password=b;",
                plain
            ),
            Ok(("a".into(), "b".into()))
        );
        for bad in [
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\" password=\"b\"",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"a\" password=\"b\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule maybe username=\"a\" password=\"b\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a;",
            ";",
        ] {
            assert!(parse_jaas(bad, plain).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_properties_name_the_property() {
        assert!(
            err(&[("bootstrap.servers", "x")]).contains("unknown property 'bootstrap.servers'")
        );
        assert!(err(&[("security.protocol", "TLS")]).contains("property 'security.protocol'"));
        assert!(
            err(&[("sasl.username", "a")]).contains("not used with security.protocol=PLAINTEXT")
        );
        assert!(
            err(&[("security.protocol", "SSL"), ("sasl.username", "a")])
                .contains("property 'sasl.username'")
        );
        assert!(
            err(&[
                ("security.protocol", "SASL_SSL"),
                ("ssl.ca.location", "/nonexistent/ca.pem")
            ])
            .contains("property 'ssl.ca.location': /nonexistent/ca.pem")
        );
        assert!(
            err(&[("security.protocol", "SSL"), ("ssl.truststore.type", "JKS")])
                .contains("property 'ssl.truststore.type'")
        );
        assert!(
            err(&[
                ("security.protocol", "SSL"),
                ("ssl.endpoint.identification.algorithm", "x")
            ])
            .contains("property 'ssl.endpoint.identification.algorithm'")
        );
        assert!(
            err(&[
                ("security.protocol", "SSL"),
                ("ssl.certificate.location", "/c.pem")
            ])
            .contains("needs ssl.key.location")
        );
        assert!(
            err(&[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.username", "a")
            ])
            .contains("property 'sasl.password': required with SASL_PLAINTEXT")
        );
        assert!(
            err(&[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "GSSAPI"),
                ("sasl.username", "a"),
                ("sasl.password", "b")
            ])
            .contains("property 'sasl.mechanism'")
        );
    }

    #[test]
    fn server_names_come_from_the_address() {
        assert!(matches!(
            Tls::server_name("localhost:9093"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            Tls::server_name("127.0.0.1:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            Tls::server_name("[::1]:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(Tls::server_name("bad name:1").is_err());
    }
}
