// The bench's count of full collections per paced round (scripts/bench-gc.ts): a real full
// collection of this process is seen with its pause, scavenges are not counted, and the rounds
// are told apart by comparing two readings.
import { test } from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describeMajorGcs, majorGcsBetween, watchMajorGcs } from '../../scripts/bench-gc.js'
import { until } from '../helpers/until.js'

setFlagsFromString('--expose-gc')
const fullGc = runInNewContext('gc') as (options?: { type: 'major' | 'minor' }) => void

test('a forced full collection is counted with its pause; scavenges are not', async (t) => {
  const read = watchMajorGcs()
  t.same(read(), [], 'nothing before any collection')
  fullGc({ type: 'minor' })
  fullGc({ type: 'minor' })
  await new Promise((resolve) => setTimeout(resolve, 50)) // entries are delivered asynchronously
  t.same(read(), [], 'two scavenges are not full collections')
  const before = read()
  fullGc()
  t.ok(await until(() => read().length === 1, 5000), 'the full collection was seen')
  const after = read()
  t.ok((after[0] as number) > 0, 'with its pause in ms')
  const between = majorGcsBetween(before, after)
  t.equal(between.count, 1)
  t.equal(between.longestPauseMs, after[0])
  fullGc()
  fullGc()
  t.ok(await until(() => read().length === 3, 5000), 'each later one too')
  t.equal(majorGcsBetween(after, read()).count, 2, 'only those after the earlier reading')
  after.push(-1)
  t.equal(read().length, 3, 'a reading is a copy: changing it changes nothing')
})

test('between two readings, and how a round line says it', async (t) => {
  t.same(majorGcsBetween([], []), { count: 0, longestPauseMs: 0 })
  t.same(majorGcsBetween([4.2], [4.2, 13.4, 9.8]), { count: 2, longestPauseMs: 13.4 })
  t.equal(describeMajorGcs({ count: 0, longestPauseMs: 0 }), 'none')
  t.equal(describeMajorGcs({ count: 1, longestPauseMs: 13.43 }), '1 (13.4 ms)')
  t.equal(describeMajorGcs({ count: 2, longestPauseMs: 9.81 }), '2 (longest 9.8 ms)')
})
