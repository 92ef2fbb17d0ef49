//! The SASL exchange on a new connection, after `ApiVersions`: `SaslHandshake` v1 names the
//! mechanism, then each SASL message travels in a `SaslAuthenticate` request (KIP-152).

use std::time::Duration;

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use rill_protocol::{ApiKey, ErrorCode, StrBytes};

use super::scram::ScramClient;
use super::{Sasl, SaslMechanism};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// Authenticates `conn` as `sasl` says. Returns the session's lifetime when the broker gives
/// one (KIP-368, `SaslAuthenticate` v1+): the connection must not be used past it.
pub(crate) async fn authenticate(conn: &Connection, sasl: &Sasl) -> Result<Option<Duration>> {
    let fail = |code: Option<ErrorCode>, message: String| ClientError::Authentication {
        addr: conn.addr().to_owned(),
        code,
        message,
    };
    let handshake_version = conn.version_for(ApiKey::SaslHandshake).map_err(|_| {
        fail(
            None,
            "the broker does not offer SASL here (no SaslHandshake v1 in its ApiVersions); \
             is this listener PLAINTEXT or SSL?"
                .to_owned(),
        )
    })?;
    let mechanism = sasl.mechanism.name();
    let handshake = conn
        .request_at(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
            handshake_version,
        )
        .await?;
    if handshake.error_code != 0 {
        let code = ErrorCode::from_code(handshake.error_code);
        let message = if code == Some(ErrorCode::UnsupportedSaslMechanism) {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            format!(
                "the broker does not enable {mechanism} (it offers {})",
                offered.join(", ")
            )
        } else {
            // A PLAINTEXT or SSL listener answers ILLEGAL_SASL_STATE.
            "the broker refused the SASL handshake: is this listener SASL_PLAINTEXT or SASL_SSL?"
                .to_owned()
        };
        return Err(fail(code, message));
    }
    let version = conn.version_for(ApiKey::SaslAuthenticate)?;
    let step = |bytes: Vec<u8>| async move {
        let response = conn
            .request_at(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
                version,
            )
            .await?;
        if response.error_code != 0 {
            let message = response
                .error_message
                .as_ref()
                .map_or_else(String::new, |m| m.to_string());
            return Err(ClientError::Authentication {
                addr: conn.addr().to_owned(),
                code: Some(
                    ErrorCode::from_code(response.error_code)
                        .unwrap_or(ErrorCode::SaslAuthenticationFailed),
                ),
                message: if message.is_empty() {
                    format!("as '{}' with {mechanism}", sasl.username)
                } else {
                    message
                },
            });
        }
        Ok(response)
    };
    let last = match sasl.mechanism {
        SaslMechanism::Plain => {
            // RFC 4616: authorization identity (empty), NUL, user, NUL, password.
            let mut message = Vec::with_capacity(sasl.username.len() + sasl.password.len() + 2);
            message.push(0);
            message.extend_from_slice(sasl.username.as_bytes());
            message.push(0);
            message.extend_from_slice(sasl.password.as_bytes());
            step(message).await?
        }
        SaslMechanism::Scram(scram) => {
            let client = ScramClient::new(scram, &sasl.username, &sasl.password)
                .map_err(|why| fail(None, why))?;
            let server_first = step(client.client_first()).await?;
            let (client_final, proof) = client
                .client_final(&server_first.auth_bytes)
                .map_err(|why| fail(None, why))?;
            let server_final = step(client_final).await?;
            proof
                .verify(&server_final.auth_bytes)
                .map_err(|why| fail(None, why))?;
            server_final
        }
    };
    Ok(u64::try_from(last.session_lifetime_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis))
}
