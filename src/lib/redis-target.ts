/**
 * How the configured Redis is named to an operator (start-up line, warnings, CLI, config errors):
 * the URL with its password replaced by `***`, so it can be logged and pasted anywhere.
 */

/** `redis://user:secret@h:6379/0` → `redis://user:***@h:6379/0`; works on text that is not a valid URL too. */
export function maskRedisUrl (raw: string): string {
  // By text, not by `new URL`: a URL that does not parse must still be shown without its password.
  // Everything between `//` and the last `@` before the host is userinfo.
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@(.*)$/is.exec(raw)
  if (m === null) return raw
  const [, scheme = '', userinfo = '', rest = ''] = m
  const colon = userinfo.indexOf(':')
  // `redis://secret@host` is a password alone in ioredis' reading (no colon): mask it as well.
  const user = colon === -1 ? '' : userinfo.slice(0, colon)
  return `${scheme}${user}:***@${rest}`
}

/** The Redis a process talks to: the masked REDIS_URL, or the cluster's seed nodes. */
export function redisTarget (config: { redisUrl: string, redisClusterNodes: Array<{ host: string, port: number }> | null }): string {
  if (config.redisClusterNodes !== null) {
    return `cluster ${config.redisClusterNodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`
  }
  return maskRedisUrl(config.redisUrl)
}
