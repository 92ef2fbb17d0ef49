//! How many partitions the offsets log of a data directory has, and the one-time move from the
//! single log `__consumer_offsets-0` that Rill wrote before to one log per partition.
//!
//! The count is recorded in `__consumer_offsets-0/layout` (`partitions=50`). A directory keeps
//! the count it was first written with, as Kafka never changes the partition count of its
//! offsets topic: moving groups between partitions would lose their offsets.
//!
//! The move is crash-safe and idempotent. Its steps, each durable before the next starts:
//! 1. the marker says `partitions=N migrating`: a restart resumes with the same N;
//! 2. every group's live offsets are appended to its partition's log (other than 0) and fsynced;
//! 3. log 0 gets its own groups' live offsets again and its start moves past everything older,
//!    so only its groups remain;
//! 4. the marker says `partitions=N`.
//!
//! Until step 4 nothing is served, so log 0 is the truth, and redoing steps 2-3 only appends
//! again what is already there (the latest record of a key wins, and the values are the same).
//! Only live offsets are copied, never deletions: an offset deleted before the move is in no
//! log's live set, so it cannot come back; an offset copied in step 2 and dropped from log 0 in
//! step 3 is in its own partition's log already.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rill_log::{FileCache, Log};

use super::offsets::{GroupOffsets, live_batches, log_config, log_dir, replay};
use crate::error::BrokerError;
use crate::partition::now_ms;

/// The marker file in `__consumer_offsets-0`.
const MARKER: &str = "layout";

/// What the marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    partitions: i32,
    migrating: bool,
}

/// The partition count of the data directory's offsets log, after finishing (or doing) the
/// move from the single log if it is not done. Blocking.
pub(super) fn settle(
    data_dir: &Path,
    configured: i32,
    cache: &Arc<FileCache>,
) -> Result<i32, BrokerError> {
    let dir = log_dir(data_dir, 0);
    let partitions = match read_marker(&dir)? {
        Some(Marker {
            partitions,
            migrating: false,
        }) => partitions,
        Some(Marker {
            partitions,
            migrating: true,
        }) => {
            tracing::warn!(
                partitions,
                "resuming the move of committed offsets to one log per partition"
            );
            migrate(data_dir, partitions, cache)?;
            partitions
        }
        None if !dir.exists() => {
            // A new data directory: no offsets to move.
            io(&dir, std::fs::create_dir_all(&dir))?;
            write_marker(
                &dir,
                Marker {
                    partitions: configured,
                    migrating: false,
                },
            )?;
            configured
        }
        None => {
            write_marker(
                &dir,
                Marker {
                    partitions: configured,
                    migrating: true,
                },
            )?;
            migrate(data_dir, configured, cache)?;
            configured
        }
    };
    if partitions != configured {
        tracing::warn!(
            configured,
            partitions,
            "offsets.topic.num.partitions differs from the count this data directory was \
             written with; keeping {partitions}"
        );
    }
    Ok(partitions)
}

/// Steps 2 to 4 of the move (see the module docs).
fn migrate(data_dir: &Path, partitions: i32, cache: &Arc<FileCache>) -> Result<(), BrokerError> {
    copy_out(data_dir, partitions, cache)?;
    keep_own(data_dir, partitions, cache)?;
    write_marker(
        &log_dir(data_dir, 0),
        Marker {
            partitions,
            migrating: false,
        },
    )
}

/// Step 2: every group of log 0 not of partition 0 is appended, with its live offsets, to its
/// partition's log, fsynced.
fn copy_out(data_dir: &Path, partitions: i32, cache: &Arc<FileCache>) -> Result<(), BrokerError> {
    let started = Instant::now();
    let zero = Log::open_cached(log_dir(data_dir, 0), log_config(), now_ms(), cache)?;
    let all = replay(&zero);
    zero.close()?;
    let mut by_partition: HashMap<i32, HashMap<String, GroupOffsets>> = HashMap::new();
    for (group, offsets) in all? {
        let partition = super::offsets_partition(&group, partitions);
        if partition != 0 {
            let _ = by_partition
                .entry(partition)
                .or_default()
                .insert(group, offsets);
        }
    }
    let mut moved = 0;
    for (partition, groups) in by_partition {
        let mut log =
            Log::open_cached(log_dir(data_dir, partition), log_config(), now_ms(), cache)?;
        for mut batch in live_batches(&groups).map_err(encoding)? {
            let _ = log.append(&mut batch, now_ms())?;
        }
        log.sync()?;
        log.close()?;
        moved += groups.len();
    }
    tracing::info!(
        partitions,
        groups = moved,
        elapsed_ms = started.elapsed().as_millis(),
        "moved committed offsets to their partitions' logs"
    );
    Ok(())
}

/// Step 3: log 0 keeps only the groups of partition 0.
fn keep_own(data_dir: &Path, partitions: i32, cache: &Arc<FileCache>) -> Result<(), BrokerError> {
    let mut zero = Log::open_cached(log_dir(data_dir, 0), log_config(), now_ms(), cache)?;
    let mut own = replay(&zero)?;
    let before = zero.log_end_offset();
    own.retain(|group, _| super::offsets_partition(group, partitions) == 0);
    if before > zero.log_start_offset() {
        for mut batch in live_batches(&own).map_err(encoding)? {
            let _ = zero.append(&mut batch, now_ms())?;
        }
        zero.sync()?;
        let _ = zero.delete_records_before(before)?;
    }
    zero.close()?;
    Ok(())
}

fn read_marker(dir: &Path) -> Result<Option<Marker>, BrokerError> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BrokerError::Io { path, source }),
    };
    let bad = || BrokerError::Metadata(format!("{}: unreadable: {text:?}", path.display()));
    let mut words = text.split_whitespace();
    let partitions = words
        .next()
        .and_then(|w| w.strip_prefix("partitions="))
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(bad)?;
    let migrating = match words.next() {
        None => false,
        Some("migrating") => true,
        Some(_) => return Err(bad()),
    };
    Ok(Some(Marker {
        partitions,
        migrating,
    }))
}

/// Replaces the marker atomically: a new file, fsynced, renamed over the old, the directory
/// fsynced.
fn write_marker(dir: &Path, marker: Marker) -> Result<(), BrokerError> {
    let text = format!(
        "partitions={}{}\n",
        marker.partitions,
        if marker.migrating { " migrating" } else { "" }
    );
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let file = io(&tmp, std::fs::File::create(&tmp))?;
    io(
        &tmp,
        (&file)
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all()),
    )?;
    let path = dir.join(MARKER);
    io(&path, std::fs::rename(&tmp, &path))?;
    io(dir, std::fs::File::open(dir).and_then(|d| d.sync_all()))
}

fn io<T>(path: &Path, result: std::io::Result<T>) -> Result<T, BrokerError> {
    result.map_err(|source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn encoding(code: rill_protocol::ErrorCode) -> BrokerError {
    BrokerError::Internal(format!("encoding committed offsets: {}", code.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets::write_old_layout;

    /// Committed offsets of many groups, in log 0 as Rill wrote them before, with one group
    /// deleted (a tombstone after its commit).
    fn old_layout(data_dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let groups: Vec<String> = (0..40).map(|i| format!("group-{i}")).collect();
        let mut entries: Vec<(String, Option<i64>)> =
            groups.iter().map(|g| (g.clone(), Some(7))).collect();
        entries.push(("doomed".to_owned(), Some(3)));
        entries.push(("doomed".to_owned(), None));
        write_old_layout(&log_dir(data_dir, 0), &entries)?;
        Ok(groups)
    }

    /// (log partition, group, offset).
    type Placed = (i32, String, i64);

    /// Every group's live offsets over all partitions' logs, and the log each came from.
    fn read_all(
        data_dir: &Path,
        partitions: i32,
    ) -> Result<Vec<Placed>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for p in 0..partitions {
            let log = Log::open(log_dir(data_dir, p), log_config(), now_ms())?;
            for (group, offsets) in replay(&log)? {
                for c in offsets.values() {
                    out.push((p, group.clone(), c.offset));
                }
            }
            log.close()?;
        }
        out.sort();
        Ok(out)
    }

    fn expected(groups: &[String], partitions: i32) -> Vec<Placed> {
        let mut out: Vec<_> = groups
            .iter()
            .map(|g| (super::super::offsets_partition(g, partitions), g.clone(), 7))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_new_directory_gets_the_configured_count() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FileCache::unbounded();
        assert_eq!(settle(dir.path(), 50, &cache)?, 50);
        // Written once: a later count is not taken.
        assert_eq!(settle(dir.path(), 8, &cache)?, 50);
        Ok(())
    }

    #[test]
    fn the_single_log_moves_to_one_log_per_partition() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let groups = old_layout(dir.path())?;
        let cache = FileCache::unbounded();
        assert_eq!(settle(dir.path(), 10, &cache)?, 10);
        assert_eq!(read_all(dir.path(), 10)?, expected(&groups, 10));
        assert_eq!(
            read_marker(&log_dir(dir.path(), 0))?,
            Some(Marker {
                partitions: 10,
                migrating: false
            })
        );
        // Done once: opening again changes nothing, whatever the configured count.
        assert_eq!(settle(dir.path(), 50, &cache)?, 10);
        assert_eq!(read_all(dir.path(), 10)?, expected(&groups, 10));
        Ok(())
    }

    #[test]
    fn a_move_cut_short_is_redone_with_its_count() -> Result<(), Box<dyn std::error::Error>> {
        let cache = FileCache::unbounded();
        // Killed after the copies (step 2), and killed after log 0 kept its own (step 3).
        for steps in [1, 2] {
            let dir = tempfile::tempdir()?;
            let groups = old_layout(dir.path())?;
            let zero = log_dir(dir.path(), 0);
            write_marker(
                &zero,
                Marker {
                    partitions: 10,
                    migrating: true,
                },
            )?;
            copy_out(dir.path(), 10, &cache)?;
            if steps == 2 {
                keep_own(dir.path(), 10, &cache)?;
            }
            // Restarted with another count configured: the move finishes with the one it
            // started with, nothing lost, nothing deleted come back.
            assert_eq!(settle(dir.path(), 50, &cache)?, 10);
            assert_eq!(read_all(dir.path(), 10)?, expected(&groups, 10), "{steps}");
            assert_eq!(read_marker(&zero)?.map(|m| m.migrating), Some(false));
        }
        Ok(())
    }
}
