-- Records a job's progress. ARGV: id, progress JSON. Returns 0 if no such job.
if redis.call('TYPE', K .. ':jobs').ok ~= 'hash' or redis.call('HEXISTS', K .. ':jobs', ARGV[1]) == 0 then
  return 0
end
if failed(redis.pcall('HSET', K .. ':j:' .. ARGV[1], 'g', ARGV[2])) then
  return 0
end
local n = redis.pcall('HGET', K .. ':j:' .. ARGV[1], 'n')
if failed(n) or not n then
  local _, hn = header(redis.call('HGET', K .. ':jobs', ARGV[1]))
  n = hn or '?'
end
emit('p', ARGV[1], n, ARGV[2])
flush_events()
return 1
