-- Per-minute counts of jobs settled for good. Returns {now ms, fields of K:tput}.
expect(':tput')
return {now_ms(), redis.call('HGETALL', K .. ':tput')}
