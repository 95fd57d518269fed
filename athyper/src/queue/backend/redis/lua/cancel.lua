-- Cancels a job. ARGV: id. Returns {outcome, state}: 1 cancelled now (it
-- was waiting or delayed), 2 requested (it runs: its worker is told on
-- K:cx:<worker> and the job ends cancelled when its attempt ends), 3 it
-- had ended (in that state), 0 no such job.
expect(':jobs', ':names', ':delayed', ':cancelled', ':counts')
local now = now_ms()
local id = ARGV[1]
local record = redis.call('HGET', K .. ':jobs', id)
if not record then
  return {0, ''}
end
local st = state_of(id, 'x', 'n', 'p', 'w', 'cx')
local state = (st and st[1]) or 'w'
local hp, hn = header(record)
local name, p = (st and st[2]) or hn, (st and tonumber(st[3])) or hp
if not name or not p then
  return {3, state}
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
  return {2, 'a'}
end
if state ~= 'w' and state ~= 'd' then
  return {3, state}
end
unlist(id, state, name)
end_cancelled(id, st, name, p, state, now)
flush_counts()
return {1, 'k'}
