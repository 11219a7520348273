"""Driver of bench/rocketmq-run (run inside a network namespace of its own): for each peer,
start it, measure, stop it; then print the figures side by side with OpenDMS/Apache ratios."""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import rocketmq_wire as wire  # noqa: E402
from rocketmq_peers import ApacheRocketmq, OpenDmsRocketmq, rss_bytes  # noqa: E402

JAR = REPO / "target" / "rocketmq-java-client" / "rocketmq-java-workload.jar"
LOAD = REPO / "target" / "rocketmq-load" / "release" / "rocketmq-load"


def java(*args, timeout=1800):
    r = subprocess.run(["java", "-Xmx1g", "-jar", str(JAR), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def load(*args, timeout=1800):
    """bench/rocketmq-load: the remoting protocol spoken straight, one thread, a few µs per
    message, so the broker and not the client sets the pace."""
    r = subprocess.run([str(LOAD), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"rocketmq-load {args[0]} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def cpu_seconds(pids):
    """User + system CPU time of the processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def cpu_us_per_message(peer, cpu_before, messages):
    """The broker's CPU since `cpu_before` (from cpu_seconds), in µs per message."""
    return round((cpu_seconds(peer.pids()) - cpu_before) * 1e6 / max(1, messages), 1)


def first_send_seconds(peer):
    """From launch to the first send the broker accepts (raw SEND_MESSAGE_V2, auto-created topic)."""
    header = {"a": "bench", "b": "startup", "c": "TBW102", "d": "4", "e": "0", "f": "0", "g": "0", "h": "0",
              "i": "", "j": "0", "k": "false"}
    while True:
        try:
            w = wire.Wire(peer.broker, timeout=2)
            h, _, _ = w.call(310, header, body=b"x")
            w.close()
            if h["code"] == 0:
                return time.monotonic() - peer.started_at
        except OSError:
            pass
        time.sleep(0.02)


class PeakRss:
    def __init__(self, pids):
        self.pids, self.peak, self.running = pids, 0, True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_bytes(self.pids))
            time.sleep(0.25)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


def measure(peer, seconds, messages):
    out = {}
    launch = time.monotonic()
    peer.start()
    peer.started_at = launch
    out["start_to_first_send_s"] = round(first_send_seconds(peer), 3)
    time.sleep(3)
    out["idle_rss_mb"] = round(rss_bytes(peer.pids()) / 1e6, 1)
    out["idle_disk_mb"] = round(peer.data_bytes() / 1e6, 2)
    java("bench-produce", peer.namesrv, "bench-warm", 2, 20000, 0, 1024)
    one = java("bench-produce", peer.namesrv, "bench-one", 1, 0, seconds, 1024)
    out["send_1_thread"] = one
    rss = PeakRss(peer.pids())
    disk_before = peer.data_bytes()
    cpu = cpu_seconds(peer.pids())
    many = java("bench-produce", peer.namesrv, "bench-many", 8, messages, 0, 1024)
    out["send_8_threads"] = many
    out["send_cpu_us_per_msg"] = cpu_us_per_message(peer, cpu, many["sent"])
    out["load_rss_mb"] = round(rss.stop() / 1e6, 1)
    time.sleep(2)
    out["disk_mb_for_messages"] = round((peer.data_bytes() - disk_before) / 1e6, 1)
    out["messages_on_disk"] = messages
    rss = PeakRss(peer.pids())
    cpu = cpu_seconds(peer.pids())
    out["consume"] = java("bench-consume", peer.namesrv, "bench-many", "bench-cg", messages, 600)
    out["consume_cpu_us_per_msg"] = cpu_us_per_message(peer, cpu, out["consume"]["consumed"])
    out["consume_rss_mb"] = round(rss.stop() / 1e6, 1)
    out["latency_1000_per_s"] = java("bench-latency", peer.namesrv, "bench-lat", 1000, 10)

    # The same shapes with the light load generator: 8 queues, 1 KiB bodies.
    load("create-topic", peer.broker, "load", 8)
    load("produce", peer.broker, "load", 8, 1, 8, 20000, 0, 1024)  # warm-up
    out["load_send_1"] = load("produce", peer.broker, "load", 8, 1, 1, 0, seconds, 1024)
    rss = PeakRss(peer.pids())
    cpu = cpu_seconds(peer.pids())
    # 64 sync producers over 4 connections (16 each), as 4 client processes of 16 threads.
    out["load_send_64"] = load("produce", peer.broker, "load", 8, 4, 16, messages, 0, 1024)
    out["load_send_cpu_us_per_msg"] = cpu_us_per_message(peer, cpu, out["load_send_64"]["sent"])
    out["load_send_rss_mb"] = round(rss.stop() / 1e6, 1)
    total = out["load_send_1"]["sent"] + out["load_send_64"]["sent"] + 20000
    cpu = cpu_seconds(peer.pids())
    # The backlog read by three groups in turn: one pass takes 1-2 s, too short to measure
    # steadily on two shared cores.
    passes = [load("consume", peer.broker, "load", 8, f"load-cg-{i}", total, 600) for i in range(3)]
    consumed = sum(p["consumed"] for p in passes)
    seconds = sum(p["seconds"] for p in passes)
    out["load_consume"] = {
        "consumed": consumed,
        "seconds": round(seconds, 3),
        "tps": round(consumed / seconds),
        "mbps": round(sum(p["mbps"] * p["seconds"] for p in passes) / seconds, 1),
    }
    out["load_consume_cpu_us_per_msg"] = cpu_us_per_message(peer, cpu, out["load_consume"]["consumed"])
    load("create-topic", peer.broker, "load-lat", 8)
    out["load_latency_1000_per_s"] = load("latency", peer.broker, "load-lat", 8, 1000, 10, 1024)
    peer.stop()
    return out


def ratio(a, b, higher_is_better=True):
    if not a or not b or a <= 0 or b <= 0:
        return "n/a"
    r = a / b if higher_is_better else b / a
    return f"{r:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--opendms", required=True)
    args = ap.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["OPENDMS_BIN"] = args.opendms
    import rocketmq_peers
    rocketmq_peers.OPENDMS_BIN = args.opendms
    work = Path(args.work)
    seconds = int(os.environ.get("BENCH_SECONDS", "20"))
    messages = int(os.environ.get("BENCH_MESSAGES", "1000000"))
    # As bench/run does: this VM hands memory freed by a process back to the hypervisor after a
    # few seconds, and touching it again is slower, so each broker starts after a pause
    # instead of the second one getting the first one's freshly freed (warm) memory.
    settle = float(os.environ.get("BENCH_SETTLE_SECS", "10"))
    results = {}
    for peer in (OpenDmsRocketmq(work), ApacheRocketmq(work)):
        time.sleep(settle)
        print(f"== {peer.kind}", flush=True)
        results[peer.kind] = measure(peer, seconds, messages)
        print(json.dumps(results[peer.kind]), flush=True)
    (work / "rocketmq.json").write_text(json.dumps(results, indent=1))
    o, a = results["opendms"], results["apache"]
    rows = [
        ("send TPS, 1 KiB sync, 1 thread", o["send_1_thread"]["tps"], a["send_1_thread"]["tps"], True),
        ("send MB/s, 1 thread", o["send_1_thread"]["mbps"], a["send_1_thread"]["mbps"], True),
        ("send TPS, 1 KiB sync, 8 threads", o["send_8_threads"]["tps"], a["send_8_threads"]["tps"], True),
        ("send MB/s, 8 threads", o["send_8_threads"]["mbps"], a["send_8_threads"]["mbps"], True),
        ("send p50 / p99 us, 8 threads", f'{o["send_8_threads"]["p50us"]} / {o["send_8_threads"]["p99us"]}',
         f'{a["send_8_threads"]["p50us"]} / {a["send_8_threads"]["p99us"]}', None),
        ("broker CPU us per message sent (8 threads)", o["send_cpu_us_per_msg"], a["send_cpu_us_per_msg"], False),
        ("consume TPS", o["consume"]["tps"], a["consume"]["tps"], True),
        ("broker CPU us per message consumed", o["consume_cpu_us_per_msg"], a["consume_cpu_us_per_msg"], False),
        ("end-to-end p50 us at 1,000/s", o["latency_1000_per_s"]["p50us"], a["latency_1000_per_s"]["p50us"], False),
        ("end-to-end p99 us at 1,000/s", o["latency_1000_per_s"]["p99us"], a["latency_1000_per_s"]["p99us"], False),
        ("[load] send TPS, 1 KiB sync, 1 producer", o["load_send_1"]["tps"], a["load_send_1"]["tps"], True),
        ("[load] send TPS, 1 KiB sync, 64 producers", o["load_send_64"]["tps"], a["load_send_64"]["tps"], True),
        ("[load] send MB/s, 64 producers", o["load_send_64"]["mbps"], a["load_send_64"]["mbps"], True),
        ("[load] send p50 / p99 us, 64 producers", f'{o["load_send_64"]["p50us"]} / {o["load_send_64"]["p99us"]}',
         f'{a["load_send_64"]["p50us"]} / {a["load_send_64"]["p99us"]}', None),
        ("[load] broker CPU us per message sent", o["load_send_cpu_us_per_msg"], a["load_send_cpu_us_per_msg"], False),
        ("[load] consume TPS (pull, 32 per request)", o["load_consume"]["tps"], a["load_consume"]["tps"], True),
        ("[load] broker CPU us per message consumed", o["load_consume_cpu_us_per_msg"], a["load_consume_cpu_us_per_msg"], False),
        ("[load] end-to-end p50 us at 1,000/s", o["load_latency_1000_per_s"]["p50us"], a["load_latency_1000_per_s"]["p50us"], False),
        ("[load] end-to-end p99 us at 1,000/s", o["load_latency_1000_per_s"]["p99us"], a["load_latency_1000_per_s"]["p99us"], False),
        ("[load] broker RSS sending, MB", o["load_send_rss_mb"], a["load_send_rss_mb"], False),
        ("broker RSS idle, MB", o["idle_rss_mb"], a["idle_rss_mb"], False),
        ("broker RSS sending, MB", o["load_rss_mb"], a["load_rss_mb"], False),
        ("broker RSS consuming, MB", o["consume_rss_mb"], a["consume_rss_mb"], False),
        ("disk idle, MB", o["idle_disk_mb"], a["idle_disk_mb"], False),
        (f"disk for {messages:,} 1 KiB messages, MB", o["disk_mb_for_messages"], a["disk_mb_for_messages"], False),
        ("start to first accepted send, s", o["start_to_first_send_s"], a["start_to_first_send_s"], False),
    ]
    print()
    print("| measure | OpenDMS | Apache RocketMQ 4.9.7 | ratio |")
    print("|---|---|---|---|")
    for name, ov, av, better in rows:
        r = ratio(ov, av, better) if better is not None else ""
        print(f"| {name} | {ov} | {av} | {r} |")


if __name__ == "__main__":
    main()
