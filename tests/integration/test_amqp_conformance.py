"""Differential conformance: every scenario of `amqp_scenarios` runs against Debian's
RabbitMQ 3.10 and against `opendms rabbitmq`; both must observe the same outcome."""

import json

import pytest

import amqp_scenarios
from amqp_peers import OpenDmsRabbit

# `reference_rabbitmq` (Debian's RabbitMQ, one node per session) is in conftest.py: the
# client matrix (test_amqp_clients.py) compares against the same node.


@pytest.fixture(scope="session")
def opendms_rabbitmq(tmp_path_factory):
    # The reference runs the consistent-hash plug-in and not the delayed-message one
    # (Debian does not ship it); OpenDMS runs with the same set.
    broker = OpenDmsRabbit(tmp_path_factory.mktemp("opendms-rabbitmq"),
                           extra_args=["--plugins", "rabbitmq_consistent_hash_exchange"]).start()
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
