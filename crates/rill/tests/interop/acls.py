#!/usr/bin/env python3
"""ACLs through real clients; prints what happened as JSON.

    acls.py BOOTSTRAP admin --client confluent|kafka-python [--set NAME=VALUE ...] < STEPS
        STEPS is a JSON list of {"op": "create"|"describe"|"delete", "acls"|"filter": ...}, each
        ACL or filter as {"type", "name", "pattern", "principal", "host", "operation",
        "permission"} with Kafka's upper-case names ("ANY" or null for "any" in a filter).
        Prints [result per step]: create -> null or the error name; describe -> sorted ACLs;
        delete -> sorted ACLs removed (or the error name).
    acls.py BOOTSTRAP probe TOPIC GROUP [--set NAME=VALUE ...]
        As one principal (the --set settings: librdkafka's, e.g. a client certificate), with
        confluent-kafka at its defaults: {"topics": visible topic names, "produce": offset or
        error name, "consume": "value" or error name}.
    acls.py BOOTSTRAP groups GROUP... [--set NAME=VALUE ...]
        As one principal: {"listed": the groups ListGroups shows, "described": {group: null or
        the error name of DescribeGroups}}.
    acls.py BOOTSTRAP ops TOPIC [--set NAME=VALUE ...]
        As one principal, with confluent-kafka's AdminClient: each admin operation on TOPIC
        (create, describe and alter its configs, add a partition, delete it) and an idempotent
        producer's first record; {operation: null or the error name}.
"""

import argparse
import json
import sys

import common

TIMEOUT = 10.0


def acl_tuple(a):
    return [a["type"], a["name"], a["pattern"], a["principal"], a["host"], a["operation"],
            a["permission"]]


def confluent_admin(bootstrap, settings, steps):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, AdminClient, ResourcePatternType,
                                       ResourceType)

    admin = AdminClient({"bootstrap.servers": bootstrap, **settings})

    def enum(kind, value):
        # confluent-kafka names Kafka's CLUSTER resource type (4) BROKER.
        if kind is ResourceType and value == "CLUSTER":
            value = "BROKER"
        return kind["ANY" if value is None else value]

    def binding(a, cls):
        return cls(enum(ResourceType, a["type"]), a["name"], enum(ResourcePatternType, a["pattern"]),
                   a["principal"], a["host"], enum(AclOperation, a["operation"]),
                   enum(AclPermissionType, a["permission"]))

    def out(b):
        return [b.restype.name.replace("BROKER", "CLUSTER"), b.name, b.resource_pattern_type.name, b.principal, b.host,
                b.operation.name, b.permission_type.name]

    results = []
    for step in steps:
        try:
            if step["op"] == "create":
                futures = admin.create_acls([binding(a, AclBinding) for a in step["acls"]])
                for f in futures.values():
                    f.result(TIMEOUT)
                results.append(None)
            elif step["op"] == "describe":
                found = admin.describe_acls(binding(step["filter"], AclBindingFilter)).result(TIMEOUT)
                results.append(sorted(out(b) for b in found))
            else:
                futures = admin.delete_acls([binding(step["filter"], AclBindingFilter)])
                removed = []
                for f in futures.values():
                    removed.extend(out(b) for b in f.result(TIMEOUT))
                results.append(sorted(removed))
        except KafkaException as err:
            results.append(err.args[0].name())
    return results


def kafka_python_admin(bootstrap, settings, steps):
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                             ResourcePatternFilter, ResourceType)
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **settings)

    def enum(kind, value):
        return kind["ANY" if value is None else value]

    def out(a):
        p = a.resource_pattern
        return [p.resource_type.name, p.resource_name, p.pattern_type.name, a.principal, a.host,
                a.operation.name, a.permission_type.name]

    results = []
    for step in steps:
        try:
            if step["op"] == "create":
                acls = [ACL(a["principal"], a["host"], enum(ACLOperation, a["operation"]),
                            enum(ACLPermissionType, a["permission"]),
                            ResourcePattern(enum(ResourceType, a["type"]), a["name"],
                                            enum(ACLResourcePatternType, a["pattern"])))
                        for a in step["acls"]]
                answer = admin.create_acls(acls)
                failed = answer.get("failed") or []
                results.append(failed[0].__name__ if failed else None)
            else:
                f = step["filter"]
                flt = ACLFilter(f["principal"], f["host"], enum(ACLOperation, f["operation"]),
                                enum(ACLPermissionType, f["permission"]),
                                ResourcePatternFilter(enum(ResourceType, f["type"]), f["name"],
                                                      enum(ACLResourcePatternType, f["pattern"])))
                if step["op"] == "describe":
                    found, error = admin.describe_acls(flt)
                    results.append(sorted(out(a) for a in found))
                else:
                    answer = admin.delete_acls([flt])
                    removed = []
                    for _filter, matched, error in answer:
                        if getattr(error, "errno", 0):
                            removed.append(type(error).__name__)
                        removed.extend(out(a) for a in matched)
                    results.append(sorted(removed, key=str))
        except KafkaError as err:
            results.append(type(err).__name__)
        except Exception as err:  # noqa: BLE001 - kafka-python raises its errors' classes too
            results.append(type(err).__name__)
    admin.close()
    return results


def probe(bootstrap, topic, group, settings):
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    result = {}
    admin = AdminClient({"bootstrap.servers": bootstrap, **settings})
    try:
        md = admin.list_topics(timeout=TIMEOUT)
        result["topics"] = sorted(n for n, t in md.topics.items() if t.error is None)
    except KafkaException as err:
        result["topics"] = err.args[0].name()

    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    delivered = {}

    def on_delivery(err, msg):
        delivered["r"] = err.name() if err is not None else msg.offset()

    producer.produce(topic, b"value", on_delivery=on_delivery)
    producer.flush(TIMEOUT)
    result["produce"] = delivered.get("r", "timed out")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", **settings})
    consumer.subscribe([topic])
    deadline = common.Deadline(TIMEOUT)
    result["consume"] = "timed out"
    while not deadline.expired():
        msg = consumer.poll(min(1.0, deadline.left()))
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().name() == "_PARTITION_EOF":
                continue
            result["consume"] = msg.error().name()
            break
        result["consume"] = msg.value().decode()
        break
    consumer.close()
    return result


def ops(bootstrap, topic, settings):
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **settings})

    def outcome(futures):
        try:
            for f in futures.values():
                f.result(TIMEOUT)
            return None
        except KafkaException as err:
            return err.args[0].name()

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    result = {
        "create": outcome(admin.create_topics([NewTopic(topic, 1)])),
        "describe_configs": outcome(admin.describe_configs([resource])),
        "alter_configs": outcome(admin.alter_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, topic,
                            set_config={"retention.ms": "3600000"})])),
        "create_partitions": outcome(admin.create_partitions([NewPartitions(topic, 2)])),
    }
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         **settings})
    delivered = {}

    def on_delivery(err, msg):
        delivered["r"] = err.name() if err is not None else None

    producer.produce(topic, b"x", partition=0, on_delivery=on_delivery)
    producer.flush(TIMEOUT)
    result["idempotent_produce"] = delivered.get("r", "timed out")
    result["delete"] = outcome(admin.delete_topics([topic]))
    return result


def groups(bootstrap, names, settings):
    """ListGroups and DescribeGroups as one principal: {"listed": sorted ids, "described":
    {id: null or the error name}}."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, **settings})
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(TIMEOUT)
    described = {}
    for name, future in admin.describe_consumer_groups(names).items():
        try:
            future.result(TIMEOUT)
            described[name] = None
        except KafkaException as err:
            described[name] = err.args[0].name()
    return {"listed": sorted(g.group_id for g in listed.valid), "described": described}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("mode", choices=["admin", "probe", "ops", "groups"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    parser.add_argument("--set", action="append")
    args = parser.parse_args()
    settings = common.parse_kv(args.set)
    if args.mode == "admin":
        steps = json.load(sys.stdin)
        run = confluent_admin if args.client == "confluent" else kafka_python_admin
        common.emit(run(args.bootstrap, settings, steps))
    elif args.mode == "groups":
        common.emit(groups(args.bootstrap, args.rest, settings))
    elif args.mode == "ops":
        if len(args.rest) != 1:
            common.fail("ops needs TOPIC")
        common.emit(ops(args.bootstrap, args.rest[0], settings))
    else:
        if len(args.rest) != 2:
            common.fail("probe needs TOPIC GROUP")
        common.emit(probe(args.bootstrap, args.rest[0], args.rest[1], settings))


if __name__ == "__main__":
    main()
