//! The files of the data directory that are not partition logs: `meta.properties` (the cluster
//! id, as in Kafka), each partition's `partition.metadata` (its topic id), and the reader of
//! the metadata log as the single-node Rill wrote it before the quorum (`MetaStore`): records
//! keyed by topic name whose value is the topic's definition, or null once it is deleted, the
//! last record for a name winning; dynamic broker configs keyed
//! `__rill/broker-configs/<node id>`; producer id blocks. The quorum reads such a log once, to
//! upgrade it in place (`quorum/mod.rs`); the writers are kept for tests that make one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[cfg(test)]
use bytes::Bytes;
use rill_log::{Log, LogConfig, LogError};
use rill_record::Batches;
#[cfg(test)]
use rill_record::{BatchBuilder, RecordSpec};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::BrokerError;
use crate::partition::now_ms;

/// Directory of the metadata log under the data directory.
pub(crate) const METADATA_LOG: &str = "__rill_metadata-0";
/// The file in each partition directory naming the topic id it belongs to (as Kafka's).
pub(crate) const PARTITION_METADATA: &str = "partition.metadata";

/// A topic as the metadata log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
    /// Topic config overrides (Kafka names), validated before they were written.
    #[serde(default)]
    pub(crate) configs: BTreeMap<String, String>,
}

/// A metadata log in the single-node format.
#[derive(Debug)]
pub(crate) struct MetaStore {
    log: Log,
}

/// The metadata record that reserves producer ids: its key cannot be a topic name ('/').
const PRODUCER_IDS_KEY: &str = "__rill/producer-ids";

/// The prefix of the records holding a BROKER resource's dynamic configs; the resource name
/// (a node id, or "" for the cluster default) follows.
const BROKER_CONFIGS_KEY: &str = "__rill/broker-configs/";

/// Producer ids below `reserved_to` may have been handed out; a restart continues above it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ProducerIdBlock {
    reserved_to: i64,
}

/// What the metadata log held at start.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    pub(crate) topics: BTreeMap<String, TopicRecord>,
    /// Topics whose last record is a deletion.
    pub(crate) deleted: BTreeSet<String>,
    /// The first producer id never handed out.
    pub(crate) producer_ids_from: i64,
    /// Dynamic broker configs by BROKER resource name (a node id, or "" for the default).
    pub(crate) broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetaStore {
    /// Opens the metadata log and replays it.
    pub(crate) fn open(data_dir: &Path) -> Result<(Self, Replayed), BrokerError> {
        let dir = data_dir.join(METADATA_LOG);
        let log = Log::open(&dir, LogConfig::default(), now_ms())?;
        let mut replayed = Replayed::default();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20)?;
            for batch in Batches::new(&bytes) {
                let batch = batch.map_err(|source| corrupt(&dir, source.to_string()))?;
                offset = batch.header().next_offset();
                for record in batch.records().map_err(|e| corrupt(&dir, e.to_string()))? {
                    let name = record
                        .key
                        .as_deref()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .ok_or_else(|| corrupt(&dir, "a record without a topic name".into()))?
                        .to_owned();
                    if name == PRODUCER_IDS_KEY {
                        let block: ProducerIdBlock = record
                            .value
                            .as_deref()
                            .and_then(|v| serde_json::from_slice(v).ok())
                            .ok_or_else(|| {
                                corrupt(&dir, "an unreadable producer id block".into())
                            })?;
                        replayed.producer_ids_from =
                            replayed.producer_ids_from.max(block.reserved_to);
                        continue;
                    }
                    if let Some(resource) = name.strip_prefix(BROKER_CONFIGS_KEY) {
                        let configs = record
                            .value
                            .as_deref()
                            .map(serde_json::from_slice)
                            .transpose()
                            .map_err(|e| corrupt(&dir, format!("broker configs: {e}")))?
                            .unwrap_or_default();
                        let _ = replayed.broker_configs.insert(resource.to_owned(), configs);
                        continue;
                    }
                    match record.value {
                        Some(value) => {
                            let topic = serde_json::from_slice(&value)
                                .map_err(|e| corrupt(&dir, format!("topic {name}: {e}")))?;
                            let _ = replayed.deleted.remove(&name);
                            let _ = replayed.topics.insert(name, topic);
                        }
                        None => {
                            let _ = replayed.topics.remove(&name);
                            let _ = replayed.deleted.insert(name);
                        }
                    }
                }
            }
        }
        Ok((Self { log }, replayed))
    }

    /// Records a topic's new definition (or its deletion) durably.
    #[cfg(test)]
    pub(crate) fn put(
        &mut self,
        name: &str,
        topic: Option<&TopicRecord>,
    ) -> Result<(), BrokerError> {
        let value = topic
            .map(|t| serde_json::to_vec(t).map_err(|e| BrokerError::Internal(e.to_string())))
            .transpose()?;
        self.append(name, value)
    }

    /// Records a BROKER resource's whole set of dynamic configs durably.
    #[cfg(test)]
    pub(crate) fn put_broker_configs(
        &mut self,
        resource: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        let value =
            serde_json::to_vec(configs).map_err(|e| BrokerError::Internal(e.to_string()))?;
        self.append(&format!("{BROKER_CONFIGS_KEY}{resource}"), Some(value))
    }

    /// Records durably that producer ids below `reserved_to` may be handed out.
    #[cfg(test)]
    pub(crate) fn reserve_producer_ids(&mut self, reserved_to: i64) -> Result<(), BrokerError> {
        let value = serde_json::to_vec(&ProducerIdBlock { reserved_to })
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        self.append(PRODUCER_IDS_KEY, Some(value))
    }

    #[cfg(test)]
    fn append(&mut self, key: &str, value: Option<Vec<u8>>) -> Result<(), BrokerError> {
        let mut record = RecordSpec::new(now_ms()).key(Bytes::copy_from_slice(key.as_bytes()));
        if let Some(value) = value {
            record = record.value(value);
        }
        let batch = BatchBuilder::new()
            .record(record)
            .build()
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        let mut batch = batch.to_vec();
        let _ = self.log.append(&mut batch, now_ms())?;
        self.log.sync()?;
        Ok(())
    }

    /// The log's end offset: how many records it holds.
    pub(crate) fn end(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub(crate) fn close(self) -> Result<(), LogError> {
        self.log.close()
    }
}

fn corrupt(dir: &Path, what: String) -> BrokerError {
    BrokerError::Metadata(format!("{}: {what}", dir.display()))
}

/// The cluster id `meta.properties` names, if the file exists.
pub(crate) fn read_cluster_id(data_dir: &Path) -> Result<Option<String>, BrokerError> {
    let path = data_dir.join("meta.properties");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .find_map(|line| line.strip_prefix("cluster.id="))
            .map(|id| Some(id.trim().to_owned()))
            .ok_or_else(|| BrokerError::Metadata(format!("{}: no cluster.id", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BrokerError::Io { path, source }),
    }
}

/// Checks that this data directory belongs to the cluster the quorum named, recording the id
/// in `meta.properties` if it is the directory's first start.
pub(crate) fn claim_cluster_id(
    data_dir: &Path,
    node_id: i32,
    agreed: &str,
) -> Result<(), BrokerError> {
    match read_cluster_id(data_dir)? {
        Some(id) if id == agreed => Ok(()),
        Some(id) => Err(BrokerError::Config(format!(
            "the data dir {} belongs to cluster {id}, but the quorum's cluster is {agreed}",
            data_dir.display()
        ))),
        None => {
            let text = format!("version=1\ncluster.id={agreed}\nnode.id={node_id}\n");
            write_durably(&data_dir.join("meta.properties"), text.as_bytes())
        }
    }
}

/// Reads `meta.properties`, creating it with a new cluster id on first start.
pub(crate) fn cluster_id(data_dir: &Path, node_id: i32) -> Result<String, BrokerError> {
    let path = data_dir.join("meta.properties");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .find_map(|line| line.strip_prefix("cluster.id="))
            .map(|id| id.trim().to_owned())
            .ok_or_else(|| BrokerError::Metadata(format!("{}: no cluster.id", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4().simple().to_string();
            let text = format!("version=1\ncluster.id={id}\nnode.id={node_id}\n");
            write_durably(&path, text.as_bytes())?;
            Ok(id)
        }
        Err(source) => Err(BrokerError::Io { path, source }),
    }
}

/// Writes `partition.metadata` (the topic id) into a new partition directory.
pub(crate) fn write_partition_metadata(dir: &Path, topic_id: Uuid) -> Result<(), BrokerError> {
    fs::create_dir_all(dir).map_err(|source| BrokerError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let text = format!("version: 0\ntopic_id: {topic_id}\n");
    write_durably(&dir.join(PARTITION_METADATA), text.as_bytes())
}

/// The topic id a partition directory belongs to, if it says.
pub(crate) fn read_partition_topic_id(dir: &Path) -> Option<Uuid> {
    let text = fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

/// Writes a small file through a temporary name, fsyncing the file and the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    let io = |source, path: &Path| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = fs::File::create(&tmp).map_err(|e| io(e, &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(e, &tmp))?;
    fs::rename(&tmp, path).map_err(|e| io(e, path))?;
    if let Some(dir) = path.parent() {
        rill_log::dir::fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_configs_replay_beside_topics_last_set_wins() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let topic = TopicRecord {
            id: Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::new(),
        };
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        {
            let (mut store, replayed) = MetaStore::open(dir.path())?;
            assert!(replayed.broker_configs.is_empty());
            store.put("orders", Some(&topic))?;
            store.put_broker_configs("", &configs(&[("log.retention.ms", "1")]))?;
            store.put_broker_configs("0", &configs(&[("background.threads", "9")]))?;
            store.put_broker_configs("0", &configs(&[("log.roll.ms", "5")]))?;
            store.close()?;
        }
        let (_store, replayed) = MetaStore::open(dir.path())?;
        assert_eq!(replayed.topics.get("orders"), Some(&topic));
        assert_eq!(
            replayed.broker_configs.get(""),
            Some(&configs(&[("log.retention.ms", "1")]))
        );
        assert_eq!(
            replayed.broker_configs.get("0"),
            Some(&configs(&[("log.roll.ms", "5")]))
        );
        Ok(())
    }
}
