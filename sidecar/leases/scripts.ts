/** Lua scripts of the lease store. Every key of one script shares the resource's hash tag. */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** How many free accounts (from the head of the pool) CHECKOUT looks through for a signed candidate. */
export const CHECKOUT_SCAN = 64;

/**
 * How long CHECKOUT holds an account it reserved for one lease id (Redis' clock): long enough for
 * the sidecar to sign one record and send it back, even after a stall past CHECKOUT_SKEW_MS (one
 * more round trip to re-sign); short, because a sidecar that dies meanwhile leaves it unusable so long.
 */
export const RESERVATION_MS = 3000;

/**
 * KEYS: acct, free, due, lease, holder, waitq, alive, rsv (account -> reservation deadline), rsvby
 * (account -> lease id), and on one Redis node (no Cluster) also lease-of, agent index, task index,
 * and optionally the lease event stream (`issued` appended).
 * ARGV: id, json, ttlMs, maxTtlMs, retentionMs, waiter ('' = not waiting), waiterTtlMs, expiresAt,
 * maxExpiresAt, skewMs, indexMember, streamMaxLen, resource, agent, reserved account ('' = none),
 * then pairs of account, MAC.
 * Fair: a request only gets an account when fewer live waiters than free accounts are ahead of it
 * (first come, first served, also within one millisecond: a new waiter's score is above every
 * other's); a waiter that stops refreshing its deadline drops out of the queue.
 * The sidecar signed the record for each candidate account with expiries from its estimate of
 * Redis' clock: the script takes the first free account it has a MAC for, and only when the
 * expiries are no later than now + ttl (now + maxTtl) and at most skewMs earlier, so the record is
 * written whole, MAC included; its issued_at is that estimate (the lease lasts ttl from it).
 * When no candidate is free (others took them meanwhile) but an account is free for the request,
 * the script reserves the pool's head for this lease id for RESERVATION_MS (out of the free list,
 * and out of the queue for a waiter: it has its account; it queues again, last, should the
 * reservation be lost) and returns it; the sidecar signs for that account and calls again with it
 * as the reserved account, which skips the fairness check (it was passed) and takes it if the
 * reservation is still this id's and the account still available. Expired reservations go back to
 * the free list (if still available) first thing in every call: one left by a dead sidecar is
 * free again for the first checkout after its deadline.
 * Returns {1, now, account, free accounts left (first 16)}; {0, now} when none is free for it;
 * {-3, now} when the expiries do not fit Redis' clock (a reservation is kept); {2, now, account,
 * free accounts (first 16)} when it reserved that account; {-5, now} when the reserved account is
 * no longer this lease's (reservation expired, or an operator changed the account).
 */
export const CHECKOUT = `${NOW}
for _, a in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now)) do
  redis.call('ZREM', KEYS[8], a)
  redis.call('HDEL', KEYS[9], a)
  if redis.call('HGET', KEYS[1], a) == 'available' then redis.call('ZADD', KEYS[2], 'NX', now, a) end
end
local waiter = ARGV[6]
local reserved = ARGV[15]
if reserved == '' then
  if waiter ~= '' then
    if not redis.call('ZSCORE', KEYS[6], waiter) then
      -- Queued last: after every waiter already there, also one queued in the same millisecond
      -- (equal scores would order by name, not by arrival).
      local last = redis.call('ZRANGE', KEYS[6], -1, -1, 'WITHSCORES')[2]
      local at = now
      if last and tonumber(last) >= at then at = tonumber(last) + 1 end
      redis.call('ZADD', KEYS[6], at, waiter)
    end
    redis.call('HSET', KEYS[7], waiter, now + tonumber(ARGV[7]))
  end
  local nfree = redis.call('ZCARD', KEYS[2])
  if nfree == 0 then return {0, now} end
  local ahead = 0
  for _, w in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
    if w == waiter then break end
    local dl = tonumber(redis.call('HGET', KEYS[7], w) or '0')
    if dl < now then
      redis.call('ZREM', KEYS[6], w)
      redis.call('HDEL', KEYS[7], w)
    else
      ahead = ahead + 1
    end
  end
  if ahead >= nfree then return {0, now} end
end
local exp = tonumber(ARGV[8])
local maxexp = tonumber(ARGV[9])
local skew = tonumber(ARGV[10])
local wantmax = now + tonumber(ARGV[4])
local wantexp = now + tonumber(ARGV[3])
if wantexp > wantmax then wantexp = wantmax end
if maxexp > wantmax or exp > wantexp or maxexp < wantmax - skew or exp < wantexp - skew then
  return {-3, now}
end
local macs = {}
for i = 16, #ARGV, 2 do macs[ARGV[i]] = ARGV[i + 1] end
local acct
if reserved ~= '' then
  if redis.call('HGET', KEYS[9], reserved) ~= ARGV[1] or not macs[reserved] then return {-5, now} end
  redis.call('ZREM', KEYS[8], reserved)
  redis.call('HDEL', KEYS[9], reserved)
  if redis.call('HGET', KEYS[1], reserved) ~= 'available' then return {-5, now} end
  acct = reserved
else
  for _, a in ipairs(redis.call('ZRANGE', KEYS[2], 0, ${CHECKOUT_SCAN - 1})) do
    if macs[a] then
      acct = a
      break
    end
  end
  if not acct then
    acct = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    redis.call('ZREM', KEYS[2], acct)
    redis.call('ZADD', KEYS[8], now + ${RESERVATION_MS}, acct)
    redis.call('HSET', KEYS[9], acct, ARGV[1])
    if waiter ~= '' then
      redis.call('ZREM', KEYS[6], waiter)
      redis.call('HDEL', KEYS[7], waiter)
    end
    return {2, now, acct, redis.call('ZRANGE', KEYS[2], 0, 15)}
  end
end
redis.call('ZREM', KEYS[2], acct)
redis.call('HSET', KEYS[1], acct, 'leased')
redis.call('HSET', KEYS[5], acct, ARGV[1])
redis.call('HSET', KEYS[4], 'json', ARGV[2], 'account', acct, 'state', 'active', 'issued_at', maxexp - tonumber(ARGV[4]),
  'expires_at', exp, 'max_expires_at', maxexp, 'mac', macs[acct])
local keep = maxexp - now + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[4], keep)
redis.call('ZADD', KEYS[3], exp, ARGV[1])
if waiter ~= '' then
  redis.call('ZREM', KEYS[6], waiter)
  redis.call('HDEL', KEYS[7], waiter)
end
if #KEYS >= 12 then
  redis.call('SET', KEYS[10], ARGV[13], 'PX', keep)
  redis.call('ZADD', KEYS[11], maxexp, ARGV[11])
  redis.call('ZADD', KEYS[12], maxexp, ARGV[11])
end
if #KEYS >= 13 then
  redis.call('XADD', KEYS[13], 'MAXLEN', '~', ARGV[12], '*', 'type', 'issued', 'resource', ARGV[13],
    'account', acct, 'lease_id', ARGV[1], 'agent', ARGV[14])
end
return {1, now, acct, redis.call('ZRANGE', KEYS[2], 0, 15)}`;

/** KEYS: lease. Returns Redis' clock and the lease hash in one round trip. */
export const USE = `${NOW}
return {now, redis.call('HGETALL', KEYS[1])}`;

/**
 * KEYS: lease, due. ARGV: id, newExpiresAt, expectedMac, newMac.
 * The sidecar verified the record's MAC and signed the renewed one; the renewal applies only if
 * the MAC is still the verified one (-2 otherwise: the record changed meanwhile), so the new
 * expiry and its MAC land together.
 */
export const RENEW = `${NOW}
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'active' then return 0 end
if (redis.call('HGET', KEYS[1], 'mac') or '') ~= ARGV[3] then return -2 end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
if exp <= now then return 0 end
local maxexp = tonumber(redis.call('HGET', KEYS[1], 'max_expires_at'))
local nexp = tonumber(ARGV[2])
if nexp > maxexp then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', nexp, 'mac', ARGV[4])
redis.call('ZADD', KEYS[2], nexp, ARGV[1])
return 1`;

/**
 * KEYS: lease, acct, holder, due, inflight. ARGV: id, reason, retentionMs, expectedMac, newMac.
 * Ends an active lease once; its account goes to 'rotating' (never straight back to the pool).
 * An 'expired' end of a lease that is not yet due is refused (it was renewed after the claim).
 * expectedMac is the MAC the sidecar verified (-2 when it changed meanwhile), or '' for a record
 * that failed verification: that one ends whatever its (untrusted) expiry says. Returns {code, now}.
 */
export const END = `${NOW}
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {-1, now} end
if st ~= 'active' then return {0, now} end
local trusted = ARGV[4] ~= ''
if trusted and (redis.call('HGET', KEYS[1], 'mac') or '') ~= ARGV[4] then return {-2, now} end
if ARGV[2] == 'expired' and trusted then
  local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
  if exp > now then
    redis.call('ZREM', KEYS[5], ARGV[1])
    redis.call('ZADD', KEYS[4], exp, ARGV[1])
    return {2, now}
  end
end
local acct = redis.call('HGET', KEYS[1], 'account')
redis.call('HSET', KEYS[1], 'state', 'ended', 'ended_at', now, 'end_reason', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'mac', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('HGET', KEYS[3], acct) == ARGV[1] then
  redis.call('HDEL', KEYS[3], acct)
  redis.call('HSET', KEYS[2], acct, 'rotating')
end
return {1, now}`;

/**
 * KEYS: due, inflight. ARGV: limit, visibilityMs.
 * Moves due leases to the in-flight set with a visibility deadline, and takes back claims
 * whose deadline passed (their claimer died). Returns the claimed ids.
 */
export const CLAIM_DUE = `${NOW}
local limit = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], deadline, id)
  out[#out + 1] = id
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(stale) do
  redis.call('ZADD', KEYS[2], deadline, id)
  out[#out + 1] = id
end
return out`;

/**
 * The keys of resource `name` under `prefix`, as LeaseStore names them (one hash tag per
 * resource). Only for scripts that span resources, which run on a single Redis (not Cluster).
 */
const RESOURCE_KEY = `local function rkey(prefix, name, part) return prefix .. '{r:' .. name .. '}:' .. part end`;

/** Claims up to `want` leases of one schedule (due first, then stale claims); appends name, id to out. */
const CLAIM_ONE = `local function claim(name, due, inflight, want, deadline, now, out)
  local n = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, want)) do
    redis.call('ZREM', due, id)
    redis.call('ZADD', inflight, deadline, id)
    out[#out + 1] = name
    out[#out + 1] = id
    n = n + 1
  end
  if n < want then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, want - n)) do
      redis.call('ZADD', inflight, deadline, id)
      out[#out + 1] = name
      out[#out + 1] = id
      n = n + 1
    end
  end
  return n
end`;

/**
 * KEYS: resources (the set of resource names). ARGV: prefix, limit, visibilityMs.
 * CLAIM_DUE over every resource in one call (single Redis only: the keys of each resource are
 * built from its name). At most `limit` leases in all: first an equal share per resource, starting
 * at a resource that moves with the clock, so one resource's backlog holds back no other; then
 * whatever is left, in the same order. Returns resource, id pairs, flat.
 */
export const CLAIM_DUE_ALL = `${NOW}
${RESOURCE_KEY}
${CLAIM_ONE}
local prefix = ARGV[1]
local limit = tonumber(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local names = redis.call('SMEMBERS', KEYS[1])
local count = #names
local out = {}
if count == 0 or limit <= 0 then return out end
table.sort(names)
local start = now % count
local share = math.max(1, math.floor(limit / count))
local left = limit
local full = {}
for k = 0, count - 1 do
  if left <= 0 then break end
  local name = names[(start + k) % count + 1]
  local want = math.min(share, left)
  local n = claim(name, rkey(prefix, name, 'due'), rkey(prefix, name, 'inflight'), want, deadline, now, out)
  left = left - n
  if n == want then full[#full + 1] = name end
end
for _, name in ipairs(full) do
  if left <= 0 then break end
  left = left - claim(name, rkey(prefix, name, 'due'), rkey(prefix, name, 'inflight'), left, deadline, now, out)
end
return out`;

/**
 * KEYS: due, inflight, acct, rsv. ARGV: lease key prefix (the resource's, ending in "lease:"), scan.
 * One resource's figures without sending any lease: {active, soonest expires_at or -1, oldest
 * issued_at of the first `scan` scheduled leases or -1, scheduled, available, leased, rotating,
 * quarantined, reserved}. A lease claimed by a reaper is counted once (a renewal may have put it
 * back in the schedule meanwhile); its expiry is read from its record. An available account that
 * CHECKOUT holds for a lease id until a deadline still to come is counted reserved, not available;
 * one whose deadline passed is available (the next CHECKOUT frees it before looking).
 */
export const RESOURCE_STATS = `${NOW}
local lp = ARGV[1]
local scan = tonumber(ARGV[2])
local active = redis.call('ZCARD', KEYS[1])
local soonest = -1
local oldest = -1
local function seen(id)
  local h = redis.call('HMGET', lp .. id, 'state', 'issued_at', 'expires_at')
  if h[1] ~= 'active' then return end
  local iss, exp = tonumber(h[2]), tonumber(h[3])
  if iss and (oldest < 0 or iss < oldest) then oldest = iss end
  if exp and (soonest < 0 or exp < soonest) then soonest = exp end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if not redis.call('ZSCORE', KEYS[1], id) then
    active = active + 1
    seen(id)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] and (soonest < 0 or tonumber(first[2]) < soonest) then soonest = tonumber(first[2]) end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, scan - 1)) do seen(id) end
local counts = {available = 0, leased = 0, rotating = 0, quarantined = 0}
for _, st in ipairs(redis.call('HVALS', KEYS[3])) do
  if counts[st] then counts[st] = counts[st] + 1 end
end
local reserved = 0
for _, a in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. now, '+inf')) do
  if redis.call('HGET', KEYS[3], a) == 'available' then reserved = reserved + 1 end
end
return {active, soonest, oldest, redis.call('ZCARD', KEYS[1]), counts.available - reserved, counts.leased,
  counts.rotating, counts.quarantined, reserved}`;

/**
 * KEYS: due. ARGV: lease key prefix, start, stop.
 * The oldest issued_at among the active leases at ranks start..stop of the schedule, or -1.
 */
export const OLDEST_ISSUED = `local oldest = -1
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))) do
  local h = redis.call('HMGET', ARGV[1] .. id, 'state', 'issued_at')
  local iss = tonumber(h[2])
  if h[1] == 'active' and iss and (oldest < 0 or iss < oldest) then oldest = iss end
end
return oldest`;

/**
 * KEYS: the resources set, or (with a resource named in ARGV[2]) that resource's due key.
 * ARGV: prefix, resource ('' = every resource, single Redis only), agent ('' = any), limit,
 * budget, then the position to start after: resource, phase, score, id ('' = the start).
 * One page of active leases, by resource name, then per resource the claimed ones (phase 'i',
 * by id) and the scheduled ones (phase 'd', by expires_at then id); phase 'z' is past the resource. At most `limit` leases and
 * `budget` entries looked at. A full page looks on for one more matching lease (within the
 * budget): only when it finds one, or the budget runs out first, is a position returned, so the
 * last page has none. Returns {{looked, position...}, {resource, id, hash}...}: `looked` the
 * entries looked at (so a caller paging over several calls keeps one budget), the position absent
 * when the listing is complete. `budget` must be at least 1.
 */
export const LIST_PAGE = `${RESOURCE_KEY}
local prefix, only, agent = ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local cr, cp, cs, cm = ARGV[6], ARGV[7], tonumber(ARGV[8]) or 0, ARGV[9]
local names
if only ~= '' then names = {only} else
  names = redis.call('SMEMBERS', KEYS[1])
  table.sort(names)
end
local leases = {{}}
local scanned = 0
local pos = {}
-- true: stop, with pos the last entry looked at that the next page need not see again
local function visit(name, phase, score, id)
  if scanned >= budget then return true end
  scanned = scanned + 1
  local flat = redis.call('HGETALL', rkey(prefix, name, 'lease:' .. id))
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  if h.state == 'active' and h.json then
    local ok, spec = pcall(cjson.decode, h.json)
    if agent == '' or (ok and type(spec) == 'table' and spec.agent == agent) then
      if #leases - 1 >= limit then return true end
      leases[#leases + 1] = {name, id, flat}
    end
  end
  pos = {name, phase, tostring(score), id}
  return false
end
local function stop()
  leases[1] = {tostring(scanned), pos[1], pos[2], pos[3], pos[4]}
  return leases
end
for _, name in ipairs(names) do
  if cr == '' or name > cr or (name == cr and cp ~= 'z') then
    local resume = name == cr
    local due, inflight = rkey(prefix, name, 'due'), rkey(prefix, name, 'inflight')
    if not resume or cp == 'i' then
      local claimed = redis.call('ZRANGE', inflight, 0, -1)
      table.sort(claimed)
      for _, id in ipairs(claimed) do
        if not (resume and id <= cm) and not redis.call('ZSCORE', due, id) then
          if visit(name, 'i', 0, id) then return stop() end
        end
      end
    end
    local from = (resume and cp == 'd') and cs or '-inf'
    local offset = 0
    while true do
      local chunk = redis.call('ZRANGEBYSCORE', due, from, '+inf', 'WITHSCORES', 'LIMIT', offset, 100)
      if #chunk == 0 then break end
      offset = offset + #chunk / 2
      for i = 1, #chunk, 2 do
        local id, score = chunk[i], tonumber(chunk[i + 1])
        if not (resume and cp == 'd' and score == cs and id <= cm) then
          if visit(name, 'd', chunk[i + 1], id) then return stop() end
        end
      end
    end
  end
end
leases[1] = {tostring(scanned)}
return leases`;

/**
 * KEYS: acct, free, holder. ARGV: account, state.
 * Sets an account's state; 'available' puts it back in the free pool, any other state takes it out.
 * A 'leased' account is only changed by END.
 */
export const SET_ACCOUNT = `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == 'leased' and ARGV[3] ~= 'force' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[2] == 'available' then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1`;

/**
 * KEYS: agent. ARGV: graceMs.
 * Drops the agent's index entries whose lease could have ended more than graceMs ago (left by a
 * crash between the lease script and the index write) and returns how many remain.
 */
export const AGENT_COUNT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])`;

/**
 * KEYS: counter. ARGV: windowSeconds.
 * Counts one hit in the current fixed window (aligned to Redis' clock); the counter expires when
 * its window ends. Returns the count so far and the milliseconds left in the window.
 */
export const HIT = `${NOW}
local span = tonumber(ARGV[1]) * 1000
local ends = (math.floor(now / span) + 1) * span
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIREAT', KEYS[1], ends) end
return {n, ends - now}`;

/**
 * KEYS: counter, agent. ARGV: windowSeconds, graceMs. HIT and AGENT_COUNT in one script (one
 * Redis node only: the keys live in different hash slots). Returns {count, ms left, active leases}.
 */
export const HIT_AND_COUNT = `${NOW}
local span = tonumber(ARGV[1]) * 1000
local ends = (math.floor(now / span) + 1) * span
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIREAT', KEYS[1], ends) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
return {n, ends - now, redis.call('ZCARD', KEYS[2])}`;

/**
 * KEYS: one-time key, counter, agent. ARGV: windowSeconds, graceMs, one-time key's ttl ms.
 * Spends the one-time key first (SET NX): when it was spent before, returns {0} and counts
 * nothing; else HIT_AND_COUNT and returns {1, count, ms left, active leases}. One Redis node only.
 */
export const SPEND_HIT_AND_COUNT = `if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[3], 'NX') then return {0} end
${NOW}
local span = tonumber(ARGV[1]) * 1000
local ends = (math.floor(now / span) + 1) * span
local n = redis.call('INCR', KEYS[2])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIREAT', KEYS[2], ends) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[2]))
return {1, n, ends - now, redis.call('ZCARD', KEYS[3])}`;
