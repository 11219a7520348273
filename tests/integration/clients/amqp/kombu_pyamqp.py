"""The AMQP client-matrix workload (see tests/integration/test_amqp_clients.py) with kombu on
its pyamqp transport (py-amqp), publisher confirms through transport_options.
Usage: kombu_pyamqp.py produce|verify HOST PORT TAG; prints one JSON object.

py-amqp has no basic.nack: kombu requeues a message with basic.reject(requeue=True)
(Message.requeue), which is what the nacked deliveries do here."""

import json
import sys
import time

from amqp.exceptions import MessageNacked
from kombu import Connection, Consumer, Exchange, Producer, Queue

COUNT, KEEP = 10_000, 500
MATCH = {"kind": "order", "region": "eu"}


def entities(tag):
    ex = {k: Exchange(f"{tag}-{k}", k, durable=True) for k in ("direct", "fanout", "topic", "headers")}
    ex["dlx"] = Exchange(f"{tag}-dlx", "fanout", durable=True)
    q = {"direct-q": Queue(f"{tag}-direct-q", ex["direct"], "work", durable=True),
         "fanout-q": Queue(f"{tag}-fanout-q", ex["fanout"], "", durable=True),
         "topic-q": Queue(f"{tag}-topic-q", ex["topic"], "*.orders.#", durable=True),
         "headers-q": Queue(f"{tag}-headers-q", ex["headers"], "", durable=True,
                            binding_arguments={"x-match": "all", **MATCH}),
         "ttl": Queue(f"{tag}-ttl", durable=True,
                      queue_arguments={"x-message-ttl": 100, "x-dead-letter-exchange": ex["dlx"].name}),
         "rejected": Queue(f"{tag}-rejected", durable=True, queue_arguments={"x-dead-letter-exchange": ex["dlx"].name}),
         "dead": Queue(f"{tag}-dead", ex["dlx"], "", durable=True),
         "keep": Queue(f"{tag}-keep", durable=True)}
    return ex, q


def publish(producer, exchange, key, bodies, headers=None):
    """Publishes bodies (raw bytes, persistent); with confirm_publish each publish waits for
    the broker's confirm. Returns {"acked": n, "nacked": n}."""
    acked = nacked = 0
    for body in bodies:
        try:
            producer.publish(body.encode(), exchange=exchange, routing_key=key, delivery_mode=2, headers=headers,
                             retry=False)
            acked += 1
        except MessageNacked:
            nacked += 1
    return {"acked": acked, "nacked": nacked}


def consume(conn, queue):
    """Two consumers (a channel each, basic.qos 50); the first delivery of every 1000th
    message is requeued, all others acked."""
    acked, bodies, per_consumer, counts = set(), [], [0, 0], {"redelivered": 0, "nacked": 0}

    def on_message(n):
        def callback(message):
            body = message.body.decode()
            redelivered = message.delivery_info["redelivered"]
            bodies.append(body)
            per_consumer[n] += 1
            counts["redelivered"] += redelivered
            if int(body.split("-")[1]) % 1000 == 0 and not redelivered:
                message.requeue()
                counts["nacked"] += 1
            else:
                message.ack()
                acked.add(body)
        return callback

    consumers = [Consumer(conn.channel(), [queue], on_message=on_message(n), prefetch_count=50) for n in range(2)]
    for c in consumers:
        c.consume()
    while len(acked) < COUNT:
        conn.drain_events(timeout=30)
    for c in consumers:
        c.cancel()
        c.channel.close()
    return {"received": len(bodies), "distinct": len(set(bodies)), **counts,
            "consumers": sum(1 for n in per_consumer if n)}


def poll_get(queue):
    """basic.get, polling up to ~10 s for a message to arrive."""
    for _ in range(200):
        message = queue.get(no_ack=False)
        if message is not None:
            return message
        time.sleep(0.05)
    raise RuntimeError(f"no message arrived in {queue.name}")


def death(queue):
    message = poll_get(queue)
    message.ack()
    d = message.headers["x-death"][0]
    return {"body": message.body.decode(), "reason": d["reason"], "queue": d["queue"], "count": d["count"]}


def queue_counts(q):
    return {s: queue.queue_declare(passive=True).message_count for s, queue in q.items()}


def produce(conn, tag):
    ex, q = entities(tag)
    ch = conn.channel()
    ex, q = {k: e(ch) for k, e in ex.items()}, {k: e(ch) for k, e in q.items()}
    for e in ex.values():
        e.declare()
    for queue in q.values():
        queue.declare()
    producer = Producer(ch)
    out = {"published": publish(producer, ex["direct"], "work", (f"msg-{i}" for i in range(COUNT)))}
    out["consumed"] = consume(conn, q["direct-q"])

    publish(producer, "", q["ttl"].name, ["expire-me"])
    out["expired"] = death(q["dead"])
    publish(producer, "", q["rejected"].name, ["reject-me"])
    poll_get(q["rejected"]).reject(requeue=False)
    out["rejected"] = death(q["dead"])

    out["kept"] = publish(producer, "", q["keep"].name, (f"keep-{i}" for i in range(KEEP)))
    publish(producer, ex["direct"], "work", ["via-direct"])
    publish(producer, ex["fanout"], "", ["via-fanout"])
    publish(producer, ex["topic"], "eu.orders.created", ["via-topic"])
    publish(producer, ex["headers"], "", ["via-headers"], headers=MATCH)
    out["queues"] = queue_counts(q)
    return out


def drain(queue):
    out = []
    while (message := queue.get(no_ack=False)) is not None:
        message.ack()
        out.append((message.body.decode(), message.properties["delivery_mode"]))
    return out


def verify(conn, tag):
    ex, q = entities(tag)
    ch = conn.channel()
    ex, q = {k: e(ch) for k, e in ex.items()}, {k: e(ch) for k, e in q.items()}
    for e in ex.values():
        e.declare(passive=True)
    out = {"exchanges": sorted(ex), "queues": queue_counts(q)}
    producer = Producer(ch)
    publish(producer, ex["topic"], "us.orders", ["after-topic"])
    publish(producer, ex["headers"], "", ["after-headers"], headers={**MATCH, "note": "after restart"})
    out["drained"] = {s: [b for b, _ in drain(q[s])] for s in ("direct-q", "fanout-q", "topic-q", "headers-q")}
    kept = drain(q["keep"])
    out["keep"] = {"count": len(kept), "in_order": [b for b, _ in kept] == [f"keep-{i}" for i in range(KEEP)],
                   "persistent": all(mode == 2 for _, mode in kept)}
    return out


def main():
    phase, host, port, tag = sys.argv[1:5]
    with Connection(f"pyamqp://guest:guest@{host}:{port}//", heartbeat=0,
                    transport_options={"confirm_publish": True}) as conn:
        out = {"produce": produce, "verify": verify}[phase](conn, tag)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
