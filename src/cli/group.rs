//! `runnel group ...`: kafka-consumer-groups' list, describe, delete and reset-offsets, with its
//! columns and its `--dry-run` default.

use super::{CliError, ConnectArgs};
use crate::client::{Admin, GroupDescription, OffsetSpec, TopicPartition};
use crate::env::Env;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// The group commands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// List group ids, one per line, sorted.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Show each partition a group has committed or is assigned: GROUP, TOPIC, PARTITION,
    /// CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID, HOST, CLIENT-ID.
    Describe {
        /// The group id.
        group: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete a group and its committed offsets (it must have no members).
    Delete {
        /// The group id.
        group: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Compute new committed offsets for a group and, with --execute, commit them (the group
    /// must have no members). Without --execute it only prints them (--dry-run).
    ResetOffsets(ResetArgs),
}

/// `runnel group reset-offsets`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The group id.
    pub group: String,
    /// A topic to reset, TOPIC or TOPIC:P1,P2 for some partitions; repeat for several.
    #[arg(
        long,
        value_name = "TOPIC[:PARTITIONS]",
        required_unless_present = "all_topics"
    )]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
    /// To the log start offset.
    #[arg(long, group = "spec")]
    pub to_earliest: bool,
    /// To the log end offset.
    #[arg(long, group = "spec")]
    pub to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long, group = "spec", value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// To the first offset at or after this time, YYYY-MM-DDTHH:mm:SS[.sss] in UTC.
    #[arg(long, group = "spec", value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Move the committed offset by N (negative: back), clamped to the log's range.
    #[arg(long, group = "spec", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
    /// Only print the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn admin(env: &Env, connect: &ConnectArgs) -> Result<Admin, CliError> {
    Admin::new(env.clone(), connect.client_config()).map_err(|e| CliError::client(e, None, connect))
}

/// Runs a group command, printing to `out`.
pub async fn run(command: GroupCommand, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        GroupCommand::List { connect } => {
            let groups = admin(&env, &connect)?
                .list_groups()
                .await
                .map_err(|e| CliError::client(e, None, &connect))?;
            for g in groups {
                writeln!(out, "{}", g.group_id)?;
            }
        }
        GroupCommand::Describe { group, connect } => {
            let a = admin(&env, &connect)?;
            let fail = |e| CliError::client(e, None, &connect);
            let d = a.describe_group(&group).await.map_err(fail)?;
            let committed = a.committed_offsets(&group).await.map_err(fail)?;
            if d.state == "Dead" && committed.is_empty() {
                return Err(CliError::Failed(format!(
                    "GROUP_ID_NOT_FOUND: consumer group '{group}' does not exist; see 'runnel group list'"
                )));
            }
            let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
            partitions.extend(d.members.iter().flat_map(|m| m.assignment.iter().cloned()));
            let wanted: Vec<(TopicPartition, OffsetSpec)> = partitions
                .iter()
                .map(|tp| (tp.clone(), OffsetSpec::Latest))
                .collect();
            let ends = if wanted.is_empty() {
                BTreeMap::new()
            } else {
                a.list_offsets(&wanted).await.map_err(fail)?
            };
            write!(out, "{}", describe_text(&d, &committed, &ends))?;
        }
        GroupCommand::Delete { group, connect } => {
            admin(&env, &connect)?
                .delete_group(&group)
                .await
                .map_err(|e| CliError::client(e, None, &connect))?;
            writeln!(
                out,
                "Deletion of requested consumer groups ('{group}') was successful."
            )?;
        }
        GroupCommand::ResetOffsets(args) => reset(args, env, out).await?,
    }
    out.flush()?;
    Ok(())
}

/// kafka-consumer-groups' describe table.
pub fn describe_text(
    d: &GroupDescription,
    committed: &BTreeMap<TopicPartition, i64>,
    ends: &BTreeMap<TopicPartition, crate::client::ListedOffset>,
) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    let owner = |tp: &TopicPartition| d.members.iter().find(|m| m.assignment.contains(tp));
    let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
    partitions.extend(d.members.iter().flat_map(|m| m.assignment.iter().cloned()));
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).map(|o| o.offset);
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let m = owner(tp);
        rows.push([
            d.group_id.clone(),
            tp.topic.clone(),
            tp.partition.to_string(),
            current.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            m.map_or("-".into(), |m| m.member_id.clone()),
            m.map_or("-".into(), |m| m.client_host.clone()),
            m.map_or("-".into(), |m| m.client_id.clone()),
        ]);
    }
    let header = [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ];
    // Kafka's widths: the text columns as wide as their widest value, the numbers fixed.
    let widest = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [
        widest(0),
        widest(1),
        10,
        15,
        15,
        15,
        widest(6),
        widest(7),
        0,
    ];
    let line = |cells: [&str; 9]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 8 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$} ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = String::from("\n");
    if d.members.is_empty() {
        s.push_str(&format!(
            "Consumer group '{}' has no active members.\n\n",
            d.group_id
        ));
    }
    s.push_str(&line(header));
    for r in &rows {
        s.push_str(&line([
            &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8],
        ]));
    }
    s
}

/// Parses `YYYY-MM-DDTHH:mm:SS[.sss]` (UTC) to milliseconds since the epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.trim().trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || t[0] > 23 || t[1] > 59 || t[2] > 60 {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

async fn reset(args: ResetArgs, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    let connect = args.connect.clone();
    let fail = |e| CliError::client(e, None, &connect);
    let a = admin(&env, &connect)?;
    let group = &args.group;
    let spec_count = [
        args.to_earliest,
        args.to_latest,
        args.to_offset.is_some(),
        args.to_datetime.is_some(),
        args.shift_by.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if spec_count != 1 {
        return Err(CliError::Usage(
            "give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
        ));
    }
    let d = a.describe_group(group).await.map_err(fail)?;
    if args.execute && !matches!(d.state.as_str(), "Empty" | "Dead") {
        return Err(CliError::Failed(format!(
            "assignments can only be reset if the group '{group}' is inactive, but the current state is {}",
            d.state
        )));
    }
    let committed = a.committed_offsets(group).await.map_err(fail)?;
    // The partitions to reset.
    let mut partitions: BTreeSet<TopicPartition> = BTreeSet::new();
    if args.all_topics {
        partitions.extend(committed.keys().cloned());
    }
    for t in &args.topic {
        match t.split_once(':') {
            Some((topic, ps)) => {
                for p in ps.split(',') {
                    let p: i32 = p.trim().parse().map_err(|_| {
                        CliError::Usage(format!("bad partition '{p}' in --topic {t}"))
                    })?;
                    partitions.insert(TopicPartition::new(topic, p));
                }
            }
            None => {
                let md = a
                    .describe_topic(t)
                    .await
                    .map_err(|e| CliError::client(e, Some(t), &connect))?;
                for p in md.partitions {
                    partitions.insert(TopicPartition::new(t.as_str(), p.partition));
                }
            }
        }
    }
    let range = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        partitions.iter().map(|tp| (tp.clone(), spec)).collect()
    };
    let earliest = a
        .list_offsets(&range(OffsetSpec::Earliest))
        .await
        .map_err(fail)?;
    let latest = a
        .list_offsets(&range(OffsetSpec::Latest))
        .await
        .map_err(fail)?;
    let at_time = match &args.to_datetime {
        Some(s) => {
            let ts = parse_datetime(s).ok_or_else(|| {
                CliError::Usage(format!(
                    "--to-datetime '{s}' is not YYYY-MM-DDTHH:mm:SS[.sss] (UTC)"
                ))
            })?;
            Some(
                a.list_offsets(&range(OffsetSpec::Timestamp(ts)))
                    .await
                    .map_err(fail)?,
            )
        }
        None => None,
    };
    let mut new: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for tp in &partitions {
        let lo = earliest.get(tp).map_or(0, |o| o.offset);
        let hi = latest.get(tp).map_or(lo, |o| o.offset);
        let clamp = |x: i64| x.clamp(lo, hi.max(lo));
        let offset = if args.to_earliest {
            lo
        } else if args.to_latest {
            hi
        } else if let Some(o) = args.to_offset {
            clamp(o)
        } else if let Some(n) = args.shift_by {
            clamp(committed.get(tp).copied().unwrap_or(lo).saturating_add(n))
        } else {
            // No record at or after the time: the end.
            match at_time.as_ref().and_then(|m| m.get(tp)).map(|o| o.offset) {
                Some(o) if o >= 0 => o,
                _ => hi,
            }
        };
        new.insert(tp.clone(), offset);
    }
    if args.execute {
        a.commit_offsets(group, &new).await.map_err(fail)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<30} {:<30} {:<10} {:<15}",
        "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
    )?;
    for (tp, o) in &new {
        writeln!(
            out,
            "{:<30} {:<30} {:<10} {:<15}",
            group, tp.topic, tp.partition, o
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(
            parse_datetime("2026-12-02T10:39:02.123"),
            Some(1_796_207_942_123)
        );
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00Z"),
            Some(951_868_800_000)
        );
        assert_eq!(parse_datetime("2026-13-01T00:00:00"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
