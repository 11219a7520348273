"""Control-plane benchmark of `opendms serve` (run by bench/control-plane).

Measures, on one machine:
  1. create -> RUNNING: 100 Kafka instances created one after the other through the Huawei
     API; for each, the time from the create request until show_instance says RUNNING, and
     until a Kafka client has produced a record to it (the proof that RUNNING is real);
  2. memory: the server's RSS before the first instance and with the 100 instances idle;
  3. GET throughput and latency: wrk against show_instance of one instance;
and the same first two for the peer, Apache Kafka (one KRaft broker): from starting the
process until a client produced a record to it, and its RSS when idle.
  4. the same for 100 RabbitMQ instances (seed 002) on a fresh server: create -> RUNNING,
     -> a message published with a confirm and got back by pika, and memory idle; beside
     the peer, Debian's RabbitMQ 3.10 (one node): start -> the same message, and its RSS.

It reports; it asserts nothing. Figures are printed as a table and written as JSON.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika
import requests
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from amqp_peers import DebianRabbit, rabbitmq_installed  # noqa: E402

AK, SK = "BENCHAKAAAAAAAAAAAAA", "benchsecretbenchsecretbenchsecretbenchse"
PROJECT = "0123456789abcdef0123456789abcdef"
USER, PASSWORD, DOMAIN = "bench", "Bench-passw0rd", "bench"
POOL, POOL_SIZE = "127.60.0.1", "1000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    """Resident set of a process and its children, in MB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def produce_one(bootstrap, timeout=30):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": timeout * 1000})
    errors = []
    p.produce("bench-proof", b"x", on_delivery=lambda err, msg: errors.append(err))
    left = p.flush(timeout)
    if left or not errors or errors[0] is not None:
        raise RuntimeError(f"produce to {bootstrap} failed: {errors}")


def publish_and_get(host, port, user, password, timeout=30):
    """A persistent message published with a confirm and got back: the broker works."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                host, port, "/", pika.PlainCredentials(user, password), heartbeat=0, connection_attempts=1))
            break
        except pika.exceptions.AMQPConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("bench-proof", durable=True)
    ch.basic_publish("", "bench-proof", b"x", pika.BasicProperties(delivery_mode=2))
    method, _, body = ch.basic_get("bench-proof", auto_ack=True)
    conn.close()
    if body != b"x":
        raise RuntimeError(f"message not got back from {host}:{port}")


class Serve:
    def __init__(self, binary, work, name="serve-data"):
        self.data = work / name
        subprocess.run(["rm", "-rf", str(self.data)], check=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OPENDMS_LISTEN": f"127.0.0.1:{self.port}", "OPENDMS_DATA_DIR": str(self.data),
               "OPENDMS_ACCESS_KEY": AK, "OPENDMS_SECRET_KEY": SK, "OPENDMS_PROJECT_ID": PROJECT,
               "OPENDMS_DOMAIN": DOMAIN, "OPENDMS_USER": USER, "OPENDMS_PASSWORD": PASSWORD,
               "OPENDMS_BROKER_IP_POOL": POOL, "OPENDMS_BROKER_IP_POOL_SIZE": POOL_SIZE,
               "RUST_LOG": "warn"}
        self.log = open(work / "serve.stderr.log", "wb")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError("opendms serve exited before ready")
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": USER, "password": PASSWORD, "domain": {"name": DOMAIN}}}},
            "scope": {"project": {"id": PROJECT}}}}
        r = requests.post(self.url + "/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.token = r.headers["X-Subject-Token"]
        self.http = requests.Session()
        self.http.headers.update({"X-Auth-Token": self.token, "Content-Type": "application/json"})

    def zone(self):
        return self.http.get(self.url + "/v2/available-zones").json()["available_zones"][0]["id"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def create_running(serve, path, body):
    """Creates an instance and polls show_instance until it is RUNNING: its id and show."""
    r = serve.http.post(serve.url + path, data=json.dumps(body))
    r.raise_for_status()
    iid = r.json()["instance_id"]
    while True:
        show = serve.http.get(f"{serve.url}/v2/{PROJECT}/instances/{iid}").json()
        if show["status"] == "RUNNING":
            return iid, show
        if show["status"] == "CREATEFAILED":
            raise RuntimeError(f"instance {iid} failed: {show.get('status_reason')}")


def bench_creates(serve, count):
    zone = serve.zone()
    running, produced, ids = [], [], []
    for i in range(count):
        body = {"name": f"bench-{i:03d}", "engine": "kafka", "engine_version": "3.x", "broker_num": 3,
                "storage_space": 300, "vpc_id": "vpc", "security_group_id": "sg", "subnet_id": "subnet",
                "available_zones": [zone], "product_id": "c6.2u4g.cluster",
                "storage_spec_code": "dms.physical.storage.ultra.v2", "enable_auto_topic": True}
        t0 = time.perf_counter()
        iid, show = create_running(serve, f"/v2/{PROJECT}/kafka/instances", body)
        t1 = time.perf_counter()
        bootstrap = ",".join(f"{ip}:{show['port']}" for ip in show["connect_address"].split(","))
        produce_one(bootstrap)
        t2 = time.perf_counter()
        running.append((t1 - t0) * 1000)
        produced.append((t2 - t0) * 1000)
        ids.append(iid)
    return ids, running, produced


def bench_rabbit_creates(serve, count):
    zone = serve.zone()
    running, used = [], []
    for i in range(count):
        body = {"name": f"rabbit-{i:03d}", "engine": "RabbitMQ", "engine_version": "3.8.35", "storage_space": 100,
                "access_user": "bench-user", "password": "Bench-Passw0rd", "vpc_id": "vpc",
                "security_group_id": "sg", "subnet_id": "subnet", "available_zones": [zone],
                "product_id": "c6.2u4g.single", "storage_spec_code": "dms.physical.storage.high.v2"}
        t0 = time.perf_counter()
        _, show = create_running(serve, f"/v2/rabbitmq/{PROJECT}/instances", body)
        t1 = time.perf_counter()
        publish_and_get(show["connect_address"], show["port"], "bench-user", "Bench-Passw0rd")
        t2 = time.perf_counter()
        running.append((t1 - t0) * 1000)
        used.append((t2 - t0) * 1000)
    return running, used


def bench_rabbit_peer(work, rounds):
    """Debian's RabbitMQ 3.10, one node with its management plug-in (as every DMS instance
    has): start -> a message published and got back, and its RSS once idle."""
    starts, rss = [], []
    for i in range(rounds):
        node = DebianRabbit(work, name=f"rabbitmq-peer-{i}", plugins=("rabbitmq_management",))
        t0 = time.perf_counter()
        node.start()
        try:
            publish_and_get("127.0.0.1", node.port, "guest", "guest", timeout=60)
            starts.append((time.perf_counter() - t0) * 1000)
            time.sleep(5)
            pids = subprocess.run(["pgrep", "-f", f"beam.smp.*{node.dir}"], capture_output=True,
                                  text=True).stdout.split()
            rss.append(rss_mb(int(pids[0])) if pids else 0.0)
        finally:
            node.stop()
            subprocess.run(["rm", "-rf", str(node.dir)])
    return starts, rss


def bench_gets(serve, iid, seconds, threads, connections):
    url = f"{serve.url}/v2/{PROJECT}/instances/{iid}"
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-H", f"X-Auth-Token: {serve.token}", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
        lat[p] = value
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat["50"], "p90_ms": lat["90"], "p99_ms": lat["99"],
            "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else "",
            "raw": out}


def bench_kafka_peer(kafka_home, work, rounds):
    """Start one Apache Kafka KRaft broker `rounds` times: time until a client produced to it,
    and its RSS once idle."""
    java = os.environ.get("JAVA", "java")
    cp = f"{kafka_home}/libs/*"
    starts, rss = [], []
    for i in range(rounds):
        port, controller = free_port(), free_port()
        logs = Path(tempfile.mkdtemp(prefix="kafka-peer-", dir=work))
        props = logs / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={logs}/data", "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "num.partitions=1", "group.initial.rebalance.delay.ms=0",
        ]) + "\n")
        env = {**os.environ, "KAFKA_HEAP_OPTS": os.environ.get("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G")}
        # Formatting the log directory is part of creating a broker, as creating an instance is.
        t0 = time.perf_counter()
        subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", "bench-cluster-id-0001",
                        "-c", str(props)], check=True, capture_output=True, env=env)
        proc = subprocess.Popen([java, "-Xmx1G", "-Xms1G", "-cp", cp, "kafka.Kafka", str(props)],
                                stdout=subprocess.DEVNULL, stderr=open(logs / "stderr.log", "wb"), env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the Kafka broker did not start; see " + str(logs))
                    time.sleep(0.01)
            produce_one(f"127.0.0.1:{port}", timeout=120)
            starts.append((time.perf_counter() - t0) * 1000)
            time.sleep(5)
            rss.append(rss_mb(proc.pid))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            subprocess.run(["rm", "-rf", str(logs)])
    return starts, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=32)
    ap.add_argument("--idle-seconds", type=int, default=10)
    ap.add_argument("--kafka-home", help="Apache Kafka libs to measure as the peer")
    ap.add_argument("--kafka-rounds", type=int, default=3)
    ap.add_argument("--rabbitmq-instances", type=int, default=100)
    ap.add_argument("--rabbitmq-rounds", type=int, default=3, help="starts of Debian's RabbitMQ (0: none)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {}

    serve = Serve(args.binary, work)
    try:
        time.sleep(1)
        results["rss_empty_mb"] = rss_mb(serve.proc.pid)
        ids, running, produced = bench_creates(serve, args.instances)
        results["instances"] = len(ids)
        results["create_to_running_ms"] = {"p50": percentile(running, 50), "p99": percentile(running, 99),
                                           "mean": statistics.mean(running)}
        results["create_to_produced_ms"] = {"p50": percentile(produced, 50), "p99": percentile(produced, 99),
                                            "mean": statistics.mean(produced)}
        time.sleep(args.idle_seconds)
        results["rss_idle_mb"] = rss_mb(serve.proc.pid)
        gets = bench_gets(serve, ids[len(ids) // 2], args.wrk_seconds, args.wrk_threads, args.wrk_connections)
        results["get_instance"] = {k: v for k, v in gets.items() if k != "raw"}
        (work / "wrk.txt").write_text(gets["raw"])
        results["rss_after_gets_mb"] = rss_mb(serve.proc.pid)
    finally:
        serve.stop()

    if args.rabbitmq_instances:
        serve = Serve(args.binary, work, name="serve-rabbit-data")
        try:
            time.sleep(1)
            results["rabbit_rss_empty_mb"] = rss_mb(serve.proc.pid)
            running, used = bench_rabbit_creates(serve, args.rabbitmq_instances)
            results["rabbit_instances"] = len(running)
            results["rabbit_create_to_running_ms"] = {"p50": percentile(running, 50), "p99": percentile(running, 99)}
            results["rabbit_create_to_message_ms"] = {"p50": percentile(used, 50), "p99": percentile(used, 99)}
            time.sleep(args.idle_seconds)
            results["rabbit_rss_idle_mb"] = rss_mb(serve.proc.pid)
        finally:
            serve.stop()
        if args.rabbitmq_rounds and rabbitmq_installed():
            starts, rss = bench_rabbit_peer(work, args.rabbitmq_rounds)
            results["rabbit_peer"] = {"name": "RabbitMQ 3.10 (Debian)", "rounds": len(starts),
                                      "start_to_message_ms": {"p50": percentile(starts, 50), "max": max(starts)},
                                      "rss_idle_mb": statistics.median(rss)}

    if args.kafka_home:
        starts, rss = bench_kafka_peer(args.kafka_home, work, args.kafka_rounds)
        results["peer"] = {"name": "Apache Kafka " + Path(args.kafka_home).name, "rounds": len(starts),
                           "start_to_produced_ms": {"p50": percentile(starts, 50), "max": max(starts)},
                           "rss_idle_mb": statistics.median(rss)}

    (work / "control-plane.json").write_text(json.dumps(results, indent=2))
    report(results)


def report(r):
    n = r["instances"]
    per_instance = (r["rss_idle_mb"] - r["rss_empty_mb"]) / n
    print()
    print(f"opendms serve, {n} Kafka instances of 3 brokers each, created one after the other")
    print(f"  create -> RUNNING         p50 {r['create_to_running_ms']['p50']:8.1f} ms   p99 {r['create_to_running_ms']['p99']:8.1f} ms   (target: p50 < 100 ms)")
    print(f"  create -> record produced p50 {r['create_to_produced_ms']['p50']:8.1f} ms   p99 {r['create_to_produced_ms']['p99']:8.1f} ms")
    g = r["get_instance"]
    print(f"  GET show_instance         {g['rps']:8.0f} req/s   p50 {g['p50_ms']:.2f} ms   p90 {g['p90_ms']:.2f} ms   p99 {g['p99_ms']:.2f} ms"
          f"   non-2xx {g['non_2xx']}   (target: >= 10,000 req/s)")
    print(f"  RSS                       {r['rss_empty_mb']:8.1f} MB empty   {r['rss_idle_mb']:8.1f} MB with {n} idle instances"
          f"   ({per_instance:.2f} MB per instance; target: {n} idle instances < 1 GB)")
    peer = r.get("peer")
    if peer:
        s = peer["start_to_produced_ms"]
        print(f"peer: {peer['name']}, one KRaft broker (broker and controller), {peer['rounds']} starts")
        print(f"  start -> record produced  p50 {s['p50']:8.1f} ms   max {s['max']:8.1f} ms")
        print(f"  RSS idle                  {peer['rss_idle_mb']:8.1f} MB")
        print("ratios (peer / opendms; higher is better for opendms)")
        print(f"  time to a usable broker   {s['p50'] / r['create_to_produced_ms']['p50']:8.1f}x   (one Kafka broker vs one 3-broker instance)")
        print(f"  memory per broker         {peer['rss_idle_mb'] / (per_instance / 3):8.1f}x")
    else:
        print("peer: not measured (no Apache Kafka libs given)")
    if "rabbit_instances" in r:
        n = r["rabbit_instances"]
        per = (r["rabbit_rss_idle_mb"] - r["rabbit_rss_empty_mb"]) / n
        print()
        print(f"opendms serve, {n} RabbitMQ instances (c6.2u4g.single), created one after the other")
        print(f"  create -> RUNNING         p50 {r['rabbit_create_to_running_ms']['p50']:8.1f} ms   p99 {r['rabbit_create_to_running_ms']['p99']:8.1f} ms   (target: p50 < 100 ms)")
        print(f"  create -> message got     p50 {r['rabbit_create_to_message_ms']['p50']:8.1f} ms   p99 {r['rabbit_create_to_message_ms']['p99']:8.1f} ms")
        print(f"  RSS                       {r['rabbit_rss_empty_mb']:8.1f} MB empty   {r['rabbit_rss_idle_mb']:8.1f} MB with {n} idle instances"
              f"   ({per:.2f} MB per instance; target: {n} idle instances < 1 GB)")
        peer = r.get("rabbit_peer")
        if peer:
            s = peer["start_to_message_ms"]
            print(f"peer: {peer['name']}, one node with the management plug-in, {peer['rounds']} starts")
            print(f"  start -> message got      p50 {s['p50']:8.1f} ms   max {s['max']:8.1f} ms")
            print(f"  RSS idle                  {peer['rss_idle_mb']:8.1f} MB")
            print("ratios (peer / opendms; higher is better for opendms)")
            print(f"  time to a usable broker   {s['p50'] / r['rabbit_create_to_message_ms']['p50']:8.1f}x")
            print(f"  memory per broker         {peer['rss_idle_mb'] / per:8.1f}x")


if __name__ == "__main__":
    sys.exit(main())
