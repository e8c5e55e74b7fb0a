--- `run(fn)` for specs: aws.run, but a raise inside fn (a failed assertion)
-- fails the spec with the original error, while `nil, err` results (the
-- runtime failures specs check) are returned as they are.
local aws = require "aio_aws"

return function(fn)
  local res = table.pack(aws.run(fn))
  if res[1] == nil and type(res[2]) == "table" and res[2].traceback then
    error(res[2].value or tostring(res[2]), 2)
  end
  return table.unpack(res, 1, res.n)
end
