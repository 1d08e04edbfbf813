"""Tails every partition of TOPIC from the beginning while its leaders fail, with librdkafka's
leader-epoch validation (KIP-320: after a leader change it asks the new leader with
OffsetForLeaderEpoch whether its position is still on the log). Prints "<partition> <offset>
<value>" per record, flushed as it goes. Once the file STOP exists, it reads on to the end
offsets and exits. librdkafka's protocol debug log goes to stderr, where the test counts the
OffsetForLeaderEpoch requests.

usage: consume_live.py BOOTSTRAP TOPIC STOP
"""
import os
import sys
import time
from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

bootstrap, topic, stop = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "unused",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
    "debug": "protocol",
})
md = c.list_topics(topic, timeout=30)
parts = sorted(md.topics[topic].partitions)
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
pos = {p: 0 for p in parts}
ends = None
deadline = None
while True:
    if ends is None and os.path.exists(stop):
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
        deadline = time.time() + 120
    if ends is not None and (all(pos[p] >= ends[p] for p in parts) or time.time() > deadline):
        break
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        # Leaders going away are transient for a consumer; a truncation of what it read is not.
        if m.error().code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            continue
        raise SystemExit(f"consume error: {m.error()}")
    print(m.partition(), m.offset(), m.value().decode(), flush=True)
    pos[m.partition()] = m.offset() + 1
missing = {p: (pos[p], ends[p]) for p in parts if pos[p] < ends[p]}
assert not missing, f"did not reach the end offsets: {missing}"
c.close()
