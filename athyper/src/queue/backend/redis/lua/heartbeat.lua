-- Renews a worker's lease. ARGV: worker, lease ms.
redis.call('ZADD', K .. ':workers', num(now_ms() + tonumber(ARGV[2])), ARGV[1])
return 1
