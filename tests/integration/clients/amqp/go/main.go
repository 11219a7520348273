// The AMQP client-matrix workload (tests/integration/test_amqp_clients.py) with the official
// Go client github.com/rabbitmq/amqp091-go.
// Usage: amqp-go-workload produce|verify HOST PORT TAG; prints one JSON object.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	count = 10000
	keep  = 500
)

var match = amqp.Table{"kind": "order", "region": "eu"}

type obj = map[string]any

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func names(tag string) (map[string]string, map[string]string) {
	ex, q := map[string]string{}, map[string]string{}
	for _, t := range []string{"direct", "fanout", "topic", "headers", "dlx"} {
		ex[t] = tag + "-" + t
	}
	for _, s := range []string{"direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep"} {
		q[s] = tag + "-" + s
	}
	return ex, q
}

func seq(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func with(t amqp.Table, extra amqp.Table) amqp.Table {
	out := amqp.Table{}
	for k, v := range t {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func declare(ch *amqp.Channel, ex, q map[string]string) {
	for _, kind := range []string{"direct", "fanout", "topic", "headers"} {
		must(ch.ExchangeDeclare(ex[kind], kind, true, false, false, false, nil))
	}
	must(ch.ExchangeDeclare(ex["dlx"], "fanout", true, false, false, false, nil))
	for _, s := range []string{"direct-q", "fanout-q", "topic-q", "headers-q", "dead", "keep"} {
		_, err := ch.QueueDeclare(q[s], true, false, false, false, nil)
		must(err)
	}
	_, err := ch.QueueDeclare(q["ttl"], true, false, false, false,
		amqp.Table{"x-message-ttl": int32(100), "x-dead-letter-exchange": ex["dlx"]})
	must(err)
	_, err = ch.QueueDeclare(q["rejected"], true, false, false, false, amqp.Table{"x-dead-letter-exchange": ex["dlx"]})
	must(err)
	must(ch.QueueBind(q["direct-q"], "work", ex["direct"], false, nil))
	must(ch.QueueBind(q["fanout-q"], "", ex["fanout"], false, nil))
	must(ch.QueueBind(q["topic-q"], "*.orders.#", ex["topic"], false, nil))
	must(ch.QueueBind(q["headers-q"], "", ex["headers"], false, with(amqp.Table{"x-match": "all"}, match)))
	must(ch.QueueBind(q["dead"], "", ex["dlx"], false, nil))
}

// publish sends persistent messages on a confirm channel and waits for every confirm.
func publish(ch *amqp.Channel, exchange, key string, bodies []string, headers amqp.Table) obj {
	confirms := make([]*amqp.DeferredConfirmation, len(bodies))
	for i, body := range bodies {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, key, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Headers: headers, Body: []byte(body)})
		must(err)
		confirms[i] = dc
	}
	acked, nacked := 0, 0
	for _, dc := range confirms {
		if dc.Wait() {
			acked++
		} else {
			nacked++
		}
	}
	return obj{"acked": acked, "nacked": nacked}
}

// consume runs two consumers (a channel each, basic.qos 50) on queue; the first delivery of
// every 1000th message is nacked with requeue, all others acked.
func consume(conn *amqp.Connection, queue string) obj {
	var mu sync.Mutex
	var wg sync.WaitGroup
	acked, bodies := map[string]bool{}, []string{}
	perConsumer, redelivered, nacked := [2]int{}, 0, 0
	done := make(chan struct{})
	channels, tags := []*amqp.Channel{}, []string{}
	for n := 0; n < 2; n++ {
		ch, err := conn.Channel()
		must(err)
		must(ch.Qos(50, 0, false))
		tag := fmt.Sprintf("consumer-%d", n)
		deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
		must(err)
		channels, tags = append(channels, ch), append(tags, tag)
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			for d := range deliveries {
				mu.Lock()
				body := string(d.Body)
				bodies = append(bodies, body)
				perConsumer[n]++
				if d.Redelivered {
					redelivered++
				}
				i, _ := strconv.Atoi(strings.Split(body, "-")[1])
				if i%1000 == 0 && !d.Redelivered {
					must(d.Nack(false, true))
					nacked++
				} else {
					must(d.Ack(false))
					acked[body] = true
					if len(acked) == count {
						close(done)
					}
				}
				mu.Unlock()
			}
		}(n)
	}
	<-done
	for i, ch := range channels {
		must(ch.Cancel(tags[i], false))
	}
	wg.Wait()
	for _, ch := range channels {
		must(ch.Close())
	}
	distinct := map[string]bool{}
	for _, b := range bodies {
		distinct[b] = true
	}
	consumers := 0
	for _, n := range perConsumer {
		if n > 0 {
			consumers++
		}
	}
	return obj{"received": len(bodies), "distinct": len(distinct), "redelivered": redelivered, "nacked": nacked,
		"consumers": consumers}
}

// pollGet is basic.get, polling up to ~10 s for a message to arrive.
func pollGet(ch *amqp.Channel, queue string) amqp.Delivery {
	for i := 0; i < 200; i++ {
		d, ok, err := ch.Get(queue, false)
		must(err)
		if ok {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("no message arrived in %s", queue)
	return amqp.Delivery{}
}

func death(ch *amqp.Channel, queue string) obj {
	d := pollGet(ch, queue)
	must(d.Ack(false))
	x := d.Headers["x-death"].([]any)[0].(amqp.Table)
	return obj{"body": string(d.Body), "reason": x["reason"], "queue": x["queue"], "count": x["count"]}
}

func queueCounts(ch *amqp.Channel, q map[string]string) obj {
	out := obj{}
	for s, name := range q {
		info, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		must(err)
		out[s] = info.Messages
	}
	return out
}

func produce(conn *amqp.Connection, tag string) obj {
	ex, q := names(tag)
	ch, err := conn.Channel()
	must(err)
	declare(ch, ex, q)
	must(ch.Confirm(false))
	out := obj{"published": publish(ch, ex["direct"], "work", seq(count, "msg"), nil)}
	out["consumed"] = consume(conn, q["direct-q"])

	publish(ch, "", q["ttl"], []string{"expire-me"}, nil)
	out["expired"] = death(ch, q["dead"])
	publish(ch, "", q["rejected"], []string{"reject-me"}, nil)
	must(pollGet(ch, q["rejected"]).Reject(false))
	out["rejected"] = death(ch, q["dead"])

	out["kept"] = publish(ch, "", q["keep"], seq(keep, "keep"), nil)
	publish(ch, ex["direct"], "work", []string{"via-direct"}, nil)
	publish(ch, ex["fanout"], "", []string{"via-fanout"}, nil)
	publish(ch, ex["topic"], "eu.orders.created", []string{"via-topic"}, nil)
	publish(ch, ex["headers"], "", []string{"via-headers"}, match)
	out["queues"] = queueCounts(ch, q)
	return out
}

type message struct {
	body string
	mode uint8
}

func drain(ch *amqp.Channel, queue string) []message {
	out := []message{}
	for {
		d, ok, err := ch.Get(queue, false)
		must(err)
		if !ok {
			return out
		}
		must(d.Ack(false))
		out = append(out, message{string(d.Body), d.DeliveryMode})
	}
}

func verify(conn *amqp.Connection, tag string) obj {
	ex, q := names(tag)
	ch, err := conn.Channel()
	must(err)
	found := []string{}
	for k, name := range ex {
		must(ch.ExchangeDeclarePassive(name, "direct", true, false, false, false, nil))
		found = append(found, k)
	}
	sort.Strings(found)
	out := obj{"exchanges": found, "queues": queueCounts(ch, q)}
	must(ch.Confirm(false))
	publish(ch, ex["topic"], "us.orders", []string{"after-topic"}, nil)
	publish(ch, ex["headers"], "", []string{"after-headers"}, with(match, amqp.Table{"note": "after restart"}))
	drained := obj{}
	for _, s := range []string{"direct-q", "fanout-q", "topic-q", "headers-q"} {
		bodies := []string{}
		for _, m := range drain(ch, q[s]) {
			bodies = append(bodies, m.body)
		}
		drained[s] = bodies
	}
	out["drained"] = drained
	kept, want := drain(ch, q["keep"]), seq(keep, "keep")
	inOrder, persistent := len(kept) == keep, true
	for i, m := range kept {
		inOrder = inOrder && i < keep && m.body == want[i]
		persistent = persistent && m.mode == amqp.Persistent
	}
	out["keep"] = obj{"count": len(kept), "in_order": inOrder, "persistent": persistent}
	return out
}

func main() {
	if len(os.Args) != 5 {
		log.Fatal("usage: amqp-go-workload produce|verify HOST PORT TAG")
	}
	phase, host, port, tag := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	conn, err := amqp.DialConfig(fmt.Sprintf("amqp://guest:guest@%s:%s/", host, port), amqp.Config{Heartbeat: 0})
	must(err)
	var out obj
	switch phase {
	case "produce":
		out = produce(conn, tag)
	case "verify":
		out = verify(conn, tag)
	default:
		log.Fatalf("unknown phase %q", phase)
	}
	must(conn.Close())
	must(json.NewEncoder(os.Stdout).Encode(out))
}
