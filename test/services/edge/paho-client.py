"""A device on Python's paho-mqtt (2.x), for the edge's MQTT tests.

usage: paho-client.py <port> <deviceId> <token> <5|3.1.1> <mode>
  mode "request": one request to tether/req/echo, prints the answer as a JSON line
  mode "push":    waits for one push under tether/push/, prints it as a JSON line
Exits 2 when the edge refuses the CONNECT (the reason on stderr), 3 on a timeout.
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, device_id, token, version, mode = sys.argv[1:6]
v5 = version == "5"
client = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2,
    client_id=device_id,
    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
)
client.username_pw_set(device_id, token)
connected = threading.Event()
done = threading.Event()
refused = []
result = {}


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        refused.append(str(reason_code))
        done.set()
        return
    client.subscribe("tether/res/#" if mode == "request" else "tether/push/#", qos=1)
    connected.set()


def on_subscribe(client, userdata, mid, reason_codes, properties):
    if mode != "request":
        return
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "tether/res/" + device_id
        props.CorrelationData = b"paho-1"
        client.publish("tether/req/echo", json.dumps({"from": "paho"}), qos=1, properties=props)
    else:
        client.publish("tether/req/echo/paho-1", json.dumps({"from": "paho"}), qos=1)


def on_message(client, userdata, message):
    props = getattr(message, "properties", None)
    correlation = getattr(props, "CorrelationData", None) if props is not None else None
    user = dict(getattr(props, "UserProperty", []) or []) if props is not None else {}
    result.update(
        topic=message.topic,
        payload=json.loads(message.payload.decode("utf-8")),
        correlation=correlation.decode("utf-8") if correlation else None,
        user=user,
    )
    done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect("127.0.0.1", int(port), keepalive=30)
client.loop_start()
finished = done.wait(10)
# Give the PUBACK of the message time to leave before the socket closes.
threading.Event().wait(0.3)
client.disconnect()
client.loop_stop()
if refused:
    print(refused[0], file=sys.stderr)
    sys.exit(2)
if not finished:
    sys.exit(3)
print(json.dumps(result))
