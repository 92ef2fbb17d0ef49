//! SASL on a connection (KIP-43, KIP-152, KIP-368): the handshake that picks a mechanism, the
//! exchange that proves who the client is, and the session's lifetime. The connection asks
//! [`Authenticator::admits`] before it runs any request; only ApiVersions and the SASL requests
//! pass until the client has authenticated.
//!
//! Credentials are the metadata log's (`Image::users`): SCRAM's salted keys, which PLAIN checks
//! a password against too, so no password is ever stored.

pub(crate) mod scram;

use std::time::{Duration, Instant};

use rill_protocol::kafka_protocol::messages::{
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};

use crate::broker::Broker;
use scram::{Credential, Mechanism, ScramServer, Step};

/// Kafka's `sasl.server.max.receive.size` default: the largest frame a client may send before
/// it has authenticated, so that an unauthenticated client cannot make the broker hold
/// `socket.request.max.bytes` for it.
pub(crate) const MAX_RECEIVE_BEFORE_AUTH: usize = 512 * 1024;

/// The mechanisms Rill serves, in the order the handshake lists them.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// How the SASL listeners authenticate.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`: some of [`MECHANISMS`].
    pub mechanisms: Vec<String>,
    /// `connections.max.reauth.ms`: a session's lifetime, after which the client must
    /// authenticate again on the connection (KIP-368) or be disconnected; `None`, forever.
    pub max_reauth: Option<Duration>,
    /// How long a client has to authenticate (TLS handshake included) before it is
    /// disconnected.
    pub timeout: Duration,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            mechanisms: MECHANISMS.iter().map(|m| (*m).to_owned()).collect(),
            max_reauth: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The first user (`rill serve --bootstrap-user NAME:PASSWORD`): the broker makes sure it has
/// both SCRAM credentials for this password. Its `Debug` hides the password.
#[derive(Clone)]
pub struct BootstrapUser {
    /// The user's name.
    pub name: String,
    /// Its password, kept only in memory (the metadata log gets SCRAM's salted keys).
    pub password: String,
}

impl std::fmt::Debug for BootstrapUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for BootstrapUser {
    type Err = String;

    /// `NAME:PASSWORD` (the password may hold colons).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((name, password)) if !name.is_empty() && !password.is_empty() => Ok(Self {
                name: name.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("a bootstrap user is NAME:PASSWORD, both non-empty".to_owned()),
        }
    }
}

/// A mechanism a client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    Plain,
    Scram(Mechanism),
}

impl Chosen {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            _ => Mechanism::from_name(name).map(Self::Scram),
        }
    }
}

#[derive(Debug)]
enum Stage {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Between the handshake and the end of the exchange; `raw` after a v0 handshake, whose
    /// tokens come as bare size-prefixed frames rather than SaslAuthenticate requests.
    Exchange {
        chosen: Chosen,
        raw: bool,
        scram: Option<ScramServer>,
    },
    Authenticated,
}

/// What the connection does with a request before authentication.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Run it.
    Yes,
    /// Close the connection: the request is not allowed now, for this reason.
    No(&'static str),
}

/// The SASL state of one connection on a SASL listener.
#[derive(Debug)]
pub(crate) struct Authenticator {
    stage: Stage,
    /// Who the client proved to be the first time: re-authentication may not change it.
    user: Option<String>,
    /// When the session ends (KIP-368).
    expires: Option<Instant>,
    /// Until when the client may take to authenticate the first time.
    deadline: Option<Instant>,
}

/// One answer to a SASL request, and whether to close the connection after sending it.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    pub(crate) body: T,
    pub(crate) close: bool,
}

impl Authenticator {
    pub(crate) fn new(config: &SaslConfig) -> Self {
        Self {
            stage: Stage::Handshake,
            user: None,
            expires: None,
            deadline: Some(Instant::now() + config.timeout),
        }
    }

    /// The authenticated user, once there is one.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// When the connection must be closed if the client has not authenticated yet.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the client has authenticated (frames may be as large as any request).
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.stage, Stage::Authenticated)
    }

    /// Whether the next frame is a bare SASL token (after a v0 handshake).
    pub(crate) fn raw(&self) -> bool {
        matches!(self.stage, Stage::Exchange { raw: true, .. })
    }

    /// Whether a request of `api_key` may run now.
    pub(crate) fn admits(&self, api_key: ApiKey, now: Instant) -> Admit {
        let sasl = matches!(api_key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        match self.stage {
            Stage::Authenticated if self.expires.is_some_and(|at| now >= at) => {
                if api_key == ApiKey::SaslHandshake {
                    Admit::Yes
                } else {
                    Admit::No("the SASL session expired (connections.max.reauth.ms)")
                }
            }
            Stage::Authenticated => Admit::Yes,
            _ if sasl || api_key == ApiKey::ApiVersions => Admit::Yes,
            _ => Admit::No("a request before SASL authentication"),
        }
    }

    /// SaslHandshake: the client names its mechanism. An unknown one is answered with the
    /// enabled list and the connection closed.
    pub(crate) fn handshake(
        &mut self,
        config: &SaslConfig,
        request: &SaslHandshakeRequest,
        version: i16,
    ) -> Answer<SaslHandshakeResponse> {
        let enabled = config
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let mut response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        let reauthenticating = matches!(self.stage, Stage::Authenticated);
        let expired = self.expires.is_some_and(|at| Instant::now() >= at);
        let in_order = matches!(self.stage, Stage::Handshake) || (reauthenticating && expired)
            // A client may re-authenticate before its session ends, as Kafka's do.
            || (reauthenticating && version >= 1);
        if !in_order {
            return Answer {
                body: response.with_error_code(ErrorCode::IllegalSaslState.code()),
                close: true,
            };
        }
        let name = request.mechanism.as_str();
        let Some(chosen) = config
            .mechanisms
            .iter()
            .any(|m| m == name)
            .then(|| Chosen::from_name(name))
            .flatten()
        else {
            tracing::info!(
                mechanism = name,
                "closing connection: unsupported SASL mechanism"
            );
            return Answer {
                body: response.with_error_code(ErrorCode::UnsupportedSaslMechanism.code()),
                close: true,
            };
        };
        self.stage = Stage::Exchange {
            chosen,
            raw: version == 0,
            scram: None,
        };
        response = response.with_error_code(0);
        Answer {
            body: response,
            close: false,
        }
    }

    /// SaslAuthenticate: one token of the exchange. A failure is answered with
    /// SASL_AUTHENTICATION_FAILED and the connection closed.
    pub(crate) async fn authenticate(
        &mut self,
        broker: &Broker,
        token: &[u8],
        version: i16,
    ) -> Answer<SaslAuthenticateResponse> {
        let response = SaslAuthenticateResponse::default();
        if !matches!(self.stage, Stage::Exchange { raw: false, .. }) {
            return Answer {
                body: response
                    .with_error_code(ErrorCode::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    ))),
                close: true,
            };
        }
        match self.step(broker, token).await {
            Ok((bytes, done)) => {
                let lifetime = match (done, self.expires) {
                    (true, Some(at)) if version >= 1 => {
                        let left = at.saturating_duration_since(Instant::now()).as_millis();
                        i64::try_from(left).unwrap_or(i64::MAX).max(1)
                    }
                    _ => 0,
                };
                Answer {
                    body: response
                        .with_auth_bytes(bytes.into())
                        .with_session_lifetime_ms(lifetime),
                    close: false,
                }
            }
            Err(why) => Answer {
                body: response
                    .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(why))),
                close: true,
            },
        }
    }

    /// A bare token after a v0 handshake: the next bare token to send, or why to close.
    pub(crate) async fn raw_token(
        &mut self,
        broker: &Broker,
        token: &[u8],
    ) -> Result<Vec<u8>, String> {
        self.step(broker, token).await.map(|(bytes, _)| bytes)
    }

    /// Runs the exchange one token on: the bytes to answer and whether it is done.
    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let Stage::Exchange { chosen, scram, .. } = &mut self.stage else {
            return Err("no SASL exchange is under way".to_owned());
        };
        let (user, last) = match *chosen {
            Chosen::Plain => {
                let user = plain(broker, token).await?;
                (user, Vec::new())
            }
            Chosen::Scram(mechanism) => {
                let server = scram.get_or_insert_with(|| ScramServer::new(mechanism));
                match server.step(token, |user| credential(broker, user, mechanism))? {
                    Step::Continue(bytes) => return Ok((bytes, false)),
                    Step::Done { user, last } => (user, last),
                }
            }
        };
        if self.user.as_ref().is_some_and(|before| *before != user) {
            return Err("re-authentication may not change the user".to_owned());
        }
        tracing::debug!(%user, "SASL authentication done");
        self.user = Some(user);
        self.stage = Stage::Authenticated;
        self.deadline = None;
        self.expires = broker
            .config
            .sasl
            .max_reauth
            .map(|lifetime| Instant::now() + lifetime);
        Ok((last, true))
    }
}

/// The stored credential of `user` for `mechanism`, if it has one.
fn credential(broker: &Broker, user: &str, mechanism: Mechanism) -> Option<Credential> {
    broker
        .quorum
        .image()
        .users
        .get(user)
        .and_then(|u| u.get(mechanism.name()))
        .cloned()
}

/// PLAIN (RFC 4616): `[authzid] NUL user NUL password`, checked against the user's stored SCRAM
/// credential (PBKDF2 off the async workers). Answers the user.
async fn plain(broker: &Broker, token: &[u8]) -> Result<String, String> {
    let bad = || "malformed PLAIN message".to_owned();
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if user.is_empty() || password.is_empty() {
        return Err(bad());
    }
    if !authzid.is_empty() && authzid != user {
        return Err("an authorization id other than the user is not allowed".to_owned());
    }
    if check_password(broker, user, password).await {
        Ok(user.to_owned())
    } else {
        Err("authentication failed: invalid username or password (PLAIN)".to_owned())
    }
}

/// Whether `password` is `user`'s, checked against the user's stored SCRAM credential (either
/// will do: both were made from the same password), PBKDF2 off the async workers. PLAIN's
/// check, and MQTT's CONNECT's.
pub(crate) async fn check_password(broker: &Broker, user: &str, password: &str) -> bool {
    let stored = Mechanism::ALL
        .into_iter()
        .find_map(|m| credential(broker, user, m).map(|c| (m, c)));
    let Some((mechanism, stored)) = stored else {
        return false;
    };
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || stored.matches(mechanism, &password)).await;
    matches.unwrap_or(false)
}

/// Whether any user has SCRAM credentials (then MQTT clients must name one).
pub(crate) fn has_users(broker: &Broker) -> bool {
    !broker.quorum.image().users.is_empty()
}

/// Makes sure `user` has both SCRAM credentials for `password` (`rill serve --bootstrap-user`):
/// the credentials to add or replace.
pub(crate) fn bootstrap_credentials(
    image: &crate::quorum::image::Image,
    user: &str,
    password: &str,
) -> Vec<(String, String, Credential)> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| {
            image
                .users
                .get(user)
                .and_then(|u| u.get(m.name()))
                .is_none_or(|c| !c.matches(*m, password))
        })
        .filter_map(|m| {
            Credential::new(m, password, scram::MIN_ITERATIONS)
                .map(|c| (user.to_owned(), m.name().to_owned(), c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sasl_requests_pass_before_authentication() {
        let mut a = Authenticator::new(&SaslConfig::default());
        let now = Instant::now();
        assert_eq!(a.admits(ApiKey::ApiVersions, now), Admit::Yes);
        assert_eq!(a.admits(ApiKey::SaslHandshake, now), Admit::Yes);
        assert_eq!(a.admits(ApiKey::SaslAuthenticate, now), Admit::Yes);
        assert!(matches!(a.admits(ApiKey::Metadata, now), Admit::No(_)));
        a.stage = Stage::Authenticated;
        assert_eq!(a.admits(ApiKey::Metadata, now), Admit::Yes);
        a.expires = Some(now);
        assert!(matches!(a.admits(ApiKey::Produce, now), Admit::No(_)));
        assert_eq!(a.admits(ApiKey::SaslHandshake, now), Admit::Yes);
    }

    #[test]
    fn the_handshake_picks_an_enabled_mechanism_or_closes() {
        let config = SaslConfig {
            mechanisms: vec!["SCRAM-SHA-512".to_owned()],
            ..SaslConfig::default()
        };
        let ask = |name: &'static str| SaslHandshakeRequest::default().with_mechanism(name.into());
        let mut a = Authenticator::new(&config);
        let answer = a.handshake(&config, &ask("PLAIN"), 1);
        assert!(answer.close);
        assert_eq!(
            answer.body.error_code,
            ErrorCode::UnsupportedSaslMechanism.code()
        );
        assert_eq!(answer.body.mechanisms.len(), 1);
        let mut a = Authenticator::new(&config);
        let answer = a.handshake(&config, &ask("SCRAM-SHA-512"), 0);
        assert!(!answer.close && answer.body.error_code == 0);
        assert!(a.raw());
        // A second handshake in the middle of an exchange is out of order.
        assert!(a.handshake(&config, &ask("SCRAM-SHA-512"), 1).close);
    }
}
