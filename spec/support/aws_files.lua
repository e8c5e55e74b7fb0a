--- Shared config/credentials files for specs: temp dirs holding them and
-- config.load pointed at them with an injected environment.
local config = require "aio_aws.config"
local proc = require "support.proc"

local M = {}

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A temp directory with `files` (name -> text) written into it; removed
-- when the test ends. `on_end` is the spec's busted `finally` (a global of
-- spec files only, not of required modules).
function M.with_files(files, prefix, on_end)
  local dir = proc.tmpdir(prefix or "aws-files")
  on_end(function() proc.rmdir(dir) end)
  for name, text in pairs(files or {}) do M.write(dir .. "/" .. name, text) end
  return dir
end

--- config.load with both files in `dir` (missing ones allowed) and an
-- environment table that holds nothing else unless given.
function M.load(dir, env, opts)
  env = env or {}
  env.AWS_CONFIG_FILE = env.AWS_CONFIG_FILE or (dir .. "/config")
  env.AWS_SHARED_CREDENTIALS_FILE = env.AWS_SHARED_CREDENTIALS_FILE or (dir .. "/credentials")
  local o = { env = env }
  for k, v in pairs(opts or {}) do o[k] = v end
  return config.load(o)
end

return M
