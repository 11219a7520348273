"""The AMQP client-matrix workload (see tests/integration/test_amqp_clients.py) with pika's
BlockingConnection. Usage: pika_blocking.py produce|verify HOST PORT TAG; prints one JSON object."""

import json
import sys
import time

import pika
from pika.exceptions import NackError

COUNT, KEEP = 10_000, 500
PERSISTENT = pika.BasicProperties(delivery_mode=2)
MATCH = {"kind": "order", "region": "eu"}


def names(tag):
    ex = {t: f"{tag}-{t}" for t in ("direct", "fanout", "topic", "headers", "dlx")}
    q = {s: f"{tag}-{s}" for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep")}
    return ex, q


def declare(ch, tag):
    ex, q = names(tag)
    for kind in ("direct", "fanout", "topic", "headers"):
        ch.exchange_declare(ex[kind], kind, durable=True)
    ch.exchange_declare(ex["dlx"], "fanout", durable=True)
    for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "dead", "keep"):
        ch.queue_declare(q[s], durable=True)
    ch.queue_declare(q["ttl"], durable=True, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": ex["dlx"]})
    ch.queue_declare(q["rejected"], durable=True, arguments={"x-dead-letter-exchange": ex["dlx"]})
    ch.queue_bind(q["direct-q"], ex["direct"], "work")
    ch.queue_bind(q["fanout-q"], ex["fanout"], "")
    ch.queue_bind(q["topic-q"], ex["topic"], "*.orders.#")
    ch.queue_bind(q["headers-q"], ex["headers"], "", arguments={"x-match": "all", **MATCH})
    ch.queue_bind(q["dead"], ex["dlx"], "")


def publish(ch, exchange, key, bodies, headers=None):
    """Publishes on a confirm channel; returns [acked, nacked]."""
    props = pika.BasicProperties(delivery_mode=2, headers=headers)
    acked = nacked = 0
    for body in bodies:
        try:
            ch.basic_publish(exchange, key, body.encode(), props)
            acked += 1
        except NackError:
            nacked += 1
    return {"acked": acked, "nacked": nacked}


def poll_get(ch, queue):
    """basic.get, polling up to ~10 s for a message to arrive."""
    for _ in range(200):
        method, props, body = ch.basic_get(queue)
        if method is not None:
            return method, props, body.decode()
        time.sleep(0.05)
    raise RuntimeError(f"no message arrived in {queue}")


def death(ch, queue):
    """The dead-lettered message in `queue` (acknowledged): its body and first x-death entry."""
    method, props, body = poll_get(ch, queue)
    ch.basic_ack(method.delivery_tag)
    d = props.headers["x-death"][0]
    return {"body": body, "reason": d["reason"], "queue": d["queue"], "count": d["count"]}


def consume(conn, queue):
    acked, bodies, redelivered, nacked, per_consumer = set(), [], 0, 0, [0, 0]
    channels = [conn.channel(), conn.channel()]

    def on_message(n):
        def callback(ch, method, props, body):
            nonlocal redelivered, nacked
            body = body.decode()
            bodies.append(body)
            per_consumer[n] += 1
            redelivered += method.redelivered
            if int(body.split("-")[1]) % 1000 == 0 and not method.redelivered:
                ch.basic_nack(method.delivery_tag, requeue=True)
                nacked += 1
            else:
                ch.basic_ack(method.delivery_tag)
                acked.add(body)
        return callback

    tags = []
    for n, ch in enumerate(channels):
        ch.basic_qos(prefetch_count=50)
        tags.append(ch.basic_consume(queue, on_message(n)))
    while len(acked) < COUNT:
        conn.process_data_events(time_limit=1)
    for ch, tag in zip(channels, tags):
        ch.basic_cancel(tag)
        ch.close()
    return {"received": len(bodies), "distinct": len(set(bodies)), "redelivered": redelivered,
            "nacked": nacked, "consumers": sum(1 for n in per_consumer if n)}


def queue_counts(ch, tag):
    _, q = names(tag)
    return {s: ch.queue_declare(name, passive=True).method.message_count for s, name in q.items()}


def produce(conn, tag):
    ex, q = names(tag)
    ch = conn.channel()
    declare(ch, tag)
    ch.confirm_delivery()
    out = {"published": publish(ch, ex["direct"], "work", (f"msg-{i}" for i in range(COUNT)))}
    out["consumed"] = consume(conn, q["direct-q"])

    ch.basic_publish("", q["ttl"], b"expire-me", PERSISTENT)
    out["expired"] = death(ch, q["dead"])
    ch.basic_publish("", q["rejected"], b"reject-me", PERSISTENT)
    method, _, _ = poll_get(ch, q["rejected"])
    ch.basic_reject(method.delivery_tag, requeue=False)
    out["rejected"] = death(ch, q["dead"])

    out["kept"] = publish(ch, "", q["keep"], (f"keep-{i}" for i in range(KEEP)))
    publish(ch, ex["direct"], "work", ["via-direct"])
    publish(ch, ex["fanout"], "", ["via-fanout"])
    publish(ch, ex["topic"], "eu.orders.created", ["via-topic"])
    publish(ch, ex["headers"], "", ["via-headers"], headers=MATCH)
    out["queues"] = queue_counts(ch, tag)
    return out


def drain(ch, queue):
    out = []
    while True:
        method, props, body = ch.basic_get(queue)
        if method is None:
            return out
        ch.basic_ack(method.delivery_tag)
        out.append((body.decode(), props.delivery_mode))


def verify(conn, tag):
    ex, q = names(tag)
    ch = conn.channel()
    for name in ex.values():
        ch.exchange_declare(name, passive=True)
    out = {"exchanges": sorted(ex), "queues": queue_counts(ch, tag)}
    ch.confirm_delivery()
    publish(ch, ex["topic"], "us.orders", ["after-topic"])
    publish(ch, ex["headers"], "", ["after-headers"], headers={**MATCH, "note": "after restart"})
    out["drained"] = {s: [b for b, _ in drain(ch, q[s])] for s in ("direct-q", "fanout-q", "topic-q", "headers-q")}
    kept = drain(ch, q["keep"])
    out["keep"] = {"count": len(kept), "in_order": [b for b, _ in kept] == [f"keep-{i}" for i in range(KEEP)],
                   "persistent": all(mode == 2 for _, mode in kept)}
    return out


def main():
    phase, host, port, tag = sys.argv[1:5]
    params = pika.ConnectionParameters(host, int(port), heartbeat=0, blocked_connection_timeout=60)
    with pika.BlockingConnection(params) as conn:
        out = {"produce": produce, "verify": verify}[phase](conn, tag)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
