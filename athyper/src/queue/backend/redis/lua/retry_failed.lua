-- Moves failed jobs back to waiting with fresh attempts. ARGV: 'all' and
-- how many failed jobs to pass over (up to 1,000 a call), or 'ids'
-- followed by ids. Returns {how many moved, how many stayed}.
expect(':seq', ':jobs', ':names', ':failed', ':counts')
local ids
if ARGV[1] == 'all' then
  local skip = tonumber(ARGV[2])
  ids = redis.call('ZRANGE', K .. ':failed', skip, skip + 999)
else
  ids = {}
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local moved = 0
for _, id in ipairs(ids) do
  local record = redis.call('HGET', K .. ':jobs', id)
  local st = state_of(id, 'n', 'p')
  local hp, hn = header(record)
  local name, p = (st and st[1]) or hn, (st and tonumber(st[2])) or hp
  -- A failed job with no readable record stays failed, to be inspected.
  if record and name and p and redis.call('ZSCORE', K .. ':failed', id) then
    local score = p * PRIO + redis.call('INCR', K .. ':seq')
    if to_waiting(id, name, score) then
      redis.call('ZREM', K .. ':failed', id)
      local jk = state_key(id, st)
      redis.call('HSET', jk, 'n', name, 'p', p, 'x', 'w', 'sc', num(score), 'a', 0, 's', 0)
      redis.call('HDEL', jk, 'f', 'o')
      delta('f', p, -1)
      delta('w', p, 1)
      emit('r', id, name)
      moved = moved + 1
    end
  end
end
flush_counts()
if moved > 0 then
  wake()
end
return {moved, #ids - moved}
