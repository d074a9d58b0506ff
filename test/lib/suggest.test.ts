import t from 'tap'
import { editDistance, nearest } from '../../src/lib/suggest.js'

const FLAGS = ['--rate-limit', '--burst', '--window-seconds', '--expires-at', '--ttl', '--route', '--name', '--help']

t.test('editDistance', async (t) => {
  for (const [a, b, d] of [['', '', 0], ['a', '', 1], ['', 'abc', 3], ['kitten', 'sitting', 3], ['burst', 'brust', 1], ['ab', 'ba', 1], ['same', 'same', 0]] as const) {
    t.equal(editDistance(a, b), d, `${a} ~ ${b}`)
  }
})

t.test('nearest', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['--rate', '--rate-limit'],
    ['--ratelimit', '--rate-limit'],
    ['--rate_limit', '--rate-limit'],
    ['--brust', '--burst'],
    ['--routes', '--route'],
    ['--expires', '--expires-at'],
    ['--window', '--window-seconds'],
    ['--nmae', '--name'],
    ['--all', null],
    ['--xyz', null],
    ['--r', null], // --rate-limit and --route both start with it: ambiguous, and too far from either
    ['', null]
  ]
  for (const [typed, want] of cases) t.equal(nearest(typed, FLAGS), want, typed)
  t.equal(nearest('lsit', ['create', 'import', 'list', 'show', 'revoke']), 'list')
  t.equal(nearest('token', ['serve', 'tokens']), 'tokens')
})
