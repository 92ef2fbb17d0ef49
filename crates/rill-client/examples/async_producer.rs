//! The seed's async producer, on Rill's client: hands a message (`async: <random number>`) to
//! the [`AsyncProducer`] once a second and drains its successes and errors in a task of its
//! own, as the seed's goroutine does (without it the producer would block). Prints each
//! message sent, then `success: partition=<p> offset=<o> value=<v>` or `error: <err>` for
//! each outcome. Runs until Ctrl-C, then flushes and prints `done successes=<s> errors=<e>`.
//!
//! ```text
//! cargo run -p rill-client --example async_producer -- [BOOTSTRAP]
//! ```

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use rill_client::{AsyncProducer, ClientConfig, ProducerConfig, ProducerRecord};

const TOPIC: &str = "test0";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let producer = AsyncProducer::new(ProducerConfig::new(ClientConfig::new([bootstrap])))?;
    let mut successes = producer
        .successes()
        .await
        .ok_or_else(|| anyhow::anyhow!("successes already taken"))?;
    let mut errors = producer
        .errors()
        .await
        .ok_or_else(|| anyhow::anyhow!("errors already taken"))?;

    // The seed's draining goroutine: both channels, until the producer closes them.
    let drain = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        loop {
            tokio::select! {
                Some(delivered) = successes.recv() => {
                    ok += 1;
                    let value = delivered.record.value.as_deref().unwrap_or_default();
                    println!(
                        "success: partition={} offset={} value={}",
                        delivered.metadata.partition,
                        delivered.metadata.offset,
                        String::from_utf8_lossy(value),
                    );
                }
                Some(err) = errors.recv() => {
                    failed += 1;
                    println!("error: {}", err.error);
                }
                else => break,
            }
        }
        (ok, failed)
    });

    let random = RandomState::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    for i in 0u64.. {
        tokio::select! {
            result = &mut ctrl_c => {
                result?;
                break;
            }
            _ = ticker.tick() => {}
        }
        let value = format!("async: {}", random.hash_one(i) % 10_000);
        println!("{value}");
        producer
            .send(ProducerRecord::new(TOPIC).value(value))
            .await?;
    }

    // Flushes what is buffered; the channels end after the last outcome.
    producer.close().await;
    let (ok, failed) = drain.await?;
    println!("done successes={ok} errors={failed}");
    Ok(())
}
