--- S3 file transfers, the conveniences boto3 injects into S3 clients:
--
--     local out, err = s3:upload_file("/data/big.bin", "bucket", "key", {ContentType = "..."})
--     local out, err = s3:download_file("bucket", "key", "/data/copy.bin", {VersionId = "..."})
--
-- `upload_file` sends the file with one PutObject, streamed from disk (never
-- read whole; S3 takes up to 5 GiB this way). `download_file` streams
-- GetObject into a temporary file in the target's directory and renames it
-- over `path` only when every byte arrived and passed the Content-Length
-- (and checksum, when validated) checks; on any failure the temporary file
-- is removed and `path` is left as it was. `extra` holds further
-- PutObject / GetObject parameters. Both return the operation's result
-- (without `Body` for downloads), or nil, err.
local errors = require "aio_aws.errors"

local M = {}

local CHUNK = 1 << 20

local function check(client, a, b, c, extra, names, fn)
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error(fn .. ": call it as a method of an S3 client (s3:" .. fn .. "(...))", 3)
  end
  local args = { a, b, c }
  for i = 1, 3 do
    local v = args[i]
    if type(v) ~= "string" or v == "" then error(("%s: %s must be a non-empty string"):format(fn, names[i]), 3) end
  end
  if extra ~= nil and type(extra) ~= "table" then error(fn .. ": extra parameters must be a table", 3) end
  local params = {}
  for k, v in pairs(extra or {}) do params[k] = v end
  return params
end

--- Upload the file at `path` to `bucket`/`key`.
function M.upload_file(client, path, bucket, key, extra)
  local params = check(client, path, bucket, key, extra, { "path", "bucket", "key" }, "upload_file")
  if params.Body ~= nil then error("upload_file: extra parameters must not contain Body", 2) end
  params.Bucket, params.Key, params.Body = bucket, key, { file = path }
  return client:call("PutObject", params)
end

local function temp_name(path)
  return ("%s.%08x.part"):format(path, math.random(0, 0x7fffffff))
end

--- Download `bucket`/`key` to `path`.
function M.download_file(client, bucket, key, path, extra)
  local params = check(client, bucket, key, path, extra, { "bucket", "key", "path" }, "download_file")
  params.Bucket, params.Key = bucket, key
  local out, err = client:call("GetObject", params)
  if not out then return nil, err end
  local body = out.Body
  out.Body = nil
  local tmp = temp_name(path)
  local f, ferr = io.open(tmp, "wb")
  if not f then
    body:close()
    return nil, errors.new("BodyWriteError", ferr)
  end
  local function copy()
    while true do
      local chunk, rerr = body:read(CHUNK)
      if rerr then return nil, rerr end
      if not chunk then return true end
      local ok, werr = f:write(chunk)
      if not ok then return nil, errors.new("BodyWriteError", werr) end
    end
  end
  -- pcall: a cancelled task raises inside read; the temp file goes anyway
  local ok, done, cerr = pcall(copy)
  body:close()
  local closed, close_err = f:close()
  if ok and done and not closed then done, cerr = nil, errors.new("BodyWriteError", close_err) end
  if ok and done then
    local renamed, rerr = os.rename(tmp, path)
    if renamed then return out end
    cerr = errors.new("BodyWriteError", rerr)
  end
  os.remove(tmp)
  if not ok then error(done, 0) end
  return nil, cerr
end

return M
