--- Loopback TCP servers that misbehave on purpose (spec/support/blackhole.py):
-- the error paths nginx cannot produce.
--
--   local blackhole = require "support.blackhole"
--   local bh = blackhole.start("silent")     -- or blackhole.start("reset", { port = 8080 })
--   -- bh.port, bh:url("/x") == "http://127.0.0.1:<port>/x", bh.pid, bh.mode
--   bh:stop()                                -- in teardown()/finally(), see support/proc.lua
--
-- Modes:
--   noaccept  connects hang (SYN dropped): connect timeout
--   silent    accepts and reads, never answers: total / first-byte timeout
--   reset     accepts, reads the request, closes with RST: connection reset
--   garbage   accepts, reads the request, answers non-HTTP bytes and closes
local proc = require "support.proc"

local M = {}

local MODES = { noaccept = true, silent = true, reset = true, garbage = true }
local PYTHON = "/usr/bin/python3"

-- blackhole.py sits next to this file.
local SCRIPT = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/blackhole.py"

local Blackhole = {}
Blackhole.__index = Blackhole

function Blackhole:url(path)
  return proc.url("http://127.0.0.1:" .. self.port, path)
end

--- Stop the server and remove its temp dir. Idempotent.
function Blackhole:stop()
  return self.proc:stop()
end

--- Start a blackhole server. opts.port (default 0: any free port), opts.timeout
-- (seconds to wait for it to be ready, default 10). Returns the server, or
-- raises with the tail of its output when it does not come up.
function M.start(mode, opts)
  if not MODES[mode] then error("blackhole.start: unknown mode " .. tostring(mode), 2) end
  opts = opts or {}
  local p = proc.start{ name = "blackhole " .. mode,
    argv = { PYTHON, SCRIPT, mode, tostring(opts.port or 0) } }
  -- The script prints the port once it is ready (for noaccept: once the
  -- accept queue is full, which a connect probe could not tell).
  local port, err = p:wait_log("^(%d+)\n", opts.timeout)
  if not port then
    p:stop()
    error(err, 2)
  end
  return setmetatable({ mode = mode, port = math.tointeger(tonumber(port)), pid = p.pid, proc = p },
    Blackhole)
end

return M
