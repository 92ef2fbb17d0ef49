//! The seed's partition consumer, on Rill's client: list the partitions of `test0`, consume
//! each from the newest offset in a task of its own, and print every record as the seed's Go
//! program does (`Partition:%d, Offset:%d, key:%s, value:%s`). Runs until Ctrl-C.
//!
//! ```text
//! cargo run -p rill-client --example consumer -- [BOOTSTRAP]   # default 127.0.0.1:9092
//! ```

use rill_client::{ClientConfig, Consumer, ConsumerRecord, Offset};
use tokio::task::JoinSet;

const TOPIC: &str = "test0";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let consumer = Consumer::new(ClientConfig::new([bootstrap]))?;
    let partitions = match consumer.partitions(TOPIC).await {
        Ok(partitions) => partitions,
        Err(err) => {
            println!("Failed to get the list of partitions: {err}");
            std::process::exit(1);
        }
    };
    // On stderr, so that stdout carries only the seed's lines.
    eprintln!("partitions of {TOPIC}: {partitions:?}");

    let mut tasks = JoinSet::new();
    for partition in partitions {
        let mut pc = match consumer
            .consume_partition(TOPIC, partition, Offset::Newest)
            .await
        {
            Ok(pc) => pc,
            Err(err) => {
                println!("Failed to start consumer for partition {partition}: {err}");
                std::process::exit(1);
            }
        };
        let _ = tasks.spawn(async move {
            // Ends after an error the consumer does not retry (an offset out of range).
            while let Some(item) = pc.next().await {
                match item {
                    Ok(record) => print_record(&record),
                    Err(err) => eprintln!("consumer error: {err}"),
                }
            }
        });
    }

    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        () = async { while tasks.join_next().await.is_some() {} } => {
            eprintln!("every partition consumer stopped");
        }
    }
    // Aborting the tasks drops their partition consumers, which stops their fetches.
    tasks.shutdown().await;
    Ok(())
}

fn print_record(record: &ConsumerRecord) {
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    println!(
        "Partition:{}, Offset:{}, key:{}, value:{}",
        record.partition,
        record.offset,
        text(record.key.as_deref()),
        text(record.value.as_deref()),
    );
}
