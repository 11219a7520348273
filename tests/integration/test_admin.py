"""The admin side of the Kafka API through confluent-kafka's AdminClient: topics,
partitions, configs, records, offsets by time, consumer groups, ACLs, SCRAM users and the
storage quota."""

import time

import pytest
from confluent_kafka import (
    Consumer, KafkaError, KafkaException, Producer, TopicPartition, ConsumerGroupTopicPartitions,
)
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType,
    ConfigEntry, ConfigResource, NewPartitions, NewTopic, ResourcePatternType, ResourceType,
    ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion,
)


def results(futures, timeout=30):
    return {k: f.result(timeout) for k, f in futures.items()}


def produce(bootstrap, topic, values, partition=None, extra=None):
    p = Producer({"bootstrap.servers": bootstrap, **(extra or {})})
    errors = []
    for v in values:
        kwargs = {"value": v}
        if partition is not None:
            kwargs["partition"] = partition
        if isinstance(v, tuple):
            kwargs = {"value": v[0], "timestamp": v[1], "partition": partition or 0}
        p.produce(topic, on_delivery=lambda e, m: errors.append(e) if e else None, **kwargs)
    p.flush(30)
    return errors


def test_topics_partitions_configs_records(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    results(admin.create_topics([NewTopic("checked", 2, 1)], validate_only=True))
    assert "checked" not in admin.list_topics(timeout=10).topics
    results(admin.create_topics([NewTopic("t1", 2, 1, config={"retention.ms": "3600000"})]))
    with pytest.raises(KafkaException) as e:
        results(admin.create_topics([NewTopic("t1", 2, 1)]))
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as e:
        results(admin.create_topics([NewTopic("bad name!", 1, 1)]))
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as e:
        results(admin.create_topics([NewTopic("t-unknown-config", 1, 1, config={"no.such": "1"})]))
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG

    results(admin.create_partitions([NewPartitions("t1", 4)]))
    md = admin.list_topics(timeout=10).topics["t1"]
    assert len(md.partitions) == 4
    assert {p.leader for p in md.partitions.values()} == {0, 1, 2}, "leaders spread over brokers"
    with pytest.raises(KafkaException):
        results(admin.create_partitions([NewPartitions("t1", 2)]))

    res = ConfigResource(ResourceType.TOPIC, "t1")
    configs = results(admin.describe_configs([res]))[res]
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "delete"
    results(admin.incremental_alter_configs([ConfigResource(
        ResourceType.TOPIC, "t1",
        incremental_configs=[ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
                             ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])]))
    configs = results(admin.describe_configs([res]))[res]
    assert configs["retention.ms"].value == "7200000"
    assert configs["max.message.bytes"].value == "2000"
    errors = produce(broker.bootstrap, "t1", [b"x" * 5000], partition=0)
    assert errors and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE

    assert produce(broker.bootstrap, "t1", [b"r%d" % i for i in range(50)], partition=0) == []
    deleted = results(admin.delete_records([TopicPartition("t1", 0, 20)]))
    assert list(deleted.values())[0].low_watermark == 20
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    low, high = c.get_watermark_offsets(TopicPartition("t1", 0), timeout=10)
    c.close()
    assert (low, high) == (20, 50)

    cluster = admin.describe_cluster().result(10)
    assert len(cluster.nodes) == 3

    results(admin.delete_topics(["t1"]))
    deadline = time.time() + 10
    while "t1" in admin.list_topics(timeout=10).topics and time.time() < deadline:
        time.sleep(0.1)
    assert "t1" not in admin.list_topics(timeout=10).topics


def test_offsets_for_times(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    results(admin.create_topics([NewTopic("timed", 1, 1)]))
    base = 1_700_000_000_000
    assert produce(broker.bootstrap, "timed", [(b"v%d" % i, base + i * 1000) for i in range(10)]) == []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    found = c.offsets_for_times([TopicPartition("timed", 0, base + 4500)], timeout=10)
    assert found[0].offset == 5
    found = c.offsets_for_times([TopicPartition("timed", 0, base + 999_999)], timeout=10)
    assert found[0].offset == -1
    c.close()


def test_consumer_groups(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    results(admin.create_topics([NewTopic("grouped", 3, 1)]))
    assert produce(broker.bootstrap, "grouped", [b"x"] * 30) == []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-admin",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["grouped"])
    got = 0
    deadline = time.time() + 30
    while got < 30 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)

    listed = admin.list_consumer_groups().result(10)
    assert "g-admin" in {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert len(described.members) == 1
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("g-admin")])["g-admin"].result(10)
    assert sum(tp.offset for tp in offsets.topic_partitions) == 30

    with pytest.raises(KafkaException) as e:
        admin.delete_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    c.close()
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "g-admin", [TopicPartition("grouped", 0, 1)])])["g-admin"].result(10)
    admin.delete_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert "g-admin" not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}


def test_acls_are_enforced(broker_factory):
    b = broker_factory(extra_args=["--sasl", "--authorizer", "--super-user", "admin",
                                   "--user", "admin:admin-secret", "--user", "alice:alice-secret"])

    def conf(user):
        return {"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user,
                "sasl.password": f"{user}-secret"}

    admin = AdminClient(conf("admin"))
    results(admin.create_topics([NewTopic("guarded", 1, 1)]))
    errors = produce(b.bootstrap, "guarded", [b"no"], extra={k: v for k, v in conf("alice").items() if k != "bootstrap.servers"})
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    allow = AclBinding(ResourceType.TOPIC, "guard", ResourcePatternType.PREFIXED, "User:alice", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    results(admin.create_acls([allow]))
    found = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(10)
    assert allow in found
    extra = {k: v for k, v in conf("alice").items() if k != "bootstrap.servers"}
    assert produce(b.bootstrap, "guarded", [b"yes"], extra=extra) == []

    deny = AclBinding(ResourceType.TOPIC, "guarded", ResourcePatternType.LITERAL, "User:alice", "*",
                      AclOperation.ALL, AclPermissionType.DENY)
    results(admin.create_acls([deny]))
    errors = produce(b.bootstrap, "guarded", [b"no"], extra=extra)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    results(admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "guarded", ResourcePatternType.LITERAL,
                                                "User:alice", "*", AclOperation.ALL, AclPermissionType.DENY)]))
    assert produce(b.bootstrap, "guarded", [b"yes again"], extra=extra) == []

    # alice cannot administer ACLs herself
    with pytest.raises(KafkaException):
        results(AdminClient(conf("alice")).create_acls([allow]))


def test_scram_users_created_through_the_api(broker_factory):
    b = broker_factory(extra_args=["--sasl", "--user", "admin:admin-secret"])
    admin = AdminClient({"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                         "sasl.password": "admin-secret"})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    results(admin.alter_user_scram_credentials([UserScramCredentialUpsertion("bob", info, b"bob-pw")]))
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(10)
    assert described.scram_credential_infos[0].iterations == 8192
    extra = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
             "sasl.username": "bob", "sasl.password": "bob-pw"}
    assert produce(b.bootstrap, "bob-topic", [b"hi"], extra=extra) == []


def test_produce_reject_at_quota(broker_factory):
    b = broker_factory(brokers=1, extra_args=["--quota-bytes", "200000", "--retention-policy", "produce_reject"])
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    errors = []
    for i in range(400):
        p.produce("full", value=b"z" * 1000, partition=0,
                  on_delivery=lambda e, m: errors.append(e) if e else None)
        p.flush(10)
    assert errors, "writes beyond the quota are refused"
    assert all(e.code() == KafkaError.POLICY_VIOLATION for e in errors), errors[:3]
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "q"})
    _, high = c.get_watermark_offsets(TopicPartition("full", 0), timeout=10)
    c.close()
    assert 100 < high < 400


def test_time_base_keeps_data_under_quota(broker_factory, tmp_path):
    b = broker_factory(brokers=1, extra_args=["--quota-bytes", "300000", "--retention-policy", "time_base",
                                              "--retention-check-secs", "1"])
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    # small segments so the oldest can be deleted while new data arrives
    results(admin.create_topics([NewTopic("rolling", 1, 1, config={"segment.bytes": "50000"})]))
    for _ in range(10):
        assert produce(b.bootstrap, "rolling", [b"y" * 1000] * 100, partition=0,
                       extra={"batch.size": 16384}) == []
    log_bytes = sum(f.stat().st_size for f in (b.data_dir / "logs").rglob("*.log"))
    assert log_bytes <= 300000 + 50000
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "tb"})
    low, high = c.get_watermark_offsets(TopicPartition("rolling", 0), timeout=10)
    c.close()
    assert high == 1000 and low > 0, (low, high)
