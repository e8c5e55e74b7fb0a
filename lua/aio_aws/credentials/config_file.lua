--- Credentials from the shared config file, `~/.aws/config` or
-- `AWS_CONFIG_FILE` (botocore/credentials.py `ConfigProvider`): the
-- profile's own section (`[profile NAME]`, or `[default]`) with the same
-- keys as the credentials file. Asked after the credentials file, so a
-- profile in both files takes its keys from the credentials file.
local credentials = require "aio_aws.credentials"

local M = { name = "config-file" }

local function where(cfg)
  local name = cfg:profile_name()
  local section = name == "default" and "[default]" or ("[profile " .. name .. "]")
  return string.format("config file %s %s", cfg:files().config_file, section)
end

function M.load(cfg)
  return credentials.from_profile(cfg:file_profile("config"), M.name, where(cfg))
end

M.describe = where

return M
