#!/usr/bin/env python3
"""Dynamic broker configs with confluent-kafka's AdminClient at its defaults.

    broker_configs.py BOOTSTRAP TOPIC
        alter_configs on BROKER "0" (sasl.kerberos.min.time.before.relogin, log.retention.ms),
        incremental_alter_configs (background.threads SET then DELETE, log.cleanup.policy
        APPEND compact), a read-only config (log.dirs); then describe_configs of the broker and
        of TOPIC. Prints {"alter", "incremental", "incremental_delete", "bad": null or the error
        name, "broker": {name: [value, source]}, "topic": {name: [value, source]}}.
"""

import argparse

import common

TIMEOUT = 10.0


def error_name(futures):
    from confluent_kafka import KafkaException

    try:
        for future in futures.values():
            future.result(TIMEOUT)
        return None
    except KafkaException as err:
        return err.args[0].name()


def described(admin, resource):
    entries = admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)
    return {
        name: [entry.value, getattr(entry.source, "value", entry.source)]
        for name, entry in entries.items()
    }


def main():
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    out = {}

    legacy = ConfigResource(ResourceType.BROKER, "0")
    legacy.set_config("sasl.kerberos.min.time.before.relogin", "58000")
    legacy.set_config("log.retention.ms", "3600000")
    out["alter"] = error_name(admin.alter_configs([legacy], request_timeout=TIMEOUT))

    def incremental(*entries):
        resource = ConfigResource(ResourceType.BROKER, "0", incremental_configs=list(entries))
        return error_name(admin.incremental_alter_configs([resource], request_timeout=TIMEOUT))

    out["incremental"] = incremental(
        ConfigEntry("background.threads", "9", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("log.cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    )
    out["incremental_delete"] = incremental(
        ConfigEntry("background.threads", None, incremental_operation=AlterConfigOpType.DELETE),
    )
    out["bad"] = incremental(
        ConfigEntry("log.dirs", "/tmp/elsewhere", incremental_operation=AlterConfigOpType.SET),
    )
    out["broker"] = described(admin, ConfigResource(ResourceType.BROKER, "0"))
    out["topic"] = described(admin, ConfigResource(ResourceType.TOPIC, args.topic))
    common.emit(out)


if __name__ == "__main__":
    main()
