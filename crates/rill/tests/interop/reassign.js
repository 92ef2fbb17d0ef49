#!/usr/bin/env node
// kafkajs's admin.alterPartitionReassignments() and listPartitionReassignments(), at the
// client's defaults; prints what the broker answered. The same command line and JSON as
// reassign.py:
//
//   reassign.js BOOTSTRAP alter TOPIC PARTITIONS TARGET
//       PARTITIONS is one partition or a comma list (0 or 0,1); TARGET is the replicas every
//       one of them should move to, a comma list of broker ids (2,3,4). `cancel` is refused
//       (exit 2): kafkajs 2.2.4 cannot send null replicas, so it cannot cancel a move.
//       Prints {"error": top-level code, "results": {"topic-partition": code}}. kafkajs
//       returns nothing on success and throws only the failed partitions, so every partition
//       asked is listed, 0 unless the broker failed it; a top-level error prints its code with
//       "results": {}. kafkajs turns codes it does not know into -99.
//   reassign.js BOOTSTRAP list [TOPIC PARTITIONS]
//       The moves under way, of every partition or of these.
//       Prints {"error": top-level code, "reassignments": [{"topic", "partition", "replicas",
//       "adding", "removing"}, ...]}, sorted by topic and partition.
//
// kafkajs comes from <repo>/.node/node_modules (scripts/test installs the pinned version
// there), else from Node's usual places (NODE_PATH, node_modules next to this file).

'use strict'

const path = require('path')

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

// `"2,3,4"` -> [2, 3, 4].
function ids(text) {
  const parts = text.split(',')
  if (!parts.every(p => /^-?\d+$/.test(p.trim()))) {
    fail(`expected a comma list of numbers, got '${text}'`)
  }
  return parts.map(p => Number.parseInt(p, 10))
}

// The Kafka error code an error carries, looking through kafkajs's wrappers (a retry that
// gave up keeps the last error as its cause); undefined for errors that are no Kafka answer.
function kafkaCode(e) {
  for (let err = e; err; err = err.cause) {
    if (typeof err.code === 'number' && typeof err.type === 'string') {
      return err.code
    }
  }
  return undefined
}

async function alter(admin, topic, partitions, target) {
  const replicas = ids(target)
  const results = {}
  for (const p of partitions) {
    results[`${topic}-${p}`] = 0
  }
  try {
    await admin.alterPartitionReassignments({
      topics: [{ topic, partitionAssignment: partitions.map(partition => ({ partition, replicas })) }],
    })
  } catch (e) {
    if (e.name === 'KafkaJSAggregateError') {
      for (const err of e.errors) {
        results[`${err.topic}-${err.partition}`] = err.code
      }
      return { error: 0, results }
    }
    const code = kafkaCode(e)
    if (code === undefined) {
      throw e
    }
    return { error: code, results: {} }
  }
  return { error: 0, results }
}

async function list(admin, topic, partitions) {
  let topics
  try {
    const asked = topic === undefined ? {} : { topics: [{ topic, partitions }] }
    topics = (await admin.listPartitionReassignments(asked)).topics
  } catch (e) {
    const code = kafkaCode(e)
    if (code === undefined) {
      throw e
    }
    return { error: code, reassignments: [] }
  }
  const moves = []
  for (const t of topics) {
    for (const p of t.partitions) {
      moves.push({
        // kafkajs 2.2.4 decodes `name` and `partition` (its typings say topic, partitionIndex).
        topic: t.name ?? t.topic,
        partition: p.partition ?? p.partitionIndex,
        replicas: p.replicas,
        adding: p.addingReplicas ?? [],
        removing: p.removingReplicas ?? [],
      })
    }
  }
  moves.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1))
  return { error: 0, reassignments: moves }
}

async function main() {
  const [bootstrap, mode, ...rest] = process.argv.slice(2)
  const usage =
    'usage: reassign.js BOOTSTRAP alter TOPIC PARTITIONS TARGET | reassign.js BOOTSTRAP list [TOPIC PARTITIONS]'
  if (bootstrap === undefined || (mode === 'alter' && rest.length !== 3)) {
    fail(usage, 2)
  }
  if (mode === 'list' && rest.length !== 0 && rest.length !== 2) {
    fail(usage, 2)
  }
  if (mode !== 'alter' && mode !== 'list') {
    fail(usage, 2)
  }
  if (mode === 'alter' && rest[2] === 'cancel') {
    fail('kafkajs 2.2.4 cannot cancel a reassignment: its request always carries a replica list', 2)
  }

  const { Kafka, logLevel } = loadKafkajs()
  // kafkajs logs to stdout by default; this script's stdout is its one JSON line.
  const logCreator = () => ({ namespace, label, log }) => {
    process.stderr.write(`kafkajs ${label} [${namespace}] ${log.message}\n`)
  }
  const kafka = new Kafka({
    clientId: 'rill-interop-reassign',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
    logCreator,
  })
  const admin = kafka.admin()
  await admin.connect()
  try {
    if (mode === 'alter') {
      emit(await alter(admin, rest[0], ids(rest[1]), rest[2]))
    } else {
      emit(await list(admin, rest[0], rest[1] === undefined ? undefined : ids(rest[1])))
    }
  } finally {
    await admin.disconnect()
  }
}

if (require.main === module) {
  main().catch(e => fail(`reassign.js: ${e.stack || e}`))
}

module.exports = { alter, list }
