import { test } from 'tap'
import * as errors from '../../src/lib/errors.js'
import { GATEWAY_CODES, errorBody, isGatewayError, type GatewayError } from '../../src/lib/errors.js'

// Arguments for the factories that cannot be called without; every other one is called bare.
const ARGS: Record<string, unknown[]> = { routeForbidden: ['GET', '/x'], rateLimited: [3, {}], methodNotAllowed: ['CONNECT', 'GET'] }
const factories = Object.entries(errors).filter(([name, v]) => typeof v === 'function' && name !== 'errorBody' && name !== 'isGatewayError') as
  Array<[string, (...args: unknown[]) => GatewayError]>

test('the code set is exactly the codes the factories make, each a gateway error', async (t) => {
  t.ok(factories.length >= 25, `${factories.length} factories`)
  const seen = new Set<string>()
  for (const [name, make] of factories) {
    const err = make(...(ARGS[name] ?? []))
    seen.add(err.code)
    t.ok(isGatewayError(err), `${name}: ${err.code} is a gateway error`)
    t.match(err.code, /^[A-Z][A-Z_]*[A-Z]$/, `${name}: code shape`)
    t.same(Object.keys(errorBody(err)), ['statusCode', 'code', 'error', 'message'], `${name}: body`)
  }
  t.same([...GATEWAY_CODES].sort(), [...seen].sort(), 'no code listed that nothing makes, none made that is not listed')
})

test('errors from elsewhere are not gateway errors', async (t) => {
  const foreign = [
    Object.assign(new Error('x'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }),
    Object.assign(new Error('x'), { code: 'ECONNRESET', statusCode: 502 }),
    Object.assign(new Error('x'), { code: 'TOKEN_INVALID' }),
    { code: 'TOKEN_INVALID', statusCode: 401, message: 'not an Error' },
    null,
    'TOKEN_INVALID'
  ]
  for (const err of foreign) t.notOk(isGatewayError(err), JSON.stringify(err))
})
