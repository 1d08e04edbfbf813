//! `runnel perf produce|consume`: kafka-producer-perf-test and kafka-consumer-perf-test, with
//! their output formats.
//!
//! perf produce sends `--records` records of `--record-size` random capital letters (one
//! payload, as Kafka's tool does) and prints, every 5 s and at the end, Kafka's lines:
//!
//! ```text
//! 52813 records sent, 10562.6 records/sec (10.32 MB/sec), 3.4 ms avg latency, 31.0 ms max latency.
//! 100000 records sent, 10598.707187 records/sec (10.35 MB/sec), 3.31 ms avg latency, 31.00 ms max latency, 3 ms 50th, 5 ms 95th, 9 ms 99th, 28 ms 99.9th.
//! ```
//!
//! MB is 2^20 bytes; latency is from `submit` to the acknowledgement, in whole ms.

use super::consume::Source;
use super::produce::parse_acks;
use super::{CliError, ConnectArgs};
use crate::client::{
    Acks, ClientError, Consumer, ConsumerConfig, Delivery, GroupConfig, GroupConsumer, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};
use crate::env::{Env, monotonic_now};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Kafka's tools report every 5 s.
const REPORT_INTERVAL_MS: u64 = 5000;
/// Kafka keeps at most this many latency samples.
const LATENCY_SAMPLES_MAX: u64 = 500_000;

/// The perf commands.
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Produce as fast as allowed and report throughput and latency, in
    /// kafka-producer-perf-test's format.
    Produce(PerfProduceArgs),
    /// Consume a number of records from the start of every partition and report
    /// throughput, in kafka-consumer-perf-test's format.
    Consume(PerfConsumeArgs),
}

/// `runnel perf produce`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PerfProduceArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// How many records to send.
    #[arg(long, alias = "num-records")]
    pub records: u64,
    /// Bytes per record value.
    #[arg(long)]
    pub record_size: usize,
    /// Acknowledgement: 0, 1 or all.
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: Acks,
    /// Records per second at most; -1 for no limit.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub throughput: f64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_size: usize,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// max.in.flight.requests.per.connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `runnel perf consume`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PerfConsumeArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// How many records to consume.
    #[arg(long)]
    pub messages: u64,
    /// Give up after this many ms without a record.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    /// max.partition.fetch.bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub fetch_size: i32,
    /// Consume as a member of this consumer group (from its committed offsets, else the
    /// start), reporting the time to join as rebalance.time.ms; without it, every partition
    /// is read from the start, with no group.
    #[arg(long)]
    pub group: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs a perf command, printing to `out`.
pub async fn run(command: PerfCommand, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        PerfCommand::Produce(args) => produce(args, env, out).await,
        PerfCommand::Consume(args) => consume(args, env, out).await,
    }
}

/// kafka-producer-perf-test's statistics: counts, latency sums and a sample of latencies, for
/// the whole run and the current 5 s window.
#[derive(Debug)]
pub struct Stats {
    /// Keep every `sampling`-th latency.
    sampling: u64,
    /// The kept latencies (ms).
    latencies: Vec<i32>,
    /// Records seen.
    iteration: u64,
    /// Records acknowledged.
    count: u64,
    /// Bytes acknowledged.
    bytes: u64,
    /// Largest latency (ms).
    max_latency: i32,
    /// Sum of latencies (ms).
    total_latency: u64,
    /// The window's count, bytes, largest and summed latency.
    window: (u64, u64, i32, u64),
    /// When the window started (ms since the run started).
    window_start_ms: u64,
}

impl Stats {
    /// Statistics for a run of `records` records.
    pub fn new(records: u64) -> Stats {
        let records = records.max(1);
        let sampling = records / records.min(LATENCY_SAMPLES_MAX);
        Stats {
            sampling,
            latencies: Vec::with_capacity((records / sampling + 1) as usize),
            iteration: 0,
            count: 0,
            bytes: 0,
            max_latency: 0,
            total_latency: 0,
            window: (0, 0, 0, 0),
            window_start_ms: 0,
        }
    }

    /// Records one acknowledged record; returns the window's line when 5 s have passed.
    pub fn record(&mut self, latency_ms: i32, bytes: u64, now_ms: u64) -> Option<String> {
        self.count += 1;
        self.bytes += bytes;
        self.total_latency += latency_ms.max(0) as u64;
        self.max_latency = self.max_latency.max(latency_ms);
        self.window.0 += 1;
        self.window.1 += bytes;
        self.window.2 = self.window.2.max(latency_ms);
        self.window.3 += latency_ms.max(0) as u64;
        if self.iteration % self.sampling == 0 {
            self.latencies.push(latency_ms);
        }
        self.iteration += 1;
        if now_ms.saturating_sub(self.window_start_ms) < REPORT_INTERVAL_MS {
            return None;
        }
        let line = self.window_line(now_ms);
        self.window = (0, 0, 0, 0);
        self.window_start_ms = now_ms;
        Some(line)
    }

    fn window_line(&self, now_ms: u64) -> String {
        let elapsed = now_ms.saturating_sub(self.window_start_ms).max(1) as f64;
        let (n, bytes, max, total) = self.window;
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            n,
            1000.0 * n as f64 / elapsed,
            1000.0 * bytes as f64 / elapsed / (1024.0 * 1024.0),
            total as f64 / n.max(1) as f64,
            f64::from(max)
        )
    }

    /// The final line, `elapsed_ms` after the start.
    pub fn summary(&mut self, elapsed_ms: u64) -> String {
        let elapsed = elapsed_ms.max(1) as f64;
        let p = self.percentiles(&[0.5, 0.95, 0.99, 0.999]);
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            1000.0 * self.count as f64 / elapsed,
            1000.0 * self.bytes as f64 / elapsed / (1024.0 * 1024.0),
            self.total_latency as f64 / self.count.max(1) as f64,
            f64::from(self.max_latency),
            p[0],
            p[1],
            p[2],
            p[3]
        )
    }

    /// Kafka's percentiles: the sample at index `(int) (p * size)` of the sorted samples.
    fn percentiles(&mut self, ps: &[f64]) -> Vec<i32> {
        self.latencies.sort_unstable();
        let size = self.latencies.len();
        ps.iter()
            .map(|p| {
                let i = ((p * size as f64) as usize).min(size.saturating_sub(1));
                self.latencies.get(i).copied().unwrap_or(0)
            })
            .collect()
    }
}

/// A payload of `size` random capital letters, as Kafka's tool makes.
fn payload(env: &Env, size: usize) -> Vec<u8> {
    (0..size)
        .map(|_| b'A' + env.rng.gen_range(0..26) as u8)
        .collect()
}

/// Paces sending to `--throughput` records per second (Kafka's ThroughputThrottler).
struct Throttle {
    /// Records per second; not positive means no limit.
    per_sec: f64,
    /// When sending started.
    start: Instant,
}

impl Throttle {
    async fn pace(&self, sent: u64) {
        if self.per_sec <= 0.0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(sent as f64 / self.per_sec);
        // Sleeping for less than a millisecond costs more than it paces.
        if due > monotonic_now() + Duration::from_millis(1) {
            tokio::time::sleep_until(due).await;
        }
    }
}

/// What is in flight (when each record was submitted, and its delivery), and the
/// statistics of what has settled.
struct Outstanding {
    /// In submission order.
    queue: VecDeque<(Instant, Delivery)>,
    /// Failures so far.
    failed: u64,
    /// The first failure, to report.
    first_error: Option<ClientError>,
    /// Kafka's statistics of the acknowledged records.
    stats: Stats,
    /// Bytes per record.
    bytes: u64,
    /// When the run started.
    start: Instant,
}

impl Outstanding {
    /// Counts the deliveries at the front that are settled (they settle mostly in order).
    fn settle_ready(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        // One clock reading for every delivery settled since the last look.
        let mut now = None;
        while let Some(result) = self.queue.front().and_then(|(_, d)| d.try_result()) {
            let (sent, _) = self.queue.pop_front().expect("front exists");
            let at = *now.get_or_insert_with(monotonic_now);
            self.count(result, sent, at, out)?;
        }
        Ok(())
    }

    /// Waits for everything still in flight.
    async fn settle_all(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        while let Some((sent, d)) = self.queue.pop_front() {
            let result = d.wait().await;
            self.count(result, sent, monotonic_now(), out)?;
        }
        Ok(())
    }

    fn count(
        &mut self,
        result: Result<crate::client::RecordMetadata, ClientError>,
        sent: Instant,
        now: Instant,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        match result {
            Ok(_) => {
                let latency = now.saturating_duration_since(sent).as_millis() as i32;
                let at = now.saturating_duration_since(self.start).as_millis() as u64;
                if let Some(line) = self.stats.record(latency, self.bytes, at) {
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// kafka-producer-perf-test.
pub async fn produce(
    args: PerfProduceArgs,
    env: Env,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let fail = |e: ClientError| CliError::client(e, Some(&args.topic), &args.connect);
    let mut client = args.connect.client_config();
    client.max_in_flight = args.max_in_flight;
    let config = ProducerConfig {
        client,
        acks: args.acks,
        batch_size: args.batch_size,
        linger_ms: args.linger_ms,
        max_request_size: args.batch_size.max(1 << 20),
        buffer_memory: (args.batch_size * 4 * args.max_in_flight.max(1)).max(32 << 20),
        // Idempotent by default, as Kafka's producer is, unless the settings rule it out.
        enable_idempotence: args.acks == Acks::All && args.max_in_flight <= 5,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(env.clone(), config).map_err(fail)?;
    producer.partition_count(&args.topic).await.map_err(fail)?;
    let value = payload(&env, args.record_size);
    let start = monotonic_now();
    let mut outstanding = Outstanding {
        queue: VecDeque::new(),
        failed: 0,
        first_error: None,
        stats: Stats::new(args.records),
        bytes: args.record_size as u64,
        start,
    };
    let throttle = Throttle {
        per_sec: args.throughput,
        start,
    };
    for i in 0..args.records {
        throttle.pace(i).await;
        let record = ProducerRecord {
            topic: args.topic.clone(),
            value: Some(value.clone()),
            ..ProducerRecord::default()
        };
        let sent = monotonic_now();
        let delivery = producer.submit(record).await.map_err(fail)?;
        outstanding.queue.push_back((sent, delivery));
        outstanding.settle_ready(out)?;
    }
    producer.flush().await;
    outstanding.settle_all(out).await?;
    let elapsed = monotonic_now().saturating_duration_since(start).as_millis() as u64;
    writeln!(out, "{}", outstanding.stats.summary(elapsed))?;
    out.flush()?;
    producer.close().await;
    match outstanding.first_error {
        Some(e) => Err(CliError::Failed(format!(
            "{} of {} records failed; the first: {e}",
            outstanding.failed, args.records
        ))),
        None => Ok(()),
    }
}

/// kafka-consumer-perf-test's header line.
pub const CONSUMER_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// kafka-consumer-perf-test's data line. The fetch time is the run without the time spent
/// joining the group (`rebalance_ms`, 0 without a group).
pub fn consumer_line(
    start_ms: i64,
    end_ms: i64,
    rebalance_ms: i64,
    bytes: u64,
    messages: u64,
) -> String {
    let elapsed_ms = (end_ms - start_ms).max(1);
    let secs = elapsed_ms as f64 / 1000.0;
    let fetch_ms = (elapsed_ms - rebalance_ms).max(1);
    let fetch_secs = fetch_ms as f64 / 1000.0;
    let mb = bytes as f64 / (1024.0 * 1024.0);
    format!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        date_time(start_ms),
        date_time(end_ms),
        mb,
        mb / secs,
        messages,
        messages as f64 / secs,
        rebalance_ms,
        fetch_ms,
        mb / fetch_secs,
        messages as f64 / fetch_secs
    )
}

/// Milliseconds since the epoch as Kafka's tool prints dates (`yyyy-MM-dd HH:mm:ss:SSS`),
/// in UTC.
pub fn date_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Notes when the group first assigns partitions.
struct JoinTimer(Arc<Mutex<Option<Instant>>>);

impl RebalanceListener for JoinTimer {
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(monotonic_now);
    }
}

/// kafka-consumer-perf-test: reads `--messages` records from the start of every partition.
pub async fn consume(
    args: PerfConsumeArgs,
    env: Env,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let fail = |e: ClientError| CliError::client(e, Some(&args.topic), &args.connect);
    let config = ConsumerConfig {
        client: args.connect.client_config(),
        auto_offset_reset: OffsetReset::Earliest,
        max_partition_fetch_bytes: args.fetch_size,
        max_poll_records: 10_000,
        ..ConsumerConfig::default()
    };
    let joined: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut source = match &args.group {
        Some(group) => {
            let mut g = GroupConsumer::new(env.clone(), config, GroupConfig::new(group.as_str()))
                .map_err(fail)?;
            g.subscribe(
                [args.topic.clone()],
                Some(Box::new(JoinTimer(joined.clone()))),
            );
            Source::Group(Box::new(g))
        }
        None => {
            let mut consumer = Consumer::new(env.clone(), config).map_err(fail)?;
            let partitions = consumer.partitions_for(&args.topic).await.map_err(fail)?;
            consumer.assign(
                partitions
                    .into_iter()
                    .map(|p| TopicPartition::new(args.topic.as_str(), p)),
            );
            consumer.seek_to_beginning(&[]).map_err(fail)?;
            Source::Assigned(Box::new(consumer))
        }
    };
    writeln!(out, "{CONSUMER_HEADER}")?;
    out.flush()?;
    let start_ms = env.clock.now_ms();
    let start = monotonic_now();
    let timeout = Duration::from_millis(args.timeout);
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut last_record = start;
    let mut last_report = start;
    while messages < args.messages && last_record.elapsed() <= timeout {
        let records = source
            .poll(Duration::from_millis(100), 10_000)
            .await
            .map_err(fail)?;
        if !records.is_empty() {
            last_record = monotonic_now();
        }
        for r in &records {
            messages += 1;
            bytes += (r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())) as u64;
        }
        if last_report.elapsed() >= Duration::from_millis(REPORT_INTERVAL_MS) {
            last_report = monotonic_now();
            let secs = start.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "{messages} records consumed, {:.1} records/sec ({:.2} MB/sec)",
                messages as f64 / secs,
                bytes as f64 / secs / (1024.0 * 1024.0)
            );
        }
    }
    if messages < args.messages {
        writeln!(
            out,
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
            args.timeout
        )?;
    }
    let end_ms = env.clock.now_ms();
    let rebalance_ms = joined
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map_or(0, |t| t.saturating_duration_since(start).as_millis() as i64);
    source.close().await.map_err(fail)?;
    writeln!(
        out,
        "{}",
        consumer_line(start_ms, end_ms, rebalance_ms, bytes, messages)
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_kafkas() {
        let mut s = Stats::new(1000);
        for i in 0..1000 {
            assert!(s.record(i % 10, 1024, 100).is_none());
        }
        // 1000 records in 443 ms: Kafka prints 2257.336343 records/sec (2.20 MB/sec).
        assert_eq!(
            s.summary(443),
            "1000 records sent, 2257.336343 records/sec (2.20 MB/sec), 4.50 ms avg latency, 9.00 ms max latency, 5 ms 50th, 9 ms 95th, 9 ms 99th, 9 ms 99.9th."
        );
    }

    #[test]
    fn windows_are_reported_every_five_seconds() {
        let mut s = Stats::new(10);
        assert!(s.record(3, 1 << 20, 1000).is_none());
        let line = s.record(5, 1 << 20, 5000).unwrap();
        assert_eq!(
            line,
            "2 records sent, 0.4 records/sec (0.40 MB/sec), 4.0 ms avg latency, 5.0 ms max latency."
        );
        assert!(s.record(1, 1, 6000).is_none());
    }

    #[test]
    fn latency_samples_are_bounded_as_in_kafka() {
        let s = Stats::new(2_000_000);
        assert_eq!(s.sampling, 4);
        assert_eq!(s.latencies.capacity(), 500_001);
    }

    #[test]
    fn the_consumer_line_is_kafkas() {
        assert_eq!(CONSUMER_HEADER.split(", ").count(), 10);
        // 2021-03-04 05:06:07.089 UTC, then 2 s later; 4 MiB in 4096 records.
        let start = 1_614_834_367_089;
        assert_eq!(
            consumer_line(start, start + 2000, 0, 4 << 20, 4096),
            "2021-03-04 05:06:07:089, 2021-03-04 05:06:09:089, 4.0000, 2.0000, 4096, 2048.0000, 0, 2000, 2.0000, 2048.0000"
        );
        assert_eq!(
            consumer_line(start, start + 2000, 1000, 4 << 20, 4096),
            "2021-03-04 05:06:07:089, 2021-03-04 05:06:09:089, 4.0000, 2.0000, 4096, 2048.0000, 1000, 1000, 4.0000, 4096.0000"
        );
        assert_eq!(date_time(0), "1970-01-01 00:00:00:000");
        assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00:00:000");
    }
}
