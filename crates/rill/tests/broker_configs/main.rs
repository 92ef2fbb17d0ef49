//! Dynamic broker configs against the real broker: AlterConfigs and IncrementalAlterConfigs on
//! BROKER resources (this broker's node id, or "" for the cluster default), Kafka's refusals,
//! DescribeConfigs' sources and synonyms, the topic defaults they change (live, through a
//! restart and a kill -9), and confluent-kafka's AdminClient.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

use anyhow::{Context, ensure};
use common::{Broker, Conn, Result, produce_request};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::alter_configs_request as legacy;
use rill_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use rill_protocol::kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use rill_protocol::kafka_protocol::messages::{AlterConfigsRequest, DescribeConfigsRequest};

const NONE: i16 = 0;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_BROKER: i8 = 2;
const SOURCE_CLUSTER: i8 = 3;
const SOURCE_STATIC: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn create(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) -> Result<()> {
    let code = conn.create_topic(topic, configs)?;
    ensure!(code == NONE, "creating {topic}: {code}");
    Ok(())
}

/// IncrementalAlterConfigs v1 of one resource: (error code, message).
fn incremental(
    conn: &mut Conn,
    kind: i8,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> Result<(i16, String)> {
    conn.incremental_alter_configs(kind, name, changes, validate_only)
}

/// Sets configs of a BROKER resource; fails unless NO_ERROR.
fn set(conn: &mut Conn, name: &str, changes: &[(&str, i8, Option<&str>)]) -> Result<()> {
    let (code, message) = incremental(conn, RESOURCE_BROKER, name, changes, false)?;
    ensure!(
        code == NONE,
        "{changes:?} on broker {name:?}: {code} {message}"
    );
    Ok(())
}

/// AlterConfigs v1 (the whole set) of a BROKER resource: the error code.
fn alter_legacy(conn: &mut Conn, name: &str, configs: &[(&str, &str)]) -> Result<i16> {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            legacy::AlterableConfig::default()
                .with_name(text(k))
                .with_value(Some(text(v)))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        legacy::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(text(name))
            .with_configs(configs),
    ]);
    let response = ask!(conn, AlterConfigs, 1, request);
    response
        .responses
        .first()
        .map(|r| r.error_code)
        .context("no resource")
}

/// DescribeConfigs v4 (synonyms included) of one resource.
fn describe(conn: &mut Conn, kind: i8, name: &str) -> Result<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(text(name))
                .with_configuration_keys(None),
        ]);
    let response = ask!(conn, DescribeConfigs, 4, request);
    response.results.into_iter().next().context("no resource")
}

/// One config of a resource: (value, source, synonyms as (name, value, source)).
type Described = (String, i8, Vec<(String, String, i8)>);

fn config(conn: &mut Conn, kind: i8, name: &str, key: &str) -> Result<Option<Described>> {
    let result = describe(conn, kind, name)?;
    ensure!(
        result.error_code == NONE,
        "describe {name:?}: {}",
        result.error_code
    );
    Ok(result
        .configs
        .into_iter()
        .find(|e| e.name.as_str() == key)
        .map(|e| {
            (
                e.value.map(|v| v.to_string()).unwrap_or_default(),
                e.config_source,
                e.synonyms
                    .iter()
                    .map(|s| {
                        (
                            s.name.to_string(),
                            s.value.as_deref().unwrap_or_default().to_owned(),
                            s.source,
                        )
                    })
                    .collect(),
            )
        }))
}

/// (value, source) of a config, which must be described.
fn value(conn: &mut Conn, kind: i8, name: &str, key: &str) -> Result<(String, i8)> {
    let (value, source, _) =
        config(conn, kind, name, key)?.with_context(|| format!("{key} of {name:?} missing"))?;
    Ok((value, source))
}

fn pair(value: &str, source: i8) -> (String, i8) {
    (value.to_owned(), source)
}

mod alter;
mod honoured;
