-- Removes a schedule; the jobs it made stay. ARGV: id. Returns 1 if there
-- was one.
expect(':sched')
local removed = redis.call('ZREM', K .. ':sched', ARGV[1])
return removed + redis.call('DEL', K .. ':s:' .. ARGV[1]) > 0 and 1 or 0
