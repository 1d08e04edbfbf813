//! The history: every client operation, Jepsen-style. An operation is invoked, then completes
//! `Ok` (with the offset assigned or the records read), `Fail` (a definite error: the write
//! did not happen) or `Info` (unknown: a timeout, a lost connection). Faults are in the
//! history too, so the checker knows what the system was allowed to lose.

use crate::journal::{FNV_OFFSET, fnv};
use std::collections::BTreeMap;
use std::fmt;

/// Simulated time in microseconds since the start.
pub type Micros = u64;

/// A topic partition in the simulation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tp {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How a producer's writes were promised to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    /// The write was synced before it was acknowledged (acks=all without write caching, or
    /// the flush policy syncs every append, on a partition whose acknowledgement means
    /// committed): it must survive anything.
    pub durable: bool,
    /// The acknowledgement means the write is committed: acks=all, or a partition with one
    /// replica. With several replicas, acks=1 (and 0) only says the leader appended it: a
    /// leader change may take it back, as in Kafka, unless a consumer read it (consumers read
    /// only committed records).
    pub committed: bool,
}

/// One event in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A producer sends `value` to `tp`.
    SendInvoke {
        process: String,
        tp: Tp,
        value: String,
    },
    /// The send was acknowledged at `offset`.
    SendOk {
        process: String,
        tp: Tp,
        value: String,
        offset: i64,
        promise: Promise,
    },
    /// The send definitely did not happen (`error` is the Kafka error name).
    SendFail {
        process: String,
        tp: Tp,
        value: String,
        error: String,
    },
    /// The send's outcome is unknown.
    SendInfo {
        process: String,
        tp: Tp,
        value: String,
        error: String,
    },
    /// A consumer positioned itself at `offset` (start, seek, or reset after out-of-range).
    Seek {
        process: String,
        tp: Tp,
        offset: i64,
    },
    /// A consumer read records `(offset, value)`, in the order returned.
    Poll {
        process: String,
        tp: Tp,
        records: Vec<(i64, String)>,
    },
    /// A consumer read a record whose content does not match its own checksum.
    Corrupt {
        process: String,
        tp: Tp,
        offset: i64,
        detail: String,
    },
    /// A fault began or ended.
    Fault { description: String },
    /// The broker lost power: unsynced writes may be gone.
    PowerLoss { host: String },
    /// Broker number `host` opened the log of `tp` after a restart, recovered to `log_end`
    /// (ground truth from the broker's probe: every offset at or above it is gone).
    Recovered { host: usize, tp: Tp, log_end: i64 },
    /// The faults are over and the network is healed.
    Healed,
    /// A consumer starts its final read: from here on, what it reads is the final image of
    /// the log.
    FinalRead { process: String },
    /// A group member (`process`, member id `member`) was given `partitions` in `generation`.
    Assigned {
        process: String,
        group: String,
        generation: i32,
        member: String,
        partitions: Vec<Tp>,
    },
    /// A group member commits offsets (per partition, the next offset to read).
    CommitInvoke {
        process: String,
        group: String,
        offsets: Vec<(Tp, i64)>,
    },
    /// The commit was acknowledged.
    CommitOk {
        process: String,
        group: String,
        offsets: Vec<(Tp, i64)>,
    },
    /// The commit was refused (fenced by a rebalance, or the group refused it).
    CommitFail {
        process: String,
        group: String,
        offsets: Vec<(Tp, i64)>,
        error: String,
    },
    /// The commit's outcome is unknown.
    CommitInfo {
        process: String,
        group: String,
        offsets: Vec<(Tp, i64)>,
        error: String,
    },
    /// A group member asks for the group's committed offsets.
    FetchOffsetsInvoke { process: String, group: String },
    /// ... and got these (`None`: no commit).
    FetchOffsetsOk {
        process: String,
        group: String,
        offsets: Vec<(Tp, Option<i64>)>,
    },
    /// A group member joined, left, crashed or paused (for the report).
    Member { process: String, what: String },
    /// The coordinator deleted `group` (empty, and no offsets left: Kafka's expiry, or
    /// DeleteGroups). A group joined under the id afterwards is a new one: its generations
    /// count from 1 again, with new member ids.
    GroupDeleted { group: String },
}

/// An event with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened.
    pub at: Micros,
    /// Its place in the run's one order of history entries and broker observations (0 in
    /// histories built by hand).
    pub seq: u64,
    pub event: Event,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.at as f64 / 1e6;
        match &self.event {
            Event::SendInvoke { process, tp, value } => {
                write!(f, "{t:10.6} {process} send {tp} {value}")
            }
            Event::SendOk {
                process,
                tp,
                value,
                offset,
                promise,
            } => write!(
                f,
                "{t:10.6} {process} ok   {tp} {value} @{offset}{}",
                if promise.durable { " durable" } else { "" }
            ),
            Event::SendFail {
                process,
                tp,
                value,
                error,
            } => write!(f, "{t:10.6} {process} fail {tp} {value} {error}"),
            Event::SendInfo {
                process,
                tp,
                value,
                error,
            } => write!(f, "{t:10.6} {process} info {tp} {value} {error}"),
            Event::Seek {
                process,
                tp,
                offset,
            } => write!(f, "{t:10.6} {process} seek {tp} @{offset}"),
            Event::Poll {
                process,
                tp,
                records,
            } => {
                let first = records.first().map(|r| r.0).unwrap_or(-1);
                let last = records.last().map(|r| r.0).unwrap_or(-1);
                write!(
                    f,
                    "{t:10.6} {process} poll {tp} {} records @{first}..={last}",
                    records.len()
                )
            }
            Event::Corrupt {
                process,
                tp,
                offset,
                detail,
            } => write!(f, "{t:10.6} {process} CORRUPT {tp} @{offset} {detail}"),
            Event::Fault { description } => write!(f, "{t:10.6} nemesis {description}"),
            Event::PowerLoss { host } => write!(f, "{t:10.6} nemesis power loss on {host}"),
            Event::Recovered { host, tp, log_end } => {
                write!(
                    f,
                    "{t:10.6} broker #{host} recovered {tp} to offset {log_end}"
                )
            }
            Event::Healed => write!(f, "{t:10.6} nemesis healed everything"),
            Event::FinalRead { process } => {
                write!(f, "{t:10.6} {process} final read from the log start")
            }
            Event::Assigned {
                process,
                group,
                generation,
                member,
                partitions,
            } => {
                write!(
                    f,
                    "{t:10.6} {process} assigned in {group} generation {generation} as {member}:"
                )?;
                for tp in partitions {
                    write!(f, " {tp}")?;
                }
                Ok(())
            }
            Event::CommitInvoke {
                process,
                group,
                offsets,
            } => {
                write!(f, "{t:10.6} {process} commit {group}")?;
                write_offsets(f, offsets)
            }
            Event::CommitOk {
                process,
                group,
                offsets,
            } => {
                write!(f, "{t:10.6} {process} commit ok {group}")?;
                write_offsets(f, offsets)
            }
            Event::CommitFail {
                process,
                group,
                offsets,
                error,
            } => {
                write!(f, "{t:10.6} {process} commit fail {group}")?;
                write_offsets(f, offsets)?;
                write!(f, " {error}")
            }
            Event::CommitInfo {
                process,
                group,
                offsets,
                error,
            } => {
                write!(f, "{t:10.6} {process} commit info {group}")?;
                write_offsets(f, offsets)?;
                write!(f, " {error}")
            }
            Event::FetchOffsetsInvoke { process, group } => {
                write!(f, "{t:10.6} {process} fetch offsets {group}")
            }
            Event::FetchOffsetsOk {
                process,
                group,
                offsets,
            } => {
                write!(f, "{t:10.6} {process} fetched offsets {group}")?;
                for (tp, o) in offsets {
                    match o {
                        Some(o) => write!(f, " {tp}@{o}")?,
                        None => write!(f, " {tp}@none")?,
                    }
                }
                Ok(())
            }
            Event::Member { process, what } => write!(f, "{t:10.6} {process} {what}"),
            Event::GroupDeleted { group } => write!(
                f,
                "{t:10.6} coordinator deleted group {group}: its generations start over"
            ),
        }
    }
}

fn write_offsets(f: &mut fmt::Formatter<'_>, offsets: &[(Tp, i64)]) -> fmt::Result {
    for (tp, o) in offsets {
        write!(f, " {tp}@{o}")?;
    }
    Ok(())
}

/// The whole history of a run.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub entries: Vec<Entry>,
    /// Producers that are idempotent (a duplicate from them is a violation).
    pub idempotent: BTreeMap<String, bool>,
    /// Producers with at most one request in flight (their sends must land in order).
    pub ordered: BTreeMap<String, bool>,
    /// Topics with write caching on (consumers may see writes a power loss takes back).
    pub write_caching: BTreeMap<String, bool>,
    /// Topics with several replicas: with write caching, a replica that lost power may come
    /// back in the ISR without records it had (KIP-966's last replica standing) and lead.
    pub replicated: BTreeMap<String, bool>,
    /// The log start offset of each partition at the end (records below were deleted by
    /// retention, not lost).
    pub log_start: BTreeMap<Tp, i64>,
    /// Consumers that finished their final read of every partition.
    pub final_readers: std::collections::BTreeSet<String>,
    /// Each group member process's group.
    pub group_of: BTreeMap<String, String>,
    /// Groups whose members together read every partition to its end after the heal.
    pub groups_complete: std::collections::BTreeSet<String>,
}

impl History {
    /// Appends an event at `at`.
    pub fn push(&mut self, at: Micros, event: Event) {
        self.entries.push(Entry { at, seq: 0, event });
    }

    /// A stable hash of the whole history, for the determinism check (FNV-1a over the text).
    pub fn hash(&self) -> u64 {
        /// Folds what is written into the hash, so no entry is formatted into a string.
        struct Fold(u64);
        impl fmt::Write for Fold {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 = fnv(self.0, s.as_bytes());
                Ok(())
            }
        }
        let mut fold = Fold(FNV_OFFSET);
        for e in &self.entries {
            // Writing to `Fold` cannot fail.
            let _ = fmt::Write::write_fmt(&mut fold, format_args!("{e}\n"));
            let mut h = fold.0;
            if let Event::Poll { records, .. } = &e.event {
                for (o, v) in records {
                    h = fnv(h, &o.to_le_bytes());
                    h = fnv(h, v.as_bytes());
                }
            }
            fold.0 = h;
        }
        fold.0
    }
}
