//! Append and read throughput of a partition log, 1 KiB records.
//!
//! `cargo bench -p rill-log --bench log`; `scripts/bench-log.sh` runs it beside `dd` on the same
//! disk so the fsync figures can be compared with what the disk can do.

// criterion's group methods return `&mut Self` for chaining; the results mean nothing here.
#![allow(unused_results)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rill_log::{Log, LogConfig};
use rill_record::{BatchBuilder, RecordSpec};

const RECORD: usize = 1024;
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A batch of 1 KiB records adding up to about `bytes`.
fn batch(bytes: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for i in 0..bytes / RECORD {
        builder =
            builder.record(
                RecordSpec::new(1_700_000_000_000 + i as i64).value(vec![b'r'; RECORD - 20]),
            );
    }
    builder.build().map(|b| b.to_vec()).unwrap_or_default()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * MIB as u64,
        retention_bytes: 512 * MIB as i64,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Appends `iters` batches to a fresh log, timing only the appends (and syncs every
/// `sync_every` batches when set). Retention keeps the disk use bounded, outside the timing.
fn run_appends(mut template: Vec<u8>, iters: u64, sync_every: Option<u64>) -> Duration {
    let Ok(dir) = tempfile::tempdir() else {
        return Duration::ZERO;
    };
    let Ok(mut log) = Log::open(dir.path(), config(), 0) else {
        return Duration::ZERO;
    };
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let chunk = (iters - done).min(256);
        let start = Instant::now();
        for i in 0..chunk {
            black_box(log.append(&mut template, 0).ok());
            if sync_every.is_some_and(|n| (done + i + 1) % n == 0) {
                black_box(log.sync().ok());
            }
        }
        elapsed += start.elapsed();
        done += chunk;
        black_box(log.apply_retention(0).ok());
    }
    elapsed
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for size in [16 * KIB, MIB] {
        let template = batch(size);
        group.throughput(Throughput::Bytes(template.len() as u64));
        group.bench_with_input(BenchmarkId::new("no_fsync", size), &template, |b, t| {
            b.iter_custom(|iters| run_appends(t.clone(), iters, None));
        });
        // Group commit: one fsync per 1 MiB appended, whatever the batch size.
        let batches_per_mib = (MIB / size).max(1) as u64;
        group.bench_with_input(
            BenchmarkId::new("fsync_per_mib", size),
            &template,
            |b, t| b.iter_custom(|iters| run_appends(t.clone(), iters, Some(batches_per_mib))),
        );
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for size in [16 * KIB, MIB] {
        let Ok(dir) = tempfile::tempdir() else { return };
        let Ok(mut log) = Log::open(dir.path(), config(), 0) else {
            return;
        };
        let mut template = batch(size);
        let total = 256 * MIB;
        for _ in 0..total / template.len() {
            black_box(log.append(&mut template, 0).ok());
        }
        let end = log.log_end_offset();
        // A consumer catching up: sequential reads of up to 1 MiB (Kafka's default
        // max.partition.fetch.bytes), each continuing where the last ended.
        group.throughput(Throughput::Bytes(MIB.max(template.len()) as u64));
        group.bench_function(BenchmarkId::new("sequential_1mib", size), |b| {
            let mut offset = 0;
            b.iter(|| {
                if offset >= end {
                    offset = 0;
                }
                let bytes = log.read(offset, MIB).unwrap_or_default();
                offset = next_offset(&bytes).unwrap_or(end);
                black_box(bytes)
            });
        });
    }
    group.finish();
}

fn next_offset(bytes: &[u8]) -> Option<i64> {
    rill_record::Batches::new(bytes)
        .last()
        .and_then(Result::ok)
        .map(|b| b.header().next_offset())
}

criterion_group!(benches, append, read);
criterion_main!(benches);
