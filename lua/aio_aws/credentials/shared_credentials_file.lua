--- Credentials from the shared credentials file, `~/.aws/credentials`
-- or `AWS_SHARED_CREDENTIALS_FILE` (botocore/credentials.py
-- `SharedCredentialProvider`): the `[NAME]` section of the profile in use
-- (no "profile " prefix in this file), keys `aws_access_key_id`,
-- `aws_secret_access_key`, `aws_session_token` / `aws_security_token`.
-- No section or no access key: not applicable; an access key without a
-- secret: "PartialCredentials".
local function where(cfg)
  return string.format("shared credentials file %s [%s]", cfg:files().credentials_file, (cfg:profile_name()))
end

return require("aio_aws.credentials").file_provider("shared-credentials-file", "credentials", where)
