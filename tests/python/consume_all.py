"""Reads every partition of TOPIC from the beginning to its end offset and prints
"<partition> <offset> <value>" per record.

usage: consume_all.py BOOTSTRAP TOPIC
"""
import sys
import time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

bootstrap, topic = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
md = c.list_topics(topic, timeout=30)
parts = sorted(md.topics[topic].partitions)
ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
pos = {p: 0 for p in parts}
deadline = time.time() + 120
while any(pos[p] < ends[p] for p in parts) and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        raise SystemExit(f"consume error: {m.error()}")
    print(m.partition(), m.offset(), m.value().decode())
    pos[m.partition()] = m.offset() + 1
missing = {p: (pos[p], ends[p]) for p in parts if pos[p] < ends[p]}
assert not missing, f"did not reach the end offsets: {missing}"
c.close()
