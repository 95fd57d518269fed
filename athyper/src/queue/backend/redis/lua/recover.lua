-- Puts back the jobs of workers whose lease expired; a job found stalled
-- more than `max_stalled` times fails. ARGV: max stalled, failure message.
-- Returns {requeued ids, failed ids}.
local now = now_ms()
local max_stalled = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', K .. ':workers', '-inf', '(' .. num(now))
local requeued, failed = {}, {}
for _, worker in ipairs(dead) do
  for _, id in ipairs(held_by(worker)) do
    local jk = K .. ':j:' .. id
    local stalled = redis.call('HINCRBY', jk, 's', 1)
    if stalled > max_stalled then
      local st = redis.call('HMGET', jk, 'p', 'a')
      local p = tonumber(st[1])
      redis.call('RPUSH', K .. ':e:' .. id, ((tonumber(st[2]) or 0) + 1) .. '|' .. num(now) .. '|' .. ARGV[2])
      redis.call('HSET', jk, 'x', 'f', 'f', num(now))
      finish(':failed', id, now)
      delta('a', p, -1)
      delta('f', p, 1)
      failed[#failed + 1] = id
    else
      put_back(id)
      requeued[#requeued + 1] = id
    end
  end
  redis.call('DEL', K .. ':active:' .. worker)
  redis.call('ZREM', K .. ':workers', worker)
end
flush_counts()
if #requeued > 0 then
  wake()
end
return {requeued, failed}
