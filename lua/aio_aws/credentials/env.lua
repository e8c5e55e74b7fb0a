--- Credentials from the environment (botocore/credentials.py
-- `EnvProvider`; AWS SDKs reference guide, "Environment variables"):
-- `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (or
-- the legacy `AWS_SECURITY_TOKEN`), `AWS_CREDENTIAL_EXPIRATION`.
--
-- * no AWS_ACCESS_KEY_ID: not applicable;
-- * AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY: "PartialCredentials";
-- * with AWS_CREDENTIAL_EXPIRATION (ISO 8601) the credentials are
--   refreshable: a refresh reads the environment again, which must then
--   hold all three variables (botocore's fetcher with require_expiry).
--
-- When both token variables are set AWS_SESSION_TOKEN wins (the SDKs'
-- standard name); botocore looks at AWS_SECURITY_TOKEN first.
-- Variables are read through the config object, so tests inject them.
local errors = require "aio_aws.errors"

local M = { name = "env" }

local function partial(var)
  return nil, errors.new("PartialCredentials",
    "partial credentials found in environment variables, missing: " .. var, { provider = M.name })
end

local function fetch(cfg, require_expiry)
  local ak = cfg:getenv("AWS_ACCESS_KEY_ID")
  if not ak then return partial("AWS_ACCESS_KEY_ID") end
  local sk = cfg:getenv("AWS_SECRET_ACCESS_KEY")
  if not sk then return partial("AWS_SECRET_ACCESS_KEY") end
  local token = cfg:getenv("AWS_SESSION_TOKEN") or cfg:getenv("AWS_SECURITY_TOKEN")
  local exp_text = cfg:getenv("AWS_CREDENTIAL_EXPIRATION")
  if require_expiry and not exp_text then return partial("AWS_CREDENTIAL_EXPIRATION") end
  local exp
  if exp_text then
    exp = require("aio_aws.credentials").parse_expiration(exp_text)
    if not exp then
      return nil, errors.new("InvalidCredentials",
        "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 timestamp", { provider = M.name })
    end
  end
  return { access_key = ak, secret_key = sk, session_token = token, expiration = exp, source = M.name }
end

function M.load(cfg)
  if not cfg:getenv("AWS_ACCESS_KEY_ID") then return nil end
  local t, err = fetch(cfg, false)
  if not t then return nil, err end
  if t.expiration then
    t.refresh = function()
      local r, rerr = fetch(cfg, true)
      if not r then error(rerr, 0) end
      return r
    end
  end
  return t
end

function M.describe()
  return "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
end

return M
