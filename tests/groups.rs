//! Consumer groups with real clients against the real broker binary: kcat -G (librdkafka
//! 2.0.2), confluent-kafka (librdkafka 2.16) and kafka-python 3.0.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{BrokerProcess, check, kcat, run_python};

/// confluent-kafka commits part of a topic and closes; kafka-python resumes in the same group
/// at exactly the committed offsets; the admin client lists, describes and deletes the group.
#[test]
fn group_consumers_commit_and_resume_across_clients() {
    let broker = BrokerProcess::start(&[]);
    let out = run_python("groups.py", &[&broker.addr, "gt", "600"]);
    assert!(out.contains("ok:"), "{out}");
}

/// A committed offset survives kill -9 of the broker: it was answered only once synced.
#[test]
fn committed_offsets_survive_kill_9() {
    let mut broker = BrokerProcess::start(&[]);
    run_python("admin.py", &[&broker.addr, "ct", "1"]);
    run_python("offsets.py", &[&broker.addr, "cg", "ct", "commit", "17"]);
    broker.restart_killed();
    run_python("offsets.py", &[&broker.addr, "cg", "ct", "check", "17"]);
    run_python("offsets.py", &[&broker.addr, "cg", "ct", "commit", "23"]);
    broker.restart_clean();
    run_python("offsets.py", &[&broker.addr, "cg", "ct", "check", "23"]);
    assert!(
        broker.log().contains("loaded group metadata and offsets"),
        "{}",
        broker.log()
    );
}

/// One `kcat -G` member, its output lines gathered as they come.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn start(addr: &str, group: &str, topic: &str) -> Member {
        let mut child = Command::new(kcat())
            .args([
                "-b",
                addr,
                "-G",
                group,
                topic,
                "-q",
                // Unbuffered: the lines reach the pipe as records arrive.
                "-u",
                "-f",
                "%p\t%o\t%s\n",
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
                "-X",
                "auto.commit.interval.ms=500",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Member { child, lines }
    }

    /// (partition, value) of each record read so far.
    fn records(&self) -> Vec<(i32, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 3).then(|| (f[0].parse().unwrap(), f[2].to_string()))
            })
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn produce(addr: &str, topic: &str, from: usize, to: usize) {
    let input: String = (from..to).map(|i| format!("k{}:v{i}\n", i % 29)).collect();
    let mut child = Command::new(kcat())
        .args(["-b", addr, "-P", "-t", topic, "-K:", "-X", "acks=all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    check("kcat -P", &child.wait_with_output().unwrap());
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three `kcat -G` members split a six-partition topic, each record read by one of them; when
/// one leaves (SIGTERM: kcat closes its consumer, which sends LeaveGroup) the other two take its
/// partitions at once; when one of those is killed with kill -9, its partitions move to the
/// last member after its session times out, and every record produced meanwhile is read.
#[test]
fn kcat_group_members_split_partitions_and_rebalance_on_leave_and_kill() {
    let broker = BrokerProcess::start(&[]);
    run_python("admin.py", &[&broker.addr, "kg", "6"]);
    let a = Member::start(&broker.addr, "kcat-group", "kg");
    let mut b = Member::start(&broker.addr, "kcat-group", "kg");
    let mut c = Member::start(&broker.addr, "kcat-group", "kg");
    produce(&broker.addr, "kg", 0, 600);
    wait_until(
        "the three members to read 600 records",
        Duration::from_secs(60),
        || a.records().len() + b.records().len() + c.records().len() >= 600,
    );
    let all = [a.records(), b.records(), c.records()];
    let parts: Vec<BTreeSet<i32>> = all
        .iter()
        .map(|r| r.iter().map(|x| x.0).collect())
        .collect();
    assert!(
        parts.iter().all(|p| !p.is_empty()),
        "a member got nothing: {parts:?}"
    );
    for i in 0..3 {
        for j in i + 1..3 {
            assert!(
                parts[i].is_disjoint(&parts[j]),
                "a partition read by two: {parts:?}"
            );
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, v) in all.iter().flatten() {
        *seen.entry(v.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 600);
    assert!(seen.values().all(|n| *n == 1), "a record read twice");
    // Let the auto-commit catch up, then c leaves the group cleanly.
    std::thread::sleep(Duration::from_secs(2));
    let term = Command::new("kill")
        .args(["-TERM", &c.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let _ = c.child.wait();
    produce(&broker.addr, "kg", 600, 900);
    let read_by = |ms: &[&Member], from: usize, to: usize| {
        let got: BTreeSet<String> = ms.iter().flat_map(|m| m.records()).map(|r| r.1).collect();
        (from..to).all(|i| got.contains(&format!("v{i}")))
    };
    // Well within the 6 s session timeout: the leave rebalanced at once.
    wait_until(
        "the two left to read everything produced after the leave",
        Duration::from_secs(5),
        || read_by(&[&a, &b], 600, 900),
    );
    std::thread::sleep(Duration::from_secs(2));
    let _ = b.child.kill();
    let _ = b.child.wait();
    produce(&broker.addr, "kg", 900, 1200);
    wait_until(
        "the survivor to read everything produced after the kill",
        Duration::from_secs(90),
        || read_by(&[&a], 900, 1200),
    );
    let pa: BTreeSet<i32> = a.records().iter().map(|r| r.0).collect();
    assert_eq!(pa, (0..6).collect(), "the survivor owns every partition");
}

/// The `runnel group` commands against a group whose offsets a real client committed:
/// list, describe (kafka-consumer-groups' columns and lag), reset-offsets as a dry run and
/// with --execute, delete.
#[test]
fn the_group_commands_list_describe_reset_and_delete() {
    let broker = BrokerProcess::start(&[]);
    run_python("admin.py", &[&broker.addr, "rt", "2"]);
    let input: String = (0..30).map(|i| format!("v{i}\n")).collect();
    let mut child = Command::new(kcat())
        .args(["-b", &broker.addr, "-P", "-t", "rt", "-p", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    check("kcat -P", &child.wait_with_output().unwrap());
    run_python("offsets.py", &[&broker.addr, "cli-g", "rt", "commit", "10"]);
    let runnel = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(args)
            .args(["--bootstrap-server", &broker.addr])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, list, err) = runnel(&["group", "list"]);
    assert!(ok, "{err}");
    assert_eq!(list, "cli-g\n");
    let (ok, desc, err) = runnel(&["group", "describe", "cli-g"]);
    assert!(ok, "{err}");
    assert!(
        desc.contains("Consumer group 'cli-g' has no active members."),
        "{desc}"
    );
    let header = desc.lines().find(|l| l.starts_with("GROUP")).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID"
        ]
    );
    let row = desc.lines().find(|l| l.starts_with("cli-g")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["cli-g", "rt", "0", "10", "30", "20", "-", "-", "-"],
        "{desc}"
    );
    // A dry run changes nothing.
    let (ok, dry, err) = runnel(&[
        "group",
        "reset-offsets",
        "cli-g",
        "--topic",
        "rt:0",
        "--to-earliest",
    ]);
    assert!(ok, "{err}");
    let row = dry.lines().find(|l| l.starts_with("cli-g")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["cli-g", "rt", "0", "0"]
    );
    run_python("offsets.py", &[&broker.addr, "cli-g", "rt", "check", "10"]);
    let (ok, _, err) = runnel(&[
        "group",
        "reset-offsets",
        "cli-g",
        "--topic",
        "rt:0",
        "--shift-by",
        "-4",
        "--execute",
    ]);
    assert!(ok, "{err}");
    run_python("offsets.py", &[&broker.addr, "cli-g", "rt", "check", "6"]);
    let (ok, out, err) = runnel(&["group", "delete", "cli-g"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Deletion of requested consumer groups ('cli-g') was successful.\n"
    );
    let (ok, _, err) = runnel(&["group", "describe", "cli-g"]);
    assert!(!ok && err.contains("GROUP_ID_NOT_FOUND"), "{err}");
}

/// A static member (confluent-kafka, `group.instance.id`) closes and comes back within its
/// session timeout: it takes its old partitions back and the other member sees no rebalance.
#[test]
fn a_static_member_rejoins_without_a_rebalance() {
    let broker = BrokerProcess::start(&[]);
    let out = run_python("static.py", &[&broker.addr, "st"]);
    assert!(out.contains("ok:"), "{out}");
}

/// `runnel consume --group`: two members started together split a six-partition topic, each
/// record printed by exactly one of them; what they printed is committed (describe shows no
/// lag), and a later member of the group prints only what was produced after.
#[test]
fn runnel_consume_group_members_split_a_topic_and_commit_what_they_printed() {
    let broker = BrokerProcess::start(&[]);
    run_python("admin.py", &[&broker.addr, "rg", "6"]);
    produce(&broker.addr, "rg", 0, 60);
    let consume = |timeout: &str| {
        Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["consume", "rg", "--group", "rg-g", "--from-beginning"])
            .args([
                "--print-partition",
                "--print-offset",
                "--timeout-ms",
                timeout,
            ])
            .args(["--bootstrap-server", &broker.addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (consume("6000"), consume("6000"));
    let lines = |child: Child| -> Vec<(i32, i64)> {
        let out = child.wait_with_output().unwrap();
        check("runnel consume --group", &out)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].trim_start_matches("Partition:").parse().unwrap(),
                    f[1].trim_start_matches("Offset:").parse().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (lines(a), lines(b));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both members read: {} and {}",
        a.len(),
        b.len()
    );
    let all: BTreeSet<(i32, i64)> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), 60, "every record once: {a:?} {b:?}");
    assert_eq!(a.len() + b.len(), 60, "no record twice: {a:?} {b:?}");
    let describe = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "group",
            "describe",
            "rg-g",
            "--bootstrap-server",
            &broker.addr,
        ])
        .output()
        .unwrap();
    let desc = check("runnel group describe", &describe);
    let rows: Vec<Vec<&str>> = desc
        .lines()
        .filter(|l| l.starts_with("rg-g"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 6, "{desc}");
    for r in &rows {
        assert_eq!(r[3], r[4], "committed = log end: {desc}");
        assert_eq!(r[5], "0", "no lag: {desc}");
    }
    produce(&broker.addr, "rg", 60, 70);
    let later = lines(consume("4000"));
    assert_eq!(later.len(), 10, "only the new records: {later:?}");
}
