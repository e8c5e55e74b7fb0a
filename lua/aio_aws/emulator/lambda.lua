--- Lambda for the local endpoint (`aio-aws local`): handlers are Lua files.
--
--     -- <functions_dir>/hello.lua
--     return function(event, context) print("hi"); return {greeting = "hello " .. event.name} end
--     -- or with configuration:
--     return {handler = fn, timeout = 10, memory_size = 256, reserved_concurrency = 2,
--             description = "..."}
--
-- Operations: ListFunctions, GetFunction, Invoke (RequestResponse, Event,
-- DryRun; Qualifier `$LATEST`; LogType Tail). `call` returns the output
-- table or `nil, err` (err.code, err.status, err.fields as the Lambda API
-- reference's Invoke page lists them).
--
-- Each invocation loads the file afresh into its own sandbox environment
-- (globals it sets stay there; reads fall through to the real globals, so
-- `require` works; `os.exit` raises) and runs the handler in its own task.
-- `print` and `io.write` go to the invocation's log: START / END / REPORT
-- lines as Lambda writes them, the last 4 KB base64 in `LogResult` with
-- LogType Tail, and every line to the CloudWatch Logs group
-- `/aws/lambda/<name>` (ctx.logs:append), one stream per function per
-- endpoint run. `context` has function_name, function_version,
-- invoked_function_arn, memory_limit_in_mb, aws_request_id, log_group_name,
-- log_stream_name, get_remaining_time_in_millis(), client_context (decoded),
-- endpoint_url, region, credentials (an aio_aws credentials object: its
-- secret never shows in tostring) and `context.client(service)`, a client of
-- the project bound to this endpoint, so a handler can call AWS itself.
--
-- Timeouts: a handler that waits (sleep, I/O, another task) is cancelled at
-- its wait when its time is up. A handler busy in pure Lua code is stopped by
-- a count hook (debug.sethook) on its coroutine that raises once the
-- deadline has passed, checked every 10,000 VM instructions; the file's top
-- level gets the same treatment with `lambda_init_timeout`. Limits: nothing
-- can stop a single long call into C (a huge string.rep, a blocking C
-- library call), which holds the whole event loop until it returns; a
-- handler that catches the timeout error with pcall and keeps spinning is
-- hit again at every check but may never stop; tasks and coroutines the
-- handler started are not stopped; a handler that sets its own debug hook
-- replaces ours. Event invocations are not retried when they fail.
local aws = require "aio_aws"
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"

local M = {}

-- aio_aws.model.json rather than cjson 2.1 (Debian's): arrays decoded
-- from a payload keep a marker, so an empty array goes back out as [], and
-- integers stay integers.
local json = require "aio_aws.model.json"

local fmt, floor, ceil = string.format, math.floor, math.ceil

local MAX_SYNC_PAYLOAD = 6291456   -- 6 MB, RequestResponse (Lambda quotas)
local MAX_ASYNC_PAYLOAD = 262144   -- 256 KB, Event
local LOG_TAIL_BYTES = 4096        -- "the last 4 KB of the execution log" (Invoke, LogType)
local DEFAULT_TIMEOUT = 3
local DEFAULT_MEMORY = 128
local DEFAULT_CONCURRENCY = 1000
local HOOK_COUNT = 10000           -- instructions between deadline checks
local DEFAULT_INIT_TIMEOUT = 10    -- Lambda's init phase limit, seconds
local NAME_PATTERN = "^[%w%-_]+$"

local function fail(code, message, status, fields)
  return nil, errors.new(code, message, { status = status, fields = fields })
end

local function not_found(self, name, qualifier)
  local arn = self:function_arn(name) .. (qualifier and (":" .. qualifier) or "")
  return fail("ResourceNotFoundException", "Function not found: " .. arn, 404, { Type = "User" })
end

local function invalid_value(message)
  return fail("InvalidParameterValueException", message, 400, { Type = "User" })
end

local function request_id()
  local r = math.random
  return fmt("%08x-%04x-4%03x-%04x-%06x%06x", r(0, 0xffffffff), r(0, 0xffff), r(0, 0xfff),
    0x8000 + r(0, 0x3fff), r(0, 0xffffff), r(0, 0xffffff))
end

local Lambda = {}
Lambda.__index = Lambda
Lambda.__name = "aio_aws.emulator.Lambda"

--- Create the service. ctx: functions_dir, logs (the Logs service, optional),
-- clock, region, account_id, url, access_key, secret_key,
-- lambda_concurrency (account limit of concurrent executions, default 1000),
-- lambda_init_timeout (seconds for a file's top level, default 10).
function M.new(ctx)
  if type(ctx) ~= "table" then error("emulator.lambda.new: ctx must be a table", 2) end
  if ctx.functions_dir ~= nil and type(ctx.functions_dir) ~= "string" then
    error("emulator.lambda.new: ctx.functions_dir must be a string", 2)
  end
  local limit = ctx.lambda_concurrency or DEFAULT_CONCURRENCY
  if math.type(limit) ~= "integer" or limit < 1 then
    error("emulator.lambda.new: ctx.lambda_concurrency must be an integer >= 1", 2)
  end
  return setmetatable({
    ctx = ctx,
    dir = ctx.functions_dir,
    logs = ctx.logs,
    clock = ctx.clock or os.time,
    region = ctx.region or "us-east-1",
    account_id = ctx.account_id or "123456789012",
    limit = limit,
    init_timeout = ctx.lambda_init_timeout,
    running = 0,             -- executions in flight, all functions
    per_function = {},       -- name -> executions in flight
    background = {},         -- Event invocations in flight: task -> true
    slot_free = aws.Event(), -- set when an execution ends (Event invocations wait on it)
    streams = {},            -- name -> log stream name of this "instance"
    cache = {},              -- name -> {mtime, size, text, sha}
  }, Lambda)
end

function Lambda:close()
  self.closed = true
  for t in pairs(self.background) do t:cancel() end
end

function Lambda:function_arn(name)
  return fmt("arn:aws:lambda:%s:%s:function:%s", self.region, self.account_id, name)
end

-- -------------------------------------------------------- function files

local ok_lfs, lfs = pcall(require, "lfs")

local function discard() end

-- The file's source (cached while its size and mtime stay the same).
function Lambda:source(name)
  if not self.dir or not name:find(NAME_PATTERN) or #name > 64 then return nil end
  local path = self.dir .. "/" .. name .. ".lua"
  local attr = ok_lfs and lfs.attributes(path) or nil
  if ok_lfs and (not attr or attr.mode ~= "file") then return nil end
  local c = self.cache[name]
  if c and attr and c.mtime == attr.modification and c.size == attr.size then return c end
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  if not text then return nil end
  c = { path = path, text = text, size = #text, mtime = attr and attr.modification or self.clock(),
    sha = core.base64_encode(core.sha256(text)) }
  self.cache[name] = c
  return c
end

function Lambda:names()
  local out = {}
  if not self.dir then return out end
  local list = require("aio_aws.emulator.store").list_dir(self.dir) or {}
  for _, file in ipairs(list) do
    local name = file:match("^(.+)%.lua$")
    if name and name:find(NAME_PATTERN) and #name <= 64 then out[#out + 1] = name end
  end
  return out
end

-- Run the file's chunk in a fresh sandbox; returns the spec
-- {handler, timeout, memory_size, reserved_concurrency, description} or nil, message.
local function load_spec(src, print_fn, init_timeout)
  local env = setmetatable({}, { __index = _G })
  env._G = env
  env.print = print_fn
  -- io.write is the handler's stdout too: it goes to the same log.
  local out = {}
  function out.write(_, ...) return env.io.write(...) end
  env.io = setmetatable({
    write = function(...)
      local w = type(print_fn) == "table" and print_fn.write or nil
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) ~= "string" and type(v) ~= "number" then
          error("bad argument #" .. i .. " to 'write' (string expected, got " .. type(v) .. ")", 2)
        end
        if w then w(tostring(v)) end
      end
      return out
    end,
  }, { __index = io })
  -- The handler shares the endpoint's process: exiting would stop it.
  env.os = setmetatable({ exit = function() error("os.exit is not available in a Lambda handler", 2) end },
    { __index = os })
  local chunk, cerr = load(src.text, "@" .. src.path, "t", env)
  if not chunk then return nil, cerr end
  -- The file's top level (Lambda's init phase) gets `init_timeout` seconds;
  -- a busy loop there is stopped by the same count hook as handlers.
  local deadline = core.monotime() + (init_timeout or DEFAULT_INIT_TIMEOUT)
  local INIT_TIMEOUT = {}
  local old_hook, old_mask, old_count = debug.gethook()
  debug.sethook(function()
    if core.monotime() > deadline then error(INIT_TIMEOUT, 0) end
  end, "", HOOK_COUNT)
  local ok, v = pcall(chunk)
  if old_hook then debug.sethook(old_hook, old_mask, old_count) else debug.sethook() end
  if not ok then
    if v == INIT_TIMEOUT then return nil, "the file's top level did not finish within its init timeout" end
    return nil, tostring(v)
  end
  local spec
  if type(v) == "function" then
    spec = { handler = v }
  elseif type(v) == "table" and type(v.handler) == "function" then
    spec = v
  else
    return nil, src.path .. " must return a handler function or a table with .handler"
  end
  local t = spec.timeout
  if t ~= nil and (type(t) ~= "number" or t <= 0 or t > 900) then
    return nil, "timeout must be a number of seconds in (0, 900]"
  end
  local m = spec.memory_size
  if m ~= nil and (math.type(m) ~= "integer" or m < 128 or m > 10240) then
    return nil, "memory_size must be an integer in [128, 10240]"
  end
  local r = spec.reserved_concurrency
  if r ~= nil and (math.type(r) ~= "integer" or r < 0) then
    return nil, "reserved_concurrency must be an integer >= 0"
  end
  return spec, env
end


local function iso8601(t)
  return os.date("!%Y-%m-%dT%H:%M:%S.000+0000", floor(t))
end

-- FunctionConfiguration for `name` (GetFunction, ListFunctions).
function Lambda:configuration(name, src)
  local spec, err = load_spec(src, discard, self.init_timeout)
  local s = spec or {}
  local conf = {
    FunctionName = name,
    FunctionArn = self:function_arn(name),
    Runtime = "provided.al2",
    Role = fmt("arn:aws:iam::%s:role/aio-aws-local-lambda", self.account_id),
    Handler = name .. ".handler",
    CodeSize = src.size,
    Description = type(s.description) == "string" and s.description or "",
    Timeout = s.timeout and ceil(s.timeout) or DEFAULT_TIMEOUT,
    MemorySize = s.memory_size or DEFAULT_MEMORY,
    LastModified = iso8601(src.mtime),
    CodeSha256 = src.sha,
    Version = "$LATEST",
    State = spec and "Active" or "Failed",
    StateReason = not spec and err or nil,
    LastUpdateStatus = "Successful",
    PackageType = "Zip",
    Architectures = { "x86_64" },
  }
  return conf, spec
end

-- FunctionName may be a name, `name:qualifier`, or a full or partial ARN.
local function parse_name(s)
  local name, qual = s:match("^arn:aws[%w-]*:lambda:[%w-]+:%d+:function:([^:]+):?(.*)$")
  if not name then name, qual = s:match("^%d+:function:([^:]+):?(.*)$") end
  if not name then name, qual = s:match("^([^:]+):?(.*)$") end
  if qual == "" then qual = nil end
  return name, qual
end

local function check_qualifier(self, name, q1, q2)
  if q1 and q2 and q1 ~= q2 then
    return invalid_value("The derived qualifier from the function name does not match the specified qualifier.")
  end
  local q = q1 or q2
  if q and q ~= "$LATEST" then return not_found(self, name, q) end
  return true
end

-- ------------------------------------------------------------ operations

local OPS = {}

function OPS.ListFunctions(self, p)
  local max_items = p.MaxItems
  if max_items ~= nil and (math.tointeger(max_items) == nil or max_items < 1 or max_items > 10000) then
    return invalid_value("1 validation error detected: Value '" .. tostring(max_items)
      .. "' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000")
  end
  max_items = math.tointeger(max_items) or 50
  local marker = p.Marker
  if marker ~= nil and type(marker) ~= "string" then return invalid_value("Marker must be a string") end
  local names = self:names()
  local start = 1
  if marker then
    start = #names + 1
    for i, n in ipairs(names) do if n > marker then start = i; break end end
  end
  local out = {}
  for i = start, math.min(#names, start + max_items - 1) do
    local src = self:source(names[i])
    if src then out[#out + 1] = (self:configuration(names[i], src)) end
  end
  local next_marker
  if start + max_items - 1 < #names then next_marker = names[start + max_items - 1] end
  return { Functions = out, NextMarker = next_marker }
end

function OPS.GetFunction(self, p)
  if type(p.FunctionName) ~= "string" or p.FunctionName == "" then
    return invalid_value("FunctionName is required")
  end
  local name, q = parse_name(p.FunctionName)
  local src = self:source(name)
  if not src then return not_found(self, name, q or p.Qualifier) end
  local ok, qerr = check_qualifier(self, name, q, p.Qualifier)
  if not ok then return nil, qerr end
  local conf, spec = self:configuration(name, src)
  local out = {
    Configuration = conf,
    Code = { RepositoryType = "Local", Location = "file://" .. src.path },
  }
  if spec and spec.reserved_concurrency then
    out.Concurrency = { ReservedConcurrentExecutions = spec.reserved_concurrency }
  end
  return out
end

-- The log stream of this endpoint's "instance" of a function
-- (`YYYY/MM/DD/[$LATEST]<32 hex>`, as Lambda names them).
function Lambda:log_stream(name)
  local s = self.streams[name]
  if not s then
    local r = math.random
    s = fmt("%s/[$LATEST]%08x%08x%08x%08x", os.date("!%Y/%m/%d", floor(self.clock())),
      r(0, 0xffffffff), r(0, 0xffffffff), r(0, 0xffffffff), r(0, 0xffffffff))
    self.streams[name] = s
  end
  return s
end

-- The handler's frames of a traceback: the runtime's own frames (this
-- file, the task machinery) below the handler are cut off.
local function traceback_lines(tb)
  local out = {}
  for line in tostring(tb or ""):gmatch("[^\n]+") do
    line = line:gsub("^%s+", "")
    if line:find("aio_aws/emulator/lambda.lua", 1, true) then break end
    if line ~= "stack traceback:" and line ~= "[C]: in function 'error'" then out[#out + 1] = line end
  end
  return out
end

-- The error payload of an unhandled handler error.
local function error_payload(e)
  local etype, tb = "LuaError", nil
  local emsg
  if errors.is(e) and e.code == "TaskError" then
    tb = e.traceback
    e = e.value ~= nil and e.value or e.message
  end
  if type(e) == "table" then
    etype = tostring(e.errorType or e.code or "LuaError")
    emsg = tostring(e.errorMessage or e.message or etype)
    tb = tb or e.traceback
  else
    emsg = tostring(e)
  end
  return { errorMessage = emsg, errorType = etype, stackTrace = traceback_lines(tb) }
end

-- Take an execution slot; nil, err (429) when the account or the
-- function's reserved concurrency is used up.
function Lambda:acquire(name, spec)
  local reserved = spec and spec.reserved_concurrency
  local used = self.per_function[name] or 0
  if reserved and used >= reserved then
    return fail("TooManyRequestsException", "Rate Exceeded.", 429,
      { Reason = "ReservedFunctionConcurrentInvocationLimitExceeded", Type = "User" })
  end
  if self.running >= self.limit then
    return fail("TooManyRequestsException", "Rate Exceeded.", 429,
      { Reason = "ConcurrentInvocationLimitExceeded", Type = "User" })
  end
  self.running = self.running + 1
  self.per_function[name] = used + 1
  return true
end

function Lambda:release(name)
  self.running = self.running - 1
  self.per_function[name] = self.per_function[name] - 1
  self.slot_free:set()
  self.slot_free:clear()
end

local function session_for(self)
  local ctx = self.ctx
  return aws.session{ region = self.region,
    credentials = { access_key = ctx.access_key or "local", secret_key = ctx.secret_key or "local" } }
end

--- Run one invocation of `name` with the decoded `event`. Returns
-- {payload = json text, function_error = "Unhandled" | nil, log = text}.
function Lambda:execute(name, src, event, opts)
  local rid = request_id()
  local log_lines, log_events = {}, {}
  local function log(line)
    log_lines[#log_lines + 1] = line .. "\n"
    log_events[#log_events + 1] = { timestamp = floor(self.clock() * 1000), message = line }
  end
  -- print and io.write share one stdout: io.write's text is split into
  -- lines, a last partial line is flushed when the handler ends.
  local partial = ""
  local function write_text(text)
    partial = partial .. text
    while true do
      local nl = partial:find("\n", 1, true)
      if not nl then break end
      log(partial:sub(1, nl - 1))
      partial = partial:sub(nl + 1)
    end
  end
  local function flush_partial()
    if partial ~= "" then log(partial); partial = "" end
  end
  local captured_print = setmetatable({ write = write_text }, { __call = function(_, ...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    write_text(table.concat(parts, "\t") .. "\n")
  end })
  local started = core.monotime()
  log(fmt("START RequestId: %s Version: $LATEST", rid))
  local spec, env = load_spec(src, captured_print, self.init_timeout)
  local timeout = spec and spec.timeout or DEFAULT_TIMEOUT
  local memory = spec and spec.memory_size or DEFAULT_MEMORY
  local deadline = started + timeout
  local stream = self:log_stream(name)
  local result, function_error
  if not spec then
    log(fmt("[ERROR] Runtime.ImportModuleError: %s", env))
    result = json.encode({ errorMessage = tostring(env), errorType = "Runtime.ImportModuleError",
      stackTrace = json.empty_array })
    function_error = "Unhandled"
  else
    local ctx = self.ctx
    local context = {
      function_name = name,
      function_version = "$LATEST",
      invoked_function_arn = self:function_arn(name),
      memory_limit_in_mb = memory,
      aws_request_id = rid,
      log_group_name = "/aws/lambda/" .. name,
      log_stream_name = stream,
      endpoint_url = ctx.url,
      region = self.region,
      -- a credentials object: tostring and error messages never show the secret
      credentials = ctx.access_key and ctx.secret_key and require("aio_aws.credentials").new{
        access_key = ctx.access_key, secret_key = ctx.secret_key, source = "aio-aws local" } or nil,
      client_context = opts.client_context,
    }
    function context.get_remaining_time_in_millis()
      return math.max(0, floor((deadline - core.monotime()) * 1000))
    end
    function context.client(service, copts)
      local session = assert(session_for(self))
      local o = { endpoint_url = ctx.url }
      for k, v in pairs(copts or {}) do o[k] = v end
      return session:client(service, o)
    end
    local done = false
    local handler_co
    local TIMED_OUT = {}
    -- Stops a busy handler: raises in the handler's own coroutine once the
    -- deadline has passed; removes itself from any other coroutine that
    -- inherited it (tasks the handler spawned) once the invocation is over.
    local function hook()
      if done then debug.sethook(); return end
      if coroutine.running() == handler_co and core.monotime() > deadline then
        error(TIMED_OUT, 0)
      end
    end
    local task = aws.spawn(function()
      handler_co = coroutine.running()
      debug.sethook(hook, "", HOOK_COUNT)
      local res = table.pack(spec.handler(event, context))
      debug.sethook()
      return res
    end)
    local wok, res, err = pcall(task.wait, task, math.max(0, deadline - core.monotime()))
    if not wok then
      -- This invocation was cancelled (the endpoint is closing): stop the handler too.
      done = true
      task:cancel()
      error(res, 0)
    end
    local timed_out = false
    if not res and task.state == "pending" then
      -- Waiting past its deadline: cancel it at its wait, give it a moment
      -- for its clean-up.
      timed_out = true
      task:cancel()
      task:wait(1)
    elseif not res and errors.is(err) and err.code == "TaskError" and err.value == TIMED_OUT then
      timed_out = true
    end
    done = true
    if timed_out then
      local msg = fmt("Task timed out after %.2f seconds", timeout)
      log(fmt("%s %s %s", os.date("!%Y-%m-%dT%H:%M:%S.000Z", floor(self.clock())), rid, msg))
      result = json.encode({ errorMessage = fmt("RequestId: %s Error: %s", rid, msg),
        errorType = "Sandbox.Timedout" })
      function_error = "Unhandled"
    elseif not res then
      local payload = error_payload(err)
      log(fmt("[ERROR] %s: %s", payload.errorType, payload.errorMessage))
      if #payload.stackTrace == 0 then payload.stackTrace = json.empty_array end
      result = json.encode(payload)
      function_error = "Unhandled"
    else
      local v = res[1]
      if v == nil then v = json.null end
      local text, jerr = json.encode(v)
      if text then
        result = text
      else
        local emsg = "Unable to marshal response: " .. tostring(jerr)
        log("[ERROR] Runtime.MarshalError: " .. emsg)
        result = json.encode({ errorMessage = emsg, errorType = "Runtime.MarshalError",
          stackTrace = json.empty_array })
        function_error = "Unhandled"
      end
    end
  end
  flush_partial()
  local ms = (core.monotime() - started) * 1000
  log(fmt("END RequestId: %s", rid))
  log(fmt("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t",
    rid, ms, math.max(1, ceil(ms)), memory, ceil(collectgarbage("count") / 1024)))
  if self.logs then
    self.logs:append("/aws/lambda/" .. name, stream, log_events)
  end
  return { payload = result, function_error = function_error, log = table.concat(log_lines), request_id = rid }
end

function OPS.Invoke(self, p)
  if type(p.FunctionName) ~= "string" or p.FunctionName == "" then
    return invalid_value("FunctionName is required")
  end
  local itype = p.InvocationType or "RequestResponse"
  if itype ~= "RequestResponse" and itype ~= "Event" and itype ~= "DryRun" then
    return invalid_value("1 validation error detected: Value '" .. tostring(itype)
      .. "' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
  end
  local log_type = p.LogType or "None"
  if log_type ~= "None" and log_type ~= "Tail" then
    return invalid_value("1 validation error detected: Value '" .. tostring(log_type)
      .. "' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]")
  end
  local payload = p.Payload or ""
  if type(payload) ~= "string" then return fail("InvalidRequestContentException", "Payload must be bytes", 400) end
  local max_payload = itype == "Event" and MAX_ASYNC_PAYLOAD or MAX_SYNC_PAYLOAD
  if #payload > max_payload then
    return fail("RequestEntityTooLargeException",
      fmt("Request must be smaller than %d bytes for the InvokeFunction operation", max_payload), 413)
  end
  local name, q = parse_name(p.FunctionName)
  local src = self:source(name)
  if not src then return not_found(self, name, q or p.Qualifier) end
  local ok, qerr = check_qualifier(self, name, q, p.Qualifier)
  if not ok then return nil, qerr end
  local event = {}
  if payload:find("%S") then
    local v, jerr = json.decode(payload)
    if v == nil then
      return fail("InvalidRequestContentException",
        "Could not parse request body into json: " .. tostring(jerr), 400, { Type = "User" })
    end
    event = v
  end
  -- ClientContext: "up to 3,583 bytes of base64-encoded data" holding a JSON
  -- object; handed to the handler decoded, as context.client_context.
  local client_context
  if p.ClientContext ~= nil then
    local raw = type(p.ClientContext) == "string" and #p.ClientContext <= 3583
      and p.ClientContext:find("^[%w+/]*=?=?$") and core.base64_decode(p.ClientContext)
    client_context = raw and json.decode(raw)
    if type(client_context) ~= "table" or getmetatable(client_context) == json.array_mt then
      return fail("InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object.", 400,
        { Type = "User" })
    end
  end
  if itype == "DryRun" then return { StatusCode = 204 } end
  local spec = load_spec(src, discard, self.init_timeout)
  if itype == "Event" then
    -- Queued: runs in the background as soon as a slot is free.
    local task
    task = aws.spawn(function()
      while not self.closed do
        if self:acquire(name, spec) then
          local ok2, err2 = pcall(self.execute, self, name, src, event, { client_context = client_context })
          self:release(name)
          self.background[task] = nil
          if not ok2 and not (errors.is(err2) and err2.code == "Cancelled") then
            io.stderr:write("aio-aws local: lambda ", name, ": ", tostring(err2), "\n")
          end
          return
        end
        self.slot_free:wait(1)
      end
      self.background[task] = nil
    end)
    self.background[task] = true
    return { StatusCode = 202 }
  end
  local aok, aerr = self:acquire(name, spec)
  if not aok then return nil, aerr end
  local rok, r = pcall(self.execute, self, name, src, event, { client_context = client_context })
  self:release(name)
  if not rok then error(r, 0) end
  local out = { StatusCode = 200, Payload = r.payload, FunctionError = r.function_error, ExecutedVersion = "$LATEST" }
  if log_type == "Tail" then
    out.LogResult = core.base64_encode(r.log:sub(-LOG_TAIL_BYTES))
  end
  return out
end

--- Run one operation.
-- @return output table | nil, err
function Lambda:call(op, params, _req)
  if type(op) ~= "string" then error("lambda:call: operation name must be a string", 2) end
  if params ~= nil and type(params) ~= "table" then error("lambda:call: params must be a table", 2) end
  local f = OPS[op]
  if not f then
    return fail("UnknownOperationException", "Operation " .. op .. " is not supported by aio-aws local", 400)
  end
  return f(self, params or {})
end

--- The background (Event) invocations still running (for tests and close).
function Lambda:pending()
  local n = 0
  for _ in pairs(self.background) do n = n + 1 end
  return n
end

M.OPERATIONS = {}
for name in pairs(OPS) do M.OPERATIONS[#M.OPERATIONS + 1] = name end
table.sort(M.OPERATIONS)

return M
