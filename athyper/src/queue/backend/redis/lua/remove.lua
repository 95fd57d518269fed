-- Removes a job that is not running. ARGV: id.
-- Returns 1 removed, 0 no such job, -1 running.
local id = ARGV[1]
local record = redis.call('HGET', K .. ':jobs', id)
if not record then
  return 0
end
local jk = K .. ':j:' .. id
local st = redis.call('HMGET', jk, 'x', 'n', 'p')
local state = st[1] or 'w'
if state == 'a' then
  return -1
end
local p, name = tonumber(st[3]), st[2]
if not p or not name then
  p, name = header(record)
end
if state == 'w' then
  local key = K .. ':w:' .. name
  redis.call('ZREM', key, id)
  if redis.call('ZCARD', key) == 0 then
    redis.call('SREM', K .. ':names', name)
  end
elseif state == 'd' then
  redis.call('ZREM', K .. ':delayed', id)
elseif state == 'c' then
  redis.call('ZREM', K .. ':completed', id)
else
  redis.call('ZREM', K .. ':failed', id)
end
drop(id, state, p)
flush_counts()
return 1
