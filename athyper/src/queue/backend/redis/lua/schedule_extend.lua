-- Adds ticks to a schedule whose spec is still the one given. ARGV: id,
-- spec, ticks (comma-separated ms, ascending). Ticks not after its last
-- one are passed over, so concurrent refills add each tick once.
expect(':sched')
local sk = K .. ':s:' .. ARGV[1]
if redis.call('TYPE', sk).ok ~= 'hash' or redis.call('HGET', sk, 'spec') ~= ARGV[2] then
  return 0
end
local st = redis.call('HMGET', sk, 'ticks', 'last')
local ticks = {}
local after = tonumber(st[2]) or 0
for t in string.gmatch(st[1] or '', '[^,]+') do
  ticks[#ticks + 1] = t
  after = math.max(after, tonumber(t))
end
local added = 0
for t in string.gmatch(ARGV[3], '[^,]+') do
  if tonumber(t) > after then
    ticks[#ticks + 1] = t
    after = tonumber(t)
    added = added + 1
  end
end
redis.call('HSET', sk, 'ticks', table.concat(ticks, ','))
if ticks[1] then
  redis.call('ZADD', K .. ':sched', ticks[1], ARGV[1])
end
if added > 0 then
  wake()
end
return added
