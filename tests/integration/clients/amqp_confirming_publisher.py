"""Confirming publisher for the AMQP crash test: publishes COUNT persistent messages (body =
sequence number) to QUEUE with publisher confirms, one at a time, and writes every confirmed
number to CONFIRMED_FILE, flushed at once, so the test knows exactly what the broker
confirmed before it was killed. Exits when the connection drops.

  amqp_confirming_publisher.py HOST PORT QUEUE COUNT CONFIRMED_FILE
"""

import sys

import pika

host, port, queue, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
out = open(path, "w", buffering=1)
connection = pika.BlockingConnection(pika.ConnectionParameters(host, port, heartbeat=0))
channel = connection.channel()
channel.confirm_delivery()
persistent = pika.BasicProperties(delivery_mode=2)
try:
    for i in range(count):
        channel.basic_publish("", queue, str(i).encode(), persistent)
        out.write(f"{i}\n")
        out.flush()
except (pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError, ConnectionError) as e:
    print(f"connection lost after {i} messages: {e!r}", file=sys.stderr)
