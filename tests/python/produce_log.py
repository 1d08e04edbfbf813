"""Produces RECORDS keyed records, paced, and logs every delivery report as it arrives, so a
test can restart or kill the broker meanwhile and then check what was acknowledged.

usage: produce_log.py CLIENT BOOTSTRAP TOPIC RECORDS OUTFILE [idempotent|plain] [ACKS]
  CLIENT: confluent | kafka-python
Each line of OUTFILE: "ok <i> <partition> <offset>" or "fail <i> <error>". The last line is
"done". Values are "value-<i>", keys "key-<i % 7>".
"""
import sys
import time

client, bootstrap, topic, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
idempotent = len(sys.argv) > 6 and sys.argv[6] == "idempotent"
acks = sys.argv[7] if len(sys.argv) > 7 else "all"
log = open(out, "w", buffering=1)

if client == "confluent":
    from confluent_kafka import Producer
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "enable.idempotence": idempotent,
        "linger.ms": 2,
        "message.timeout.ms": 120000,
        "reconnect.backoff.max.ms": 500,
    }
    if not idempotent:
        conf["retries"] = 0  # a retried send could be written twice: no retries, so no doubt
    p = Producer(conf)

    def report(i):
        def cb(err, msg):
            if err:
                log.write(f"fail {i} {err.name()}\n")
            else:
                log.write(f"ok {i} {msg.partition()} {msg.offset()}\n")
        return cb

    for i in range(n):
        while True:
            try:
                p.produce(topic, key=f"key-{i % 7}", value=f"value-{i}", on_delivery=report(i))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i % 50 == 0:
            time.sleep(0.01)
    left = p.flush(180)
    assert left == 0, f"{left} records never reported"
else:
    from kafka import KafkaProducer
    if idempotent:
        # KafkaProducer's own defaults: idempotence on, acks=all, retries.
        kw = dict(bootstrap_servers=bootstrap)
    else:
        kw = dict(bootstrap_servers=bootstrap, acks=-1 if acks == "all" else int(acks),
                  enable_idempotence=False, linger_ms=2, retries=0)
    p = KafkaProducer(**kw)
    pending = []
    for i in range(n):
        f = p.send(topic, key=f"key-{i % 7}".encode(), value=f"value-{i}".encode())
        pending.append((i, f))
        if i % 50 == 0:
            time.sleep(0.01)
    p.flush(timeout=180)
    for i, f in pending:
        try:
            md = f.get(timeout=180)
            log.write(f"ok {i} {md.partition} {md.offset}\n")
        except Exception as e:
            log.write(f"fail {i} {type(e).__name__}\n")
    p.close()
log.write("done\n")
