-- Creates or replaces a schedule. ARGV: id, head (record up to the enqueued
-- time), payload, spec, missed policy, grace ms, ticks (comma-separated
-- ms). One with the same head, payload, spec and policy keeps its ticks.
-- Returns 1 if anything changed, else 0.
expect(':sched')
local id = ARGV[1]
local sk = K .. ':s:' .. id
local t = redis.call('TYPE', sk).ok
if t == 'hash' then
  local old = redis.call('HMGET', sk, 'head', 'pl', 'spec', 'miss')
  if old[1] == ARGV[2] and old[2] == ARGV[3] and old[3] == ARGV[4] and old[4] == ARGV[5] then
    return 0
  end
end
if t ~= 'none' then
  redis.call('DEL', sk)
end
local p, name = header(ARGV[2])
redis.call('HSET', sk, 'n', name or '?', 'head', ARGV[2], 'pl', ARGV[3], 'spec', ARGV[4],
  'miss', ARGV[5], 'grace', ARGV[6], 'ticks', ARGV[7], 'last', '')
local first = string.match(ARGV[7], '^(%d+)')
redis.call('ZADD', K .. ':sched', first or num(now_ms()), id)
wake()
return 1
