--- Credentials from the container credentials endpoint: ECS task roles
-- and EKS Pod Identity (botocore/credentials.py `ContainerProvider`,
-- botocore/utils.py `ContainerMetadataFetcher`; AWS SDKs reference guide,
-- "Container credential provider").
--
-- * `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`: `GET http://169.254.170.2<uri>`;
-- * else `AWS_CONTAINER_CREDENTIALS_FULL_URI`: that URL, whose host must be
--   169.254.170.2, 169.254.170.23 (EKS), fd00:ec2::23, localhost or a
--   loopback address (botocore `_validate_allowed_url`; anything else is an
--   error at once, before any request);
-- * `Authorization:` the content of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
--   (read again for every fetch: EKS rotates it), else
--   `AWS_CONTAINER_AUTHORIZATION_TOKEN`; a token with CR or LF is refused.
--
-- The answer is JSON with `AccessKeyId`, `SecretAccessKey`, `Token`,
-- `Expiration` (all required). Each fetch makes up to `ATTEMPTS` requests
-- of `TIMEOUT` seconds, `SLEEP` seconds apart (botocore: 3, 2 s, 1 s),
-- retrying non-200 answers, invalid JSON and connection errors. Errors
-- ("CredentialRetrievalError") give the status, never the body.
--
-- The fetch is deferred to the first use inside a task (aio_aws.credentials).
local errors = require "aio_aws.errors"
local json = require "aio_aws.model.json"

local M = { name = "container-role" }

M.TIMEOUT = 2
M.ATTEMPTS = 3
M.SLEEP = 1
--- Base URL of relative URIs. Internal: specs point it at a loopback
-- server (deliberately not an environment variable a user could set).
M._relative_base = "http://169.254.170.2"

local ALLOWED = { ["169.254.170.2"] = true, ["169.254.170.23"] = true, ["fd00:ec2::23"] = true, localhost = true }

local REL, FULL = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"
local TOKEN, TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"

local format = string.format

local function fail(msg)
  return nil, errors.new("CredentialRetrievalError", "container credentials: " .. msg, { provider = M.name })
end

-- ip_address(host).is_loopback: 127.0.0.0/8 and ::1.
local function is_loopback(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    for _, o in ipairs({ a, b, c, d }) do
      if #o > 3 or tonumber(o) > 255 or (#o > 1 and o:sub(1, 1) == "0") then return false end
    end
    return tonumber(a) == 127
  end
  if host:find(":", 1, true) and host:match("^[%x:]+$") then
    -- ::1 in any spelling: every group zero but the last, which is 1
    local groups, n = {}, 0
    for g in (host .. ":"):gmatch("([%x]*):") do groups[#groups + 1] = g end
    local compressed = host:find("::", 1, true) ~= nil
    for _, g in ipairs(groups) do if g ~= "" then n = n + 1 end end
    if not compressed and #groups ~= 8 then return false end
    local last = groups[#groups]
    if last == "" or tonumber(last, 16) ~= 1 then return false end
    for i = 1, #groups - 1 do
      if groups[i] ~= "" and tonumber(groups[i], 16) ~= 0 then return false end
    end
    return n <= 8
  end
  return false
end
M._is_loopback = is_loopback

--- The host of a URL as urllib's `hostname` gives it (lower case, IPv6
-- brackets removed), or nil.
local function hostname(url)
  local authority = url:match("^[%a][%w+.-]*://([^/?#]*)")
  if not authority then return nil end
  authority = authority:gsub("^.*@", "")
  local v6 = authority:match("^%[([^%]]+)%]")
  if v6 then return v6:lower() end
  local host = authority:gsub(":%d*$", "")
  if host == "" then return nil end
  return host:lower()
end

--- Whether botocore would fetch from this full URI.
function M.allowed_url(url)
  if type(url) ~= "string" then error("container.allowed_url: string expected", 2) end
  local host = hostname(url)
  if not host or not url:match("^https?://") then return false end
  return ALLOWED[host] == true or is_loopback(host)
end

local function target(cfg)
  local rel = cfg:getenv(REL)
  if rel then return M._relative_base .. rel end
  return cfg:getenv(FULL)
end

local function auth_token(cfg)
  local token
  local path = cfg:getenv(TOKEN_FILE)
  if path then
    local f = io.open(path, "rb")
    token = f and f:read("a")
    if f then f:close() end
    if not token then return nil, select(2, fail("cannot read " .. TOKEN_FILE .. " " .. path)) end
  else
    token = cfg:getenv(TOKEN)
  end
  if token and token:find("[\r\n]") then
    return nil, select(2, fail("the authorization token is not a legal header value (it holds CR or LF)"))
  end
  return token or false
end

--- Fetch the credentials once (inside a task).
function M.retrieve(cfg)
  local url = target(cfg)
  if not url then return fail(format("neither %s nor %s is set", REL, FULL)) end
  local token, terr = auth_token(cfg)
  if token == nil then return nil, terr end
  local headers = { accept = "application/json" }
  if token then headers.authorization = token end
  local http, async = require "aio_aws.http", require "aio_aws.async"
  local why, doc
  for attempt = 1, M.ATTEMPTS do
    local res, err = http.request({ method = "GET", url = url, headers = headers,
      connect_timeout = M.TIMEOUT, timeout = M.TIMEOUT })
    if not res then
      why = format("%s (%s)", err.code, err.message)
      if err.code == "InvalidURL" then break end
    elseif res.status ~= 200 then
      why = format("non-200 answer (%d)", res.status)
    else
      local ok, v = pcall(json.decode, res.body or "")
      if ok and type(v) == "table" then
        doc = v
        break
      end
      why = "the answer is not a JSON object"
    end
    if attempt < M.ATTEMPTS and M.SLEEP > 0 then async.sleep(M.SLEEP) end
  end
  if not doc then return fail(why) end
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "Token", "Expiration" }) do
    if type(doc[k]) ~= "string" or doc[k] == "" then return fail("the answer has no " .. k) end
  end
  local exp = require("aio_aws.credentials").parse_expiration(doc.Expiration)
  if not exp then return fail("the answer's Expiration is not an ISO 8601 timestamp") end
  return { access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = doc.Token,
    expiration = exp, source = M.name }
end

function M.load(cfg)
  local url = target(cfg)
  if not url then return nil end
  if not cfg:getenv(REL) and not M.allowed_url(url) then
    return nil, errors.new("InvalidConfigError", format("%s: unsupported host %q; only 169.254.170.2, "
      .. "169.254.170.23, fd00:ec2::23, localhost and loopback addresses are allowed", FULL,
      tostring(hostname(url))), { provider = M.name })
  end
  return { deferred = true, source = M.name, fetch = function() return M.retrieve(cfg) end }
end

function M.describe(cfg)
  local url = target(cfg)
  if not url then return nil end
  return "container credentials endpoint " .. url
end

return M
