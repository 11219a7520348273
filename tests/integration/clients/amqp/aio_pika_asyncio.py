"""The AMQP client-matrix workload (see tests/integration/test_amqp_clients.py) with aio-pika
(asyncio). Usage: aio_pika_asyncio.py produce|verify HOST PORT TAG; prints one JSON object."""

import asyncio
import json
import sys

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.exceptions import DeliveryError

COUNT, KEEP = 10_000, 500
MATCH = {"kind": "order", "region": "eu"}


def names(tag):
    ex = {t: f"{tag}-{t}" for t in ("direct", "fanout", "topic", "headers", "dlx")}
    q = {s: f"{tag}-{s}" for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep")}
    return ex, q


async def declare(ch, tag):
    ex, q = names(tag)
    x = {k: await ch.declare_exchange(ex[k], ExchangeType(k), durable=True)
         for k in ("direct", "fanout", "topic", "headers")}
    x["dlx"] = await ch.declare_exchange(ex["dlx"], ExchangeType.FANOUT, durable=True)
    qs = {s: await ch.declare_queue(q[s], durable=True)
          for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "dead", "keep")}
    await ch.declare_queue(q["ttl"], durable=True, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": ex["dlx"]})
    await ch.declare_queue(q["rejected"], durable=True, arguments={"x-dead-letter-exchange": ex["dlx"]})
    await qs["direct-q"].bind(x["direct"], "work")
    await qs["fanout-q"].bind(x["fanout"], "")
    await qs["topic-q"].bind(x["topic"], "*.orders.#")
    await qs["headers-q"].bind(x["headers"], "", arguments={"x-match": "all", **MATCH})
    await qs["dead"].bind(x["dlx"], "")
    return x


async def publish(exchange, key, bodies, headers=None):
    """Publishes concurrently on a confirm channel; returns {"acked": n, "nacked": n}."""
    async def one(body):
        try:
            await exchange.publish(Message(body.encode(), delivery_mode=DeliveryMode.PERSISTENT, headers=headers), key)
            return "acked"
        except DeliveryError:
            return "nacked"
    results = await asyncio.gather(*(one(b) for b in bodies))
    return {"acked": results.count("acked"), "nacked": results.count("nacked")}


async def consume(conn, queue_name):
    """Two consumers (a channel each, basic.qos 50); the first delivery of every 1000th
    message is nacked with requeue, all others acked."""
    acked, bodies, per_consumer, done = set(), [], [0, 0], asyncio.Event()
    counts = {"redelivered": 0, "nacked": 0}

    def on_message(n):
        async def callback(message):
            body = message.body.decode()
            bodies.append(body)
            per_consumer[n] += 1
            counts["redelivered"] += message.redelivered
            if int(body.split("-")[1]) % 1000 == 0 and not message.redelivered:
                await message.nack(requeue=True)
                counts["nacked"] += 1
            else:
                await message.ack()
                acked.add(body)
                if len(acked) == COUNT:
                    done.set()
        return callback

    consumers = []
    for n in range(2):
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=50)
        queue = await ch.declare_queue(queue_name, passive=True)
        consumers.append((ch, queue, await queue.consume(on_message(n))))
    await done.wait()
    for ch, queue, tag in consumers:
        await queue.cancel(tag)
        await ch.close()
    return {"received": len(bodies), "distinct": len(set(bodies)), **counts,
            "consumers": sum(1 for n in per_consumer if n)}


async def poll_get(queue):
    """basic.get, polling up to ~10 s for a message to arrive."""
    for _ in range(200):
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no message arrived in {queue.name}")


async def death(queue):
    message = await poll_get(queue)
    await message.ack()
    d = message.headers["x-death"][0]
    return {"body": message.body.decode(), "reason": d["reason"], "queue": d["queue"], "count": d["count"]}


async def queue_counts(ch, tag):
    _, q = names(tag)
    return {s: (await ch.declare_queue(name, passive=True)).declaration_result.message_count for s, name in q.items()}


async def produce(conn, tag):
    ex, q = names(tag)
    ch = await conn.channel(publisher_confirms=True)
    x = await declare(ch, tag)
    out = {"published": await publish(x["direct"], "work", [f"msg-{i}" for i in range(COUNT)])}
    out["consumed"] = await consume(conn, q["direct-q"])

    dead = await ch.declare_queue(q["dead"], passive=True)
    await publish(ch.default_exchange, q["ttl"], ["expire-me"])
    out["expired"] = await death(dead)
    await publish(ch.default_exchange, q["rejected"], ["reject-me"])
    message = await poll_get(await ch.declare_queue(q["rejected"], passive=True))
    await message.reject(requeue=False)
    out["rejected"] = await death(dead)

    out["kept"] = await publish(ch.default_exchange, q["keep"], [f"keep-{i}" for i in range(KEEP)])
    await publish(x["direct"], "work", ["via-direct"])
    await publish(x["fanout"], "", ["via-fanout"])
    await publish(x["topic"], "eu.orders.created", ["via-topic"])
    await publish(x["headers"], "", ["via-headers"], headers=MATCH)
    out["queues"] = await queue_counts(ch, tag)
    return out


async def drain(ch, name):
    queue, out = await ch.declare_queue(name, passive=True), []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        await message.ack()
        out.append((message.body.decode(), message.delivery_mode))
    return out


async def verify(conn, tag):
    ex, q = names(tag)
    ch = await conn.channel(publisher_confirms=True)
    x = {k: await ch.get_exchange(name, ensure=True) for k, name in ex.items()}
    out = {"exchanges": sorted(x), "queues": await queue_counts(ch, tag)}
    await publish(x["topic"], "us.orders", ["after-topic"])
    await publish(x["headers"], "", ["after-headers"], headers={**MATCH, "note": "after restart"})
    out["drained"] = {s: [b for b, _ in await drain(ch, q[s])] for s in ("direct-q", "fanout-q", "topic-q", "headers-q")}
    kept = await drain(ch, q["keep"])
    out["keep"] = {"count": len(kept), "in_order": [b for b, _ in kept] == [f"keep-{i}" for i in range(KEEP)],
                   "persistent": all(mode == 2 for _, mode in kept)}
    return out


async def main():
    phase, host, port, tag = sys.argv[1:5]
    conn = await aio_pika.connect(host=host, port=int(port), login="guest", password="guest")
    async with conn:
        out = await {"produce": produce, "verify": verify}[phase](conn, tag)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
