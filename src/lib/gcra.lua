-- Token checks + GCRA rate limits for a batch of requests in one atomic call: one round trip for
-- every request of an event-loop tick, and no check-then-act race between gateway instances (the
-- decision and the write cannot interleave).
-- The checks come in groups, one per token (and routes revision): KEYS[2j-1] token record (HASH),
-- KEYS[2j] limiter TAT (STRING, integer µs) of group j; the two keys of one token carry the same
-- hash tag (on a Cluster the gateway batches per slot).
-- ARGV[1] default window (s), ARGV[2] deadline in Redis time (integer µs, '' for none),
-- ARGV[1+2j] the routes revision the gateway has compiled for group j's token ('' when none),
-- ARGV[2+2j] the costs of group j's checks, comma-separated ('1,1,1': three requests).
-- Reply: {now, 1} when the call runs after its deadline (the gateway has given up on it and
-- answered 503, so nothing is written), else {now, 0, r_1 … r_N} with one reply per check, group
-- after group, each group's checks in order:
-- {0} unknown | {1, id} expired | {2|3, id, routes, routes_rev, burst, w, remaining, t} |
-- {4, message} malformed record or cost, where routes is the allowed_routes JSON text, and
-- routes_rev is the stored revision or '' when the record has none (then routes are always sent).
-- When routes_rev equals the caller's revision (its compiled copy is current) the routes are not
-- sent and the decision is the string '2|3,routes_rev,burst,w,remaining,t,id' instead.
-- A group reads its record and limiter once and writes the limiter once: its checks are decided in
-- order, each seeing the ones before it, exactly as if each were a call of its own; a later group
-- of the same token sees the first one's write.

-- A present but malformed number is an error, never a default: a corrupted record must not
-- fail open (an unreadable expiry read as "never expires", a limit read as "no limit").
local function int (v, fallback, min)
  if not v then return fallback end
  local n = tonumber(v)
  if n and n >= min and n == math.floor(n) then return n end
  return nil
end

-- Redis' clock, not the gateway's: every instance then agrees on time (gateway clocks drift).
-- Read once: every check of the batch is decided at the same instant.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- A call that waited in a stalled Redis past the moment its gateway answered 503 must spend
-- nothing: the client was told the request failed.
local deadline = ARGV[2]
if deadline ~= '' then
  local d = tonumber(deadline)
  if not d then return redis.error_reply('PORTCULLIS_BAD_ARGS deadline is not a number') end
  if now > d then return {now, 1} end
end

local default_window = int(ARGV[1], nil, 1)

-- A decision. With the routes unchanged (the usual case) it travels as one string,
-- 'code,rev,burst,w,remaining,t,id' (id last: it is the only part that is not a number or hex),
-- which the gateway reads far faster than eight array elements; %d keeps every digit.
local function decided (code, id, routes, rev, burst, w, remaining, t)
  if routes == '' then
    return string.format('%d,%s,%d,%d,%d,%d,%s', code, rev, burst, w, remaining, t, id)
  end
  return {code, id, routes, rev, burst, w, remaining, t}
end

-- The same reply for each of n checks.
local function each (n, item)
  local out = {}
  for i = 1, n do out[i] = item end
  return out
end

local function group (record, limiter, known_rev, costs_arg)
  local costs = {}
  for c in string.gmatch(costs_arg, '[^,]+') do costs[#costs + 1] = c end
  local n = #costs
  local f = redis.call('HMGET', record, 'id', 'rate_limit', 'burst', 'window_seconds',
    'expires_at_us', 'allowed_routes', 'routes_rev')
  local id = f[1]
  -- Unknown or revoked: answer before touching the limiter so such tokens write nothing.
  if not id then return each(n, {0}) end

  local rate = int(f[2], nil, 1)
  local burst = int(f[3], rate, 1)
  local window = int(f[4], default_window, 1)
  local expires = int(f[5], math.huge, -math.huge)
  local bad_record = {4, 'PORTCULLIS_BAD_RECORD malformed rate_limit, burst, window_seconds, ' ..
    'expires_at_us or arguments in ' .. record}
  if not (rate and burst and window and expires) then return each(n, bad_record) end

  if now >= expires then return each(n, {1, id}) end

  -- Integer µs throughout: doubles are exact below 2^53 (epoch µs is ~1.8e15). T rounds up so the
  -- sustained rate never exceeds rate_limit; a/b is correctly rounded, so ceil(a/b) is exact here.
  local t = math.max(1, math.ceil(window * 1000000 / rate))
  local dvt = burst * t
  -- Keeps now + dvt below 2^53 (exact doubles, and %d below 2^63) until ~2110: only a refill time
  -- over ~140 years (burst 1e6 at rate 1 per ~75 min) is refused, loudly rather than miscounted.
  if dvt > 2^52 then
    return each(n, {4, 'PORTCULLIS_BAD_RECORD burst * window / rate_limit over 2^52 us in ' .. record})
  end
  -- Seconds the configured policy takes to refill a full bucket, from the exact ratio rather than
  -- from dvt: dvt exceeds it by < burst µs when T rounds up, which would print w = window + 1.
  local w = math.max(1, math.ceil(burst * window / rate))
  -- Absent routes mean none: fail closed, and the reply stays a non-empty string for the decoder.
  -- A revision is trusted only beside routes and only in the form token.ts writes (16 hex digits);
  -- otherwise the routes travel every time, as for records written before routes_rev existed.
  local routes, rev = f[6], f[7]
  if not routes or routes == '' then routes, rev = '[]', false end
  if not (rev and #rev == 16 and string.match(rev, '^[0-9a-f]+$')) then rev = '' end
  -- Up to ~100 KB of patterns: send them only when the gateway's compiled copy is stale.
  if rev ~= '' and rev == known_rev then routes = '' end

  local stored = redis.call('GET', limiter)
  local tat = math.max(stored and tonumber(stored) or now, now)
  local written = false
  local out = {}
  for i = 1, n do
    local cost = int(costs[i], nil, 1)
    if not cost then
      out[i] = bad_record
    else
      local new = tat + cost * t
      if new - now <= dvt then
        -- `<=` admits exactly `burst` from a full bucket: the burst-th request lands on new - now = dvt.
        tat = new
        written = true
        out[i] = decided(2, id, routes, rev, burst, w, math.floor((dvt - (new - now)) / t), math.ceil((new - now) / 1000000))
      else
        -- Refused requests write nothing, so a client under sustained overload still recovers.
        out[i] = decided(3, id, routes, rev, burst, w, 0, math.max(1, math.ceil((new - dvt - now) / 1000000)))
      end
    end
  end
  if written then
    -- The key expires when the bucket is full again, where "no key" means the same thing; PX must
    -- be an integer >= 1. %d keeps every digit (tostring would use %.14g).
    redis.call('SET', limiter, string.format('%d', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  return out
end

if #KEYS == 0 or #KEYS % 2 ~= 0 or #ARGV ~= #KEYS + 2 then
  return redis.error_reply('PORTCULLIS_BAD_ARGS expected 2 keys and 2 arguments per group of checks')
end
-- Each group's costs: one or more, comma-separated, none empty (a reply per cost is expected).
for j = 1, #KEYS / 2 do
  local costs = ARGV[2 + 2 * j]
  if costs == '' or string.sub(costs, 1, 1) == ',' or string.sub(costs, -1) == ',' or string.find(costs, ',,', 1, true) then
    return redis.error_reply('PORTCULLIS_BAD_ARGS each group needs its costs, comma-separated')
  end
end
local reply = {now, 0}
for j = 1, #KEYS / 2 do
  local out = group(KEYS[2 * j - 1], KEYS[2 * j], ARGV[1 + 2 * j], ARGV[2 + 2 * j])
  for i = 1, #out do reply[#reply + 1] = out[i] end
end
return reply
