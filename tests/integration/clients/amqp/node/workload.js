// The AMQP client-matrix workload (tests/integration/test_amqp_clients.py) with amqplib's
// promise API. Usage: node workload.js produce|verify HOST PORT TAG; prints one JSON object.
'use strict';
const amqp = require('amqplib');

const COUNT = 10000;
const KEEP = 500;
const MATCH = { kind: 'order', region: 'eu' };
const range = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function names(tag) {
  const ex = {};
  for (const t of ['direct', 'fanout', 'topic', 'headers', 'dlx']) ex[t] = `${tag}-${t}`;
  const q = {};
  for (const s of ['direct-q', 'fanout-q', 'topic-q', 'headers-q', 'ttl', 'rejected', 'dead', 'keep']) q[s] = `${tag}-${s}`;
  return { ex, q };
}

async function declare(ch, { ex, q }) {
  for (const kind of ['direct', 'fanout', 'topic', 'headers']) await ch.assertExchange(ex[kind], kind, { durable: true });
  await ch.assertExchange(ex.dlx, 'fanout', { durable: true });
  for (const s of ['direct-q', 'fanout-q', 'topic-q', 'headers-q', 'dead', 'keep']) await ch.assertQueue(q[s], { durable: true });
  await ch.assertQueue(q.ttl, { durable: true, arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': ex.dlx } });
  await ch.assertQueue(q.rejected, { durable: true, arguments: { 'x-dead-letter-exchange': ex.dlx } });
  await ch.bindQueue(q['direct-q'], ex.direct, 'work');
  await ch.bindQueue(q['fanout-q'], ex.fanout, '');
  await ch.bindQueue(q['topic-q'], ex.topic, '*.orders.#');
  await ch.bindQueue(q['headers-q'], ex.headers, '', { 'x-match': 'all', ...MATCH });
  await ch.bindQueue(q.dead, ex.dlx, '');
}

// Publishes persistent messages on a confirm channel; resolves to {acked, nacked}.
async function publish(ch, exchange, key, bodies, headers) {
  const results = await Promise.all(bodies.map((body) => new Promise((resolve) => {
    ch.publish(exchange, key, Buffer.from(body), { persistent: true, headers }, (err) => resolve(err ? 'nacked' : 'acked'));
  })));
  return { acked: results.filter((r) => r === 'acked').length, nacked: results.filter((r) => r === 'nacked').length };
}

// Two consumers (a channel each, basic.qos 50); the first delivery of every 1000th message
// is nacked with requeue, all others acked.
async function consume(conn, queue) {
  const acked = new Set();
  const bodies = [];
  const perConsumer = [0, 0];
  const counts = { redelivered: 0, nacked: 0 };
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const consumers = [];
  for (const n of [0, 1]) {
    const ch = await conn.createChannel();
    await ch.prefetch(50);
    const { consumerTag } = await ch.consume(queue, (msg) => {
      const body = msg.content.toString();
      const redelivered = msg.fields.redelivered;
      bodies.push(body);
      perConsumer[n] += 1;
      counts.redelivered += redelivered ? 1 : 0;
      if (Number(body.split('-')[1]) % 1000 === 0 && !redelivered) {
        ch.nack(msg, false, true);
        counts.nacked += 1;
      } else {
        ch.ack(msg);
        acked.add(body);
        if (acked.size === COUNT) done();
      }
    });
    consumers.push([ch, consumerTag]);
  }
  await finished;
  for (const [ch, tag] of consumers) {
    await ch.cancel(tag);
    await ch.close();
  }
  return { received: bodies.length, distinct: new Set(bodies).size, ...counts,
    consumers: perConsumer.filter((n) => n > 0).length };
}

// basic.get, polling up to ~10 s for a message to arrive.
async function pollGet(ch, queue) {
  for (let i = 0; i < 200; i++) {
    const msg = await ch.get(queue, { noAck: false });
    if (msg) return msg;
    await sleep(50);
  }
  throw new Error(`no message arrived in ${queue}`);
}

async function death(ch, queue) {
  const msg = await pollGet(ch, queue);
  ch.ack(msg);
  const d = msg.properties.headers['x-death'][0];
  return { body: msg.content.toString(), reason: d.reason, queue: d.queue, count: Number(d.count) };
}

async function queueCounts(ch, { q }) {
  const out = {};
  for (const [s, name] of Object.entries(q)) out[s] = (await ch.checkQueue(name)).messageCount;
  return out;
}

async function produce(conn, n) {
  const { ex, q } = n;
  const ch = await conn.createConfirmChannel();
  await declare(ch, n);
  const out = { published: await publish(ch, ex.direct, 'work', range(COUNT, 'msg')) };
  out.consumed = await consume(conn, q['direct-q']);

  await publish(ch, '', q.ttl, ['expire-me']);
  out.expired = await death(ch, q.dead);
  await publish(ch, '', q.rejected, ['reject-me']);
  ch.reject(await pollGet(ch, q.rejected), false);
  out.rejected = await death(ch, q.dead);

  out.kept = await publish(ch, '', q.keep, range(KEEP, 'keep'));
  await publish(ch, ex.direct, 'work', ['via-direct']);
  await publish(ch, ex.fanout, '', ['via-fanout']);
  await publish(ch, ex.topic, 'eu.orders.created', ['via-topic']);
  await publish(ch, ex.headers, '', ['via-headers'], MATCH);
  out.queues = await queueCounts(ch, n);
  return out;
}

async function drain(ch, queue) {
  const out = [];
  for (let msg; (msg = await ch.get(queue, { noAck: false }));) {
    ch.ack(msg);
    out.push([msg.content.toString(), msg.properties.deliveryMode]);
  }
  return out;
}

async function verify(conn, n) {
  const { ex, q } = n;
  const ch = await conn.createConfirmChannel();
  for (const name of Object.values(ex)) await ch.checkExchange(name);
  const out = { exchanges: Object.keys(ex).sort(), queues: await queueCounts(ch, n) };
  await publish(ch, ex.topic, 'us.orders', ['after-topic']);
  await publish(ch, ex.headers, '', ['after-headers'], { ...MATCH, note: 'after restart' });
  out.drained = {};
  for (const s of ['direct-q', 'fanout-q', 'topic-q', 'headers-q']) out.drained[s] = (await drain(ch, q[s])).map(([b]) => b);
  const kept = await drain(ch, q.keep);
  const want = range(KEEP, 'keep');
  out.keep = { count: kept.length, in_order: kept.length === KEEP && kept.every(([b], i) => b === want[i]),
    persistent: kept.every(([, mode]) => mode === 2) };
  return out;
}

async function main() {
  const [phase, host, port, tag] = process.argv.slice(2);
  const conn = await amqp.connect({ protocol: 'amqp', hostname: host, port: Number(port), username: 'guest',
    password: 'guest', heartbeat: 0 }, { noDelay: true }); // without it Nagle delays each basic.get after an ack
  const out = await { produce, verify }[phase](conn, names(tag));
  await conn.close();
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
