-- Records a job's progress. ARGV: id, progress JSON. Returns 0 if no such job.
if redis.call('TYPE', K .. ':jobs').ok ~= 'hash' or redis.call('HEXISTS', K .. ':jobs', ARGV[1]) == 0 then
  return 0
end
if failed(redis.pcall('HSET', K .. ':j:' .. ARGV[1], 'g', ARGV[2])) then
  return 0
end
return 1
