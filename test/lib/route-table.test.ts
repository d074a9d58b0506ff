import { test } from 'tap'
import { RouteTable, type RouteConfig } from '../../src/lib/route-table.js'

const route = (prefix: string): RouteConfig => ({ prefix, upstream: `http://up${prefix}`, timeoutMs: 1000 })

const users = route('/api/v1/users')
const v1 = route('/api/v1/')
const products = route('/api/v1/products')
const deep = route('/api/v1/users/admin/reports')
const root = route('/')

// [routes, path, expected prefix or undefined]
const rows: Array<[RouteConfig[], string, string | undefined]> = [
  // segment boundary
  [[users], '/api/v1/users', '/api/v1/users'],
  [[users], '/api/v1/users/', '/api/v1/users'],
  [[users], '/api/v1/users/7', '/api/v1/users'],
  [[users], '/api/v1/users/7/orders', '/api/v1/users'],
  [[users], '/api/v1/usersX', undefined],
  [[users], '/api/v1/user', undefined],
  [[users], '/api/v1', undefined],
  [[users], '/API/v1/users', undefined],
  [[users], '/', undefined],
  // longest prefix wins, whatever the order given
  [[v1, users, deep], '/api/v1/users/7', '/api/v1/users'],
  [[deep, users, v1], '/api/v1/users/admin/reports/2024', '/api/v1/users/admin/reports'],
  [[v1, users, deep], '/api/v1/users/admin/report', '/api/v1/users'],
  [[v1, users, products], '/api/v1/productsX', '/api/v1/'],
  [[v1, users, products], '/api/v1/products/9', '/api/v1/products'],
  [[v1, users, products], '/api/v2/products', undefined],
  // a prefix given with a trailing slash behaves like the one without
  [[v1], '/api/v1', '/api/v1/'],
  [[v1], '/api/v1/', '/api/v1/'],
  [[v1], '/api/v1x', undefined],
  // `/` matches everything, with the lowest priority
  [[root], '/', '/'],
  [[root], '/anything/at/all', '/'],
  [[root, users], '/api/v1/users/7', '/api/v1/users'],
  [[users, root], '/api/v1/usersX', '/'],
  [[route('/a'), root], '/ab', '/'],
  // no routes at all
  [[], '/api', undefined]
]

test('RouteTable.match table', async (t) => {
  for (const [routes, path, expected] of rows) {
    const table = new RouteTable(routes)
    const found = table.match(path)
    const label = `${routes.map((r) => r.prefix).join(' ')} | ${path}`
    t.equal(found?.prefix, expected, label)
    if (found !== undefined) t.ok(routes.includes(found), `${label} returns the configured object`)
  }
})

test('routes are kept as given', async (t) => {
  const table = new RouteTable([users, root])
  t.same(table.routes, [users, root])
  t.ok(Object.isFrozen(table.routes))
})

test('invalid tables are refused', async (t) => {
  t.throws(() => new RouteTable([route('/api'), route('/api/')]), /duplicate route prefix/)
  t.throws(() => new RouteTable([route('api')]), /must start with "\/"/)
})
