"""One client library's side of the produce / group-consume / resume scenario.

Run with the interpreter that has the library (a virtualenv or Debian's python3):

  scenario.py LIB produce BOOTSTRAP TOPIC --count N --tag T [--create]
  scenario.py LIB consume BOOTSTRAP TOPIC --group G --count N [--members 2]

LIB is confluent, kafka-python or aiokafka. Prints one JSON object on stdout.
Consumers commit after every poll and when partitions are revoked, and only start
counting once every member has partitions, so records are neither lost nor repeated.
"""

import argparse
import json
import sys
import threading
import time

PARTITIONS = 3


def record_fields(i, tag):
    key = f"{tag}-{i}".encode()
    value = f"value-{tag}-{i}".encode()
    headers = [("idx", str(i).encode()), ("tag", tag.encode())]
    return key, value, headers


class Shared:
    """State the consumer group members share: the barrier and the results."""

    def __init__(self, members, expected):
        self.lock = threading.Lock()
        self.assigned = [False] * members
        self.records = [[] for _ in range(members)]
        self.expected = expected
        self.reached_at = None

    def ready(self):
        with self.lock:
            return all(self.assigned)

    def mark_assigned(self, idx):
        with self.lock:
            self.assigned[idx] = True

    def add(self, idx, recs):
        with self.lock:
            self.records[idx].extend(recs)
            total = sum(len(r) for r in self.records)
            if total >= self.expected and self.reached_at is None:
                self.reached_at = time.time()

    def done(self, linger=2.0):
        # Keep polling a little after reaching the count, to catch duplicates.
        with self.lock:
            return self.reached_at is not None and time.time() - self.reached_at > linger


def header_dict(headers):
    return {k: (v.decode() if v is not None else None) for k, v in (headers or [])}


# ---------------------------------------------------------------- confluent-kafka

def confluent_produce(a):
    from confluent_kafka import Producer
    if a.create:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        for f in admin.create_topics([NewTopic(a.topic, PARTITIONS, 1)]).values():
            f.result(30)
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    acked = [0]

    def cb(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked[0] += 1

    for i in range(a.start, a.start + a.count):
        key, value, headers = record_fields(i, a.tag)
        while True:
            try:
                p.produce(a.topic, key=key, value=value, headers=headers, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(60)
    return {"acked": acked[0], "errors": errors[:5], "unflushed": remaining}


def confluent_member(a, idx, shared):
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    c = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
    })

    def on_revoke(consumer, partitions):
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing consumed yet

    c.subscribe([a.topic], on_revoke=on_revoke)
    deadline = time.time() + a.timeout
    while not shared.done() and time.time() < deadline:
        msgs = [m for m in c.consume(500, 0.5) if m.error() is None]
        if not shared.ready():
            if c.assignment():
                shared.mark_assigned(idx)
            firsts = {}
            for m in msgs:
                firsts.setdefault(m.partition(), m.offset())
            for p, off in firsts.items():
                c.seek(TopicPartition(a.topic, p, off))
            continue
        if msgs:
            shared.add(idx, [(m.partition(), m.offset(), m.key().decode(), m.value().decode(),
                              header_dict(m.headers())) for m in msgs])
            c.commit(asynchronous=False)
    c.close()


# ---------------------------------------------------------------- kafka-python

def kafka_python_produce(a):
    from kafka import KafkaProducer
    if a.create:
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
        admin.create_topics([NewTopic(a.topic, PARTITIONS, 1)])
        admin.close()
    p = KafkaProducer(bootstrap_servers=a.bootstrap, acks="all", linger_ms=5)
    futures = []
    for i in range(a.start, a.start + a.count):
        key, value, headers = record_fields(i, a.tag)
        futures.append(p.send(a.topic, key=key, value=value, headers=headers))
    p.flush(60)
    errors, acked = [], 0
    for f in futures:
        try:
            f.get(timeout=30)
            acked += 1
        except Exception as e:  # noqa: BLE001 - report every failure kind
            errors.append(repr(e))
    p.close()
    return {"acked": acked, "errors": errors[:5], "unflushed": 0}


def kafka_python_member(a, idx, shared):
    from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=10000)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            if revoked:
                try:
                    c.commit()
                except Exception:  # noqa: BLE001 - nothing to commit yet
                    pass

        def on_partitions_assigned(self, assigned):
            pass

    c.subscribe([a.topic], listener=Listener())
    deadline = time.time() + a.timeout
    while not shared.done() and time.time() < deadline:
        batches = c.poll(timeout_ms=500, max_records=500)
        msgs = [m for recs in batches.values() for m in recs]
        if not shared.ready():
            if c.assignment():
                shared.mark_assigned(idx)
            for tp, recs in batches.items():
                if recs:
                    c.seek(TopicPartition(tp.topic, tp.partition), recs[0].offset)
            continue
        if msgs:
            shared.add(idx, [(m.partition, m.offset, m.key.decode(), m.value.decode(),
                              header_dict(m.headers)) for m in msgs])
            c.commit()
    c.close()


# ---------------------------------------------------------------- aiokafka

def aiokafka_produce(a):
    import asyncio

    async def run():
        from aiokafka import AIOKafkaProducer
        if a.create:
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic
            admin = AIOKafkaAdminClient(bootstrap_servers=a.bootstrap)
            await admin.start()
            await admin.create_topics([NewTopic(a.topic, PARTITIONS, 1)])
            await admin.close()
        p = AIOKafkaProducer(bootstrap_servers=a.bootstrap, acks="all", linger_ms=5)
        await p.start()
        futures = []
        for i in range(a.start, a.start + a.count):
            key, value, headers = record_fields(i, a.tag)
            futures.append(await p.send(a.topic, key=key, value=value, headers=headers))
        results = await asyncio.gather(*futures, return_exceptions=True)
        await p.stop()
        errors = [repr(r) for r in results if isinstance(r, Exception)]
        return {"acked": len(results) - len(errors), "errors": errors[:5], "unflushed": 0}

    return asyncio.run(run())


def aiokafka_consume(a, shared):
    import asyncio

    async def member(idx):
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
        c = AIOKafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=10000)

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                if revoked:
                    try:
                        await c.commit()
                    except Exception:  # noqa: BLE001 - nothing to commit yet
                        pass

            async def on_partitions_assigned(self, assigned):
                pass

        await c.start()
        c.subscribe([a.topic], listener=Listener())
        deadline = time.time() + a.timeout
        while not shared.done() and time.time() < deadline:
            batches = await c.getmany(timeout_ms=500, max_records=500)
            msgs = [m for recs in batches.values() for m in recs]
            if not shared.ready():
                if c.assignment():
                    shared.mark_assigned(idx)
                for tp, recs in batches.items():
                    if recs:
                        c.seek(TopicPartition(tp.topic, tp.partition), recs[0].offset)
                continue
            if msgs:
                shared.add(idx, [(m.partition, m.offset, m.key.decode(), m.value.decode(),
                                  header_dict(m.headers)) for m in msgs])
                await c.commit()
        await c.stop()

    async def run():
        await asyncio.gather(*(member(i) for i in range(a.members)))

    asyncio.run(run())


# ---------------------------------------------------------------- driver

def consume(a):
    shared = Shared(a.members, a.count)
    if a.lib == "aiokafka":
        aiokafka_consume(a, shared)
    else:
        target = confluent_member if a.lib == "confluent" else kafka_python_member
        threads = [threading.Thread(target=target, args=(a, i, shared)) for i in range(a.members)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"members": [len(r) for r in shared.records], "records": [r for m in shared.records for r in m]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=["confluent", "kafka-python", "aiokafka"])
    ap.add_argument("phase", choices=["produce", "consume"])
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--group", default="scenario")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--tag", default="a")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--create", action="store_true")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    if a.phase == "produce":
        out = {"confluent": confluent_produce, "kafka-python": kafka_python_produce,
               "aiokafka": aiokafka_produce}[a.lib](a)
    else:
        out = consume(a)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
