"""SASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 logins succeed with the right password
and fail with a wrong one; without SASL a client cannot use the broker."""

import logging
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer


def sasl_conf(bootstrap, mechanism, password):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": "alice",
        "sasl.password": password,
    }


@pytest.fixture
def secure_broker(broker_factory):
    return broker_factory(extra_args=["--sasl", "--user", "alice:alice-secret"])


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_login_and_use(secure_broker, mechanism):
    topic = f"secure-{mechanism.lower()}"
    conf = sasl_conf(secure_broker.bootstrap, mechanism, "alice-secret")
    p = Producer(conf)
    errors = []
    for i in range(100):
        p.produce(topic, value=str(i).encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors
    c = Consumer({**conf, "group.id": f"g-{mechanism}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < 100 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(int(m.value()))
    c.close()
    assert sorted(got) == list(range(100))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_is_refused(secure_broker, mechanism):
    errors = []
    conf = sasl_conf(secure_broker.bootstrap, mechanism, "not-the-password")
    p = Producer({**conf, "error_cb": errors.append, "message.timeout.ms": 5000})
    delivered = []
    p.produce("secure-refused", value=b"x", on_delivery=lambda e, m: delivered.append(e))
    p.flush(10)
    assert delivered and delivered[0] is not None, "nothing is delivered without a login"
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_unauthenticated_client_is_refused(secure_broker):
    errors = []
    p = Producer({"bootstrap.servers": secure_broker.bootstrap, "error_cb": errors.append,
                  "message.timeout.ms": 3000})
    delivered = []
    p.produce("secure-refused", value=b"x", on_delivery=lambda e, m: delivered.append(e))
    p.flush(10)
    assert delivered and delivered[0] is not None


def test_kafka_python_scram(secure_broker, caplog):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaTimeoutError

    common = dict(bootstrap_servers=secure_broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                  sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice")
    p = KafkaProducer(sasl_plain_password="alice-secret", **common)
    p.send("secure-kp", b"hello").get(timeout=30)
    p.close()
    c = KafkaConsumer("secure-kp", sasl_plain_password="alice-secret", auto_offset_reset="earliest",
                      consumer_timeout_ms=10000, **common)
    assert [m.value for m in c] == [b"hello"]
    c.close()
    # kafka-python 3 retries a bootstrap whose login failed until its bootstrap timeout and
    # then raises a timeout; the broker's refusal reaches it as SASL_AUTHENTICATION_FAILED
    # (error 58), which it logs at each attempt.
    with caplog.at_level(logging.WARNING, logger="kafka"), pytest.raises(KafkaTimeoutError):
        KafkaProducer(sasl_plain_password="wrong", bootstrap_timeout_ms=3000, **common)
    refusals = [r.getMessage() for r in caplog.records if "[Error 58] SaslAuthenticationFailedError" in r.getMessage()]
    assert refusals, [r.getMessage() for r in caplog.records]
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in refusals[0]
