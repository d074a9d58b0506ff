import fp from 'fastify-plugin'
import type { Config } from '../src/lib/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The validated configuration this app was built with. */
    config: Config
  }
}

/** Decorates the root instance with the validated configuration (parsed before the app is built). */
export default fp<{ config: Config }>(async function configPlugin (app, opts) {
  app.decorate('config', Object.freeze(opts.config))
}, { name: 'portcullis-config', fastify: '5.x' })
