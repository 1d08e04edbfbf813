//! Shared harness for integration tests: start the real `runnel` binary on a free loopback
//! port with a fresh data directory, and find the external clients `.ci/run` installs.
#![allow(dead_code)] // each test binary uses part of it

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A broker process, killed when dropped.
pub struct BrokerProcess {
    child: Option<Child>,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Keeps the temp dir alive.
    _tmp: Option<tempfile::TempDir>,
    /// Extra `--override` settings.
    overrides: Vec<String>,
    /// The open-files limit to start the process with (`ulimit -n`), if any.
    nofile: Option<u32>,
    /// Where the broker's log goes.
    log_path: PathBuf,
}

/// A port nobody listens on right now, and never handed out before in this test binary (two
/// tests starting brokers at once must not be given the same port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl BrokerProcess {
    /// Starts a broker with a fresh data directory and these `--override key=value` settings.
    pub fn start(overrides: &[&str]) -> BrokerProcess {
        let mut b = BrokerProcess::launch(overrides, None);
        b.wait_ready();
        b
    }

    /// Starts the process, at most `nofile` open files if given, without waiting for it to
    /// listen.
    fn launch(overrides: &[&str], nofile: Option<u32>) -> BrokerProcess {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut b = BrokerProcess {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            log_path: tmp.path().join("broker.log"),
            data_dir,
            _tmp: Some(tmp),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            nofile,
        };
        b.spawn_process();
        b
    }

    /// Starts a broker as [`BrokerProcess::start`] does, with at most `nofile` open files.
    pub fn start_with_open_files(overrides: &[&str], nofile: u32) -> BrokerProcess {
        let mut b = BrokerProcess::launch(overrides, Some(nofile));
        b.wait_ready();
        b
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    fn spawn_process(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let runnel = env!("CARGO_BIN_EXE_runnel");
        let mut cmd = match self.nofile {
            // The shell lowers its limit, then becomes the broker.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(runnel);
                c
            }
            None => Command::new(runnel),
        };
        cmd.arg("broker")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.addr);
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start runnel broker");
        self.child = Some(child);
    }

    /// Waits until the broker accepts connections.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "broker exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "broker did not start listening on {}:\n{}",
            self.addr,
            self.log()
        );
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends a signal and waits for the process to exit; returns whether it exited cleanly.
    fn signal_and_wait(&mut self, signal: &str) -> bool {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not exit after {signal}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for a clean exit, start again on the same port and data.
    pub fn restart_clean(&mut self) {
        assert!(
            self.signal_and_wait("-TERM"),
            "unclean exit on SIGTERM:\n{}",
            self.log()
        );
        self.spawn();
    }

    /// kill -9 and start again on the same port and data.
    pub fn restart_killed(&mut self) {
        self.signal_and_wait("-KILL");
        self.spawn();
    }

    /// Stops the broker with SIGTERM; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        self.signal_and_wait("-TERM")
    }

    /// kill -9, no restart.
    pub fn kill(&mut self) {
        self.signal_and_wait("-KILL");
    }

    /// Starts a stopped or killed broker again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }
}

/// Three combined broker+controller processes on loopback: node ids 1, 2, 3, each a voter
/// of the metadata quorum, with `extra` overrides on every node.
pub fn start_cluster(extra: &[&str]) -> Vec<BrokerProcess> {
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters: Vec<String> = controller_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect();
    let voters = format!("controller.quorum.voters={}", voters.join(","));
    // Start all three before waiting for any: a node waits for the quorum to serve.
    let mut nodes: Vec<BrokerProcess> = controller_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut overrides = vec![
                format!("node.id={}", i + 1),
                "process.roles=broker,controller".to_string(),
                voters.clone(),
                format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{p}"),
                "controller.listener.names=CONTROLLER".to_string(),
            ];
            overrides.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = overrides.iter().map(String::as_str).collect();
            BrokerProcess::launch(&refs, None)
        })
        .collect();
    for n in &mut nodes {
        n.wait_ready();
    }
    // Formed: every node's Metadata lists all three brokers (each registers with the active
    // controller and is unfenced once it has caught up with the metadata).
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &nodes {
        loop {
            let out = Command::new(kcat())
                .args(["-b", &n.addr, "-L", "-m", "5"])
                .output()
                .expect("run kcat");
            if String::from_utf8_lossy(&out.stdout).contains(" 3 brokers:") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form:\n{}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The Python with kafka-python and confluent-kafka: `$RUNNEL_PYTHON`, else the repository's
/// `.venv` that `.ci/run` creates.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNEL_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with Kafka clients: run `bash .ci/run` (it creates .venv with kafka-python and confluent-kafka) or set RUNNEL_PYTHON"
    );
    venv
}

/// `kcat`, which `.ci/run` installs from Debian.
pub fn kcat() -> PathBuf {
    for p in ["/usr/bin/kcat", "/usr/local/bin/kcat"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "kcat not found: run `bash .ci/run` (it installs Debian's kcat) or `apt-get install kcat`"
    );
}

/// Runs a Python script from `tests/python/` with `args`; panics with its output if it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    check(&format!("python {script}"), &out)
}

/// Panics with the command's output unless it succeeded; returns its stdout.
pub fn check(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What a `produce_log.py` run reported.
#[derive(Debug, Default)]
pub struct ProduceLog {
    /// Acknowledged record index -> (partition, offset).
    pub acked: std::collections::BTreeMap<u64, (i32, i64)>,
    /// Record indexes whose send failed definitely or with an unknown outcome.
    pub failed: std::collections::BTreeSet<u64>,
    /// Whether the producer finished.
    pub done: bool,
}

/// Parses a `produce_log.py` output file.
pub fn read_produce_log(path: &Path) -> ProduceLog {
    let mut log = ProduceLog::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["ok", i, p, o] => {
                log.acked
                    .insert(i.parse().unwrap(), (p.parse().unwrap(), o.parse().unwrap()));
            }
            ["fail", i, ..] => {
                log.failed.insert(i.parse().unwrap());
            }
            ["done"] => log.done = true,
            _ => {}
        }
    }
    log
}

/// Starts `produce_log.py` in the background.
pub fn spawn_producer(
    client: &str,
    addr: &str,
    topic: &str,
    records: u64,
    out: &Path,
    mode: &str,
    acks: &str,
) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/produce_log.py");
    Command::new(python())
        .arg(script)
        .args([client, addr, topic, &records.to_string()])
        .arg(out)
        .args([mode, acks])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the producer")
}

/// Waits until the producer's log shows at least `acked` acknowledgements.
pub fn wait_for_acks(out: &Path, acked: usize, producer: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_produce_log(out).acked.len() < acked {
        if let Some(status) = producer.try_wait().unwrap() {
            panic!("producer exited early with {status}");
        }
        assert!(Instant::now() < deadline, "producer made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the producer to finish and returns its log.
pub fn finish_producer(out: &Path, producer: Child) -> ProduceLog {
    let output = producer.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "producer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = read_produce_log(out);
    assert!(log.done, "producer did not finish");
    log
}

/// Every record in a topic, as `(partition, offset, record index)`, read by confluent-kafka.
pub fn consume_all(addr: &str, topic: &str) -> Vec<(i32, i64, u64)> {
    parse_consumed(&run_python("consume_all.py", &[addr, topic]))
}

/// The records a consumer script printed, one "<partition> <offset> value-<i>" per line.
pub fn parse_consumed(text: &str) -> Vec<(i32, i64, u64)> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f[2].strip_prefix("value-").unwrap().parse().unwrap();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), i)
        })
        .collect()
}

/// Checks a topic against a producer's log: every acknowledged record is present exactly
/// once at the offset it was acknowledged with; no record appears twice; records that were
/// not acknowledged were at least sent. With `in_order`, each key's records (one partition per
/// key) appear in the order they were sent.
pub fn check_exactly_once(
    log: &ProduceLog,
    consumed: &[(i32, i64, u64)],
    records: u64,
    in_order: bool,
) {
    let mut seen = std::collections::BTreeMap::new();
    for (p, o, i) in consumed {
        assert!(*i < records, "record {i} was never sent");
        if let Some(prev) = seen.insert(*i, (*p, *o)) {
            panic!("record {i} appears twice: at {prev:?} and {:?}", (p, o));
        }
    }
    for (i, at) in &log.acked {
        match seen.get(i) {
            Some(found) => assert_eq!(
                found, at,
                "record {i} acknowledged at {at:?} but found at {found:?}"
            ),
            None => panic!("acknowledged record {i} (at {at:?}) is lost"),
        }
    }
    if in_order {
        let mut by_partition: std::collections::BTreeMap<i32, Vec<(i64, u64)>> = Default::default();
        for (p, o, i) in consumed {
            by_partition.entry(*p).or_default().push((*o, *i));
        }
        for (p, mut recs) in by_partition {
            recs.sort();
            let mut last_by_key: std::collections::BTreeMap<u64, u64> = Default::default();
            for (o, i) in recs {
                if let Some(prev) = last_by_key.insert(i % 7, i) {
                    assert!(
                        prev < i,
                        "partition {p} offset {o}: record {i} after {prev} of the same key"
                    );
                }
            }
        }
    }
}
