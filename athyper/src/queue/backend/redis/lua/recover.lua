-- Puts back the jobs of workers whose lease expired; a job found stalled
-- more than `max_stalled` times fails. The worker running the check is
-- alive: its lease is renewed, never taken.
-- ARGV: max stalled, failure message, worker, lease ms.
-- Returns {requeued ids, failed ids, flow reports left in K:out}.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':workers', ':seen', ':failed', ':counts', ':winfo')
local max_stalled = tonumber(ARGV[1])
local me, lease = ARGV[3], tonumber(ARGV[4])
observe(now, lease, redis.call('GET', K .. ':seen'))
if redis.call('ZSCORE', K .. ':workers', me) then
  redis.call('ZADD', K .. ':workers', num(now + lease), me)
end
local dead = redis.call('ZRANGEBYSCORE', K .. ':workers', '-inf', '(' .. num(now))
local requeued, failed_ids = {}, {}
for _, worker in ipairs(dead) do
  if worker ~= me then
    for _, id in ipairs(held_by(worker)) do
      local st = state_of(id, 's', 'p', 'a', 'n', 'cx')
      local sname = (st and st[4]) or select(2, header(redis.call('HGET', K .. ':jobs', id))) or '?'
      local stalled = ((st and tonumber(st[1])) or 0) + 1
      if st and st[5] == '1' then
        -- Cancelled, then its worker died: put_back ends it cancelled.
        put_back(id, 'a', now)
      elseif stalled > max_stalled then
        local p = (st and tonumber(st[2])) or header(redis.call('HGET', K .. ':jobs', id))
        if p and redis.call('HEXISTS', K .. ':jobs', id) == 1 then
          push_error(id, ((st and tonumber(st[3])) or 0) + 1 .. '|' .. num(now) .. '|' .. ARGV[2])
          emit('x', id, sname, 0)
          redis.call('HSET', state_key(id, st), 's', stalled, 'p', p, 'x', 'f', 'f', num(now))
          finish(':failed', id, now)
          delta('a', p, -1)
          delta('f', p, 1)
          settled.f = settled.f + 1
          report_up(id, 'f|' .. ARGV[2])
        else
          quarantine(id, 'its record is missing', 'a', now, p)
        end
        failed_ids[#failed_ids + 1] = id
      else
        if st then
          redis.call('HSET', K .. ':j:' .. id, 's', stalled)
        end
        put_back(id, 'a', now)
        emit('x', id, sname, 1)
        requeued[#requeued + 1] = id
      end
    end
    redis.call('DEL', K .. ':active:' .. worker)
    redis.call('ZREM', K .. ':workers', worker)
    redis.call('HDEL', K .. ':winfo', worker)
  end
end
flush_counts()
if #requeued > 0 then
  wake()
end
return {requeued, failed_ids, reports}
