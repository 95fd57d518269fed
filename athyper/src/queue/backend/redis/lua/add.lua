-- Adds jobs. ARGV: count, then per job: id ('' = generated), name,
-- priority, delay ms, record head (up to the enqueued time), payload.
-- Returns {id, created (1/0)} per job.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':delayed', ':counts')
local n = tonumber(ARGV[1])
-- Every waiting set written below is checked before the first write.
local checked = {}
for i = 0, n - 1 do
  local name = ARGV[2 + i * 6 + 1]
  if not checked[name] then
    checked[name] = true
    local key = K .. ':w:' .. name
    local t = redis.call('TYPE', key).ok
    if t ~= 'none' and t ~= 'zset' then
      error({err = 'DAMAGED key ' .. key .. ' holds a ' .. t .. ', not the zset athyper keeps there; rename or delete it'})
    end
  end
end
local out = {}
for i = 0, n - 1 do
  local b = 2 + i * 6
  local id, name, p, delay = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local created = 1
  if id ~= '' and redis.call('HEXISTS', K .. ':jobs', id) == 1 then
    created = 0
  else
    local seq = redis.call('INCR', K .. ':seq')
    if id == '' then
      id = num(seq)
    else
      -- A caller's id may name a job that was removed: its old keys go.
      redis.call('DEL', K .. ':j:' .. id, K .. ':e:' .. id)
    end
    redis.call('HSET', K .. ':jobs', id, ARGV[b + 4] .. num(now) .. '|' .. ARGV[b + 5])
    if delay > 0 then
      local due = num(now + delay)
      redis.call('ZADD', K .. ':delayed', due, id)
      redis.call('HSET', K .. ':j:' .. id, 'n', name, 'p', p, 'x', 'd', 'd', due)
      delta('d', p, 1)
    else
      to_waiting(id, name, p * PRIO + seq)
      delta('w', p, 1)
    end
  end
  out[#out + 1] = {id, created}
end
flush_counts()
if n > 0 then
  wake()
end
return out
