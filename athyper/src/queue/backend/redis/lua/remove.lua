-- Removes a job that is not running. ARGV: id.
-- Returns {1 removed, 0 no such job, -1 running; flow entries left in
-- K:out and K:down}. A flow's child removed before it ended reports so to
-- its parent; a parent removed while waiting for its children has them
-- cancelled.
expect(':jobs', ':names', ':delayed', ':completed', ':failed', ':counts', ':parents')
local id = ARGV[1]
local record = redis.call('HGET', K .. ':jobs', id)
local st = state_of(id, 'x', 'n', 'p')
local state = (st and st[1]) or 'w'
if not record then
  -- No record, but the id may still be listed somewhere.
  local listed = 0
  for _, set in ipairs({':delayed', ':completed', ':failed', ':cancelled'}) do
    listed = listed + redis.call('ZREM', K .. set, id)
  end
  if listed == 0 then
    return {0, 0}
  end
  redis.call('DEL', K .. ':j:' .. id, K .. ':e:' .. id)
  delta(state, st and tonumber(st[3]), -1)
  emit('m', id, (st and st[2]) or '?')
  flush_counts()
  return {1, 0}
end
if state == 'a' then
  return {-1, 0}
end
if state == 'w' or state == 'd' or state == 'p' then
  report_up(id, 'm')
end
if state == 'p' then
  cascade(id)
end
local hp, hn = header(record)
local p, name = (st and tonumber(st[3])) or hp, (st and st[2]) or hn
unlist(id, state, name)
drop(id, state, p)
emit('m', id, name or '?')
flush_counts()
return {1, reports}
