//! The `runnel` binary end to end: a real broker process on a free port, driven by the client
//! commands as a user would run them. Timeouts are generous and nothing is timed: these run on
//! loaded two-core machines.

use runnel::client::partitioner::partition_for_key;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_runnel");
/// The longest any one command may take before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// A broker process, killed when the test ends however it ends.
struct Broker {
    /// The process.
    child: Child,
    /// Where it listens.
    addr: String,
    /// Its data directory, removed after it is killed.
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
    let child = Command::new(BIN)
        .arg("broker")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &addr])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut broker = Broker {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&broker.addr).is_err() {
        if let Some(status) = broker.child.try_wait().unwrap() {
            panic!(
                "the broker exited with {status}: {}",
                broker_log(broker._dir.path())
            );
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

fn broker_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default()
}

/// Runs `runnel ARGS --bootstrap-server ADDR` with `stdin`, killing it after
/// [`COMMAND_TIMEOUT`].
fn runnel(broker: &Broker, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--bootstrap-server", &broker.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("runnel {args:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
    };
    writer.join().unwrap();
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let o = runnel(broker, args, stdin);
    assert!(
        o.status.success(),
        "runnel {args:?} failed ({}):\nstdout: {}\nstderr: {}\nbroker log: {}",
        o.status,
        stdout(&o),
        stderr(&o),
        broker_log(broker._dir.path())
    );
    stdout(&o)
}

/// Runs a command that must fail; returns its stderr.
fn fails(broker: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let o = runnel(broker, args, stdin);
    assert!(
        !o.status.success(),
        "runnel {args:?} succeeded: {}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

/// One consumed line: `Partition:P\tOffset:O\tKEY\tVALUE`.
#[derive(Debug)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

fn parse_consumed(text: &str) -> Vec<Consumed> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            assert_eq!(f.len(), 4, "line {l:?}");
            Consumed {
                partition: f[0].strip_prefix("Partition:").unwrap().parse().unwrap(),
                offset: f[1].strip_prefix("Offset:").unwrap().parse().unwrap(),
                key: f[2].to_string(),
                value: f[3].to_string(),
            }
        })
        .collect()
}

/// The whole life of a topic through the CLI: create, list, describe, produce keyed lines
/// with acks=all, consume them all back, delete.
#[test]
fn a_topic_from_creation_to_deletion() {
    let b = start_broker();
    assert_eq!(
        ok(&b, &["topic", "create", "orders", "--partitions", "3"], b""),
        "Created topic orders.\n"
    );
    let err = fails(&b, &["topic", "create", "orders", "--partitions", "3"], b"");
    assert!(
        err.contains("TOPIC_ALREADY_EXISTS") && err.contains("runnel topic delete orders"),
        "{err}"
    );
    assert!(
        ok(&b, &["topic", "list"], b"")
            .lines()
            .any(|l| l == "orders")
    );
    let described = ok(&b, &["topic", "describe", "orders"], b"");
    assert!(
        described.starts_with("Topic: orders\tTopicId: "),
        "{described}"
    );
    assert!(
        described.contains("PartitionCount: 3\tReplicationFactor: 1"),
        "{described}"
    );
    for p in 0..3 {
        assert!(
            described.contains(&format!(
                "\tTopic: orders\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0\n"
            )),
            "{described}"
        );
    }

    // 300 keyed lines over 12 keys.
    let n = 300;
    let input: String = (0..n)
        .map(|i| format!("key-{}:value-{i}\n", i % 12))
        .collect();
    let produced = ok(
        &b,
        &["produce", "orders", "--key-separator", ":", "--acks", "all"],
        input.as_bytes(),
    );
    assert_eq!(produced, "");

    let args = [
        "consume",
        "orders",
        "--from-beginning",
        "--max-messages",
        "300",
        "--timeout-ms",
        "60000",
        "--print-partition",
        "--print-offset",
        "--print-key",
    ];
    let o = runnel(&b, &args, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Processed a total of 300 messages"),
        "{}",
        stderr(&o)
    );
    let records = parse_consumed(&stdout(&o));
    assert_eq!(records.len(), n);

    // Every record came back, once.
    let values: BTreeSet<&str> = records.iter().map(|r| r.value.as_str()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("value-{i}")).collect();
    assert_eq!(values, expected.iter().map(String::as_str).collect());
    // Per partition: offsets dense from 0, and records in the order they were produced.
    let mut by_partition: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for r in &records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (p, rs) in &by_partition {
        let offsets: Vec<i64> = rs.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..rs.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
        let order: Vec<usize> = rs
            .iter()
            .map(|r| r.value["value-".len()..].parse().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of order: {order:?}"
        );
    }
    // Same key, same partition: the one Java's murmur2 partitioner picks.
    for r in &records {
        assert_eq!(r.partition, partition_for_key(r.key.as_bytes(), 3), "{r:?}");
    }
    assert!(
        by_partition.len() > 1,
        "12 keys should use more than one partition"
    );

    // One partition from an offset, values only.
    let p = records[0].partition;
    let from_one = ok(
        &b,
        &[
            "consume",
            "orders",
            "--partition",
            &p.to_string(),
            "--offset",
            "1",
            "--max-messages",
            "2",
            "--timeout-ms",
            "60000",
        ],
        b"",
    );
    let want: Vec<&str> = by_partition[&p][1..3]
        .iter()
        .map(|r| r.value.as_str())
        .collect();
    assert_eq!(from_one.lines().collect::<Vec<_>>(), want);

    assert_eq!(
        ok(&b, &["topic", "delete", "orders"], b""),
        "Deleted topic orders.\n"
    );
    assert!(
        !ok(&b, &["topic", "list"], b"")
            .lines()
            .any(|l| l == "orders")
    );
    let err = fails(&b, &["topic", "describe", "orders"], b"");
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION") && err.contains("runnel topic create orders"),
        "{err}"
    );
}

/// Mistakes get a Kafka error name, advice and a nonzero exit, never a panic.
#[test]
fn mistakes_are_explained() {
    let b = start_broker();
    let err = fails(
        &b,
        &[
            "consume",
            "nosuch",
            "--from-beginning",
            "--timeout-ms",
            "1000",
        ],
        b"",
    );
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION: topic 'nosuch' does not exist"),
        "{err}"
    );
    assert!(
        err.contains("create it with 'runnel topic create nosuch'"),
        "{err}"
    );
    let err = fails(&b, &["topic", "create", "bad name"], b"");
    assert!(err.contains("INVALID_TOPIC_EXCEPTION"), "{err}");
    let err = fails(
        &b,
        &["topic", "create", "rf", "--replication-factor", "3"],
        b"",
    );
    assert!(err.contains("INVALID_REPLICATION_FACTOR"), "{err}");
    ok(&b, &["topic", "create", "lines", "--partitions", "2"], b"");
    // A line without the separator fails (the others are still sent).
    let err = fails(
        &b,
        &["produce", "lines", "--key-separator", ":"],
        b"k:v\nnokey\nk:w\n",
    );
    assert!(
        err.contains("line 2") && err.contains("1 of 3 records"),
        "{err}"
    );
    let got = ok(
        &b,
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            "60000",
        ],
        b"",
    );
    assert_eq!(got, "v\nw\n");
    let err = fails(
        &b,
        &[
            "consume",
            "lines",
            "--partition",
            "5",
            "--timeout-ms",
            "1000",
        ],
        b"",
    );
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION") && err.contains("no partition 5"),
        "{err}"
    );
    let err = fails(&b, &["produce", "lines", "--partition", "9"], b"x\n");
    assert!(err.contains("partition 9"), "{err}");
}

/// Both perf tools run and end with Kafka's lines.
#[test]
fn perf_tools_print_kafkas_summaries() {
    let b = start_broker();
    ok(&b, &["topic", "create", "perf", "--partitions", "1"], b"");
    let out = ok(
        &b,
        &[
            "perf",
            "produce",
            "--topic",
            "perf",
            "--records",
            "3000",
            "--record-size",
            "100",
            "--acks",
            "1",
            "--throughput",
            "-1",
        ],
        b"",
    );
    let last = out.lines().last().unwrap();
    let fields: Vec<&str> = last.split(", ").collect();
    assert_eq!(fields.len(), 8, "{last}");
    assert_eq!(fields[0], "3000 records sent", "{last}");
    let (per_sec, mb) = fields[1].split_once(" records/sec (").unwrap();
    assert_eq!(per_sec.split_once('.').unwrap().1.len(), 6, "{last}");
    let mb = mb.strip_suffix(" MB/sec)").unwrap();
    assert_eq!(mb.split_once('.').unwrap().1.len(), 2, "{last}");
    for (f, suffix) in fields[2..4]
        .iter()
        .zip([" ms avg latency", " ms max latency"])
    {
        let n = f.strip_suffix(suffix).unwrap_or_else(|| panic!("{last}"));
        assert_eq!(n.split_once('.').unwrap().1.len(), 2, "{last}");
    }
    for (f, suffix) in fields[4..]
        .iter()
        .zip([" ms 50th", " ms 95th", " ms 99th", " ms 99.9th."])
    {
        let n = f.strip_suffix(suffix).unwrap_or_else(|| panic!("{last}"));
        n.parse::<u32>().unwrap();
    }

    let out = ok(
        &b,
        &[
            "perf",
            "consume",
            "--topic",
            "perf",
            "--messages",
            "3000",
            "--timeout",
            "60000",
        ],
        b"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], runnel::cli::perf::CONSUMER_HEADER);
    let data: Vec<&str> = lines.last().unwrap().split(", ").collect();
    assert_eq!(data.len(), 10, "{out}");
    assert_eq!(data[4], "3000", "{out}");
    assert_eq!(data[2], "0.2861", "3000 records of 100 bytes in MiB: {out}");

    // As a group member: the same records, the join time reported as rebalance.time.ms.
    let out = ok(
        &b,
        &[
            "perf",
            "consume",
            "--topic",
            "perf",
            "--messages",
            "3000",
            "--timeout",
            "60000",
            "--group",
            "perf-g",
        ],
        b"",
    );
    let data: Vec<&str> = out.lines().last().unwrap().split(", ").collect();
    assert_eq!(data[4], "3000", "{out}");
    let rebalance_ms: u64 = data[6].parse().unwrap();
    assert!(rebalance_ms > 0, "joining a group takes time: {out}");
}

/// `--data-dir` as people type it: relative, a bare name, and nested under directories that
/// do not exist yet. (A bare relative name once failed at start-up: its parent is "", which
/// does not "exist" as a path.)
#[test]
fn a_relative_nested_data_dir_is_created() {
    let cwd = tempfile::tempdir().unwrap();
    for dir in ["plain", "not/yet/there"] {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .args(["broker", "--data-dir", dir, "--listen", &addr])
            .current_dir(cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let started = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
                panic!("broker with --data-dir {dir} exited with {status}:\n{err}");
            }
            if TcpStream::connect(&addr).is_ok() || Instant::now() > deadline {
                break TcpStream::connect(&addr).is_ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // It listens first and opens its logs next: wait for the metadata log's directory.
        let metadata = cwd.path().join(dir).join("__cluster_metadata-0");
        while started && !metadata.is_dir() && Instant::now() < deadline {
            assert!(
                child.try_wait().unwrap().is_none(),
                "broker with --data-dir {dir} exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(started, "broker with --data-dir {dir} never listened");
        assert!(metadata.is_dir(), "{} was not created", metadata.display());
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `runnel configs` as kafka-configs: alter a live topic's configs, describe them, delete one,
/// and refuse a bad value with Kafka's error and the reason.
#[test]
fn configs_alter_and_describe_a_live_topic() {
    let b = start_broker();
    ok(&b, &["topic", "create", "cfg", "--partitions", "1"], b"");
    let topic = ["--entity-type", "topics", "--entity-name", "cfg"];
    let alter = |extra: &[&str]| {
        let mut args = vec!["configs", "--alter"];
        args.extend(topic);
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let a = alter(&["--add-config", "retention.ms=60000,cleanup.policy=[delete]"]);
    assert_eq!(
        ok(&b, &as_strs(&a), b""),
        "Completed updating config for topic cfg.\n"
    );
    let mut describe = vec!["configs", "--describe"];
    describe.extend(topic);
    let shown = ok(&b, &describe, b"");
    assert!(
        shown.starts_with("Dynamic configs for topic cfg are:\n"),
        "{shown}"
    );
    assert!(
        shown.contains("  retention.ms=60000 sensitive=false"),
        "{shown}"
    );
    assert!(shown.contains("  cleanup.policy=delete "), "{shown}");
    let d = alter(&["--delete-config", "retention.ms"]);
    ok(&b, &as_strs(&d), b"");
    assert!(!ok(&b, &describe, b"").contains("retention.ms"));
    let bad = alter(&["--add-config", "retention.ms=soon"]);
    let err = fails(&b, &as_strs(&bad), b"");
    assert!(
        err.contains("INVALID_CONFIG") && err.contains("retention.ms"),
        "{err}"
    );
}

/// `runnel configs --entity-type brokers --entity-default` as kafka-configs: the cluster-wide
/// dynamic default of a topic default reaches a live topic without an override of its own,
/// is described with its source, and goes again with --delete-config.
#[test]
fn configs_alter_the_brokers_dynamic_defaults() {
    let b = start_broker();
    ok(&b, &["topic", "create", "dyn", "--partitions", "1"], b"");
    let default = ["configs", "--entity-type", "brokers", "--entity-default"];
    let with = |first: &[&str], extra: &[&str]| {
        let mut args: Vec<&str> = first.to_vec();
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let set = with(
        &default,
        &["--alter", "--add-config", "log.retention.ms=120000"],
    );
    assert_eq!(
        ok(&b, &as_strs(&set), b""),
        "Completed updating config for brokers in the cluster (defaults).\n"
    );
    let shown = ok(&b, &as_strs(&with(&default, &["--describe"])), b"");
    assert!(
        shown.contains(
            "  log.retention.ms=120000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
        ),
        "{shown}"
    );
    let topic = [
        "configs",
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        "dyn",
        "--all",
    ];
    let shown = ok(&b, &topic, b"");
    assert!(
        shown.contains(
            "  retention.ms=120000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
        ),
        "{shown}"
    );
    let read_only = with(
        &default,
        &["--alter", "--add-config", "log.retention.hours=1"],
    );
    let err = fails(&b, &as_strs(&read_only), b"");
    assert!(
        err.contains("INVALID_CONFIG") && err.contains("read-only"),
        "{err}"
    );
    let delete = with(
        &default,
        &["--alter", "--delete-config", "log.retention.ms"],
    );
    ok(&b, &as_strs(&delete), b"");
    assert!(
        ok(&b, &topic, b"")
            .contains("  retention.ms=604800000 sensitive=false synonyms={DEFAULT_CONFIG:")
    );
}
