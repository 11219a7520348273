'use strict';
// The RocketMQ workload with npm ali-ons 3.12.0 (pure JavaScript), for
// tests/integration/test_rocketmq.py: one scenario per run, one JSON object on stdout.
//
//   produce-consume NS TOPIC N   N sync sends (tags alternating TagA/TagB), a push group of two
//                                members and a group on TagA only
//   delay NS TOPIC               delay level 2 (5 s)

const httpclient = require('urllib');
const { Producer, Consumer, Message } = require('ali-ons');

const [scenario, nameSrv, topic, count] = process.argv.slice(2);
const quiet = { info() {}, warn() {}, debug() {}, error(e) { process.stderr.write(`${e}\n`); } };
const common = { httpclient, nameSrv, accessKeyId: 'ak', accessKeySecret: 'sk', logger: quiet, onsChannel: 'LOCAL' };
const sleep = ms => new Promise(r => setTimeout(r, ms));
// Message#keys reads back as the space-separated KEYS property.
const keyOf = msg => (Array.isArray(msg.keys) ? msg.keys.join(' ') : String(msg.keys));

async function waitFor(cond, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await sleep(100);
}

function message(i, key) {
  const msg = new Message(topic, i % 2 === 0 ? 'TagA' : 'TagB', `m${i}`);
  msg.keys = [ key || `k${i}` ];
  return msg;
}

async function consumer(group, instance, expr, handler, extra = {}) {
  const c = new Consumer(Object.assign({}, common, {
    consumerGroup: group, instanceName: instance, consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    // ali-ons does not act on NOTIFY_CONSUMER_IDS_CHANGED; it rebalances on this timer only
    // (10 s by default), so members settle within a second of each other.
    rebalanceInterval: 1000,
  }, extra));
  c.subscribe(topic, expr, handler);
  await c.ready();
  return c;
}

async function produceConsume(n) {
  const producer = new Producer(Object.assign({}, common, { producerGroup: `pg-${topic}`, instanceName: 'p' }));
  await producer.ready();
  await producer.send(message(-1, 'warmup'));
  const seen = new Map();
  const members = new Set();
  const tagA = new Set();
  let wrongTag = 0;
  const consumers = [];
  for (const name of [ 'c1', 'c2' ]) {
    consumers.push(await consumer(`cg-${topic}`, name, 'TagA || TagB', async msg => {
      seen.set(keyOf(msg), (seen.get(keyOf(msg)) || 0) + 1);
      members.add(name);
    }));
  }
  consumers.push(await consumer(`cg-taga-${topic}`, 'f1', 'TagA', async msg => {
    if (msg.tags !== 'TagA') wrongTag++;
    tagA.add(keyOf(msg));
  }));
  await sleep(3000);
  let sent = 0;
  for (let i = 0; i < n; i++) {
    const r = await producer.send(message(i));
    if (r.sendStatus === 'SEND_OK') sent++;
  }
  await waitFor(() => [ ...seen.keys() ].filter(k => k !== 'warmup').length >= n && tagA.size >= n / 2, 120000);
  await sleep(1000);
  seen.delete('warmup');
  tagA.delete('warmup');
  let total = 0;
  let duplicates = 0;
  for (const v of seen.values()) { total += v; if (v > 1) duplicates++; }
  for (const c of consumers) await c.close();
  await producer.close();
  return { sent, distinct: seen.size, total, duplicates, members: members.size, tagA: tagA.size, wrongTag };
}

async function delay() {
  const producer = new Producer(Object.assign({}, common, { producerGroup: `pg-${topic}`, instanceName: 'p' }));
  await producer.ready();
  await producer.send(message(-1, 'warmup'));
  let arrived = 0;
  const c = await consumer(`dg-${topic}`, 'd1', '*', async msg => {
    if (keyOf(msg) === 'delayed' && !arrived) arrived = Date.now();
  });
  await sleep(3000);
  const msg = message(0, 'delayed');
  msg.delayTimeLevel = 2;
  const sentAt = Date.now();
  const r = await producer.send(msg);
  await waitFor(() => arrived, 60000);
  await c.close();
  await producer.close();
  return { status: r.sendStatus, delayMs: arrived ? arrived - sentAt : -1 };
}

(async () => {
  const out = scenario === 'produce-consume' ? await produceConsume(Number(count)) : await delay();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
})().catch(e => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
