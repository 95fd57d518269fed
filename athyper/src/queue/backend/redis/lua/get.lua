-- One job. ARGV: id. Returns {id, record, state, fields, errors} or nil.
expect(':jobs')
return info(ARGV[1])
