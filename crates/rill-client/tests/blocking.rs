//! The blocking façade from plain threads, with no runtime of the caller's: the producer sends
//! and closes, the admin client manages topics and reads offsets.

mod common;

use anyhow::Result;
use common::Broker;
use rill_client::blocking::{Admin, Producer};
use rill_client::{
    AdminConfig, ClientConfig, ErrorCode, NewTopic, OffsetSpec, ProducerConfig, ProducerRecord,
};

#[test]
fn blocking_producer_and_admin_work_without_a_runtime() -> Result<()> {
    let broker = Broker::start()?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let created = admin.create_topic(NewTopic::new("plain", 2))?;
    assert_eq!(created.num_partitions, Some(2));
    let err = admin
        .create_topic(NewTopic::new("plain", 2))
        .err()
        .and_then(|e| e.code());
    assert_eq!(err, Some(ErrorCode::TopicAlreadyExists));

    let producer = Producer::new(ProducerConfig::new(client))?;
    for i in 0..4 {
        let meta = producer.send(
            ProducerRecord::new("plain")
                .partition(1)
                .value(format!("{i}")),
        )?;
        assert_eq!((meta.partition, meta.offset), (1, i));
    }
    producer.flush();
    producer.close();

    let ends: Vec<(i32, i64)> = admin
        .topic_offsets("plain", OffsetSpec::Latest)?
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    assert_eq!(ends, [(0, 0), (1, 4)]);
    assert_eq!(admin.describe_topic("plain")?.partitions.len(), 2);
    admin.increase_partitions("plain", 3)?;
    assert_eq!(admin.describe_topic("plain")?.partitions.len(), 3);
    admin.delete_topic("plain")?;
    assert!(admin.list_topics()?.is_empty());
    Ok(())
}

#[test]
fn blocking_clients_can_be_shared_across_threads() -> Result<()> {
    let broker = Broker::start()?;
    let client = ClientConfig::new([broker.bootstrap()]);
    let admin = Admin::new(AdminConfig::new(client.clone()))?;
    let _ = admin.create_topic(NewTopic::new("shared", 1))?;
    let producer = Producer::new(ProducerConfig::new(client))?;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let producer = &producer;
            let _ = scope.spawn(move || {
                for i in 0..5 {
                    let sent =
                        producer.send(ProducerRecord::new("shared").value(format!("{t}-{i}")));
                    assert!(sent.is_ok(), "{sent:?}");
                }
            });
        }
    });
    producer.close();
    let end = admin.topic_offsets("shared", OffsetSpec::Latest)?;
    assert_eq!(end.iter().map(|o| o.offset).sum::<i64>(), 20);
    Ok(())
}
