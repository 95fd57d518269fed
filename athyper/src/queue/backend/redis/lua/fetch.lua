-- One worker step: settle acks, renew the lease, promote due delayed jobs,
-- take up to `max` waiting jobs.
-- ARGV: worker, lease ms, max, keep completed (count, age ms), keep failed
-- (count, age ms) (-1: no bound), number of limits, then (name, cap) pairs,
-- number of acks, then (id, kind c|f, attempt, retry ms (-1: none), error).
-- Returns {lost ids, paused, ms to the next due job (-1: none), now,
-- jobs {id, record, attempts made, stalled, due ms}, lease was held (1/0)}.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':delayed', ':workers', ':seen', ':completed', ':failed', ':counts')
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
if redis.call('TYPE', active).ok ~= 'set' then
  -- Not a set of this worker's (none, or written by someone else): the
  -- worker holds nothing.
  redis.call('DEL', active)
end

observe(now, lease)
local held = redis.call('ZSCORE', K .. ':workers', worker) and 1 or 0

local lost = {}
local trim_c, trim_f = false, false
for _ = 1, tonumber(ARGV[i]) do
  local id, kind, attempt, retry, err = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
  i = i + 5
  local st = state_of(id, 'p', 'n', 'a', 'o')
  if redis.call('SREM', active, id) == 0 then
    -- Not this worker's: it settled this very attempt before (the reply
    -- was lost and the ack is sent again), the job is gone, or recovery
    -- took it back and it runs elsewhere.
    local repeated = st and st[4] == worker and tonumber(st[3]) == attempt
    if not repeated and redis.call('HEXISTS', K .. ':jobs', id) == 1 then
      lost[#lost + 1] = id
    end
  else
    local record = redis.call('HGET', K .. ':jobs', id)
    local hp, hn, allowed = header(record)
    local p = (st and tonumber(st[1])) or hp
    local name = (st and st[2]) or hn
    if not record or not p or not name then
      quarantine(id, record and 'its record does not read' or 'its record is missing', 'a', now, p)
    elseif kind == 'c' then
      delta('a', p, -1)
      if keep_c == 0 then
        drop(id, nil, p)
      else
        redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'a', attempt, 'o', worker, 'x', 'c', 'f', num(now))
        finish(':completed', id, now)
        delta('c', p, 1)
        trim_c = true
      end
      settled.c = settled.c + 1
    else
      delta('a', p, -1)
      push_error(id, attempt .. '|' .. num(now) .. '|' .. err)
      local jk = state_key(id, st)
      if retry >= 0 and allowed ~= nil and attempt < allowed then
        local due = num(now + retry)
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt, 'o', worker, 'x', 'd', 'd', due)
        redis.call('ZADD', K .. ':delayed', due, id)
        delta('d', p, 1)
      else
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt, 'o', worker, 'x', 'f', 'f', num(now))
        finish(':failed', id, now)
        delta('f', p, 1)
        settled.f = settled.f + 1
        trim_f = true
      end
    end
  end
end

-- Drops the oldest finished jobs beyond a count and an age (-1: no bound).
local function trim(state, set, keep_count, keep_age)
  local key = K .. set
  if keep_count >= 0 then
    local over = redis.call('ZCARD', key) - keep_count
    if over > 0 then
      local gone = redis.call('ZPOPMIN', key, over)
      for j = 1, #gone, 2 do
        drop(gone[j], state)
      end
    end
  end
  if keep_age >= 0 then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. num(now - keep_age), 'LIMIT', 0, 1000)
    for _, id in ipairs(old) do
      redis.call('ZREM', key, id)
      drop(id, state)
    end
  end
end
if trim_c then
  trim('c', ':completed', keep_c, keep_c_age)
end
if trim_f then
  trim('f', ':failed', keep_f, keep_f_age)
end

redis.call('ZADD', K .. ':workers', num(now + lease), worker)

-- Due jobs join the back of their priority; at most 1,000 a step keeps
-- the script short, the next step promotes the rest.
local due = redis.call('ZRANGEBYSCORE', K .. ':delayed', '-inf', num(now), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', K .. ':delayed', id)
  local st = state_of(id, 'n', 'p')
  local record = redis.call('HGET', K .. ':jobs', id)
  local hp, hn = header(record)
  local name = (st and st[1]) or hn
  local p = (st and tonumber(st[2])) or hp
  if not record or not name or not p then
    quarantine(id, record and 'its record does not read' or 'its record is missing', 'd', now, p)
  else
    local score = p * PRIO + redis.call('INCR', K .. ':seq')
    if to_waiting(id, name, score) then
      redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'x', 'w', 'sc', num(score))
      delta('d', p, -1)
      delta('w', p, 1)
    else
      quarantine(id, 'the waiting set of `' .. name .. '` is damaged', 'd', now, p)
    end
  end
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
      local r = redis.pcall('ZRANGE', K .. ':w:' .. name, 0, cap - 1, 'WITHSCORES')
      if failed(r) then
        -- Not a waiting set of ours: skip the name rather than stop.
        redis.call('SREM', K .. ':names', name)
      else
        for j = 1, #r, 2 do
          candidates[#candidates + 1] = {tonumber(r[j + 1]), r[j], name}
        end
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
    local record = redis.call('HGET', K .. ':jobs', id)
    if not record then
      quarantine(id, 'its record is missing', 'w', now, p)
    else
      local st = state_of(id, 'a', 's', 'd')
      redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'sc', num(score), 'x', 'a', 't', num(now))
      redis.call('SADD', active, id)
      st = st or {}
      jobs[#jobs + 1] = {id, record, st[1] or '0', st[2] or '0', st[3] or ''}
      delta('w', p, -1)
      delta('a', p, 1)
    end
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
return {lost, paused, next_due, now, jobs, held}
