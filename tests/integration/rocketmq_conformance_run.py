"""Runs every scenario of rocketmq_scenarios.py against Apache RocketMQ 4.9.7 and against
`opendms rocketmq`, one after the other on loopback, and writes what each observed as JSON:
{scenario: {"apache": ..., "opendms": ...}}. It must run in a network namespace of its own
(test_rocketmq_conformance.py starts it with `unshare --net`): Apache binds every interface.

usage: python rocketmq_conformance_run.py OUT.json WORKDIR
"""

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rocketmq_scenarios as scenarios  # noqa: E402
from rocketmq_peers import ApacheRocketmq, OpenDmsRocketmq  # noqa: E402


def progress(msg):
    """One line per step on stderr, which the test shows when the runner fails or overruns."""
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def run_all(peer, names, results):
    for name in names:
        began = time.monotonic()
        progress(f"{peer.kind}: {name}")
        try:
            got = scenarios.SCENARIOS.get(name, getattr(scenarios, name))(peer)
        except Exception:  # a scenario that breaks is an outcome to compare, not a crash
            got = {"error": traceback.format_exc(limit=3)}
        results.setdefault(name, {})[peer.kind] = got
        progress(f"{peer.kind}: {name} took {time.monotonic() - began:.1f}s")


def main():
    out, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    results = {}
    names = list(scenarios.SCENARIOS)
    for peer in (ApacheRocketmq(workdir), OpenDmsRocketmq(workdir)):
        progress(f"{peer.kind}: starting")
        peer.start()
        try:
            run_all(peer, names, results)
        finally:
            peer.stop()
    acl_file = workdir / "plain_acl.json"
    acl_file.write_text(json.dumps(scenarios.ACL_JSON))
    for peer in (ApacheRocketmq(workdir, acl=scenarios.ACL_YML), OpenDmsRocketmq(workdir, acl_file=acl_file)):
        progress(f"{peer.kind}: starting with ACL")
        peer.start()
        try:
            run_all(peer, ["acl_refusals"], results)
        finally:
            peer.stop()
    out.write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
