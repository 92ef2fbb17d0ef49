//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SASL users and their
//! SCRAM credentials, kept in the metadata log. Clients send a salt and the salted password,
//! never the password; the broker keeps only RFC 5802's keys derived from them.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use rill_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use rill_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::message;
use crate::broker::Broker;
use crate::sasl::scram::{Credential, MAX_ITERATIONS, MIN_ITERATIONS, Mechanism};

/// The users asked for (all of them when the list is null or empty), each with its mechanisms
/// and iteration counts.
pub(crate) fn describe(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = broker.quorum.image();
    let info = |credentials: &BTreeMap<String, Credential>| {
        credentials
            .iter()
            .filter_map(|(name, c)| {
                Some(
                    CredentialInfo::default()
                        .with_mechanism(Mechanism::from_name(name)?.code())
                        .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX)),
                )
            })
            .collect()
    };
    let asked: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if asked.is_empty() {
        image
            .users
            .iter()
            .map(|(user, credentials)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(info(credentials))
            })
            .collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        let duplicated: std::collections::HashSet<&String> =
            asked.iter().filter(|u| !seen.insert(*u)).collect();
        let mut answered = std::collections::HashSet::new();
        asked
            .iter()
            .filter(|u| answered.insert(*u))
            .map(|user| {
                let result = DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()));
                if duplicated.contains(user) {
                    return result
                        .with_error_code(ErrorCode::DuplicateResource.code())
                        .with_error_message(message(format!(
                            "user '{user}' is named more than once"
                        )));
                }
                match image.users.get(user) {
                    Some(credentials) => result.with_credential_infos(info(credentials)),
                    None => result
                        .with_error_code(ErrorCode::ResourceNotFound.code())
                        .with_error_message(message(format!(
                            "user '{user}' has no SCRAM credentials"
                        ))),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// Adds, replaces and deletes credentials. A user with any bad alteration gets its error and
/// none of its alterations apply; the others apply together, in one metadata entry.
pub(crate) async fn alter(
    broker: &Broker,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Users in the order they first appear, each with its first error if any.
    let mut users: Vec<(String, Option<(ErrorCode, String)>)> = Vec::new();
    let fail = |users: &mut Vec<(String, Option<(ErrorCode, String)>)>,
                user: &str,
                code: ErrorCode,
                why: String| {
        if let Some((_, error)) = users.iter_mut().find(|(u, _)| u == user) {
            let _ = error.get_or_insert((code, why));
        }
    };
    let mut named = std::collections::HashSet::new();
    let mut upsert = Vec::new();
    let mut delete = Vec::new();
    {
        let image = broker.quorum.image();
        let deletions = request
            .deletions
            .iter()
            .map(|d| (d.name.to_string(), d.mechanism, None));
        let upsertions = request.upsertions.iter().map(|u| {
            (
                u.name.to_string(),
                u.mechanism,
                Some((u.iterations, &u.salt, &u.salted_password)),
            )
        });
        for (user, code, upsertion) in deletions.chain(upsertions) {
            if !users.iter().any(|(u, _)| *u == user) {
                users.push((user.clone(), None));
            }
            if user.is_empty() {
                fail(
                    &mut users,
                    &user,
                    ErrorCode::UnacceptableCredential,
                    "the user name is empty".to_owned(),
                );
                continue;
            }
            let Some(mechanism) = Mechanism::from_code(code) else {
                fail(
                    &mut users,
                    &user,
                    ErrorCode::UnsupportedSaslMechanism,
                    format!("unknown SCRAM mechanism {code}: 1 is SCRAM-SHA-256, 2 SCRAM-SHA-512"),
                );
                continue;
            };
            if !named.insert((user.clone(), mechanism)) {
                fail(
                    &mut users,
                    &user,
                    ErrorCode::DuplicateResource,
                    format!("{} of user '{user}' is altered twice", mechanism.name()),
                );
                continue;
            }
            match upsertion {
                None => {
                    let exists = image
                        .users
                        .get(&user)
                        .is_some_and(|c| c.contains_key(mechanism.name()));
                    if !exists {
                        fail(
                            &mut users,
                            &user,
                            ErrorCode::ResourceNotFound,
                            format!("user '{user}' has no {} credential", mechanism.name()),
                        );
                        continue;
                    }
                    delete.push((user, mechanism.name().to_owned()));
                }
                Some((iterations, salt, salted)) => {
                    let iterations = u32::try_from(iterations).unwrap_or(0);
                    let why = if iterations < MIN_ITERATIONS {
                        Some(format!("too few iterations: at least {MIN_ITERATIONS}"))
                    } else if iterations > MAX_ITERATIONS {
                        Some(format!("too many iterations: at most {MAX_ITERATIONS}"))
                    } else if salt.is_empty() || salted.is_empty() {
                        Some("the salt and the salted password must not be empty".to_owned())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        fail(&mut users, &user, ErrorCode::UnacceptableCredential, why);
                        continue;
                    }
                    let credential =
                        Credential::from_salted(mechanism, salt.to_vec(), salted, iterations);
                    upsert.push((user, mechanism.name().to_owned(), credential));
                }
            }
        }
    }
    let failed = |user: &String| users.iter().any(|(u, error)| u == user && error.is_some());
    upsert.retain(|(user, _, _)| !failed(user));
    delete.retain(|(user, _)| !failed(user));
    let outcome = if upsert.is_empty() && delete.is_empty() {
        Ok(())
    } else {
        broker.alter_scram_credentials(upsert, delete).await
    };
    let results = users
        .into_iter()
        .map(|(user, error)| {
            let error = error.or_else(|| outcome.clone().err());
            let result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match error {
                None => result,
                Some((code, why)) => result
                    .with_error_code(code.code())
                    .with_error_message(message(why)),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
