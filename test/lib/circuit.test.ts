// The circuit breaker state machine, table-driven with a fake clock: every transition, the single
// half-open probe under concurrency, client aborts, stale outcomes, Retry-After rounding.
import { test } from 'tap'
import { CircuitBreaker, type CircuitPermit, type CircuitState } from '../../src/lib/circuit.js'

type Step =
  | ['admit', string] // acquire() must give a permit, kept under this name
  | ['refuse'] // acquire() must give null
  | ['success' | 'failure' | 'release' | 'answered', string] // settle the named permit (answered: its head arrived)
  | ['wait', number] // advance the fake clock (ms)
  | ['state', CircuitState]
  | ['failures', number]
  | ['retryAfter', number]

interface Row {
  name: string
  threshold: number
  cooldownMs: number
  steps: Step[]
  /** Every transition, in order, as `from>to`. */
  transitions: string[]
}

const admitAndFail = (...names: string[]): Step[] => names.flatMap((n): Step[] => [['admit', n], ['failure', n]])

const rows: Row[] = [
  {
    name: 'below the threshold it stays closed and admits',
    threshold: 3,
    cooldownMs: 1000,
    steps: [...admitAndFail('a', 'b'), ['state', 'closed'], ['failures', 2], ['admit', 'c'], ['admit', 'd']],
    transitions: []
  },
  {
    name: 'threshold consecutive failures open it; open refuses',
    threshold: 3,
    cooldownMs: 1000,
    steps: [...admitAndFail('a', 'b', 'c'), ['state', 'open'], ['refuse'], ['refuse'], ['failures', 0]],
    transitions: ['closed>open']
  },
  {
    name: 'failures of concurrent requests count as they arrive',
    threshold: 2,
    cooldownMs: 1000,
    steps: [['admit', 'a'], ['admit', 'b'], ['admit', 'c'], ['failure', 'b'], ['state', 'closed'], ['failure', 'c'], ['state', 'open']],
    transitions: ['closed>open']
  },
  {
    name: 'any success in closed resets the consecutive count',
    threshold: 3,
    cooldownMs: 1000,
    steps: [...admitAndFail('a', 'b'), ['admit', 'ok'], ['success', 'ok'], ['failures', 0], ...admitAndFail('c', 'd'),
      ['state', 'closed'], ...admitAndFail('e'), ['state', 'open']],
    transitions: ['closed>open']
  },
  {
    name: 'a release in closed is neither: the count neither grows nor resets',
    threshold: 2,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['admit', 'gone'], ['release', 'gone'], ['failures', 1], ...admitAndFail('b'), ['state', 'open']],
    transitions: ['closed>open']
  },
  {
    name: 'open refuses for the whole cooldown; Retry-After is the remaining time rounded up',
    threshold: 1,
    cooldownMs: 2500,
    steps: [...admitAndFail('a'), ['retryAfter', 3], ['wait', 1000], ['refuse'], ['retryAfter', 2], ['wait', 1499], ['refuse'],
      ['retryAfter', 1], ['state', 'open'], ['wait', 1], ['state', 'half-open'], ['retryAfter', 1]],
    transitions: ['closed>open', 'open>half-open']
  },
  {
    name: 'a short cooldown still says Retry-After: 1, never 0',
    threshold: 1,
    cooldownMs: 1,
    steps: [...admitAndFail('a'), ['retryAfter', 1], ['refuse']],
    transitions: ['closed>open']
  },
  {
    name: 'half-open admits exactly one probe; concurrent requests are refused; its success closes',
    threshold: 1,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['wait', 1000], ['admit', 'probe'], ['state', 'half-open'], ['refuse'], ['refuse'],
      ['retryAfter', 1], ['wait', 5000], ['refuse'], ['success', 'probe'], ['state', 'closed'], ['failures', 0],
      ['admit', 'b'], ['admit', 'c'], ['admit', 'd']],
    transitions: ['closed>open', 'open>half-open', 'half-open>closed']
  },
  {
    name: 'a probe that fails re-opens for another full cooldown',
    threshold: 2,
    cooldownMs: 1000,
    steps: [...admitAndFail('a', 'b'), ['wait', 1200], ['admit', 'probe'], ['failure', 'probe'], ['state', 'open'],
      ['retryAfter', 1], ['wait', 999], ['refuse'], ['wait', 1], ['admit', 'probe2'], ['success', 'probe2'], ['state', 'closed']],
    transitions: ['closed>open', 'open>half-open', 'half-open>open', 'open>half-open', 'half-open>closed']
  },
  {
    name: 'after closing again the count starts from zero',
    threshold: 2,
    cooldownMs: 1000,
    steps: [...admitAndFail('a', 'b'), ['wait', 1000], ['admit', 'p'], ['success', 'p'], ...admitAndFail('c'),
      ['state', 'closed'], ...admitAndFail('d'), ['state', 'open']],
    transitions: ['closed>open', 'open>half-open', 'half-open>closed', 'closed>open']
  },
  {
    name: 'a client abort releases the probe slot: the next request is the probe',
    threshold: 1,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['wait', 1000], ['admit', 'p'], ['refuse'], ['release', 'p'], ['state', 'half-open'],
      ['admit', 'q'], ['refuse'], ['success', 'q'], ['state', 'closed']],
    transitions: ['closed>open', 'open>half-open', 'half-open>closed']
  },
  {
    name: 'a released probe followed by a failing one re-opens',
    threshold: 1,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['wait', 1000], ['admit', 'p'], ['release', 'p'], ['admit', 'q'], ['failure', 'q'],
      ['state', 'open'], ['refuse']],
    transitions: ['closed>open', 'open>half-open', 'half-open>open']
  },
  {
    name: 'late outcomes of requests admitted while closed count for nothing once it opened',
    threshold: 2,
    cooldownMs: 1000,
    steps: [['admit', 'a'], ['admit', 'b'], ['admit', 'slowFail'], ['admit', 'slowOk'], ['failure', 'a'], ['failure', 'b'],
      ['state', 'open'], ['failure', 'slowFail'], ['wait', 1000], ['admit', 'probe'], ['success', 'slowOk'], ['state', 'half-open'],
      ['refuse'], ['failure', 'probe'], ['state', 'open']],
    transitions: ['closed>open', 'open>half-open', 'half-open>open']
  },
  {
    name: 'a permit settles once: a second report is ignored',
    threshold: 2,
    cooldownMs: 1000,
    steps: [['admit', 'a'], ['failure', 'a'], ['failure', 'a'], ['success', 'a'], ['failures', 1], ['state', 'closed'],
      ...admitAndFail('b'), ['state', 'open']],
    transitions: ['closed>open']
  },
  {
    name: 'a response head is no outcome while closed: a body that breaks afterwards is a failure',
    threshold: 2,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['admit', 'b'], ['answered', 'b'], ['failures', 1], ['failure', 'b'], ['state', 'open']],
    transitions: ['closed>open']
  },
  {
    name: 'a half-open probe is decided by its head; its body outcome then counts in the closed circuit',
    threshold: 1,
    cooldownMs: 1000,
    steps: [...admitAndFail('a'), ['wait', 1000], ['admit', 'probe'], ['refuse'], ['answered', 'probe'], ['state', 'closed'],
      ['admit', 'other'], ['answered', 'probe'], ['failure', 'probe'], ['state', 'open'], ['success', 'other'], ['state', 'open']],
    transitions: ['closed>open', 'open>half-open', 'half-open>closed', 'closed>open']
  },
  {
    name: 'a stale probe head decides nothing',
    threshold: 1,
    cooldownMs: 1000,
    steps: [['admit', 'old'], ...admitAndFail('a'), ['wait', 1000], ['admit', 'probe'], ['answered', 'old'], ['state', 'half-open'],
      ['refuse'], ['success', 'probe'], ['state', 'closed']],
    transitions: ['closed>open', 'open>half-open', 'half-open>closed']
  },
  {
    name: 'threshold 0 is off: it never opens',
    threshold: 0,
    cooldownMs: 1000,
    steps: [...admitAndFail(...Array.from({ length: 50 }, (_, i) => `r${i}`)), ['state', 'closed'], ['admit', 'y'], ['success', 'y'],
      ['admit', 'z'], ['release', 'z'], ['failures', 0], ['retryAfter', 1]],
    transitions: []
  }
]

for (const row of rows) {
  test(row.name, async (t) => {
    let now = 1_000_000
    const transitions: string[] = []
    const breaker = new CircuitBreaker({
      threshold: row.threshold,
      cooldownMs: row.cooldownMs,
      now: () => now,
      onTransition: (to, from) => transitions.push(`${from}>${to}`)
    })
    const permits = new Map<string, CircuitPermit>()
    for (const [i, step] of row.steps.entries()) {
      const at = `step ${i + 1} ${JSON.stringify(step)}`
      switch (step[0]) {
        case 'admit': {
          const permit = breaker.acquire()
          t.not(permit, null, `${at}: admitted`)
          if (permit !== null) permits.set(step[1], permit)
          break
        }
        case 'refuse':
          t.equal(breaker.acquire(), null, `${at}: refused`)
          break
        case 'answered':
        case 'success':
        case 'failure':
        case 'release': {
          const permit = permits.get(step[1])
          if (permit === undefined) throw new Error(`${at}: no permit named ${step[1]}`)
          permit[step[0]]()
          break
        }
        case 'wait':
          now += step[1]
          break
        case 'state':
          t.equal(breaker.state, step[1], at)
          break
        case 'failures':
          t.equal(breaker.consecutiveFailures, step[1], at)
          break
        case 'retryAfter':
          t.equal(breaker.retryAfterSeconds(), step[1], at)
          break
      }
    }
    t.same(transitions, row.transitions, 'transitions')
  })
}

test('concurrent requests at the end of the cooldown: one probe among many', async (t) => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 1, cooldownMs: 100, now: () => now })
  breaker.acquire()?.failure()
  now = 100
  const answers = Array.from({ length: 20 }, () => breaker.acquire())
  t.equal(answers.filter((p) => p !== null).length, 1, 'exactly one of 20 admitted')
  t.not(answers[0], null, 'the first one')
})

test('the default clock is monotonic milliseconds', async (t) => {
  const breaker = new CircuitBreaker({ threshold: 1, cooldownMs: 60_000 })
  breaker.acquire()?.failure()
  t.equal(breaker.state, 'open')
  t.equal(breaker.retryAfterSeconds(), 60)
})

test('invalid options are refused', async (t) => {
  const rows: Array<[number, number]> = [[-1, 1000], [1.5, 1000], [Number.NaN, 1000], [3, 0], [3, -5], [3, 2.5]]
  for (const [threshold, cooldownMs] of rows) {
    t.throws(() => new CircuitBreaker({ threshold, cooldownMs }), RangeError, `threshold ${threshold}, cooldownMs ${cooldownMs}`)
  }
})
