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
    assert_send_sync::<rill_client::Admin>();
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

#[test]
fn blocking_clients_are_send_and_sync() {
    assert_send_sync::<rill_client::blocking::Producer>();
    assert_send_sync::<rill_client::blocking::Admin>();
}

#[allow(dead_code, clippy::let_underscore_future)]
fn admin_futures_are_send(admin: &rill_client::Admin) {
    use rill_client::{NewTopic, OffsetSpec};
    assert_send(&admin.create_topics(&[NewTopic::new("t", 1)], false));
    assert_send(&admin.describe_topics(&["t"]));
    assert_send(&admin.describe_topic_configs("t"));
    assert_send(&admin.list_offsets(&[("t", 0)], OffsetSpec::Latest));
    assert_send(&admin.list_groups());
    assert_send(&admin.describe_group("g"));
    assert_send(&admin.delete_groups(&["g"]));
    assert_send(&admin.group_lag("g"));
}
