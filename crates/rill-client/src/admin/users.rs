//! SCRAM credentials of users (KIP-554): `DescribeUserScramCredentials` lists them,
//! `AlterUserScramCredentials` adds, replaces and deletes them. The client salts: it sends a
//! fresh random salt and the salted password (PBKDF2), never the password.

use std::num::NonZeroU32;

use bytes::Bytes;
use rill_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use rill_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use rill_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use rill_protocol::{ApiKey, StrBytes};

use super::{Admin, check, missing};
use crate::error::{ClientError, Result};
use crate::security::scram::{self, MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};

/// One SCRAM credential of a user, as the broker describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    /// Its mechanism (`None`: a mechanism this client does not know).
    pub mechanism: Option<ScramMechanism>,
    /// Its PBKDF2 iteration count.
    pub iterations: i32,
}

/// A change to one user's SCRAM credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum ScramAlteration {
    /// Adds (or replaces) the user's credential for a mechanism.
    Upsert {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
        /// PBKDF2 iterations, 4096..=16384 (Kafka's bounds).
        iterations: u32,
        /// The password: salted here, never sent.
        password: String,
    },
    /// Deletes the user's credential for a mechanism.
    Delete {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
    },
}

impl std::fmt::Debug for ScramAlteration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upsert {
                user,
                mechanism,
                iterations,
                ..
            } => f
                .debug_struct("Upsert")
                .field("user", user)
                .field("mechanism", mechanism)
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            Self::Delete { user, mechanism } => f
                .debug_struct("Delete")
                .field("user", user)
                .field("mechanism", mechanism)
                .finish(),
        }
    }
}

impl ScramAlteration {
    fn user(&self) -> &str {
        match self {
            Self::Upsert { user, .. } | Self::Delete { user, .. } => user,
        }
    }
}

impl Admin {
    /// The SCRAM credentials of `users` (every user that has one when `None`), one result per
    /// user in the order the broker answers (asked users in the order asked); a user without
    /// credentials is `RESOURCE_NOT_FOUND`.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for (user, credentials) in admin.describe_user_scram_credentials(None).await? {
    ///     println!("{user}: {:?}", credentials?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[String]>,
    ) -> Result<Vec<(String, Result<Vec<ScramCredentialInfo>>)>> {
        let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|name| UserName::default().with_name(StrBytes::from_string(name.clone())))
                .collect()
        }));
        let response = self
            .retrying(|| async { self.any().await?.request(request.clone()).await })
            .await?;
        check(response.error_code, response.error_message.as_ref(), || {
            "describe SCRAM credentials".to_owned()
        })?;
        let mut results: Vec<(String, Result<Vec<ScramCredentialInfo>>)> = response
            .results
            .into_iter()
            .map(|r| {
                let user = r.user.to_string();
                let outcome = check(r.error_code, r.error_message.as_ref(), || {
                    format!("user '{user}'")
                })
                .map(|()| {
                    r.credential_infos
                        .iter()
                        .map(|c| ScramCredentialInfo {
                            mechanism: ScramMechanism::from_kafka_type(c.mechanism),
                            iterations: c.iterations,
                        })
                        .collect()
                });
                (user, outcome)
            })
            .collect();
        if let Some(users) = users {
            let mut ordered = Vec::with_capacity(users.len());
            for user in users {
                match results.iter().position(|(u, _)| u == user) {
                    Some(i) => ordered.push(results.swap_remove(i)),
                    None => ordered.push((
                        user.clone(),
                        Err(missing(
                            ApiKey::DescribeUserScramCredentials,
                            &format!("user '{user}'"),
                        )),
                    )),
                }
            }
            results = ordered;
        }
        Ok(results)
    }

    /// Applies `alterations` in one request; one result per user named, in the order first
    /// named. Sent once (a change is not retried).
    pub async fn alter_user_scram_credentials(
        &self,
        alterations: &[ScramAlteration],
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut request = AlterUserScramCredentialsRequest::default();
        let mut users: Vec<String> = Vec::new();
        for alteration in alterations {
            if !users.iter().any(|u| u == alteration.user()) {
                users.push(alteration.user().to_owned());
            }
            match alteration {
                ScramAlteration::Upsert {
                    user,
                    mechanism,
                    iterations,
                    password,
                } => {
                    let count = NonZeroU32::new(*iterations)
                        .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&n.get()))
                        .ok_or_else(|| {
                            ClientError::Config(format!(
                                "iterations {iterations} is outside \
                                 {MIN_ITERATIONS}..={MAX_ITERATIONS}"
                            ))
                        })?;
                    let salt = scram::new_salt().map_err(ClientError::Config)?;
                    let salted = mechanism.salted_password(password.as_bytes(), &salt, count);
                    request.upsertions.push(
                        ScramCredentialUpsertion::default()
                            .with_name(StrBytes::from_string(user.clone()))
                            .with_mechanism(mechanism.kafka_type())
                            .with_iterations(i32::try_from(count.get()).unwrap_or(i32::MAX))
                            .with_salt(Bytes::from(salt))
                            .with_salted_password(Bytes::from(salted)),
                    );
                }
                ScramAlteration::Delete { user, mechanism } => request.deletions.push(
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(user.clone()))
                        .with_mechanism(mechanism.kafka_type()),
                ),
            }
        }
        let response = self.any().await?.request(request).await?;
        Ok(users
            .into_iter()
            .map(|user| {
                let outcome = match response.results.iter().find(|r| r.user.as_str() == user) {
                    Some(r) => check(r.error_code, r.error_message.as_ref(), || {
                        format!("user '{user}'")
                    }),
                    None => Err(missing(
                        ApiKey::AlterUserScramCredentials,
                        &format!("user '{user}'"),
                    )),
                };
                (user, outcome)
            })
            .collect())
    }
}
