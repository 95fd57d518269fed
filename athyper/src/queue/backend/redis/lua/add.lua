-- Adds jobs. ARGV: count, then per job either `p` for a plain job (a
-- generated id, no delay, unique key or flow) and its name, priority,
-- record head (up to the enqueued time) and payload, or `f` and its id
-- ('' = generated), name, priority, delay ms, record head, payload,
-- unique key ('' = none), its time to live ms, 'd' to debounce, then for a
-- flow the parent's queue, id and the child's index ('' '' 0: none), the
-- number of children (0: none), what a child's failure does, the
-- children as JSON.
-- Returns {id, outcome} per job: 1 new, 0 a duplicate (the id or the
-- unique key exists), 2 a debounced replacement of the waiting job.
local now = now_ms()
local n = tonumber(ARGV[1])
-- Where each job's arguments start (after its shape, `p` or `f`).
local at = {}
-- Every waiting set written below is checked before the first write, and
-- the delayed set and the flows' parents where a job goes there.
local checked = {}
local delayed, parents = false, false
local c = 2
for i = 1, n do
  local b = c + 1
  at[i] = b
  local name = ARGV[b]
  if ARGV[c] == 'p' then
    c = b + 4
  else
    c = b + 15
    if tonumber(ARGV[b + 3]) > 0 or ARGV[b + 6] ~= '' then
      -- A delayed job, or one that may replace a delayed job.
      delayed = true
    end
    if ARGV[b + 12] ~= '0' then
      parents = true
    end
    name = ARGV[b + 1]
  end
  if not checked[name] then
    checked[name] = true
    local key = K .. ':w:' .. name
    local t = redis.call('TYPE', key).ok
    if t ~= 'none' and t ~= 'zset' then
      error({err = 'DAMAGED key ' .. key .. ' holds a ' .. t .. ', not the zset athyper keeps there; rename or delete it'})
    end
  end
end
expect(':jobs', ':names', ':counts')
if delayed then
  expect(':delayed')
end
if parents then
  expect(':parents')
end
-- The sequence numbers this script may use, taken at once: each job takes
-- at most one. Those a duplicate leaves unused are skipped, which costs
-- nothing: ids and the order of waiting jobs need them unique and rising,
-- not dense. As the first write, it also types the key.
local seq_next, seq_last = 1, 0
if n > 0 then
  seq_last = read(':seq', 'INCRBY', n)
  seq_next = seq_last - n + 1
end
next_seq = function()
  local seq = seq_next
  seq_next = seq_next + 1
  return seq
end

-- Gives the waiting or delayed job `id` a new payload and delay; it joins
-- the back of its priority. False if it is not waiting or delayed.
local function replace(id, name, p, delay, head, payload)
  local record = redis.call('HGET', K .. ':jobs', id)
  if not record then
    return false
  end
  local st = state_of(id, 'x', 'n', 'p')
  local state = (st and st[1]) or 'w'
  local old_p, old_name = header(record)
  old_p = (st and tonumber(st[3])) or old_p
  old_name = (st and st[2]) or old_name
  if state == 'w' then
    if failed(redis.pcall('ZREM', K .. ':w:' .. old_name, id)) then
      return false
    end
    refresh_head(old_name)
  elseif state == 'd' then
    redis.call('ZREM', K .. ':delayed', id)
  else
    return false
  end
  delta(state, old_p, -1)
  redis.call('HSET', K .. ':jobs', id, head .. num(now) .. '|' .. payload)
  local jk = state_key(id, st)
  if delay > 0 then
    local due = num(now + delay)
    redis.call('ZADD', K .. ':delayed', due, id)
    redis.call('HSET', jk, 'n', name, 'p', p, 'x', 'd', 'd', due)
    delta('d', p, 1)
  else
    local score = p * PRIO + next_seq()
    to_waiting(id, name, score)
    redis.call('HSET', jk, 'n', name, 'p', p, 'x', 'w', 'sc', num(score), 'd', num(now))
    delta('w', p, 1)
  end
  return true
end

-- Plain jobs (a generated id, no unique key, no flow, no delay) are
-- written together: their records in one HSET, each name's jobs in one
-- ZADD. Any other job writes them first, so that jobs are made in order.
local now_s = num(now)
local records, waiting, lowest = {}, {}, {}
local function flush_plain()
  in_chunks('HSET', K .. ':jobs', records)
  for name, list in pairs(waiting) do
    local key = K .. ':w:' .. name
    in_chunks('ZADD', key, list)
    redis.call('ZADD', K .. ':names', 'LT', num(lowest[name]), name)
  end
  records, waiting, lowest = {}, {}, {}
end

local out = {}
for i = 1, n do
  local b = at[i]
  local id, outcome
  if ARGV[b - 1] == 'p' then
    local name, p_s = ARGV[b], ARGV[b + 1]
    local p = tonumber(p_s)
    local seq = next_seq()
    id, outcome = num(seq), 1
    records[#records + 1] = id
    records[#records + 1] = ARGV[b + 2] .. now_s .. '|' .. ARGV[b + 3]
    local score = p * PRIO + seq
    local list = waiting[name] or {}
    waiting[name] = list
    list[#list + 1] = num(score)
    list[#list + 1] = id
    if not lowest[name] or score < lowest[name] then
      lowest[name] = score
    end
    delta('w', p, 1)
    emit('a', id, name)
  else
    local name, p, delay = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
    local head, payload, ukey, ttl, mode = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
    local holder = nil
    local uk = nil
    local flow = nil
    id = ARGV[b]
    if ARGV[b + 9] ~= '' or ARGV[b + 12] ~= '0' then
      flow = {ARGV[b + 9], ARGV[b + 10], ARGV[b + 11], ARGV[b + 12], ARGV[b + 13], ARGV[b + 14]}
    end
    flush_plain()
    if ukey ~= '' then
      uk = K .. ':u:' .. ukey
      local got = redis.pcall('GET', uk)
      if not failed(got) and got then
        holder = got
      end
    end
    if holder then
      if mode == 'd' and replace(holder, name, p, delay, head, payload) then
        redis.call('SET', uk, holder, 'PX', ttl)
        emit('a', holder, name)
        id, outcome = holder, 2
      else
        id, outcome = holder, 0
      end
    else
      id, outcome = new_job(id, name, p, delay, head, payload, now, flow)
      if uk and outcome == 1 then
        redis.call('SET', uk, id, 'PX', ttl)
      end
    end
  end
  out[#out + 1] = {id, outcome}
end
flush_plain()
flush_counts()
if n > 0 then
  wake()
end
return out
