-- Shared by every script; scripts.rs prepends it to each one.
--
-- Keys of one queue, all under the prefix K = "<prefix>:{<queue>}" (the
-- braces are the cluster hash tag, so every key of a queue is in one slot):
--   K:seq            counter: generated ids and the order of waiting jobs
--   K:jobs           hash id -> record "1|<priority>|<name>|<max attempts>|<timeout ms>|<backoff>|<enqueued ms>|<payload>"
--   K:j:<id>         hash of a job's changing state, made when it first runs or is delayed:
--                    n name, p priority, sc waiting score, x state (w d a c f),
--                    a attempts made, s times stalled, t started ms, d due ms, f finished ms, g progress
--   K:e:<id>         list of "<attempt>|<ms>|<error>", one per failed attempt
--   K:w:<name>       zset of waiting jobs of one handler, score priority * 2^50 + seq
--   K:names          set of handler names with waiting jobs
--   K:delayed        zset id -> due ms
--   K:active:<w>     set of jobs worker w holds
--   K:workers        zset worker -> lease expiry ms
--   K:completed      zset id -> finished ms (likewise K:failed)
--   K:counts         hash "<state><priority>" -> number of jobs
--   K:paused         present while the queue is paused
--   K:marker         list of at most one element, popped by idle workers' BLPOP
local K = KEYS[1]
local PRIO = 1125899906842624 -- 2^50

-- Lua would print large numbers as 1.2e+15; Redis needs every digit.
local function num(n)
  return string.format('%.0f', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Count changes are summed here and written once per script.
local deltas = {}
local function delta(state, p, d)
  local key = state .. p
  deltas[key] = (deltas[key] or 0) + d
end

local function flush_counts()
  for key, d in pairs(deltas) do
    if d ~= 0 then
      redis.call('HINCRBY', K .. ':counts', key, d)
    end
  end
  deltas = {}
end

local function wake()
  if redis.call('LLEN', K .. ':marker') == 0 then
    redis.call('LPUSH', K .. ':marker', '1')
  end
end

-- Priority, name and attempts allowed, from a job record.
local function header(record)
  local p, name, max = string.match(record, '^1|(%d)|([^|]+)|(%d+)|')
  return tonumber(p), name, tonumber(max)
end

local function to_waiting(id, name, score)
  redis.call('ZADD', K .. ':w:' .. name, num(score), id)
  redis.call('SADD', K .. ':names', name)
end

local function drop(id, state, p)
  redis.call('HDEL', K .. ':jobs', id)
  redis.call('DEL', K .. ':j:' .. id, K .. ':e:' .. id)
  delta(state, p, -1)
end

-- Adds a finished job to its set, scored by finish time in ms. Jobs that
-- finish in the same millisecond get scores 1/1024 ms apart (exact in a
-- double), so trimming by count drops them in the order they finished,
-- not by id.
local function finish(set, id, now)
  local key = K .. set
  local score = now
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] ~= nil and tonumber(last[2]) >= score then
    score = tonumber(last[2]) + 1 / 1024
  end
  redis.call('ZADD', key, string.format('%.17g', score), id)
end

-- Drops the oldest finished jobs beyond a count and an age (-1: no bound).
local function trim(state, set, keep_count, keep_age, now)
  local key = K .. set
  if keep_count >= 0 then
    local over = redis.call('ZCARD', key) - keep_count
    if over > 0 then
      local gone = redis.call('ZPOPMIN', key, over)
      for i = 1, #gone, 2 do
        drop(gone[i], state, tonumber(redis.call('HGET', K .. ':j:' .. gone[i], 'p')))
      end
    end
  end
  if keep_age >= 0 then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. num(now - keep_age), 'LIMIT', 0, 1000)
    for _, id in ipairs(old) do
      redis.call('ZREM', key, id)
      drop(id, state, tonumber(redis.call('HGET', K .. ':j:' .. id, 'p')))
    end
  end
end

-- Puts an active job back to waiting in its old place.
local function put_back(id)
  local jk = K .. ':j:' .. id
  local st = redis.call('HMGET', jk, 'n', 'p', 'sc')
  local p = tonumber(st[2])
  to_waiting(id, st[1], tonumber(st[3]))
  redis.call('HSET', jk, 'x', 'w')
  delta('a', p, -1)
  delta('w', p, 1)
end

-- A worker's jobs, in the order they were waiting.
local function held_by(worker)
  local ids = redis.call('SMEMBERS', K .. ':active:' .. worker)
  local scored = {}
  for _, id in ipairs(ids) do
    scored[#scored + 1] = {tonumber(redis.call('HGET', K .. ':j:' .. id, 'sc')) or 0, id}
  end
  table.sort(scored, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, pair in ipairs(scored) do
    out[i] = pair[2]
  end
  return out
end

-- Everything known of one job, or nil.
local function info(id)
  local record = redis.call('HGET', K .. ':jobs', id)
  if not record then
    return nil
  end
  local fields = redis.call('HGETALL', K .. ':j:' .. id)
  local state = 'w'
  for i = 1, #fields, 2 do
    if fields[i] == 'x' then
      state = fields[i + 1]
    end
  end
  return {id, record, state, fields, redis.call('LRANGE', K .. ':e:' .. id, 0, -1)}
end
