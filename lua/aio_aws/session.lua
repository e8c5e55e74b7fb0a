--- Sessions: shared configuration and credentials for clients.
--
--     local aws = require "aio_aws"
--     local session = aws.session{region = "eu-west-1", profile = "dev"}
--     local batch = session:client("batch")
--
-- `aws.session{region, profile, credentials = {access_key, secret_key,
-- session_token}, config = {...}}`. The shared config and credentials files
-- are read here (before the first request), never at `require` time.
-- Returns the session, or `nil, err` for a malformed config file.
--
-- Credentials come from aio_aws.credentials' chain. `session:client` may
-- be called outside a task: the providers that need I/O (assume role, web
-- identity, credential_process, container, instance metadata) are then
-- fetched on the client's first request, inside its task. The region is
-- the configured one; with none, a client made inside a task (without an
-- `endpoint_url`) asks the instance metadata service once per session
-- (`session:get_region()`), the last resort of the AWS SDKs.
local config = require "aio_aws.config"
local credentials = require "aio_aws.credentials"
local endpoints = require "aio_aws.endpoints"
local validate = require "aio_aws.validate"
local retry = require "aio_aws.retry"
local client = require "aio_aws.client"

local M = {}

local Session = {}
Session.__index = Session
Session.__name = "aio_aws.Session"

function Session.__tostring(s)
  return ("aio_aws.Session(region=%s, profile=%s)"):format(tostring(s.region), tostring(s.profile))
end

local SESSION_OPTS = { region = "string", profile = "string", credentials = "table", config = "table" }

--- Create a session.
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("aws.session: expected an options table", 2) end
  for k, v in pairs(opts) do
    local want = SESSION_OPTS[k]
    if not want then error("aws.session: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then error(("aws.session: option '%s' must be a %s"):format(k, want), 2) end
  end
  local load = { profile = opts.profile }
  for k, v in pairs(opts.config or {}) do load[k] = v end
  local cfg, err = config.load(load)
  if not cfg then return nil, err end
  return setmetatable({
    region = opts.region or cfg:region(),
    profile = cfg:profile_name(),
    _config = cfg,
    _explicit = opts.credentials,
  }, Session)
end

--- The session's credentials (resolved once, on first use).
function Session:get_credentials()
  if not self._creds then
    local creds, err = credentials.resolve({ config = self._config, credentials = self._explicit })
    if not creds then return nil, err end
    self._creds = creds
  end
  return self._creds
end

--- The session's region: the configured one, else (inside a task, once
-- per session) the instance's region from the instance metadata service
-- unless AWS_EC2_METADATA_DISABLED. nil when there is none.
function Session:get_region()
  if self.region or self._imds_region_asked then return self.region end
  local async = package.loaded["aio_aws.async"]
  if not (async and async.current()) then return nil end
  self._imds_region_asked = true
  local region = require("aio_aws.credentials.imds").region(self._config)
  if region then self.region = region end
  return self.region
end

--- A client for `service` ("s3", "batch", ...). `opts`: endpoint_url,
-- region, max_pool_connections, connect_timeout, read_timeout,
-- retries = {mode, max_attempts}, s3 = {addressing_style}, verify,
-- user_agent_extra, credentials, api_version, transport.
-- Returns the client, or `nil, err`.
function Session:client(service, opts)
  if type(service) ~= "string" then error("session:client: service name must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("session:client: options must be a table", 2) end
  opts = opts or {}
  local creds, err
  if opts.credentials then
    creds, err = credentials.resolve({ config = self._config, credentials = opts.credentials })
  else
    creds, err = self:get_credentials()
  end
  if not creds then return nil, err end
  local region = opts.region or self.region
  if region == nil and opts.endpoint_url == nil and not self._config:endpoint_url() then
    region = self:get_region()
  end
  return client.new(service, opts, {
    config = self._config,
    region = region,
    credentials = creds,
    endpoints = endpoints,
    validate = validate,
    retry = retry,
  })
end

M.Session = Session
return M
