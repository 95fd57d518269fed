-- Removes finished jobs older than a cutoff. ARGV: state (c|f), age ms,
-- limit. Returns how many.
local now = now_ms()
expect(':jobs', ':completed', ':failed', ':cancelled', ':counts')
local state = ARGV[1]
local key = K .. ((state == 'c' and ':completed') or (state == 'k' and ':cancelled') or ':failed')
local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. num(now - tonumber(ARGV[2])), 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(old) do
  redis.call('ZREM', key, id)
  drop(id, state)
end
flush_counts()
return #old
