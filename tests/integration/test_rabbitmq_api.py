"""The Huawei DMS for RabbitMQ API (seed 002) through the official huaweicloudsdkrabbitmq
SDK, on real brokers: an instance created through the API is an AMQP broker pika talks to
with the instance's access user, its management API answers at management_connect_address,
its password and plug-ins change in the broker at once, and it survives a restart of
`opendms serve` with its durable state."""

import json
import subprocess
import time
from urllib.parse import urlparse

import pika
import pika.exceptions
import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkrabbitmq.v2 import (
    CreateInstanceReq, CreatePostPaidInstanceByEngineRequest, DeleteInstanceRequest,
    ListAvailableZonesRequest, ListEngineProductsRequest, ListInstancesDetailsRequest, ListPluginsRequest,
    RabbitMQClient, ResetPasswordReq, ResetPasswordRequest, ResizeEngineInstanceReq, ResizeEngineInstanceRequest,
    ShowEngineInstanceExtendProductInfoRequest, ShowInstanceRequest, UpdatePluginsReq, UpdatePluginsRequest,
)
from test_amqp_management import RABBITMQADMIN
from test_huawei_api import create_instance

USER, PASSWORD = "app-admin", "Rabbit-Pw1"


def rabbit_client(server, project_id=None):
    creds = BasicCredentials(server.ak, server.sk, project_id or server.project_id)
    return RabbitMQClient.new_builder().with_credentials(creds).with_endpoint(server.url).build()


def create_body(c, instance_name, **overrides):
    zone = c.list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
    fields = dict(name=instance_name, engine="RabbitMQ", engine_version="3.8.35", storage_space=100,
                  access_user=USER, password=PASSWORD, vpc_id="vpc-1", security_group_id="sg-1",
                  subnet_id="subnet-1", available_zones=[zone], product_id="c6.2u4g.single",
                  ssl_enable=False, enable_publicip=False, publicip_id="",
                  storage_spec_code="dms.physical.storage.high.v2")
    fields.update(overrides)
    return CreateInstanceReq(**fields)


def create(c, instance_name, **overrides):
    return c.create_post_paid_instance_by_engine(CreatePostPaidInstanceByEngineRequest(
        engine="rabbitmq", body=create_body(c, instance_name, **overrides))).instance_id


def wait_running(c, iid, timeout=30, passing=("CREATING",)):
    """Waits for RUNNING; only the `passing` statuses may be seen on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = c.show_instance(ShowInstanceRequest(instance_id=iid))
        if s.status == "RUNNING":
            return s
        assert s.status in passing, s
        time.sleep(0.05)
    raise AssertionError(f"{iid} never became RUNNING")


def api_error(call):
    with pytest.raises(ClientRequestException) as e:
        call()
    return e.value.status_code, e.value.error_code


def connect(show, user=USER, password=PASSWORD):
    return pika.BlockingConnection(pika.ConnectionParameters(
        show.connect_address, show.port, "/", pika.PlainCredentials(user, password), heartbeat=0,
        connection_attempts=1))


def refused_login(show, user, password):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        connect(show, user, password)
    return str(e.value)


def test_rabbitmq_instance_lifecycle_through_the_sdk(serve_factory):
    server = serve_factory()
    c = rabbit_client(server)
    iid = create(c, "rabbit-life")
    show = wait_running(c, iid)
    assert (show.engine, show.engine_version, show.type, show.broker_num) == ("rabbitmq", "3.8.35", "single", 1)
    assert show.specification == "2vCPUs 4GB" and show.storage_space == 100 and show.access_user == USER
    assert show.port == 5672 and "," not in show.connect_address and ":" not in show.connect_address
    assert show.management_connect_address == f"http://{show.connect_address}:15672"
    assert (show.maintain_begin, show.maintain_end) == ("02:00:00", "06:00:00")

    # A real broker with the access user as its administrator; guest does not exist.
    conn = connect(show)
    ch = conn.channel()
    ch.queue_declare("orders", durable=True)
    ch.basic_publish("", "orders", b"kept", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", "orders", b"second", pika.BasicProperties(delivery_mode=2))
    conn.close()
    assert "ACCESS_REFUSED" in refused_login(show, "guest", "guest")
    # Its management API, with the same user.
    mgmt = show.management_connect_address + "/api"
    who = requests.get(mgmt + "/whoami", auth=(USER, PASSWORD), timeout=10)
    assert who.status_code == 200 and who.json()["name"] == USER
    q = requests.get(mgmt + "/queues/%2F/orders", auth=(USER, PASSWORD), timeout=10).json()
    assert q["durable"] is True and q["messages"] == 2
    assert requests.get(mgmt + "/overview", auth=("guest", "guest"), timeout=10).status_code == 401
    # Debian's rabbitmqadmin, unchanged, against management_connect_address.
    url = urlparse(show.management_connect_address)
    admin = ["/usr/bin/python3", RABBITMQADMIN, "-H", url.hostname, "-P", str(url.port), "-u", USER,
             "-p", PASSWORD, "-f", "raw_json"]
    run = subprocess.run(admin + ["declare", "queue", "name=from-admin", "durable=true"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    run = subprocess.run(admin + ["list", "queues"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert {q["name"] for q in json.loads(run.stdout)} == {"orders", "from-admin"}

    # Password reset: in the broker at once.
    assert api_error(lambda: c.reset_password(ResetPasswordRequest(
        instance_id=iid, body=ResetPasswordReq(new_password="weakpassword")))) == (400, "DMS.00400012")
    assert api_error(lambda: c.reset_password(ResetPasswordRequest(
        instance_id=iid, body=ResetPasswordReq(new_password="-Starts-with-1")))) == (400, "DMS.00400012")
    c.reset_password(ResetPasswordRequest(instance_id=iid, body=ResetPasswordReq(new_password="New-Passw0rd")))
    assert "ACCESS_REFUSED" in refused_login(show, USER, PASSWORD)
    conn = connect(show, USER, "New-Passw0rd")
    ch = conn.channel()
    method, _, body = ch.basic_get("orders", auto_ack=True)
    assert body == b"kept"

    # Plug-ins: the delayed-message exchange type exists once its plug-in is enabled.
    plugins = {p.name: p for p in c.list_plugins(ListPluginsRequest(instance_id=iid)).plugins}
    assert {"rabbitmq_amqp1_0", "rabbitmq_delayed_message_exchange", "rabbitmq_federation",
            "rabbitmq_shovel", "rabbitmq_management"} <= set(plugins)
    assert (plugins["rabbitmq_delayed_message_exchange"].enable, plugins["rabbitmq_delayed_message_exchange"].running) == (False, False)
    assert (plugins["rabbitmq_management"].enable, plugins["rabbitmq_management"].running) == (True, True)
    assert plugins["rabbitmq_delayed_message_exchange"].version == "3.8.0"
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.exchange_declare("later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    assert e.value.reply_code == 503 and "unknown exchange type" in e.value.reply_text
    job = c.update_plugins(UpdatePluginsRequest(instance_id=iid, body=UpdatePluginsReq(
        enable=True, plugins="rabbitmq_delayed_message_exchange"))).job_id
    assert job
    conn = connect(show, USER, "New-Passw0rd")
    ch = conn.channel()
    ch.exchange_declare("later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    plugins = {p.name: p for p in c.list_plugins(ListPluginsRequest(instance_id=iid)).plugins}
    assert (plugins["rabbitmq_delayed_message_exchange"].enable, plugins["rabbitmq_delayed_message_exchange"].running) == (True, True)
    # A plug-in the list has but the broker does not implement, and one that does not exist.
    r = server.signed("PUT", f"/v2/{server.project_id}/instances/{iid}/rabbitmq/plugins",
                      {"enable": True, "plugins": "rabbitmq_federation"})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400800") and "rabbitmq_federation" in r.json()["error_msg"]
    r = server.signed("PUT", f"/v2/{server.project_id}/instances/{iid}/rabbitmq/plugins",
                      {"enable": True, "plugins": "rabbitmq_no_such_plugin"})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400970"), r.text
    conn.close()

    # Storage extension: EXTENDING, then RUNNING with the new size; other kinds are refused.
    assert api_error(lambda: c.resize_engine_instance(ResizeEngineInstanceRequest(
        instance_id=iid, engine="rabbitmq", body=ResizeEngineInstanceReq(
            oper_type="horizontal", new_broker_num=3)))) == (400, "DMS.00400800")
    assert api_error(lambda: c.resize_engine_instance(ResizeEngineInstanceRequest(
        instance_id=iid, engine="rabbitmq", body=ResizeEngineInstanceReq(
            oper_type="storage", new_storage_space=30001)))) == (400, "DMS.00400500")
    # Each node grows by at least 100 GB (seed 002 4.3.2).
    assert api_error(lambda: c.resize_engine_instance(ResizeEngineInstanceRequest(
        instance_id=iid, engine="rabbitmq", body=ResizeEngineInstanceReq(
            oper_type="storage", new_storage_space=150)))) == (400, "DMS.00400500")
    ext = c.show_engine_instance_extend_product_info(ShowEngineInstanceExtendProductInfoRequest(
        engine="rabbitmq", instance_id=iid))
    assert ext.versions == ["3.8.35"]
    assert [p.product_id for p in ext.products] == ["c6.2u4g.single", "c6.4u8g.single"]
    assert ext.products[0].available_zones and ext.products[0].properties.max_storage_per_node == "30000"
    job = c.resize_engine_instance(ResizeEngineInstanceRequest(instance_id=iid, engine="rabbitmq",
        body=ResizeEngineInstanceReq(oper_type="storage", new_storage_space=200))).job_id
    assert job
    deadline = time.monotonic() + 30
    while (s := c.show_instance(ShowInstanceRequest(instance_id=iid))).status != "RUNNING" or s.storage_space != 200:
        assert time.monotonic() < deadline, s.status
        time.sleep(0.05)

    # A Kafka instance beside it: one list holds both, the engine filter picks one.
    kafka_id = create_instance(server, "kafka-beside")
    server.wait_status(kafka_id, "RUNNING")
    listed = {i.instance_id: i.engine for i in c.list_instances_details(ListInstancesDetailsRequest()).instances}
    assert listed == {iid: "rabbitmq", kafka_id: "kafka"}
    only = c.list_instances_details(ListInstancesDetailsRequest(engine="rabbitmq")).instances
    assert [i.instance_id for i in only] == [iid]
    # Another project sees none of it.
    other = rabbit_client(server, project_id="0" * 32)
    assert api_error(lambda: other.show_instance(ShowInstanceRequest(instance_id=iid))) == (401, "DMS.00401004")

    # A restart of the server brings the broker back with its user, plug-ins and messages.
    server.stop()
    server.start()
    show = wait_running(c, iid)
    conn = connect(show, USER, "New-Passw0rd")
    ch = conn.channel()
    method, _, body = ch.basic_get("orders", auto_ack=True)
    assert body == b"second"
    ch.exchange_declare("later", "x-delayed-message", passive=True)
    conn.close()

    # Delete: gone from the API, and nothing listens any more.
    c.delete_instance(DeleteInstanceRequest(instance_id=iid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c.show_instance(ShowInstanceRequest(instance_id=iid))
        except ClientRequestException as e:
            assert (e.status_code, e.error_code) == (404, "DMS.00404022")
            break
        time.sleep(0.05)
    else:
        raise AssertionError("instance not deleted")
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        connect(show, USER, "New-Passw0rd")


def test_rabbitmq_create_rules(server):
    c = rabbit_client(server)
    zone = c.list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
    cases = [
        (dict(name="ab"), "DMS.00400010"),
        (dict(engine_version="3.7.17"), "DMS.00400008"),
        (dict(vpc_id=""), "DMS.00400013"),
        (dict(security_group_id=""), "DMS.00400014"),
        (dict(subnet_id=""), "DMS.00400016"),
        (dict(available_zones=[zone, zone]), "DMS.00400067"),
        (dict(available_zones=["f" * 32]), "DMS.00400042"),
        (dict(product_id="c6.9u9g.single"), "DMS.00400009"),
        (dict(product_id="c6.4u8g.cluster"), "DMS.00400063"),
        (dict(product_id="c6.4u8g.cluster", broker_num=4, storage_space=400), "DMS.00400063"),
        (dict(product_id="c6.2u4g.single", broker_num=3), "DMS.00400063"),
        (dict(storage_space=99), "DMS.00400500"),
        (dict(storage_space=30001), "DMS.00400500"),
        (dict(product_id="c6.4u8g.cluster", broker_num=3, storage_space=200), "DMS.00400500"),
        (dict(storage_spec_code="dms.physical.storage.normal"), "DMS.00400125"),
        (dict(access_user="1admin"), "DMS.00400015"),
        (dict(access_user="ab"), "DMS.00400015"),
        (dict(password="alllowercase"), "DMS.00400012"),
        (dict(password="Sh0rt"), "DMS.00400012"),
        (dict(maintain_begin="22:00"), "DMS.00400106"),
        (dict(maintain_begin="03:00", maintain_end="07:00"), "DMS.00400106"),
        (dict(enable_publicip=True, publicip_id=""), "DMS.00400063"),
        (dict(ssl_enable=True), "DMS.00400800"),
    ]
    for overrides, code in cases:
        assert api_error(lambda: create(c, "rabbit-rules", **overrides)) == (400, code), overrides
    # Nothing was created; then a valid cluster, whose name another create cannot take.
    assert c.list_instances_details(ListInstancesDetailsRequest(include_failure="true")).instance_num == 0
    iid = create(c, "rabbit-rules", product_id="c6.4u8g.cluster", broker_num=3, storage_space=300,
                 maintain_begin="22:00", maintain_end="02:00")
    show = wait_running(c, iid)
    assert (show.type, show.broker_num, show.specification) == ("cluster", 3, "4vCPUs 8GB * 3")
    assert (show.maintain_begin, show.maintain_end) == ("22:00:00", "02:00:00")
    assert api_error(lambda: create(c, "rabbit-rules")) == (400, "DMS.00400060")
    # The engine-less create path of SDK 3.1.184 and Terraform takes the same body.
    body = create_body(c, "rabbit-legacy").to_dict()
    r = server.signed("POST", f"/v2/{server.project_id}/instances", body)
    assert r.status_code == 200, r.text
    wait_running(c, r.json()["instance_id"])


def test_rabbitmq_products(server):
    c = rabbit_client(server)
    r = c.list_engine_products(ListEngineProductsRequest(engine="rabbitmq"))
    assert r.engine == "rabbitmq" and r.versions == ["3.8.35"]
    by_id = {p.product_id: p for p in r.products}
    assert set(by_id) == {"c6.2u4g.single", "c6.4u8g.single", "c6.4u8g.cluster"}
    assert by_id["c6.4u8g.cluster"].type == "cluster"
    props = by_id["c6.4u8g.cluster"].properties
    assert (props.min_broker, props.max_broker, props.step_length) == ("3", "7", "2")
    one = c.list_engine_products(ListEngineProductsRequest(engine="rabbitmq", product_id="c6.2u4g.single"))
    assert [p.product_id for p in one.products] == ["c6.2u4g.single"]


def test_broker_resources_through_the_sdk(server):
    """Vhosts, exchanges, queues, bindings and users through the API act on the broker, and
    the API shows what AMQP clients made."""
    from huaweicloudsdkrabbitmq.v2 import (
        AMQPUser, AMQPUserPerm, BatchDeleteBody, BatchDeleteExchangesRequest, BatchDeleteQueuesRequest,
        BatchDeleteVhostsRequest, CreateBindingBody, CreateBindingRequest, CreateExchangeBody,
        CreateExchangeRequest, CreateQueueBody, CreateQueueRequest, CreateUserRequest, CreateVhostBody,
        CreateVhostRequest, DeleteBindingRequest, DeleteQueueInfoRequest, DeleteUserRequest, ListBindingsRequest,
        ListExchangesRequest, ListQueuesRequest, ListUserRequest, ListVhostsRequest, ShowQueueDetailsRequest,
        UpdateUserRequest,
    )
    c = rabbit_client(server)
    iid = create(c, "rabbit-res")
    show = wait_running(c, iid)

    c.create_vhost(CreateVhostRequest(instance_id=iid, body=CreateVhostBody(name="orders")))
    assert [v.name for v in c.list_vhosts(ListVhostsRequest(instance_id=iid)).items] == ["/", "orders"]
    assert api_error(lambda: c.create_vhost(CreateVhostRequest(
        instance_id=iid, body=CreateVhostBody(name="orders")))) == (400, "DMS.00400800")

    c.create_exchange(CreateExchangeRequest(instance_id=iid, vhost="orders", body=CreateExchangeBody(
        name="events", type="topic", durable=True, auto_delete=False, internal=False)))
    names = {e.name: e.type for e in c.list_exchanges(ListExchangesRequest(instance_id=iid, vhost="orders", limit=50)).items}
    assert names["events"] == "topic" and names["amq.fanout"] == "fanout"
    assert api_error(lambda: c.create_exchange(CreateExchangeRequest(instance_id=iid, vhost="orders",
        body=CreateExchangeBody(name="later", type="x-delayed-message", durable=True)))) == (400, "DMS.00400800")

    c.create_queue(CreateQueueRequest(instance_id=iid, vhost="orders", body=CreateQueueBody(
        name="paid", durable=True, auto_delete=False, message_ttl=60000,
        dead_letter_exchange="amq.fanout", dead_letter_routing_key="dead")))
    c.create_binding(CreateBindingRequest(instance_id=iid, vhost="orders", exchange="events",
        body=CreateBindingBody(destination_type="queue", destination="paid", routing_key="order.*")))
    bindings = c.list_bindings(ListBindingsRequest(instance_id=iid, vhost="orders", exchange="events")).items
    assert [(b.destination, b.routing_key, b.properties_key) for b in bindings] == [("paid", "order.*", "order.%2A")]

    # A user with permissions on the vhost only; AMQP clients see what the API made.
    c.create_user(CreateUserRequest(instance_id=iid, body=AMQPUser(access_key="worker", secret_key="Worker-Pw1",
        vhosts=[AMQPUserPerm(vhost="orders", conf="^$", write="events", read="paid")])))
    users = c.list_user(ListUserRequest(instance_id=iid)).users
    assert [(u.access_key, [(p.vhost, p.conf, p.write, p.read) for p in u.vhosts]) for u in users] == \
        [("worker", [("orders", "^$", "events", "paid")])]
    conn = pika.BlockingConnection(pika.ConnectionParameters(show.connect_address, show.port, "orders",
        pika.PlainCredentials("worker", "Worker-Pw1"), heartbeat=0))
    ch = conn.channel()
    ch.basic_publish("events", "order.created", b"o-1", pika.BasicProperties(delivery_mode=2))
    ch.queue_declare("paid", passive=True)
    detail = c.show_queue_details(ShowQueueDetailsRequest(instance_id=iid, vhost="orders", queue="paid"))
    assert detail.messages == 1 and detail.durable is True
    assert detail.arguments.x_message_ttl == 60000 and detail.arguments.x_dead_letter_exchange == "amq.fanout"
    # The default exchange's implicit binding is listed first, as RabbitMQ lists it.
    assert [(b.source, b.routing_key) for b in detail.queue_bindings] == [("", "paid"), ("events", "order.*")]
    # The worker may not configure: declaring a queue is refused by the broker.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("mine")
    assert e.value.reply_code == 403
    conn.close()

    c.delete_queue_info(DeleteQueueInfoRequest(instance_id=iid, vhost="orders", queue="paid"))
    assert c.show_queue_details(ShowQueueDetailsRequest(instance_id=iid, vhost="orders", queue="paid")).messages == 0
    c.update_user(UpdateUserRequest(instance_id=iid, user_name="worker", body=AMQPUser(
        access_key="worker", vhosts=[AMQPUserPerm(vhost="/", conf=".*", write=".*", read=".*")])))
    assert [p.vhost for p in c.list_user(ListUserRequest(instance_id=iid)).users[0].vhosts] == ["/"]

    c.delete_binding(DeleteBindingRequest(instance_id=iid, vhost="orders", exchange="events",
        destination_type="queue", destination="paid", properties_key="order.%2A"))
    assert c.list_bindings(ListBindingsRequest(instance_id=iid, vhost="orders", exchange="events")).items == []
    c.batch_delete_queues(BatchDeleteQueuesRequest(instance_id=iid, vhost="orders", body=BatchDeleteBody(name=["paid"])))
    assert c.list_queues(ListQueuesRequest(instance_id=iid, vhost="orders")).total == 0
    c.batch_delete_exchanges(BatchDeleteExchangesRequest(instance_id=iid, vhost="orders",
        body=BatchDeleteBody(name=["events"])))
    c.delete_user(DeleteUserRequest(instance_id=iid, user_name="worker"))
    assert c.list_user(ListUserRequest(instance_id=iid)).total == 0
    # The access user is the instance's and stays.
    assert api_error(lambda: c.delete_user(DeleteUserRequest(instance_id=iid, user_name=USER))) == (400, "DMS.00400800")
    # The default vhost travels as %2F.
    c.create_queue(CreateQueueRequest(instance_id=iid, vhost="/", body=CreateQueueBody(name="root-q")))
    assert [q.name for q in c.list_queues(ListQueuesRequest(instance_id=iid, vhost="/")).items] == ["root-q"]
    c.batch_delete_vhosts(BatchDeleteVhostsRequest(instance_id=iid, body=BatchDeleteBody(name=["orders"])))
    assert [v.name for v in c.list_vhosts(ListVhostsRequest(instance_id=iid)).items] == ["/"]


def test_the_older_sdk_3_1_184(server):
    """huaweicloudsdkrabbitmq 3.1.184 (its own engine-less create path among others), in a
    process of its own so that its modules are not the pinned latest SDK's."""
    import os
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    script = Path(__file__).resolve().parent / "clients" / "huawei_rabbitmq_sdk_3_1_184.py"
    env = {**os.environ, "PYTHONPATH": str(repo / ".venv" / "sdk-3.1.184")}
    r = subprocess.run([sys.executable, str(script), server.url, server.ak, server.sk, server.project_id],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("auth", ["token", "aksk"])
def test_v1_endpoints_with_token_and_aksk(server, auth):
    """Seed 002 chapter 6: the out-of-date V1 paths, over plain HTTP, every one with an IAM
    token in one run and with an AK/SK signature in the other."""
    p = server.project_id
    token = server.token().headers["X-Subject-Token"] if auth == "token" else None
    zones = server.signed("GET", "/v1.0/availableZones", token=token).json()["available_zones"]
    body = {"name": "rabbit-v1", "description": "", "engine": "RabbitMQ", "engine_version": "3.x.x",
            "storage_space": 300, "access_user": "v1-user", "password": "V1-Passw0rd",
            "vpc_id": "vpc-1", "security_group_id": "sg-1", "subnet_id": "subnet-1",
            "available_zones": [zones[0]["id"]], "product_id": "00300-30209-0--0",
            "maintain_begin": "22:00", "maintain_end": "02:00", "ssl_enable": False, "enable_publicip": False,
            "publicip_id": "", "enterprise_project_id": "0", "storage_spec_code": "dms.physical.storage.ultra"}
    for overrides, code in [({"product_id": "c6.2u4g.single"}, "111400009"),
                            ({"storage_space": 200}, "111400500"),
                            ({"storage_spec_code": "dms.physical.storage.ultra.v2"}, "111400125"),
                            ({"access_user": "v1_user"}, "111400015"),
                            ({"name": "rabbit_v1"}, "111400010")]:
        r = server.signed("POST", f"/v1.0/{p}/instances", {**body, **overrides}, token=token)
        assert (r.status_code, r.json()["error_code"]) == (400, code), (overrides, r.text)
    r = server.signed("POST", f"/v1.0/{p}/instances", body, token=token)
    assert r.status_code == 200, r.text
    iid = r.json()["instance_id"]
    deadline = time.monotonic() + 30
    while (show := server.signed("GET", f"/v1.0/{p}/instances/{iid}", token=token).json())["status"] != "RUNNING":
        assert time.monotonic() < deadline, show
        time.sleep(0.05)
    assert (show["engine"], show["type"], show["product_id"]) == ("rabbitmq", "cluster", "00300-30209-0--0")
    assert show["resource_spec_code"] == "dms.instance.rabbitmq.cluster.c3.4u8g.3"
    assert show["specification"] == "4vCPUs 8GB * 3" and show["extend_times"] == "0" and show["error_code"] is None
    assert show["port"] == 5672 and show["management_connect_address"].endswith(":15672")
    conn = pika.BlockingConnection(pika.ConnectionParameters(show["connect_address"], show["port"], "/",
                                   pika.PlainCredentials("v1-user", "V1-Passw0rd"), heartbeat=0))
    conn.close()

    listed = server.signed("GET", f"/v1.0/{p}/instances", query={"engine": "rabbitmq"}, token=token).json()
    assert listed["instance_num"] == 1 and listed["instances"][0]["instance_id"] == iid
    r = server.signed("PUT", f"/v1.0/{p}/instances/{iid}", {"name": "rabbit-v1b", "description": "renamed"},
                      token=token)
    assert r.status_code == 204, r.text
    assert server.signed("GET", f"/v1.0/{p}/instances/{iid}", token=token).json()["name"] == "rabbit-v1b"

    products = server.signed("GET", "/v1.0/products", query={"engine": "rabbitmq"}, token=token).json()
    hourly = products["Hourly"][0]["values"]
    singles = [d["product_id"] for d in hourly[0]["detail"]]
    assert singles[0] == "00300-30109-0--0" and len(singles) == 4
    clusters = {i["product_id"]: i["node_num"] for d in hourly[1]["detail"] for i in d["product_info"]}
    assert clusters["00300-30209-0--0"] == "3" and len(clusters) == 9
    # The SDK's engine-less products path lists these for RabbitMQ; Kafka's is not served.
    old = server.signed("GET", "/v2/products", query={"engine": "rabbitmq"}, token=token).json()
    assert old["Hourly"][0]["values"][0]["detail"][0]["product_id"] == "00300-30109-0--0"
    r = server.signed("GET", "/v2/products", query={"engine": "kafka"}, token=token)
    assert (r.status_code, r.json()["error_code"]) == (501, "DMS.00501001") and "list_products" in r.text
    windows = server.signed("GET", "/v1.0/instances/maintain-windows", token=token).json()["maintain_windows"]
    # Seed 002 prints two-digit hours; the shared path answers the Kafka documents' HH:mm:ss.
    assert [(w["begin"][:2], w["end"][:2]) for w in windows][:2] == [("22", "02"), ("02", "06")]

    # Delete one (6.1.1.4), and another in a batch (6.1.1.5).
    second = server.signed("POST", f"/v1.0/{p}/instances", {**body, "name": "rabbit-v1c",
                           "product_id": "00300-30110-0--0", "storage_space": 100}, token=token).json()["instance_id"]
    r = server.signed("DELETE", f"/v1.0/{p}/instances/{iid}", token=token)
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 30
    while server.signed("GET", f"/v1.0/{p}/instances/{second}", token=token).json()["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = server.signed("POST", f"/v1.0/{p}/instances/action", {"action": "delete", "instances": [second]}, token=token)
    assert r.status_code in (200, 204), r.text
    for gone in (iid, second):
        deadline = time.monotonic() + 30
        while (r := server.signed("GET", f"/v1.0/{p}/instances/{gone}", token=token)).status_code != 404:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.05)
        assert r.json()["error_code"] == "111404022"


def test_tags_restart_faults_and_refusals(server):
    """The shared instance routes on RabbitMQ instances: tags under rabbitmq's path, modify,
    batch restart with the busy-status refusal, the lifecycle fault controls, all_failure,
    background tasks; a tampered signature and another project's credentials refused."""
    from huaweicloudsdkrabbitmq.v2 import (
        BatchCreateOrDeleteRabbitMqTagRequest, BatchCreateOrDeleteTagReq, BatchRestartOrDeleteInstanceReq,
        BatchRestartOrDeleteInstancesRequest, ListBackgroundTasksRequest, ShowRabbitMqProjectTagsRequest,
        ShowRabbitMqTagsRequest, TagEntity, UpdateInstanceReq, UpdateInstanceRequest,
    )
    c = rabbit_client(server)
    iid = create(c, "rabbit-tags", tags=[TagEntity(key="team", value="orders")])
    show = wait_running(c, iid)
    c.batch_create_or_delete_rabbit_mq_tag(BatchCreateOrDeleteRabbitMqTagRequest(instance_id=iid,
        body=BatchCreateOrDeleteTagReq(action="create", tags=[TagEntity(key="env", value="test")])))
    tags = {(t.key, t.value) for t in c.show_rabbit_mq_tags(ShowRabbitMqTagsRequest(instance_id=iid)).tags}
    assert tags == {("team", "orders"), ("env", "test")}
    project = {t.key: t.values for t in c.show_rabbit_mq_project_tags(ShowRabbitMqProjectTagsRequest()).tags}
    assert project == {"team": ["orders"], "env": ["test"]}
    c.update_instance(UpdateInstanceRequest(instance_id=iid, body=UpdateInstanceReq(
        name="rabbit-tags-2", description="renamed", maintain_begin="06:00", maintain_end="10:00")))
    show = c.show_instance(ShowInstanceRequest(instance_id=iid))
    assert (show.name, show.description, show.maintain_begin) == ("rabbit-tags-2", "renamed", "06:00:00")

    # Restart: RESTARTING refuses other operations, then RUNNING with the broker back.
    server.signed("PUT", "/opendms/admin/lifecycle", {"restart": {"delay_reads": 2}})
    c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(instances=[iid], action="restart")))
    assert api_error(lambda: c.reset_password(ResetPasswordRequest(
        instance_id=iid, body=ResetPasswordReq(new_password="Other-Passw0rd")))) == (400, "DMS.00400026")
    wait_running(c, iid, passing=("RESTARTING",))
    connect(show).close()
    tasks = {(t.name, t.status) for t in c.list_background_tasks(ListBackgroundTasksRequest(instance_id=iid)).tasks}
    assert {("createInstance", "SUCCESS"), ("restartInstance", "SUCCESS")} <= tasks

    # An injected create failure: CREATEFAILED with its reason, listed with include_failure,
    # deleted by all_failure=rabbitmq.
    server.signed("PUT", "/opendms/admin/lifecycle", {"create": {"fail_next": True}})
    failed = create(c, "rabbit-doomed")
    deadline = time.monotonic() + 30
    while c.show_instance(ShowInstanceRequest(instance_id=failed)).status != "CREATEFAILED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert c.list_instances_details(ListInstancesDetailsRequest(include_failure="true")).instance_num == 2
    # The document's own spelling of the flag.
    r = server.signed("GET", f"/v2/{server.project_id}/instances", query={"include_failures": "true"})
    assert r.json()["instance_num"] == 2, r.text
    c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(action="delete", all_failure="rabbitmq")))
    deadline = time.monotonic() + 30
    while c.list_instances_details(ListInstancesDetailsRequest(include_failure="true")).instance_num != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # Refusals: a tampered signature, and a project the credentials are not for.
    r = server.signed("PUT", f"/v2/rabbitmq/{server.project_id}/instances/{iid}/vhosts", {"name": "x"},
                      tamper=lambda b: b.replace(b'"x"', b'"y"'))
    assert (r.status_code, r.json()["error_code"]) == (401, "APIGW.0301"), r.text
    other = rabbit_client(server, project_id="f" * 32)
    assert api_error(lambda: other.list_plugins(ListPluginsRequest(instance_id=iid))) == (401, "DMS.00401004")
    from huaweicloudsdkrabbitmq.v2 import ListVhostsRequest
    assert [v.name for v in c.list_vhosts(ListVhostsRequest(instance_id=iid)).items] == ["/"]
