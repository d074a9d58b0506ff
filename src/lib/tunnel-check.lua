-- The periodic check of an open WebSocket tunnel's token: read-only, one call per tunnel per
-- WEBSOCKET_RECHECK_SECONDS. It never touches the limiter (a tunnel's upgrade was its one request).
-- KEYS[1] token record (HASH); ARGV[1] the routes revision the tunnel was admitted under.
-- Replies: {0} unknown/revoked | {1} expired | {2} routes unchanged | {3, routes, routes_rev}.
local f = redis.call('HMGET', KEYS[1], 'id', 'expires_at_us', 'routes_rev')
if not f[1] then return {0} end
-- Redis' clock, as the gate script uses: every gateway agrees when a token expires.
if f[2] then
  local expires = tonumber(f[2])
  local time = redis.call('TIME')
  -- An unreadable expiry fails closed, as it does in the gate script (an error there, a 503).
  if not expires or tonumber(time[1]) * 1000000 + tonumber(time[2]) >= expires then return {1} end
end
local rev = f[3]
if rev and #rev == 16 and rev == ARGV[1] then return {2} end
-- Routes changed (or the record has no revision): send them, so the gateway matches the path again.
local routes = redis.call('HGET', KEYS[1], 'allowed_routes')
if not routes or routes == '' then routes = '[]' end
return {3, routes, rev or ''}
