//! Before a run: reach the cluster (once, without retries, so that a wrong address fails at
//! once instead of after a producer's delivery timeout) and make sure the topic is there.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use rill_client::{Admin, AdminConfig, ClientConfig, Cluster, ErrorCode, NewTopic};

/// A fresh topic name, `rill-bench-<8 hex digits>`.
pub(super) fn fresh_topic() -> String {
    format!("rill-bench-{:08x}", fastrand::u32(..))
}

/// An admin client that never creates a topic by asking about it, after one metadata
/// round trip to a bootstrap broker.
pub(super) async fn connect(client: &ClientConfig) -> anyhow::Result<Admin> {
    let mut client = client.clone();
    client.allow_auto_topic_creation = false;
    let cluster = Arc::new(Cluster::new(client.clone()));
    cluster
        .refresh_metadata(&[])
        .await
        .with_context(|| format!("cannot reach the cluster at {}", client.bootstrap.join(",")))?;
    Ok(Admin::with_cluster(AdminConfig::new(client), cluster))
}

/// The partition count of `topic`, creating it with `partitions` (the broker's default when
/// `None`) if it does not exist. An existing topic with another count than `partitions` is
/// refused: changing it would change what other runs measured.
pub(super) async fn ensure_topic(
    admin: &Admin,
    topic: &str,
    partitions: Option<i32>,
) -> anyhow::Result<i32> {
    let count = match admin.describe_topic(topic).await {
        Ok(description) => i32::try_from(description.partitions.len())?,
        Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            match admin
                .create_topic(NewTopic::new(topic, partitions.unwrap_or(-1)))
                .await
            {
                // Someone (another producer's auto-create) was quicker: fine if it matches.
                Err(err) if err.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                other => {
                    let _ = other.with_context(|| format!("creating topic '{topic}'"))?;
                }
            }
            let described = admin
                .describe_topic(topic)
                .await
                .with_context(|| format!("describing topic '{topic}' after creating it"))?;
            i32::try_from(described.partitions.len())?
        }
        Err(err) => return Err(err).with_context(|| format!("describing topic '{topic}'")),
    };
    if let Some(wanted) = partitions
        && wanted != count
    {
        bail!(
            "topic '{topic}' has {count} partitions, --partitions asks for {wanted}: \
                 choose another --topic or drop --partitions"
        );
    }
    if count == 0 {
        bail!("topic '{topic}' has no partitions");
    }
    Ok(count)
}

/// The partitions of an existing `topic`, in order.
pub(super) async fn existing_partitions(admin: &Admin, topic: &str) -> anyhow::Result<Vec<i32>> {
    let description = match admin.describe_topic(topic).await {
        Ok(description) => description,
        Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            bail!("topic '{topic}' does not exist")
        }
        Err(err) => return Err(err).with_context(|| format!("describing topic '{topic}'")),
    };
    let partitions: Vec<i32> = description.partitions.iter().map(|p| p.partition).collect();
    if partitions.is_empty() {
        bail!("topic '{topic}' has no partitions");
    }
    Ok(partitions)
}
