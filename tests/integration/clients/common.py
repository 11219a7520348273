"""What the client scripts share: the command line, the records they send, and the
bookkeeping of a consumer group whose members run concurrently in one process.

Every client script takes

    SCRIPT produce BOOTSTRAP TOPIC [--count N] [--start S] [--tag T] [--create]
    SCRIPT consume|resume BOOTSTRAP TOPIC [--group G] [--count N] [--members M]

and prints one JSON object on stdout:

    produce:        {"acked": n, "errors": [first few], "unflushed": n}
    consume/resume: {"members": [records per member], "records": [[partition, offset,
                     key, value, {header: value}], ...] in arrival order,
                     "commit_errors": [first few]}

`consume` and `resume` behave the same; the test expects `consume` to read the topic from
the start (a new group) and `resume` to carry on from the group's committed offsets.
"""

import argparse
import json
import sys
import threading
import time
import traceback

PARTITIONS = 3
LINGER = 3.0  # seconds to keep polling after the expected count, to catch duplicates


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["produce", "consume", "resume"])
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--group", default="scenario")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--tag", default="a")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--create", action="store_true", help="create the topic with the client's admin API")
    ap.add_argument("--timeout", type=float, default=180, help="hang guard for the whole phase")
    return ap.parse_args(argv)


def record_fields(tag, i):
    """Key, value and headers of record `i` of run `tag` (as bytes)."""
    return (f"{tag}-{i}".encode(), f"value-{tag}-{i}".encode(),
            [("idx", str(i).encode()), ("tag", tag.encode())])


def text(b):
    return b.decode(errors="replace") if b is not None else None


def headers_dict(headers):
    return {k: text(v) for k, v in (headers or [])}


def emit(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


class Group:
    """State shared by the members of one consumer group running in this process.

    Members keep their partitions paused until the group is *released*: every member
    holds partitions, none twice, and together all of them. So every member takes part
    however fast the first one to join would be. After that each member counts what it
    receives; the phase is over when `expected` records arrived and LINGER seconds passed
    without the test's interest changing (to catch duplicates). Then every member commits,
    waits for the others to have committed (so no member leaves while another commits),
    and closes.
    """

    def __init__(self, members, expected, timeout):
        self.lock = threading.Lock()
        self.assignments = [frozenset() for _ in range(members)]
        self.released = False
        self.counts = [0] * members
        self.records = []
        self.expected = expected
        self.reached_at = None
        self.deadline = time.monotonic() + timeout
        self.commit_errors = []
        self.finished = 0
        self.members = members
        self.member_errors = []

    def set_assignment(self, member, partitions):
        with self.lock:
            self.assignments[member] = frozenset(partitions)
            union = frozenset().union(*self.assignments)
            if (all(self.assignments) and sum(map(len, self.assignments)) == len(union) == PARTITIONS):
                self.released = True
            return self.released

    def is_released(self):
        with self.lock:
            return self.released

    def add(self, member, records):
        with self.lock:
            self.records.extend(records)
            self.counts[member] += len(records)
            if len(self.records) >= self.expected and self.reached_at is None:
                self.reached_at = time.monotonic()

    def done(self):
        with self.lock:
            now = time.monotonic()
            lingered = self.reached_at is not None and now - self.reached_at > LINGER
            return lingered or now > self.deadline

    def commit_failed(self, member, err):
        with self.lock:
            self.commit_errors.append(f"member {member}: {err}")
        print(f"member {member}: commit failed: {err}", file=sys.stderr)

    def finish(self, poll=lambda: time.sleep(0.05), timeout=30):
        """Called by each member after its last commit: waits until all have got there."""
        with self.lock:
            self.finished += 1
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.finished >= self.members:
                    return
            poll()

    def member_failed(self, member, exc):
        with self.lock:
            self.member_errors.append(f"member {member}: {exc!r}")
            self.finished += 1  # do not keep the others waiting for it

    def result(self):
        with self.lock:
            return {"members": list(self.counts), "records": list(self.records),
                    "commit_errors": self.commit_errors[:5]}


def run_member_threads(member, a, group):
    """Runs `member(a, idx, group)` for every member on its own thread and returns the
    group's result; a member that raises makes the script fail."""
    def guarded(idx):
        try:
            member(a, idx, group)
        except Exception as e:  # noqa: BLE001 - reported, then the script fails
            traceback.print_exc()
            group.member_failed(idx, e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(a.members)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if group.member_errors:
        sys.exit("group member failed: " + "; ".join(group.member_errors))
    return group.result()
