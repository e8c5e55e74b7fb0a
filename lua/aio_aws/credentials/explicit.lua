--- Explicit credentials: the ones a program hands to a session or client
-- (botocore's `aws_access_key_id`, `aws_secret_access_key`,
-- `aws_session_token` arguments of `create_client`). They skip the chain.
-- An access key without a secret (or the reverse) is an error, as botocore's
-- PartialCredentialsError; wrong types are misuse and raise.
local errors = require "aio_aws.errors"

local M = { name = "explicit" }

local FIELDS = { access_key = true, secret_key = true, session_token = true, expiration = true, source = true }

--- A provider returning `t` (checked now, so misuse raises at the caller).
-- @tparam table t `access_key`, `secret_key`, `session_token`, `expiration`
-- @treturn table provider
function M.provider(t)
  if type(t) ~= "table" then error("credentials: explicit credentials must be a table", 3) end
  for k, v in pairs(t) do
    if not FIELDS[k] then error(string.format("credentials: unknown credentials field %q", tostring(k)), 3) end
    if k ~= "expiration" and type(v) ~= "string" then
      error(string.format("credentials: %s must be a string (got %s)", k, type(v)), 3)
    end
  end
  local ak, sk = t.access_key, t.secret_key
  return {
    name = M.name,
    load = function()
      local has_ak, has_sk = ak ~= nil and ak ~= "", sk ~= nil and sk ~= ""
      if has_ak ~= has_sk then
        return nil, errors.new("PartialCredentials", string.format(
          "partial credentials found in explicit credentials, missing: %s", has_ak and "secret_key" or "access_key"),
          { provider = M.name })
      end
      if not has_ak then
        return nil, errors.new("PartialCredentials",
          "explicit credentials given without access_key and secret_key", { provider = M.name })
      end
      return { access_key = ak, secret_key = sk, session_token = t.session_token, expiration = t.expiration,
        source = t.source or M.name }
    end,
    describe = function() return "explicit credentials" end,
  }
end

return M
