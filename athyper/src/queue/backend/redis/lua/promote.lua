-- Makes a delayed job due now: it joins the back of its priority.
-- ARGV: id. Returns 1 if promoted, 0 if the job is not delayed.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':delayed', ':failed', ':counts')
local id = ARGV[1]
if not redis.call('ZSCORE', K .. ':delayed', id) then
  return 0
end
redis.call('ZREM', K .. ':delayed', id)
local st = state_of(id, 'n', 'p')
local record = redis.call('HGET', K .. ':jobs', id)
local hp, hn = header(record)
local name, p = (st and st[1]) or hn, (st and tonumber(st[2])) or hp
if not record or not name or not p then
  quarantine(id, record and 'its record does not read' or 'its record is missing', 'd', now, p)
else
  local score = p * PRIO + redis.call('INCR', K .. ':seq')
  if to_waiting(id, name, score) then
    redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'x', 'w', 'sc', num(score), 'd', num(now))
    delta('d', p, -1)
    delta('w', p, 1)
  else
    quarantine(id, 'the waiting set of `' .. name .. '` is damaged', 'd', now, p)
  end
end
flush_counts()
wake()
return 1
