//! Three real `runnel broker` processes forming one cluster: real clients see three brokers
//! and spread leaders; kill -9 of the active controller elects another and topic admin keeps
//! working; kill -9 of a broker moves the leadership of its partitions to other replicas; and
//! kill -9 of a partition's leader in the middle of acks=all writes loses no acknowledged
//! record (data replication); SIGTERM of the quorum's leader mid-write is a controlled
//! shutdown that finishes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{BrokerProcess, check, kcat, run_python, start_cluster};

/// Shorter sessions than Kafka's 9 s, so a dead broker is fenced within the test's patience.
const FAST: &[&str] = &[
    "broker.heartbeat.interval.ms=500",
    "broker.session.timeout.ms=3000",
];

fn runnel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .output()
        .expect("run runnel")
}

fn bootstrap(nodes: &[&BrokerProcess]) -> String {
    nodes
        .iter()
        .map(|n| n.addr.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `runnel cluster describe` → (leader id, epoch), if a leader answers.
fn quorum_leader(server: &str) -> Option<(i32, i32)> {
    let out = runnel(&["cluster", "describe", "--bootstrap-server", server]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> Option<i32> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("LeaderId:")?, field("LeaderEpoch:")?))
}

/// `runnel topic describe` → partition -> (leader, isr).
fn leaders(server: &str, topic: &str) -> BTreeMap<i32, (Option<i32>, Vec<i32>)> {
    let out = runnel(&["topic", "describe", topic, "--bootstrap-server", server]);
    let text = check("runnel topic describe", &out);
    let mut parts = BTreeMap::new();
    for line in text.lines().skip(1) {
        let field = |name: &str| {
            line.split('\t')
                .find_map(|f| f.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let partition: i32 = field("Partition:").parse().unwrap();
        let leader = field("Leader:").parse().ok();
        let isr = field("Isr:")
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect();
        parts.insert(partition, (leader, isr));
    }
    parts
}

fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// kcat and confluent-kafka see the three brokers; a topic with replication factor 3 gets
/// its leaders and preferred leaders spread two per broker; records go through the leaders
/// and come back.
#[test]
fn three_processes_form_one_cluster_that_real_clients_see() {
    let nodes = start_cluster(&[]);
    let all: Vec<&BrokerProcess> = nodes.iter().collect();
    let servers = bootstrap(&all);
    let out = Command::new(kcat())
        .args(["-b", &nodes[1].addr, "-L"])
        .output()
        .unwrap();
    let listing = check("kcat -L", &out);
    assert!(listing.contains(" 3 brokers:"), "{listing}");
    for n in &nodes {
        assert!(listing.contains(&n.addr), "{} missing:\n{listing}", n.addr);
    }
    let out = run_python("cluster_check.py", &[&servers, "spread", "3000"]);
    assert!(out.contains("ok: 3 brokers"), "{out}");
    // Every node answers Metadata alike, and the quorum has one leader all of them name.
    let (leader, epoch) = quorum_leader(&nodes[2].addr).expect("a quorum leader");
    assert!((1..=3).contains(&leader));
    assert_eq!(quorum_leader(&nodes[0].addr), Some((leader, epoch)));
    let listing = check(
        "runnel cluster describe --replication",
        &runnel(&[
            "cluster",
            "describe",
            "--replication",
            "--bootstrap-server",
            &nodes[0].addr,
        ]),
    );
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(listing.contains("Leader") && listing.contains("Follower"));
}

/// kill -9 of the active controller: the other two elect a new leader within seconds, topic
/// creation keeps working, and the dead node's partitions get new leaders once its session
/// expires. Then, with the old controller back, kill -9 of a plain broker moves its
/// leaderships too.
#[test]
fn kill_9_of_the_controller_and_of_a_broker_moves_leadership() {
    // Metadata snapshots every few records (KIP-630): the quorum's log is cut below them while
    // the old controller is down, so it can only catch up by fetching a snapshot.
    let mut overrides = FAST.to_vec();
    overrides.push("metadata.log.max.record.bytes.between.snapshots=200");
    let mut nodes = start_cluster(&overrides);
    let all: Vec<&BrokerProcess> = nodes.iter().collect();
    let servers = bootstrap(&all);
    let out = runnel(&[
        "topic",
        "create",
        "moves",
        "--partitions",
        "6",
        "--replication-factor",
        "3",
        "--bootstrap-server",
        &servers,
    ]);
    check("runnel topic create", &out);
    let (old, old_epoch) = quorum_leader(&servers).expect("a quorum leader");
    let survivor = (old % 3) as usize; // index of node `old % 3 + 1`, not the leader
    let survivor_addr = nodes[survivor].addr.clone();
    nodes[(old - 1) as usize].kill();
    let ((new, new_epoch), took) =
        wait_until("a new quorum leader", Duration::from_secs(15), || {
            quorum_leader(&survivor_addr).filter(|(l, _)| *l != old)
        });
    assert!(new_epoch > old_epoch);
    eprintln!("new controller {new} (epoch {new_epoch}) {took:?} after kill -9 of {old}");
    check(
        "runnel topic create after the failover",
        &runnel(&[
            "topic",
            "create",
            "after",
            "--partitions",
            "3",
            "--replication-factor",
            "2",
            "--bootstrap-server",
            &survivor_addr,
        ]),
    );
    let (_, took) = wait_until(
        "leadership off the dead controller",
        Duration::from_secs(20),
        || {
            let parts = leaders(&survivor_addr, "moves");
            parts
                .values()
                .all(|(l, isr)| l.is_some_and(|l| l != old) && !isr.contains(&old))
                .then_some(())
        },
    );
    eprintln!("partitions moved off node {old} {took:?} after the new controller");
    // The old controller comes back (as a follower: it holds no leadership until the
    // controller moves some to it), then a plain broker, neither of them, dies: two of three
    // voters remain, enough for the quorum to move its leaderships.
    nodes[(old - 1) as usize].start_again();
    // It catches up from the new leader's snapshot (FetchSnapshot), and keeps one of its own.
    let metadata_dir = nodes[(old - 1) as usize]
        .data_dir
        .join("__cluster_metadata-0");
    let (snapshot, took) = wait_until(
        "a metadata snapshot on the restarted node",
        Duration::from_secs(20),
        || {
            std::fs::read_dir(&metadata_dir)
                .ok()?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .find(|n| n.len() == 42 && n.ends_with(".checkpoint"))
        },
    );
    eprintln!("the restarted node holds snapshot {snapshot} {took:?} after it started");
    // The new controller snapshotted past where the old one's log ends (the topic created
    // and the fencing while it was down are more than 200 bytes): it installs that snapshot.
    let (_, took) = wait_until(
        "the restarted node installing the leader's snapshot",
        Duration::from_secs(20),
        || {
            let log = nodes[(old - 1) as usize].log();
            log.contains("emptied the log; it starts again")
                .then_some(())
        },
    );
    eprintln!("the restarted node installed a fetched snapshot {took:?} after it started");
    let victim = (1..=3).find(|id| *id != old && *id != new).unwrap();
    let led_before = leaders(&survivor_addr, "moves")
        .values()
        .filter(|(l, _)| *l == Some(victim))
        .count();
    assert!(led_before > 0, "node {victim} led nothing to move");
    nodes[(victim - 1) as usize].kill();
    let new_addr = nodes[(new - 1) as usize].addr.clone();
    let (_, took) = wait_until(
        "leadership off the dead broker",
        Duration::from_secs(20),
        || {
            let parts = leaders(&new_addr, "moves");
            parts
                .values()
                .all(|(l, _)| l.is_some_and(|l| l != victim))
                .then_some(())
        },
    );
    eprintln!("{led_before} partitions moved off node {victim} {took:?} after kill -9");
}

/// Separate roles: a controller-only node (a CONTROLLER listener, no client port) and two
/// broker-only nodes that follow the metadata as observers. Clients see the two brokers, the
/// quorum shows one voter and two observers, and topics are placed on the brokers only.
#[test]
fn a_controller_only_node_and_two_broker_only_nodes() {
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let voters = format!("controller.quorum.voters=1@127.0.0.1:{port}");
    let _controller = Killed(
        Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["broker", "--data-dir"])
            .arg(dir.path().join("controller"))
            .args([
                "--override",
                "node.id=1",
                "--override",
                "process.roles=controller",
            ])
            .args(["--override", &voters, "--override"])
            .arg(format!("listeners=CONTROLLER://127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let brokers: Vec<BrokerProcess> = [2, 3]
        .iter()
        .map(|id| {
            BrokerProcess::start(&[&format!("node.id={id}"), "process.roles=broker", &voters])
        })
        .collect();
    let all: Vec<&BrokerProcess> = brokers.iter().collect();
    let servers = bootstrap(&all);
    wait_until("both brokers registered", Duration::from_secs(60), || {
        let out = Command::new(kcat())
            .args(["-b", &servers, "-L", "-m", "5"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .contains(" 2 brokers:")
            .then_some(())
    });
    let status = check(
        "runnel cluster describe",
        &runnel(&["cluster", "describe", "--bootstrap-server", &servers]),
    );
    assert!(status.contains("LeaderId:               1\n"), "{status}");
    assert!(status.contains("CurrentVoters:          [1]\n"), "{status}");
    assert!(
        status.contains("CurrentObservers:       [2,3]\n"),
        "{status}"
    );
    check(
        "runnel topic create",
        &runnel(&[
            "topic",
            "create",
            "split",
            "--partitions",
            "4",
            "--replication-factor",
            "2",
            "--bootstrap-server",
            &servers,
        ]),
    );
    let parts = leaders(&servers, "split");
    assert_eq!(parts.len(), 4);
    for (leader, isr) in parts.values() {
        assert!(matches!(leader, Some(2 | 3)), "{parts:?}");
        assert_eq!(isr.len(), 2, "{parts:?}");
        assert!(
            !isr.contains(&1),
            "the controller-only node holds no replica: {parts:?}"
        );
    }
}

/// Creates `topic` with three partitions, replication factor 3 and min.insync.replicas=2.
fn create_replicated(servers: &str, topic: &str) {
    check(
        "runnel topic create",
        &runnel(&[
            "topic",
            "create",
            topic,
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
            "--bootstrap-server",
            servers,
        ]),
    );
}

/// Data replication, the README's example: a topic with replication factor 3 and
/// min.insync.replicas=2; confluent-kafka (and kcat, to a sibling topic) produce with acks=all
/// and idempotence while the leader of a partition is killed with kill -9 and later restarted. Every acknowledged record
/// is read back exactly once, at its acknowledged offset, in order; the ISR returns to three.
/// A librdkafka consumer tails the topic throughout: it validates its positions with
/// OffsetForLeaderEpoch after the leader changes (KIP-320), reads every acknowledged record
/// exactly once, and never a record the final log does not hold at that offset.
#[test]
fn kill_9_of_a_leader_mid_write_loses_no_acknowledged_record() {
    let mut nodes = start_cluster(FAST);
    let all: Vec<&BrokerProcess> = nodes.iter().collect();
    let servers = bootstrap(&all);
    // kcat (librdkafka 2.0) produces with acks=all and idempotence to a sibling topic through
    // the same kill: every broker leads one partition of each, so the victim leads one of
    // its partitions too.
    for topic in ["replicated", "replicated-kcat"] {
        create_replicated(&servers, topic);
    }
    let kcat_records = 3000u64;
    let mut kcat_producer = Command::new(kcat())
        .args(["-P", "-b", servers.as_str(), "-t", "replicated-kcat"])
        .args([
            "-X",
            "acks=all",
            "-X",
            "enable.idempotence=true",
            "-X",
            "linger.ms=5",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kcat");
    let mut kcat_in = kcat_producer.stdin.take().unwrap();
    // About six seconds of records, so kcat is writing when the leader dies.
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for i in 0..kcat_records {
            if writeln!(kcat_in, "value-{i}").is_err() {
                break;
            }
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Instant::now()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("produce.log");
    let records = 4000;
    let mut producer = support::spawn_producer(
        "confluent",
        &servers,
        "replicated",
        records,
        &out,
        "idempotent",
        "all",
    );
    let (tail_out, tail_log, stop) = (
        dir.path().join("tail.out"),
        dir.path().join("tail.log"),
        dir.path().join("tail.stop"),
    );
    let tail = Command::new(support::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/consume_live.py"))
        .args([servers.as_str(), "replicated"])
        .arg(&stop)
        .stdout(std::fs::File::create(&tail_out).unwrap())
        .stderr(std::fs::File::create(&tail_log).unwrap())
        .spawn()
        .expect("start the tailing consumer");
    support::wait_for_acks(&out, 400, &mut producer);
    let victim = leaders(&servers, "replicated")[&0]
        .0
        .expect("a leader of partition 0");
    nodes[(victim - 1) as usize].kill();
    let killed_at = Instant::now();
    eprintln!("killed node {victim}, the leader of partition 0, mid-write");
    let before = support::read_produce_log(&out).acked.len();
    support::wait_for_acks(&out, before + 400, &mut producer);
    nodes[(victim - 1) as usize].start_again();
    let log = support::finish_producer(&out, producer);
    let survivor = nodes[(victim % 3) as usize].addr.clone();
    let (_, took) = wait_until("the ISR back to three", Duration::from_secs(60), || {
        leaders(&survivor, "replicated")
            .values()
            .all(|(l, isr)| l.is_some() && isr.len() == 3)
            .then_some(())
    });
    eprintln!(
        "{} of {records} acknowledged; the ISR was whole again {took:?} after the restarted producer finished",
        log.acked.len()
    );
    let consumed = support::consume_all(&survivor, "replicated");
    support::check_exactly_once(&log, &consumed, records, true);

    // kcat delivered every record (its exit status says so) and each is there exactly once.
    let fed_until = feeder.join().unwrap();
    assert!(
        fed_until > killed_at,
        "kcat had its last record before the kill: make its feed longer"
    );
    let kcat_out = kcat_producer.wait_with_output().unwrap();
    assert!(
        kcat_out.status.success(),
        "kcat failed to deliver: {}",
        String::from_utf8_lossy(&kcat_out.stderr)
    );
    let mut seen = std::collections::BTreeSet::new();
    for (p, o, i) in support::consume_all(&survivor, "replicated-kcat") {
        assert!(
            seen.insert(i),
            "kcat's record {i} appears twice (again at {p}/{o})"
        );
    }
    assert_eq!(
        seen.len() as u64,
        kcat_records,
        "kcat's records missing: {:?}",
        (0..kcat_records)
            .filter(|i| !seen.contains(i))
            .take(20)
            .collect::<Vec<_>>()
    );

    std::fs::write(&stop, b"").unwrap();
    let status = tail.wait_with_output().unwrap().status;
    let debug = std::fs::read_to_string(&tail_log).unwrap_or_default();
    assert!(
        status.success(),
        "the tailing consumer failed: {}",
        debug
            .lines()
            .filter(|l| !l.contains("|SEND|") && !l.contains("|RECV|"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let tailed = support::parse_consumed(&std::fs::read_to_string(&tail_out).unwrap());
    support::check_exactly_once(&log, &tailed, records, true);
    let kept: BTreeMap<(i32, i64), u64> = consumed.iter().map(|(p, o, i)| ((*p, *o), *i)).collect();
    for (p, o, i) in &tailed {
        assert_eq!(
            kept.get(&(*p, *o)),
            Some(i),
            "the tailing consumer read record {i} at {p}/{o}, which the final log does not hold there"
        );
    }
    let count = |what: &str| debug.lines().filter(|l| l.contains(what)).count();
    let (asked, answered) = (
        count("Sent OffsetForLeaderEpochRequest"),
        count("Received OffsetForLeaderEpochResponse"),
    );
    eprintln!(
        "the tailing consumer read {} records; librdkafka validated its position with \
         OffsetForLeaderEpoch {asked} times ({answered} answered)",
        tailed.len()
    );
    assert!(
        asked > 0 && answered > 0,
        "librdkafka never validated its position with OffsetForLeaderEpoch after the leader changed"
    );
}

/// A clean shutdown (SIGTERM) of the node that leads the metadata quorum, mid-write: its
/// controlled shutdown finishes, because the node keeps serving until its leaderships have
/// moved (its followers fetch, and its controller listener carries the quorum that commits the
/// change; when SIGTERM stopped the listeners first, the change could not commit and the
/// broker gave up after its session). Every record acknowledged to an idempotent acks=all
/// producer is read back exactly once, in order.
#[test]
fn sigterm_of_the_quorum_leader_mid_write_is_a_controlled_shutdown() {
    let mut nodes = start_cluster(FAST);
    let all: Vec<&BrokerProcess> = nodes.iter().collect();
    let servers = bootstrap(&all);
    create_replicated(&servers, "rolled");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("produce.log");
    let records = 3000;
    let mut producer = support::spawn_producer(
        "confluent",
        &servers,
        "rolled",
        records,
        &out,
        "idempotent",
        "all",
    );
    support::wait_for_acks(&out, 300, &mut producer);
    let (victim, _) = quorum_leader(&servers).expect("a quorum leader");
    let led = leaders(&servers, "rolled")
        .values()
        .filter(|(l, _)| *l == Some(victim))
        .count();
    eprintln!(
        "stopping node {victim}, the quorum's leader and leader of {led} partitions, with SIGTERM"
    );
    let node = &mut nodes[(victim - 1) as usize];
    node.restart_clean();
    // The controlled shutdown finished while the node still led the quorum: its leaderships
    // moved through its own controller, not through a new one elected once its followers
    // could no longer fetch from it.
    let log = node.log();
    let stopping = &log[log.find("shutting down").expect("no shutdown in the log")..];
    let done = stopping.find("controlled shutdown done");
    let quorum_moved = stopping.find("the metadata quorum changed state");
    assert!(
        done.is_some_and(|d| quorum_moved.is_none_or(|q| d < q)),
        "node {victim}'s controlled shutdown did not finish while it led the quorum:\n{stopping}"
    );
    let before = support::read_produce_log(&out).acked.len();
    support::wait_for_acks(&out, (before + 300).min(records as usize), &mut producer);
    let log = support::finish_producer(&out, producer);
    let survivor = nodes[(victim % 3) as usize].addr.clone();
    let consumed = support::consume_all(&survivor, "rolled");
    support::check_exactly_once(&log, &consumed, records, true);
}
