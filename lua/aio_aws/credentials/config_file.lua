--- Credentials from the shared config file, `~/.aws/config` or
-- `AWS_CONFIG_FILE` (botocore/credentials.py `ConfigProvider`): the
-- profile's own section (`[profile NAME]`, or `[default]`) with the same
-- keys as the credentials file. Asked after the credentials file, so a
-- profile in both files takes its keys from the credentials file.
local function where(cfg)
  local name = cfg:profile_name()
  local section = name == "default" and "[default]" or ("[profile " .. name .. "]")
  return string.format("config file %s %s", cfg:files().config_file, section)
end

return require("aio_aws.credentials").file_provider("config-file", "config", where)
