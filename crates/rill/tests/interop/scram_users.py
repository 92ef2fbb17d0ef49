#!/usr/bin/env python3
"""SASL users with confluent-kafka's AdminClient (AlterUserScramCredentials and
DescribeUserScramCredentials); prints what it saw as JSON.

    scram_users.py BOOTSTRAP [--set NAME=VALUE ...] upsert USER MECHANISM ITERATIONS PASSWORD
        {"USER": null or Kafka error name}
    scram_users.py BOOTSTRAP [--set ...] delete USER MECHANISM
        {"USER": null or Kafka error name}
    scram_users.py BOOTSTRAP [--set ...] describe [USER ...]
        {"USER": [[MECHANISM, ITERATIONS], ...] or the Kafka error name}

MECHANISM is SCRAM-SHA-256 or SCRAM-SHA-512. `--set` passes client settings (librdkafka names),
for the admin's own SASL login.
"""

import argparse

import common

TIMEOUT = 10.0


def error_name(err):
    from confluent_kafka import KafkaException

    if isinstance(err, KafkaException):
        return err.args[0].name()
    return type(err).__name__ + ": " + str(err)


def mechanism(name):
    from confluent_kafka.admin import ScramMechanism

    return {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
            "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[name]


def main():
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo,
                                       UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)

    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--set", action="append")
    parser.add_argument("action", choices=["upsert", "delete", "describe"])
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    config = {"bootstrap.servers": args.bootstrap}
    config.update(common.parse_kv(args.set))
    admin = AdminClient(config)

    if args.action in ("upsert", "delete"):
        if args.action == "upsert":
            user, mech, iterations, password = args.rest
            info = ScramCredentialInfo(mechanism(mech), int(iterations))
            alteration = UserScramCredentialUpsertion(user, info, password.encode())
        else:
            user, mech = args.rest
            alteration = UserScramCredentialDeletion(user, mechanism(mech))
        out = {}
        for name, future in admin.alter_user_scram_credentials([alteration]).items():
            try:
                future.result(TIMEOUT)
                out[name] = None
            except Exception as err:  # noqa: BLE001 - the error's name is the answer
                out[name] = error_name(err)
        common.emit(out)
        return

    users = args.rest or None
    answer = admin.describe_user_scram_credentials(users)
    out = {}
    if users is None:
        described = answer.result(TIMEOUT)
        items = described.items()
    else:
        items = []
        for name, future in answer.items():
            try:
                items.append((name, future.result(TIMEOUT)))
            except Exception as err:  # noqa: BLE001
                out[name] = error_name(err)
    for name, description in items:
        out[name] = sorted(
            [info.mechanism.name.replace("_", "-"), info.iterations]
            for info in description.scram_credential_infos)
    common.emit(out)


if __name__ == "__main__":
    main()
