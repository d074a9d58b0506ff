import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** Graceful-shutdown state, flipped by src/server.ts on SIGTERM/SIGINT. */
    lifecycle: { draining: boolean, beginDraining: () => void }
  }
}

/**
 * Draining: /readyz turns 503 at once (routes/health.ts reads `draining`), requests already on a
 * connection are still served but told `Connection: close`, so keep-alive clients move elsewhere.
 */
export default fp(async function shutdownPlugin (app) {
  const lifecycle = {
    draining: false,
    beginDraining () { lifecycle.draining = true }
  }
  app.decorate('lifecycle', lifecycle)
  app.addHook('onSend', async (_request, reply) => {
    if (lifecycle.draining) reply.header('connection', 'close')
  })
  app.addHook('preClose', async () => { lifecycle.draining = true })
}, { name: 'portcullis-shutdown', fastify: '5.x' })
