--- The local endpoint (`aio-aws local`): one loopback HTTP server that
-- speaks S3, AWS Batch, CloudWatch Logs and Lambda (contract §2).
--
--     aws.run(function()
--       local em = assert(emulator.start{data_dir = "/tmp/state", port = 0})
--       print(em.url, em.access_key)        -- clients sign with em.access_key / em.secret_key
--       ...
--       em:close()
--     end)
--
-- `start(opts)` must run inside a task. opts:
--   host ("127.0.0.1"), port (4566; 0 = any free port), data_dir (required),
--   access_key / secret_key (default: M.DEFAULT_ACCESS_KEY / M.DEFAULT_SECRET_KEY,
--   fixed test credentials), no_auth (skip signature checks), functions_dir
--   (Lambda handlers), lambda_concurrency (default 1000), region ("us-east-1"),
--   faults = {latency_ms, throttle_rate,
--   spot_rate, state_delay} (all 0 by default), server (extra options for
--   aio_aws.server.listen).
-- State lives in `<data_dir>/<service>`. Each service module
-- `aio_aws.emulator.<name>` is loaded with pcall: one that is missing or
-- fails to start leaves its service answering 501 NotImplemented (the
-- reason is in `em.missing[name]`), the others work. Logs starts first
-- and is handed to Batch and Lambda as `ctx.logs`.
--
-- Returns `em` (url, host, port, access_key, secret_key, region, data_dir,
-- services, missing, close) or `nil, err` (the server could not listen, the
-- data dir could not be made). Misuse (bad option types) raises.
local async = require "aio_aws.async"
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"
local store = require "aio_aws.emulator.store"
local router = require "aio_aws.emulator.router"

local M = {}

--- Documented test credentials used when none are given (printed at start;
-- they guard nothing but mistakes: the endpoint binds loopback by default).
M.DEFAULT_ACCESS_KEY = "AKIAAIOAWSLOCAL00000"
M.DEFAULT_SECRET_KEY = "aio-aws-local-secret-key-for-tests-only00"
M.ACCOUNT_ID = "123456789012"
M.SERVICES = router.SERVICES

local function check(cond, msg)
  if not cond then error("emulator.start: " .. msg, 3) end
end

local function check_rate(name, v)
  check(v == nil or (type(v) == "number" and v >= 0 and v <= 1), "faults." .. name .. " must be a number in [0, 1]")
end

--- Wall clock in seconds with sub-second resolution: os.time() at the
-- first call plus the monotonic time since (the C core exposes only the
-- monotonic clock); steady within the process.
local wall0, mono0
local function clock()
  if not wall0 then
    wall0, mono0 = os.time(), core.monotime()
  end
  return wall0 + (core.monotime() - mono0)
end
M.clock = clock

local Emulator = {}
Emulator.__index = Emulator
Emulator.__name = "aio_aws.emulator"

function Emulator:__tostring()
  -- never the secret key
  return string.format("aio_aws.emulator(%s%s)", tostring(self.url), self.closed and ", closed" or "")
end

--- Stop listening and close every service (their state is already on
-- disk). Idempotent.
function Emulator:close()
  if self.closed then return true end
  self.closed = true
  if self.server then self.server:close() end
  -- reverse start order: Batch and Lambda before the Logs they write to
  for i = #self._order, 1, -1 do
    local name = self._order[i]
    local svc = self.services[name]
    if svc and type(svc.close) == "function" then
      local ok, err = pcall(svc.close, svc)
      if not ok then io.stderr:write("aio-aws local: closing ", name, " failed: ", tostring(err), "\n") end
    end
  end
  return true
end

local function load_service(name, ctx)
  local ok, mod = pcall(require, "aio_aws.emulator." .. name)
  if not ok then return nil, tostring(mod):match("^[^\n]*") end
  if type(mod) ~= "table" or type(mod.new) ~= "function" then
    return nil, "aio_aws.emulator." .. name .. " has no new(ctx)"
  end
  local ok2, svc, err = pcall(mod.new, ctx)
  if not ok2 then return nil, "new(ctx) raised: " .. tostring(svc) end
  if svc == nil then return nil, "new(ctx) failed: " .. tostring(err) end
  return svc
end

function M.start(opts)
  opts = opts or {}
  check(type(opts) == "table", "options table expected")
  local host = opts.host or "127.0.0.1"
  check(type(host) == "string" and host ~= "", "host must be a non-empty string")
  local port = opts.port == nil and 4566 or opts.port
  check(math.type(port) == "integer" and port >= 0 and port <= 65535, "port must be an integer in [0, 65535]")
  check(type(opts.data_dir) == "string" and opts.data_dir ~= "", "data_dir must be a non-empty string")
  local access_key = opts.access_key or M.DEFAULT_ACCESS_KEY
  local secret_key = opts.secret_key or M.DEFAULT_SECRET_KEY
  check(type(access_key) == "string" and access_key ~= "" and not access_key:find("[/%s]"),
    "access_key must be a non-empty string without '/' or spaces")
  check(type(secret_key) == "string" and secret_key ~= "", "secret_key must be a non-empty string")
  check(opts.functions_dir == nil or type(opts.functions_dir) == "string", "functions_dir must be a string")
  check(opts.lambda_concurrency == nil or (math.type(opts.lambda_concurrency) == "integer"
    and opts.lambda_concurrency >= 1), "lambda_concurrency must be an integer >= 1")
  local region = opts.region or "us-east-1"
  check(type(region) == "string" and region:match("^[%w-]+$"), "region must be a region name")
  local faults = opts.faults or {}
  check(type(faults) == "table", "faults must be a table")
  check_rate("throttle_rate", faults.throttle_rate)
  check_rate("spot_rate", faults.spot_rate)
  for _, k in ipairs { "latency_ms", "state_delay" } do
    check(faults[k] == nil or (type(faults[k]) == "number" and faults[k] >= 0), "faults." .. k .. " must be a number >= 0")
  end
  faults = { latency_ms = faults.latency_ms or 0, throttle_rate = faults.throttle_rate or 0,
    spot_rate = faults.spot_rate or 0, state_delay = faults.state_delay or 0 }
  async.need_task("emulator.start")

  local data_dir = opts.data_dir:gsub("/+$", "")
  if data_dir == "" then data_dir = "/" end
  for _, name in ipairs(M.SERVICES) do
    local ok, err = store.mkdir_p(data_dir .. "/" .. name)
    if not ok then return nil, errors.new("DataDirError", "cannot create the state directory: " .. tostring(err)) end
  end

  local model = require "aio_aws.model"
  local models = {}
  for _, name in ipairs { "batch", "logs", "lambda" } do
    local svc, err = model.load(name)
    if not svc then return nil, err end
    models[name] = svc
  end

  local em = setmetatable({
    host = host, access_key = access_key, secret_key = secret_key, region = region,
    data_dir = data_dir, functions_dir = opts.functions_dir, faults = faults,
    services = {}, missing = {}, models = models, _order = {}, closed = false,
  }, Emulator)

  local state = {
    services = em.services, missing = em.missing, models = models,
    access_key = access_key, secret_key = secret_key, no_auth = opts.no_auth and true or false,
    region = region, faults = faults, clock = clock, sleep = async.sleep, random = math.random,
  }
  local handle = router.new(state)
  local ready = false
  local server = require "aio_aws.server"
  local listen = { host = host, port = port }
  for k, v in pairs(opts.server or {}) do listen[k] = v end
  listen.handler = function(req)
    if not ready then
      return { status = 503, headers = { ["content-type"] = "text/plain", ["retry-after"] = "1" },
        body = "aio-aws local is starting\n" }
    end
    return handle(req)
  end
  local srv, err = server.listen(listen)
  if not srv then
    if type(err) ~= "table" then err = errors.new("ListenError", tostring(err)) end
    return nil, err
  end
  em.server, em.port, em.url = srv, srv.port, srv.url

  local base = {
    store = store, clock = clock, region = region, account_id = M.ACCOUNT_ID, faults = faults,
    url = em.url, access_key = access_key, secret_key = secret_key, functions_dir = opts.functions_dir,
    no_auth = opts.no_auth and true or false,
    -- Lambda's account concurrency limit (AWS default 1,000): 429 beyond it
    lambda_concurrency = opts.lambda_concurrency,
  }
  -- Logs first: Batch and Lambda write to it.
  for _, name in ipairs { "logs", "s3", "batch", "lambda" } do
    local ctx = {}
    for k, v in pairs(base) do ctx[k] = v end
    ctx.data_dir = data_dir .. "/" .. name
    if name == "batch" or name == "lambda" then ctx.logs = em.services.logs end
    local svc, why = load_service(name, ctx)
    if svc then
      em.services[name] = svc
      em._order[#em._order + 1] = name
    else
      em.missing[name] = why
    end
  end
  ready = true
  return em
end

--- Suspend the current task until one of the named signals arrives
-- (default INT and TERM); returns its name ("TERM").
function M.wait_signal(names)
  names = names or { "INT", "TERM" }
  if type(names) ~= "table" then error("emulator.wait_signal: a list of signal names expected", 2) end
  local t = async.need_task("emulator.wait_signal")
  local w = core.signal_wait(t.token, names)
  return async.suspend(t, w)
end

return M
