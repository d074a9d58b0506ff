import type { Seen } from './upstream.js'

/**
 * Decoded escape by escape, so that one invalid escape cannot hide an encoded key; `+` stays `+`
 * (keys contain no spaces, but may contain `+`).
 */
function decodeAll (s: string): string {
  let prev = s
  for (let i = 0; i < 5; i++) {
    const next = prev.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'))
    if (next === prev) return next
    prev = next
  }
  return prev
}

/**
 * Every way the recorded upstream requests carry a credential: an Authorization or
 * Proxy-Authorization header, or one of `keys` in any header value or in the URL (also once
 * percent-decoded). Empty when nothing leaked; otherwise one line per leak, for the test message.
 */
export function credentialLeaks (seen: readonly Seen[], keys: readonly string[]): string[] {
  const out: string[] = []
  for (const [i, s] of seen.entries()) {
    for (let h = 0; h < s.rawHeaders.length; h += 2) {
      const name = (s.rawHeaders[h] ?? '').toLowerCase()
      const value = s.rawHeaders[h + 1] ?? ''
      if (name === 'authorization' || name === 'proxy-authorization') out.push(`request ${i} (${s.url}): ${name} header forwarded`)
      for (const k of keys) {
        if (value.includes(k) || decodeAll(value).includes(k)) out.push(`request ${i} (${s.url}): a key in header ${name}`)
      }
    }
    for (const k of keys) {
      if (s.url.includes(k) || decodeAll(s.url).includes(k)) out.push(`request ${i}: a key in the URL ${s.url}`)
    }
  }
  return out
}
