-- Pauses (ARGV[1] = 1) or resumes (0) the queue.
if ARGV[1] == '1' then
  redis.call('SET', K .. ':paused', '1')
else
  redis.call('DEL', K .. ':paused')
  wake()
end
return 1
