-- Moves failed jobs back to waiting with fresh attempts. ARGV: 'all' (up
-- to 1,000 a call) or 'ids' followed by ids. Returns how many moved.
local ids
if ARGV[1] == 'all' then
  ids = redis.call('ZRANGE', K .. ':failed', 0, 999)
else
  ids = {}
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', K .. ':failed', id) == 1 then
    local jk = K .. ':j:' .. id
    local st = redis.call('HMGET', jk, 'n', 'p')
    local p = tonumber(st[2])
    local score = p * PRIO + redis.call('INCR', K .. ':seq')
    to_waiting(id, st[1], score)
    redis.call('HSET', jk, 'x', 'w', 'sc', num(score), 'a', 0, 's', 0)
    redis.call('HDEL', jk, 'f')
    delta('f', p, -1)
    delta('w', p, 1)
    moved = moved + 1
  end
end
flush_counts()
if moved > 0 then
  wake()
end
return moved
