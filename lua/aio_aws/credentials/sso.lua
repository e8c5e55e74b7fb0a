--- Credentials from IAM Identity Center (SSO) with the token `aws sso
-- login` left in the cache (botocore/credentials.py `SSOProvider`,
-- `SSOCredentialFetcher`; botocore/utils.py `SSOTokenLoader`; AWS SDKs
-- reference guide, "IAM Identity Center credential provider").
--
--     [profile dev]                      [profile legacy]
--     sso_session = corp                 sso_start_url = https://corp.awsapps.com/start
--     sso_account_id = 123456789012      sso_region = us-east-1
--     sso_role_name = Dev                sso_account_id = 123456789012
--                                        sso_role_name = Dev
--     [sso-session corp]
--     sso_start_url = https://corp.awsapps.com/start
--     sso_region = us-east-1
--
-- The provider applies when the profile has `sso_role_name` or
-- `sso_account_id`; missing settings, an unknown `sso_session` or values
-- that differ between the profile and the session are "InvalidConfigError".
-- On first use inside a task (deferred credentials) it reads the token
-- from `~/.aws/sso/cache/<sha1 of the session name, or of the start URL>.json`
-- (`accessToken`, `expiresAt`) and calls the portal's GetRoleCredentials
-- (`GET https://portal.sso.<sso_region>.<dns suffix>/federation/credentials`,
-- unsigned, the token in `x-amz-sso_bearer_token`; `AWS_ENDPOINT_URL_SSO`
-- or the config's `endpoint_url` for SSO redirect it). Refreshes call it
-- again. Not done: refreshing the SSO token itself through SSO-OIDC
-- (botocore's `SSOTokenProvider`): an expired token of an sso-session is
-- "UnauthorizedSSOTokenError", asking for `aws sso login`.
local errors = require "aio_aws.errors"
local json = require "aio_aws.model.json"

local M = { name = "sso" }

--- Attempts of the GetRoleCredentials call (5xx answers and connection
-- errors are retried).
M.ATTEMPTS = 3

local format = string.format

local PROFILE_REQUIRED = { "sso_role_name", "sso_account_id" }
local SSO_REQUIRED = { "sso_start_url", "sso_region" }

local function invalid(msg)
  return nil, errors.new("InvalidConfigError", msg, { provider = M.name })
end

local function fail(code, msg)
  return nil, errors.new(code, msg, { provider = M.name })
end

-- botocore `_load_sso_config`: nil (not an SSO profile), the settings, or
-- nil, err.
local function sso_config(cfg)
  local name = cfg:profile_name()
  local p = cfg:profile()
  if p.sso_role_name == nil and p.sso_account_id == nil then return nil end
  local conf, required = {}, { table.unpack(PROFILE_REQUIRED) }
  for _, k in ipairs(SSO_REQUIRED) do required[#required + 1] = k end
  for k, v in pairs(p) do conf[k] = v end
  if p.sso_session ~= nil then
    local sess = type(p.sso_session) == "string" and cfg:section("sso-session", p.sso_session)
    if not sess then return invalid(format("the specified sso-session does not exist: %q", tostring(p.sso_session))) end
    for k, v in pairs(sess) do
      if conf[k] ~= nil and conf[k] ~= v then
        return invalid(format("the value of %s differs between profile %s and sso-session %s", k, name, p.sso_session))
      end
      conf[k] = v
    end
    required[#required + 1] = "sso_session"
  end
  local missing = {}
  for _, k in ipairs(required) do
    if type(conf[k]) ~= "string" or conf[k] == "" then missing[#missing + 1] = k end
  end
  if #missing > 0 then
    return invalid(format("the profile %q is configured to use SSO but is missing required configuration: %s",
      name, table.concat(missing, ", ")))
  end
  return conf
end

--- The token cache file of a start URL or session name (botocore
-- `SSOTokenLoader._generate_cache_key`).
function M.cache_file(cfg, key)
  if type(key) ~= "string" then error("sso.cache_file: key must be a string", 2) end
  local h = require("aio_aws.core").hasher("sha1")
  h:update(key)
  local home = cfg:getenv("HOME") or ""
  return format("%s/.aws/sso/cache/%s.json", home, h:hexdigest())
end

local function load_token(cfg, conf)
  local key = conf.sso_session or conf.sso_start_url
  local path = M.cache_file(cfg, key)
  local f = io.open(path, "rb")
  local text = f and f:read("a")
  if f then f:close() end
  if not text then
    return fail("SSOTokenLoadError", format("the SSO token for %s does not exist (run aws sso login)", key))
  end
  local ok, doc = pcall(json.decode, text)
  if not ok or type(doc) ~= "table" or type(doc.accessToken) ~= "string" or doc.expiresAt == nil then
    return fail("SSOTokenLoadError", format("the SSO token for %s is invalid", key))
  end
  if conf.sso_session then
    local credentials = require "aio_aws.credentials"
    local exp = credentials.parse_expiration(doc.expiresAt)
    if not exp or exp <= credentials.now() then
      return fail("UnauthorizedSSOTokenError", format("the SSO session %s has expired or is invalid; run aws sso "
        .. "login (refreshing SSO tokens is not supported)", conf.sso_session))
    end
  end
  return doc.accessToken
end

local function endpoint(cfg, region)
  local url, err = cfg:endpoint_url("SSO")
  if err then return nil, err end
  if url then return (url:gsub("/+$", "")) end
  local _, suffix = require("aio_aws.endpoints").partition_of(region)
  if not suffix then return nil, errors.new("EndpointResolutionError", "no partition for region " .. region) end
  return format("https://portal.sso.%s.%s", region, suffix)
end

--- GetRoleCredentials once (inside a task).
function M.retrieve(cfg, conf)
  local token, err = load_token(cfg, conf)
  if not token then return nil, err end
  local base
  base, err = endpoint(cfg, conf.sso_region)
  if not base then return nil, err end
  local enc = require("aio_aws.core").uri_encode
  local url = format("%s/federation/credentials?role_name=%s&account_id=%s", base, enc(conf.sso_role_name, true),
    enc(conf.sso_account_id, true))
  local http = require "aio_aws.http"
  local res, why
  for _ = 1, M.ATTEMPTS do
    local rerr
    res, rerr = http.request({ method = "GET", url = url, headers = { ["x-amz-sso_bearer_token"] = token },
      connect_timeout = 60, read_timeout = 60 })
    if res and res.status < 500 then break end
    why = res and ("status " .. res.status) or rerr.code
    res = nil
  end
  if not res then return fail("CredentialRetrievalError", "GetRoleCredentials failed: " .. tostring(why)) end
  local etype = (res.headers["x-amzn-errortype"] or ""):match("^[^:]*")
  if res.status == 401 or res.status == 403 or etype == "UnauthorizedException" then
    return fail("UnauthorizedSSOTokenError", "the SSO session of this profile has expired or is invalid; run "
      .. "aws sso login")
  end
  if res.status ~= 200 then
    return fail(etype ~= "" and etype or "CredentialRetrievalError", "GetRoleCredentials failed with status "
      .. res.status)
  end
  local ok, doc = pcall(json.decode, res.body or "")
  local rc = ok and type(doc) == "table" and doc.roleCredentials
  if type(rc) ~= "table" then return fail("CredentialRetrievalError", "the GetRoleCredentials answer has no roleCredentials") end
  for _, k in ipairs({ "accessKeyId", "secretAccessKey", "sessionToken" }) do
    if type(rc[k]) ~= "string" or rc[k] == "" then
      return fail("CredentialRetrievalError", "the GetRoleCredentials answer has no " .. k)
    end
  end
  if math.type(rc.expiration) == nil then
    return fail("CredentialRetrievalError", "the GetRoleCredentials answer's expiration is not a number")
  end
  -- milliseconds since the epoch (botocore `_parse_timestamp`)
  return { access_key = rc.accessKeyId, secret_key = rc.secretAccessKey, session_token = rc.sessionToken,
    expiration = rc.expiration / 1000, source = M.name }
end

function M.load(cfg)
  local conf, err = sso_config(cfg)
  if not conf then return nil, err end
  return { deferred = true, source = M.name, fetch = function() return M.retrieve(cfg, conf) end }
end

function M.describe(cfg)
  local p = cfg:profile()
  if p.sso_role_name == nil and p.sso_account_id == nil then return nil end
  return format("IAM Identity Center (SSO) role of profile %s", (cfg:profile_name()))
end

return M
