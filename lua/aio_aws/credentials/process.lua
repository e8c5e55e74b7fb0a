--- Credentials from an external program, the profile's
-- `credential_process` (botocore/credentials.py `ProcessProvider`; AWS
-- SDKs reference guide, "Process credential provider").
--
--     [profile build]
--     credential_process = /opt/bin/creds --role "build agent"
--
-- The command line is split like a POSIX shell's words (no shell runs it)
-- and started with aio_aws.process, without blocking the loop, on first
-- use inside a task (deferred credentials). Its stdout must be JSON:
-- `{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?,
-- "Expiration"?}`; with an `Expiration` the credentials are refreshed by
-- running the program again.
--
-- Errors ("CredentialRetrievalError"): the program cannot start, exits
-- non-zero or by a signal (the message quotes the start of its stderr, the
-- program's own diagnostics, as botocore does; never its stdout), prints
-- something that is not a JSON object, an unsupported `Version`, missing
-- or non-string keys. A command line that does not split (an unclosed
-- quote) is an "InvalidConfigError" from `load`.
local errors = require "aio_aws.errors"
local json = require "aio_aws.model.json"

local M = { name = "custom-process" }

--- Seconds the program may run (nil: no limit, as botocore).
M.TIMEOUT = nil
--- Bytes of stderr quoted in errors.
M.STDERR_QUOTE = 512

local format = string.format

local function fail(msg)
  return nil, errors.new("CredentialRetrievalError", "credential_process: " .. msg, { provider = M.name })
end

local function command(cfg)
  local cmd = cfg:profile().credential_process
  if type(cmd) ~= "string" or cmd == "" then return nil end
  return cmd
end

--- Run the program once (inside a task) and read its answer.
function M.run(argv)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then error("process provider: argv list expected", 2) end
  local ok, process = pcall(require, "aio_aws.process")
  if not ok then return fail("aio_aws.process is not available in this build") end
  local r, err = process.run(argv, { timeout = M.TIMEOUT })
  if not r then
    return fail(format("%s could not run: %s", argv[1], errors.is(err) and err.message or tostring(err)))
  end
  if r.exit_code ~= 0 or r.signal then
    local stderr = type(r.stderr) == "string" and r.stderr or ""
    if #stderr > M.STDERR_QUOTE then stderr = stderr:sub(1, M.STDERR_QUOTE) .. "..." end
    stderr = stderr:gsub("%s+$", "")
    local how = r.signal and format("was killed by signal %s", tostring(r.signal))
      or format("exited with status %s", tostring(r.exit_code))
    return fail(format("%s %s%s", argv[1], how, stderr ~= "" and (": " .. stderr) or ""))
  end
  local pok, doc = pcall(json.decode, r.stdout or "")
  if not pok or type(doc) ~= "table" then return fail(argv[1] .. " did not print a JSON object") end
  if doc.Version ~= 1 then
    -- the value is shown only when it is a plain number (never a string
    -- that could be anything the program printed)
    local v = math.type(doc.Version) and tostring(doc.Version) or (doc.Version == nil and "none" or type(doc.Version))
    return fail(format("unsupported Version %s (supported: 1)", v))
  end
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey" }) do
    if doc[k] == nil then return fail("missing required key in the output: " .. k) end
    if type(doc[k]) ~= "string" or doc[k] == "" then return fail(k .. " must be a non-empty string") end
  end
  for _, k in ipairs({ "SessionToken", "Expiration" }) do
    if doc[k] ~= nil and doc[k] ~= json.null and type(doc[k]) ~= "string" then return fail(k .. " must be a string") end
  end
  local exp
  if type(doc.Expiration) == "string" then
    exp = require("aio_aws.credentials").parse_expiration(doc.Expiration)
    if not exp then return fail("Expiration is not an ISO 8601 timestamp") end
  end
  local token = type(doc.SessionToken) == "string" and doc.SessionToken or nil
  return { access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = token,
    expiration = exp, source = M.name }
end

function M.load(cfg)
  local cmd = command(cfg)
  if not cmd then return nil end
  local argv = require("aio_aws.config").shlex_split(cmd)
  if not argv or #argv == 0 then
    return nil, errors.new("InvalidConfigError", format("the credential_process of profile %s cannot be split "
      .. "into words (an unclosed quote?)", (cfg:profile_name())), { provider = M.name })
  end
  return { deferred = true, source = M.name, fetch = function() return M.run(argv) end }
end

function M.describe(cfg)
  if not command(cfg) then return nil end
  return format("credential_process of profile %s", (cfg:profile_name()))
end

return M
