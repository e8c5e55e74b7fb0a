--- Waiters: poll an operation until the model's acceptors say success or
-- failure, as botocore's `Waiter.wait` (botocore/waiter.py), driven by the
-- model's waiters-2.json.
--
--     local out, err = s3:wait("object_exists", {Bucket = "b", Key = "k"}, {delay = 1, max_attempts = 10})
--     -- or s3:wait("ObjectExists", ...), or s3:get_waiter("object_exists"):wait(params, opts)
--     s3:waiter_names()   --> {"bucket_exists", "bucket_not_exists", "object_exists", "object_not_exists"}
--
-- Each attempt calls the operation; AWS error answers become botocore's
-- error response (`{Error = {Code, Message}, ResponseMetadata = {...}}`)
-- and are matched like responses. Acceptors, in model order, first match
-- wins: `path` (the JMESPath `argument` equals `expected`), `pathAll`
-- (every element of a non-empty list result equals it), `pathAny` (some
-- element does), `status` (HTTP status), `error` (error code); their
-- `state` is `success`, `failure` or `retry`. Between attempts the task
-- sleeps `delay` seconds (`aio_aws.sleep`).
--
-- Returns the last response on success (for a waiter that succeeds on an
-- error, e.g. `object_not_exists`, that error response). Failures return
-- `nil, err` with `err.code == "WaiterError"`, `err.reason`,
-- `err.last_response` and botocore's message: "Waiter ObjectExists failed:
-- Waiter encountered a terminal failure state: ..." (a failure acceptor
-- matched), "Waiter X failed: Max attempts exceeded" (optionally
-- ". Previously accepted state: ..."), or "Waiter X failed: An error
-- occurred (Code): Message" (an AWS error no acceptor expects). Errors
-- that are not AWS answers (transport failures, parameter validation,
-- credentials) are returned as they are, as botocore lets them propagate.
-- Misuse (unknown waiter, wrong types) raises; call `wait` inside a task.
local async = require "aio_aws.async"
local errors = require "aio_aws.errors"
local jmespath = require "aio_aws.jmespath"
local model = require "aio_aws.model"

local M = {}

-- botocore AcceptorConfig.explanation
local function explanation(a)
  local m = a.matcher
  if m == "path" then
    return ('For expression "%s" we matched expected path: "%s"'):format(a.argument, M.py_str(a.expected))
  elseif m == "pathAll" then
    return ('For expression "%s" all members matched excepted path: "%s"'):format(a.argument, M.py_str(a.expected))
  elseif m == "pathAny" then
    return ('For expression "%s" we matched expected path: "%s" at least once'):format(a.argument, M.py_str(a.expected))
  elseif m == "status" then
    return "Matched expected HTTP status code: " .. M.py_str(a.expected)
  elseif m == "error" then
    return "Matched expected service error code: " .. M.py_str(a.expected)
  end
  return ('No explanation for unknown waiter type: "%s"'):format(tostring(m))
end

--- Python's str() of an expected value (for messages).
function M.py_str(v)
  if v == true then return "True" end
  if v == false then return "False" end
  if v == nil or v == jmespath.null then return "None" end
  return tostring(v)
end

local function is_error_response(r)
  return type(r.Error) == "table" and r.Error.Code ~= nil
end

-- botocore AcceptorConfig._create_*_matcher; nil means "not applicable".
local function matches(a, response)
  local m = a.matcher
  if m == "path" or m == "pathAll" or m == "pathAny" then
    if is_error_response(response) then return nil end
    local result = jmespath.compile(a.argument):search(response)
    if m == "path" then return jmespath.equals(result, a.expected) end
    if jmespath.type(result) ~= "array" or #result == 0 then return false end
    for i = 1, #result do
      local eq = jmespath.equals(result[i], a.expected)
      if m == "pathAll" and not eq then return false end
      if m == "pathAny" and eq then return true end
    end
    return m == "pathAll"
  elseif m == "status" then
    local md = response.ResponseMetadata
    return type(md) == "table" and md.HTTPStatusCode == a.expected
  elseif m == "error" then
    local e = response.Error
    return type(e) == "table" and (e.Code or "") == a.expected
  end
  error("waiter: unknown acceptor matcher " .. tostring(m), 0)
end

-- An AWS error answer as botocore's ClientError.response.
local function error_response(err)
  if not errors.is(err) and type(err) ~= "table" then return nil end
  if err.status == nil then return nil end -- not an answer from the service
  local md = {}
  for k, v in pairs(err.response_metadata or {}) do md[k] = v end
  md.HTTPStatusCode = md.HTTPStatusCode or err.status
  md.RequestId = md.RequestId or err.request_id
  return { Error = { Code = tostring(err.code), Message = err.message }, ResponseMetadata = md }
end

local Waiter = {}
Waiter.__index = Waiter
Waiter.__name = "aio_aws.Waiter"

function Waiter.__tostring(w)
  return ("aio_aws.Waiter(%s.%s)"):format(tostring(w._client.service_name), w.name)
end

--- The waiter `name` ("ObjectExists" or "object_exists") of a client.
function M.get(client, name, level)
  level = (level or 1) + 1
  if type(name) ~= "string" then error("waiter name must be a string", level) end
  local svc = client._svc
  local cfg = svc:waiter(name)
  if not cfg then error(("Waiter does not exist: %s (%s)"):format(name, client.service_name), level) end
  local real = name
  for _, n in ipairs(svc:waiter_names()) do
    if n == name or model.xform_name(n) == name then real = n break end
  end
  local version = svc.waiters and svc.waiters.version
  if version ~= nil and version ~= 2 then
    error("waiter: unsupported waiter version " .. tostring(version), level)
  end
  for _, a in ipairs(cfg.acceptors or {}) do
    if a.matcher == "path" or a.matcher == "pathAll" or a.matcher == "pathAny" then
      jmespath.compile(a.argument) -- a malformed model raises here, not mid-wait
    elseif a.matcher ~= "status" and a.matcher ~= "error" then
      error("waiter: unknown acceptor: " .. tostring(a.matcher), level)
    end
  end
  return setmetatable({ name = real, config = cfg, operation = cfg.operation, _client = client }, Waiter)
end

local OPTS = { delay = "number", max_attempts = "number" }

--- Wait (see the module comment). `opts`: `delay` (seconds) and
-- `max_attempts`, defaults from the model.
function Waiter:wait(params, opts)
  if params == nil then params = {} end
  if type(params) ~= "table" then error("waiter:wait: params must be a table", 2) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("waiter:wait: opts must be a table", 2) end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then error("waiter:wait: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then error(("waiter:wait: option '%s' must be a %s"):format(k, want), 2) end
  end
  local delay = opts.delay or self.config.delay
  local max_attempts = opts.max_attempts or self.config.maxAttempts
  if delay < 0 then error("waiter:wait: delay must not be negative", 2) end
  if not math.tointeger(max_attempts) or max_attempts < 1 then
    error("waiter:wait: max_attempts must be a positive integer", 2)
  end
  async.need_task("waiter:wait")
  local acceptors = self.config.acceptors or {}
  local state = "waiting"
  local last_matched
  local attempts = 0
  local function fail(reason, response)
    return nil, errors.new("WaiterError", ("Waiter %s failed: %s"):format(self.name, reason),
      { reason = reason, last_response = response, waiter_name = self.name })
  end
  while true do
    local response, err = self._client:call(self.operation, params)
    if not response then
      response = error_response(err)
      if not response then return nil, err end
    end
    attempts = attempts + 1
    local matched
    for _, a in ipairs(acceptors) do
      if matches(a, response) then
        matched = a
        break
      end
    end
    if matched then
      last_matched = matched
      state = matched.state
    elseif is_error_response(response) then
      return fail(("An error occurred (%s): %s"):format(response.Error.Code or "Unknown",
        response.Error.Message or "Unknown"), response)
    end
    if state == "success" then return response end
    if state == "failure" then
      return fail("Waiter encountered a terminal failure state: " .. explanation(matched or last_matched), response)
    end
    if attempts >= max_attempts then
      if not last_matched then return fail("Max attempts exceeded", response) end
      -- botocore prints the acceptor its loop ended on; the one that
      -- matched last is what was meant
      return fail("Max attempts exceeded. Previously accepted state: " .. explanation(last_matched), response)
    end
    if delay > 0 then async.sleep(delay) end
  end
end

--- Installs `client:wait(name, params, opts)`, `client:get_waiter(name)`
-- and `client:waiter_names()` (snake_case, sorted, as botocore).
function M.install(Client)
  function Client:get_waiter(name)
    return M.get(self, name, 2)
  end
  function Client:wait(name, params, opts)
    local w = M.get(self, name, 2)
    return w:wait(params, opts)
  end
  function Client:waiter_names()
    local out = {}
    for i, n in ipairs(self._svc:waiter_names()) do out[i] = model.xform_name(n) end
    table.sort(out)
    return out
  end
end

return M
