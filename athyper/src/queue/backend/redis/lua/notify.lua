-- Records how a flow's child ended with its parent, a job of this queue,
-- and moves the parent on when that is what it waited for. Each child is
-- recorded once, however often its report is sent.
-- ARGV: the parent's id, the child's index, how it ended (c, c|<result>,
-- f|<error>, k, m), the child's id.
-- Returns {outcome, flow entries left in K:out and K:down}: 0 no such
-- parent, 1 known already, 2 recorded, 3 the parent failed, 4 the parent
-- is waiting now.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':parents', ':failed', ':counts')
local id, index, outcome, child = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local record = redis.call('HGET', K .. ':jobs', id)
if not record then
  return {0, 0}
end
local chk = client_hash(K .. ':ch:' .. id)
if redis.call('HSETNX', chk, index, outcome) == 0 then
  return {1, 0}
end
local st = state_of(id, 'x', 'n', 'p', 'pc', 'pf', 'a')
if not st or st[1] ~= 'p' then
  return {2, 0}
end
local hp, hn = header(record)
local name, p = st[2] or hn, tonumber(st[3]) or hp
if not name or not p then
  redis.call('ZREM', K .. ':parents', id)
  quarantine(id, 'its record does not read', 'p', now, p)
  flush_counts()
  return {3, reports}
end
local code = string.sub(outcome, 1, 1)
local bad = code ~= 'c'
local policy = st[5] or 'f'
if bad and policy == 'f' then
  local why
  if code == 'f' then
    why = 'child `' .. child .. '` failed: ' .. string.sub(outcome, 3)
  elseif code == 'k' then
    why = 'child `' .. child .. '` was cancelled'
  else
    why = 'child `' .. child .. '` was removed'
  end
  local attempt = (tonumber(st[6]) or 0) + 1
  redis.call('ZREM', K .. ':parents', id)
  push_error(id, attempt .. '|' .. num(now) .. '|' .. why)
  emit('f', id, name, attempt, why, 0)
  redis.call('HSET', K .. ':j:' .. id, 'x', 'f', 'f', num(now))
  finish(':failed', id, now)
  delta('p', p, -1)
  delta('f', p, 1)
  settled.f = settled.f + 1
  report_up(id, 'f|' .. why)
  cascade(id)
  flush_counts()
  return {3, reports}
end
if (bad and policy == 'c') or redis.call('HLEN', chk) >= (tonumber(st[4]) or 0) then
  redis.call('ZREM', K .. ':parents', id)
  local score = p * PRIO + redis.call('INCR', K .. ':seq')
  if to_waiting(id, name, score) then
    redis.call('HSET', K .. ':j:' .. id, 'x', 'w', 'sc', num(score))
    delta('p', p, -1)
    delta('w', p, 1)
    wake()
  else
    quarantine(id, 'the waiting set of `' .. name .. '` is damaged', 'p', now, p)
  end
  flush_counts()
  return {4, reports}
end
return {2, 0}
