//! The seed's consumer group, on Rill's client: join group `group-1`, consume topic `test0`,
//! print every message as the seed does (`Partition:%d, Offset:%d, key:%s, value:%s`), mark it,
//! and commit the marked offsets every second. A partition the group has no committed offset
//! for starts at the newest offset. Partition assignments are printed on stderr (the seed's
//! notifications). Ctrl-C commits, leaves the group and exits.
//!
//! ```text
//! cargo run -p rill-client --example consumer_group -- [BOOTSTRAP]   # default 127.0.0.1:9092
//! ```

use std::time::Duration;

use rill_client::{ClientConfig, GroupConfig, GroupConsumer, StartOffset};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let mut config = GroupConfig::new("group-1");
    config.auto_commit_interval = Some(Duration::from_secs(1));
    config.start = StartOffset::Newest;
    let mut group = GroupConsumer::new(ClientConfig::new([bootstrap]), config)?;
    group.subscribe(&["test0"]);

    let mut events = group.events();
    drop(tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            eprintln!("rebalanced: {event:?}");
        }
    }));

    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                result?;
                break;
            }
            item = group.next() => match item {
                Some(Ok(record)) => {
                    println!(
                        "Partition:{}, Offset:{}, key:{}, value:{}",
                        record.partition,
                        record.offset,
                        String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()),
                        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()),
                    );
                    group.mark(&record);
                }
                Some(Err(err)) => eprintln!("consumer group error: {err}"),
                None => break,
            },
        }
    }
    group.close().await?;
    Ok(())
}
