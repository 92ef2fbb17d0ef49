#!/usr/bin/env python3
"""Transactions with aiokafka's transactional producer (AIOKafkaProducer(transactional_id=...)
and its `transaction()` context) and its read_committed / read_uncommitted consumers, every
setting at its default except the transactional id and the isolation level. Prints one JSON
document; records travel as [partition, offset, value].

    transactions_aiokafka.py BOOTSTRAP commit-abort TOPIC PARTITIONS
        As transactions_kafka_python.py's commit-abort: three transactions of 10 records per
        partition (c1-P-I committed, a-P-I aborted by an exception leaving the context, c2-P-I
        committed), the end offsets while the second was open, then every partition read by
        each isolation: {"committed", "uncommitted", "end", "open_end"}.
"""

import asyncio
import sys
import uuid

import common


class Abort(Exception):
    """Raised inside a transaction context to make aiokafka abort it."""


async def consumer(bootstrap, isolation, topic, partitions):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         isolation_level=isolation)
    await c.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    return c, tps


async def ends(c, tps):
    return {tp.partition: offset for tp, offset in (await c.end_offsets(tps)).items()}


async def read_up_to(c, tps, end, deadline):
    got = []
    while True:
        positions = {tp.partition: await c.position(tp) for tp in tps}
        if all(positions[p] >= end[p] for p in positions):
            break
        if deadline.expired():
            common.fail(f"timed out at positions {positions}, end offsets {end}")
        batches = await c.getmany(timeout_ms=500)
        for msgs in batches.values():
            for msg in msgs:
                got.append([msg.partition, msg.offset, msg.value.decode()])
    got.sort()
    return got


async def commit_abort(bootstrap, topic, partitions):
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"txn-{uuid.uuid4()}")
    await p.start()
    open_end = None
    try:
        for prefix, commit in (("c1", True), ("a", False), ("c2", True)):
            try:
                async with p.transaction():
                    sent = []
                    for part in range(partitions):
                        for i in range(10):
                            sent.append(await p.send(
                                topic, value=f"{prefix}-{part}-{i}".encode(), partition=part))
                    await asyncio.gather(*sent)
                    if not commit:
                        c, tps = await consumer(bootstrap, "read_committed", topic, partitions)
                        u, _ = await consumer(bootstrap, "read_uncommitted", topic, partitions)
                        open_end = {"read_committed": await ends(c, tps),
                                    "read_uncommitted": await ends(u, tps)}
                        await c.stop()
                        await u.stop()
                        raise Abort()
            except Abort:
                pass
    finally:
        await p.stop()

    deadline = common.Deadline(30)
    c, tps = await consumer(bootstrap, "read_committed", topic, partitions)
    u, _ = await consumer(bootstrap, "read_uncommitted", topic, partitions)
    try:
        # Every marker written: the end offsets of both isolations agree.
        while True:
            end_c, end_u = await ends(c, tps), await ends(u, tps)
            if end_c == end_u:
                break
            if deadline.expired():
                common.fail(f"the end offsets never agreed: {end_c} and {end_u}")
            await asyncio.sleep(0.1)
        return {
            "committed": await read_up_to(c, tps, end_c, deadline),
            "uncommitted": await read_up_to(u, tps, end_u, deadline),
            "end": {"read_committed": end_c, "read_uncommitted": end_u},
            "open_end": open_end,
        }
    finally:
        await c.stop()
        await u.stop()


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if scenario == "commit-abort":
        common.emit(asyncio.run(commit_abort(bootstrap, args[0], int(args[1]))))
    else:
        common.fail(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
