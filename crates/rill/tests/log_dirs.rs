//! DescribeLogDirs (key 35): the broker's data dir and the bytes of each partition held there,
//! through kafka-python's admin client, raw requests at v1 to v4 (null and explicit topic lists,
//! an unknown topic, a partition not held), `rill log-dirs`, and an authorizer that refuses a
//! principal without DESCRIBE on the cluster.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, ensure};
use common::{Broker, Conn, Result, rill_fails, rill_ok, row_starting, run_py};
use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rill_protocol::kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use rill_protocol::kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse;
use rill_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateTopicsRequest, DescribeLogDirsRequest, MetadataRequest, TopicName,
    create_acls_request,
};
use rill_record::{BatchBuilder, RecordSpec};
use serde_json::{Value, json};

const TOPIC: &str = "sized";
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// One batch of records with these values.
fn batch(values: &[&[u8]]) -> Result<bytes::Bytes> {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder = builder.record(RecordSpec::new(1_700_000_000_000).value(value.to_vec()));
    }
    Ok(builder.build()?)
}

/// A broker with the 2-partition topic [`TOPIC`]: partition 0 holds one batch of three
/// records, partition 1 two batches. Returns the bytes produced to each partition.
fn seeded(broker: &Broker) -> Result<[i64; 2]> {
    let mut conn = Conn::open(broker)?;
    let created = ask!(
        &mut conn,
        CreateTopics,
        7,
        CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(TOPIC))
                    .with_num_partitions(2)
                    .with_replication_factor(-1),
            ])
    );
    ensure!(
        created.topics.iter().all(|t| t.error_code == 0),
        "{created:?}"
    );
    let mut sizes = [0_i64; 2];
    let long = vec![b'x'; 100];
    let short = vec![b'y'; 10];
    let batches: [(i32, bytes::Bytes); 3] = [
        (0, batch(&[b"a", b"bb", b"ccc"])?),
        (1, batch(&[&long])?),
        (1, batch(&[&short, &short, &short, &short, &short])?),
    ];
    for (partition, records) in batches {
        let len = i64::try_from(records.len())?;
        let (code, _) = conn.produce(TOPIC, partition, records)?;
        ensure!(code == 0, "produce to partition {partition}: error {code}");
        sizes[usize::try_from(partition)?] += len;
    }
    Ok(sizes)
}

/// Bytes of the `.log` segment files of `topic`-`partition` under `data_dir`.
fn bytes_on_disk(data_dir: &Path, topic: &str, partition: i32) -> Result<i64> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            total += i64::try_from(std::fs::metadata(&path)?.len())?;
        }
    }
    Ok(total)
}

fn data_dir(broker: &Broker) -> Result<PathBuf> {
    Ok(std::path::absolute(
        broker
            .data_dir()
            .context("an external broker has no data dir here")?,
    )?)
}

/// The broker's node id, as Metadata gives it.
fn node_id(conn: &mut Conn) -> Result<i32> {
    let metadata = ask!(
        conn,
        Metadata,
        12,
        MetadataRequest::default().with_topics(Some(Vec::new()))
    );
    Ok(metadata
        .brokers
        .first()
        .context("no broker listed")?
        .node_id
        .0)
}

/// The file system's size and available bytes under `dir`, as df(1) reports them (the same
/// statvfs fields Java's FileStore reads).
fn df(dir: &Path) -> Result<(i64, i64)> {
    let out = Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(dir)
        .output()?;
    ensure!(out.status.success(), "df failed: {out:?}");
    let text = String::from_utf8(out.stdout)?;
    let cells: Vec<i64> = text
        .lines()
        .nth(1)
        .context("no df line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    ensure!(cells.len() == 2, "df: {text}");
    Ok((cells[0], cells[1]))
}

/// Each topic in a dir: `(topic, [(partition, size, lag, future)])`.
type Listed = Vec<(String, Vec<(i32, i64, i64, bool)>)>;

/// The topics of the one dir of `response`, after checking the dir: no error, and `path`.
fn listed(response: &DescribeLogDirsResponse, path: &Path) -> Result<Listed> {
    ensure!(response.results.len() == 1, "{response:?}");
    let dir = &response.results[0];
    ensure!(dir.error_code == 0, "{response:?}");
    ensure!(
        dir.log_dir.as_str() == path.to_string_lossy(),
        "log dir {:?}, data dir {}",
        dir.log_dir,
        path.display()
    );
    Ok(dir
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.partition_size,
                        p.offset_lag,
                        p.is_future_key,
                    )
                })
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect())
}

fn ask_for(topics: &[(&str, &[i32])]) -> DescribeLogDirsRequest {
    DescribeLogDirsRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|(topic, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(partitions.to_vec())
            })
            .collect(),
    ))
}

#[test]
fn raw_requests_at_v1_to_v4_report_the_dir_and_exact_partition_sizes() -> Result<()> {
    let broker = Broker::start()?;
    let [size0, size1] = seeded(&broker)?;
    let path = data_dir(&broker)?;
    // The sizes produced are the bytes of the segment files: batches are stored verbatim.
    ensure!(
        [
            bytes_on_disk(&path, TOPIC, 0)?,
            bytes_on_disk(&path, TOPIC, 1)?
        ] == [size0, size1],
        "on disk vs produced {size0} {size1}"
    );
    let mut conn = Conn::open(&broker)?;
    let both = vec![(
        TOPIC.to_owned(),
        vec![(0, size0, 0, false), (1, size1, 0, false)],
    )];
    for version in 1..=4 {
        // Every partition held (a null topic list).
        let all = ask!(
            &mut conn,
            DescribeLogDirs,
            version,
            DescribeLogDirsRequest::default().with_topics(None)
        );
        ensure!(all.error_code == 0 && all.throttle_time_ms == 0, "{all:?}");
        ensure!(listed(&all, &path)? == both, "v{version}: {all:?}");
        let dir = &all.results[0];
        if version < 4 {
            // Not on the wire before v4: the decoded defaults, Kafka's -1.
            ensure!(
                (dir.total_bytes, dir.usable_bytes) == (-1, -1),
                "v{version}: {dir:?}"
            );
        } else {
            let (total, avail) = df(&path)?;
            ensure!(
                dir.total_bytes == total,
                "total {} vs df {total}",
                dir.total_bytes
            );
            // Other writers on this file system move the free space between the two looks.
            ensure!(
                (dir.usable_bytes - avail).abs() < 512 << 20 && dir.usable_bytes <= total,
                "usable {} vs df {avail}",
                dir.usable_bytes
            );
        }

        // Listed topics: partition 1 asked twice, 7 and 5 not held (no such partitions), an
        // unknown topic: only partition 1 of the topic, once.
        let some = ask!(
            &mut conn,
            DescribeLogDirs,
            version,
            ask_for(&[(TOPIC, &[1, 7, 1]), ("nope", &[0]), (TOPIC, &[5])])
        );
        ensure!(
            listed(&some, &path)? == vec![(TOPIC.to_owned(), vec![(1, size1, 0, false)])],
            "v{version}: {some:?}"
        );
        // Nothing held of what was asked: the dir, with no topics.
        let none = ask!(
            &mut conn,
            DescribeLogDirs,
            version,
            ask_for(&[(TOPIC, &[2]), ("nope", &[0, 1])])
        );
        ensure!(listed(&none, &path)?.is_empty(), "v{version}: {none:?}");
        // An empty list asks for nothing.
        let empty = ask!(&mut conn, DescribeLogDirs, version, ask_for(&[]));
        ensure!(listed(&empty, &path)?.is_empty(), "v{version}: {empty:?}");
    }
    Ok(())
}

#[test]
fn kafka_python_describe_log_dirs_gives_the_bytes_on_disk() -> Result<()> {
    let broker = Broker::start()?;
    let [size0, size1] = seeded(&broker)?;
    let path = data_dir(&broker)?;
    let node = node_id(&mut Conn::open(&broker)?)?;
    let dir = path.to_string_lossy().into_owned();
    let on_disk = [
        bytes_on_disk(&path, TOPIC, 0)?,
        bytes_on_disk(&path, TOPIC, 1)?,
    ];
    ensure!(on_disk == [size0, size1], "{on_disk:?} vs {size0} {size1}");

    // No partitions given: kafka-python asks for every partition of every topic it sees.
    let all = run_py("log_dirs.py", &[broker.bootstrap()], b"")?;
    let dirs = all.as_array().context("not a list")?;
    ensure!(dirs.len() == 1, "{all}");
    let (total, avail) = df(&path)?;
    let d = &dirs[0];
    ensure!(
        d["broker"] == json!(node)
            && d["dir"] == json!(dir)
            && d["error"] == json!(0)
            && d["total"] == json!(total),
        "{all}"
    );
    let usable = d["usable"].as_i64().context("no usable bytes")?;
    ensure!(
        (usable - avail).abs() < 512 << 20,
        "usable {usable} vs df {avail}"
    );
    ensure!(
        d["partitions"]
            == json!({"sized-0": [on_disk[0], 0, false], "sized-1": [on_disk[1], 0, false]}),
        "{all}"
    );

    // Its dict form: one partition held, one not, and an unknown topic.
    let asked = json!({"sized": [1, 9], "nope": [0]}).to_string();
    let some = run_py(
        "log_dirs.py",
        &[broker.bootstrap(), "--partitions".to_owned(), asked],
        b"",
    )?;
    ensure!(
        some[0]["partitions"] == json!({"sized-1": [on_disk[1], 0, false]})
            && some[0]["dir"] == json!(dir)
            && some.as_array().map(Vec::len) == Some(1),
        "{some}"
    );
    Ok(())
}

#[test]
fn rill_log_dirs_prints_dir_topic_partition_size_and_lag() -> Result<()> {
    let broker = Broker::start()?;
    let [size0, size1] = seeded(&broker)?;
    let path = data_dir(&broker)?;
    let dir = path.to_string_lossy().into_owned();
    let node = node_id(&mut Conn::open(&broker)?)?.to_string();
    let b = broker.bootstrap();

    let (out, _) = rill_ok(&b, &["log-dirs"], b"")?;
    let summary = format!(
        "broker {node}  dir {dir}  2 partitions, {} bytes",
        size0 + size1
    );
    ensure!(out.lines().any(|l| l.starts_with(&summary)), "{out}");
    ensure!(
        row_starting(
            &out,
            &["BROKER", "DIR", "TOPIC", "PARTITION", "SIZE", "LAG"]
        )
        .is_some(),
        "{out}"
    );
    for (partition, size) in [("0", size0), ("1", size1)] {
        let row = row_starting(&out, &[&node, &dir, TOPIC, partition]).context(out.clone())?;
        ensure!(row[4..] == [size.to_string(), "0".to_owned()], "{out}");
    }

    // One topic (each of its partitions), one broker.
    let (only, _) = rill_ok(&b, &["log-dirs", TOPIC, "--broker", &node], b"")?;
    ensure!(
        row_starting(&only, &[&node, &dir, TOPIC, "1"]).is_some_and(|r| r[4] == size1.to_string()),
        "{only}"
    );

    // A typo fails the command rather than listing nothing.
    let err = rill_fails(&b, &["log-dirs", "nope"], b"")?;
    ensure!(err.contains("topic 'nope' does not exist"), "{err}");
    Ok(())
}

#[test]
fn a_principal_without_describe_on_the_cluster_is_refused() -> Result<()> {
    // Everyone may use what has no ACL: anonymous clients (raw requests, the CLI) may describe
    // the cluster until an ACL on it names someone else.
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--allow-everyone-if-no-acl-found",
        "true",
    ])?;
    let [size0, size1] = seeded(&broker)?;
    let path = data_dir(&broker)?;
    let mut conn = Conn::open(&broker)?;
    let before = ask!(
        &mut conn,
        DescribeLogDirs,
        4,
        DescribeLogDirsRequest::default().with_topics(None)
    );
    ensure!(
        listed(&before, &path)?
            == vec![(
                TOPIC.to_owned(),
                vec![(0, size0, 0, false), (1, size1, 0, false)]
            )],
        "{before:?}"
    );

    // DESCRIBE on the cluster for User:admin only (types: 4 cluster, 3 literal, 8 describe,
    // 3 allow): User:ANONYMOUS has it no more.
    let allow_admin = create_acls_request::AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:admin"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8)
        .with_permission_type(3);
    let made = ask!(
        &mut conn,
        CreateAcls,
        3,
        CreateAclsRequest::default().with_creations(vec![allow_admin])
    );
    ensure!(made.results.iter().all(|r| r.error_code == 0), "{made:?}");

    for version in 1..=4 {
        let refused = ask!(
            &mut conn,
            DescribeLogDirs,
            version,
            DescribeLogDirsRequest::default().with_topics(None)
        );
        // v3+ say why at the top; before v3 there is no field for it: no dirs at all.
        let code = if version >= 3 {
            CLUSTER_AUTHORIZATION_FAILED
        } else {
            0
        };
        ensure!(
            refused.error_code == code && refused.results.is_empty(),
            "v{version}: {refused:?}"
        );
        let asked = ask!(
            &mut conn,
            DescribeLogDirs,
            version,
            ask_for(&[(TOPIC, &[0, 1])])
        );
        ensure!(
            asked.error_code == code && asked.results.is_empty(),
            "v{version}: {asked:?}"
        );
    }
    let err = rill_fails(&broker.bootstrap(), &["log-dirs"], b"")?;
    ensure!(err.contains("CLUSTER_AUTHORIZATION_FAILED"), "{err}");
    Ok(())
}

#[test]
fn kafka_python_sees_no_dirs_without_describe_on_the_cluster() -> Result<()> {
    let broker = Broker::start_with(&[
        "--authorizer-class-name",
        STANDARD,
        "--allow-everyone-if-no-acl-found",
        "true",
    ])?;
    let _ = seeded(&broker)?;
    let mut conn = Conn::open(&broker)?;
    let deny = create_acls_request::AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8)
        .with_permission_type(2);
    let made = ask!(
        &mut conn,
        CreateAcls,
        3,
        CreateAclsRequest::default().with_creations(vec![deny])
    );
    ensure!(made.results.iter().all(|r| r.error_code == 0), "{made:?}");
    let out: Value = run_py("log_dirs.py", &[broker.bootstrap()], b"")?;
    ensure!(out == json!([]), "{out}");
    Ok(())
}

#[test]
fn a_data_dir_that_cannot_be_read_is_a_storage_error() -> Result<()> {
    const KAFKA_STORAGE_ERROR: i16 = 56;
    let broker = Broker::start()?;
    let _ = seeded(&broker)?;
    let path = data_dir(&broker)?;
    let dir = path.to_string_lossy().into_owned();
    // Gone from under the running broker (its open files keep working); put back afterwards
    // so the harness can remove it.
    let moved = path.with_extension("moved");
    std::fs::rename(&path, &moved)?;
    let outcome = (|| -> Result<()> {
        let mut conn = Conn::open(&broker)?;
        let node = node_id(&mut conn)?;
        for version in 1..=4 {
            let answer = ask!(
                &mut conn,
                DescribeLogDirs,
                version,
                DescribeLogDirsRequest::default().with_topics(None)
            );
            ensure!(answer.error_code == 0, "v{version}: {answer:?}");
            let got: Vec<_> = answer
                .results
                .iter()
                .map(|d| {
                    (
                        d.error_code,
                        d.log_dir.to_string(),
                        d.topics.len(),
                        d.total_bytes,
                        d.usable_bytes,
                    )
                })
                .collect();
            ensure!(
                got == [(KAFKA_STORAGE_ERROR, dir.clone(), 0, -1, -1)],
                "v{version}: {answer:?}"
            );
        }
        let (out, _) = rill_ok(&broker.bootstrap(), &["log-dirs"], b"")?;
        ensure!(
            out.lines().next().is_some_and(
                |l| l == format!("broker {node}  dir {dir}  error KAFKA_STORAGE_ERROR")
            ),
            "{out}"
        );
        Ok(())
    })();
    std::fs::rename(&moved, &path)?;
    outcome
}
