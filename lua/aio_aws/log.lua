--- A small leveled logger shared by the aio_aws modules.
--
--     local log = require("aio_aws.log").get("aio_aws.client")
--     if log:enabled("DEBUG") then log:debug("GET %s -> %d", url, status) end
--     log:warning("credential refresh failed: %s", err)
--
-- Levels: DEBUG < INFO < WARNING < ERROR. The threshold comes from
-- `LOG_LEVEL` (read when the first record is checked, not at `require`),
-- default WARNING, or `set_level`. A record is one line:
--
--     2026-11-21T19:59:38.123Z WARNING aio_aws.client: message
--
-- (UTC, ISO 8601 with milliseconds), written to stderr unless a host
-- installs its own sink: `set_sink(function(record) ... end)` receives
-- `{time = epoch seconds, level = "WARNING", module = "aio_aws.client",
-- message = "...", line = "<the formatted line>"}`. A sink that raises
-- does not break the caller: the failure goes to stderr once.
--
-- Callers pass only what is safe to show: `redact_url` and
-- `redact_headers` strip the signature, credential scope, security token
-- and Authorization values (secrets never reach logs).
local M = {}

local LEVELS = { DEBUG = 10, INFO = 20, WARNING = 30, ERROR = 40 }
M.LEVELS = LEVELS

local threshold -- nil until first use (no environment read at require)
local sink
local sink_failed = false

local function current_threshold()
  if not threshold then
    local env = os.getenv("LOG_LEVEL")
    threshold = env and LEVELS[env:upper()] or LEVELS.WARNING
  end
  return threshold
end

--- Set the threshold ("DEBUG", "INFO", "WARNING", "ERROR", any case), or
-- nil to go back to `LOG_LEVEL` / WARNING.
function M.set_level(level)
  if level == nil then threshold = nil return end
  local n = type(level) == "string" and LEVELS[level:upper()]
  if not n then error("log.set_level: level must be DEBUG, INFO, WARNING or ERROR", 2) end
  threshold = n
end

--- The current threshold's name.
function M.get_level()
  local t = current_threshold()
  for k, v in pairs(LEVELS) do if v == t then return k end end
end

--- Install a sink function (nil: back to stderr). Returns the previous one.
function M.set_sink(fn)
  if fn ~= nil and type(fn) ~= "function" then error("log.set_sink: expected a function or nil", 2) end
  local old = sink
  sink, sink_failed = fn, false
  return old
end

--- "2026-11-21T19:59:38.123Z" for epoch seconds `t`.
function M.timestamp(t)
  local s = math.floor(t)
  local ms = math.floor((t - s) * 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(ms)
end

local clock = require("aio_aws.core").walltime

local function emit(module, level, fmt, ...)
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then msg = tostring(fmt) .. " (log format error: " .. tostring(msg) .. ")" end
  local now = clock()
  local line = ("%s %s %s: %s"):format(M.timestamp(now), level, module, msg)
  if sink then
    local sok, serr = pcall(sink, { time = now, level = level, module = module, message = msg, line = line })
    if sok then return end
    if not sink_failed then
      sink_failed = true
      io.stderr:write("aio_aws.log: sink failed: ", tostring(serr), "\n")
    end
  end
  io.stderr:write(line, "\n")
end

local Logger = {}
Logger.__index = Logger
Logger.__name = "aio_aws.Logger"

--- True when records of `level` are written (guards costly messages).
function Logger:enabled(level)
  return (LEVELS[level] or 0) >= (threshold or current_threshold())
end

function Logger:log(level, fmt, ...)
  local n = LEVELS[level]
  if not n then error("logger:log: unknown level " .. tostring(level), 2) end
  if n >= (threshold or current_threshold()) then emit(self.module, level, fmt, ...) end
end

for name, n in pairs(LEVELS) do
  Logger[name:lower()] = function(self, fmt, ...)
    if n >= (threshold or current_threshold()) then emit(self.module, name, fmt, ...) end
  end
end

function Logger:__tostring() return "aio_aws.Logger(" .. self.module .. ")" end

local loggers = {}

--- The logger of `module` (one per name).
function M.get(module)
  if type(module) ~= "string" or module == "" then error("log.get: module name must be a non-empty string", 2) end
  local l = loggers[module]
  if not l then
    l = setmetatable({ module = module }, Logger)
    loggers[module] = l
  end
  return l
end

-- Query parameters that carry secrets or can be replayed (SigV4 presigned
-- URLs: sigv4-query-string-auth.html).
local SECRET_QUERY = {
  ["x-amz-signature"] = true, ["x-amz-credential"] = true, ["x-amz-security-token"] = true,
}

--- `url` with the values of X-Amz-Signature, X-Amz-Credential and
-- X-Amz-Security-Token replaced by "REDACTED".
function M.redact_url(url)
  if type(url) ~= "string" then return tostring(url) end
  local base, query = url:match("^([^?]*)%?(.*)$")
  if not base then return url end
  local parts = {}
  for part in query:gmatch("[^&]*") do
    local name = part:match("^([^=]*)")
    if SECRET_QUERY[name:lower()] then part = name .. "=REDACTED" end
    parts[#parts + 1] = part
  end
  return base .. "?" .. table.concat(parts, "&")
end

local SECRET_HEADERS = { authorization = true, ["x-amz-security-token"] = true,
  ["x-amz-server-side-encryption-customer-key"] = true,
  ["x-amz-copy-source-server-side-encryption-customer-key"] = true }

--- A copy of a header map (or {name, value} list) as "name: value"
-- strings, sorted, with secret headers' values replaced by "REDACTED".
function M.redact_headers(headers)
  local out = {}
  for k, v in pairs(headers or {}) do
    local name, value = k, v
    if type(k) == "number" and type(v) == "table" then name, value = v[1], v[2] end
    name = tostring(name)
    if SECRET_HEADERS[name:lower()] then value = "REDACTED" end
    out[#out + 1] = name .. ": " .. tostring(value)
  end
  table.sort(out)
  return out
end

return M
