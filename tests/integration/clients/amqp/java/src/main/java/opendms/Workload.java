// The AMQP client-matrix workload (tests/integration/test_amqp_clients.py) with the official
// Java client com.rabbitmq:amqp-client 5.x.
// Usage: java -jar amqp-java-workload.jar produce|verify HOST PORT TAG; prints one JSON object.
package opendms;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;

public final class Workload {
    static final int COUNT = 10_000, KEEP = 500;
    static final Map<String, Object> MATCH = Map.of("kind", "order", "region", "eu");
    static final String[] KINDS = {"direct", "fanout", "topic", "headers"};
    static final String[] QUEUES = {"direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep"};

    final Map<String, String> ex = new LinkedHashMap<>(), q = new LinkedHashMap<>();

    Workload(String tag) {
        for (String t : List.of("direct", "fanout", "topic", "headers", "dlx")) ex.put(t, tag + "-" + t);
        for (String s : QUEUES) q.put(s, tag + "-" + s);
    }

    static List<String> seq(int n, String prefix) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(prefix + "-" + i);
        return out;
    }

    static Map<String, Object> with(Map<String, Object> a, Map<String, Object> b) {
        Map<String, Object> out = new HashMap<>(a);
        out.putAll(b);
        return out;
    }

    /** Publisher confirms of one channel: the sequence numbers not yet confirmed, and counts. */
    static final class Confirms {
        final TreeSet<Long> outstanding = new TreeSet<>();
        int acked, nacked;

        Confirms(Channel ch) throws Exception {
            ch.confirmSelect();
            ch.addConfirmListener((tag, multiple) -> settle(tag, multiple, true), (tag, multiple) -> settle(tag, multiple, false));
        }

        synchronized void settle(long tag, boolean multiple, boolean ack) {
            Set<Long> done = multiple ? outstanding.headSet(tag, true) : (outstanding.contains(tag) ? Set.of(tag) : Set.of());
            if (ack) acked += done.size(); else nacked += done.size();
            outstanding.removeAll(new ArrayList<>(done));
            notifyAll();
        }

        synchronized void add(long tag) {
            outstanding.add(tag);
        }

        synchronized int[] awaitAll() throws InterruptedException {
            while (!outstanding.isEmpty()) wait();
            return new int[] {acked, nacked};
        }
    }

    Confirms confirms;

    /** Publishes persistent messages on the confirm channel and waits for every confirm. */
    Map<String, Object> publish(Channel ch, String exchange, String key, List<String> bodies, Map<String, Object> headers)
            throws Exception {
        int[] before = confirms.awaitAll();
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().deliveryMode(2).headers(headers).build();
        for (String body : bodies) {
            confirms.add(ch.getNextPublishSeqNo());
            ch.basicPublish(exchange, key, props, body.getBytes(StandardCharsets.UTF_8));
        }
        int[] after = confirms.awaitAll();
        return Map.of("acked", after[0] - before[0], "nacked", after[1] - before[1]);
    }

    void declare(Channel ch) throws Exception {
        for (String kind : KINDS) ch.exchangeDeclare(ex.get(kind), kind, true);
        ch.exchangeDeclare(ex.get("dlx"), "fanout", true);
        for (String s : List.of("direct-q", "fanout-q", "topic-q", "headers-q", "dead", "keep")) {
            ch.queueDeclare(q.get(s), true, false, false, null);
        }
        ch.queueDeclare(q.get("ttl"), true, false, false, Map.of("x-message-ttl", 100, "x-dead-letter-exchange", ex.get("dlx")));
        ch.queueDeclare(q.get("rejected"), true, false, false, Map.of("x-dead-letter-exchange", ex.get("dlx")));
        ch.queueBind(q.get("direct-q"), ex.get("direct"), "work");
        ch.queueBind(q.get("fanout-q"), ex.get("fanout"), "");
        ch.queueBind(q.get("topic-q"), ex.get("topic"), "*.orders.#");
        ch.queueBind(q.get("headers-q"), ex.get("headers"), "", with(Map.of("x-match", "all"), MATCH));
        ch.queueBind(q.get("dead"), ex.get("dlx"), "");
    }

    /** Two consumers (a channel each, basic.qos 50); the first delivery of every 1000th
     *  message is nacked with requeue, all others acked. */
    static Map<String, Object> consume(Connection conn, String queue) throws Exception {
        Set<String> acked = new HashSet<>();
        List<String> bodies = new ArrayList<>();
        int[] perConsumer = new int[2], counts = new int[2]; // counts: redelivered, nacked
        CountDownLatch done = new CountDownLatch(1);
        List<Channel> channels = new ArrayList<>();
        List<String> tags = new ArrayList<>();
        for (int n = 0; n < 2; n++) {
            Channel ch = conn.createChannel();
            ch.basicQos(50);
            int consumer = n;
            tags.add(ch.basicConsume(queue, false, (tag, d) -> {
                synchronized (acked) {
                    String body = new String(d.getBody(), StandardCharsets.UTF_8);
                    boolean redelivered = d.getEnvelope().isRedeliver();
                    bodies.add(body);
                    perConsumer[consumer]++;
                    if (redelivered) counts[0]++;
                    if (Integer.parseInt(body.split("-")[1]) % 1000 == 0 && !redelivered) {
                        ch.basicNack(d.getEnvelope().getDeliveryTag(), false, true);
                        counts[1]++;
                    } else {
                        ch.basicAck(d.getEnvelope().getDeliveryTag(), false);
                        acked.add(body);
                        if (acked.size() == COUNT) done.countDown();
                    }
                }
            }, tag -> { }));
            channels.add(ch);
        }
        done.await();
        for (int n = 0; n < 2; n++) {
            channels.get(n).basicCancel(tags.get(n));
            channels.get(n).close();
        }
        synchronized (acked) {
            int consumers = (perConsumer[0] > 0 ? 1 : 0) + (perConsumer[1] > 0 ? 1 : 0);
            return Map.of("received", bodies.size(), "distinct", new HashSet<>(bodies).size(), "redelivered", counts[0],
                    "nacked", counts[1], "consumers", consumers);
        }
    }

    /** basic.get, polling up to ~10 s for a message to arrive. */
    static GetResponse pollGet(Channel ch, String queue) throws Exception {
        for (int i = 0; i < 200; i++) {
            GetResponse r = ch.basicGet(queue, false);
            if (r != null) return r;
            Thread.sleep(50);
        }
        throw new IllegalStateException("no message arrived in " + queue);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> death(Channel ch, String queue) throws Exception {
        GetResponse r = pollGet(ch, queue);
        ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
        Map<String, Object> d = ((List<Map<String, Object>>) r.getProps().getHeaders().get("x-death")).get(0);
        return Map.of("body", new String(r.getBody(), StandardCharsets.UTF_8), "reason", d.get("reason").toString(),
                "queue", d.get("queue").toString(), "count", d.get("count"));
    }

    Map<String, Object> queueCounts(Channel ch) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : q.entrySet()) out.put(e.getKey(), ch.queueDeclarePassive(e.getValue()).getMessageCount());
        return out;
    }

    Map<String, Object> produce(Connection conn) throws Exception {
        Channel ch = conn.createChannel();
        declare(ch);
        confirms = new Confirms(ch);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("published", publish(ch, ex.get("direct"), "work", seq(COUNT, "msg"), null));
        out.put("consumed", consume(conn, q.get("direct-q")));

        publish(ch, "", q.get("ttl"), List.of("expire-me"), null);
        out.put("expired", death(ch, q.get("dead")));
        publish(ch, "", q.get("rejected"), List.of("reject-me"), null);
        ch.basicReject(pollGet(ch, q.get("rejected")).getEnvelope().getDeliveryTag(), false);
        out.put("rejected", death(ch, q.get("dead")));

        out.put("kept", publish(ch, "", q.get("keep"), seq(KEEP, "keep"), null));
        publish(ch, ex.get("direct"), "work", List.of("via-direct"), null);
        publish(ch, ex.get("fanout"), "", List.of("via-fanout"), null);
        publish(ch, ex.get("topic"), "eu.orders.created", List.of("via-topic"), null);
        publish(ch, ex.get("headers"), "", List.of("via-headers"), MATCH);
        out.put("queues", queueCounts(ch));
        return out;
    }

    static List<GetResponse> drain(Channel ch, String queue) throws Exception {
        List<GetResponse> out = new ArrayList<>();
        for (GetResponse r; (r = ch.basicGet(queue, false)) != null; ) {
            ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
            out.add(r);
        }
        return out;
    }

    static String body(GetResponse r) {
        return new String(r.getBody(), StandardCharsets.UTF_8);
    }

    Map<String, Object> verify(Connection conn) throws Exception {
        Channel ch = conn.createChannel();
        for (String name : ex.values()) ch.exchangeDeclarePassive(name);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("exchanges", new ArrayList<>(new TreeSet<>(ex.keySet())));
        out.put("queues", queueCounts(ch));
        confirms = new Confirms(ch);
        publish(ch, ex.get("topic"), "us.orders", List.of("after-topic"), null);
        publish(ch, ex.get("headers"), "", List.of("after-headers"), with(MATCH, Map.of("note", "after restart")));
        Map<String, Object> drained = new LinkedHashMap<>();
        for (String s : List.of("direct-q", "fanout-q", "topic-q", "headers-q")) {
            drained.put(s, drain(ch, q.get(s)).stream().map(Workload::body).toList());
        }
        out.put("drained", drained);
        List<GetResponse> kept = drain(ch, q.get("keep"));
        boolean persistent = kept.stream().allMatch(r -> Integer.valueOf(2).equals(r.getProps().getDeliveryMode()));
        out.put("keep", Map.of("count", kept.size(), "in_order", kept.stream().map(Workload::body).toList().equals(seq(KEEP, "keep")),
                "persistent", persistent));
        return out;
    }

    static String json(Object o) {
        if (o instanceof Map<?, ?> m) {
            List<String> parts = new ArrayList<>();
            m.forEach((k, v) -> parts.add(json(k.toString()) + ":" + json(v)));
            return "{" + String.join(",", parts) + "}";
        }
        if (o instanceof List<?> l) return "[" + String.join(",", l.stream().map(Workload::json).toList()) + "]";
        if (o instanceof String s) return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        return String.valueOf(o);
    }

    public static void main(String[] args) throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setHost(args[1]);
        factory.setPort(Integer.parseInt(args[2]));
        factory.setRequestedHeartbeat(0);
        Workload w = new Workload(args[3]);
        try (Connection conn = factory.newConnection("opendms-amqp-java-workload")) {
            Map<String, Object> out = switch (args[0]) {
                case "produce" -> w.produce(conn);
                case "verify" -> w.verify(conn);
                default -> throw new IllegalArgumentException("unknown phase " + args[0]);
            };
            System.out.println(json(out));
        }
    }
}
