// The RocketMQ workload with the official Go client github.com/apache/rocketmq-client-go/v2:
// one scenario per run, one JSON object on stdout (tests/integration/test_rocketmq.py).
//
//	produce-consume NS TOPIC N   N messages (a quarter each sync, async, oneway and in
//	                             batches of 10, tags alternating TagA/TagB), a push group of
//	                             two members and a group on TagA only
//	delay NS TOPIC               delay level 2 (5 s)
//	retry NS TOPIC               a listener that fails once, then succeeds
//	broadcast NS TOPIC N         two BROADCASTING members each get every message
//	orderly NS TOPIC STEPS       10 orders sent to a queue by order id, consumed orderly
//	transaction NS TOPIC         committed, rolled-back and undecided (checked back, then
//	                             committed) transactional messages; what a consumer gets
//	acl NS TOPIC AK SK           a signed send and its consumption; then a wrong secret
//
// (rocketmq-client-go 2.1.2 has no message query API: queries by key and id are the Java and
// C++ clients'.)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func newProducer(ns, group string) rocketmq.Producer {
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		producer.WithGroupName(group),
		producer.WithInstanceName(group+strconv.FormatInt(time.Now().UnixNano(), 10)),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(10*time.Second),
	)
	if err != nil {
		fail(err)
	}
	if err := p.Start(); err != nil {
		fail(err)
	}
	return p
}

func newConsumer(ns, group, instance, topic, expr string, model consumer.MessageModel,
	handle func(*primitive.MessageExt) consumer.ConsumeResult) rocketmq.PushConsumer {
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		consumer.WithGroupName(group),
		consumer.WithInstance(instance),
		consumer.WithConsumerModel(model),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		fail(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: expr},
		func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				if r := handle(m); r != consumer.ConsumeSuccess {
					return r, nil
				}
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		fail(err)
	}
	if err := c.Start(); err != nil {
		fail(err)
	}
	return c
}

func message(topic string, i int, key string) *primitive.Message {
	tag := "TagA"
	if i%2 == 1 {
		tag = "TagB"
	}
	if key == "" {
		key = "k" + strconv.Itoa(i)
	}
	return primitive.NewMessage(topic, []byte("m"+strconv.Itoa(i))).WithTag(tag).WithKeys([]string{key})
}

func waitFor(cond func() bool, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !cond() {
		time.Sleep(100 * time.Millisecond)
	}
}

func produceConsume(ns, topic string, n int) map[string]any {
	ctx := context.Background()
	p := newProducer(ns, "pg-"+topic)
	if _, err := p.SendSync(ctx, message(topic, -1, "warmup")); err != nil {
		fail(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	members := map[string]bool{}
	tagA := map[string]bool{}
	wrongTag := 0
	var consumers []rocketmq.PushConsumer
	for _, name := range []string{"c1", "c2"} {
		name := name
		consumers = append(consumers, newConsumer(ns, "cg-"+topic, name, topic, "TagA || TagB", consumer.Clustering,
			func(m *primitive.MessageExt) consumer.ConsumeResult {
				mu.Lock()
				seen[m.GetKeys()]++
				members[name] = true
				mu.Unlock()
				return consumer.ConsumeSuccess
			}))
	}
	consumers = append(consumers, newConsumer(ns, "cg-taga-"+topic, "f1", topic, "TagA", consumer.Clustering,
		func(m *primitive.MessageExt) consumer.ConsumeResult {
			mu.Lock()
			if m.GetTags() != "TagA" {
				wrongTag++
			}
			tagA[m.GetKeys()] = true
			mu.Unlock()
			return consumer.ConsumeSuccess
		}))
	time.Sleep(3 * time.Second)
	sent := int64(0)
	quarter, i := n/4, 0
	for ; i < quarter; i++ {
		if r, err := p.SendSync(ctx, message(topic, i, "")); err == nil && r.Status == primitive.SendOK {
			sent++
		}
	}
	var wg sync.WaitGroup
	for j := 0; j < quarter; j, i = j+1, i+1 {
		wg.Add(1)
		err := p.SendAsync(ctx, func(ctx context.Context, r *primitive.SendResult, err error) {
			if err == nil && r.Status == primitive.SendOK {
				atomic.AddInt64(&sent, 1)
			}
			wg.Done()
		}, message(topic, i, ""))
		if err != nil {
			wg.Done()
		}
	}
	wg.Wait()
	for j := 0; j < quarter; j, i = j+1, i+1 {
		if err := p.SendOneWay(ctx, message(topic, i, "")); err == nil {
			sent++
		}
	}
	for i < n {
		var batch []*primitive.Message
		for j := 0; j < 10 && i < n; j, i = j+1, i+1 {
			batch = append(batch, message(topic, i, ""))
		}
		if r, err := p.SendSync(ctx, batch...); err == nil && r.Status == primitive.SendOK {
			sent += int64(len(batch))
		}
	}
	_ = p.Shutdown()
	waitFor(func() bool {
		mu.Lock()
		defer mu.Unlock()
		have := 0
		for k := range seen {
			if k != "warmup" {
				have++
			}
		}
		return have >= n && len(tagA) >= n/2
	}, 120*time.Second)
	time.Sleep(time.Second)
	for _, c := range consumers {
		_ = c.Shutdown()
	}
	mu.Lock()
	defer mu.Unlock()
	delete(seen, "warmup")
	delete(tagA, "warmup")
	total, dups := 0, 0
	for _, v := range seen {
		total += v
		if v > 1 {
			dups++
		}
	}
	return map[string]any{"sent": sent, "distinct": len(seen), "total": total, "duplicates": dups,
		"members": len(members), "tagA": len(tagA), "wrongTag": wrongTag}
}

func delay(ns, topic string) map[string]any {
	ctx := context.Background()
	p := newProducer(ns, "pg-"+topic)
	if _, err := p.SendSync(ctx, message(topic, -1, "warmup")); err != nil {
		fail(err)
	}
	var arrived atomic.Int64
	c := newConsumer(ns, "dg-"+topic, "d1", topic, "*", consumer.Clustering, func(m *primitive.MessageExt) consumer.ConsumeResult {
		if m.GetKeys() == "delayed" {
			arrived.CompareAndSwap(0, time.Now().UnixMilli())
		}
		return consumer.ConsumeSuccess
	})
	time.Sleep(3 * time.Second)
	m := message(topic, 0, "delayed")
	m.WithDelayTimeLevel(2)
	sentAt := time.Now().UnixMilli()
	r, err := p.SendSync(ctx, m)
	if err != nil {
		fail(err)
	}
	waitFor(func() bool { return arrived.Load() != 0 }, 60*time.Second)
	_ = p.Shutdown()
	_ = c.Shutdown()
	d := int64(-1)
	if a := arrived.Load(); a != 0 {
		d = a - sentAt
	}
	return map[string]any{"status": int(r.Status), "delayMs": d}
}

func retry(ns, topic string) map[string]any {
	ctx := context.Background()
	p := newProducer(ns, "pg-"+topic)
	if _, err := p.SendSync(ctx, message(topic, -1, "warmup")); err != nil {
		fail(err)
	}
	var mu sync.Mutex
	var attempts []int32
	c := newConsumer(ns, "rg-"+topic, "r1", topic, "*", consumer.Clustering, func(m *primitive.MessageExt) consumer.ConsumeResult {
		if m.GetKeys() != "flaky" {
			return consumer.ConsumeSuccess
		}
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, m.ReconsumeTimes)
		if len(attempts) == 1 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	time.Sleep(3 * time.Second)
	if _, err := p.SendSync(ctx, message(topic, 0, "flaky")); err != nil {
		fail(err)
	}
	waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(attempts) >= 2 }, 90*time.Second)
	_ = p.Shutdown()
	_ = c.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	return map[string]any{"attempts": attempts}
}

func broadcast(ns, topic string, n int) map[string]any {
	ctx := context.Background()
	p := newProducer(ns, "pg-"+topic)
	if _, err := p.SendSync(ctx, message(topic, -1, "warmup")); err != nil {
		fail(err)
	}
	var mu sync.Mutex
	got := map[string]map[string]bool{"b1": {}, "b2": {}}
	var consumers []rocketmq.PushConsumer
	for _, name := range []string{"b1", "b2"} {
		name := name
		consumers = append(consumers, newConsumer(ns, "bg-"+topic, name, topic, "*", consumer.BroadCasting,
			func(m *primitive.MessageExt) consumer.ConsumeResult {
				mu.Lock()
				got[name][m.GetKeys()] = true
				mu.Unlock()
				return consumer.ConsumeSuccess
			}))
	}
	time.Sleep(3 * time.Second)
	for i := 0; i < n; i++ {
		if _, err := p.SendSync(ctx, message(topic, i, "")); err != nil {
			fail(err)
		}
	}
	count := func(name string) int {
		c := 0
		for i := 0; i < n; i++ {
			if got[name]["k"+strconv.Itoa(i)] {
				c++
			}
		}
		return c
	}
	waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return count("b1") >= n && count("b2") >= n }, 60*time.Second)
	_ = p.Shutdown()
	for _, c := range consumers {
		_ = c.Shutdown()
	}
	mu.Lock()
	defer mu.Unlock()
	return map[string]any{"b1": count("b1"), "b2": count("b2")}
}

func orderly(ns, topic string, steps int) map[string]any {
	ctx := context.Background()
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		producer.WithGroupName("pg-"+topic),
		producer.WithQueueSelector(producer.NewHashQueueSelector()),
	)
	if err != nil {
		fail(err)
	}
	if err := p.Start(); err != nil {
		fail(err)
	}
	for s := 0; s < steps; s++ {
		for o := 0; o < 10; o++ {
			m := primitive.NewMessage(topic, []byte(fmt.Sprintf("%d:%d", o, s))).WithTag("order").
				WithKeys([]string{fmt.Sprintf("o%d-%d", o, s)}).WithShardingKey(strconv.Itoa(o))
			if _, err := p.SendSync(ctx, m); err != nil {
				fail(err)
			}
		}
	}
	_ = p.Shutdown()
	var mu sync.Mutex
	last := map[int]int{}
	outOfOrder, received := 0, 0
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		consumer.WithGroupName("og-"+topic),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerOrder(true),
	)
	if err != nil {
		fail(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				var o, s int
				fmt.Sscanf(string(m.Body), "%d:%d", &o, &s)
				prev, seen := last[o]
				if (!seen && s != 0) || (seen && prev+1 != s) {
					outOfOrder++
				}
				last[o] = s
				received++
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		fail(err)
	}
	if err := c.Start(); err != nil {
		fail(err)
	}
	waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return received >= 10*steps }, 60*time.Second)
	_ = c.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	return map[string]any{"received": received, "outOfOrder": outOfOrder}
}

// Decides transactions by key: commit-me commits, rollback-me rolls back, anything else
// waits for the broker's check-back, which commits.
type txListener struct {
	mu      sync.Mutex
	checked []string
}

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	switch m.GetKeys() {
	case "commit-me":
		return primitive.CommitMessageState
	case "rollback-me":
		return primitive.RollbackMessageState
	}
	return primitive.UnknowState
}

func (l *txListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.mu.Lock()
	l.checked = append(l.checked, m.GetKeys())
	l.mu.Unlock()
	return primitive.CommitMessageState
}

func transaction(ns, topic string) map[string]any {
	l := &txListener{}
	p, err := rocketmq.NewTransactionProducer(l,
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		producer.WithGroupName("tpg-"+topic),
		producer.WithInstanceName("tx"+strconv.FormatInt(time.Now().UnixNano(), 10)),
		producer.WithSendMsgTimeout(10*time.Second),
	)
	if err != nil {
		fail(err)
	}
	if err := p.Start(); err != nil {
		fail(err)
	}
	for _, key := range []string{"commit-me", "rollback-me", "ask-me"} {
		m := primitive.NewMessage(topic, []byte(key)).WithTag("tx").WithKeys([]string{key})
		if _, err := p.SendMessageInTransaction(context.Background(), m); err != nil {
			fail(err)
		}
	}
	var mu sync.Mutex
	got := map[string]bool{}
	c := newConsumer(ns, "cg-"+topic, "tx", topic, "*", consumer.Clustering, func(m *primitive.MessageExt) consumer.ConsumeResult {
		mu.Lock()
		got[m.GetKeys()] = true
		mu.Unlock()
		return consumer.ConsumeSuccess
	})
	waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return got["ask-me"] && got["commit-me"] }, 60*time.Second)
	time.Sleep(2 * time.Second)
	_ = c.Shutdown()
	_ = p.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	consumed := []string{}
	for _, k := range []string{"ask-me", "commit-me", "rollback-me"} {
		if got[k] {
			consumed = append(consumed, k)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	checkedBack := false
	for _, k := range l.checked {
		checkedBack = checkedBack || k == "ask-me"
	}
	return map[string]any{"consumed": consumed, "checkedBack": checkedBack}
}

func acl(ns, topic, ak, sk string) map[string]any {
	send := func(secret string) error {
		p, err := rocketmq.NewProducer(
			producer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
			producer.WithGroupName("acl-pg-"+topic),
			producer.WithInstanceName("acl"+strconv.FormatInt(time.Now().UnixNano(), 10)),
			producer.WithRetry(0),
			producer.WithSendMsgTimeout(10*time.Second),
			producer.WithCredentials(primitive.Credentials{AccessKey: ak, SecretKey: secret}),
		)
		if err != nil {
			return err
		}
		if err := p.Start(); err != nil {
			return err
		}
		defer func() { _ = p.Shutdown() }()
		m := primitive.NewMessage(topic, []byte("acl")).WithTag("a").WithKeys([]string{"acl-key"})
		_, err = p.SendSync(context.Background(), m)
		return err
	}
	sent := send(sk)
	var got atomic.Bool
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{ns})),
		consumer.WithGroupName("acl-cg-"+topic),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithCredentials(primitive.Credentials{AccessKey: ak, SecretKey: sk}),
	)
	if err != nil {
		fail(err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				if m.GetKeys() == "acl-key" {
					got.Store(true)
				}
			}
			return consumer.ConsumeSuccess, nil
		}); err != nil {
		fail(err)
	}
	if err := c.Start(); err != nil {
		fail(err)
	}
	waitFor(got.Load, 60*time.Second)
	_ = c.Shutdown()
	wrong := send(sk + "-wrong")
	wrongText := ""
	if wrong != nil {
		wrongText = wrong.Error()
	}
	return map[string]any{"sent": sent == nil, "consumed": got.Load(), "wrongSecretRefused": wrong != nil,
		"wrongSecret": wrongText}
}

func main() {
	rlog.SetLogLevel("error")
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: SCENARIO NAMESRV TOPIC [N]"))
	}
	scenario, ns, topic := os.Args[1], os.Args[2], os.Args[3]
	var out map[string]any
	switch scenario {
	case "produce-consume":
		n, _ := strconv.Atoi(os.Args[4])
		out = produceConsume(ns, topic, n)
	case "delay":
		out = delay(ns, topic)
	case "retry":
		out = retry(ns, topic)
	case "broadcast":
		n, _ := strconv.Atoi(os.Args[4])
		out = broadcast(ns, topic, n)
	case "orderly":
		n, _ := strconv.Atoi(os.Args[4])
		out = orderly(ns, topic, n)
	case "transaction":
		out = transaction(ns, topic)
	case "acl":
		out = acl(ns, topic, os.Args[4], os.Args[5])
	default:
		fail(fmt.Errorf("unknown scenario %s", scenario))
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	os.Exit(0)
}
