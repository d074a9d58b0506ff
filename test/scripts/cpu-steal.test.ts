// The bench's steal reading (scripts/cpu-steal.ts): per-core counters from /proc/stat text, and
// the share of the time between two readings that the hypervisor took.
import { test } from 'tap'
import { parseProcStat, readCoreTimes, stealPercent } from '../../scripts/cpu-steal.js'

const BEFORE = [
  'cpu  200 0 100 1000 10 0 5 20 0 0',
  'cpu0 100 0 50 500 5 0 5 10 0 0',
  'cpu1 100 0 50 500 5 0 0 10 7 0',
  'intr 12345 0 0',
  'ctxt 999'
].join('\n')
const AFTER = [
  'cpu  400 0 200 1300 10 0 5 105 0 0',
  'cpu0 200 0 100 600 5 0 5 90 0 0',
  'cpu1 200 0 100 700 5 0 0 25 7 0'
].join('\n')

test('parseProcStat: one entry per core, in core order, the aggregate line left out', async (t) => {
  t.same(parseProcStat(BEFORE), [{ total: 670, steal: 10 }, { total: 665, steal: 10 }], 'guest time (already in user) not counted twice')
  t.same(parseProcStat('cpu1 1 2 3 4\ncpu0 1 1 1 1'), [{ total: 4, steal: 0 }, { total: 10, steal: 0 }], 'no steal column: 0; order by core number')
  t.same(parseProcStat('intr 1\n'), [])
  t.throws(() => parseProcStat('cpu0 1 x 3'), /unreadable/)
})

test('stealPercent: per core, of the time between the readings', async (t) => {
  // core 0: 80 of 330 ticks stolen; core 1: 15 of 365.
  t.same(stealPercent(parseProcStat(BEFORE), parseProcStat(AFTER)), [24.2, 4.1])
  t.same(stealPercent(parseProcStat(AFTER), parseProcStat(AFTER)), [0, 0], 'no time passed')
})

test('readCoreTimes: this machine\'s counters (Linux), or null', async (t) => {
  const now = readCoreTimes()
  if (process.platform !== 'linux') {
    t.equal(now, null)
    return
  }
  t.ok(now !== null && now.length >= 1 && now.every((c) => c.total > 0 && c.steal >= 0), 'a reading per core')
})
