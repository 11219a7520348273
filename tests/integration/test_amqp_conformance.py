"""Differential conformance: every scenario of `amqp_scenarios` runs against Debian's
RabbitMQ 3.10 and against `opendms rabbitmq`; both must observe the same outcome."""

import json
import os

import pytest

import amqp_scenarios
from amqp_peers import DebianRabbit, OpenDmsRabbit, rabbitmq_installed


@pytest.fixture(scope="session")
def reference_rabbitmq(tmp_path_factory):
    if not rabbitmq_installed():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is not installed (scripts/setup-test-env installs it)")
        pytest.skip("rabbitmq-server is not installed; run scripts/setup-test-env")
    peer = DebianRabbit(tmp_path_factory.mktemp("rabbitmq-reference")).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def opendms_rabbitmq(tmp_path_factory):
    broker = OpenDmsRabbit(tmp_path_factory.mktemp("opendms-rabbitmq")).start()
    yield broker
    broker.stop()


def _normalise(value):
    # Byte strings from headers compare as text; tuples as lists.
    return json.loads(json.dumps(value, default=lambda v: v.decode(errors="replace") if isinstance(v, bytes) else repr(v)))


@pytest.mark.parametrize("scenario", amqp_scenarios.ALL, ids=lambda s: s.__name__)
def test_same_outcome_as_rabbitmq(scenario, reference_rabbitmq, opendms_rabbitmq):
    want = _normalise(scenario(reference_rabbitmq))
    got = _normalise(scenario(opendms_rabbitmq))
    assert got == want, (f"{scenario.__name__}: OpenDMS observed\n  {json.dumps(got, indent=1)}\n"
                         f"RabbitMQ observed\n  {json.dumps(want, indent=1)}\n{opendms_rabbitmq.log_tail(20)}")
