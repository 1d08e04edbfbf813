//! `runnel produce TOPIC`: kafka-console-producer. One record per line of stdin; exits once
//! stdin ends and every record has its outcome; nonzero if any record failed.

use super::{CliError, ConnectArgs};
use crate::client::{Acks, ClientError, Delivery, Producer, ProducerConfig, ProducerRecord};
use crate::env::Env;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// `runnel produce`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    /// Split each line at the first SEP: the text before is the key, the rest the value
    /// (kafka-console-producer's parse.key=true with key.separator=SEP). A line without SEP
    /// is an error. Without this option lines have no key.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Acknowledgement: 0 (none), 1 (the leader) or all (every in-sync replica).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Write every record to this partition instead of choosing by key.
    #[arg(long)]
    pub partition: Option<i32>,
    /// linger.ms: how long to wait to fill a batch.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Parses an `--acks` value.
pub fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse::<Acks>().map_err(|e| e.to_string())
}

/// A record's line number and outcome.
type Outcome = Pin<Box<dyn Future<Output = (u64, Result<(), ClientError>)> + Send>>;

/// Counts and reports record outcomes.
struct Tally {
    /// The topic, for error advice.
    topic: String,
    /// Lines read.
    lines: u64,
    /// Records that failed, or lines that could not become records.
    failed: u64,
}

impl Tally {
    fn report(&mut self, line: u64, result: Result<(), ClientError>) {
        if let Err(e) = result {
            self.failed += 1;
            eprintln!("error: line {line}: {e}");
        }
    }
}

/// Reads lines from `input` and produces them.
pub async fn run<R: AsyncBufRead + Unpin>(
    args: ProduceArgs,
    env: Env,
    mut input: R,
) -> Result<(), CliError> {
    let config = ProducerConfig {
        client: args.connect.client_config(),
        acks: args.acks,
        linger_ms: args.linger_ms,
        // Idempotent by default, as Kafka's producer is, unless acks asks otherwise.
        enable_idempotence: args.acks == Acks::All,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(env, config)
        .map_err(|e| CliError::client(e, Some(&args.topic), &args.connect))?;
    // Fail at once, with advice, if the topic cannot be used at all.
    producer
        .partition_count(&args.topic)
        .await
        .map_err(|e| CliError::client(e, Some(&args.topic), &args.connect))?;
    let mut tally = Tally {
        topic: args.topic.clone(),
        lines: 0,
        failed: 0,
    };
    let mut pending: FuturesUnordered<Outcome> = FuturesUnordered::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        tally.lines += 1;
        let n = tally.lines;
        match submit(&producer, &args, &line).await {
            Ok(d) => pending.push(Box::pin(async move { (n, d.wait().await.map(|_| ())) })),
            Err(e) => tally.report(n, Err(e)),
        }
        while let Some(Some((n, r))) = pending.next().now_or_never() {
            tally.report(n, r);
        }
    }
    producer.flush().await;
    while let Some((n, r)) = pending.next().await {
        tally.report(n, r);
    }
    producer.close().await;
    if tally.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} of {} records to '{}' failed",
            tally.failed, tally.lines, tally.topic
        )));
    }
    Ok(())
}

/// Turns a line into a record and submits it.
async fn submit(
    producer: &Producer,
    args: &ProduceArgs,
    raw: &[u8],
) -> Result<Delivery, ClientError> {
    let (key, value) = split_line(raw, args.key_separator.as_deref())?;
    let record = ProducerRecord {
        topic: args.topic.clone(),
        partition: args.partition,
        key: key.map(<[u8]>::to_vec),
        value: Some(value.to_vec()),
        ..ProducerRecord::default()
    };
    producer.submit(record).await
}

/// A line without its line ending, split into key and value at the first separator.
pub fn split_line<'a>(
    raw: &'a [u8],
    separator: Option<&str>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), ClientError> {
    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return Ok((None, line));
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => Ok((Some(&line[..i]), &line[i + sep.len()..])),
        None => Err(ClientError::InvalidArgument(format!(
            "no key separator '{}' in '{}'",
            String::from_utf8_lossy(sep),
            String::from_utf8_lossy(line)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w\n", Some(":")).unwrap(),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(
            split_line(b"k::v\r\n", Some("::")).unwrap(),
            (Some(&b"k"[..]), &b"v"[..])
        );
        assert_eq!(
            split_line(b":v", Some(":")).unwrap(),
            (Some(&b""[..]), &b"v"[..])
        );
        assert_eq!(split_line(b"plain\n", None).unwrap(), (None, &b"plain"[..]));
        assert!(split_line(b"nokey\n", Some("\t")).is_err());
        assert_eq!(parse_acks("all").unwrap(), Acks::All);
        assert_eq!(parse_acks("-1").unwrap(), Acks::All);
        assert!(parse_acks("2").is_err());
    }
}
