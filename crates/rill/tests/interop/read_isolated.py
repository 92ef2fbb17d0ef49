#!/usr/bin/env python3
"""Every record of a topic as a confluent-kafka (librdkafka) consumer at an isolation level
sees it, read with `transactions.read_all` (each partition up to the end that level allows).

    read_isolated.py BOOTSTRAP TOPIC PARTITIONS ISOLATION
        ISOLATION is read_committed or read_uncommitted:
        {"records": [[partition, offset, value]...]}
"""

import sys

import common
import transactions


def main():
    bootstrap, topic, partitions, isolation = sys.argv[1:5]
    records = transactions.read_all(bootstrap, topic, isolation, seconds=60.0,
                                    partitions=int(partitions), with_partition=True)
    common.emit({"records": records})


if __name__ == "__main__":
    main()
