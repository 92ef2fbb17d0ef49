//! The seed's sync producer, on Rill's client: waits for every in-sync replica (`acks=all`),
//! picks a random partition, sends `Hello World!` to `test0` and prints the partition and
//! offset as the seed's Go program does (`分区ID:<partition>, offset:<offset>`, "partition ID").
//! Sends COUNT messages (default 1, as the seed) and exits; Ctrl-C stops it early.
//!
//! ```text
//! cargo run -p rill-client --example sync_producer -- [BOOTSTRAP] [COUNT]
//! ```

use rill_client::{Acks, ClientConfig, Partitioner, Producer, ProducerConfig, ProducerRecord};

const TOPIC: &str = "test0";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let count: u64 = args.next().map_or(Ok(1), |n| n.parse())?;

    let mut config = ProducerConfig::new(ClientConfig::new([bootstrap]));
    // acks=all: a send counts only once every in-sync replica has the message.
    config.acks = Acks::All;
    config.partitioner = Partitioner::Random;
    let producer = match Producer::new(config) {
        Ok(producer) => producer,
        Err(err) => {
            println!("producer close err, {err}");
            std::process::exit(1);
        }
    };

    let send_all = async {
        for _ in 0..count {
            let meta = producer
                .send(ProducerRecord::new(TOPIC).value("Hello World!"))
                .await?;
            println!("分区ID:{}, offset:{}", meta.partition, meta.offset);
        }
        Ok::<_, rill_client::ClientError>(())
    };
    let outcome = tokio::select! {
        outcome = send_all => outcome,
        result = tokio::signal::ctrl_c() => {
            result?;
            eprintln!("interrupted");
            Ok(())
        }
    };
    producer.close().await;
    if let Err(err) = outcome {
        println!("send message failed, {err}");
        std::process::exit(1);
    }
    Ok(())
}
