#!/usr/bin/env node
// kafkajs's transactional producer (producer({ transactionalId, idempotent: true,
// maxInFlightRequests: 1 }) and producer.transaction()) and its consumers, read_committed (its
// default) and read_uncommitted, every other setting at the client's default. Prints one JSON
// line; records travel as [partition, offset, value].
//
//   transactions.js BOOTSTRAP commit-abort TOPIC PARTITIONS
//       As transactions_kafka_python.py's commit-abort: three transactions of 10 records per
//       partition (c1-P-I committed, a-P-I aborted, c2-P-I committed); while the second is
//       open, the end offsets kafkajs's admin sees (ListOffsets at read_committed). Then a
//       consumer of each isolation (each in a group of its own) reads the topic from the
//       start until it has what it should see (20 records a partition read_committed, 30
//       read_uncommitted), and one more second to catch anything extra:
//       {"committed", "uncommitted", "open_end": {"read_committed": {P: offset}}}.
//
// kafkajs comes from <repo>/.node/node_modules (scripts/test installs the pinned version
// there), else from Node's usual places.

'use strict'

const path = require('path')
const crypto = require('crypto')

function fail(message, status = 1) {
  process.stderr.write(`${message}\n`)
  process.exit(status)
}

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

function loadKafkajs() {
  const repo = path.resolve(__dirname, '..', '..', '..', '..')
  try {
    return require(require.resolve('kafkajs', { paths: [path.join(repo, '.node')] }))
  } catch (_) {
    try {
      return require('kafkajs')
    } catch (e) {
      fail(`kafkajs is missing: run scripts/test (it installs it under .node/) (${e.message})`)
    }
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function endOffsets(admin, topic) {
  const out = {}
  for (const p of await admin.fetchTopicOffsets(topic)) {
    out[String(p.partition)] = Number(p.offset)
  }
  return out
}

// Reads `topic` from the start in a group of its own until `want` records arrived (or 30 s
// passed), then one more second; returns them sorted.
async function readAll(kafka, topic, readUncommitted, want) {
  const consumer = kafka.consumer({
    groupId: `reader-${crypto.randomUUID()}`,
    readUncommitted,
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const got = []
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got.push([partition, Number(message.offset), message.value.toString()])
    },
  })
  const deadline = Date.now() + 30000
  while (got.length < want && Date.now() < deadline) {
    await sleep(100)
  }
  await sleep(1000)
  await consumer.disconnect()
  got.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  return got
}

async function commitAbort(kafka, topic, partitions) {
  const admin = kafka.admin()
  await admin.connect()
  const producer = kafka.producer({
    transactionalId: `txn-${crypto.randomUUID()}`,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  let openEnd = null
  for (const [prefix, commit] of [['c1', true], ['a', false], ['c2', true]]) {
    const txn = await producer.transaction()
    for (let p = 0; p < partitions; p++) {
      const messages = []
      for (let i = 0; i < 10; i++) {
        messages.push({ value: `${prefix}-${p}-${i}`, partition: p })
      }
      await txn.send({ topic, messages })
    }
    if (commit) {
      await txn.commit()
    } else {
      openEnd = { read_committed: await endOffsets(admin, topic) }
      await txn.abort()
    }
  }
  await producer.disconnect()
  await admin.disconnect()
  const committed = await readAll(kafka, topic, false, 20 * partitions)
  const uncommitted = await readAll(kafka, topic, true, 30 * partitions)
  return { committed, uncommitted, open_end: openEnd }
}

async function main() {
  const [bootstrap, mode, topic, partitions] = process.argv.slice(2)
  if (mode !== 'commit-abort' || partitions === undefined) {
    fail('usage: transactions.js BOOTSTRAP commit-abort TOPIC PARTITIONS', 2)
  }
  const { Kafka, logLevel } = loadKafkajs()
  // kafkajs logs to stdout by default; this script's stdout is its one JSON line.
  const logCreator = () => ({ namespace, label, log }) => {
    process.stderr.write(`kafkajs ${label} [${namespace}] ${log.message}\n`)
  }
  const kafka = new Kafka({
    clientId: 'rill-interop-transactions',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
    logCreator,
  })
  emit(await commitAbort(kafka, topic, Number.parseInt(partitions, 10)))
}

main().catch(e => fail(`transactions.js: ${e.stack || e}`))
