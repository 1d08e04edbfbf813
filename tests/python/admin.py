"""Creates a topic with confluent-kafka's admin client.

usage: admin.py BOOTSTRAP TOPIC PARTITIONS [key=value ...]
"""
import sys
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
configs = dict(kv.split("=", 1) for kv in sys.argv[4:])
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)])[topic].result(timeout=30)
print("created", topic)
