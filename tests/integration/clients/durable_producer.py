"""Idempotent acks=all producer for the crash test: sends COUNT records (value = sequence
number) and writes "partition offset value" for every acknowledged one, flushed at once,
so the test knows exactly what the broker acknowledged before it was killed.

  durable_producer.py BOOTSTRAP TOPIC COUNT ACKED_FILE
"""

import sys
import time

from confluent_kafka import Producer

bootstrap, topic, count, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
errors = []
out = open(path, "w", buffering=1)


def on_delivery(err, msg):
    if err:
        errors.append(str(err))
    else:
        out.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        out.flush()


p = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    "message.timeout.ms": 120000,
    "reconnect.backoff.max.ms": 500,
})
for i in range(count):
    while True:
        try:
            p.produce(topic, key=str(i % 30).encode(), value=str(i).encode(), on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if i % 200 == 0:
        # pace the producer so the kill lands mid-stream
        time.sleep(0.005)
left = p.flush(150)
print(f"left={left} errors={len(errors)} {errors[:3]}", file=sys.stderr)
sys.exit(0 if left == 0 and not errors else 1)
