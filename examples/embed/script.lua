-- Run by examples/embed/host: fetch BASE_URL/echo?i=1..N concurrently on the
-- host's loop and print the answers. Tasks are started with aws.spawn (the
-- host, not aws.run, drives the loop).
local base, n = ...
n = tonumber(n) or 10
local aws = require "aio_aws"
local http = require "aio_aws.http"
local core = require "aio_aws.core"

HOST_EXIT = 1
aws.spawn(function()
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      local res, err = http.request({ url = base .. "/echo?i=" .. i })
      if not res then error(tostring(err)) end
      return res.body
    end
  end
  local results, errs = aws.gather(table.unpack(fns))
  if errs then
    for i, e in pairs(errs) do print("error " .. i .. ": " .. tostring(e)) end
    return
  end
  print("answers: " .. table.concat(results, ","))
  print("host_loop: " .. tostring(core.stats().host_loop))
  HOST_EXIT = 0
end)
print("script: tasks spawned, returning to the host")
