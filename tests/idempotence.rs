//! The idempotent producer, as Kafka does it: kafka-python with its default settings and
//! confluent-kafka with `enable.idempotence=true` each produce 20,000 records while the broker
//! is restarted with SIGTERM and then killed with kill -9 (`log.flush.interval.messages=1`).
//! Every acknowledged record is present exactly once, in each client's order per partition:
//! retries across the restarts are recognised as duplicates by their sequence numbers.

mod support;

use support::*;

const RECORDS: u64 = 20_000;

fn produce_through_restarts(client: &str) {
    let mut broker = BrokerProcess::start(&["log.flush.interval.messages=1"]);
    run_python("admin.py", &[&broker.addr, "idem", "3"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("produced");
    let mut producer = spawn_producer(
        client,
        &broker.addr,
        "idem",
        RECORDS,
        &out,
        "idempotent",
        "all",
    );
    wait_for_acks(&out, 5_000, &mut producer);
    broker.restart_clean();
    wait_for_acks(&out, 11_000, &mut producer);
    broker.restart_killed();
    let log = finish_producer(&out, producer);
    eprintln!(
        "{client}: acknowledged {}, failed {}",
        log.acked.len(),
        log.failed.len()
    );
    let consumed = consume_all(&broker.addr, "idem");
    check_exactly_once(&log, &consumed, RECORDS, true);
    assert!(
        log.acked.len() as u64 >= RECORDS * 9 / 10,
        "an idempotent producer retries through restarts; only {} acknowledged",
        log.acked.len()
    );
}

#[test]
fn kafka_python_default_producer_is_exactly_once_through_restarts() {
    produce_through_restarts("kafka-python");
}

#[test]
fn confluent_idempotent_producer_is_exactly_once_through_restarts() {
    produce_through_restarts("confluent");
}
