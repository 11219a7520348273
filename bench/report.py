#!/usr/bin/env python3
"""Summarizes bench/run's results: per metric the median over the rounds for opendms (default
direct I/O), opendms with --log-io buffered and tansu, the ratios to tansu, the min-max
ranges, validity checks and the targets.

usage: report.py RESULTS_DIR RUNS BROKERS FLUSH BYTES
"""
import json
import os
import statistics
import sys

results, runs, brokers, flush, nbytes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])


def load(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                out[d["phase"]] = d
    return out


OTHER_CPU_LIMIT = 3  # CPU seconds other processes may use during a run before it counts as disturbed


NAMES = ("opendms", "opendms-buffered", "tansu")


def disturbed(r):
    return r.get("cpu", {}).get("other_secs", 0) > OTHER_CPU_LIMIT


all_rounds = {
    name: [r for r in (load(os.path.join(results, f"{name}.{i}.json")) for i in range(1, runs + 1)) if r]
    for name in NAMES
}
# Runs that other processes disturbed are left out, unless nothing else is left.
rounds = {
    name: ([r for r in rs if not disturbed(r)] or rs) for name, rs in all_rounds.items()
}

KB_TO_MB = 1024 / 1e6
ROWS = [
    # label, phase, key, scale, higher is better
    ("produce acks=1 (MB/s)", "produce_acks_1", "mb_per_s", 1, True),
    ("produce acks=1 (records/s)", "produce_acks_1", "records_per_s", 1, True),
    ("produce acks=all (MB/s)", "produce_acks_all", "mb_per_s", 1, True),
    ("produce acks=all (records/s)", "produce_acks_all", "records_per_s", 1, True),
    ("consume (MB/s)", "consume", "mb_per_s", 1, True),
    ("consume (records/s)", "consume", "records_per_s", 1, True),
    ("e2e latency p50 (us)", "latency", "p50_us", 1, False),
    ("e2e latency p99 (us)", "latency", "p99_us", 1, False),
    ("e2e latency max (us)", "latency", "max_us", 1, False),
    ("memory idle RSS (MB)", "memory", "idle_kb", KB_TO_MB, False),
    ("memory peak RSS (MB)", "memory", "peak_kb", KB_TO_MB, False),
    ("memory RSS after load (MB)", "memory", "after_kb", KB_TO_MB, False),
    ("broker CPU, whole workload (s)", "cpu", "secs", 1, False),
]


def values(name, phase, key, scale=1.0):
    return [r[phase][key] * scale for r in rounds[name] if r.get(phase, {}).get(key) is not None]


def median(name, phase, key, scale=1.0):
    v = values(name, phase, key, scale)
    return statistics.median(v) if v else None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"


def span(name, phase, key, scale):
    v = values(name, phase, key, scale)
    if len(v) < 2:
        return ""
    return f"{fmt(min(v))}-{fmt(max(v))}"


def ratio(name, phase, key, scale, higher):
    a, b = median(name, phase, key, scale), median("tansu", phase, key, scale)
    return f"{(a / b) if higher else (b / a):.2f}x" if (a and b) else "-"


print()
print(f"{'metric':32} {'opendms':>10} {'tansu':>10} {'ratio':>7}  {'buffered':>10} {'ratio':>7}"
      f"   {'opendms range':>17} {'buffered range':>17} {'tansu range':>17}")
print("-" * 138)
for label, phase, key, scale, higher in ROWS:
    a, b, c = (median(n, phase, key, scale) for n in ("opendms", "tansu", "opendms-buffered"))
    print(f"{label:32} {fmt(a):>10} {fmt(b):>10} {ratio('opendms', phase, key, scale, higher):>7}"
          f"  {fmt(c):>10} {ratio('opendms-buffered', phase, key, scale, higher):>7}"
          f"   {span('opendms', phase, key, scale):>17} {span('opendms-buffered', phase, key, scale):>17}"
          f" {span('tansu', phase, key, scale):>17}")
left_out = {n: len(all_rounds[n]) - len(rounds[n]) for n in rounds}
print("medians of " + ", ".join(f"{len(rounds[n])} {n}" for n in NAMES)
      + " run(s); ranges are min-max over them"
      + (" (" + ", ".join(f"{left_out[n]} {n}" for n in NAMES) + " run(s) disturbed by other processes left out)"
         if any(left_out.values()) else "") + ".")
print("opendms: the default, --log-io direct (appends and fetches with O_DIRECT, no page cache);")
print("buffered: opendms --log-io buffered (appends and fetches through the page cache, as Kafka does).")
print("ratio: to tansu; opendms/tansu for throughput, tansu/opendms for latency, memory and CPU,")
print("       so above 1.00x means opendms is better in every row.")
print(f"workload: {nbytes / 2**30:g} GiB of 1 KiB records per produce phase, 6 partitions, 3 connections,")
print("          5 requests in flight, ~256 KiB batches; consume reads everything produced (both phases);")
print("          latency: 2,000 single-record produces/s (acks=1) for 5 s, one long-polling consumer.")
print(f"setup: opendms {brokers} brokers in one process, --flush {flush} (fdatasync before acks=all")
print("       answers; acks=1 not synced), data on disk; tansu 0.6.0, one broker, memory:// storage")
print("       (nothing on disk, nothing synced). sync(1) runs before every phase.")

print("\nchecks (every run, disturbed ones too):")
for name in NAMES:
    rs = all_rounds[name]
    if not rs:
        print(f"  {name}: no results")
        continue
    s = rs[0].get("setup", {})
    notes = [f"protocol versions {s.get('versions')}, partition leaders on {s.get('leader_brokers')} broker(s)"]
    if s.get("version_note"):
        notes.append(s["version_note"])
    for phase in ("produce_acks_1", "produce_acks_all"):
        errs = sum(r.get(phase, {}).get("errors", 0) for r in rs)
        codes = {}
        for r in rs:
            for k, v in r.get(phase, {}).get("errors_by_code", {}).items():
                codes[k] = codes.get(k, 0) + v
        timed_out = sum(1 for r in rs if r.get(phase, {}).get("timed_out"))
        missing = sum(1 for r in rs if phase not in r)
        recs = [r[phase]["records"] for r in rs if phase in r]
        notes.append(f"{phase}: {min(recs, default=0):,}-{max(recs, default=0):,} records acked per run, "
                     f"{errs} partition errors{' ' + str(codes) if codes else ''}"
                     + (f", {timed_out} round(s) hit the time limit" if timed_out else "")
                     + (f", MISSING in {missing} round(s)" if missing else ""))
    complete = [r["consume"].get("complete") for r in rs if "consume" in r]
    same_bytes = [r["consume"].get("bytes_match") for r in rs if "consume" in r]
    crc = [r["consume"].get("crc_errors", 0) for r in rs if r.get("consume", {}).get("crc_checked")]
    notes.append(f"consume: read back every acknowledged record in {sum(1 for c in complete if c)} of {len(rs)} run(s),"
                 f" byte-for-byte the acknowledged size in {sum(1 for c in same_bytes if c)}"
                 + (f", {sum(crc)} CRC errors in {len(crc)} CRC-checked run(s)" if crc else ""))
    lat = [r["latency"] for r in rs if "latency" in r]
    if lat:
        notes.append(f"latency: {sum(x['records'] for x in lat):,} of {sum(x['sent'] for x in lat):,} records seen, "
                     f"{sum(x['errors'] for x in lat)} produce errors")
    cpu = [r["cpu"] for r in rs if "cpu" in r and "other_secs" in r["cpu"]]
    if cpu:
        notes.append("CPU seconds per round (broker / load generator / every other process on the machine, irq and softirq time left out): "
                     + ", ".join(f"{c['secs']:.1f} / {c['bench_secs']:.1f} / {c['other_secs']:.1f}" for c in cpu)
                     + (f"  (over {OTHER_CPU_LIMIT} s for others: disturbed)" if any(c["other_secs"] > OTHER_CPU_LIMIT for c in cpu) else ""))
    print(f"  {name}: " + "\n    ".join(notes))

print("\ntargets (medians; opendms as it runs by default unless the target names the page cache):")
p1, tp1 = median("opendms", "produce_acks_1", "mb_per_s"), median("tansu", "produce_acks_1", "mb_per_s")
cons_cache = median("opendms-buffered", "consume", "mb_per_s")
cons_direct = median("opendms", "consume", "mb_per_s")
idle = median("opendms", "memory", "idle_kb", KB_TO_MB)


def verdict(ok):
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


targets = [
    ("produce acks=1 >= 300 MB/s", None if p1 is None else p1 >= 300, f"{fmt(p1)} MB/s"),
    ("produce acks=1 >= 1.5x tansu", (p1 / tp1 >= 1.5) if (p1 and tp1) else None,
     f"{p1 / tp1:.2f}x" if (p1 and tp1) else "no peer result"),
    ("consume >= 1 GB/s from page cache", None if cons_cache is None else cons_cache >= 1000,
     f"{fmt(cons_cache)} MB/s with --log-io buffered"),
    ("idle RSS < 10 MB", None if idle is None else idle < 10, f"{fmt(idle)} MB"),
]
for label, ok, value in targets:
    print(f"  [{verdict(ok)}] {label:34} {value}")
print(f"  consume with direct I/O reads the disk, not the page cache: {fmt(cons_direct)} MB/s"
      " (see 'direct read' in the machine limits)")
