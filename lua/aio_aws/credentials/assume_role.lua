--- Credentials from STS AssumeRole for a profile with `role_arn`
-- (botocore/credentials.py `AssumeRoleProvider`; AWS CLI User Guide,
-- "Use an IAM role in the AWS CLI").
--
--     [profile dev]
--     role_arn = arn:aws:iam::123456789012:role/dev
--     source_profile = base            ; or credential_source = Environment |
--                                      ;    Ec2InstanceMetadata | EcsContainer
--     external_id = ...                ; optional
--     role_session_name = ...          ; default aio-aws-session-<epoch seconds>
--     duration_seconds = 3600          ; optional (not an integer: ignored, as botocore)
--
-- * A profile with `web_identity_token_file` is left to the web identity
--   provider. `mfa_serial` is refused ("MFANotSupported"): a library in
--   an event loop cannot prompt for a code.
-- * `source_profile` XOR `credential_source` (both: "InvalidConfigError";
--   neither: "PartialCredentials"). A source profile with static keys, or
--   without `role_arn`, gets its credentials from the profile providers
--   (web identity, SSO, shared credentials file, credential_process,
--   config file; never the environment), and must have some. A source profile
--   with `role_arn` chains: its role is assumed first.
-- * Loops are refused ("InfiniteLoopConfigError", botocore
--   `_validate_source_profile`): a profile may name itself as source only
--   when it has static keys.
-- All of this is checked in `load`, without I/O. The AssumeRole calls
-- happen on first use inside a task (deferred credentials), signed with
-- the source credentials, through an `sts` client of this project
-- (`AWS_ENDPOINT_URL_STS` / `endpoint_url` in the config redirect it);
-- later refreshes call AssumeRole again.
local errors = require "aio_aws.errors"

local M = { name = "assume-role" }

local format = string.format

--- `credential_source` names (botocore `CanonicalNameCredentialSourcer`,
-- case-insensitive) -> provider module.
M.CREDENTIAL_SOURCES = {
  environment = "aio_aws.credentials.env",
  ec2instancemetadata = "aio_aws.credentials.imds",
  ecscontainer = "aio_aws.credentials.container",
}

--- Default RoleSessionName (botocore: "botocore-session-<epoch>").
function M.session_name()
  return format("aio-aws-session-%d", math.floor(require("aio_aws.credentials").now()))
end

-- ---------------------------------------------------------------- STS

--- An `sts` client for the providers, on the project's own client
-- (query protocol, endpoint rules, retries). `creds`: a credentials object
-- (signing calls its `get_frozen()`); `unsigned`: send without a
-- signature, as botocore's `Config(signature_version=UNSIGNED)` for
-- AssumeRoleWithWebIdentity (the client always signs, so the transport
-- drops the signature headers).
function M.sts_client(cfg, creds, unsigned)
  local credentials = require "aio_aws.credentials"
  local opts = {}
  if unsigned then
    creds = credentials.new({ access_key = "UNSIGNED", secret_key = "UNSIGNED", source = "unsigned" })
    local http = require "aio_aws.http"
    local DROP = { authorization = true, ["x-amz-date"] = true, ["x-amz-security-token"] = true,
      ["x-amz-content-sha256"] = true }
    opts.transport = function(p)
      local headers = {}
      for k, v in pairs(p.headers) do
        if not DROP[k:lower()] then headers[k] = v end
      end
      return http.request({ method = p.method, url = p.url, headers = headers, body = p.body,
        connect_timeout = 60, read_timeout = 60 })
    end
  end
  return require("aio_aws.client").new("sts", opts, {
    config = cfg, region = cfg:region(), credentials = creds,
    endpoints = require "aio_aws.endpoints", validate = require "aio_aws.validate",
    retry = require "aio_aws.retry",
  })
end

--- An STS answer's `Credentials` as a provider's table, or nil, err.
function M.from_sts(out, source)
  local c = type(out) == "table" and out.Credentials
  if type(c) ~= "table" then
    return nil, errors.new("CredentialRetrievalError", "the STS answer has no Credentials", { provider = source })
  end
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" }) do
    if c[k] == nil or c[k] == "" then
      return nil, errors.new("CredentialRetrievalError", "the STS answer's Credentials have no " .. k,
        { provider = source })
    end
  end
  return { access_key = c.AccessKeyId, secret_key = c.SecretAccessKey, session_token = c.SessionToken,
    expiration = c.Expiration, source = source }
end

-- ---------------------------------------------------------------- profiles

local function has_static(p)
  return p.aws_access_key_id ~= nil or p.aws_secret_access_key ~= nil
end

local function has_role(p)
  return p.role_arn ~= nil and p.web_identity_token_file == nil
end

local function invalid(code, msg, extra)
  local fields = { provider = M.name }
  for k, v in pairs(extra or {}) do fields[k] = v end
  return nil, errors.new(code, msg, fields)
end

local build -- forward

-- botocore `_resolve_credentials_from_profile`: a credentials object.
local function source_from_profile(cfg, name, visited)
  local credentials = require "aio_aws.credentials"
  local p = cfg:profile(name)
  if has_static(p) or not has_role(p) then
    local sub, err = cfg:for_profile(name)
    if not sub then return nil, err end
    local providers = {}
    for _, m in ipairs({ "web_identity", "sso", "shared_credentials_file", "credential_process", "config_file" }) do
      providers[#providers + 1] = require(credentials.PROVIDERS[m])
    end
    local c
    c, err = credentials.resolve({ config = sub, providers = providers })
    if not c then
      if err.code == "NoCredentials" then
        return invalid("InvalidConfigError", format("the source profile %q must have credentials", name))
      end
      return nil, err
    end
    return c
  end
  return build(cfg, name, visited)
end

local function source_from_credential_source(cfg, name, source)
  local credentials = require "aio_aws.credentials"
  local modname = M.CREDENTIAL_SOURCES[source:lower()]
  local p = require(modname)
  local t, err = p.load(cfg)
  if not t and not err then
    return invalid("CredentialRetrievalError", format("no credentials found in credential_source %s "
      .. "referenced in profile %s", source, name))
  end
  if not t then return nil, err end
  if t.deferred then return credentials.from_deferred(t, p, cfg, {}) end
  local ok, c = pcall(credentials.new, t)
  if not ok then return invalid("InvalidCredentials", "credential_source " .. source .. " returned unusable credentials") end
  return c
end

-- botocore `_get_role_config` and `_load_creds_via_assume_role`: deferred
-- credentials for profile `name`, its source resolved (without I/O).
function build(cfg, name, visited)
  local credentials = require "aio_aws.credentials"
  local p = cfg:profile(name)
  if p == nil then return invalid("ProfileNotFound", format("the profile %q could not be found", name)) end
  local role_arn = p.role_arn
  if type(role_arn) ~= "string" or role_arn == "" then
    return invalid("InvalidConfigError", format("the profile %q has an empty role_arn", name))
  end
  if p.mfa_serial ~= nil then
    return invalid("MFANotSupported", format("the profile %q sets mfa_serial: assuming a role with an MFA code "
      .. "needs a prompt, which aio-aws does not do; use credentials that do not need MFA", name))
  end
  local source_profile, credential_source = p.source_profile, p.credential_source
  if source_profile ~= nil and credential_source ~= nil then
    return invalid("InvalidConfigError", format("the profile %q contains both source_profile and credential_source",
      name))
  end
  if source_profile == nil and credential_source == nil then
    return invalid("PartialCredentials", format("the profile %q sets role_arn but neither source_profile nor "
      .. "credential_source", name))
  end
  local src, err
  if credential_source ~= nil then
    if type(credential_source) ~= "string" or not M.CREDENTIAL_SOURCES[credential_source:lower()] then
      return invalid("InvalidConfigError", format("the credential source %q referenced in profile %q is not valid "
        .. "(Environment, Ec2InstanceMetadata or EcsContainer)", tostring(credential_source), name))
    end
    src, err = source_from_credential_source(cfg, name, credential_source)
  else
    if type(source_profile) ~= "string" or cfg:profile(source_profile) == nil then
      return invalid("InvalidConfigError", format("the source_profile %q referenced in the profile %q does not exist",
        tostring(source_profile), name))
    end
    local seen = false
    for _, v in ipairs(visited) do if v == source_profile then seen = true end end
    if seen and (source_profile ~= name or not has_static(cfg:profile(source_profile))) then
      local chain = {}
      for i, v in ipairs(visited) do chain[i] = v end
      chain[#chain + 1] = source_profile
      return invalid("InfiniteLoopConfigError", format("infinite loop in the source_profile chain: %s",
        table.concat(chain, " -> ")), { visited_profiles = chain })
    end
    local next_visited = {}
    for i, v in ipairs(visited) do next_visited[i] = v end
    next_visited[#next_visited + 1] = source_profile
    src, err = source_from_profile(cfg, source_profile, next_visited)
  end
  if not src then return nil, err end

  local params = { RoleArn = role_arn, RoleSessionName = p.role_session_name or M.session_name() }
  if p.external_id ~= nil then params.ExternalId = p.external_id end
  if p.duration_seconds ~= nil then
    params.DurationSeconds = math.tointeger(tonumber(p.duration_seconds))
  end
  local client
  local function fetch()
    if not client then
      local cerr
      client, cerr = M.sts_client(cfg, src)
      if not client then return nil, cerr end
    end
    local out, cerr = client:call("AssumeRole", params)
    if not out then return nil, cerr end
    return M.from_sts(out, M.name)
  end
  return credentials.deferred({ source = M.name, fetch = fetch })
end

--- The profile's assumed-role credentials (deferred), nil when the
-- profile has no `role_arn`, or nil, err for a bad configuration.
function M.load(cfg)
  local name = cfg:profile_name()
  local p = cfg:profile()
  if not has_role(p) then return nil end
  local c, err = build(cfg, name, { name })
  if not c then return nil, err end
  return { deferred = true, source = M.name, fetch = function()
    local f, ferr = c:get_frozen()
    if not f then return nil, ferr end
    return { access_key = f.access_key, secret_key = f.secret_key, session_token = f.session_token,
      expiration = f.expiration, source = M.name }
  end }
end

function M.describe(cfg)
  local p = cfg:profile()
  if not has_role(p) then return nil end
  return format("assume role %s (profile %s)", tostring(p.role_arn), (cfg:profile_name()))
end

return M
