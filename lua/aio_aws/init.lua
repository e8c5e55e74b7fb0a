--- aio_aws: an asynchronous AWS client for Lua 5.4.
--
--     local aws = require "aio_aws"
--     aws.run(function()
--       local results, errs = aws.gather(f1, f2, f3)
--     end)
--
-- Conventions (documented once, followed everywhere):
-- * Misuse (wrong argument types, calling a waiting function outside a
--   task) raises an error.
-- * Runtime failures (network, AWS, files) return `nil, err`; `err` is a
--   table with `code`, `message` and, when known, `status`, `request_id`,
--   `retryable` (see aio_aws.errors); `tostring(err)` reads well.
-- * Every wait accepts a timeout.
-- Nothing here does I/O or creates the loop at `require` time.
local async = require "aio_aws.async"

local M = {
  _VERSION = "aio_aws scm",
  run = async.run,
  spawn = async.spawn,
  gather = async.gather,
  sleep = async.sleep,
  timeout = async.timeout,
  current = async.current,
  Semaphore = async.Semaphore,
  Queue = async.Queue,
  Event = async.Event,
  errors = require "aio_aws.errors",
}

--- A session (config, credentials) that makes clients; see aio_aws.session.
-- Loaded on first use, so `require "aio_aws"` stays light.
function M.session(opts)
  return require("aio_aws.session").new(opts)
end

return M
