"""Differential conformance: the scenarios of rocketmq_scenarios.py (response codes and remarks
of bad requests, pull statuses and offsets, tag and SQL92 filters, retry and dead letters,
delay levels, transaction check-back, queries, ACL refusals) run against Apache RocketMQ 4.9.7
(from Maven Central, started by the test in a network namespace with only loopback, as it
binds every interface) and against `opendms rocketmq`; each must observe the same outcome.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rocketmq_peers import APACHE_LIB
from rocketmq_scenarios import JAVA_JAR, SCENARIOS

RUNNER = Path(__file__).resolve().parent / "rocketmq_conformance_run.py"


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    for need, how in ((APACHE_LIB, "fetches it (mvn dependency:copy-dependencies)"), (JAVA_JAR, "builds it")):
        if not Path(need).exists():
            pytest.fail(f"{need} is missing: scripts/setup-test-env {how}")
    workdir = tmp_path_factory.mktemp("rocketmq-conformance")
    out = workdir / "observed.json"
    r = subprocess.run(["unshare", "--net", "--", sys.executable, str(RUNNER), str(out), str(workdir)],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f"the conformance runner failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("scenario", [*SCENARIOS, "acl_refusals"])
def test_same_outcome_as_apache_rocketmq(observed, scenario):
    got = observed[scenario]
    assert "error" not in json.dumps(got["apache"])[:20], f"the scenario broke against Apache: {got['apache']}"
    assert got["opendms"] == got["apache"], (
        f"{scenario}:\n  apache:  {json.dumps(got['apache'], sort_keys=True)}\n"
        f"  opendms: {json.dumps(got['opendms'], sort_keys=True)}")
