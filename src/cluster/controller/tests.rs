//! Tests of the controller's rules: each drives a [`Harness`] that commits the controller's
//! records into a state (checking the invariants and the transition after every batch).

use super::*;
use crate::cluster::invariants::{LeaderLedger, check_transition};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A state, a controller, a clock and a metadata offset.
struct Harness {
    state: ClusterState,
    controller: Controller,
    now_ms: i64,
    /// The next metadata offset.
    offset: i64,
    rng: StdRng,
    ledger: LeaderLedger,
    /// Incarnations handed out so far (a restart needs a new one).
    runs: u8,
}

impl Harness {
    fn new(config: ControllerConfig) -> Harness {
        let mut h = Harness {
            state: ClusterState::default(),
            controller: Controller::new(config),
            now_ms: 1_000,
            offset: 0,
            rng: StdRng::seed_from_u64(5),
            ledger: LeaderLedger::default(),
            runs: 0,
        };
        h.commit(vec![MetadataRecord::ClusterCreated {
            cluster_id: "c".into(),
            node_id: 0,
        }]);
        h
    }

    /// Applies `records` as one batch, then checks every invariant.
    fn commit(&mut self, records: Vec<MetadataRecord>) {
        let before = self.state.clone();
        for r in &records {
            self.state.apply_at(self.offset, r);
            self.offset += 1;
        }
        self.state.check_invariants().unwrap();
        check_transition(&before, &self.state).unwrap();
        self.ledger.observe(&self.state).unwrap();
    }

    fn registration(&mut self, id: i32) -> BrokerRegistration {
        self.runs += 1;
        BrokerRegistration {
            broker_id: id,
            cluster_id: Some("c".into()),
            incarnation_id: [self.runs; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092 + id as u16,
                security_protocol: 0,
            }],
            rack: None,
        }
    }

    fn register(&mut self, id: i32) -> i64 {
        let reg = self.registration(id);
        let (records, epoch) = self
            .controller
            .register_broker(&self.state, &reg, self.now_ms)
            .unwrap();
        self.commit(records);
        epoch
    }

    fn beat(&mut self, id: i32, want_fence: bool, want_shutdown: bool) -> HeartbeatReply {
        let hb = Heartbeat {
            broker_id: id,
            broker_epoch: self.state.brokers[&id].epoch,
            want_fence,
            want_shutdown,
            current_metadata_offset: self.offset - 1,
        };
        let (records, reply) = self
            .controller
            .heartbeat(&self.state, &hb, self.now_ms)
            .unwrap();
        self.commit(records);
        reply
    }

    /// Registers and unfences brokers `0..n`.
    fn start(&mut self, n: i32) {
        for id in 0..n {
            self.register(id);
            assert!(!self.beat(id, false, false).is_fenced);
        }
    }

    fn create(&mut self, name: &str, partitions: i32, rf: i16) -> TopicMeta {
        let t = NewTopic {
            name: name.into(),
            topic_id: uuid::Uuid::from_u128(0x1000 + self.state.topics.len() as u128),
            partitions,
            replication_factor: rf,
            ..NewTopic::default()
        };
        let records = self
            .controller
            .create_topic(&self.state, &t, &mut self.rng)
            .unwrap();
        self.commit(records);
        self.state.topics[name].clone()
    }

    /// Time passes by `ms`; `alive` brokers heartbeat every 2 s meanwhile; the controller ticks.
    fn run_for(&mut self, ms: i64, alive: &[i32]) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms = (self.now_ms + 2000).min(end);
            for id in alive {
                self.beat(*id, false, false);
            }
            let records = self.controller.tick(&self.state, self.now_ms);
            self.commit(records);
        }
    }

    fn part(&self, topic: &str, p: i32) -> PartitionMeta {
        self.state.partition(topic, p).unwrap().clone()
    }
}

fn harness() -> Harness {
    Harness::new(ControllerConfig::default())
}

#[test]
fn a_new_broker_gets_a_new_epoch_and_starts_fenced() {
    let mut h = harness();
    let e0 = h.register(0);
    let e1 = h.register(1);
    assert!(e1 > e0);
    assert!(h.state.brokers[&0].fenced && h.state.brokers[&1].fenced);
    assert_eq!(h.state.brokers_alive().count(), 0);
    assert!(!h.beat(0, false, false).is_fenced);
    assert_eq!(h.state.brokers_alive().count(), 1);
}

#[test]
fn repeating_a_registration_keeps_the_epoch() {
    let mut h = harness();
    let reg = h.registration(3);
    let (records, epoch) = h.controller.register_broker(&h.state, &reg, 0).unwrap();
    h.commit(records);
    let (records, again) = h.controller.register_broker(&h.state, &reg, 0).unwrap();
    assert_eq!((records, again), (vec![], epoch));
    let mut moved = reg.clone();
    moved.endpoints[0].port = 1;
    let (records, again) = h.controller.register_broker(&h.state, &moved, 0).unwrap();
    assert_eq!(again, epoch);
    h.commit(records);
    assert_eq!(h.state.brokers[&3].endpoints[0].port, 1);
}

#[test]
fn a_second_live_incarnation_is_refused_until_the_first_session_expires() {
    let mut h = harness();
    h.start(1);
    let old = h.state.brokers[&0].epoch;
    let reg = h.registration(0);
    let err = h
        .controller
        .register_broker(&h.state, &reg, h.now_ms + 1000)
        .unwrap_err();
    assert_eq!(err, ControllerError::DuplicateBrokerRegistration(0));
    assert_eq!(err.code(), ResponseError::DuplicateBrokerRegistration);
    // The session expires; even before a tick fences it, a new incarnation may register.
    h.now_ms += 9001;
    let (records, epoch) = h
        .controller
        .register_broker(&h.state, &reg, h.now_ms)
        .unwrap();
    h.commit(records);
    assert!(epoch > old);
    assert!(h.state.brokers[&0].fenced);
}

#[test]
fn this_process_own_broker_re_registers_at_once() {
    // A combined node restarts: its previous incarnation's session is still valid in the
    // metadata, but that incarnation was this process's predecessor, so it is not waited out.
    let mut h = harness();
    h.start(1);
    let old = h.state.brokers[&0].epoch;
    let reg = h.registration(0);
    let mut other = reg.clone();
    other.incarnation_id = [0xee; 16];
    h.controller.set_local_broker(0, reg.incarnation_id);
    // Another process claiming the same id is still refused while the session lives.
    let err = h
        .controller
        .register_broker(&h.state, &other, h.now_ms + 1000)
        .unwrap_err();
    assert_eq!(err, ControllerError::DuplicateBrokerRegistration(0));
    let (records, epoch) = h
        .controller
        .register_broker(&h.state, &reg, h.now_ms + 1000)
        .unwrap();
    h.commit(records);
    assert!(epoch > old);
}

#[test]
fn a_restarted_broker_loses_leadership_until_it_is_unfenced() {
    let mut h = harness();
    h.start(1);
    h.create("t", 2, 1);
    let before = h.part("t", 0);
    h.run_for(10_000, &[]);
    assert!(h.state.brokers[&0].fenced);
    assert_eq!(h.part("t", 0).leader, NO_LEADER);
    assert_eq!(h.part("t", 0).isr, vec![0], "the last ISR member stays");
    h.register(0);
    assert_eq!(h.part("t", 0).leader, NO_LEADER);
    h.beat(0, false, false);
    let after = h.part("t", 0);
    assert_eq!(after.leader, 0);
    assert!(after.leader_epoch > before.leader_epoch);
}

#[test]
fn heartbeats_with_a_wrong_epoch_or_id_are_refused() {
    let mut h = harness();
    h.start(1);
    let epoch = h.state.brokers[&0].epoch;
    let hb = Heartbeat {
        broker_id: 0,
        broker_epoch: epoch - 1,
        want_fence: false,
        want_shutdown: false,
        current_metadata_offset: 0,
    };
    let err = h.controller.heartbeat(&h.state, &hb, 0).unwrap_err();
    assert_eq!(err.code(), ResponseError::StaleBrokerEpoch);
    let hb = Heartbeat { broker_id: 9, ..hb };
    let err = h.controller.heartbeat(&h.state, &hb, 0).unwrap_err();
    assert_eq!(err.code(), ResponseError::BrokerIdNotRegistered);
}

#[test]
fn unfencing_waits_for_the_broker_to_catch_up_and_to_ask() {
    let mut h = harness();
    h.register(0);
    let registered = h.state.brokers[&0].registered_offset.unwrap();
    let mut hb = Heartbeat {
        broker_id: 0,
        broker_epoch: h.state.brokers[&0].epoch,
        want_fence: false,
        want_shutdown: false,
        current_metadata_offset: registered - 1,
    };
    let (records, reply) = h.controller.heartbeat(&h.state, &hb, h.now_ms).unwrap();
    assert!(records.is_empty() && reply.is_fenced && !reply.is_caught_up);
    hb.current_metadata_offset = registered;
    hb.want_fence = true;
    let (records, reply) = h.controller.heartbeat(&h.state, &hb, h.now_ms).unwrap();
    assert!(records.is_empty() && reply.is_fenced && reply.is_caught_up);
    hb.want_fence = false;
    let (records, reply) = h.controller.heartbeat(&h.state, &hb, h.now_ms).unwrap();
    assert!(!reply.is_fenced);
    h.commit(records);
    assert!(!h.state.brokers[&0].fenced);
}

#[test]
fn a_broker_that_asks_to_be_fenced_is() {
    let mut h = harness();
    h.start(2);
    h.create("t", 4, 2);
    h.beat(1, true, false);
    assert!(h.state.brokers[&1].fenced);
    for p in 0..4 {
        let p = h.part("t", p);
        assert_eq!((p.leader, p.isr), (0, vec![0]));
    }
}

#[test]
fn session_expiry_fences_and_moves_leadership_within_the_isr() {
    let mut h = harness();
    h.start(3);
    h.create("t", 6, 3);
    let before: Vec<_> = (0..6).map(|p| h.part("t", p)).collect();
    // Exactly the session timeout is still alive; one more millisecond is not.
    h.run_for(8000, &[0, 2]);
    h.now_ms += 1000;
    h.beat(0, false, false);
    h.beat(2, false, false);
    let records = h.controller.tick(&h.state, h.now_ms);
    h.commit(records);
    assert!(!h.state.brokers[&1].fenced, "heard from 9000 ms ago");
    h.now_ms += 1;
    let records = h.controller.tick(&h.state, h.now_ms);
    h.commit(records);
    assert!(h.state.brokers[&1].fenced);
    for (n, old) in before.iter().enumerate() {
        let p = h.part("t", n as i32);
        assert!(!p.isr.contains(&1), "{p:?}");
        assert_ne!(p.leader, 1);
        assert!(p.isr.contains(&p.leader));
        if old.leader == 1 {
            assert_eq!(p.leader_epoch, old.leader_epoch + 1);
            let expected = old.replicas.iter().find(|r| **r != 1).unwrap();
            assert_eq!(
                p.leader, *expected,
                "the first other ISR member in replica order"
            );
        } else {
            assert_eq!(p.leader_epoch, old.leader_epoch, "{p:?}");
            assert!(p.partition_epoch > old.partition_epoch, "the ISR shrank");
        }
    }
}

/// Topic "t", one partition on brokers 0 and 1 with these configs; broker 1 drops out of the
/// ISR (the leader says so), then the leader, broker 0, dies.
fn lose_the_isr(h: &mut Harness, configs: BTreeMap<String, String>) {
    h.start(2);
    let id = uuid::Uuid::from_u128(77);
    let t = NewTopic {
        name: "t".into(),
        topic_id: id,
        assignments: BTreeMap::from([(0, vec![0, 1])]),
        configs,
        ..NewTopic::default()
    };
    let records = h.controller.create_topic(&h.state, &t, &mut h.rng).unwrap();
    h.commit(records);
    let p = h.part("t", 0);
    let shrink = AlterPartition {
        broker_id: 0,
        broker_epoch: h.state.brokers[&0].epoch,
        topic_id: id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![IsrMember {
            broker_id: 0,
            broker_epoch: -1,
        }],
    };
    let (records, _) = h.controller.alter_partition(&h.state, &shrink).unwrap();
    h.commit(records);
    h.run_for(10_000, &[1]);
}

#[test]
fn no_leader_without_an_isr_member_unless_unclean_election_is_on() {
    for (unclean, topic_override) in [(false, None), (true, None), (false, Some("true"))] {
        let config = ControllerConfig {
            unclean_leader_election_enable: unclean,
            ..ControllerConfig::default()
        };
        let mut h = Harness::new(config);
        let configs = topic_override
            .map(|v| BTreeMap::from([(UNCLEAN_LEADER_ELECTION_ENABLE.to_string(), v.into())]))
            .unwrap_or_default();
        lose_the_isr(&mut h, configs);
        let p = h.part("t", 0);
        if unclean || topic_override.is_some() {
            assert_eq!((p.leader, p.isr), (1, vec![1]), "unclean: ISR reset");
        } else {
            assert_eq!((p.leader, p.isr), (NO_LEADER, vec![0]), "clean: no leader");
        }
    }
}

#[test]
fn unclean_election_follows_the_cluster_wide_dynamic_default() {
    let mut h = Harness::new(ControllerConfig::default());
    lose_the_isr(&mut h, BTreeMap::new());
    assert_eq!(h.part("t", 0).leader, NO_LEADER, "clean by default");
    // Turned on cluster-wide while the partition has no leader: the next tick elects one.
    let on = [(
        UNCLEAN_LEADER_ELECTION_ENABLE.to_string(),
        ConfigOp::Set("true".into()),
    )];
    let (records, _) = h
        .controller
        .alter_broker_configs(&h.state, None, &on, false)
        .unwrap();
    h.commit(records);
    h.run_for(1_000, &[1]);
    let p = h.part("t", 0);
    assert_eq!((p.leader, p.isr), (1, vec![1]), "unclean: ISR reset");
}

#[test]
fn controlled_shutdown_moves_leadership_before_shutting_down() {
    let mut h = harness();
    h.start(2);
    h.create("t", 4, 2);
    assert!((0..4).any(|p| h.part("t", p).leader == 1));
    let reply = h.beat(1, false, true);
    assert!(!reply.should_shutdown && reply.in_controlled_shutdown);
    for p in 0..4 {
        let p = h.part("t", p);
        assert_eq!((p.leader, p.isr), (0, vec![0]));
    }
    // It has applied the controlled-shutdown record (`beat` reports the latest offset).
    let reply = h.beat(1, false, true);
    assert!(reply.should_shutdown && reply.is_fenced);
}

#[test]
fn controlled_shutdown_waits_until_the_broker_has_seen_its_leaderships_move() {
    let mut h = harness();
    h.start(2);
    h.create("t", 2, 2);
    h.beat(1, false, true);
    let hb = Heartbeat {
        broker_id: 1,
        broker_epoch: h.state.brokers[&1].epoch,
        want_fence: false,
        want_shutdown: true,
        current_metadata_offset: h.state.brokers[&1].controlled_shutdown_offset.unwrap() - 1,
    };
    let (records, reply) = h.controller.heartbeat(&h.state, &hb, h.now_ms).unwrap();
    assert!(records.is_empty() && !reply.should_shutdown);
}

#[test]
fn a_broker_leading_nothing_or_fenced_shuts_down_at_once() {
    let mut h = harness();
    h.start(2);
    let reply = h.beat(1, false, true);
    assert!(reply.should_shutdown && reply.is_fenced);
    h.register(1);
    assert!(h.beat(1, false, true).should_shutdown);
}

#[test]
fn a_sole_replica_goes_offline_in_controlled_shutdown() {
    let mut h = harness();
    h.start(1);
    h.create("t", 1, 1);
    assert!(!h.beat(0, false, true).should_shutdown);
    assert_eq!(h.part("t", 0).leader, NO_LEADER);
    assert!(h.beat(0, false, true).should_shutdown);
}

#[test]
fn preferred_leaders_return_at_the_rebalance_interval() {
    let config = ControllerConfig {
        leader_imbalance_check_interval_ms: 60_000,
        ..ControllerConfig::default()
    };
    let mut h = Harness::new(config);
    h.start(3);
    h.create("t", 6, 3);
    let preferred_led = |h: &Harness| {
        (0..6)
            .filter(|p| {
                let p = h.part("t", *p);
                p.leader == p.replicas[0]
            })
            .count()
    };
    assert_eq!(preferred_led(&h), 6);
    h.run_for(10_000, &[0, 1]);
    assert!(h.state.brokers[&2].fenced);
    h.register(2);
    h.beat(2, false, false);
    assert_eq!(
        preferred_led(&h),
        4,
        "unfencing elects no one: broker 2 is not in the ISRs"
    );
    // Broker 2 catches up (its leaders add it back to the ISR).
    for n in 0..6 {
        let p = h.part("t", n);
        let req = AlterPartition {
            broker_id: p.leader,
            broker_epoch: h.state.brokers[&p.leader].epoch,
            topic_id: h.state.topics["t"].id,
            partition: n,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: p
                .replicas
                .iter()
                .map(|b| IsrMember {
                    broker_id: *b,
                    broker_epoch: h.state.brokers[b].epoch,
                })
                .collect(),
        };
        let (records, _) = h.controller.alter_partition(&h.state, &req).unwrap();
        h.commit(records);
    }
    assert_eq!(preferred_led(&h), 4);
    h.run_for(40_000, &[0, 1, 2]);
    assert_eq!(preferred_led(&h), 4, "not before the interval");
    h.run_for(20_000, &[0, 1, 2]);
    assert_eq!(preferred_led(&h), 6);
}

#[test]
fn a_small_imbalance_is_left_alone() {
    let config = ControllerConfig {
        leader_imbalance_check_interval_ms: 2000,
        leader_imbalance_per_broker_percentage: 50,
        ..ControllerConfig::default()
    };
    let mut h = Harness::new(config);
    h.start(2);
    let id = uuid::Uuid::from_u128(5);
    let t = NewTopic {
        name: "t".into(),
        topic_id: id,
        assignments: BTreeMap::from([(0, vec![0, 1]), (1, vec![0, 1]), (2, vec![1, 0])]),
        ..NewTopic::default()
    };
    let records = h.controller.create_topic(&h.state, &t, &mut h.rng).unwrap();
    h.commit(records);
    // Partition 0's leadership moves to broker 1 by an election with 0 briefly fenced out.
    let p0 = h.part("t", 0);
    h.commit(vec![MetadataRecord::PartitionChange {
        topic_id: *id.as_bytes(),
        partition: 0,
        isr: None,
        leader: Some(1),
        replicas: None,
    }]);
    h.run_for(10_000, &[0, 1]);
    assert_eq!(
        h.part("t", 0).leader,
        1,
        "1 of 2 preferred is 50%: not above"
    );
    assert_eq!(h.part("t", 0).leader_epoch, p0.leader_epoch + 1);
}

#[test]
fn a_new_active_controller_starts_sessions_afresh() {
    let mut h = harness();
    h.start(2);
    h.create("t", 2, 2);
    h.now_ms += 60_000;
    let mut fresh = Controller::new(ControllerConfig::default());
    fresh.activate(&h.state, h.now_ms);
    assert!(fresh.tick(&h.state, h.now_ms + 9000).is_empty());
    assert!(!fresh.tick(&h.state, h.now_ms + 9001).is_empty());
}

#[test]
fn topics_are_placed_on_active_brokers_with_the_isr_all_replicas() {
    let mut h = harness();
    h.start(4);
    h.beat(3, true, false);
    let t = h.create("t", 6, 3);
    assert_eq!(t.partitions, 6);
    assert_eq!(t.replication_factor, 3);
    let mut leaders = BTreeMap::new();
    for p in t.parts.values() {
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        assert!(!p.replicas.contains(&3), "fenced brokers get nothing");
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().collect::<Vec<_>>(), vec![&2, &2, &2]);
    let t = NewTopic {
        name: "u".into(),
        topic_id: uuid::Uuid::from_u128(9),
        partitions: 1,
        replication_factor: 4,
        ..NewTopic::default()
    };
    let err = h
        .controller
        .create_topic(&h.state, &t, &mut h.rng)
        .unwrap_err();
    assert_eq!(err.code(), ResponseError::InvalidReplicationFactor);
    let dup = NewTopic {
        name: "t".into(),
        ..t
    };
    let err = h
        .controller
        .create_topic(&h.state, &dup, &mut h.rng)
        .unwrap_err();
    assert_eq!(err.code(), ResponseError::TopicAlreadyExists);
}

#[test]
fn create_topics_answers_each_topic() {
    let mut h = harness();
    h.start(2);
    let t = |name: &str, n: u128, rf| NewTopic {
        name: name.into(),
        topic_id: uuid::Uuid::from_u128(n),
        partitions: 2,
        replication_factor: rf,
        ..NewTopic::default()
    };
    let (records, results) = h.controller.create_topics(
        &h.state,
        &[t("a", 1, 2), t("b", 2, 3), t("a", 3, 1), t("c", 4, 1)],
        &mut h.rng,
    );
    h.commit(records);
    let codes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            Some(ResponseError::InvalidReplicationFactor),
            Some(ResponseError::TopicAlreadyExists),
            None
        ]
    );
    assert_eq!(h.state.topics.keys().collect::<Vec<_>>(), vec!["a", "c"]);
    assert_eq!(results[0].as_ref().unwrap(), &h.state.topics["a"]);
}

#[test]
fn explicit_assignments_are_checked() {
    let mut h = harness();
    h.start(3);
    h.beat(2, true, false);
    let try_assign = |h: &mut Harness, a: Vec<(i32, Vec<i32>)>| {
        let t = NewTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
            assignments: a.into_iter().collect(),
            ..NewTopic::default()
        };
        h.controller.create_topic(&h.state, &t, &mut h.rng)
    };
    for bad in [
        vec![(0, vec![0]), (2, vec![1])],
        vec![(0, vec![])],
        vec![(0, vec![0, 0])],
        vec![(0, vec![0, 1]), (1, vec![1])],
        vec![(0, vec![0, 7])],
        vec![(0, vec![2])],
    ] {
        let err = try_assign(&mut h, bad.clone()).unwrap_err();
        assert_eq!(
            err.code(),
            ResponseError::InvalidReplicaAssignment,
            "{bad:?}"
        );
    }
    let records = try_assign(&mut h, vec![(0, vec![2, 1]), (1, vec![0, 2])]).unwrap();
    h.commit(records);
    let p0 = h.part("t", 0);
    assert_eq!((p0.replicas, p0.isr, p0.leader), (vec![2, 1], vec![1], 1));
}

#[test]
fn partitions_grow_with_placement_and_topics_delete() {
    let mut h = harness();
    h.start(3);
    h.create("t", 2, 2);
    let err = h
        .controller
        .create_partitions(&h.state, "t", 2, &[], &mut h.rng)
        .unwrap_err();
    assert_eq!(err.code(), ResponseError::InvalidPartitions);
    let err = h
        .controller
        .create_partitions(&h.state, "x", 3, &[], &mut h.rng)
        .unwrap_err();
    assert_eq!(err.code(), ResponseError::UnknownTopicOrPartition);
    let err = h
        .controller
        .create_partitions(&h.state, "t", 3, &[vec![0]], &mut h.rng)
        .unwrap_err();
    assert_eq!(err.code(), ResponseError::InvalidReplicaAssignment);
    let (records, grown) = h
        .controller
        .create_partitions(&h.state, "t", 5, &[], &mut h.rng)
        .unwrap();
    h.commit(records);
    assert_eq!(grown, h.state.topics["t"]);
    assert_eq!(grown.partitions, 5);
    assert!(grown.parts.values().all(|p| p.replicas.len() == 2));
    let (records, _) = h
        .controller
        .create_partitions(&h.state, "t", 6, &[vec![2, 0]], &mut h.rng)
        .unwrap();
    h.commit(records);
    assert_eq!(h.part("t", 5).replicas, vec![2, 0]);
    let (records, gone) = h.controller.delete_topic(&h.state, "t").unwrap();
    h.commit(records);
    assert_eq!(gone.partitions, 6);
    assert!(h.state.topics.is_empty() && h.state.topic_names.is_empty());
    let err = h.controller.delete_topic(&h.state, "t").unwrap_err();
    assert_eq!(err.code(), ResponseError::UnknownTopicOrPartition);
}

#[test]
fn alter_partition_is_checked_as_kafka_does() {
    let mut h = harness();
    h.start(3);
    let t = h.create("t", 1, 3);
    let p = h.part("t", 0);
    let member = |h: &Harness, b: i32| IsrMember {
        broker_id: b,
        broker_epoch: h.state.brokers[&b].epoch,
    };
    let shrunk: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|b| *b != p.replicas[2])
        .collect();
    let ok = AlterPartition {
        broker_id: p.leader,
        broker_epoch: h.state.brokers[&p.leader].epoch,
        topic_id: t.id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: shrunk.iter().map(|b| member(&h, *b)).collect(),
    };
    let code = |h: &Harness, req: AlterPartition| {
        h.controller
            .alter_partition(&h.state, &req)
            .unwrap_err()
            .code()
    };
    let follower = p.replicas[1];
    let cases = [
        (
            AlterPartition {
                broker_epoch: ok.broker_epoch + 100,
                ..ok.clone()
            },
            ResponseError::StaleBrokerEpoch,
        ),
        (
            AlterPartition {
                topic_id: uuid::Uuid::from_u128(404),
                ..ok.clone()
            },
            ResponseError::UnknownTopicId,
        ),
        (
            AlterPartition {
                partition: 1,
                ..ok.clone()
            },
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            AlterPartition {
                leader_epoch: p.leader_epoch + 1,
                ..ok.clone()
            },
            ResponseError::NotController,
        ),
        (
            AlterPartition {
                broker_id: follower,
                broker_epoch: h.state.brokers[&follower].epoch,
                ..ok.clone()
            },
            ResponseError::NotLeaderOrFollower,
        ),
        (
            AlterPartition {
                new_isr: vec![member(&h, follower)],
                ..ok.clone()
            },
            ResponseError::InvalidRequest,
        ),
        (
            AlterPartition {
                new_isr: vec![member(&h, p.leader), member(&h, p.leader)],
                ..ok.clone()
            },
            ResponseError::InvalidRequest,
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(&h, req.clone()), expected, "{req:?}");
    }
    let (records, after) = h.controller.alter_partition(&h.state, &ok).unwrap();
    h.commit(records);
    assert_eq!(after, h.part("t", 0));
    assert_eq!(after.isr, shrunk);
    assert_eq!(
        after.leader_epoch, p.leader_epoch,
        "an ISR change elects no one"
    );
    assert_eq!(after.partition_epoch, p.partition_epoch + 1);
    // The same request again: its partition epoch is now old.
    assert_eq!(code(&h, ok.clone()), ResponseError::InvalidUpdateVersion);
    // A fenced broker cannot join; nor a broker holding no replica; nor a stale epoch.
    let current = AlterPartition {
        partition_epoch: after.partition_epoch,
        ..ok.clone()
    };
    let outsider = p.replicas[2];
    let expand = |members: Vec<IsrMember>| AlterPartition {
        new_isr: members,
        ..current.clone()
    };
    let mut stale = member(&h, outsider);
    stale.broker_epoch -= 1;
    let with = |m: IsrMember| {
        let mut v: Vec<_> = shrunk.iter().map(|b| member(&h, *b)).collect();
        v.push(m);
        v
    };
    assert_eq!(
        code(&h, expand(with(stale))),
        ResponseError::IneligibleReplica
    );
    assert_eq!(
        code(
            &h,
            expand(with(IsrMember {
                broker_id: 42,
                broker_epoch: -1
            }))
        ),
        ResponseError::IneligibleReplica
    );
    let join = expand(with(member(&h, outsider)));
    h.beat(outsider, true, false);
    assert_eq!(code(&h, join.clone()), ResponseError::IneligibleReplica);
    h.beat(outsider, false, false);
    let (records, after) = h.controller.alter_partition(&h.state, &join).unwrap();
    h.commit(records);
    assert_eq!(after.isr.len(), 3);
    // An unchanged ISR writes nothing; an old leader epoch is fenced.
    let same = AlterPartition {
        partition_epoch: after.partition_epoch,
        ..join
    };
    let (records, _) = h.controller.alter_partition(&h.state, &same).unwrap();
    assert!(records.is_empty());
    h.commit(vec![MetadataRecord::PartitionChange {
        topic_id: *t.id.as_bytes(),
        partition: 0,
        isr: None,
        leader: Some(p.leader),
        replicas: None,
    }]);
    let old = AlterPartition {
        partition_epoch: after.partition_epoch + 1,
        ..same
    };
    assert_eq!(code(&h, old), ResponseError::FencedLeaderEpoch);
}

#[test]
fn the_planted_bug_elects_outside_the_isr_and_the_checker_sees_it() {
    let config = ControllerConfig {
        planted_bug: Some(PlantedBug::ElectOutsideIsr),
        ..ControllerConfig::default()
    };
    let mut h = Harness::new(config);
    h.start(3);
    let id = uuid::Uuid::from_u128(3);
    let t = NewTopic {
        name: "t".into(),
        topic_id: id,
        assignments: BTreeMap::from([(0, vec![0, 1, 2])]),
        ..NewTopic::default()
    };
    let records = h.controller.create_topic(&h.state, &t, &mut h.rng).unwrap();
    h.commit(records);
    // Broker 2 falls out of the ISR; then the leader's session expires.
    let (records, _) = h
        .controller
        .alter_partition(
            &h.state,
            &AlterPartition {
                broker_id: 0,
                broker_epoch: h.state.brokers[&0].epoch,
                topic_id: id,
                partition: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                new_isr: [0, 1]
                    .map(|b| IsrMember {
                        broker_id: b,
                        broker_epoch: -1,
                    })
                    .to_vec(),
            },
        )
        .unwrap();
    h.commit(records);
    h.now_ms += 9001;
    h.beat(1, false, false);
    h.beat(2, false, false);
    let mut state = h.state.clone();
    let records = h.controller.tick(&state, h.now_ms);
    for r in &records {
        state.apply(r);
    }
    assert_eq!(state.partition("t", 0).unwrap().leader, 2);
    let err = state.check_invariants().unwrap_err();
    assert!(err.contains("not in the ISR"), "{err}");
    // Without the bug, broker 1 (in the ISR) is elected.
    let mut clean = h.controller.clone();
    clean.config.planted_bug = None;
    let records = clean.tick(&h.state, h.now_ms);
    h.commit(records);
    assert_eq!(h.part("t", 0).leader, 1);
}

#[test]
fn an_old_one_node_log_gets_its_partitions_on_the_creating_node() {
    let mut h = harness();
    h.commit(vec![MetadataRecord::TopicCreated {
        name: "old".into(),
        topic_id: [1; 16],
        partitions: 2,
        replication_factor: 1,
        configs: BTreeMap::new(),
    }]);
    h.commit(vec![MetadataRecord::PartitionsCreated {
        name: "old".into(),
        partitions: 3,
    }]);
    for p in 0..3 {
        let p = h.part("old", p);
        assert_eq!(
            (p.replicas, p.isr, p.leader, p.leader_epoch),
            (vec![0], vec![0], 0, 0)
        );
    }
    // Node 0 registers: it leads nothing while fenced, then everything again.
    h.register(0);
    assert_eq!(h.state.leader_of("old", 0), None);
    h.beat(0, false, false);
    assert_eq!(h.state.leader_of("old", 0), Some(0));
    assert_eq!(h.state.replicas_on(0).count(), 3);
}

/// One step of the random model.
#[derive(Debug, Clone)]
enum Step {
    /// Broker `b` (re)registers with a new incarnation.
    Register(i32),
    /// Broker `b` heartbeats, `lag` records behind.
    Heartbeat {
        b: i32,
        want_fence: bool,
        want_shutdown: bool,
        lag: i64,
    },
    /// Time passes by `ms`; brokers in `alive` (a bit mask) heartbeat first; the controller ticks.
    Pass { ms: i64, alive: u8 },
    /// A topic is created.
    Create { partitions: i32, rf: i16 },
    /// The leader of a partition asks for the ISR `mask` of its replicas (plus itself).
    AlterIsr { pick: usize, mask: u8 },
    /// A broker is unregistered.
    Unregister(i32),
    /// A topic is deleted.
    Delete(usize),
    /// A new controller takes over.
    Failover,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..5i32).prop_map(Step::Register),
        4 => (0..5i32, prop::bool::weighted(0.1), prop::bool::weighted(0.1), 0..2i64).prop_map(
            |(b, want_fence, want_shutdown, lag)| Step::Heartbeat { b, want_fence, want_shutdown, lag }
        ),
        4 => (0..12_000i64, any::<u8>()).prop_map(|(ms, alive)| Step::Pass { ms, alive }),
        2 => (1..8i32, 1..4i16).prop_map(|(partitions, rf)| Step::Create { partitions, rf }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(pick, mask)| Step::AlterIsr { pick, mask }),
        1 => (0..5i32).prop_map(Step::Unregister),
        1 => any::<usize>().prop_map(Step::Delete),
        1 => Just(Step::Failover),
    ]
}

/// What a random history did, to show the model reaches the interesting cases.
#[derive(Debug, Default)]
struct Seen {
    /// Elections that picked a new leader.
    elections: usize,
    /// Unclean elections.
    unclean: usize,
    /// Partitions left without a leader.
    offline: usize,
    /// Brokers fenced.
    fenced: usize,
    /// Shutdowns granted.
    shutdowns: usize,
}

impl Harness {
    /// Commits a batch after checking that no election in it picked a leader outside the ISR
    /// it had, unless the election was unclean (ISR reset to the new leader).
    fn commit_checking_elections(&mut self, records: Vec<MetadataRecord>, seen: &mut Seen) {
        let unclean_allowed = self.controller.config.unclean_leader_election_enable;
        let mut state = self.state.clone();
        for r in &records {
            match r {
                MetadataRecord::PartitionChange {
                    topic_id,
                    partition,
                    isr,
                    leader: Some(l),
                    ..
                } => {
                    let before = state
                        .partition_by_id(uuid::Uuid::from_bytes(*topic_id), *partition)
                        .unwrap();
                    let unclean = isr.as_deref() == Some(&[*l][..]) && !before.isr.contains(l);
                    assert!(
                        *l == NO_LEADER || before.isr.contains(l) || (unclean && unclean_allowed),
                        "{l} elected outside the ISR {:?} ({r:?})",
                        before.isr
                    );
                    seen.elections += 1;
                    seen.unclean += usize::from(unclean);
                    seen.offline += usize::from(*l == NO_LEADER);
                }
                MetadataRecord::BrokerFenced { .. } => seen.fenced += 1,
                _ => {}
            }
            state.apply(r);
        }
        self.commit(records);
    }

    fn run_step(&mut self, s: &Step, seen: &mut Seen) {
        match s {
            Step::Register(b) => {
                let reg = self.registration(*b);
                if let Ok((records, _)) =
                    self.controller
                        .register_broker(&self.state, &reg, self.now_ms)
                {
                    self.commit_checking_elections(records, seen);
                }
            }
            Step::Heartbeat {
                b,
                want_fence,
                want_shutdown,
                lag,
            } => {
                let Some(broker) = self.state.brokers.get(b) else {
                    return;
                };
                let hb = Heartbeat {
                    broker_id: *b,
                    broker_epoch: broker.epoch,
                    want_fence: *want_fence,
                    want_shutdown: *want_shutdown,
                    current_metadata_offset: self.offset - 1 - lag,
                };
                let (records, reply) = self
                    .controller
                    .heartbeat(&self.state, &hb, self.now_ms)
                    .unwrap();
                self.commit_checking_elections(records, seen);
                if reply.should_shutdown {
                    seen.shutdowns += 1;
                    assert!(self.state.brokers[b].fenced);
                    assert!(self.state.partitions().all(|(_, _, p)| p.leader != *b));
                }
            }
            Step::Pass { ms, alive } => {
                self.now_ms += ms;
                let ids: Vec<i32> = self.state.brokers.keys().copied().collect();
                for b in ids {
                    if alive & (1 << b) != 0 && !self.state.brokers[&b].in_controlled_shutdown {
                        let hb = Step::Heartbeat {
                            b,
                            want_fence: false,
                            want_shutdown: false,
                            lag: 0,
                        };
                        self.run_step(&hb, seen);
                    }
                }
                let records = self.controller.tick(&self.state, self.now_ms);
                self.commit_checking_elections(records, seen);
            }
            Step::Create { partitions, rf } => self.create_checking_spread(*partitions, *rf),
            Step::AlterIsr { pick, mask } => self.alter_isr(*pick, *mask),
            Step::Unregister(b) => {
                if let Ok(records) = self.controller.unregister_broker(&self.state, *b) {
                    self.commit_checking_elections(records, seen);
                }
            }
            Step::Delete(pick) => {
                let names: Vec<String> = self.state.topics.keys().cloned().collect();
                if !names.is_empty() {
                    let (records, _) = self
                        .controller
                        .delete_topic(&self.state, &names[pick % names.len()])
                        .unwrap();
                    self.commit(records);
                }
            }
            Step::Failover => {
                let mut fresh = Controller::new(self.controller.config.clone());
                fresh.activate(&self.state, self.now_ms);
                self.controller = fresh;
            }
        }
    }

    /// Creates a topic; its leaders must spread evenly over the (equal, rack-less) active
    /// brokers, and only too few of them may refuse it.
    fn create_checking_spread(&mut self, partitions: i32, rf: i16) {
        let name = format!("t{}", self.offset);
        let t = NewTopic {
            name: name.clone(),
            topic_id: uuid::Uuid::from_u128(self.offset as u128 + 1),
            partitions,
            replication_factor: rf,
            ..NewTopic::default()
        };
        let active: Vec<i32> = self
            .state
            .brokers
            .values()
            .filter(|b| b.is_active())
            .map(|b| b.id)
            .collect();
        match self.controller.create_topic(&self.state, &t, &mut self.rng) {
            Ok(records) => {
                self.commit(records);
                let mut leaders: BTreeMap<i32, i32> = active.iter().map(|b| (*b, 0)).collect();
                for p in self.state.topics[&name].parts.values() {
                    assert_eq!(p.isr, p.replicas);
                    *leaders.get_mut(&p.leader).unwrap() += 1;
                }
                let (lo, hi) = (leaders.values().min(), leaders.values().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{leaders:?}");
            }
            Err(e) => {
                assert_eq!(e.code(), ResponseError::InvalidReplicationFactor);
                assert!(active.len() < rf as usize, "{e}");
            }
        }
    }

    /// The leader of the `pick`th led partition asks for the ISR `mask` of its replicas.
    fn alter_isr(&mut self, pick: usize, mask: u8) {
        let parts: Vec<(uuid::Uuid, i32, PartitionMeta)> = self
            .state
            .partitions()
            .filter(|(_, _, p)| p.leader != NO_LEADER)
            .map(|(t, n, p)| (t.id, n, p.clone()))
            .collect();
        if parts.is_empty() {
            return;
        }
        let (topic_id, partition, p) = &parts[pick % parts.len()];
        let new_isr = p
            .replicas
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == p.leader || mask & (1 << i) != 0)
            .map(|(_, b)| IsrMember {
                broker_id: *b,
                broker_epoch: self.state.brokers.get(b).map_or(-1, |b| b.epoch),
            })
            .collect();
        let req = AlterPartition {
            broker_id: p.leader,
            broker_epoch: self.state.brokers[&p.leader].epoch,
            topic_id: *topic_id,
            partition: *partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
        };
        match self.controller.alter_partition(&self.state, &req) {
            Ok((records, _)) => self.commit(records),
            Err(e) => assert_eq!(e.code(), ResponseError::IneligibleReplica, "{e}"),
        }
    }
}

fn random_config(unclean: bool) -> ControllerConfig {
    ControllerConfig {
        unclean_leader_election_enable: unclean,
        leader_imbalance_check_interval_ms: 20_000,
        ..ControllerConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random registrations, heartbeats, time, topics, ISR changes, unregistrations, deletions
    /// and failovers: after every batch the state's invariants hold, epochs only grow, no
    /// (partition, leader epoch) has two leaders, no election leaves the ISR (unless unclean
    /// election is on and the ISR is reset), fresh topics spread their leaders evenly, and a
    /// broker told to shut down leads nothing.
    #[test]
    fn random_histories_keep_the_invariants(
        unclean in any::<bool>(),
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let mut h = Harness::new(random_config(unclean));
        h.rng = StdRng::seed_from_u64(seed);
        let mut seen = Seen::default();
        for s in &steps {
            h.run_step(s, &mut seen);
        }
    }
}

/// The model reaches what it is meant to check: elections, clean and unclean, partitions
/// left offline, fencing and shutdowns (over a fixed set of histories).
#[test]
fn random_histories_reach_elections_fencing_and_shutdowns() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = Seen::default();
    for i in 0..200 {
        let steps = prop::collection::vec(step(), 40..80)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut h = Harness::new(random_config(i % 2 == 0));
        for s in &steps {
            h.run_step(s, &mut seen);
        }
    }
    assert!(
        seen.elections > 100 && seen.unclean > 0 && seen.offline > 0,
        "{seen:?}"
    );
    assert!(seen.fenced > 100 && seen.shutdowns > 10, "{seen:?}");
}

/// The planted bug is caught by the random model's checks (in 10 of these 50 histories: it
/// needs an election while a live replica is outside the ISR).
#[test]
fn random_histories_catch_the_planted_bug() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let caught = (0..50)
        .filter(|_| {
            let steps = prop::collection::vec(step(), 40..80)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            std::panic::catch_unwind(|| {
                let mut h = Harness::new(ControllerConfig {
                    planted_bug: Some(PlantedBug::ElectOutsideIsr),
                    ..random_config(false)
                });
                let mut seen = Seen::default();
                for s in &steps {
                    h.run_step(s, &mut seen);
                }
            })
            .is_err()
        })
        .count();
    assert!(caught >= 5, "caught in {caught} of 50 histories");
}

#[test]
fn dynamic_broker_configs_are_checked_committed_and_kept_in_snapshots() {
    let mut h = harness();
    h.start(2);
    let set = |k: &str, v: &str| (k.to_string(), ConfigOp::Set(v.to_string()));
    // The cluster-wide default of a topic default Kafka lets change at run time.
    let (records, configs) = h
        .controller
        .alter_broker_configs(&h.state, None, &[set("log.retention.ms", "60000")], false)
        .unwrap();
    assert_eq!(
        configs.get("log.retention.ms").map(String::as_str),
        Some("60000")
    );
    h.commit(records);
    assert_eq!(h.state.dynamic.default, configs);
    // One broker's own, over it.
    let (records, _) = h
        .controller
        .alter_broker_configs(&h.state, Some(1), &[set("compression.type", "lz4")], false)
        .unwrap();
    h.commit(records);
    assert_eq!(
        h.state
            .dynamic
            .of(1)
            .get("compression.type")
            .map(String::as_str),
        Some("lz4")
    );
    assert!(h.state.dynamic.of(2).is_empty());
    // The same again changes nothing: no record.
    let (records, _) = h
        .controller
        .alter_broker_configs(&h.state, Some(1), &[set("compression.type", "lz4")], false)
        .unwrap();
    assert!(records.is_empty());
    // Refused: a read-only key, a key runnel takes only at start-up, a bad value, an unknown
    // key, a broker that is not registered.
    let refused = |h: &Harness, id: Option<i32>, k: &str, v: &str| {
        h.controller
            .alter_broker_configs(&h.state, id, &[set(k, v)], false)
            .unwrap_err()
    };
    for (k, v) in [
        ("log.retention.hours", "1"),
        ("num.partitions", "3"),
        ("log.retention.ms", "soon"),
        ("max.connections", "-1"),
        ("no.such.key", "1"),
    ] {
        let e = refused(&h, None, k, v);
        assert!(matches!(e, ControllerError::InvalidConfig(_)), "{k}: {e}");
    }
    // The controller's key is taken cluster-wide only.
    let e = refused(&h, Some(1), "unclean.leader.election.enable", "true");
    assert!(
        matches!(&e, ControllerError::InvalidConfig(m) if m.contains("cluster-wide")),
        "{e}"
    );
    // Connection limits are dynamic, per broker or cluster-wide.
    for id in [None, Some(1)] {
        h.controller
            .alter_broker_configs(&h.state, id, &[set("max.connections", "100")], false)
            .unwrap();
    }
    assert!(matches!(
        refused(&h, Some(9), "log.retention.ms", "1"),
        ControllerError::InvalidRequest(_)
    ));
    // They survive a snapshot (version 2); a state without any writes version 1.
    let back = ClusterState::from_snapshot(&h.state.to_snapshot()).unwrap();
    assert_eq!(back, h.state);
    assert_eq!(ClusterState::default().to_snapshot()[8..10], [0, 1]);
    assert_eq!(h.state.to_snapshot()[8..10], [0, 2]);
    // DELETE takes the default back; a broker's own configs all deleted leave no entry.
    let (records, _) = h
        .controller
        .alter_broker_configs(
            &h.state,
            Some(1),
            &[("compression.type".into(), ConfigOp::Delete)],
            false,
        )
        .unwrap();
    h.commit(records);
    assert!(h.state.dynamic.brokers.is_empty());
}
