//! Loading a broker's configuration and resolving topics' settings.

use super::*;

fn load(text: &str, overrides: &[&str]) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    BrokerConfig::load(Some(text), &overrides, &CliOverrides::default())
}

fn config(text: &str) -> BrokerConfig {
    load(text, &[]).unwrap_or_else(|e| panic!("{e}")).0
}

/// The key, value and reason of a BadValue error, checking the message names key and value.
fn bad_value(text: &str) -> (String, String, String) {
    match load(text, &[]) {
        Err(e @ ConfigError::BadValue { .. }) => {
            let message = e.to_string();
            let ConfigError::BadValue { key, value, reason } = e else {
                unreachable!()
            };
            assert!(
                message.contains(&key) && message.contains(&value),
                "{message}"
            );
            (key, value, reason)
        }
        other => panic!("{text}: {other:?}"),
    }
}

fn topic(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[test]
fn defaults_are_kafkas() {
    let (c, warnings) = BrokerConfig::load(None, &[], &CliOverrides::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.node_id, 0);
    assert_eq!(c.log_dir, PathBuf::from("./runnel-data"));
    assert_eq!(
        (c.listen.as_str(), c.advertised.as_str()),
        ("127.0.0.1:9092", "127.0.0.1:9092")
    );
    assert_eq!((c.num_partitions, c.default_replication_factor), (1, 1));
    assert!(c.auto_create_topics_enable && c.delete_topic_enable);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.message_max_bytes(), 1_048_588);
    assert_eq!(c.retention_check_interval_ms, 300_000);
    assert_eq!(c.flush_scheduler_interval_ms, 1_000);
    assert_eq!(c.offset_checkpoint_interval_ms, 60_000);
    assert_eq!(c.start_offset_checkpoint_interval_ms, 60_000);
    assert_eq!(c.producer_id_expiration_ms, 86_400_000);
    assert_eq!(c.log_defaults, LogConfig::default());
    assert_eq!(c.log_defaults.segment_ms, 7 * DAY_MS);
    assert_eq!(c.log_defaults.retention_ms, 7 * DAY_MS);
    assert_eq!(c.background_intervals(), BackgroundIntervals::default());
    assert!(c.settings().is_empty() && c.non_default_settings().is_empty());
    let values = c.topic_values(&BTreeMap::new());
    let text = |k: &str| values[k].to_string();
    assert_eq!(text("cleanup.policy"), "delete");
    assert_eq!(text("compression.type"), "producer");
    assert_eq!(text("message.timestamp.type"), "CreateTime");
    assert_eq!(text("min.insync.replicas"), "1");
    assert_eq!(text("segment.jitter.ms"), "0");
    assert_eq!(text("file.delete.delay.ms"), "60000");
    assert_eq!(text("message.timestamp.after.max.ms"), "3600000");
    assert_eq!(text("unclean.leader.election.enable"), "false");
    assert_eq!(values.len(), 34);
}

#[test]
fn overrides_win_over_the_file_and_flags_over_both() {
    let file = "num.partitions=3\nlog.segment.bytes=1000\nlisteners=PLAINTEXT://127.0.0.1:1\n";
    let overrides = [
        "num.partitions=5".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:2".into(),
    ];
    let cli = CliOverrides {
        listen: Some("127.0.0.1:3".into()),
        advertised: Some("broker.example:4".into()),
        data_dir: Some("/var/lib/runnel".into()),
    };
    let (c, _) = BrokerConfig::load(Some(file), &overrides, &cli).unwrap();
    assert_eq!(c.num_partitions, 5);
    assert_eq!(c.log_defaults.segment_bytes, 1000);
    assert_eq!(c.listen, "127.0.0.1:3");
    assert_eq!(c.advertised, "broker.example:4");
    assert_eq!(c.log_dir, PathBuf::from("/var/lib/runnel"));
    assert_eq!(c.settings()["listeners"], "PLAINTEXT://127.0.0.1:3");
}

#[test]
fn retention_ms_wins_over_minutes_over_hours_wherever_they_are_set() {
    let retention = |text: &str, overrides: &[&str]| load(text, overrides).unwrap().0;
    let ms = |c: BrokerConfig| c.log_defaults.retention_ms;
    assert_eq!(ms(retention("log.retention.hours=1", &[])), 3_600_000);
    assert_eq!(
        ms(retention(
            "log.retention.hours=1\nlog.retention.minutes=2",
            &[]
        )),
        120_000
    );
    let all = "log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=3";
    assert_eq!(ms(retention(all, &[])), 3);
    // Precedence is by key, not by where it was set: a later hours does not beat ms.
    assert_eq!(
        ms(retention("log.retention.ms=3", &["log.retention.hours=5"])),
        3
    );
    assert_eq!(
        ms(retention(
            "log.retention.hours=5",
            &["log.retention.minutes=1"]
        )),
        60_000
    );
    // -1 in any unit means no limit.
    assert_eq!(ms(retention("log.retention.hours=-1", &[])), -1);
    assert_eq!(
        ms(retention("log.retention.ms=-1\nlog.retention.hours=1", &[])),
        -1
    );
    let (key, _, reason) = bad_value("log.retention.minutes=-2");
    assert_eq!(
        (key.as_str(), reason.as_str()),
        (
            "log.retention.minutes",
            "must be -1 (no limit) or at least 0"
        )
    );
}

#[test]
fn roll_ms_wins_over_roll_hours() {
    assert_eq!(
        config("log.roll.hours=2").log_defaults.segment_ms,
        7_200_000
    );
    assert_eq!(
        config("log.roll.hours=2\nlog.roll.ms=5")
            .log_defaults
            .segment_ms,
        5
    );
    let jitter = config("log.roll.jitter.hours=1").topic_values(&BTreeMap::new());
    assert_eq!(jitter["segment.jitter.ms"], Value::Int(3_600_000));
}

#[test]
fn an_unknown_key_stops_the_broker_with_its_name() {
    let err = load("num.partitions=1\nlog.segmnet.bytes=1\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown broker configuration key \"log.segmnet.bytes\""
    );
    let err = load("", &["no.such.key=1"]).unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "no.such.key"));
    let err = load("retention.ms=5", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("the broker key is log.retention.ms"),
        "{err}"
    );
}

#[test]
fn bad_values_name_key_value_and_reason() {
    let cases = [
        (
            "log.segment.bytes=big",
            "log.segment.bytes",
            "big",
            "not a whole number",
        ),
        (
            "log.segment.bytes=13",
            "log.segment.bytes",
            "13",
            "at least 14",
        ),
        (
            "num.partitions=2147483648",
            "num.partitions",
            "2147483648",
            "out of range for an int",
        ),
        (
            "default.replication.factor=40000",
            "default.replication.factor",
            "40000",
            "between",
        ),
        (
            "delete.topic.enable=yes",
            "delete.topic.enable",
            "yes",
            "true or false",
        ),
        (
            "log.cleanup.policy=compact",
            "log.cleanup.policy",
            "compact",
            "compaction is not",
        ),
        (
            "log.cleanup.policy=delete,compact",
            "log.cleanup.policy",
            "delete,compact",
            "compaction",
        ),
        (
            "compression.type=brotli",
            "compression.type",
            "brotli",
            "must be one of",
        ),
        (
            "log.message.timestamp.type=AppendTime",
            "log.message.timestamp.type",
            "AppendTime",
            "must be one of",
        ),
        (
            "compression.gzip.level=10",
            "compression.gzip.level",
            "10",
            "1 to 9",
        ),
        (
            "listeners=SSL://:9093",
            "listeners",
            "SSL://:9093",
            "only PLAINTEXT",
        ),
        (
            "listeners=localhost:9092",
            "listeners",
            "localhost:9092",
            "NAME://HOST:PORT",
        ),
        ("log.dirs=/a,/b", "log.dirs", "/a,/b", "exactly one"),
        (
            "node.id=1\nbroker.id=2",
            "broker.id",
            "2",
            "must equal node.id (1)",
        ),
        (
            "min.insync.replicas=0",
            "min.insync.replicas",
            "0",
            "at least 1",
        ),
        (
            "log.flush.interval.messages=0",
            "log.flush.interval.messages",
            "0",
            "at least 1",
        ),
    ];
    for (text, key, value, reason) in cases {
        let got = bad_value(text);
        assert_eq!((got.0.as_str(), got.1.as_str()), (key, value), "{text}");
        assert!(got.2.contains(reason), "{text}: {}", got.2);
    }
}

#[test]
fn malformed_overrides_and_flags_are_errors() {
    assert!(matches!(
        load("", &["num.partitions"]),
        Err(ConfigError::BadOverride { .. })
    ));
    let cli = CliOverrides {
        listen: Some("no-port".into()),
        ..CliOverrides::default()
    };
    let err = BrokerConfig::load(None, &[], &cli).unwrap_err();
    assert_eq!(err.to_string(), "--listen \"no-port\": expected HOST:PORT");
    let cli = CliOverrides {
        data_dir: Some("/a,b".into()),
        ..CliOverrides::default()
    };
    let err = BrokerConfig::load(None, &[], &cli).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::BadFlag {
                flag: "data-dir",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn ignored_kafka_keys_are_warnings_not_errors() {
    let (c, warnings) = load(
        "num.io.threads=8\nzookeeper.connect=zk:2181\nnum.partitions=2",
        &[],
    )
    .unwrap();
    assert_eq!(c.num_partitions, 2);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("ignoring num.io.threads=8: "),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("zookeeper.connect=zk:2181"),
        "{warnings:?}"
    );
    assert!(c.settings().is_empty() || !c.settings().contains_key("num.io.threads"));
}

#[test]
fn a_repeated_key_warns_and_the_last_value_wins() {
    let (c, warnings) = load("num.partitions=2\nnum.partitions=4\n", &[]).unwrap();
    assert_eq!(c.num_partitions, 4);
    assert_eq!(
        warnings,
        ["line 2: num.partitions is set again; the last value wins"]
    );
}

#[test]
fn comments_blank_lines_and_separators() {
    let text = "# runnel\n\n! old-style comment\n   \nnum.partitions : 6   \n  log.dirs /data/r \n\
                auto.create.topics.enable=FALSE\nlog.cleanup.policy = delete ,\n";
    let c = config(text);
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.log_dir, PathBuf::from("/data/r"));
    assert!(!c.auto_create_topics_enable);
    assert_eq!(c.settings()["auto.create.topics.enable"], "false");
    assert_eq!(c.settings()["log.cleanup.policy"], "delete");
}

/// Kafka 3.x/4.x `config/kraft/server.properties`, as shipped, with a continuation added.
const KRAFT: &str = r#"# Licensed to the Apache Software Foundation (ASF) under one or more
# contributor license agreements.
#
# This configuration file is intended for use in KRaft mode.

############################# Server Basics #############################

# The role of this server. Setting this puts us in KRaft mode
process.roles=broker,controller

# The node id associated with this instance's roles
node.id=1

# The connect string for the controller quorum
controller.quorum.voters=1@localhost:9093
controller.quorum.bootstrap.servers=localhost:9093

############################# Socket Server Settings #############################

listeners=PLAINTEXT://:9092,CONTROLLER://:9093

# Name of listener used for communication between brokers.
inter.broker.listener.name=PLAINTEXT

advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093

controller.listener.names=CONTROLLER

listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,\
    SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL

num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600

############################# Log Basics #############################

log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1

############################# Internal Topic Settings  #############################
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1

############################# Log Flush Policy #############################
#log.flush.interval.messages=10000
#log.flush.interval.ms=1000

############################# Log Retention Policy #############################
log.retention.hours=168
#log.retention.bytes=1073741824
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"#;

#[test]
fn a_real_kafka_kraft_server_properties_starts_a_broker() {
    let (c, warnings) = load(KRAFT, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listen, "0.0.0.0:9092");
    assert_eq!(c.advertised, "localhost:9092");
    assert_eq!(c.log_dir, PathBuf::from("/tmp/kraft-combined-logs"));
    assert_eq!(c.log_defaults, LogConfig::default());
    // Twelve ignored keys; the quorum's keys are read.
    assert_eq!(warnings.len(), 12, "{warnings:#?}");
    let mentions = |s: &str| warnings.iter().filter(|w| w.contains(s)).count();
    assert_eq!(mentions("CONTROLLER://"), 0);
    assert_eq!(mentions("process.roles"), 0);
    assert!(c.roles.broker && c.roles.controller);
    assert_eq!(c.controller_listen.as_deref(), Some("0.0.0.0:9093"));
    assert_eq!(
        c.quorum.voters,
        BTreeMap::from([(1, "localhost:9093".to_string())])
    );
    assert_eq!(mentions("SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL"), 1);
    assert_eq!(
        c.non_default_settings(),
        [
            (
                "advertised.listeners".to_string(),
                "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093".to_string()
            ),
            ("controller.quorum.voters".into(), "1@localhost:9093".into()),
            (
                "listeners".into(),
                "PLAINTEXT://:9092,CONTROLLER://:9093".into()
            ),
            ("log.dirs".into(), "/tmp/kraft-combined-logs".into()),
            ("node.id".into(), "1".into()),
            ("offsets.topic.replication.factor".into(), "1".into()),
        ]
    );
}

#[test]
fn controller_listener_names_decide_which_listeners_are_skipped() {
    let text = "controller.listener.names=QUORUM\nlisteners=QUORUM://:1,PLAINTEXT://h:2";
    assert_eq!(config(text).listen, "h:2");
    let (key, _, reason) =
        bad_value("listeners=PLAINTEXT://h:2,CONTROLLER://:1\ncontroller.listener.names=QUORUM");
    assert_eq!(key, "listeners");
    assert!(reason.contains("listener name CONTROLLER"), "{reason}");
}

#[test]
fn a_wildcard_listener_needs_an_advertised_address() {
    let err = load("listeners=PLAINTEXT://:9092", &[]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::NoAdvertisedAddress {
            listen: "0.0.0.0:9092".into()
        }
    );
    assert!(err.to_string().contains("advertised.listeners"), "{err}");
    assert!(load("listeners=PLAINTEXT://[::]:9092", &[]).is_err());
    let cli = CliOverrides {
        advertised: Some("10.0.0.5:9092".into()),
        ..Default::default()
    };
    let (c, _) = BrokerConfig::load(Some("listeners=PLAINTEXT://0.0.0.0:9092"), &[], &cli).unwrap();
    assert_eq!(
        (c.listen.as_str(), c.advertised.as_str()),
        ("0.0.0.0:9092", "10.0.0.5:9092")
    );
    let (key, _, reason) = bad_value("advertised.listeners=PLAINTEXT://0.0.0.0:9092");
    assert_eq!(key, "advertised.listeners");
    assert!(reason.contains("wildcard"), "{reason}");
    let (_, _, reason) = bad_value("advertised.listeners=PLAINTEXT://h:0");
    assert!(reason.contains("port 0"), "{reason}");
}

#[test]
fn ipv6_and_port_zero_listeners() {
    let c = config("listeners=PLAINTEXT://[::1]:0");
    assert_eq!(
        (c.listen.as_str(), c.advertised.as_str()),
        ("[::1]:0", "[::1]:0")
    );
    assert_eq!(config("log.dir=/old").log_dir, PathBuf::from("/old"));
    assert_eq!(
        config("log.dir=/old\nlog.dirs=/new").log_dir,
        PathBuf::from("/new")
    );
    assert_eq!(config("broker.id=7").node_id, 7);
}

#[test]
fn non_default_settings_leave_out_values_equal_to_the_default() {
    let c =
        config("num.partitions=1\nlog.retention.hours=168\nnum.partitions=1\nwrite.caching=TRUE");
    assert_eq!(
        c.non_default_settings(),
        [("write.caching".to_string(), "true".to_string())]
    );
    assert_eq!(c.settings().len(), 3);
    assert!(c.log_defaults.write_caching);
}

#[test]
fn topic_configs_are_validated_with_topic_names() {
    assert_eq!(validate_topic_config("retention.ms", "-1"), Ok(()));
    assert_eq!(validate_topic_config("cleanup.policy", " delete "), Ok(()));
    let err = validate_topic_config("log.retention.ms", "1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown topic configuration key \"log.retention.ms\" (log.retention.ms is a broker key; \
         the topic-level key is retention.ms)"
    );
    let err = validate_topic_config("num.partitions", "1").unwrap_err();
    assert!(err.to_string().contains("is a broker key)"), "{err}");
    let err = validate_topic_config("cleanup.policy", "compact").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"compact\" for configuration key cleanup.policy: compaction is not \
         supported: runnel only deletes old segments (cleanup.policy=delete)"
    );
    for (key, value) in [
        ("segment.bytes", "13"),
        ("segment.bytes", "2147483648"),
        ("retention.ms", "-2"),
        ("retention.ms", "seven days"),
        ("write.caching", "on"),
        ("message.timestamp.type", "AppendTime"),
        ("compression.type", "brotli"),
        ("compression.gzip.level", "0"),
        ("compression.zstd.level", "23"),
        ("min.insync.replicas", "0"),
        ("flush.messages", "0"),
    ] {
        match validate_topic_config(key, value) {
            Err(ConfigError::BadValue {
                key: k, value: v, ..
            }) => assert_eq!((k.as_str(), v.as_str()), (key, value)),
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    let configs = topic(&[("retention.ms", "1"), ("segment.bytes", "1")]);
    let err = validate_topic_configs(&configs).unwrap_err();
    assert!(matches!(err, ConfigError::BadValue { ref key, .. } if key == "segment.bytes"));
    assert_eq!(
        validate_topic_configs(&topic(&[("retention.ms", "1")])),
        Ok(())
    );
}

#[test]
fn a_topics_log_config_is_its_overrides_over_the_broker_defaults() {
    let c = config("log.retention.hours=1\nlog.segment.bytes=5000\nwrite.caching=true");
    let overrides = topic(&[
        ("segment.bytes", "2000"),
        ("flush.messages", "1"),
        ("write.caching", "false"),
        ("min.insync.replicas", "2"),
    ]);
    let log = c.topic_log_config(&overrides);
    let expected = LogConfig {
        segment_bytes: 2000,
        retention_ms: 3_600_000,
        flush_messages: 1,
        write_caching: false,
        ..LogConfig::default()
    };
    assert_eq!(log, expected);
    assert_eq!(c.topic_min_insync_replicas(&overrides), 2);
    assert_eq!(c.topic_min_insync_replicas(&BTreeMap::new()), 1);
    let defaults = c.topic_log_config(&BTreeMap::new());
    assert_eq!(defaults, c.log_defaults);
    assert_eq!(
        (defaults.segment_bytes, defaults.write_caching),
        (5000, true)
    );
    // An override that does not check out (an older or newer runnel wrote it) is skipped.
    let stale = topic(&[
        ("segment.bytes", "oops"),
        ("no.such.key", "1"),
        ("retention.ms", "9"),
    ]);
    let log = c.topic_log_config(&stale);
    assert_eq!((log.segment_bytes, log.retention_ms), (5000, 9));
}

#[test]
fn quorum_settings_are_checked_as_kafka_checks_them() {
    let c = config(
        "node.id=2\ncontroller.quorum.voters=1@h1:9093, 2@h2:9093,3@h3:9093\n\
         listeners=PLAINTEXT://h2:9092,CONTROLLER://h2:9093",
    );
    assert_eq!(c.quorum.voters.len(), 3);
    assert_eq!(c.quorum.voters[&3], "h3:9093");
    assert_eq!(c.controller_listen.as_deref(), Some("h2:9093"));
    assert_eq!(
        (c.quorum.election_timeout_ms, c.quorum.fetch_timeout_ms),
        (1000, 2000)
    );
    assert_eq!(
        (c.broker_heartbeat_interval_ms, c.broker_session_timeout_ms),
        (2000, 9000)
    );
    // A bare broker is a quorum of one with no controller port.
    let c = config("");
    assert!(c.quorum.voters.is_empty() && c.controller_listen.is_none());

    let cases = [
        (
            "node.id=2\ncontroller.quorum.voters=1@h1:9093,2@h2:9093\nlisteners=PLAINTEXT://h2:9092",
            "listeners",
            "controller listener",
        ),
        (
            "node.id=5\ncontroller.quorum.voters=1@h1:9093",
            "controller.quorum.voters",
            "not a voter",
        ),
        (
            "process.roles=broker\nnode.id=1\ncontroller.quorum.voters=1@h1:9093",
            "controller.quorum.voters",
            "no controller",
        ),
        (
            "process.roles=broker",
            "controller.quorum.voters",
            "needs the quorum's voters",
        ),
        (
            "controller.quorum.voters=1@h1",
            "controller.quorum.voters",
            "ID@HOST:PORT",
        ),
        (
            "controller.quorum.voters=0@h1:1,0@h2:2",
            "controller.quorum.voters",
            "twice",
        ),
        ("process.roles=zookeeper", "process.roles", "not a role"),
        ("cluster.id=short", "cluster.id", "22 characters"),
    ];
    for (text, key, why) in cases {
        let (k, _, reason) = bad_value(text);
        assert_eq!(k, key, "{text}");
        assert!(reason.contains(why), "{text}: {reason}");
    }
    // A broker-only node is an observer; a controller-only node needs no client listener.
    let c = config("process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@h1:9093");
    assert!(c.roles.broker && !c.roles.controller);
    let c = config(
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@h1:9093,2@h2:9093\n\
         listeners=CONTROLLER://h1:9093",
    );
    assert!(!c.roles.broker && c.controller_listen.as_deref() == Some("h1:9093"));
    assert!(c.listen.is_empty());
}

#[test]
fn the_listen_flag_replaces_only_the_plaintext_listener() {
    let cli = CliOverrides {
        listen: Some("127.0.0.1:0".into()),
        ..CliOverrides::default()
    };
    let text = "node.id=1\ncontroller.quorum.voters=1@h:9093,2@h2:9093\n\
                listeners=PLAINTEXT://:9092,CONTROLLER://h:9093\nadvertised.listeners=PLAINTEXT://h:9092";
    let (c, _) = BrokerConfig::load(Some(text), &[], &cli).unwrap();
    assert_eq!(c.listen, "127.0.0.1:0");
    assert_eq!(c.controller_listen.as_deref(), Some("h:9093"));
}

/// A key runnel accepts only when off is refused when on, saying why; at the off value it is
/// ignored with a warning, as every Kafka key runnel does not use.
#[test]
fn keys_for_features_runnel_lacks_are_accepted_only_off() {
    let (_, warnings) = load("authorizer.class.name=\nssl.keystore.type=PKCS12\n", &[]).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let (key, _, reason) =
        bad_value("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    assert_eq!(key, "authorizer.class.name");
    assert!(reason.contains("no authorizer"), "{reason}");
    let (key, _, _) = bad_value("remote.log.storage.system.enable=true");
    assert_eq!(key, "remote.log.storage.system.enable");
    let (_, _, reason) = bad_value("max.connections.per.ip.overrides=host-without-count");
    assert!(reason.contains("HOST:COUNT"), "{reason}");
}
