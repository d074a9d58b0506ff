// Token records in Redis (docs/tokens.md), shared by the CLI and the admin API. The key layout
// is ./keys.ts; the index lives in another Cluster slot than the records, so it is always written
// in its own command: after the record on create, after the record's deletion on revoke.
import type { Redis, Cluster } from 'ioredis'
import { generateApiKey, generateTokenId, looksLikeTokenId } from './ids.js'
import { digestApiKey, tokenIndexKey, tokenLimiterKey, tokenRecordKey } from './keys.js'
import { fromRedisHash, nowRfc3339, toRedisHash } from './record.js'
import type { CreatedToken, PublicToken, TokenRecord } from './schema.js'
import { TokenInputError, validateImportList, validateTokenInput } from './validate.js'

export interface TokenStoreOptions {
  /** RATE_LIMIT_WINDOW_SECONDS: shown as window_seconds for tokens that do not set their own. */
  defaultWindowSeconds?: number
}

const READ_BATCH = 200

/** Creates, imports, lists, shows and revokes tokens; holds no cache, so edits apply at once. */
export class TokenStore {
  private readonly index: string
  private readonly defaultWindowSeconds: number

  constructor (private readonly redis: Redis | Cluster, private readonly prefix: string, opts: TokenStoreOptions = {}) {
    this.index = tokenIndexKey(prefix)
    this.defaultWindowSeconds = opts.defaultWindowSeconds ?? 60
  }

  /** Validates input, stores a new token and returns it with its api_key (the only time it is shown). */
  async create (input: unknown, nowMs: number = Date.now()): Promise<CreatedToken> {
    const v = validateTokenInput(input, nowMs)
    if (!v.ok) throw new TokenInputError(v.problems)
    const apiKey = generateApiKey()
    const { name, ...limits } = v.value
    const record: TokenRecord = { id: await this.freshId(new Set()), name: name ?? '', ...limits, created_at: nowRfc3339(nowMs) }
    await this.write(digestApiKey(apiKey), record)
    return { api_key: apiKey, ...this.toPublic(record) }
  }

  /**
   * Stores every record of an import or none: all are validated and checked against Redis
   * (an id owned by another key is refused) before the first write. A record whose api_key is
   * already stored replaces that token (keeping its id and created_at unless an id is given).
   * Returns the ids in input order.
   */
  async importRecords (list: unknown, nowMs: number = Date.now()): Promise<string[]> {
    const v = validateImportList(list)
    if (!v.ok) throw new TokenInputError(v.problems)
    const problems: string[] = []
    const planned: Array<{ digest: string, record: TokenRecord, oldId: string | null }> = []
    const explicitIds = new Set(v.value.flatMap((r) => r.id === undefined ? [] : [r.id]))
    const takenIds = new Set(explicitIds)
    for (const [i, r] of v.value.entries()) {
      const label = `record ${i + 1}${r.id === undefined ? '' : ` (id ${r.id})`}`
      const digest = digestApiKey(r.api_key)
      const existing = await this.redis.hgetall(tokenRecordKey(this.prefix, digest))
      const oldId = existing.id ?? null
      if (r.id !== undefined) {
        const owner = await this.ownerOf(r.id)
        if (owner !== null && owner !== digest && await this.redis.hget(tokenRecordKey(this.prefix, owner), 'id') === r.id) {
          problems.push(`${label}: id ${r.id} already belongs to another token`)
        }
      } else if (oldId !== null && explicitIds.has(oldId)) {
        problems.push(`${label}: this key's token has id ${oldId}, which another record of the import claims`)
      }
      const id = r.id ?? oldId ?? await this.freshId(takenIds)
      takenIds.add(id)
      const { api_key: _key, id: _id, name, ...limits } = r
      const record: TokenRecord = { id, name: name ?? '', ...limits, created_at: existing.created_at ?? nowRfc3339(nowMs) }
      planned.push({ digest, record, oldId })
    }
    if (problems.length > 0) throw new TokenInputError(problems)
    for (const { digest, record, oldId } of planned) {
      await this.write(digest, record)
      if (oldId !== null && oldId !== record.id && await this.redis.hget(this.index, oldId) === digest) {
        await this.redis.hdel(this.index, oldId)
      }
    }
    return planned.map((p) => p.record.id)
  }

  /** Every token (public form), ordered by creation; index entries without a record are skipped. */
  async list (): Promise<PublicToken[]> {
    const entries = new Map<string, string>()
    let cursor = '0'
    do {
      const [next, flat] = await this.redis.hscan(this.index, cursor, 'COUNT', 500)
      for (let i = 0; i + 1 < flat.length; i += 2) entries.set(flat[i] as string, flat[i + 1] as string)
      cursor = next
    } while (cursor !== '0')
    const pairs = [...entries]
    const out: PublicToken[] = []
    for (let i = 0; i < pairs.length; i += READ_BATCH) {
      // One command per record, never a multi-key read: the records live in many Cluster slots.
      const batch = pairs.slice(i, i + READ_BATCH)
      const hashes = await Promise.all(batch.map(([, digest]) => this.redis.hgetall(tokenRecordKey(this.prefix, digest))))
      hashes.forEach((h, j) => {
        const t = fromRedisHash(h, this.defaultWindowSeconds)
        if (t !== null && t.id === batch[j]?.[0]) out.push(t)
      })
    }
    return out.sort((a, b) => a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1)
  }

  /** One token by id (public form), or null when there is none. */
  async show (id: string): Promise<PublicToken | null> {
    const digest = await this.ownerOf(id)
    if (digest === null) return null
    const t = fromRedisHash(await this.redis.hgetall(tokenRecordKey(this.prefix, digest)), this.defaultWindowSeconds)
    return t !== null && t.id === id ? t : null
  }

  /**
   * Revokes by id, or by plain api key when the argument is not an indexed id. The record and
   * limiter go first (one DEL, one slot), so the very next request is refused; then the index
   * entry. True when a token was revoked.
   */
  async revoke (idOrKey: string): Promise<boolean> {
    let digest: string | null = null
    if (looksLikeTokenId(idOrKey)) {
      const indexed = await this.ownerOf(idOrKey)
      if (indexed !== null) {
        const recordId = await this.redis.hget(tokenRecordKey(this.prefix, indexed), 'id')
        // A stale entry (record gone or renamed) must not revoke whatever token now has that digest.
        if (recordId === idOrKey) digest = indexed
        else await this.removeIndexEntry(idOrKey, indexed)
      }
    }
    digest ??= digestApiKey(idOrKey)
    const recordKey = tokenRecordKey(this.prefix, digest)
    const id = await this.redis.hget(recordKey, 'id')
    if (id === null) return false
    const deleted = await this.redis.del(recordKey, tokenLimiterKey(this.prefix, digest))
    await this.removeIndexEntry(id, digest)
    return deleted > 0
  }

  /** The digest the index holds for an id, or null (also for text that cannot be an id). */
  private async ownerOf (id: string): Promise<string | null> {
    if (!looksLikeTokenId(id)) return null
    return await this.redis.hget(this.index, id)
  }

  private async removeIndexEntry (id: string, digest: string): Promise<void> {
    if (await this.redis.hget(this.index, id) === digest) await this.redis.hdel(this.index, id)
  }

  /** A generated id in use neither in Redis nor in `taken`. */
  private async freshId (taken: ReadonlySet<string>): Promise<string> {
    for (;;) {
      const id = generateTokenId()
      if (!taken.has(id) && await this.redis.hexists(this.index, id) === 0) return id
    }
  }

  /** Replaces the record atomically (DEL + HSET in one MULTI on one key), then indexes it. */
  private async write (digest: string, record: TokenRecord): Promise<void> {
    const key = tokenRecordKey(this.prefix, digest)
    const results = await this.redis.multi().del(key).hset(key, toRedisHash(record)).exec()
    if (results === null) throw new Error('token write was aborted')
    for (const [err] of results) if (err !== null) throw err
    await this.redis.hset(this.index, record.id, digest)
  }

  private toPublic (record: TokenRecord): PublicToken {
    const t = fromRedisHash(toRedisHash(record), this.defaultWindowSeconds)
    if (t === null) throw new Error('internal error: a validated record does not read back')
    return t
  }
}
