#!/usr/bin/env python3
"""ListOffsets: watermarks and offsets-for-times of one partition, as two clients see them.

    offsets.py BOOTSTRAP TOPIC PARTITION TIMESTAMP [TIMESTAMP ...]

prints {"watermarks": [low, high], "confluent": {ts: offset or null},
        "kafka-python": {ts: offset or null}}
where an offset is the first one whose timestamp is >= ts and null means there is none.
"""

import argparse

import common

TIMEOUT = 10.0


def confluent(args):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "rill-interop-unused",
                         "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(args.topic, args.partition), timeout=TIMEOUT)
        result = {}
        # One call per time: a list naming the same partition twice is merged by librdkafka.
        for ts in args.timestamps:
            (tp,) = consumer.offsets_for_times(
                [TopicPartition(args.topic, args.partition, ts)], timeout=TIMEOUT)
            if tp.error is not None:
                common.fail(f"offsets_for_times({ts}): {tp.error}")
            # librdkafka reports "no such offset" as OFFSET_END (-1).
            result[str(ts)] = None if tp.offset < 0 else tp.offset
        return [low, high], result
    finally:
        consumer.close()


def kafka_python(args):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=int(TIMEOUT * 1000))
    try:
        tp = TopicPartition(args.topic, args.partition)
        result = {}
        for ts in args.timestamps:
            found = consumer.offsets_for_times({tp: ts})[tp]
            result[str(ts)] = None if found is None else found.offset
        low = consumer.beginning_offsets([tp])[tp]
        high = consumer.end_offsets([tp])[tp]
        return [low, high], result
    finally:
        consumer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("partition", type=int)
    parser.add_argument("timestamps", type=int, nargs="+")
    args = parser.parse_args()
    marks_c, times_c = confluent(args)
    marks_k, times_k = kafka_python(args)
    if marks_c != marks_k:
        common.fail(f"watermarks differ: confluent {marks_c}, kafka-python {marks_k}")
    common.emit({"watermarks": marks_c, "confluent": times_c, "kafka-python": times_k})


if __name__ == "__main__":
    main()
