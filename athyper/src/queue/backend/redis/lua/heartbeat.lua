-- Renews a worker's lease if it still has one. ARGV: worker, lease ms.
-- Returns 1 if renewed, 0 if the lease is gone (it is not made again).
local now = now_ms()
expect(':workers', ':seen')
local lease = tonumber(ARGV[2])
observe(now, lease, redis.call('GET', K .. ':seen'))
if not redis.call('ZSCORE', K .. ':workers', ARGV[1]) then
  return 0
end
redis.call('ZADD', K .. ':workers', num(now + lease), ARGV[1])
return 1
