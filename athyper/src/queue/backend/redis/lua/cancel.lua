-- Cancels a job. ARGV: id. Returns {outcome, state, flow entries left in
-- K:out and K:down}: 1 cancelled now (it was waiting, delayed or waiting
-- for its children, which are to be cancelled too), 2 requested (it runs:
-- its worker is told on K:cx:<worker> and the job ends cancelled when its
-- attempt ends), 3 it had ended (in that state), 0 no such job.
expect(':jobs', ':names', ':delayed', ':cancelled', ':counts', ':parents')
local now = now_ms()
local id = ARGV[1]
local record = redis.call('HGET', K .. ':jobs', id)
if not record then
  return {0, '', 0}
end
local st = state_of(id, 'x', 'n', 'p', 'w', 'cx')
local state = (st and st[1]) or 'w'
local hp, hn = header(record)
local name, p = (st and st[2]) or hn, (st and tonumber(st[3])) or hp
if not name or not p then
  return {3, state, 0}
end
if state == 'a' then
  if st[5] ~= '1' then
    redis.call('HSET', K .. ':j:' .. id, 'cx', 1)
    if st[4] then
      local told = K .. ':cx:' .. st[4]
      if redis.call('TYPE', told).ok ~= 'list' then
        redis.call('DEL', told)
      end
      redis.call('RPUSH', told, id)
      -- A worker that died never reads it; recovery ends the job instead.
      redis.call('PEXPIRE', told, 600000)
    end
  end
  return {2, 'a', 0}
end
if state ~= 'w' and state ~= 'd' and state ~= 'p' then
  return {3, state, 0}
end
unlist(id, state, name)
if state == 'p' then
  cascade(id)
end
end_cancelled(id, st, name, p, state, now)
flush_counts()
return {1, 'k', reports}
