-- One job. ARGV: id. Returns {id, record, state, fields, errors} or nil.
return info(ARGV[1])
