//! The producer types and their futures can cross threads.

use rill_client::{AsyncProducer, Cluster, Producer, ProducerRecord};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn producers_and_cluster_are_send_and_sync() {
    assert_send_sync::<Producer>();
    assert_send_sync::<AsyncProducer>();
    assert_send_sync::<Cluster>();
    assert_send_sync::<rill_client::Connection>();
    assert_send_sync::<rill_client::ClientError>();
}

#[allow(dead_code, clippy::let_underscore_future)]
fn futures_are_send(producer: &Producer, async_producer: &AsyncProducer, cluster: &Cluster) {
    assert_send(&producer.send(ProducerRecord::new("t")));
    assert_send(&producer.flush());
    assert_send(&producer.close());
    assert_send(&async_producer.send(ProducerRecord::new("t")));
    assert_send(&async_producer.close());
    assert_send(&cluster.topic_metadata("t"));
}
