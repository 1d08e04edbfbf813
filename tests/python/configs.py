"""Changes a live topic's configs with both Python admin clients, as kafka-configs does.

confluent-kafka: IncrementalAlterConfigs (SET, DELETE, APPEND), validate_only, and the refusals
Kafka gives (a bad value, compaction on a client topic); describe_configs shows the dynamic
values; describe_topics with include_authorized_operations lists every operation; the broker
describes every Kafka 4.1 key, those it accepts with no effect included; a broker's dynamic
config reaches a live topic and is described with its source.
kafka-python: IncrementalAlterConfigs (its default where offered) and AlterConfigs.

usage: configs.py BOOTSTRAP TOPIC
"""
import sys

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)


def alter(entries, validate_only=False):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=30)


def described():
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=30)


def entry(name, value=None, op=AlterConfigOpType.SET):
    return ConfigEntry(name, value, incremental_operation=op)


# validate_only: accepted, nothing changes.
alter([entry("retention.ms", "1000")], validate_only=True)
assert described()["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value or \
    described()["retention.ms"].value != "1000", "validate_only changed the topic"

alter([entry("retention.ms", "1000"), entry("segment.bytes", "1048576")])
c = described()
assert c["retention.ms"].value == "1000", c["retention.ms"]
assert c["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, c["retention.ms"].source
assert c["segment.bytes"].value == "1048576"

for bad in ([entry("retention.ms", "soon")], [entry("cleanup.policy", "compact", AlterConfigOpType.APPEND)]):
    try:
        alter(bad)
    except KafkaException as e:
        assert e.args[0].name() == "INVALID_CONFIG", e
    else:
        raise AssertionError(f"{bad} was accepted")

alter([entry("retention.ms", op=AlterConfigOpType.DELETE)])
assert described()["retention.ms"].value != "1000"

# Every operation a topic supports is authorized (there is no authorizer).
d = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(timeout=30)
ops = {op.name for op in d.authorized_operations}
assert {"READ", "WRITE", "DESCRIBE", "ALTER_CONFIGS", "DESCRIBE_CONFIGS"} <= ops, ops

# The broker describes Kafka's stock keys it accepts with no effect: their defaults, and
# read-only where Kafka has them read-only (num.io.threads is dynamic in Kafka).
node = next(iter(admin.list_topics(timeout=30).brokers))
res = ConfigResource(ConfigResource.Type.BROKER, str(node))
b = admin.describe_configs([res])[res].result(timeout=30)
assert b["num.io.threads"].value == "8" and not b["num.io.threads"].is_read_only, b["num.io.threads"]
assert b["num.io.threads"].source == ConfigSource.DEFAULT_CONFIG.value
assert b["queued.max.requests"].is_read_only, b["queued.max.requests"]
assert b["log.retention.hours"].value == "168", b["log.retention.hours"]
assert len(b) >= 316, len(b)

# Dynamic broker configs, as kafka-configs --entity-type brokers --entity-name N sets them: a
# broker's own value of a topic default reaches the topic, the sources say where it comes
# from, and a read-only key is refused. (confluent-kafka cannot name the cluster-wide default,
# resource "": kafka_clients.rs sets that one with runnel configs --entity-default.)
def alter_broker(name, entries):
    r = ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=entries)
    return admin.incremental_alter_configs([r])[r].result(timeout=30)


alter_broker(str(node), [entry("log.retention.bytes", "8388608")])
# A Kafka-dynamic key runnel takes with no effect is taken and described as set.
alter_broker(str(node), [entry("num.io.threads", "16")])
b = admin.describe_configs([res])[res].result(timeout=30)
assert b["num.io.threads"].value == "16", b["num.io.threads"]
assert b["num.io.threads"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
b = admin.describe_configs([res])[res].result(timeout=30)
assert b["log.retention.bytes"].value == "8388608", b["log.retention.bytes"]
assert b["log.retention.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
assert not b["log.retention.bytes"].is_read_only
c = described()
assert c["retention.bytes"].value == "8388608", c["retention.bytes"]
assert c["retention.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value, c["retention.bytes"]
try:
    alter_broker(str(node), [entry("num.partitions", "3")])
    raise AssertionError("a read-only broker key was altered")
except KafkaException as e:
    assert e.args[0].code() == 40 and "read-only" in e.args[0].str(), e  # INVALID_CONFIG
alter_broker(str(node), [entry("log.retention.bytes", op=AlterConfigOpType.DELETE)])
assert described()["retention.bytes"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value

# kafka-python 3 alters incrementally where the broker offers it: SET and DELETE.
from kafka.admin import ConfigResource as KPResource, ConfigResourceType, KafkaAdminClient

kp = KafkaAdminClient(bootstrap_servers=bootstrap)
kp.alter_configs([KPResource(ConfigResourceType.TOPIC, topic,
                             configs={"flush.messages": "1", "segment.bytes": ("DELETE", None)})])
c = described()
assert c["flush.messages"].value == "1", c["flush.messages"]
assert c["flush.messages"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
assert c["segment.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value, c["segment.bytes"]
# Its whole-set AlterConfigs: only what it names remains an override.
kp.alter_configs([KPResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "5000"})],
                 incremental=False)
c = described()
assert c["retention.ms"].value == "5000", c["retention.ms"]
kp.close()
print("configs ok")
