// The per-token in-flight bound, table-driven: admission up to the limit, refusal above it, keys
// independent, releases counted once whatever the order or repetition, limit 0 never refusing.
import { test } from 'tap'
import { IDLE_KEYS_KEPT, InFlightLimiter, type Release } from '../../src/lib/in-flight.js'

type Step =
  | ['admit', string, string] // acquire(key) must give a release, kept under the name
  | ['refuse', string] // acquire(key) must give null
  | ['release', string] // call the named release
  | ['held', string, number]
  | ['total', number]
  | ['keys', number]

interface Row { name: string, limit: number, steps: Step[] }

const rows: Row[] = [
  {
    name: 'admits up to the limit, refuses the next',
    limit: 2,
    steps: [['admit', 'a', 'a1'], ['admit', 'a', 'a2'], ['refuse', 'a'], ['held', 'a', 2], ['total', 2], ['keys', 1]]
  },
  {
    name: 'a refusal holds nothing',
    limit: 1,
    steps: [['admit', 'a', 'a1'], ['refuse', 'a'], ['refuse', 'a'], ['held', 'a', 1], ['total', 1]]
  },
  {
    name: 'keys are independent: one token at its bound does not refuse another',
    limit: 1,
    steps: [['admit', 'a', 'a1'], ['refuse', 'a'], ['admit', 'b', 'b1'], ['held', 'b', 1], ['total', 2], ['keys', 2]]
  },
  {
    name: 'a release frees a place for the same key',
    limit: 1,
    steps: [['admit', 'a', 'a1'], ['refuse', 'a'], ['release', 'a1'], ['held', 'a', 0], ['admit', 'a', 'a2'], ['total', 1]]
  },
  {
    name: 'a release called twice counts once (every exit path may call it)',
    limit: 3,
    steps: [['admit', 'a', 'a1'], ['admit', 'a', 'a2'], ['release', 'a1'], ['release', 'a1'], ['release', 'a1'],
      ['held', 'a', 1], ['total', 1], ['release', 'a2'], ['release', 'a2'], ['held', 'a', 0], ['total', 0], ['keys', 0]]
  },
  {
    name: 'a stale release after the key was emptied and refilled does not free the new holder',
    limit: 1,
    steps: [['admit', 'a', 'a1'], ['release', 'a1'], ['admit', 'a', 'a2'], ['release', 'a1'], ['held', 'a', 1], ['refuse', 'a']]
  },
  {
    name: 'releases in any order return every count to zero and drop the key',
    limit: 4,
    steps: [['admit', 'a', 'a1'], ['admit', 'b', 'b1'], ['admit', 'a', 'a2'], ['admit', 'a', 'a3'],
      ['release', 'a2'], ['release', 'b1'], ['release', 'a3'], ['release', 'a1'], ['total', 0], ['keys', 0], ['held', 'a', 0], ['held', 'b', 0]]
  },
  {
    name: 'limit 0 counts but never refuses',
    limit: 0,
    steps: [['admit', 'a', 'a1'], ['admit', 'a', 'a2'], ['admit', 'a', 'a3'], ['held', 'a', 3], ['total', 3],
      ['release', 'a1'], ['release', 'a2'], ['release', 'a3'], ['total', 0], ['keys', 0]]
  },
  {
    name: 'unusual keys are plain map keys',
    limit: 1,
    steps: [['admit', '__proto__', 'p'], ['admit', 'constructor', 'c'], ['refuse', '__proto__'], ['held', '__proto__', 1],
      ['release', 'p'], ['release', 'c'], ['keys', 0]]
  }
]

for (const row of rows) {
  test(row.name, async (t) => {
    const limiter = new InFlightLimiter(row.limit)
    const releases = new Map<string, Release>()
    for (const [i, step] of row.steps.entries()) {
      const at = `step ${i + 1} ${JSON.stringify(step)}`
      switch (step[0]) {
        case 'admit': {
          const release = limiter.acquire(step[1])
          t.not(release, null, at)
          if (release !== null) releases.set(step[2], release)
          break
        }
        case 'refuse': t.equal(limiter.acquire(step[1]), null, at); break
        case 'release': (releases.get(step[1]) as Release)(); break
        case 'held': t.equal(limiter.held(step[1]), step[2], at); break
        case 'total': t.equal(limiter.total, step[1], at); break
        case 'keys': t.equal(limiter.keys, step[1], at); break
      }
    }
  })
}

test('the limit must be a whole number >= 0', async (t) => {
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) t.throws(() => new InFlightLimiter(bad), RangeError, String(bad))
  t.equal(new InFlightLimiter(0).limit, 0)
})

test('many admits and releases of many keys leave nothing behind', async (t) => {
  const limiter = new InFlightLimiter(5)
  const held: Release[] = []
  for (let i = 0; i < 1000; i++) {
    const r = limiter.acquire(`tok_${i % 37}`)
    if (r !== null) held.push(r)
  }
  t.equal(limiter.total, 37 * 5, 'each key stopped at its bound')
  for (const r of held) { r(); r() }
  t.equal(limiter.total, 0)
  t.equal(limiter.keys, 0)
})

test('tryAcquire and release: the closure-free pair the proxy uses', async (t) => {
  const limiter = new InFlightLimiter(2)
  t.equal(limiter.tryAcquire('a'), true)
  t.equal(limiter.tryAcquire('a'), true)
  t.equal(limiter.tryAcquire('a'), false, 'refused at the bound')
  t.equal(limiter.held('a'), 2, 'a refusal holds nothing')
  t.equal(limiter.tryAcquire('b'), true, 'another key is not refused')
  limiter.release('a')
  t.equal(limiter.held('a'), 1)
  t.equal(limiter.tryAcquire('a'), true, 'a released place can be taken again')
  limiter.release('a')
  limiter.release('a')
  limiter.release('b')
  t.equal(limiter.total, 0)
  t.equal(limiter.keys, 0, 'no key is busy')
  limiter.release('a')
  t.equal(limiter.total, 0, 'a release of a key that holds nothing changes nothing')
  t.equal(limiter.held('a'), 0)
  t.equal(limiter.tryAcquire('a'), true, 'an idle key is admitted again')
  t.equal(limiter.held('a'), 1)
})

test('idle keys are kept up to IDLE_KEYS_KEPT, then swept: the map stays bounded', async (t) => {
  const limiter = new InFlightLimiter(3)
  t.equal(limiter.tryAcquire('busy'), true, 'one key stays busy throughout')
  let most = 0
  for (let i = 0; i < 2.5 * IDLE_KEYS_KEPT; i++) {
    const key = `tok_${i}`
    t.equal(limiter.tryAcquire(key), true)
    limiter.release(key)
    most = Math.max(most, limiter.tracked)
  }
  t.ok(most <= IDLE_KEYS_KEPT + 2, `at most the busy key + IDLE_KEYS_KEPT + 1 held (${most})`)
  t.ok(most > IDLE_KEYS_KEPT, 'idle keys were kept until the bound')
  t.ok(limiter.tracked < IDLE_KEYS_KEPT, `swept (${limiter.tracked} left)`)
  t.equal(limiter.keys, 1)
  t.equal(limiter.held('busy'), 1, 'the busy key survives every sweep')
  t.equal(limiter.total, 1)
  limiter.release('busy')
  t.equal(limiter.total, 0)
  t.equal(limiter.keys, 0)
})
