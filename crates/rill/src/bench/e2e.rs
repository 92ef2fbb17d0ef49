//! `rill bench e2e`: the producers of `produce` and the readers of `consume` in one process,
//! on one topic and one clock. Each value starts with its send instant (the intended one
//! with `--rate`); a reader's latency for a record is the instant it read it minus that.
//!
//! The readers start at the partitions' ends before the first record is sent, and stop once
//! they have read as many records as the producers had acknowledged (or when none arrives for
//! `--idle-timeout` after the producers are done, which is an error: acknowledged records
//! that cannot be read).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use rill_client::{Consumer, ConsumerConfig, IsolationLevel, Offset};
use tokio::sync::mpsc;

use super::args::E2eArgs;
use super::consume::{Latency, Readers, Shared, join_readers};
use super::produce::{self, Fleet};
use super::report::{Outcome, live};
use super::stats::Templates;
use super::{Clock, progress, setup};

pub(super) async fn run(args: E2eArgs) -> anyhow::Result<Outcome> {
    args.validate()?;
    let produce = &args.produce;
    let admin = setup::connect(&produce.bootstrap.client_config()?).await?;
    let topic = produce.topic.clone().unwrap_or_else(setup::fresh_topic);
    let partitions = setup::ensure_topic(&admin, &topic, produce.producer.partitions).await?;
    let mut config = ConsumerConfig::new(admin.cluster().config().clone());
    config.max_partition_fetch_bytes = args.fetch_size;
    if produce.producer.transactional {
        // Records count once their transaction commits.
        config.isolation_level = IsolationLevel::ReadCommitted;
    }
    let consumer = Consumer::with_cluster(config, Arc::clone(admin.cluster()))?;

    let templates = Templates::new()?;
    let (reports, series) = mpsc::unbounded_channel();
    let clock = Clock::start();
    let shared = Shared::new(u64::MAX);
    let readers = Readers {
        shared: Arc::clone(&shared),
        clock,
        templates: templates.clone(),
        reports: reports.clone(),
        latency: Latency::Stamp,
        warmup: None,
        counted: true,
    };
    let mut handles = Vec::new();
    for partition in setup::existing_partitions(&admin, &topic).await? {
        let pc = consumer
            .consume_partition(&topic, partition, Offset::Newest)
            .await
            .with_context(|| format!("reading '{topic}' partition {partition}"))?;
        handles.push(readers.spawn(pc, None));
    }
    drop(readers);
    let reporter = progress::spawn(clock, live(&produce.output), series);
    let fleet = Fleet::start(produce, &topic, clock, &templates, &reports, true).await;
    drop(reports);
    let produced = match fleet {
        Ok(fleet) => fleet.finish(&templates).await,
        Err(err) => Err(err),
    };
    let produced = match produced {
        Ok(produced) => produced,
        Err(err) => {
            shared.stop.cancel();
            return Err(err);
        }
    };
    // Everything acknowledged (warm-up included) is what the readers wait for.
    shared.set_target(produced.records + produced.warmup_records);
    let watchdog = shared.watchdog(args.idle_timeout, false);

    let (mut totals, failure) = join_readers(handles, &shared, &templates).await?;
    watchdog.abort();
    let series = reporter.await.context("the reporter failed")?;
    if let Some(err) = failure {
        return Err(err);
    }
    if shared.idle() {
        bail!(
            "no record arrived for {}: read {} of the {} acknowledged",
            humantime::format_duration(args.idle_timeout),
            shared.read_so_far(),
            produced.records + produced.warmup_records
        );
    }
    // The producers' failures are the run's too.
    totals.errors += produced.errors;
    if totals.first_error.is_none() {
        totals.first_error = produced.first_error;
    }
    let mut settings = produce::settings(produce, partitions)?;
    if let Some(map) = settings.as_object_mut() {
        let _ = map.insert("fetch_size".to_owned(), args.fetch_size.into());
    }
    Ok(Outcome {
        mode: "e2e",
        latency: "send to consume",
        topic,
        totals,
        series,
        settings,
    })
}
