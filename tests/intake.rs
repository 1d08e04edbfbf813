//! Bounded intake on the real binary: `max.connections.per.ip` closes a connection beyond it,
//! `max.connections` stops accepting until one closes, `connections.max.idle.ms` reaps idle
//! connections, and a flood of idle connections against a broker limited to 2,048 open files
//! makes `accept` fail without the broker spinning or flooding its log, after which a real
//! client produces and consumes.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{BrokerProcess, run_python};

/// ApiVersions v0 on `s`; true if answered.
fn answered(s: &mut TcpStream) -> bool {
    // size, api key 18, version 0, correlation id 1, client id "t".
    let req: [u8; 15] = [0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, b't'];
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).is_ok()
}

/// Whether the broker closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn connection_limits_per_ip_total_and_idle_hold() {
    let b = BrokerProcess::start(&[
        "max.connections.per.ip=3",
        "max.connections=5",
        "connections.max.idle.ms=1500",
    ]);
    // The readiness probe's connection must be gone before counting.
    std::thread::sleep(Duration::from_millis(500));
    // Three from this address are served; the fourth is closed at once.
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(&b.addr)).collect();
    for s in &mut held {
        assert!(answered(s));
    }
    let mut fourth = connect(&b.addr);
    assert!(
        closed_within(&mut fourth, Duration::from_secs(5)),
        "a fourth connection from one IP was not closed"
    );
    // Idle connections are closed after connections.max.idle.ms, and their places free.
    let start = Instant::now();
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(10)), "not reaped");
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "reaped after {waited:?}, before connections.max.idle.ms"
    );
    let mut again = connect(&b.addr);
    assert!(answered(&mut again), "a freed place was not given again");
    drop(again);
    assert!(
        b.log().contains("max.connections.per.ip reached"),
        "{}",
        b.log()
    );
}

#[test]
fn at_max_connections_the_broker_waits_for_a_place() {
    let b = BrokerProcess::start(&["max.connections=2"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut first = connect(&b.addr);
    let mut second = connect(&b.addr);
    assert!(answered(&mut first) && answered(&mut second));
    // The third is not accepted (it waits in the kernel's backlog), so it is not answered...
    let mut third = connect(&b.addr);
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(!answered(&mut third), "answered beyond max.connections");
    // ...until a place frees: then it is accepted and its request answered.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut size = [0u8; 4];
    assert!(
        third.read_exact(&mut size).is_ok(),
        "not served once a place freed"
    );
    assert!(b.log().contains("max.connections reached"), "{}", b.log());
}

/// `runnel configs --alter` of the cluster-wide broker defaults, as kafka-configs does it.
fn alter_broker_defaults(addr: &str, config: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "configs",
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
        ])
        .args(["--add-config", config, "--bootstrap-server", addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connection_limits_change_while_the_broker_runs() {
    // Kafka's max.connections and max.connections.per.ip are dynamic: an AlterConfigs of
    // them applies to the next connection.
    let b = BrokerProcess::start(&["max.connections=3"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut held = vec![connect(&b.addr)];
    assert!(answered(&mut held[0]));
    alter_broker_defaults(&b.addr, "max.connections=5");
    // The command's own connections must be gone before counting.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..4 {
        let mut s = connect(&b.addr);
        assert!(
            answered(&mut s),
            "not served below the raised max.connections"
        );
        held.push(s);
    }
    let mut sixth = connect(&b.addr);
    sixth
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(
        !answered(&mut sixth),
        "answered beyond the raised max.connections"
    );
    drop(sixth);
    // Lowered per address: a connection beyond it is closed at once (those open stay).
    held.truncate(1);
    std::thread::sleep(Duration::from_millis(500));
    alter_broker_defaults(&b.addr, "max.connections.per.ip=1");
    std::thread::sleep(Duration::from_millis(500));
    let mut second = connect(&b.addr);
    assert!(
        closed_within(&mut second, Duration::from_secs(5)),
        "a connection beyond the lowered max.connections.per.ip was served"
    );
    assert!(answered(&mut held[0]), "an open connection was closed");
    assert!(b.log().contains("connection limits changed"), "{}", b.log());
}

/// CPU seconds the process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_flood_of_idle_connections_past_the_open_files_limit_is_survived() {
    // The broker: 2,048 open files, idle connections reaped after 5 s, long enough for the
    // flood (the kernel's accept queue, then the clients' SYN retries) to pass the limit
    // before the first are reaped. The shell that lowers the limit becomes the broker, so the
    // pid is the broker's.
    let b = BrokerProcess::start_with_open_files(&["connections.max.idle.ms=5000"], 2048);
    let pid = b.pid().unwrap();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let out = run_python("intake.py", &[&b.addr, "after-flood", "4000", "20", "200"]);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    assert!(out.contains("ok"), "{out}");
    let log = b.log();
    let accept_failures = log.matches("accept failed").count();
    assert!(
        accept_failures > 0,
        "accept never failed: the flood did not reach the limit\n{out}"
    );
    // At most one line a second, and no busy loop: the broker used well under one core.
    assert!(
        (accept_failures as f64) <= elapsed + 2.0,
        "{accept_failures} accept-failure lines in {elapsed:.0} s"
    );
    assert!(
        cpu < elapsed * 0.5,
        "the broker used {cpu:.1} CPU s in {elapsed:.1} s: spinning?"
    );
    eprintln!(
        "{out}accept failures logged: {accept_failures}; broker CPU {cpu:.2} s over {elapsed:.1} s"
    );
}
