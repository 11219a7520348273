package opendms;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * Scenarios the RocketMQ integration tests (tests/integration/test_rocketmq.py) run with the
 * official Java client against a name server address. Each prints one JSON object on stdout
 * with what it observed; the Python test asserts on it. Usage:
 *
 *   java -jar rocketmq-java-workload.jar SCENARIO NAMESRV ARGS...
 */
public final class Workload {
    private Workload() {}

    /** The real stdout: the clients' loggers write to System.out, which goes to stderr here. */
    static final java.io.PrintStream OUT = System.out;

    public static void main(String[] args) throws Exception {
        System.setOut(System.err);
        System.setProperty("rocketmq.client.logUseSlf4j", "false");
        System.setProperty("rocketmq.client.logLevel", "WARN");
        String scenario = args[0];
        String ns = args[1];
        String out;
        switch (scenario) {
            case "produce-consume": out = produceConsume(ns, args[2], Integer.parseInt(args[3])); break;
            case "produce": out = produce(ns, args[2], Integer.parseInt(args[3])); break;
            case "consume": out = consume(ns, args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5])); break;
            case "broadcast": out = broadcast(ns, args[2], Integer.parseInt(args[3])); break;
            case "orderly": out = orderly(ns, args[2], Integer.parseInt(args[3])); break;
            case "delay": out = delay(ns, args[2]); break;
            case "retry-dlq": out = retryDlq(ns, args[2]); break;
            case "view": out = view(ns, args[2]); break;
            case "errors": out = errors(ns, args[2]); break;
            case "transaction": out = transaction(ns, args[2]); break;
            case "query": out = query(ns, args[2]); break;
            case "acl": out = acl(ns, args[2], args[3], args[4], args[5]); break;
            case "online": out = online(ns, args[2]); break;
            case "sql-trace": out = sqlTrace(ns, args[2]); break;
            case "bench-produce": out = benchProduce(ns, args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]), Integer.parseInt(args[5]), Integer.parseInt(args[6])); break;
            case "bench-consume": out = benchConsume(ns, args[2], args[3], Long.parseLong(args[4]), Integer.parseInt(args[5])); break;
            case "bench-latency": out = benchLatency(ns, args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4])); break;
            case "durable-produce": durableProduce(ns, args[2], Integer.parseInt(args[3])); return;
            case "consume-keys": out = consumeKeys(ns, args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5])); break;
            case "live": live(ns, args[2], args[3]); return;
            case "acl-send": out = aclSend(ns, args[2], args[3], args[4], args[5]); break;
            default: throw new IllegalArgumentException("unknown scenario " + scenario);
        }
        OUT.println(out);
        OUT.flush();
        System.exit(0);
    }

    static DefaultMQProducer producer(String ns, String group) throws MQClientException {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(ns);
        p.setInstanceName(group + "-" + System.nanoTime());
        p.setSendMsgTimeout(10000);
        p.setPollNameServerInterval(1000);
        p.start();
        return p;
    }

    static DefaultMQPushConsumer consumer(String ns, String group, String instance) {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPersistConsumerOffsetInterval(1000);
        c.setPollNameServerInterval(1000);
        return c;
    }

    static Message message(String topic, String tag, String key, String body) {
        Message m = new Message(topic, tag, key, body.getBytes(StandardCharsets.UTF_8));
        return m;
    }

    /** Sends n messages: a quarter each sync, async, oneway and in batches of 10. Tags alternate TagA/TagB. */
    static int sendMix(DefaultMQProducer p, String topic, int n, List<String> firstIds) throws Exception {
        int quarter = n / 4;
        int i = 0;
        AtomicInteger ok = new AtomicInteger();
        for (; i < quarter; i++) {
            SendResult r = p.send(message(topic, tag(i), "k" + i, "m" + i));
            if (r.getSendStatus() == SendStatus.SEND_OK) ok.incrementAndGet();
            if (firstIds != null && firstIds.isEmpty()) {
                firstIds.add(r.getMsgId());
                firstIds.add(r.getOffsetMsgId());
            }
        }
        CountDownLatch asyncDone = new CountDownLatch(quarter);
        AtomicInteger asyncFailed = new AtomicInteger();
        for (int j = 0; j < quarter; j++, i++) {
            p.send(message(topic, tag(i), "k" + i, "m" + i), new SendCallback() {
                public void onSuccess(SendResult r) { ok.incrementAndGet(); asyncDone.countDown(); }
                public void onException(Throwable e) { asyncFailed.incrementAndGet(); asyncDone.countDown(); }
            });
        }
        if (!asyncDone.await(60, TimeUnit.SECONDS) || asyncFailed.get() > 0) {
            throw new IllegalStateException("async sends failed: " + asyncFailed.get());
        }
        for (int j = 0; j < quarter; j++, i++) {
            p.sendOneway(message(topic, tag(i), "k" + i, "m" + i));
            ok.incrementAndGet();
        }
        while (i < n) {
            List<Message> batch = new ArrayList<>();
            for (int j = 0; j < 10 && i < n; j++, i++) {
                batch.add(message(topic, tag(i), "k" + i, "m" + i));
            }
            SendResult r = p.send(batch);
            if (r.getSendStatus() == SendStatus.SEND_OK) ok.addAndGet(batch.size());
        }
        return ok.get();
    }

    static String tag(int i) {
        return i % 2 == 0 ? "TagA" : "TagB";
    }

    /**
     * Produces n messages (sync, async, oneway, batch), then a push group of two members reads
     * all of them, and a second group subscribed to TagA reads only those.
     */
    static String produceConsume(String ns, String topic, int n) throws Exception {
        createTopic(ns, topic, 4);
        Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
        Map<String, AtomicInteger> perMember = new ConcurrentHashMap<>();
        AtomicInteger total = new AtomicInteger();
        List<DefaultMQPushConsumer> members = new ArrayList<>();
        for (String member : new String[] {"c1", "c2"}) {
            DefaultMQPushConsumer c = consumer(ns, "cg-" + topic, member);
            c.subscribe(topic, "TagA || TagB");
            c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    seen.computeIfAbsent(m.getKeys(), k -> new AtomicInteger()).incrementAndGet();
                    perMember.computeIfAbsent(member, k -> new AtomicInteger()).incrementAndGet();
                    total.incrementAndGet();
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            c.start();
            members.add(c);
        }
        Set<String> tagA = ConcurrentHashMap.newKeySet();
        AtomicInteger wrongTag = new AtomicInteger();
        DefaultMQPushConsumer filtered = consumer(ns, "cg-tagA-" + topic, "f1");
        filtered.subscribe(topic, "TagA");
        filtered.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                if (!"TagA".equals(m.getTags())) wrongTag.incrementAndGet();
                tagA.add(m.getKeys());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        filtered.start();
        // Let both members take their queues before anything is sent: messages consumed
        // while a rebalance moves queues may be delivered twice (at least once).
        Thread.sleep(3000);
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        List<String> firstIds = new ArrayList<>();
        int sent = sendMix(p, topic, n, firstIds);
        p.shutdown();
        long deadline = System.currentTimeMillis() + 90_000;
        while (System.currentTimeMillis() < deadline && (seen.size() < n || tagA.size() < n / 2)) {
            Thread.sleep(100);
        }
        Thread.sleep(1000);
        for (DefaultMQPushConsumer c : members) c.shutdown();
        filtered.shutdown();
        int duplicates = 0;
        for (AtomicInteger v : seen.values()) if (v.get() > 1) duplicates++;
        return String.format(
            "{\"sent\":%d,\"distinct\":%d,\"total\":%d,\"duplicates\":%d,\"members\":%d,\"tagA\":%d,\"wrongTag\":%d,\"msgId\":\"%s\",\"offsetMsgId\":\"%s\"}",
            sent, seen.size(), total.get(), duplicates, perMember.size(), tagA.size(), wrongTag.get(),
            firstIds.get(0), firstIds.get(1));
    }

    static DefaultMQAdminExt admin(String ns) throws MQClientException {
        DefaultMQAdminExt admin = new DefaultMQAdminExt();
        admin.setNamesrvAddr(ns);
        admin.setInstanceName("admin-" + System.nanoTime());
        admin.start();
        return admin;
    }

    /** Creates a topic on every broker of the cluster, as mqadmin updateTopic -c does. */
    static void createTopic(String ns, String topic, int queues) throws Exception {
        DefaultMQAdminExt admin = admin(ns);
        org.apache.rocketmq.common.protocol.body.ClusterInfo info = admin.examineBrokerClusterInfo();
        for (org.apache.rocketmq.common.protocol.route.BrokerData b : info.getBrokerAddrTable().values()) {
            org.apache.rocketmq.common.TopicConfig tc = new org.apache.rocketmq.common.TopicConfig(topic, queues, queues, 6);
            admin.createAndUpdateTopicConfig(b.selectBrokerAddr(), tc);
        }
        admin.shutdown();
    }

    static String produce(String ns, String topic, int n) throws Exception {
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        int sent = 0;
        for (int i = 0; i < n; i++) {
            SendResult r = p.send(message(topic, tag(i), "k" + i, "m" + i));
            if (r.getSendStatus() == SendStatus.SEND_OK) sent++;
        }
        p.shutdown();
        return String.format("{\"sent\":%d}", sent);
    }

    /** Consumes with a group until `want` distinct keys arrived or the timeout; reports them. */
    static String consume(String ns, String group, String topic, int want, int timeoutSeconds) throws Exception {
        Set<String> keys = ConcurrentHashMap.newKeySet();
        AtomicInteger total = new AtomicInteger();
        DefaultMQPushConsumer c = consumer(ns, group, "solo");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                keys.add(m.getKeys());
                total.incrementAndGet();
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;
        while (System.currentTimeMillis() < deadline && keys.size() < want) {
            Thread.sleep(100);
        }
        Thread.sleep(1500);
        c.shutdown();
        return String.format("{\"distinct\":%d,\"total\":%d}", keys.size(), total.get());
    }

    /** Two broadcasting consumers of one group each receive every message. */
    static String broadcast(String ns, String topic, int n) throws Exception {
        createTopic(ns, topic, 4);
        Map<String, Set<String>> byMember = new ConcurrentHashMap<>();
        List<DefaultMQPushConsumer> members = new ArrayList<>();
        for (String member : new String[] {"b1", "b2"}) {
            DefaultMQPushConsumer c = consumer(ns, "bg-" + topic, member);
            c.setMessageModel(MessageModel.BROADCASTING);
            c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET);
            c.subscribe(topic, "*");
            Set<String> mine = ConcurrentHashMap.newKeySet();
            byMember.put(member, mine);
            c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) mine.add(m.getKeys());
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            c.start();
            members.add(c);
        }
        Thread.sleep(3000);
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        for (int i = 0; i < n; i++) p.send(message(topic, tag(i), "k" + i, "m" + i));
        p.shutdown();
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline
            && (byMember.get("b1").size() < n || byMember.get("b2").size() < n)) {
            Thread.sleep(100);
        }
        for (DefaultMQPushConsumer c : members) c.shutdown();
        return String.format("{\"b1\":%d,\"b2\":%d}", byMember.get("b1").size(), byMember.get("b2").size());
    }

    /** Orders 0..9, each with `steps` steps, sent to a queue chosen by order id, consumed orderly. */
    static String orderly(String ns, String topic, int steps) throws Exception {
        int orders = 10;
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        for (int s = 0; s < steps; s++) {
            for (int o = 0; o < orders; o++) {
                Message m = message(topic, "order", "o" + o + "-" + s, o + ":" + s);
                p.send(m, (mqs, msg, arg) -> mqs.get((Integer) arg % mqs.size()), o);
            }
        }
        p.shutdown();
        Map<Integer, Integer> last = new ConcurrentHashMap<>();
        AtomicInteger outOfOrder = new AtomicInteger();
        AtomicInteger received = new AtomicInteger();
        DefaultMQPushConsumer c = consumer(ns, "og-" + topic, "o1");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String[] parts = new String(m.getBody(), StandardCharsets.UTF_8).split(":");
                int o = Integer.parseInt(parts[0]);
                int s = Integer.parseInt(parts[1]);
                Integer prev = last.put(o, s);
                if (prev != null && prev + 1 != s) outOfOrder.incrementAndGet();
                if (prev == null && s != 0) outOfOrder.incrementAndGet();
                received.incrementAndGet();
            }
            return ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && received.get() < orders * steps) {
            Thread.sleep(100);
        }
        c.shutdown();
        return String.format("{\"received\":%d,\"outOfOrder\":%d}", received.get(), outOfOrder.get());
    }

    /** A message with delay level 2 (5 s) arrives no sooner than its level. */
    static String delay(String ns, String topic) throws Exception {
        AtomicLong arrived = new AtomicLong();
        AtomicLong stored = new AtomicLong();
        DefaultMQPushConsumer c = consumer(ns, "dg-" + topic, "d1");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                arrived.compareAndSet(0, System.currentTimeMillis());
                stored.compareAndSet(0, m.getBornTimestamp());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        Message m = message(topic, "late", "delayed", "later");
        m.setDelayTimeLevel(2);
        long sentAt = System.currentTimeMillis();
        SendResult r = p.send(m);
        p.shutdown();
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && arrived.get() == 0) {
            Thread.sleep(50);
        }
        c.shutdown();
        return String.format("{\"status\":\"%s\",\"delayMs\":%d}", r.getSendStatus(),
            arrived.get() == 0 ? -1 : arrived.get() - sentAt);
    }

    /**
     * A listener that always fails: the message comes back with reconsumeTimes 1 (after delay
     * level 1, as the context asks), then, past maxReconsumeTimes=1, lands in %DLQ%group,
     * where a consumer of the DLQ topic reads it with its original keys.
     */
    static String retryDlq(String ns, String topic) throws Exception {
        String group = "rg-" + topic;
        List<Integer> attempts = Collections.synchronizedList(new ArrayList<>());
        DefaultMQPushConsumer c = consumer(ns, group, "r1");
        c.setMaxReconsumeTimes(1);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) attempts.add(m.getReconsumeTimes());
            ctx.setDelayLevelWhenNextConsume(1);
            return ConsumeConcurrentlyStatus.RECONSUME_LATER;
        });
        c.start();
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        p.send(message(topic, "fail", "doomed", "always fails"));
        p.shutdown();
        Set<String> dead = ConcurrentHashMap.newKeySet();
        AtomicInteger deadReconsumes = new AtomicInteger(-1);
        DefaultMQPushConsumer d = consumer(ns, "dlq-reader-" + topic, "x1");
        d.subscribe("%DLQ%" + group, "*");
        d.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                dead.add(m.getKeys());
                deadReconsumes.set(m.getReconsumeTimes());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        d.start();
        long deadline = System.currentTimeMillis() + 90_000;
        while (System.currentTimeMillis() < deadline && dead.isEmpty()) {
            Thread.sleep(100);
        }
        c.shutdown();
        d.shutdown();
        return String.format("{\"attempts\":%s,\"dlq\":%s,\"dlqReconsumeTimes\":%d}", attempts,
            dead.contains("doomed"), deadReconsumes.get());
    }

    /** Sends one message and looks it up by its offset message id (VIEW_MESSAGE_BY_ID). */
    static String view(String ns, String topic) throws Exception {
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        SendResult r = p.send(message(topic, "TagV", "viewkey", "look me up"));
        DefaultMQAdminExt admin = new DefaultMQAdminExt();
        admin.setNamesrvAddr(ns);
        admin.setInstanceName("admin-" + System.nanoTime());
        admin.start();
        MessageExt m = admin.viewMessage(r.getOffsetMsgId());
        admin.shutdown();
        p.shutdown();
        return String.format("{\"body\":\"%s\",\"keys\":\"%s\",\"topic\":\"%s\",\"queueOffset\":%d,\"sentOffset\":%d}",
            new String(m.getBody(), StandardCharsets.UTF_8), m.getKeys(), m.getTopic(), m.getQueueOffset(),
            r.getQueueOffset());
    }

    /** Refusals the client surfaces as exceptions with the broker's response code. */
    static String errors(String ns, String topic) throws Exception {
        DefaultMQProducer p = producer(ns, "pg-errors");
        Map<String, Integer> codes = new HashMap<>();
        try {
            p.send(message("SCHEDULE_TOPIC_XXXX", "x", "k", "forbidden"));
            codes.put("forbidden", 0);
        } catch (MQBrokerException e) {
            codes.put("forbidden", e.getResponseCode());
        } catch (MQClientException e) {
            codes.put("forbidden", e.getResponseCode());
        }
        p.setMaxMessageSize(8 * 1024 * 1024);
        try {
            byte[] noise = new byte[5 * 1024 * 1024];
            new java.util.Random(7).nextBytes(noise);
            p.send(new Message(topic, "x", "k", noise));
            codes.put("tooLarge", 0);
        } catch (MQBrokerException e) {
            codes.put("tooLarge", e.getResponseCode());
        }
        p.shutdown();
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, Integer> e : codes.entrySet()) {
            if (sb.length() > 1) sb.append(',');
            sb.append('"').append(e.getKey()).append("\":").append(e.getValue());
        }
        return sb.append('}').toString();
    }

    /**
     * Three transactions: one committed at once, one rolled back, one left UNKNOW and
     * committed when the broker checks back. A consumer must see the first and the third.
     */
    static String transaction(String ns, String topic) throws Exception {
        createTopic(ns, topic, 4);
        AtomicInteger checks = new AtomicInteger();
        org.apache.rocketmq.client.producer.TransactionMQProducer p =
            new org.apache.rocketmq.client.producer.TransactionMQProducer("txg-" + topic);
        p.setNamesrvAddr(ns);
        p.setInstanceName("tx-" + System.nanoTime());
        p.setPollNameServerInterval(1000);
        p.setTransactionListener(new org.apache.rocketmq.client.producer.TransactionListener() {
            public org.apache.rocketmq.client.producer.LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                switch (msg.getKeys()) {
                    case "commit-me": return org.apache.rocketmq.client.producer.LocalTransactionState.COMMIT_MESSAGE;
                    case "rollback-me": return org.apache.rocketmq.client.producer.LocalTransactionState.ROLLBACK_MESSAGE;
                    default: return org.apache.rocketmq.client.producer.LocalTransactionState.UNKNOW;
                }
            }
            public org.apache.rocketmq.client.producer.LocalTransactionState checkLocalTransaction(MessageExt msg) {
                checks.incrementAndGet();
                return org.apache.rocketmq.client.producer.LocalTransactionState.COMMIT_MESSAGE;
            }
        });
        p.start();
        Set<String> got = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = consumer(ns, "txc-" + topic, "t1");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) got.add(m.getKeys());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        List<String> states = new ArrayList<>();
        for (String key : new String[] {"commit-me", "rollback-me", "check-me"}) {
            org.apache.rocketmq.client.producer.TransactionSendResult r =
                p.sendMessageInTransaction(message(topic, "tx", key, key), null);
            states.add(r.getLocalTransactionState().name());
        }
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && !(got.contains("commit-me") && got.contains("check-me"))) {
            Thread.sleep(100);
        }
        Thread.sleep(2000);
        c.shutdown();
        p.shutdown();
        List<String> sorted = new ArrayList<>(got);
        Collections.sort(sorted);
        StringBuilder keys = new StringBuilder("[");
        for (String k : sorted) {
            if (keys.length() > 1) keys.append(',');
            keys.append('"').append(k).append('"');
        }
        return String.format("{\"states\":\"%s\",\"consumed\":%s,\"checked\":%s}", String.join(",", states),
            keys.append(']'), checks.get() > 0);
    }

    /** Finds a sent message by its key (QUERY_MESSAGE) and by its unique id. */
    static String query(String ns, String topic) throws Exception {
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        String key = "qk-" + System.nanoTime();
        long begin = System.currentTimeMillis() - 1000;
        SendResult r = p.send(message(topic, "TagQ", key, "find me"));
        for (int i = 0; i < 20; i++) p.send(message(topic, "TagQ", "other-" + i, "noise"));
        long end = System.currentTimeMillis() + 1000;
        DefaultMQAdminExt admin = admin(ns);
        org.apache.rocketmq.client.QueryResult byKey = admin.queryMessage(topic, key, 32, begin, end);
        MessageExt byId = admin.viewMessage(topic, r.getMsgId());
        admin.shutdown();
        p.shutdown();
        return String.format("{\"byKey\":%d,\"byKeyBody\":\"%s\",\"byIdKeys\":\"%s\"}",
            byKey.getMessageList().size(),
            byKey.getMessageList().isEmpty() ? "" : new String(byKey.getMessageList().get(0).getBody(), StandardCharsets.UTF_8),
            byId.getKeys());
    }

    /** Sync sends k0.. until one fails, printing "acked KEY" for every acknowledged one. */
    static void durableProduce(String ns, String topic, int n) throws Exception {
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        p.setRetryTimesWhenSendFailed(0);
        p.setSendMsgTimeout(3000);
        for (int i = 0; i < n; i++) {
            try {
                SendResult r = p.send(message(topic, "d", "k" + i, "m" + i));
                if (r.getSendStatus() != SendStatus.SEND_OK) break;
                OUT.println("acked k" + i);
                OUT.flush();
            } catch (Exception e) {
                break;
            }
        }
        OUT.println("done");
        OUT.flush();
        System.exit(0);
    }

    /** Consumes with a group until `want` distinct keys arrived or the timeout; lists them. */
    static String consumeKeys(String ns, String group, String topic, int want, int timeoutSeconds) throws Exception {
        Set<String> keys = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = consumer(ns, group, "keys");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) keys.add(m.getKeys());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;
        while (System.currentTimeMillis() < deadline && keys.size() < want) {
            Thread.sleep(100);
        }
        c.shutdown();
        StringBuilder sb = new StringBuilder("{\"keys\":[");
        boolean first = true;
        for (String k : keys) {
            if (!first) sb.append(',');
            first = false;
            sb.append('"').append(k).append('"');
        }
        return sb.append("]}").toString();
    }

    /** One JSON line on the real stdout, at once. */
    static synchronized void event(String json) {
        OUT.println(json);
        OUT.flush();
    }

    /**
     * A consumer and a producer, both with message trace on, driven by lines on stdin, for
     * tests that act on live clients through the cloud API (tests/integration/
     * test_rocketmq_api.py). Prints one JSON line per event: `ready` (with the consumer's
     * client id), `sent` (key, msgId, offsetMsgId), `received` (key, msgId, reconsume
     * times). Commands: `send KEY`, `fail KEY` (the listener fails that key from now on; the
     * consumer's maxReconsumeTimes is 0, so a failure sends it to the group's DLQ at once),
     * `heal KEY`, `quit`.
     */
    static void live(String ns, String topic, String group) throws Exception {
        Set<String> failing = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group, true);
        c.setNamesrvAddr(ns);
        c.setInstanceName("live-" + System.nanoTime());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPersistConsumerOffsetInterval(1000);
        c.setPollNameServerInterval(1000);
        c.setMaxReconsumeTimes(0);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            boolean fail = false;
            for (MessageExt m : msgs) {
                event(String.format("{\"event\":\"received\",\"key\":%s,\"msgId\":%s,\"reconsume\":%d}",
                    quote(m.getKeys()), quote(m.getMsgId()), m.getReconsumeTimes()));
                fail |= failing.contains(m.getKeys());
            }
            return fail ? ConsumeConcurrentlyStatus.RECONSUME_LATER : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        DefaultMQProducer p = new DefaultMQProducer("pg-" + group, true);
        p.setNamesrvAddr(ns);
        p.setInstanceName("live-p-" + System.nanoTime());
        p.setSendMsgTimeout(10000);
        p.setPollNameServerInterval(1000);
        p.start();
        String clientId = c.getDefaultMQPushConsumerImpl().getmQClientFactory().getClientId();
        event(String.format("{\"event\":\"ready\",\"clientId\":%s}", quote(clientId)));
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.trim().split(" ", 2);
            if (w.length == 0 || w[0].isEmpty()) continue;
            switch (w[0]) {
                case "send": {
                    SendResult r = p.send(message(topic, "live", w[1], "body of " + w[1]));
                    event(String.format("{\"event\":\"sent\",\"key\":%s,\"msgId\":%s,\"offsetMsgId\":%s,\"status\":%s}",
                        quote(w[1]), quote(r.getMsgId()), quote(r.getOffsetMsgId()), quote(r.getSendStatus().name())));
                    break;
                }
                case "fail": failing.add(w[1]); event("{\"event\":\"ok\"}"); break;
                case "heal": failing.remove(w[1]); event("{\"event\":\"ok\"}"); break;
                case "quit":
                    p.shutdown();
                    c.shutdown();
                    event("{\"event\":\"bye\"}");
                    System.exit(0);
                    return;
                default: event("{\"event\":\"unknown\"}");
            }
        }
        p.shutdown();
        c.shutdown();
        System.exit(0);
    }

    /** One send with an ACL account: the broker's answer (code 0 when it was stored). */
    static String aclSend(String ns, String topic, String ak, String sk, String key) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("acl-pg-" + ak, credentials(ak, sk));
        p.setNamesrvAddr(ns);
        p.setInstanceName("acl-send-" + System.nanoTime());
        p.setSendMsgTimeout(10000);
        p.start();
        String r = refusal(p, message(topic, "a", key, "acl " + key));
        p.shutdown();
        return r;
    }

    static org.apache.rocketmq.remoting.RPCHook credentials(String ak, String sk) {
        return new org.apache.rocketmq.acl.common.AclClientRPCHook(new org.apache.rocketmq.acl.common.SessionCredentials(ak, sk));
    }

    /** The broker's refusal of one send: its response code and remark. */
    static String refusal(DefaultMQProducer p, Message m) {
        try {
            p.send(m);
            return "{\"code\":0,\"remark\":\"\"}";
        } catch (MQClientException e) {
            Throwable cause = e.getCause() instanceof MQBrokerException ? e.getCause() : e;
            String remark = cause instanceof MQBrokerException ? ((MQBrokerException) cause).getErrorMessage() : e.getErrorMessage();
            return String.format("{\"code\":%d,\"remark\":%s}", e.getResponseCode(), quote(remark));
        } catch (MQBrokerException e) {
            return String.format("{\"code\":%d,\"remark\":%s}", e.getResponseCode(), quote(e.getErrorMessage()));
        } catch (Exception e) {
            return String.format("{\"code\":-2,\"remark\":%s}", quote(e.toString()));
        }
    }

    static String quote(String s) {
        return "\"" + (s == null ? "" : s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")) + "\"";
    }

    /**
     * An ACL-enabled broker: the admin account creates the topic; the user account sends to
     * and consumes from it; a wrong secret and a topic without permission are refused.
     */
    static String acl(String ns, String topic, String closedTopic, String ak, String sk) throws Exception {
        DefaultMQAdminExt admin = new DefaultMQAdminExt(credentials("rocketmq2", "12345678"));
        admin.setNamesrvAddr(ns);
        admin.setInstanceName("acl-admin-" + System.nanoTime());
        admin.start();
        org.apache.rocketmq.common.protocol.body.ClusterInfo info = admin.examineBrokerClusterInfo();
        for (org.apache.rocketmq.common.protocol.route.BrokerData b : info.getBrokerAddrTable().values()) {
            for (String t : new String[] {topic, closedTopic}) {
                admin.createAndUpdateTopicConfig(b.selectBrokerAddr(), new org.apache.rocketmq.common.TopicConfig(t, 2, 2, 6));
            }
        }
        admin.shutdown();
        DefaultMQProducer good = new DefaultMQProducer("acl-pg", credentials(ak, sk));
        good.setNamesrvAddr(ns);
        good.setInstanceName("acl-good-" + System.nanoTime());
        good.setPollNameServerInterval(1000);
        good.start();
        String sent = good.send(message(topic, "a", "acl-key", "allowed")).getSendStatus().name();
        String noPermission = refusal(good, message(closedTopic, "a", "k", "not allowed"));
        good.shutdown();
        DefaultMQProducer bad = new DefaultMQProducer("acl-pg", credentials(ak, sk + "-wrong"));
        bad.setNamesrvAddr(ns);
        bad.setInstanceName("acl-bad-" + System.nanoTime());
        bad.start();
        String wrongSecret = refusal(bad, message(topic, "a", "k", "wrong secret"));
        bad.shutdown();
        Set<String> got = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer("acl-cg", credentials(ak, sk),
            new org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely());
        c.setNamesrvAddr(ns);
        c.setInstanceName("acl-c-" + System.nanoTime());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) got.add(m.getKeys());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && got.isEmpty()) Thread.sleep(100);
        c.shutdown();
        return String.format("{\"sent\":\"%s\",\"consumed\":%s,\"noPermission\":%s,\"wrongSecret\":%s}", sent,
            got.contains("acl-key"), noPermission, wrongSecret);
    }

    /**
     * What admin tools do to online consumers through the broker: list the group's
     * connections, hand one message to the client's listener (CONSUME_MESSAGE_DIRECTLY),
     * read its running info, and reset the group's offsets to before the messages, which the
     * live consumer must follow (it receives every message again).
     */
    static String online(String ns, String topic) throws Exception {
        createTopic(ns, topic, 2);
        String group = "online-" + topic;
        Map<String, AtomicInteger> received = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer(ns, group, "live");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) received.computeIfAbsent(m.getKeys(), k -> new AtomicInteger()).incrementAndGet();
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        Thread.sleep(2000);
        long before = System.currentTimeMillis() - 1000;
        DefaultMQProducer p = producer(ns, "pg-" + topic);
        String offsetMsgId = null;
        for (int i = 0; i < 20; i++) {
            SendResult r = p.send(message(topic, "t", "k" + i, "m" + i));
            if (i == 0) offsetMsgId = r.getOffsetMsgId();
        }
        p.shutdown();
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline && received.size() < 20) Thread.sleep(100);
        Thread.sleep(2000);  // offsets committed
        DefaultMQAdminExt admin = admin(ns);
        org.apache.rocketmq.common.protocol.body.ConsumerConnection conn = admin.examineConsumerConnectionInfo(group);
        String clientId = conn.getConnectionSet().iterator().next().getClientId();
        org.apache.rocketmq.common.protocol.body.ConsumeMessageDirectlyResult direct =
            admin.consumeMessageDirectly(group, clientId, topic, offsetMsgId);
        org.apache.rocketmq.common.protocol.body.ConsumerRunningInfo info = admin.getConsumerRunningInfo(group, clientId, false);
        int afterDirect = received.get("k0").get();
        Map<MessageQueue, Long> reset = admin.resetOffsetByTimestamp(topic, group, before, true);
        deadline = System.currentTimeMillis() + 60_000;
        int again = 0;
        while (System.currentTimeMillis() < deadline) {
            again = 0;
            for (int i = 1; i < 20; i++) if (received.get("k" + i).get() >= 2) again++;
            if (again == 19) break;
            Thread.sleep(100);
        }
        admin.shutdown();
        c.shutdown();
        return String.format("{\"connections\":%d,\"direct\":\"%s\",\"directDelivered\":%s,\"runningInfo\":%s,\"resetQueues\":%d,\"consumedAgain\":%d}",
            conn.getConnectionSet().size(), direct.getConsumeResult(), afterDirect >= 2, info != null && info.getProperties() != null,
            reset.size(), again);
    }

    /**
     * A SQL92 subscription (a BETWEEN 0 AND 3) over messages with a user property a = 0..9,
     * and a producer with message trace on, whose trace records land in RMQ_SYS_TRACE_TOPIC.
     */
    static String sqlTrace(String ns, String topic) throws Exception {
        createTopic(ns, topic, 2);
        Set<String> got = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = consumer(ns, "sql-" + topic, "s1");
        c.subscribe(topic, org.apache.rocketmq.client.consumer.MessageSelector.bySql("a BETWEEN 0 AND 3 AND TAGS = 'sql'"));
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) got.add(m.getKeys());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        Thread.sleep(2000);
        DefaultMQProducer p = new DefaultMQProducer("pg-trace-" + topic, true);
        p.setNamesrvAddr(ns);
        p.setInstanceName("trace-" + System.nanoTime());
        p.start();
        for (int i = 0; i < 10; i++) {
            Message m = message(topic, "sql", "s" + i, "v" + i);
            m.putUserProperty("a", String.valueOf(i));
            p.send(m);
        }
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline && got.size() < 4) Thread.sleep(100);
        Thread.sleep(2000);
        p.shutdown();
        c.shutdown();
        Set<String> traced = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer t = consumer(ns, "trace-reader-" + topic, "t1");
        t.subscribe("RMQ_SYS_TRACE_TOPIC", "*");
        t.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String body = new String(m.getBody(), StandardCharsets.UTF_8);
                for (int i = 0; i < 10; i++) if (body.contains("s" + i)) traced.add("s" + i);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        t.start();
        deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline && traced.size() < 10) Thread.sleep(100);
        t.shutdown();
        List<String> sorted = new ArrayList<>(got);
        Collections.sort(sorted);
        return String.format("{\"matched\":\"%s\",\"traced\":%d}", String.join(",", sorted), traced.size());
    }

    static long percentile(long[] sorted, double p) {
        if (sorted.length == 0) return -1;
        int i = (int) Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
        return sorted[Math.max(0, i)];
    }

    /**
     * Benchmark: THREADS threads share one producer and send SIZE-byte messages synchronously
     * until COUNT messages are sent (COUNT > 0) or SECONDS pass. Reports send TPS, MB/s and the
     * send round-trip p50/p99 in microseconds.
     */
    static String benchProduce(String ns, String topic, int threads, long count, int seconds, int size) throws Exception {
        DefaultMQProducer p = producer(ns, "bench-pg-" + topic);
        p.setCompressMsgBodyOverHowmuch(Integer.MAX_VALUE);
        byte[] body = new byte[size];
        new java.util.Random(1).nextBytes(body);
        p.send(new Message(topic, "b", "warmup", body));
        AtomicLong sent = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        long start = System.nanoTime();
        long deadline = start + seconds * 1_000_000_000L;
        List<long[]> lat = Collections.synchronizedList(new ArrayList<>());
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread th = new Thread(() -> {
                long[] mine = new long[1 << 20];
                int n = 0;
                while (true) {
                    long k = sent.incrementAndGet();
                    if ((count > 0 && k > count) || (count <= 0 && System.nanoTime() > deadline)) {
                        sent.decrementAndGet();
                        break;
                    }
                    long t0 = System.nanoTime();
                    try {
                        p.send(new Message(topic, "b", "k" + k, body));
                    } catch (Exception e) {
                        failed.incrementAndGet();
                        sent.decrementAndGet();
                        continue;
                    }
                    if (n < mine.length) mine[n++] = (System.nanoTime() - t0) / 1000;
                }
                lat.add(java.util.Arrays.copyOf(mine, n));
            });
            th.start();
            ts.add(th);
        }
        for (Thread th : ts) th.join();
        double secs = (System.nanoTime() - start) / 1e9;
        p.shutdown();
        long[] all = lat.stream().flatMapToLong(java.util.Arrays::stream).sorted().toArray();
        return String.format(java.util.Locale.ROOT,
            "{\"sent\":%d,\"failed\":%d,\"seconds\":%.2f,\"tps\":%.0f,\"mbps\":%.2f,\"p50us\":%d,\"p99us\":%d}",
            sent.get(), failed.get(), secs, sent.get() / secs, sent.get() * (double) size / secs / 1e6,
            percentile(all, 0.5), percentile(all, 0.99));
    }

    /** Benchmark: a push consumer group reads COUNT messages of TOPIC; reports consume TPS. */
    static String benchConsume(String ns, String topic, String group, long count, int timeoutSeconds) throws Exception {
        AtomicLong got = new AtomicLong();
        AtomicLong first = new AtomicLong();
        DefaultMQPushConsumer c = consumer(ns, group, "bench");
        c.setConsumeMessageBatchMaxSize(32);
        c.setPullBatchSize(32);
        c.setConsumeThreadMin(4);
        c.setConsumeThreadMax(4);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            first.compareAndSet(0, System.nanoTime());
            got.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        long start = System.nanoTime();
        c.start();
        long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;
        while (System.currentTimeMillis() < deadline && got.get() < count) Thread.sleep(20);
        long end = System.nanoTime();
        c.shutdown();
        double secs = (end - Math.max(start, first.get() == 0 ? start : first.get())) / 1e9;
        return String.format(java.util.Locale.ROOT, "{\"consumed\":%d,\"seconds\":%.2f,\"tps\":%.0f}",
            got.get(), secs, got.get() / secs);
    }

    /**
     * Benchmark: end-to-end latency (send to listener) at RATE messages per second for SECONDS,
     * one producer and one push consumer; p50/p99 in microseconds.
     */
    static String benchLatency(String ns, String topic, int rate, int seconds) throws Exception {
        createTopic(ns, topic, 4);
        List<Long> lat = Collections.synchronizedList(new ArrayList<>());
        DefaultMQPushConsumer c = consumer(ns, "bench-lat-" + topic, "lat");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long now = System.nanoTime();
            for (MessageExt m : msgs) {
                long sentAt = Long.parseLong(m.getUserProperty("sentNanos"));
                lat.add((now - sentAt) / 1000);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        Thread.sleep(3000);
        DefaultMQProducer p = producer(ns, "bench-lat-pg-" + topic);
        byte[] body = new byte[1024];
        long intervalNanos = 1_000_000_000L / rate;
        long start = System.nanoTime();
        long total = (long) rate * seconds;
        for (long i = 0; i < total; i++) {
            long due = start + i * intervalNanos;
            while (System.nanoTime() < due) Thread.onSpinWait();
            Message m = new Message(topic, "l", "k" + i, body);
            m.putUserProperty("sentNanos", Long.toString(System.nanoTime()));
            p.sendOneway(m);
        }
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline && lat.size() < total) Thread.sleep(20);
        p.shutdown();
        c.shutdown();
        long[] sorted;
        synchronized (lat) {
            sorted = lat.stream().mapToLong(Long::longValue).sorted().toArray();
        }
        return String.format("{\"received\":%d,\"p50us\":%d,\"p99us\":%d}", sorted.length,
            percentile(sorted, 0.5), percentile(sorted, 0.99));
    }
}
