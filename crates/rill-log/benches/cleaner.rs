//! Log cleaner throughput: one whole compaction pass over a log of keyed, mostly superseded
//! records, run as the broker runs it (`build_map`, `groups`, `clean_group`,
//! `Log::swap_cleaned`, `set_cleaned_to`), and the memory of the key map per million keys.
//!
//! `cargo bench -p rill-log --bench cleaner`. `RILL_BENCH_CLEANER_MIB` sets the log's size
//! (1024 MiB by default), `RILL_BENCH_CLEANER_KEYS` its distinct keys (1,000,000) and
//! `TMPDIR` where it is written; `RILL_BENCH_CLEANER_COLD=1` drops the log's pages from the
//! page cache (`posix_fadvise`) before the pass, so it reads from the disk. A plain `main` (no criterion): one pass takes seconds, and
//! it can only run once per log. Prints one JSON line per phase and a summary.

use std::time::Instant;

use rill_log::cleaner::{MAP_SLOT_BYTES, build_map, clean_group, groups};
use rill_log::{CleanRules, Log, LogConfig, OffsetMap, Pass, Throttle};
use rill_record::{BatchBuilder, RecordSpec};

const MIB: u64 = 1024 * 1024;
/// A producer's batch (`batch.size` 16 KiB).
const BATCH_BYTES: usize = 16 * 1024;
const VALUE_BYTES: usize = 100;
/// The broker's default map budget (`log.cleaner.dedupe.buffer.size`, one thread).
const BROKER_BUDGET: usize = 128 << 20;

type Error = Box<dyn std::error::Error>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a key order that looks random and is the same every run.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Appends `total` bytes of 16 KiB batches of records with keys drawn from `keys`, then rolls.
/// Returns (records, seconds).
fn fill(log: &mut Log, total: u64, keys: u64) -> Result<(u64, f64), Error> {
    let start = Instant::now();
    let value = vec![b'v'; VALUE_BYTES];
    let mut n = 0u64;
    let mut ts = 1_700_000_000_000i64;
    while log.log_end_offset() == 0 || log_bytes(log) < total {
        let mut builder = BatchBuilder::with_capacity(BATCH_BYTES + 256);
        while builder.uncompressed_len() < BATCH_BYTES - 160 {
            let key = format!("key-{:08}", mix(n) % keys);
            builder = builder.record(RecordSpec::new(ts).key(key).value(value.clone()));
            n += 1;
        }
        ts += 1;
        let _ = log.append(&mut builder.build()?.to_vec(), 0)?;
    }
    log.roll()?;
    Ok((n, start.elapsed().as_secs_f64()))
}

fn log_bytes(log: &Log) -> u64 {
    log.size_bytes()
}

/// Drops the page cache's copy of the log's files (written back first), so the pass reads
/// from the disk. Returns the files dropped.
fn drop_cache(dir: &std::path::Path) -> Result<usize, Error> {
    use std::os::fd::AsRawFd as _;
    let mut dropped = 0;
    for entry in std::fs::read_dir(dir)? {
        let file = std::fs::File::open(entry?.path())?;
        file.sync_all()?;
        // SAFETY: a valid open descriptor; fadvise only advises the kernel about its pages.
        #[expect(unsafe_code, reason = "libc has no safe posix_fadvise")]
        let err = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if err == 0 {
            dropped += 1;
        }
    }
    Ok(dropped)
}

fn main() -> Result<(), Error> {
    let mib = env_u64("RILL_BENCH_CLEANER_MIB", 1024);
    let keys = env_u64("RILL_BENCH_CLEANER_KEYS", 1_000_000);
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 128 * MIB,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0)?;
    let (records, fill_secs) = fill(&mut log, mib * MIB, keys)?;
    let segments = log.sealed_segments();
    let log_size: u64 = segments.iter().map(|s| s.size).sum();
    println!(
        "{{\"phase\":\"fill\",\"dir\":\"{}\",\"bytes\":{log_size},\"records\":{records},\
         \"keys\":{keys},\"segments\":{},\"secs\":{fill_secs:.2}}}",
        dir.path().display(),
        segments.len()
    );

    // The key map's memory: a map that takes every key, RSS before and after it is built.
    let throttle = Throttle::new(f64::INFINITY);
    let rss_before = rss_kib();
    let mut big = OffsetMap::with_capacity(usize::MAX / 2);
    let start = Instant::now();
    let _ = build_map(log.dir(), &segments, 0, &[], &mut big, &throttle)?;
    let big_secs = start.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    let map_keys = big.len() as u64;
    drop(big);
    let per_million = (rss_after.saturating_sub(rss_before)) as f64 * 1e6 / map_keys as f64;
    println!(
        "{{\"phase\":\"map_memory\",\"keys\":{map_keys},\"rss_before_kib\":{rss_before},\
         \"rss_after_kib\":{rss_after},\"kib_per_million_keys\":{per_million:.0},\
         \"bytes_per_key\":{:.1},\"slot_bytes\":{MAP_SLOT_BYTES},\
         \"accounted_kib_per_million_keys\":{:.0},\"secs\":{big_secs:.2}}}",
        per_million * 1024.0 / 1e6,
        MAP_SLOT_BYTES as f64 * 1e6 / 1024.0
    );

    // Cold: the pass reads the log from the disk rather than the page cache.
    if env_u64("RILL_BENCH_CLEANER_COLD", 0) == 1 {
        let files = drop_cache(log.dir())?;
        println!("{{\"phase\":\"drop_cache\",\"files\":{files}}}");
    }

    // One pass, as the broker's cleaner runs it (rill-broker/src/cleaner.rs `clean`).
    let total = Instant::now();
    let mut map = OffsetMap::with_budget(BROKER_BUDGET);
    let start = Instant::now();
    let from = log.cleaned_to();
    let map_end = build_map(log.dir(), &segments, from, &[], &mut map, &throttle)?;
    let map_secs = start.elapsed().as_secs_f64();
    let map_read: u64 = segments
        .iter()
        .filter(|s| s.next_offset > from && s.base_offset < map_end)
        .map(|s| s.size)
        .sum();
    println!(
        "{{\"phase\":\"build_map\",\"bytes_read\":{map_read},\"secs\":{map_secs:.2},\
         \"mb_s\":{:.0},\"keys\":{},\"capacity\":{},\"map_end\":{map_end},\
         \"log_end\":{}}}",
        mb_s(map_read, map_secs),
        map.len(),
        map.capacity(),
        log.log_end_offset()
    );
    let rules = CleanRules {
        delete_retention_ms: i64::MAX,
        map_end,
        index_interval: log.config().index_interval_bytes,
        ..CleanRules::default()
    };
    let cleanable: Vec<_> = segments
        .iter()
        .filter(|s| s.base_offset < map_end)
        .copied()
        .collect();
    let dir_path = log.dir().to_path_buf();
    let mut pass = Pass::default();
    let start = Instant::now();
    let (mut swaps, mut swap_secs) = (0usize, 0f64);
    let plan = groups(&cleanable, log.config().segment_bytes);
    let group_count = plan.len();
    for group in plan {
        if let Some(cleaned) = clean_group(&dir_path, &group, &map, &rules, &throttle, &mut pass)? {
            let swap = Instant::now();
            if log.swap_cleaned(&cleaned)? {
                swaps += 1;
            }
            swap_secs += swap.elapsed().as_secs_f64();
        }
    }
    log.set_cleaned_to(map_end)?;
    let stats = pass.stats;
    let clean_secs = start.elapsed().as_secs_f64();
    let total_secs = total.elapsed().as_secs_f64();
    println!(
        "{{\"phase\":\"clean\",\"bytes_read\":{},\"bytes_written\":{},\"secs\":{clean_secs:.2},\
         \"mb_s\":{:.0},\"groups\":{group_count},\"swaps\":{swaps},\"swap_secs\":{swap_secs:.3},\
         \"records_kept\":{},\"records_removed\":{}}}",
        stats.bytes_read,
        stats.bytes_written,
        mb_s(stats.bytes_read, clean_secs),
        stats.records_kept,
        stats.records_dropped
    );
    let read = map_read + stats.bytes_read;
    println!(
        "{{\"phase\":\"pass\",\"bytes_read\":{read},\"secs\":{total_secs:.2},\"mb_s\":{:.0},\
         \"log_mb_s\":{:.0},\"bytes_written\":{},\"segments_after\":{}}}",
        mb_s(read, total_secs),
        mb_s(log_size, total_secs),
        stats.bytes_written,
        log.segment_count()
    );
    println!(
        "summary: {:.0} MiB log, {} records, {} keys: map {:.0} MB/s ({:.2} s), clean {:.0} MB/s \
         ({:.2} s), pass {:.2} s = {:.0} MB/s of log; wrote {:.1} MiB, kept {}, removed {}; \
         map {:.0} KiB per million keys (accounted {:.0})",
        log_size as f64 / MIB as f64,
        records,
        keys,
        mb_s(map_read, map_secs),
        map_secs,
        mb_s(stats.bytes_read, clean_secs),
        clean_secs,
        total_secs,
        mb_s(log_size, total_secs),
        stats.bytes_written as f64 / MIB as f64,
        stats.records_kept,
        stats.records_dropped,
        per_million,
        MAP_SLOT_BYTES as f64 * 1e6 / 1024.0
    );
    Ok(())
}
