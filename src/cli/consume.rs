//! `runnel consume TOPIC`: kafka-console-consumer. It reads the partitions it is told (all by
//! default) from where it is told, or with `--group G` the partitions group G gives it,
//! starting at the group's committed offsets and committing what it printed; and prints one
//! record a line.

use super::{CliError, ConnectArgs};
use crate::client::{
    ClientError, Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, GroupConsumer, OffsetReset,
    TopicPartition,
};
use crate::env::{Env, monotonic_now};
use kafka_protocol::error::ResponseError;
use std::io::Write;
use std::time::Duration;

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// This offset.
    Offset(i64),
}

fn parse_start(s: &str) -> Result<StartAt, String> {
    match s {
        "earliest" => Ok(StartAt::Earliest),
        "latest" => Ok(StartAt::Latest),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(StartAt::Offset)
            .ok_or_else(|| format!("'{n}' is not an offset, 'earliest' or 'latest'")),
    }
}

/// `runnel consume`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Output: one record per line, fields separated by tabs, in this order:\n  \
    Partition:P   with --print-partition\n  \
    Offset:O      with --print-offset\n  \
    KEY           with --print-key\n  \
    VALUE         always\n\
    A null key or value prints as 'null'. Without --partition every partition is read; \
    records of one partition come in offset order. When it stops, the count goes to stderr: \
    'Processed a total of N messages'."
)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Start at the log start instead of the end (when there is no --offset).
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Consume as a member of this consumer group: read the partitions the group assigns,
    /// from its committed offsets (or the start with --from-beginning, else the end, where
    /// it has none), and commit the offsets of what was printed.
    #[arg(long)]
    pub group: Option<String>,
    /// Start here: an offset, 'earliest' or 'latest'. Needs --partition.
    #[arg(long, requires = "partition", value_parser = parse_start)]
    pub offset: Option<StartAt>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Stop after this many milliseconds without a record [default: never].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print each record's key before its value.
    #[arg(long)]
    pub print_key: bool,
    /// Print each record's offset before it.
    #[arg(long)]
    pub print_offset: bool,
    /// Print each record's partition before it.
    #[arg(long)]
    pub print_partition: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Where records come from: assigned partitions, or a consumer group's share of a topic.
pub enum Source {
    Assigned(Box<Consumer>),
    Group(Box<GroupConsumer>),
}

impl Source {
    /// Records, at most `max` of them, waiting up to `timeout` (longer in a rebalance).
    pub async fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
    ) -> Result<Vec<ConsumerRecord>, ClientError> {
        match self {
            Source::Assigned(c) => {
                c.set_max_poll_records(max);
                c.poll(timeout).await
            }
            Source::Group(g) => {
                g.set_max_poll_records(max);
                g.poll(timeout).await
            }
        }
    }

    /// Leaves the group (committing what was returned), if in one.
    pub async fn close(self) -> Result<(), ClientError> {
        match self {
            Source::Assigned(_) => Ok(()),
            Source::Group(g) => g.close().await,
        }
    }
}

/// Reads records and prints them to `out` until the limit or the timeout.
pub async fn run(args: ConsumeArgs, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    let fail = |e: ClientError| CliError::client(e, Some(&args.topic), &args.connect);
    let reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let config = ConsumerConfig {
        client: args.connect.client_config(),
        auto_offset_reset: reset,
        ..ConsumerConfig::default()
    };
    let mut source = match &args.group {
        Some(group) => {
            let mut g =
                GroupConsumer::new(env, config, GroupConfig::new(group.as_str())).map_err(fail)?;
            g.subscribe([args.topic.clone()], None);
            Source::Group(Box::new(g))
        }
        None => Source::Assigned(Box::new(assigned(env, config, &args).await.map_err(fail)?)),
    };
    let count = print_records(&mut source, &args, out).await;
    // Polls never return more than is printed, so what the group commits is what was printed.
    let closed = source.close().await.map_err(fail);
    eprintln!(
        "Processed a total of {} messages",
        count.as_ref().map_or(0, |n| *n)
    );
    count.and(closed).map(|_| ())
}

/// A consumer of the partitions asked for, positioned where asked.
async fn assigned(
    env: Env,
    config: ConsumerConfig,
    args: &ConsumeArgs,
) -> Result<Consumer, ClientError> {
    let mut consumer = Consumer::new(env, config)?;
    let tps = partitions(&consumer, args).await?;
    consumer.assign(tps.clone());
    match args.offset {
        Some(StartAt::Offset(o)) => consumer.seek(&tps[0], o)?,
        Some(StartAt::Earliest) => consumer.seek_to_beginning(&[])?,
        Some(StartAt::Latest) => consumer.seek_to_end(&[])?,
        None if args.from_beginning => consumer.seek_to_beginning(&[])?,
        None => consumer.seek_to_end(&[])?,
    }
    // Pin the start now, so records produced after this call are seen.
    for tp in &tps {
        consumer.position(tp).await?;
    }
    Ok(consumer)
}

/// The partitions to read.
async fn partitions(
    consumer: &Consumer,
    args: &ConsumeArgs,
) -> Result<Vec<TopicPartition>, ClientError> {
    let all = consumer.partitions_for(&args.topic).await?;
    match args.partition {
        None => Ok(all
            .into_iter()
            .map(|p| TopicPartition::new(args.topic.as_str(), p))
            .collect()),
        Some(p) if all.contains(&p) => Ok(vec![TopicPartition::new(args.topic.as_str(), p)]),
        Some(p) => Err(ClientError::kafka(
            ResponseError::UnknownTopicOrPartition,
            format!(
                "topic '{}' has no partition {p} (it has {})",
                args.topic,
                all.len()
            ),
            None,
        )),
    }
}

/// Polls and prints until `--max-messages` or `--timeout-ms`; returns how many were printed.
async fn print_records(
    source: &mut Source,
    args: &ConsumeArgs,
    out: &mut impl Write,
) -> Result<u64, CliError> {
    let max = args.max_messages.unwrap_or(u64::MAX);
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut count = 0u64;
    let mut last_record = monotonic_now();
    while count < max {
        let wait = match idle_limit {
            Some(limit) => match limit.checked_sub(last_record.elapsed()) {
                Some(left) if !left.is_zero() => left.min(Duration::from_secs(1)),
                _ => break,
            },
            None => Duration::from_secs(1),
        };
        let limit = usize::try_from(max - count).unwrap_or(usize::MAX).min(500);
        let records = source
            .poll(wait, limit)
            .await
            .map_err(|e| CliError::client(e, Some(&args.topic), &args.connect))?;
        if !records.is_empty() {
            last_record = monotonic_now();
        }
        for r in records.iter().take((max - count) as usize) {
            write_record(out, r, args)?;
            count += 1;
        }
        out.flush()?;
    }
    Ok(count)
}

/// One record as a line: `[Partition:P\t][Offset:O\t][KEY\t]VALUE`.
pub fn write_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    args: &ConsumeArgs,
) -> std::io::Result<()> {
    if args.print_partition {
        write!(out, "Partition:{}\t", r.partition)?;
    }
    if args.print_offset {
        write!(out, "Offset:{}\t", r.offset)?;
    }
    if args.print_key {
        out.write_all(r.key.as_deref().unwrap_or(b"null"))?;
        out.write_all(b"\t")?;
    }
    out.write_all(r.value.as_deref().unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    #[test]
    fn records_print_with_the_prefixes_asked_for() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["x", "t"];
            argv.extend(extra);
            Cli::try_parse_from(argv).map(|c| c.args)
        };
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            leader_epoch: None,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![],
        };
        let line = |args: &ConsumeArgs| {
            let mut out = Vec::new();
            write_record(&mut out, &r, args).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(&parse(&[]).unwrap()), "v\n");
        let all = parse(&["--print-partition", "--print-offset", "--print-key"]).unwrap();
        assert_eq!(line(&all), "Partition:2\tOffset:7\tnull\tv\n");
        assert!(
            parse(&["--offset", "5"]).is_err(),
            "--offset needs --partition"
        );
        let a = parse(&["--offset", "earliest", "--partition", "1"]).unwrap();
        assert_eq!(a.offset, Some(StartAt::Earliest));
        assert!(parse(&["--offset", "-3", "--partition", "1"]).is_err());
    }
}
