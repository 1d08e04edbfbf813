"""Topic record rules with real clients: compression.type recompression and LogAppendTime
read back by librdkafka and kafka-python, the Kafka 4 timestamp bound refusing a record from
the future, and kafka-python's admin creating a topic with every implemented key.

usage: record_rules.py BOOTSTRAP PREFIX
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

bootstrap, prefix = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
N = 100


def create(name, config):
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config)])[
        name
    ].result(timeout=30)


def produce(topic, codec, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "compression.type": codec, "linger.ms": 5})
    errors = []
    for i in range(N):
        p.produce(topic, key=f"k{i}".encode(), value=f"{topic} value {i} ".encode() * 8,
                  on_delivery=lambda err, msg: err and errors.append(err), **extra)
    assert p.flush(60) == 0
    return errors


def consume(topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-g", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out, stop = [], time.time() + 60
    while len(out) < n and time.time() < stop:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(m)
    c.close()
    assert len(out) == n, f"{topic}: read {len(out)} of {n}"
    return out


# Each codec the broker recompresses to, from a producer using another one; LogAppendTime.
for target, sent in [("gzip", "lz4"), ("snappy", "none"), ("lz4", "zstd"), ("zstd", "gzip"),
                     ("uncompressed", "snappy")]:
    topic = f"{prefix}-{target}"
    create(topic, {"compression.type": target, "message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000) - 5000
    assert produce(topic, sent) == []
    after = int(time.time() * 1000) + 5000
    msgs = consume(topic, N)
    assert [m.key() for m in msgs] == [f"k{i}".encode() for i in range(N)], topic
    for m in msgs:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= after, (topic, kind, ts)
    print(f"{topic}: {sent} recompressed to {target}, {N} records read back with LogAppendTime")

# Kafka 4's message.timestamp.after.max.ms (an hour): a record two hours ahead is refused.
create(f"{prefix}-future", {})
errors = produce(f"{prefix}-future", "none", timestamp=int(time.time() * 1000) + 2 * 3600 * 1000)
# The broker answers INVALID_TIMESTAMP naming every record in record_errors (KIP-467), which
# librdkafka reports per message as INVALID_RECORD.
refused = (KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_RECORD)
assert len(errors) == N and all(e.code() in refused for e in errors), errors[:3]
print(f"future timestamps refused: {errors[0].name()}")

# kafka-python: reads a broker-gzipped, LogAppendTime topic, and creates a topic with every
# implemented key; compaction and tiered storage are refused.
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic as KPTopic
from kafka.errors import InvalidConfigurationError

kc = KafkaConsumer(f"{prefix}-gzip", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                   consumer_timeout_ms=10000)
got = [m for _, m in zip(range(N), kc)]
kc.close()
assert len(got) == N and all(m.timestamp_type == 1 for m in got), len(got)

every = {
    "retention.ms": "86400000", "retention.bytes": "1073741824", "segment.bytes": "1048576",
    "segment.ms": "3600000", "segment.index.bytes": "65536", "index.interval.bytes": "8192",
    "flush.messages": "1000", "flush.ms": "1000", "max.message.bytes": "2097152",
    "min.insync.replicas": "1", "unclean.leader.election.enable": "false",
    "compression.type": "zstd", "compression.gzip.level": "5", "compression.lz4.level": "9",
    "compression.zstd.level": "3", "message.timestamp.type": "CreateTime",
    "message.timestamp.before.max.ms": "86400000", "message.timestamp.after.max.ms": "60000",
    "file.delete.delay.ms": "1000", "preallocate": "false", "segment.jitter.ms": "0",
    "delete.retention.ms": "3600000", "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "86400000", "min.cleanable.dirty.ratio": "0.3",
    "local.retention.ms": "-2", "local.retention.bytes": "-2", "remote.storage.enable": "false",
    "cleanup.policy": "delete", "write.caching": "false",
}
kp = KafkaAdminClient(bootstrap_servers=bootstrap)
kp.create_topics([KPTopic(f"{prefix}-every", 1, 1, topic_configs=every)])
res = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}-every")
described = admin.describe_configs([res])[res].result(timeout=30)
for k, v in every.items():
    assert described[k].value == v, (k, described[k].value, v)
    assert described[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, k
for bad in ({"cleanup.policy": "compact"}, {"remote.storage.enable": "true"}):
    try:
        kp.create_topics([KPTopic(f"{prefix}-bad", 1, 1, topic_configs=bad)])
    except InvalidConfigurationError:
        pass
    else:
        raise AssertionError(f"{bad} was accepted")
kp.close()
print("record rules ok")
