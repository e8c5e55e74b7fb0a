--- S3 file transfers, the conveniences boto3 injects into S3 clients:
--
--     local out, err = s3:upload_file("/data/big.bin", "bucket", "key", {ContentType = "..."})
--     local out, err = s3:download_file("bucket", "key", "/data/copy.bin", {VersionId = "..."})
--
-- `upload_file` streams the file from disk (never read whole): one
-- PutObject below `multipart_threshold`, else a multipart upload whose
-- parts go up `max_concurrency` at a time and which is aborted if any part
-- fails (boto3's TransferConfig defaults: 8 MiB threshold and part size,
-- 10 at a time; the part size grows to keep within 10,000 parts). Pass
-- `config = {multipart_threshold, multipart_chunksize, max_concurrency}` as
-- the fifth argument. `download_file` streams
-- GetObject into a temporary file in the target's directory and renames it
-- over `path` only when every byte arrived and passed the Content-Length
-- (and checksum, when validated) checks; a transfer cut midway resumes
-- from where it stopped (Range, If-Match: the same object version). On
-- any failure the temporary file is removed and `path` is left as it
-- was. `extra` holds further
-- PutObject / GetObject parameters. Both return the operation's result
-- (without `Body` for downloads), or nil, err.
local async = require "aio_aws.async"
local bodymod = require "aio_aws.body"
local errors = require "aio_aws.errors"

local M = {}

local CHUNK = 1 << 20
local RESUME_TRIES = 4

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

-- s3transfer/upload.py: what UploadPart and CompleteMultipartUpload take
-- of the caller's extra arguments (CreateMultipartUpload takes them all).
local UPLOAD_PART_ARGS = { "ChecksumAlgorithm", "SSECustomerKey", "SSECustomerAlgorithm",
  "SSECustomerKeyMD5", "RequestPayer", "ExpectedBucketOwner" }
local COMPLETE_ARGS = { "RequestPayer", "ExpectedBucketOwner", "SSECustomerKey", "SSECustomerAlgorithm",
  "SSECustomerKeyMD5" }

M.DEFAULTS = { multipart_threshold = 8 << 20, multipart_chunksize = 8 << 20, max_concurrency = 10 }

local function pick(src, names)
  local out = {}
  for _, k in ipairs(names) do out[k] = src[k] end
  return out
end

-- s3transfer.utils.ChunksizeAdjuster: parts of 5 MiB to 5 GiB, at most
-- 10,000 of them.
local function part_size(chunk, size)
  chunk = math.max(5 << 20, math.min(chunk, 5 << 30))
  while (size + chunk - 1) // chunk > 10000 do chunk = chunk * 2 end
  return chunk
end

local function multipart(client, path, size, params, cfg)
  local create = {}
  for k, v in pairs(params) do create[k] = v end
  local up, err = client:call("CreateMultipartUpload", create)
  if not up then return nil, err end
  local ids = { Bucket = params.Bucket, Key = params.Key, UploadId = up.UploadId }
  local psize = part_size(cfg.multipart_chunksize, size)
  local nparts = (size + psize - 1) // psize
  local part_args = pick(params, UPLOAD_PART_ARGS)
  local alg = params.ChecksumAlgorithm
  local ck_member = alg and ("Checksum" .. tostring(alg):upper())
  local parts, failed, next_part = {}, nil, 1
  local function worker()
    while not failed and next_part <= nparts do
      local i = next_part
      next_part = i + 1
      local off = (i - 1) * psize
      local p = { PartNumber = i, Body = { file = path, offset = off, length = math.min(psize, size - off) } }
      for k, v in pairs(part_args) do p[k] = v end
      for k, v in pairs(ids) do p[k] = v end
      local out, perr = client:call("UploadPart", p)
      if not out then
        failed = failed or perr
        return
      end
      local part = { ETag = out.ETag, PartNumber = i }
      if ck_member then part[ck_member] = out[ck_member] end
      parts[i] = part
    end
  end
  local tasks = {}
  for k = 1, math.min(cfg.max_concurrency, nparts) do tasks[k] = async.spawn(worker) end
  local ok, gres, errs = pcall(async.gather, table.unpack(tasks))
  local function abort()
    local a = pick(params, { "RequestPayer", "ExpectedBucketOwner" })
    for k, v in pairs(ids) do a[k] = v end
    client:call("AbortMultipartUpload", a) -- best effort: the first error is the one to report
  end
  if not ok then
    -- cancelled (or a bug): stop the parts, abort in the background
    for _, t in ipairs(tasks) do t:cancel() end
    async.spawn(abort)
    error(gres, 0)
  end
  if not failed and errs then failed = select(2, next(errs)) end
  if failed then
    abort()
    return nil, failed
  end
  local complete = pick(params, COMPLETE_ARGS)
  for k, v in pairs(ids) do complete[k] = v end
  complete.MultipartUpload = { Parts = parts }
  local done, cerr = client:call("CompleteMultipartUpload", complete)
  if not done then
    abort()
    return nil, cerr
  end
  return done
end

--- Upload the file at `path` to `bucket`/`key`.
function M.upload_file(client, path, bucket, key, extra, config)
  local params = check(client, path, bucket, key, extra, { "path", "bucket", "key" }, "upload_file")
  if params.Body ~= nil then error("upload_file: extra parameters must not contain Body", 2) end
  if config ~= nil and type(config) ~= "table" then error("upload_file: config must be a table", 2) end
  local cfg = {}
  for k, v in pairs(M.DEFAULTS) do cfg[k] = v end
  for k, v in pairs(config or {}) do
    if M.DEFAULTS[k] == nil then error("upload_file: unknown config key " .. tostring(k), 2) end
    if math.type(v) ~= "integer" or v < 1 then error("upload_file: config " .. k .. " must be a positive integer", 2) end
    cfg[k] = v
  end
  params.Bucket, params.Key = bucket, key
  local src, err = bodymod.source({ file = path })
  if not src then return nil, err end
  if src.length >= cfg.multipart_threshold then return multipart(client, path, src.length, params, cfg) end
  params.Body = { file = path }
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
  -- A transfer cut midway is resumed where it stopped, up to
  -- RESUME_TRIES times (s3transfer retries a failed body read 5 times),
  -- with Range and If-Match so the rest comes from the same object version.
  local written, tries = 0, 0
  local resumable = params.Range == nil and type(out.ETag) == "string"
  local function copy()
    while true do
      local chunk, rerr = body:read(CHUNK)
      if rerr then
        if not (resumable and rerr.retryable and tries < RESUME_TRIES) then return nil, rerr end
        tries = tries + 1
        body:close()
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        p.Range, p.IfMatch = ("bytes=%d-"):format(written), out.ETag
        p.ChecksumMode = nil -- a whole-object checksum cannot check a range
        local more, merr = client:call("GetObject", p)
        if not more then return nil, merr end
        body = more.Body
        -- only the rest of that object will do (206 from `written` on)
        if type(more.ContentRange) ~= "string" or not more.ContentRange:find("^bytes " .. written .. "%-") then
          return nil, rerr
        end
      elseif not chunk then
        if math.type(out.ContentLength) == "integer" and written ~= out.ContentLength then
          return nil, errors.new("IncompleteRead", ("%d read, but total bytes expected is %d."):format(
            written, out.ContentLength), { expected = out.ContentLength, actual = written, retryable = true })
        end
        return true
      else
        local ok, werr = f:write(chunk)
        if not ok then return nil, errors.new("BodyWriteError", werr) end
        written = written + #chunk
      end
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
