//! Restarts under load: a SIGTERM restart, and a kill -9 with `log.flush.interval.messages=1`,
//! while a real producer writes. No acknowledged record is lost and none is duplicated.

mod support;

use support::*;

const RECORDS: u64 = 6000;

fn restart_under_load(overrides: &[&str], acks: &str, kill: bool) {
    let mut broker = BrokerProcess::start(overrides);
    run_python("admin.py", &[&broker.addr, "r", "3"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("produced");
    let mut producer = spawn_producer("confluent", &broker.addr, "r", RECORDS, &out, "plain", acks);
    wait_for_acks(&out, 1500, &mut producer);
    if kill {
        broker.restart_killed();
    } else {
        broker.restart_clean();
    }
    let log = finish_producer(&out, producer);
    assert!(
        log.acked.len() as u64 > RECORDS / 2,
        "too few acknowledged: {}",
        log.acked.len()
    );
    eprintln!(
        "acknowledged {}, failed {}",
        log.acked.len(),
        log.failed.len()
    );
    let consumed = consume_all(&broker.addr, "r");
    check_exactly_once(&log, &consumed, RECORDS, false);
    assert!(
        broker.log().contains("runnel broker started"),
        "no start-up line in the log:\n{}",
        broker.log()
    );
}

#[test]
fn sigterm_restart_loses_and_duplicates_nothing() {
    restart_under_load(&[], "all", false);
}

/// With `log.flush.interval.messages=1` every append is synced before it is answered, so even
/// acks=1 records survive kill -9.
#[test]
fn kill_9_with_flush_interval_messages_1_keeps_every_acknowledged_record() {
    restart_under_load(
        &["log.flush.interval.messages=1", "write.caching=true"],
        "1",
        true,
    );
}

/// The durable default: acks=all records survive kill -9 without any flush setting.
#[test]
fn kill_9_keeps_every_acks_all_record_by_default() {
    restart_under_load(&[], "all", true);
}
