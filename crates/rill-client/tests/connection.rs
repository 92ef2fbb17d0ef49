//! Connection and cluster against the real broker: version negotiation, pipelining, metadata,
//! failure of pending requests.

mod common;

use std::sync::Arc;

use anyhow::Result;
use common::Broker;
use rill_client::kafka_protocol::messages::MetadataRequest;
use rill_client::{ApiKey, ClientConfig, ClientError, Cluster, Connection, ConnectionConfig};

#[tokio::test]
async fn negotiates_versions_and_pipelines_requests() -> Result<()> {
    let broker = Broker::start()?;
    let conn =
        Arc::new(Connection::connect(&broker.bootstrap(), &ConnectionConfig::default()).await?);
    assert_eq!(conn.version_for(ApiKey::ApiVersions)?, 3);
    assert_eq!(conn.version_for(ApiKey::Produce)?, 12);
    assert!(matches!(
        conn.version_for(ApiKey::WriteTxnMarkers),
        Err(ClientError::UnsupportedApi { .. })
    ));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let conn = Arc::clone(&conn);
        tasks.push(tokio::spawn(async move {
            conn.request(MetadataRequest::default().with_topics(Some(Vec::new())))
                .await
        }));
    }
    for task in tasks {
        let response = task.await??;
        assert_eq!(response.brokers.len(), 1);
    }
    Ok(())
}

#[tokio::test]
async fn broker_stop_fails_pending_and_later_requests() -> Result<()> {
    let mut broker = Broker::start()?;
    let conn = Connection::connect(&broker.bootstrap(), &ConnectionConfig::default()).await?;
    broker.stop()?;
    let err = conn
        .request(MetadataRequest::default())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("request on a dead connection succeeded"))?;
    assert!(err.is_retriable(), "{err}");
    assert!(conn.is_closed());
    Ok(())
}

#[tokio::test]
async fn cluster_caches_metadata_and_reconnects_after_restart() -> Result<()> {
    let mut broker = Broker::start_with(&["--num-partitions", "3"])?;
    let cluster = Cluster::new(ClientConfig::new([broker.bootstrap()]));
    let topic = cluster.topic_metadata("auto-made").await?;
    assert_eq!(topic.partition_count(), 3);
    let (leader, first) = cluster.leader_connection("auto-made", 2).await?;
    assert_eq!(leader, 0);
    let (_, again) = cluster.leader_connection("auto-made", 1).await?;
    assert!(Arc::ptr_eq(&first, &again), "connection reused");

    broker.restart()?;
    // The old connection is dead; the cluster notices and opens a new one.
    let _ = first.request(MetadataRequest::default()).await;
    cluster.invalidate();
    let (_, fresh) = cluster.leader_connection("auto-made", 0).await?;
    assert!(!Arc::ptr_eq(&first, &fresh));
    assert!(!fresh.is_closed());
    Ok(())
}

#[tokio::test]
async fn no_broker_available_names_every_address() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cluster = Cluster::new(ClientConfig::new([format!("127.0.0.1:{port}")]));
    match cluster.topic_metadata("x").await {
        Err(ClientError::NoBrokerAvailable { tried }) => {
            assert_eq!(tried.len(), 1);
            assert!(tried[0].contains(&port.to_string()), "{tried:?}");
            // Why it failed, not only that it did.
            assert!(tried[0].to_lowercase().contains("refused"), "{tried:?}");
        }
        other => anyhow::bail!("expected NoBrokerAvailable, got {other:?}"),
    }
    Ok(())
}
