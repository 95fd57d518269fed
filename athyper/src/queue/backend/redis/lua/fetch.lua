-- One worker step: settle acks, renew the lease, promote due delayed jobs,
-- take up to `max` waiting jobs.
-- ARGV: worker, lease ms, max, keep completed (count, age ms), keep failed
-- (count, age ms) (-1: no bound), number of limits, then (name, cap) pairs,
-- number of acks, then (id, kind c|f, retry ms (-1: none), error).
-- Returns {lost ids, paused, ms to the next due job (-1: none), now,
-- jobs {id, record, attempts made, stalled, due ms}}.
local now = now_ms()
local worker = ARGV[1]
local lease = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local keep_c, keep_c_age = tonumber(ARGV[4]), tonumber(ARGV[5])
local keep_f, keep_f_age = tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
local caps = {}
for _ = 1, tonumber(ARGV[i]) do
  caps[ARGV[i + 1]] = tonumber(ARGV[i + 2])
  i = i + 2
end
i = i + 1
local active = K .. ':active:' .. worker

local lost = {}
local trim_c, trim_f = false, false
for _ = 1, tonumber(ARGV[i]) do
  local id, kind, retry, err = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  i = i + 4
  if redis.call('SREM', active, id) == 0 then
    lost[#lost + 1] = id
  else
    local jk = K .. ':j:' .. id
    local p = tonumber(redis.call('HGET', jk, 'p'))
    delta('a', p, -1)
    if kind == 'c' then
      if keep_c == 0 then
        redis.call('HDEL', K .. ':jobs', id)
        redis.call('DEL', jk, K .. ':e:' .. id)
      else
        redis.call('HINCRBY', jk, 'a', 1)
        redis.call('HSET', jk, 'x', 'c', 'f', num(now))
        finish(':completed', id, now)
        delta('c', p, 1)
        trim_c = true
      end
    else
      local att = redis.call('HINCRBY', jk, 'a', 1)
      redis.call('RPUSH', K .. ':e:' .. id, att .. '|' .. num(now) .. '|' .. err)
      local again = false
      if retry >= 0 then
        local _, _, allowed = header(redis.call('HGET', K .. ':jobs', id) or '')
        again = allowed ~= nil and att < allowed
      end
      if again then
        local due = num(now + retry)
        redis.call('HSET', jk, 'x', 'd', 'd', due)
        redis.call('ZADD', K .. ':delayed', due, id)
        delta('d', p, 1)
      else
        redis.call('HSET', jk, 'x', 'f', 'f', num(now))
        finish(':failed', id, now)
        delta('f', p, 1)
        trim_f = true
      end
    end
  end
end
if trim_c then
  trim('c', ':completed', keep_c, keep_c_age, now)
end
if trim_f then
  trim('f', ':failed', keep_f, keep_f_age, now)
end

redis.call('ZADD', K .. ':workers', num(now + lease), worker)

-- Due jobs join the back of their priority; at most 1,000 a step keeps
-- the script short, the next step promotes the rest.
local due = redis.call('ZRANGEBYSCORE', K .. ':delayed', '-inf', num(now), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local jk = K .. ':j:' .. id
  local st = redis.call('HMGET', jk, 'n', 'p')
  local p = tonumber(st[2])
  local score = p * PRIO + redis.call('INCR', K .. ':seq')
  redis.call('ZREM', K .. ':delayed', id)
  to_waiting(id, st[1], score)
  redis.call('HSET', jk, 'x', 'w', 'sc', num(score))
  delta('d', p, -1)
  delta('w', p, 1)
end

local paused = redis.call('EXISTS', K .. ':paused')
local jobs = {}
if paused == 0 and max > 0 then
  local names = redis.call('SMEMBERS', K .. ':names')
  local candidates = {}
  for _, name in ipairs(names) do
    local cap = caps[name] or max
    if cap > max then
      cap = max
    end
    if cap > 0 then
      local r = redis.call('ZRANGE', K .. ':w:' .. name, 0, cap - 1, 'WITHSCORES')
      for j = 1, #r, 2 do
        candidates[#candidates + 1] = {tonumber(r[j + 1]), r[j], name}
      end
    end
  end
  if #names > 1 then
    table.sort(candidates, function(a, b) return a[1] < b[1] end)
  end
  local taken = {}
  for j = 1, math.min(max, #candidates) do
    local score, id, name = candidates[j][1], candidates[j][2], candidates[j][3]
    local p = math.floor(score / PRIO)
    taken[name] = taken[name] or {}
    local list = taken[name]
    list[#list + 1] = id
    local jk = K .. ':j:' .. id
    local st = redis.call('HMGET', jk, 'a', 's', 'd')
    redis.call('HSET', jk, 'n', name, 'p', p, 'sc', num(score), 'x', 'a', 't', num(now))
    redis.call('SADD', active, id)
    jobs[#jobs + 1] = {id, redis.call('HGET', K .. ':jobs', id) or '', st[1] or '0', st[2] or '0', st[3] or ''}
    delta('w', p, -1)
    delta('a', p, 1)
  end
  for name, ids in pairs(taken) do
    local key = K .. ':w:' .. name
    for j = 1, #ids, 500 do
      redis.call('ZREM', key, unpack(ids, j, math.min(j + 499, #ids)))
    end
    if redis.call('ZCARD', key) == 0 then
      redis.call('SREM', K .. ':names', name)
    end
  end
  -- Work is left: let another idle worker know.
  if #jobs > 0 and redis.call('SCARD', K .. ':names') > 0 then
    wake()
  end
end

local next_due = -1
local first = redis.call('ZRANGE', K .. ':delayed', 0, 0, 'WITHSCORES')
if first[2] then
  next_due = math.max(0, tonumber(first[2]) - now)
end
flush_counts()
return {lost, paused, next_due, now, jobs}
