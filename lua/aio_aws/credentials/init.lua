--- Credentials: the credentials object and the provider chain.
--
--     local credentials = require "aio_aws.credentials"
--     local cfg = assert(require("aio_aws.config").load{})
--     local creds, err = credentials.resolve{ config = cfg }
--     tostring(creds)  --> aio_aws.Credentials(source=env, access_key=****************MPLE)
--
-- `resolve{config, credentials, providers}`: explicit `credentials`
-- (`{access_key, secret_key [, session_token] [, expiration]}`) win and
-- skip the chain, as botocore's `create_client(aws_access_key_id=...)`;
-- otherwise the providers are asked in botocore's order
-- (botocore/credentials.py `create_credential_resolver`):
--
--   env -> assume_role -> web_identity -> sso -> shared_credentials_file
--   -> credential_process -> config_file -> container -> imds
--
-- An explicitly chosen profile (`config.load{profile=...}`, not
-- AWS_PROFILE) takes the environment provider out, and the web identity
-- environment variables with it, as in botocore.
--
-- Providers that need I/O (assume role and web identity: STS; sso: the
-- SSO portal; credential_process: a child process; container and instance
-- metadata: HTTP) never do it in `load`: they return a *deferred* table
-- `{deferred = true, fetch = function() end, source}` and `resolve` makes a
-- credentials object without values whose first `get_frozen()` (inside a
-- task, e.g. when a client signs its first request) calls `fetch`, shared
-- by every task waiting for it, like any refresh. So `session:client` works
-- outside a task whatever the provider; when `resolve` itself runs inside
-- a task it fetches at once, so a failure is reported where it is asked.
-- A deferred provider that may turn out not to apply (the instance
-- metadata service, last in the chain) sets `optional = true`; its fetch
-- failing with `err.not_found` becomes the chain's "NoCredentials".
--
-- A provider is a table `{name, load = function(cfg) end, describe =
-- function(cfg) end}`. `load` returns a table `{access_key, secret_key,
-- session_token, expiration, source [, refresh]}` when it has credentials,
-- nil when it does not apply (the chain goes on), or nil, err when it
-- applies and fails (the chain stops there: partial credentials in a file
-- must not silently fall through to other ones). `expiration` is epoch
-- seconds or ISO 8601; `refresh`, a function returning the same shape,
-- makes the credentials refreshable. `describe` says where it looked, for
-- the "NoCredentials" message (never a value); nil when the provider was
-- not configured at all (no role_arn, no credential_process, ...).
--
-- Secrets never appear in `tostring`, errors or logs: no value is a field
-- of the object (they are read through `__index` from a private table), so
-- a table dump, JSON encoding or busted's failure output of a credentials
-- object shows nothing, and the object is read-only.
local errors = require "aio_aws.errors"

local M = {}

local format = string.format

--- botocore's order of providers; names not in `PROVIDERS` are skipped.
M.ORDER = {
  "env", "assume_role", "web_identity", "sso", "shared_credentials_file",
  "credential_process", "config_file", "container", "imds",
}

--- name -> module name of the providers this build has.
M.PROVIDERS = {
  env = "aio_aws.credentials.env",
  assume_role = "aio_aws.credentials.assume_role",
  web_identity = "aio_aws.credentials.web_identity",
  sso = "aio_aws.credentials.sso",
  shared_credentials_file = "aio_aws.credentials.shared_credentials_file",
  credential_process = "aio_aws.credentials.process",
  config_file = "aio_aws.credentials.config_file",
  container = "aio_aws.credentials.container",
  imds = "aio_aws.credentials.imds",
}

--- Refresh windows in seconds before expiry (botocore/credentials.py
-- `RefreshableCredentials`): inside the advisory window a failed refresh
-- keeps the current credentials; inside the mandatory window it is an error.
M.ADVISORY_REFRESH = 15 * 60
M.MANDATORY_REFRESH = 10 * 60

--- Clock used for expiry (epoch seconds); replaceable in tests.
M.now = os.time

--- Where warnings go (an advisory refresh that failed): `log(level,
-- message)`; messages never hold a secret. Replaceable (tests, or the
-- program's own logger); the default writes warnings to stderr.
function M.log(level, message)
  if level == "warning" or level == "error" then
    io.stderr:write(format("aio_aws.credentials %s: %s\n", level, message))
  end
end

-- ---------------------------------------------------------------- object

local Credentials = {}
local mt = { __name = "aio_aws.Credentials" }
local values = setmetatable({}, { __mode = "k" }) -- object -> {access_key, secret_key, ...}
local state = setmetatable({}, { __mode = "k" })  -- object -> {refresh, lock}

-- Every value lives in `values`, none in the object itself: `pairs`,
-- table dumps and JSON encoders see an empty table, and assignment goes
-- through __newindex, which refuses it.
local FIELDS = { access_key = true, secret_key = true, session_token = true, expiration = true, source = true }

mt.__index = function(self, k)
  if FIELDS[k] then
    local v = values[self]
    return v and v[k]
  end
  return Credentials[k]
end

mt.__newindex = function()
  error("aio_aws.Credentials: credentials are read-only", 2)
end

--- "****************MPLE": all but the last 4 characters masked (all of
-- a key of 4 characters or fewer).
function M.mask(s)
  if type(s) ~= "string" then return tostring(s) end
  if #s <= 4 then return string.rep("*", #s) end
  return string.rep("*", #s - 4) .. s:sub(-4)
end

mt.__tostring = function(self)
  local v = values[self]
  if not v.access_key then return format("aio_aws.Credentials(source=%s, not fetched yet)", tostring(v.source)) end
  local extra = ""
  if v.expiration then extra = format(", expires=%s", os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(v.expiration))) end
  return format("aio_aws.Credentials(source=%s, access_key=%s%s)", tostring(v.source), M.mask(v.access_key), extra)
end

local function check_string(t, k, required)
  local v = t[k]
  if v == nil then
    if required then error(format("credentials: %s is required", k), 3) end
    return nil
  end
  if type(v) ~= "string" then error(format("credentials: %s must be a string (got %s)", k, type(v)), 3) end
  return v
end

-- Parse an expiration (epoch seconds or ISO 8601); nil, message when bad.
local function parse_expiration(v)
  if v == nil then return nil end
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "expiration is not a finite number" end
    return v
  end
  if type(v) ~= "string" then return nil, "expiration must be a number or an ISO 8601 string" end
  local t = require("aio_aws.protocol.timestamp").parse(v)
  if not t then return nil, "expiration is not an ISO 8601 timestamp" end
  return t
end
M.parse_expiration = parse_expiration

local function set_values(obj, t)
  values[obj] = { access_key = t.access_key, secret_key = t.secret_key, session_token = t.session_token,
    expiration = t.expiration, source = t.source }
end

--- Make a credentials object.
-- @tparam table t `access_key`, `secret_key` (required, non-empty
--   strings), `session_token`, `expiration` (epoch seconds or ISO 8601),
--   `source` (default "explicit"), `refresh` (function returning such a
--   table, or nil, err)
-- @treturn Credentials
function M.new(t)
  if type(t) ~= "table" then error("credentials.new: table expected", 2) end
  if getmetatable(t) == mt then return t end
  local ak, sk = check_string(t, "access_key", true), check_string(t, "secret_key", true)
  if ak == "" or sk == "" then error("credentials.new: access_key and secret_key must not be empty", 2) end
  check_string(t, "session_token")
  check_string(t, "source")
  if t.refresh ~= nil and type(t.refresh) ~= "function" then error("credentials.new: refresh must be a function", 2) end
  local exp, why = parse_expiration(t.expiration)
  if t.expiration ~= nil and not exp then error("credentials.new: " .. why, 2) end
  local obj = setmetatable({}, mt)
  set_values(obj, { access_key = ak, secret_key = sk, session_token = t.session_token ~= "" and t.session_token or nil,
    expiration = exp, source = t.source or "explicit" })
  if t.refresh then state[obj] = { refresh = t.refresh } end
  return obj
end

--- Credentials to be fetched on first use (see the module comment):
-- `fetch()` returns what a provider's `load` returns (a table with
-- `access_key`, `secret_key`, ... and maybe `refresh`), or nil, err. It
-- runs inside a task (the first `get_frozen()`); later refreshes call the
-- table's `refresh`, or `fetch` again when it has none but expires.
-- @tparam table t `source` (string), `fetch` (function)
-- @treturn Credentials
function M.deferred(t)
  if type(t) ~= "table" then error("credentials.deferred: table expected", 2) end
  if type(t.fetch) ~= "function" then error("credentials.deferred: fetch must be a function", 2) end
  if type(t.source) ~= "string" then error("credentials.deferred: source must be a string", 2) end
  local obj = setmetatable({}, mt)
  values[obj] = { source = t.source }
  state[obj] = { refresh = t.fetch, deferred = true, io = true }
  return obj
end

--- True for a credentials object made by `new`.
function M.is(v)
  return getmetatable(v) == mt
end

--- True when the credentials can be refreshed.
function Credentials:refreshable()
  return state[self] ~= nil
end

--- Seconds left before expiry (nil: never expires).
-- @tparam[opt] number now epoch seconds (default: `credentials.now()`)
function Credentials:remaining(now)
  if now ~= nil and type(now) ~= "number" then error("credentials: now must be a number (epoch seconds)", 2) end
  if not values[self].access_key then return -math.huge end -- deferred, not fetched yet
  local exp = values[self].expiration
  if not exp then return nil end
  return exp - (now or M.now())
end

--- True when expired at `now` (default: the clock).
function Credentials:expired(now)
  local r = self:remaining(now)
  return r ~= nil and r <= 0
end

--- "mandatory", "advisory" or nil: whether a refresh is due.
function Credentials:refresh_needed(now)
  local r = self:remaining(now)
  if r == nil then return nil end
  if r < M.MANDATORY_REFRESH then return "mandatory" end
  if r < M.ADVISORY_REFRESH then return "advisory" end
  return nil
end

local function refresh_error(self, msg, cause)
  return errors.new("CredentialRefreshError", format("refreshing credentials from %s failed: %s",
    tostring(values[self].source), msg), { cause = cause })
end

local function as_error(e)
  if errors.is(e) then return e end
  if type(e) == "table" and e.code then return errors.wrap(e) end
  return errors.new("CredentialError", tostring(e))
end

-- botocore `RefreshableCredentials._protected_refresh`. The first fetch of
-- deferred credentials returns the provider's own error (it is the error
-- of finding the credentials, not of refreshing them).
local function do_refresh(self, st, now)
  local need = self:refresh_needed(now)
  if not need then return true end
  local first = values[self].access_key == nil
  local ok, t, err = pcall(st.refresh)
  if not ok then t, err = nil, t end
  if t ~= nil and type(t) ~= "table" then t, err = nil, "the refresh returned " .. type(t) end
  if t then
    local exp = parse_expiration(t.expiration)
    if type(t.access_key) ~= "string" or t.access_key == "" or type(t.secret_key) ~= "string"
        or t.secret_key == "" or (t.expiration ~= nil and not exp)
        or (t.session_token ~= nil and type(t.session_token) ~= "string") then
      err = "the refresh returned incomplete credentials"
    else
      set_values(self, { access_key = t.access_key, secret_key = t.secret_key,
        session_token = t.session_token ~= "" and t.session_token or nil,
        expiration = exp, source = t.source or values[self].source })
      if first and t.refresh then st.refresh = t.refresh end
      if first and not exp then state[self] = nil end -- never expires: nothing more to refresh
      if self:expired(now) then
        return nil, refresh_error(self, "the refreshed credentials are already expired")
      end
      return true
    end
  end
  if first then return nil, as_error(err) end
  local msg = errors.is(err) and err.message or tostring(err)
  if need == "mandatory" then
    return nil, refresh_error(self, msg, errors.is(err) and err or nil)
  end
  -- advisory: keep the current credentials (botocore logs and goes on)
  M.log("warning", format("refreshing credentials from %s failed, using the current ones until the mandatory "
    .. "refresh window: %s", tostring(values[self].source), msg))
  return true
end

--- The credentials to sign with now: refreshed first when a refresh is
-- due (advisory window: failures keep the current ones; mandatory window:
-- failures are returned), fetched first when deferred. Inside a task,
-- concurrent callers wait for one refresh instead of starting their own.
-- Outside a task, credentials whose refresh needs I/O are not refreshed:
-- the current ones are returned inside the advisory window, and an error
-- in the mandatory window; deferred ones not fetched yet raise (misuse).
-- @tparam[opt] number now epoch seconds
-- @treturn Credentials a snapshot that does not change, or nil, err
function Credentials:get_frozen(now)
  if now ~= nil and type(now) ~= "number" then error("credentials: now must be a number (epoch seconds)", 2) end
  local st = state[self]
  local need = st and self:refresh_needed(now)
  if need then
    local async = package.loaded["aio_aws.async"]
    local in_task = async and async.current()
    local ok, err
    if in_task then
      -- one refresh at a time; a task that waited finds the credentials
      -- fresh (do_refresh checks again) and does not refresh them twice
      st.lock = st.lock or async.Semaphore(1)
      local got, lerr = st.lock:acquire(300)
      if not got then return nil, lerr end
      local pok, a, b = pcall(do_refresh, self, st, now)
      st.lock:release()
      if not pok then error(a, 0) end
      ok, err = a, b
    elseif st.io then
      if values[self].access_key == nil then
        error(format("credentials from %s are fetched on first use inside a task (aws.run / aws.spawn)",
          tostring(values[self].source)), 2)
      end
      if need == "mandatory" then
        ok, err = nil, refresh_error(self, "the refresh needs I/O and must run inside a task")
      else
        ok = true
      end
    else
      ok, err = do_refresh(self, st, now)
    end
    if not ok then return nil, err end
    st = state[self]
  elseif not st and self:expired(now) then
    return nil, errors.new("ExpiredCredentials", format("the credentials from %s have expired",
      tostring(values[self].source)))
  end
  if not st then return self end
  local v = values[self]
  return M.new({ access_key = v.access_key, secret_key = v.secret_key, session_token = v.session_token,
    expiration = v.expiration, source = v.source })
end

-- ---------------------------------------------------------------- chain

--- The providers for a config, in order (see the module comment).
-- @tparam table cfg an aio_aws.config object
-- @treturn table list of providers
function M.chain(cfg)
  if type(cfg) ~= "table" or type(cfg.profile_name) ~= "function" then
    error("credentials.chain: config object expected", 2)
  end
  local _, source = cfg:profile_name()
  local out = {}
  for _, name in ipairs(M.ORDER) do
    local modname = M.PROVIDERS[name]
    if modname and not (name == "env" and source == "explicit") then
      out[#out + 1] = require(modname)
    end
  end
  return out
end

--- A provider that always returns the given credentials (botocore's
-- explicit `aws_access_key_id` / `aws_secret_access_key`).
M.explicit = function(t) return require("aio_aws.credentials.explicit").provider(t) end

--- Resolve credentials.
-- @tparam table opts
--
-- * `config`: an aio_aws.config object (default: `config.load{}`).
-- * `credentials`: explicit credentials (a table or a credentials object);
--   they win, and partial ones are an error ("PartialCredentials").
-- * `providers`: a list of providers instead of `chain(config)`.
-- @treturn Credentials or nil, err ("NoCredentials", "PartialCredentials",
--   "InvalidCredentials", or a provider's own error)
function M.resolve(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("credentials.resolve: options table expected", 2) end
  for k in pairs(opts) do
    if k ~= "config" and k ~= "credentials" and k ~= "providers" then
      error(format("credentials.resolve: unknown option %q", tostring(k)), 2)
    end
  end
  local explicit = opts.credentials
  if explicit ~= nil then
    if type(explicit) ~= "table" then error("credentials.resolve: credentials must be a table", 2) end
    if M.is(explicit) then return explicit end
    local p = require("aio_aws.credentials.explicit").provider(explicit)
    local t, err = p.load()
    if not t then return nil, err end
    return M.new(t)
  end
  local cfg = opts.config
  if cfg == nil then
    local err
    cfg, err = require("aio_aws.config").load({})
    if not cfg then return nil, err end
  elseif type(cfg) ~= "table" or type(cfg.profile_name) ~= "function" then
    error("credentials.resolve: config must be an aio_aws.config object", 2)
  end
  local providers = opts.providers
  if providers == nil then
    providers = M.chain(cfg)
  elseif type(providers) ~= "table" then
    error("credentials.resolve: providers must be a list", 2)
  end
  local looked = {}
  for i, p in ipairs(providers) do
    if type(p) ~= "table" or type(p.load) ~= "function" then
      error(format("credentials.resolve: provider %d has no load function", i), 2)
    end
    local t, err = p.load(cfg)
    if t then
      if type(t) ~= "table" then
        return nil, errors.new("InvalidCredentials", format("provider %s returned %s", tostring(p.name), type(t)))
      end
      if t.deferred then
        return M.from_deferred(t, p, cfg, looked)
      end
      local ok, c = pcall(M.new, {
        access_key = t.access_key, secret_key = t.secret_key, session_token = t.session_token,
        expiration = t.expiration, source = t.source or p.name, refresh = t.refresh,
      })
      if not ok then
        -- the message names a field, never its value
        local why = tostring(c):gsub("^[^:]*:%d+: ", ""):gsub("^credentials[%w.]*: ", "")
        return nil, errors.new("InvalidCredentials", format("provider %s returned unusable credentials: %s",
          tostring(p.name), why))
      end
      return c
    end
    if err ~= nil then
      if not errors.is(err) then err = errors.new("CredentialError", tostring(err)) end
      return nil, err
    end
    -- a provider whose describe() returns nil was not configured at all
    -- (no role_arn, no credential_process, ...): nothing to report
    if p.describe then
      local d = p.describe(cfg)
      if d then looked[#looked + 1] = d end
    else
      looked[#looked + 1] = tostring(p.name)
    end
  end
  return nil, errors.new("NoCredentials", "unable to locate credentials; looked in: "
    .. (#looked > 0 and table.concat(looked, "; ") or "no providers"), { looked_in = looked })
end

--- The credentials object for a provider's deferred answer (see the
-- module comment); `looked` lists the places asked before, for the
-- "NoCredentials" of an optional provider that finds nothing. Inside a
-- task the credentials are fetched now and a failure returned.
function M.from_deferred(t, p, cfg, looked)
  if type(t.fetch) ~= "function" then
    return nil, errors.new("InvalidCredentials", format("provider %s returned a deferred answer without fetch",
      tostring(p.name)))
  end
  local fetch = t.fetch
  if t.optional then
    local before = {}
    for i, v in ipairs(looked or {}) do before[i] = v end
    local function not_found(err)
      local all = {}
      for i, v in ipairs(before) do all[i] = v end
      all[#all + 1] = p.describe and p.describe(cfg) or tostring(p.name)
      return errors.new("NoCredentials", format("unable to locate credentials; looked in: %s (%s)",
        table.concat(all, "; "), err.message), { looked_in = all, cause = err })
    end
    fetch = function()
      local r, err = t.fetch()
      if not r and errors.is(err) and err.not_found then return nil, not_found(err) end
      return r, err
    end
  end
  local c = M.deferred({ source = t.source or tostring(p.name), fetch = fetch })
  local async = package.loaded["aio_aws.async"]
  if async and async.current() then
    local f, err = c:get_frozen()
    if not f then return nil, err end
  end
  return c
end

--- Helper for providers: credentials out of a profile section with
-- botocore's keys (`aws_access_key_id`, `aws_secret_access_key`,
-- `aws_session_token`, legacy `aws_security_token`). nil when the section
-- has no access key; nil, err ("PartialCredentials") when the secret is
-- missing. `where` describes the file and profile for the message.
function M.from_profile(section, source, where)
  if type(source) ~= "string" or type(where) ~= "string" then
    error("credentials.from_profile: source and where must be strings", 2)
  end
  if section == nil then return nil end
  if type(section) ~= "table" then error("credentials.from_profile: section must be a table", 2) end
  local ak = section.aws_access_key_id
  if type(ak) ~= "string" or ak == "" then return nil end
  local sk = section.aws_secret_access_key
  if type(sk) ~= "string" or sk == "" then
    return nil, errors.new("PartialCredentials", format(
      "partial credentials found in %s: aws_access_key_id is set but aws_secret_access_key is missing", where),
      { provider = source })
  end
  -- aws_session_token is the SDKs' name; botocore checks the legacy
  -- aws_security_token first, here it is only the fallback.
  local token = section.aws_session_token
  if type(token) ~= "string" or token == "" then token = section.aws_security_token end
  if type(token) ~= "string" or token == "" then token = nil end
  return { access_key = ak, secret_key = sk, session_token = token, source = source }
end

--- A provider for one shared file's profile section: botocore's
-- `SharedCredentialProvider` and `ConfigProvider` differ only in the file
-- (`which`: "credentials" or "config", see `Config:file_profile`) and in
-- how the place is named (`where(cfg)`, used in messages).
function M.file_provider(name, which, where)
  if type(name) ~= "string" or (which ~= "credentials" and which ~= "config") or type(where) ~= "function" then
    error("credentials.file_provider: name, which (\"credentials\" or \"config\") and where(cfg) expected", 2)
  end
  return {
    name = name,
    load = function(cfg) return M.from_profile(cfg:file_profile(which), name, where(cfg)) end,
    describe = where,
  }
end

return M
