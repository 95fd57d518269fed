-- Counts per state and priority, and whether the queue is paused.
expect(':counts')
return {redis.call('HGETALL', K .. ':counts'), redis.call('EXISTS', K .. ':paused')}
