#!/usr/bin/env python3
"""A consume-transform-produce worker with librdkafka's transactional API (confluent-kafka, at
its defaults but for the ids): reads INPUT in group GROUP (read_committed), writes each record's
value prefixed with `out-` to OUTPUT with the same key, and commits the input offsets in the same
transaction. It always uses the transactional id TXN_ID, so a restarted worker fences the one it
replaces. Killed with -9 at any moment, a new one carries on: the checker proves every input
record appears exactly once in OUTPUT for a read_committed reader.

Exits 0 once every partition of INPUT is consumed up to its end (as committed), non-zero on a
fatal error (e.g. fenced), after which the checker starts another.

    eos_worker.py BOOTSTRAP INPUT OUTPUT GROUP TXN_ID [--seconds S]
"""

import argparse
import sys

import common


def commit(producer):
    """Commits, trying again while librdkafka says the error is retriable."""
    from confluent_kafka import KafkaException

    while True:
        try:
            producer.commit_transaction(60)
            return
        except KafkaException as err:
            if not err.args[0].retriable():
                raise


def main():
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "input", "output", "group", "txn_id"):
        parser.add_argument(name)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # A restarted worker takes the place of the one it replaces at once (KIP-345), as an
        # exactly-once application restarted in place would.
        "group.instance.id": args.txn_id,
    })
    consumer.subscribe([args.input])
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": args.txn_id})
    producer.init_transactions(60)

    def rewind():
        """After an abort, back to the committed offsets (the aborted batch is read again)."""
        assignment = consumer.assignment()
        if not assignment:
            return
        for tp in consumer.committed(assignment, 30):
            offset = tp.offset if tp.offset >= 0 else 0
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def done():
        assignment = consumer.assignment()
        metadata = consumer.list_topics(args.input, 10).topics[args.input]
        if len(assignment) < len(metadata.partitions):
            return False
        for tp in consumer.committed(assignment, 30):
            _, high = consumer.get_watermark_offsets(tp, 10)
            if tp.offset < high:
                return False
        return True

    deadline = common.Deadline(args.seconds)
    while not deadline.expired():
        msgs = [m for m in consumer.consume(200, 0.5) if m.error() is None]
        if not msgs:
            if done():
                common.emit({"done": True})
                return
            continue
        try:
            producer.begin_transaction()
            for m in msgs:
                producer.produce(args.output, key=m.key(), value=b"out-" + m.value())
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(
                positions, consumer.consumer_group_metadata(), 60)
            commit(producer)
        except KafkaException as err:
            e = err.args[0]
            if e.txn_requires_abort():
                producer.abort_transaction(60)
                rewind()
                continue
            print(f"fatal: {e}", file=sys.stderr, flush=True)
            sys.exit(3)
    common.fail("not done in time")


if __name__ == "__main__":
    main()
