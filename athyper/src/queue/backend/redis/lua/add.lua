-- Adds jobs. ARGV: count, then per job: id ('' = generated), name,
-- priority, delay ms, record head (up to the enqueued time), payload,
-- unique key ('' = none), its time to live ms, 'd' to debounce, then for a
-- flow the parent's queue, id and the child's index ('' '' 0: none), the
-- number of children (0: none), what a child's failure does, the
-- children as JSON.
-- Returns {id, outcome} per job: 1 new, 0 a duplicate (the id or the
-- unique key exists), 2 a debounced replacement of the waiting job.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':delayed', ':counts', ':parents')
local n = tonumber(ARGV[1])
local W = 15
-- Every waiting set written below is checked before the first write.
local checked = {}
for i = 0, n - 1 do
  local name = ARGV[2 + i * W + 1]
  if not checked[name] then
    checked[name] = true
    local key = K .. ':w:' .. name
    local t = redis.call('TYPE', key).ok
    if t ~= 'none' and t ~= 'zset' then
      error({err = 'DAMAGED key ' .. key .. ' holds a ' .. t .. ', not the zset athyper keeps there; rename or delete it'})
    end
  end
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
    local score = p * PRIO + redis.call('INCR', K .. ':seq')
    to_waiting(id, name, score)
    redis.call('HSET', jk, 'n', name, 'p', p, 'x', 'w', 'sc', num(score), 'd', num(now))
    delta('w', p, 1)
  end
  return true
end

local out = {}
for i = 0, n - 1 do
  local b = 2 + i * W
  local id, name, p, delay = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local head, payload, ukey, ttl, mode = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local outcome
  local holder = nil
  local uk = nil
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
    local flow = nil
    if ARGV[b + 9] ~= '' or ARGV[b + 12] ~= '0' then
      flow = {ARGV[b + 9], ARGV[b + 10], ARGV[b + 11], ARGV[b + 12], ARGV[b + 13], ARGV[b + 14]}
    end
    id, outcome = new_job(id, name, p, delay, head, payload, now, flow)
    if uk and outcome == 1 then
      redis.call('SET', uk, id, 'PX', ttl)
    end
  end
  out[#out + 1] = {id, outcome}
end
flush_counts()
if n > 0 then
  wake()
end
return out
