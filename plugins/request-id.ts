import fp from 'fastify-plugin'

/**
 * X-Request-Id: `request.id` is the client's value when acceptableRequestId keeps it
 * (src/lib/forward-headers.ts; see genReqId in src/app.ts), else a new UUID. It is echoed on every answer, the gateway's own
 * errors included, and sent upstream by routes/proxy.ts.
 */
export default fp(async function requestIdPlugin (app) {
  // Callback style: no promise per request on the hot path (docs/performance.md).
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'portcullis-request-id', fastify: '5.x' })
