--- Credentials (and the region) from the EC2 instance metadata service,
-- IMDSv2 with botocore's v1 fallback (botocore/utils.py `IMDSFetcher`,
-- `InstanceMetadataFetcher`; botocore/credentials.py
-- `InstanceMetadataProvider`; EC2 User Guide, "Use the Instance Metadata
-- Service to access instance metadata").
--
-- 1. `PUT latest/api/token` with `x-aws-ec2-metadata-token-ttl-seconds:
--    21600`. 200: the token. 404, 403, 405: no token (IMDSv1). 400: a bad
--    request, no credentials here. A read timeout: no token at once. Other
--    statuses and connection errors: the next attempt, then no token.
-- 2. `GET latest/meta-data/iam/security-credentials/` (the role name),
--    then `.../<role>` (JSON `AccessKeyId`, `SecretAccessKey`, `Token`,
--    `Expiration`), with `x-aws-ec2-metadata-token` when there is a token.
--    A non-200 answer, an empty body (or invalid JSON for the credentials)
--    and connection errors are retried up to the number of attempts.
-- Without a token and with `ec2_metadata_v1_disabled`, an error.
--
-- Settings (aio_aws.config): `AWS_EC2_METADATA_DISABLED=true` (the
-- provider is then not asked at all), `metadata_service_timeout`
-- (`AWS_METADATA_SERVICE_TIMEOUT`, default 1 s: connect and idle read
-- timeout of each request), `metadata_service_num_attempts` (default 1),
-- `ec2_metadata_service_endpoint` (a custom base URL, also what tests use),
-- `ec2_metadata_service_endpoint_mode` (IPv4: http://169.254.169.254/,
-- IPv6: http://[fd00:ec2::254]/), `ec2_metadata_v1_disabled`.
--
-- The provider is last in the chain and cannot know without I/O whether
-- it applies: it returns a deferred, optional answer (aio_aws.credentials)
-- fetched on first use inside a task; finding nothing there becomes
-- "NoCredentials". Credentials close to expiry are extended as botocore's
-- `_evaluate_expiration` does (static stability: IMDS keeps serving the old
-- credentials during an outage), by 15 min plus 2 to 10 min of jitter.
local errors = require "aio_aws.errors"
local json = require "aio_aws.model.json"

local M = { name = "iam-role" }

M.ENDPOINT_IPV4 = "http://169.254.169.254/"
M.ENDPOINT_IPV6 = "http://[fd00:ec2::254]/"
M.TOKEN_TTL = "21600"
M.CREDENTIALS_PATH = "latest/meta-data/iam/security-credentials/"
M.REGION_PATH = "latest/meta-data/placement/region"
--- botocore's `ec2_credential_refresh_window` (the advisory window) and
-- the jitter added to it; `random(lo, hi)` is replaceable in tests.
M.REFRESH_WINDOW = 15 * 60
M.random = math.random

local format = string.format

local function not_found(msg)
  return nil, errors.new("NoCredentials", msg, { not_found = true, provider = M.name })
end

local function disabled(cfg)
  local v = cfg:getenv("AWS_EC2_METADATA_DISABLED")
  return v ~= nil and v:lower() == "true"
end

--- The base URL the settings choose (botocore `_select_base_url`), or
-- nil, err for an invalid one ("InvalidIMDSEndpoint").
function M.base_url(cfg)
  local custom, err = cfg:get("ec2_metadata_service_endpoint")
  if err then return nil, err end
  local mode
  mode, err = cfg:get("ec2_metadata_service_endpoint_mode")
  if err then return nil, err end
  local url = custom or ((mode and mode:lower() == "ipv6") and M.ENDPOINT_IPV6 or M.ENDPOINT_IPV4)
  if not url:match("^https?://[^/%s]+") or url:find("%s") then
    return nil, errors.new("InvalidIMDSEndpoint", "invalid instance metadata endpoint " .. url)
  end
  if url:sub(-1) ~= "/" then url = url .. "/" end
  return url
end

local function settings(cfg)
  local base, err = M.base_url(cfg)
  if not base then return nil, err end
  local s = { base = base }
  s.timeout, err = cfg:get("metadata_service_timeout")
  if err then return nil, err end
  s.attempts, err = cfg:get("metadata_service_num_attempts")
  if err then return nil, err end
  s.v1_disabled, err = cfg:get("ec2_metadata_v1_disabled")
  if err then return nil, err end
  return s
end

local function request(s, method, path, headers)
  return require("aio_aws.http").request({
    method = method, url = s.base .. path, headers = headers,
    connect_timeout = s.timeout, read_timeout = s.timeout,
  })
end

-- botocore `_fetch_metadata_token`: the token, or nil (use IMDSv1), or
-- nil, err for a 400.
local function fetch_token(s)
  for _ = 1, s.attempts do
    local res, err = request(s, "PUT", "latest/api/token", { ["x-aws-ec2-metadata-token-ttl-seconds"] = M.TOKEN_TTL })
    if res then
      if res.status == 200 then return res.body end
      if res.status == 404 or res.status == 403 or res.status == 405 then return nil end
      if res.status == 400 then
        return nil, errors.new("NoCredentials", "the instance metadata service refused the token request (400)",
          { not_found = true, provider = M.name })
      end
    elseif err.code == "Timeout" then
      return nil -- ReadTimeoutError: straight to IMDSv1
    elseif err.code == "InvalidURL" then
      return nil, errors.new("InvalidIMDSEndpoint", err.message)
    end
  end
  return nil
end

-- botocore `_get_request`: the response, or nil, err once the attempts
-- are used up ("retries exceeded": nothing found here).
local function get(s, path, token, bad)
  if not token and s.v1_disabled then
    return nil, errors.new("MetadataRetrievalError",
      "unable to retrieve a token for an IMDSv2 call and IMDSv1 is disabled (ec2_metadata_v1_disabled)")
  end
  local headers = token and { ["x-aws-ec2-metadata-token"] = token } or {}
  local why
  for _ = 1, s.attempts do
    local res, err = request(s, "GET", path, headers)
    if res then
      why = bad(res)
      if not why then return res end
    elseif err.code == "InvalidURL" then
      return nil, errors.new("InvalidIMDSEndpoint", err.message)
    else
      why = err.code
    end
  end
  return not_found(format("the instance metadata service at %s did not answer %s (%s)", s.base, path, why))
end

local function non_ok_or_empty(res)
  if res.status ~= 200 then return "status " .. res.status end
  if res.body == nil or res.body == "" then return "empty body" end
end

local function bad_credentials(res)
  local why = non_ok_or_empty(res)
  if why then return why end
  local ok, v = pcall(json.decode, res.body)
  if not ok or v == nil or type(v) ~= "table" then return "invalid JSON" end
end

-- botocore `_evaluate_expiration`.
local function extend(exp)
  local now = require("aio_aws.credentials").now()
  local offset = M.REFRESH_WINDOW + M.random(120, 600)
  if now >= exp - offset then
    require("aio_aws.credentials").log("info", format("instance metadata credentials expire within %d s: "
      .. "extending them by that much, as IMDS may be unavailable", offset))
    return now + offset
  end
  return exp
end

--- Fetch the role's credentials (inside a task): a table for
-- aio_aws.credentials, or nil, err (`err.not_found` when the service is
-- not there or has no role).
-- @tparam table cfg an aio_aws.config object
function M.retrieve(cfg)
  if disabled(cfg) then return not_found("the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED)") end
  local s, err = settings(cfg)
  if not s then return nil, err end
  local token
  token, err = fetch_token(s)
  if err then return nil, err end
  local res
  res, err = get(s, M.CREDENTIALS_PATH, token, non_ok_or_empty)
  if not res then return nil, err end
  local role = res.body
  res, err = get(s, M.CREDENTIALS_PATH .. role, token, bad_credentials)
  if not res then return nil, err end
  local doc = json.decode(res.body)
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "Token", "Expiration" }) do
    -- IMDS may answer 200 with {"Code": ..., "Message": ...} (e.g. EC2 is
    -- not a trusted entity of the role): nothing usable, botocore goes on
    if type(doc[k]) ~= "string" or doc[k] == "" then
      return not_found(format("the instance metadata credentials of the role have no %s", k))
    end
  end
  local exp = require("aio_aws.credentials").parse_expiration(doc.Expiration)
  if not exp then return not_found("the instance metadata credentials have an invalid Expiration") end
  return { access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = doc.Token,
    expiration = extend(exp), source = M.name }
end

--- The region of the instance (`latest/meta-data/placement/region`;
-- botocore reads the availability zone and drops its last letter, which
-- is wrong for Local Zones), inside a task; nil, err when unavailable.
function M.region(cfg)
  if type(cfg) ~= "table" or type(cfg.getenv) ~= "function" then error("imds.region: config object expected", 2) end
  if disabled(cfg) then return not_found("the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED)") end
  local s, err = settings(cfg)
  if not s then return nil, err end
  local token
  token, err = fetch_token(s)
  if err then return nil, err end
  local res
  res, err = get(s, M.REGION_PATH, token, non_ok_or_empty)
  if not res then return nil, err end
  local region = res.body:match("^%s*([%w%-]+)%s*$")
  if not region then return nil, errors.new("InvalidRegion", "the instance metadata region is not a region name") end
  return region
end

function M.load(cfg)
  if disabled(cfg) then return nil end
  return { deferred = true, optional = true, source = M.name, fetch = function() return M.retrieve(cfg) end }
end

function M.describe(cfg)
  if disabled(cfg) then return nil end
  local base = M.base_url(cfg)
  return format("instance metadata service (%s)", tostring(base))
end

return M
