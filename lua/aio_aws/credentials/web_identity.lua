--- Credentials from STS AssumeRoleWithWebIdentity (EKS IRSA, GitHub
-- Actions OIDC, ...): botocore/credentials.py
-- `AssumeRoleWithWebIdentityProvider`.
--
-- Settings, each from its environment variable, else the profile's key:
-- `AWS_WEB_IDENTITY_TOKEN_FILE` / `web_identity_token_file` (the provider
-- applies when it is set), `AWS_ROLE_ARN` / `role_arn` (required:
-- "InvalidConfigError" otherwise), `AWS_ROLE_SESSION_NAME` /
-- `role_session_name` (default aio-aws-session-<epoch seconds>). With an
-- explicitly chosen profile the environment variables are ignored, as in
-- botocore (`disable_env_vars`).
--
-- The token file is read for every call (it is rotated), the call is sent
-- unsigned like botocore's, and it happens on first use inside a task
-- (deferred credentials); refreshes call it again. The token is a secret:
-- it never appears in errors.
local errors = require "aio_aws.errors"

local M = { name = "assume-role-with-web-identity" }

local ENV = { web_identity_token_file = "AWS_WEB_IDENTITY_TOKEN_FILE", role_arn = "AWS_ROLE_ARN",
  role_session_name = "AWS_ROLE_SESSION_NAME" }

local function get(cfg, key)
  local _, source = cfg:profile_name()
  if source ~= "explicit" then
    local v = cfg:getenv(ENV[key])
    if v then return v end
  end
  local v = cfg:profile()[key]
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function read_token(path)
  local f = io.open(path, "rb")
  local token = f and f:read("a")
  if f then f:close() end
  if not token or token == "" then
    return nil, errors.new("CredentialRetrievalError", "cannot read the web identity token file " .. path,
      { provider = M.name })
  end
  return token
end

function M.load(cfg)
  local path = get(cfg, "web_identity_token_file")
  if not path then return nil end
  local role_arn = get(cfg, "role_arn")
  if not role_arn then
    return nil, errors.new("InvalidConfigError", "the profile or the environment is configured to assume a role "
      .. "with web identity but has no role ARN: set role_arn in the profile or AWS_ROLE_ARN", { provider = M.name })
  end
  local assume_role = require "aio_aws.credentials.assume_role"
  local name = get(cfg, "role_session_name") or assume_role.session_name()
  local client
  local function fetch()
    local token, err = read_token(path)
    if not token then return nil, err end
    if not client then
      client, err = assume_role.sts_client(cfg, nil, true)
      if not client then return nil, err end
    end
    local out
    out, err = client:call("AssumeRoleWithWebIdentity", { RoleArn = role_arn, RoleSessionName = name,
      WebIdentityToken = token })
    if not out then return nil, err end
    return assume_role.from_sts(out, M.name)
  end
  return { deferred = true, source = M.name, fetch = fetch }
end

function M.describe(cfg)
  local path = get(cfg, "web_identity_token_file")
  if not path then return nil end
  return "web identity token file " .. path
end

return M
