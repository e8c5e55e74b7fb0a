--- The local endpoint's S3: a filesystem-backed S3 speaking the REST/XML
-- wire format of the Amazon S3 API Reference (2006-03-01).
--
--   local s3 = require("aio_aws.emulator.s3").new(ctx)   -- or nil, err
--   local res = s3:handle(req, info)
--   s3:close()
--
-- `ctx` (emulator contract, section 2): `data_dir` (required; state lives
-- there, see emulator/s3/disk.lua), `store` (aio_aws.emulator.store),
-- `clock` (epoch seconds), `region`, `account_id`, `url`, `access_key`,
-- `secret_key`, `no_auth`.
--
-- `req` is the raw server request (lua/aio_aws/server.lua): method, path
-- (still percent-encoded), query (raw), headers (lower-case names), body
-- or body_file. The router has checked the request's signature already.
--
-- `info` fields read here:
--
-- * `bucket_from_host`: the bucket of a virtual-hosted-style request
--   (`b.localhost:PORT`); the path is then the key.
-- * For aws-chunked uploads (`x-amz-content-sha256:
--   STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) every chunk signature is checked
--   against the chain that starts at the seed request's signature
--   (sigv4-streaming.html). Used, in this order: `streaming.chunker` (the
--   router's verified seed: emulator/auth.lua `verify` returns
--   `streaming = {seed_signature, amz_date, region, chunker}`; the
--   chunker's `sign_chunk(data)` gives the signature the next chunk must
--   carry); else `streaming` or `info` fields `seed_signature`, `region`,
--   `amz_date` and `secret_key`, each missing one taken from the request
--   (Authorization header, x-amz-date) or ctx.secret_key. `no_auth = true`
--   (or ctx.no_auth) skips chunk verification, as the router skips
--   signatures then.
--
-- Listings are in byte order (S3 lists UTF-8 keys in binary order): Lua
-- compares strings with strcoll, which is byte order in the C locale every
-- Lua program starts in; a host that sets LC_COLLATE otherwise changes it.
-- One service object per data directory (it keeps the key index in memory).
--
-- The answer `res` is `{status, headers, body | body_file, body_offset,
-- body_length}`; objects over SMALL_BODY bytes are answered from their file.
--
-- @module aio_aws.emulator.s3
local core = require "aio_aws.core"
local disk_mod = require "aio_aws.emulator.s3.disk"
local body_mod = require "aio_aws.emulator.s3.body"

local M = {}

local NS = "http://s3.amazonaws.com/doc/2006-03-01/"
local SMALL_BODY = 256 * 1024
local MIN_PART = 5 * 1024 * 1024       -- "EntityTooSmall": every part but the last
local MAX_KEY = 1024                   -- bytes of UTF-8 (object-keys.html)
local MAX_META = 2048                  -- user metadata bytes (UsingMetadata.html)

local concat, fmt = table.concat, string.format
local floor = math.floor
local escape = core.xml_escape
local s3err = body_mod.s3err

local S3 = {}
S3.__index = S3
S3.__name = "aio_aws.emulator.s3"

--- Make the S3 service.
-- @tparam table ctx see the module doc
-- @return service | nil, err (the data directory cannot be used)
function M.new(ctx)
  if type(ctx) ~= "table" then error("aio_aws.emulator.s3.new: ctx must be a table", 2) end
  if type(ctx.data_dir) ~= "string" or ctx.data_dir == "" then
    error("aio_aws.emulator.s3.new: ctx.data_dir must be a non-empty string", 2)
  end
  if ctx.clock ~= nil and type(ctx.clock) ~= "function" then
    error("aio_aws.emulator.s3.new: ctx.clock must be a function", 2)
  end
  local d, err = disk_mod.open(ctx.data_dir, ctx.store)
  if not d then return nil, "s3: cannot use " .. ctx.data_dir .. ": " .. tostring(err) end
  local account = tostring(ctx.account_id or "123456789012")
  return setmetatable({
    ctx = ctx, disk = d,
    region = ctx.region or "us-east-1",
    clock = ctx.clock or os.time,
    owner_id = core.sha256_hex("aio-aws owner " .. account),
    closed = false,
  }, S3)
end

function S3:close()
  self.closed = true
  self.disk:close()
end

function S3:__tostring()
  return "aio_aws.emulator.s3 (" .. self.ctx.data_dir .. ")"
end

-- ------------------------------------------------------------ formatting

local function now_ms(self)
  return floor(self.clock() * 1000) / 1000
end

-- RFC 1123 (RFC 7231 IMF-fixdate) for headers
local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", floor(t))
end
M.http_date = http_date

-- ISO 8601 with milliseconds for XML, as S3 writes LastModified
local function iso_date(t)
  local s = floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. fmt(".%03dZ", floor((t - s) * 1000 + 0.5) % 1000)
end
M.iso_date = iso_date

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12 }

-- days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil)
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Parse an HTTP date in any of the three forms of RFC 7231 section
-- 7.1.1.1 (IMF-fixdate, RFC 850, asctime); nil when it is none of them.
local function parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, H, Mi, S = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, H, Mi, S = s:match("^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then
      y = tonumber(y)
      y = y < 70 and 2000 + y or 1900 + y -- RFC 7231: 50-year rule, simplified
    end
  end
  if not d then
    mon, d, H, Mi, S, y = s:match("^%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  local m = mon and MONTHS[mon]
  if not m then return nil end
  return days_from_civil(tonumber(y), m, tonumber(d)) * 86400 + tonumber(H) * 3600 + tonumber(Mi) * 60 + tonumber(S)
end
M.parse_http_date = parse_http_date

local function el(name, value)
  return "<" .. name .. ">" .. escape(tostring(value)) .. "</" .. name .. ">"
end

local function xml_doc(root, parts)
  return '<?xml version="1.0" encoding="UTF-8"?>\n<' .. root .. ' xmlns="' .. NS .. '">'
    .. concat(parts) .. "</" .. root .. ">"
end

local function request_id()
  return fmt("%08X%08X", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

-- percent-decoding of paths and query components (`plus`: "+" is a space,
-- as in application/x-www-form-urlencoded query strings)
local function unescape(s, plus)
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- encoding-type=url: every byte but unreserved characters and "/" as %XX,
-- spaces as "+" (what S3 sends; botocore decodes it with unquote_plus)
local function url_encode(s)
  return (s:gsub("[^%w%-%._~/ ]", function(c) return fmt("%%%02X", c:byte()) end):gsub(" ", "+"))
end

local function parse_query(q)
  local map, list = {}, {}
  if q and q ~= "" then
    for part in q:gmatch("[^&]+") do
      local k, v = part:match("^([^=]*)=(.*)$")
      if not k then k, v = part, "" end
      k, v = unescape(k, true), unescape(v, true)
      list[#list + 1] = k
      if map[k] == nil then map[k] = v end
    end
  end
  return map, list
end

-- ------------------------------------------------------------ responses

local function base_headers(rid)
  return {
    ["x-amz-request-id"] = rid,
    ["x-amz-id-2"] = core.base64_encode(core.sha256(rid)),
    ["server"] = "AmazonS3",
  }
end

-- the S3 error document (ErrorResponses.html#RESTErrorResponses)
function S3:error_response(r, e)
  local h = base_headers(r.rid)
  if r.method == "HEAD" or e.status == 304 then
    return { status = e.status, headers = h }
  end
  local parts = { el("Code", e.code), el("Message", e.message or e.code) }
  if e.fields then
    local names = {}
    for k in pairs(e.fields) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do parts[#parts + 1] = el(k, e.fields[k]) end
  end
  parts[#parts + 1] = el("Resource", r.resource)
  parts[#parts + 1] = el("RequestId", r.rid)
  parts[#parts + 1] = el("HostId", h["x-amz-id-2"])
  h["content-type"] = "application/xml"
  return {
    status = e.status,
    headers = h,
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' .. concat(parts) .. "</Error>",
  }
end

local function xml_response(r, status, root, parts, extra)
  local h = base_headers(r.rid)
  h["content-type"] = "application/xml"
  if extra then for k, v in pairs(extra) do h[k] = v end end
  return { status = status, headers = h, body = xml_doc(root, parts) }
end

local function empty_response(r, status, extra)
  local h = base_headers(r.rid)
  if extra then for k, v in pairs(extra) do h[k] = v end end
  return { status = status, headers = h }
end

local function no_such_bucket(name)
  return s3err("NoSuchBucket", 404, "The specified bucket does not exist", { BucketName = name })
end

local function no_such_key(key)
  return s3err("NoSuchKey", 404, "The specified key does not exist.", { Key = key })
end

local function no_such_upload(id)
  return s3err("NoSuchUpload", 404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    { UploadId = id })
end

local function invalid_argument(message, name, value)
  return s3err("InvalidArgument", 400, message, { ArgumentName = name, ArgumentValue = value })
end

local function malformed_xml()
  return s3err("MalformedXML", 400,
    "The XML you provided was not well-formed or did not validate against our published schema")
end

local function internal(err)
  return s3err("InternalError", 500, "We encountered an internal error. Please try again. (" .. tostring(err) .. ")")
end

function S3:bucket(name)
  local b = self.disk:bucket(name)
  if not b then return nil, no_such_bucket(name) end
  return b
end

function S3:owner_xml()
  return "<Owner>" .. el("ID", self.owner_id) .. el("DisplayName", "aio-aws") .. "</Owner>"
end

-- ------------------------------------------------------------ names

--- Bucket naming rules (bucketnamingrules.html, general purpose buckets).
local function valid_bucket_name(name)
  if #name < 3 or #name > 63 then return false end
  if not name:match("^[a-z0-9][a-z0-9.%-]*[a-z0-9]$") then return false end
  if name:find("..", 1, true) then return false end
  if name:match("^%d+%.%d+%.%d+%.%d+$") then return false end
  if name:match("^xn%-%-") or name:match("^sthree%-") or name:match("%-s3alias$") or name:match("%-%-ol%-s3$") then
    return false
  end
  return true
end
M.valid_bucket_name = valid_bucket_name

-- ------------------------------------------------------------ XML input

-- children of a node decoded in "sequence" form: name, value pairs
local function children(node)
  local i = -1
  return function()
    i = i + 2
    if type(node) ~= "table" then return nil end
    local name = node[i]
    if name == nil then return nil end
    return name, node[i + 1]
  end
end

local function child(node, want)
  for name, v in children(node) do
    if name == want then return v end
  end
end

local function decode_xml(body, root)
  if not body or body == "" then return nil end
  local node, name = core.xml_decode(body, "sequence")
  if not node or name ~= root then return nil end
  return node
end

-- ------------------------------------------------------------ buckets

function S3:list_buckets(r)
  local parts = { self:owner_xml(), "<Buckets>" }
  for _, b in ipairs(self.disk:bucket_list()) do
    parts[#parts + 1] = "<Bucket>" .. el("Name", b.name) .. el("CreationDate", iso_date(b.created)) .. "</Bucket>"
  end
  parts[#parts + 1] = "</Buckets>"
  return xml_response(r, 200, "ListAllMyBucketsResult", parts)
end

function S3:create_bucket(r)
  local name = r.bucket
  if not valid_bucket_name(name) then
    return nil, s3err("InvalidBucketName", 400, "The specified bucket is not valid.", { BucketName = name })
  end
  local region = self.region
  local body = r.req.body
  if body and body:match("%S") then
    local node = decode_xml(body, "CreateBucketConfiguration")
    if not node then return nil, malformed_xml() end
    local lc = child(node, "LocationConstraint")
    if type(lc) == "table" then return nil, malformed_xml() end
    if lc and lc ~= "" then
      -- "us-east-1" is never written as a location constraint (CreateBucket)
      if lc == "us-east-1" or not lc:match("^[a-z][a-z0-9%-]+$") then
        return nil, s3err("InvalidLocationConstraint", 400, "The specified location-constraint is not valid",
          { LocationConstraint = lc })
      end
      region = lc
    end
  end
  if self.disk:bucket(name) then
    -- CreateBucket: in us-east-1 re-creating your own bucket answers 200
    -- (legacy compatibility); every other region answers 409.
    if self.disk:bucket(name).region ~= "us-east-1" or region ~= "us-east-1" then
      return nil, s3err("BucketAlreadyOwnedByYou", 409,
        "Your previous request to create the named bucket succeeded and you already own it.", { BucketName = name })
    end
    return empty_response(r, 200, { location = "/" .. name })
  end
  local ok, err = self.disk:create_bucket(name, now_ms(self), region)
  if not ok then return nil, internal(err) end
  return empty_response(r, 200, { location = "/" .. name })
end

function S3:delete_bucket(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  if #b.keys > 0 then
    return nil, s3err("BucketNotEmpty", 409, "The bucket you tried to delete is not empty", { BucketName = r.bucket })
  end
  local ok, err = self.disk:delete_bucket(r.bucket)
  if not ok then return nil, internal(err) end
  return empty_response(r, 204)
end

function S3:head_bucket(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  return empty_response(r, 200, { ["x-amz-bucket-region"] = b.region, ["content-type"] = "application/xml" })
end

function S3:get_bucket_location(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  -- us-east-1 buckets answer an empty LocationConstraint (GetBucketLocation)
  local lc = b.region ~= "us-east-1" and escape(b.region) or ""
  local h = base_headers(r.rid)
  h["content-type"] = "application/xml"
  return { status = 200, headers = h, body = '<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="'
    .. NS .. '">' .. lc .. "</LocationConstraint>" }
end

-- ------------------------------------------------------------ listing

local function parse_max(q, name, default, cap)
  local v = q[name]
  if v == nil then return default end
  local n = v:match("^%d+$") and tonumber(v)
  if not n then
    return nil, invalid_argument("Provided " .. name .. " not an integer or within integer range", name, v)
  end
  return math.min(n, cap)
end

--- Walk a bucket's sorted keys as S3 lists them: keys after `marker` that
-- start with `prefix`, keys with `delimiter` after the prefix rolled up in
-- common prefixes (each one counted once); at most `max` entries.
-- Returns entries ({key = k} or {prefix = p}), truncated.
local function walk(b, prefix, delimiter, marker, max)
  local keys = b.keys
  -- max-keys=0: nothing, and nothing to continue from
  if max == 0 then return {}, false end
  local i = prefix ~= "" and disk_mod.lower_bound(keys, prefix) or 1
  if marker and marker ~= "" then i = math.max(i, disk_mod.upper_bound(keys, marker)) end
  local out, n, np = {}, 0, #prefix
  while true do
    local k = keys[i]
    if k == nil or (np > 0 and k:sub(1, np) ~= prefix) then return out, false end
    local cp
    if delimiter and delimiter ~= "" then
      local s = k:find(delimiter, np + 1, true)
      if s then cp = k:sub(1, s + #delimiter - 1) end
    end
    if cp and marker and cp <= marker then
      -- a common prefix already returned on an earlier page
      i = disk_mod.skip_prefix(keys, cp, i)
    else
      if n == max then return out, true end
      n = n + 1
      if cp then
        out[n] = { prefix = cp }
        i = disk_mod.skip_prefix(keys, cp, i)
      else
        out[n] = { key = k, meta = b.objects[k] }
        i = i + 1
      end
    end
  end
end

function S3:contents_xml(e, enc, owner)
  local m = e.meta
  return "<Contents>" .. el("Key", enc(e.key)) .. el("LastModified", iso_date(m.mtime)) .. el("ETag", m.etag)
    .. el("Size", fmt("%d", m.size)) .. (owner and self:owner_xml() or "")
    .. el("StorageClass", m.storage_class or "STANDARD") .. "</Contents>"
end

-- an empty delimiter is no delimiter (and is not echoed back)
local function nonempty(v)
  if v == "" then return nil end
  return v
end

local function encoder(q)
  local et = q["encoding-type"]
  if et == nil then return function(s) return s end end
  if et ~= "url" then
    return nil, invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", et)
  end
  return url_encode
end

-- What every listing takes first: the bucket, the key encoder
-- (encoding-type), the page size (`max_name`: max-keys, max-uploads),
-- prefix and delimiter. Returns nil, err for the first thing wrong.
local function listing_args(self, r, max_name)
  local q = r.q
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local enc, eerr = encoder(q)
  if not enc then return nil, eerr end
  local max, merr = parse_max(q, max_name, 1000, 1000)
  if not max then return nil, merr end
  return { bucket = b, enc = enc, max = max, prefix = q.prefix or "", delim = nonempty(q.delimiter) }
end

function S3:list_objects_v2(r)
  local q = r.q
  local la, lerr = listing_args(self, r, "max-keys")
  if not la then return nil, lerr end
  local b, enc, max = la.bucket, la.enc, la.max
  local prefix, delim = la.prefix, la.delim
  local token = q["continuation-token"]
  local marker
  if token then
    local raw = core.base64_decode(token)
    marker = raw and raw:match("^1:(.*)$")
    if token == "" or not marker then
      return nil, invalid_argument("The continuation token provided is incorrect", "continuation-token", token)
    end
  else
    marker = q["start-after"]
  end
  local entries, truncated = walk(b, prefix, delim, marker, max)
  local parts = { el("Name", r.bucket), el("Prefix", enc(prefix)) }
  if delim then parts[#parts + 1] = el("Delimiter", enc(delim)) end
  parts[#parts + 1] = el("MaxKeys", max)
  if q["encoding-type"] then parts[#parts + 1] = el("EncodingType", "url") end
  parts[#parts + 1] = el("KeyCount", #entries)
  parts[#parts + 1] = el("IsTruncated", truncated and "true" or "false")
  if token then parts[#parts + 1] = el("ContinuationToken", token) end
  if truncated then
    local last = entries[#entries]
    parts[#parts + 1] = el("NextContinuationToken", core.base64_encode("1:" .. (last.key or last.prefix)))
  end
  if q["start-after"] and not token then parts[#parts + 1] = el("StartAfter", enc(q["start-after"])) end
  local owner = q["fetch-owner"] == "true"
  local cps = {}
  for _, en in ipairs(entries) do
    if en.key then
      parts[#parts + 1] = self:contents_xml(en, enc, owner)
    else
      cps[#cps + 1] = "<CommonPrefixes>" .. el("Prefix", enc(en.prefix)) .. "</CommonPrefixes>"
    end
  end
  for _, c in ipairs(cps) do parts[#parts + 1] = c end
  return xml_response(r, 200, "ListBucketResult", parts)
end

function S3:list_objects(r)
  local q = r.q
  local la, lerr = listing_args(self, r, "max-keys")
  if not la then return nil, lerr end
  local b, enc, max = la.bucket, la.enc, la.max
  local prefix, delim, marker = la.prefix, la.delim, q.marker
  local entries, truncated = walk(b, prefix, delim, marker, max)
  local parts = { el("Name", r.bucket), el("Prefix", enc(prefix)), el("Marker", enc(marker or "")) }
  -- NextMarker only when a delimiter was given (ListObjects): otherwise
  -- the client continues from the last key
  if truncated and delim then
    local last = entries[#entries]
    parts[#parts + 1] = el("NextMarker", enc(last.key or last.prefix))
  end
  parts[#parts + 1] = el("MaxKeys", max)
  if delim then parts[#parts + 1] = el("Delimiter", enc(delim)) end
  if q["encoding-type"] then parts[#parts + 1] = el("EncodingType", "url") end
  parts[#parts + 1] = el("IsTruncated", truncated and "true" or "false")
  local cps = {}
  for _, en in ipairs(entries) do
    if en.key then
      parts[#parts + 1] = self:contents_xml(en, enc, true)
    else
      cps[#cps + 1] = "<CommonPrefixes>" .. el("Prefix", enc(en.prefix)) .. "</CommonPrefixes>"
    end
  end
  for _, c in ipairs(cps) do parts[#parts + 1] = c end
  return xml_response(r, 200, "ListBucketResult", parts)
end

-- ------------------------------------------------------------ objects

local STORED_HEADERS = {
  { "content-type", "content_type" }, { "content-encoding", "content_encoding" },
  { "content-disposition", "content_disposition" }, { "content-language", "content_language" },
  { "cache-control", "cache_control" }, { "expires", "expires" },
  { "x-amz-website-redirect-location", "website_redirect" },
}

--- Metadata of a new object from the request headers (PutObject,
-- CopyObject with REPLACE, CreateMultipartUpload).
local function meta_from_headers(h)
  local meta = { metadata = {} }
  for _, p in ipairs(STORED_HEADERS) do meta[p[2]] = h[p[1]] end
  if meta.content_encoding then
    -- aws-chunked is the transfer framing, not the object's encoding
    local kept = {}
    for tok in meta.content_encoding:gmatch("[^,%s]+") do
      if tok:lower() ~= "aws-chunked" then kept[#kept + 1] = tok end
    end
    meta.content_encoding = #kept > 0 and concat(kept, ",") or nil
  end
  meta.content_type = meta.content_type or "binary/octet-stream"
  local sc = h["x-amz-storage-class"]
  if sc and sc ~= "STANDARD" then meta.storage_class = sc end
  local size = 0
  for name, v in pairs(h) do
    local m = name:match("^x%-amz%-meta%-(.+)$")
    if m then
      meta.metadata[m] = v
      size = size + #m + #v
    end
  end
  if size > MAX_META then
    return nil, s3err("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size.",
      { Size = size, MaxSizeAllowed = MAX_META })
  end
  return meta
end

local function check_key(key)
  if #key > MAX_KEY then
    return s3err("KeyTooLongError", 400, "Your key is too long", { Size = #key, MaxSizeAllowed = MAX_KEY })
  end
end

function S3:ingest(r)
  local tmp = self.disk:tmp_path()
  local info = r.info
  local ctx = self.ctx
  local res, err = body_mod.ingest(r.req, {
    tmp = tmp, info = info,
    secret_key = info.secret_key or ctx.secret_key, access_key = info.access_key or ctx.access_key,
    verify_chunks = not (info.no_auth or ctx.no_auth),
  })
  if not res then return nil, err end
  res.tmp = tmp
  return res
end

-- entity tags of an If-Match / If-None-Match list, without quotes or W/
local function etag_list(v)
  local out = {}
  for tok in v:gmatch("[^,]+") do
    tok = tok:match("^%s*(.-)%s*$"):gsub("^W/", "")
    out[#out + 1] = tok:match('^"(.*)"$') or tok
  end
  return out
end

local function etag_matches(v, etag)
  local bare = etag:match('^"(.*)"$') or etag
  for _, t in ipairs(etag_list(v)) do
    if t == "*" or t == bare then return true end
  end
  return false
end

--- Conditional writes (PutObject, CompleteMultipartUpload: If-None-Match
-- "*" and If-Match): checked before the body is read and again just
-- before the commit, with no wait in between, so two writers racing on
-- one key cannot both pass If-None-Match: *.
function S3:write_precondition(r, b)
  local inm, im = r.h["if-none-match"], r.h["if-match"]
  if not inm and not im then return nil end
  local cur = b.objects[r.key]
  if inm then
    if inm:match("^%s*(.-)%s*$") ~= "*" then
      return s3err("NotImplemented", 501, "A header you provided implies functionality that is not implemented",
        { Header = "If-None-Match" })
    end
    if cur then
      return s3err("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold",
        { Condition = "If-None-Match" })
    end
  end
  if im then
    if not cur then return no_such_key(r.key) end
    if not etag_matches(im, cur.etag) then
      return s3err("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold",
        { Condition = "If-Match" })
    end
  end
end

function S3:put_object(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local kerr = check_key(r.key)
  if kerr then return nil, kerr end
  local meta, merr = meta_from_headers(r.h)
  if not meta then return nil, merr end
  local perr = self:write_precondition(r, b)
  if perr then return nil, perr end
  local got, gerr = self:ingest(r)
  if not got then return nil, gerr end
  meta.size, meta.etag, meta.mtime = got.size, '"' .. core.hex_encode(got.md5) .. '"', now_ms(self)
  meta.checksum = got.checksum
  perr = self:write_precondition(r, b)
  if perr then
    os.remove(got.tmp)
    return nil, perr
  end
  local ok, err = self.disk:put_object(r.bucket, r.key, got.tmp, meta)
  if not ok then
    if err == "NoSuchBucket" then return nil, no_such_bucket(r.bucket) end
    return nil, internal(err)
  end
  local extra = { etag = meta.etag }
  if meta.checksum then extra["x-amz-checksum-" .. meta.checksum.alg] = meta.checksum.value end
  return empty_response(r, 200, extra)
end

--- Conditional request headers (RFC 7232 section 6 order, as GetObject
-- documents them): If-Match, else If-Unmodified-Since -> 412; then
-- If-None-Match, else If-Modified-Since -> 304 (GET/HEAD). With the
-- x-amz-copy-source- prefix (CopyObject) every failure is a 412.
local function check_conditions(h, meta, prefix, copy)
  prefix = prefix or ""
  local mtime = floor(meta.mtime)
  local im, ius = h[prefix .. "if-match"], h[prefix .. "if-unmodified-since"]
  local inm, ims = h[prefix .. "if-none-match"], h[prefix .. "if-modified-since"]
  local function failed(cond)
    return s3err("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold",
      { Condition = prefix ~= "" and prefix .. cond or (cond:gsub("^if", "If"):gsub("%-(%l)", function(c)
        return "-" .. c:upper() end)) })
  end
  if im then
    if not etag_matches(im, meta.etag) then return failed("if-match") end
  elseif ius then
    local t = parse_http_date(ius)
    if t and mtime > t then return failed("if-unmodified-since") end
  end
  if inm then
    if etag_matches(inm, meta.etag) then
      if copy then return failed("if-none-match") end
      return s3err("NotModified", 304, "Not Modified")
    end
  elseif ims then
    local t = parse_http_date(ims)
    if t and mtime <= t then
      if copy then return failed("if-modified-since") end
      return s3err("NotModified", 304, "Not Modified")
    end
  end
end

--- A Range header (RFC 7233 section 2.1): one byte range -> first, last
-- (inclusive); "invalid" when it cannot be satisfied; nil when there is
-- no usable range (the whole object is sent, as for a multi-range).
local function parse_range(v, size)
  if not v then return nil end
  local a, b = v:match("^%s*bytes%s*=%s*(%d*)%s*%-%s*(%d*)%s*$")
  if not a or (a == "" and b == "") then return nil end
  if a == "" then
    local n = tonumber(b)
    if n == 0 or size == 0 then return "invalid" end
    return math.max(0, size - n), size - 1
  end
  local first, last = tonumber(a), b ~= "" and tonumber(b) or nil
  if last and last < first then return nil end
  if first >= size then return "invalid" end
  if not last or last >= size then last = size - 1 end
  return first, last
end

local RESPONSE_OVERRIDES = {
  ["response-content-type"] = "content-type", ["response-content-language"] = "content-language",
  ["response-expires"] = "expires", ["response-cache-control"] = "cache-control",
  ["response-content-disposition"] = "content-disposition", ["response-content-encoding"] = "content-encoding",
}

function S3:object_headers(r, meta)
  local h = base_headers(r.rid)
  for _, p in ipairs(STORED_HEADERS) do
    if meta[p[2]] then h[p[1]] = meta[p[2]] end
  end
  h["etag"] = meta.etag
  h["last-modified"] = http_date(meta.mtime)
  h["accept-ranges"] = "bytes"
  if meta.storage_class then h["x-amz-storage-class"] = meta.storage_class end
  for k, v in pairs(meta.metadata or {}) do h["x-amz-meta-" .. k] = v end
  for qn, hn in pairs(RESPONSE_OVERRIDES) do
    if r.q[qn] then h[hn] = r.q[qn] end
  end
  return h
end

function S3:get_object(r, head)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local meta = b.objects[r.key]
  if not meta then return nil, no_such_key(r.key) end
  local cerr = check_conditions(r.h, meta)
  if cerr then
    if cerr.status == 304 then
      local h = base_headers(r.rid)
      h.etag, h["last-modified"] = meta.etag, http_date(meta.mtime)
      return { status = 304, headers = h }
    end
    return nil, cerr
  end
  local size = meta.size
  local first, last = parse_range(r.h.range, size)
  if first == "invalid" then
    return nil, s3err("InvalidRange", 416, "The requested range is not satisfiable",
      { RangeRequested = r.h.range, ActualObjectSize = fmt("%d", size) })
  end
  local h = self:object_headers(r, meta)
  local status, offset, length = 200, 0, size
  if first then
    status, offset, length = 206, first, last - first + 1
    h["content-range"] = fmt("bytes %d-%d/%d", first, last, size)
  end
  h["content-length"] = fmt("%d", length)
  -- the stored flexible checksum, for whole objects when asked (GetObject
  -- x-amz-checksum-mode: ENABLED)
  if meta.checksum and not first and (r.h["x-amz-checksum-mode"] or ""):upper() == "ENABLED" then
    h["x-amz-checksum-" .. meta.checksum.alg] = meta.checksum.value
  end
  if head then return { status = status, headers = h } end
  local path = self.disk:data_path(meta)
  if length == 0 then return { status = status, headers = h, body = "" } end
  if length > SMALL_BODY then
    return { status = status, headers = h, body_file = path, body_offset = offset, body_length = length }
  end
  local f, ferr = io.open(path, "rb")
  if not f then return nil, internal(ferr) end
  f:seek("set", offset)
  local data = f:read(length)
  f:close()
  if not data or #data ~= length then return nil, internal("object data is shorter than its metadata") end
  return { status = status, headers = h, body = data }
end

function S3:delete_object(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local ok, err = self.disk:delete_object(r.bucket, r.key)
  if not ok then return nil, internal(err) end
  return empty_response(r, 204)
end

function S3:delete_objects(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local body = r.req.body or ""
  -- DeleteObjects: Content-MD5 (or an x-amz-checksum-*) is required
  local md5 = r.h["content-md5"]
  if not md5 and not r.h["x-amz-sdk-checksum-algorithm"] then
    return nil, s3err("InvalidRequest", 400, "Missing required header for this request: Content-MD5")
  end
  if md5 and core.md5_base64(body) ~= md5 then
    return nil, s3err("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
  end
  local node = decode_xml(body, "Delete")
  if not node then return nil, malformed_xml() end
  local quiet = child(node, "Quiet") == "true"
  local keys = {}
  for name, v in children(node) do
    if name == "Object" then
      local k = child(v, "Key")
      if type(k) ~= "string" then return nil, malformed_xml() end
      keys[#keys + 1] = k
    end
  end
  if #keys == 0 or #keys > 1000 then return nil, malformed_xml() end
  local parts = {}
  for _, k in ipairs(keys) do
    local ok, err = self.disk:delete_object(r.bucket, k)
    if ok then
      if not quiet then parts[#parts + 1] = "<Deleted>" .. el("Key", k) .. "</Deleted>" end
    else
      parts[#parts + 1] = "<Error>" .. el("Key", k) .. el("Code", "InternalError") .. el("Message", tostring(err))
        .. "</Error>"
    end
  end
  return xml_response(r, 200, "DeleteResult", parts)
end

--- x-amz-copy-source: "[/]bucket/key[?versionId=v]", URL-encoded.
local function parse_copy_source(v)
  v = v:gsub("%?versionId=.*$", "")
  v = unescape(v)
  local sb, sk = v:match("^/?([^/]+)/(.+)$")
  return sb, sk
end

function S3:copy_source(r)
  local src = r.h["x-amz-copy-source"]
  local sb, sk = parse_copy_source(src)
  if not sb then
    return nil, invalid_argument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
      "x-amz-copy-source", src)
  end
  local b = self.disk:bucket(sb)
  if not b then return nil, no_such_bucket(sb) end
  local meta = b.objects[sk]
  if not meta then return nil, no_such_key(sk) end
  local cerr = check_conditions(r.h, meta, "x-amz-copy-source-", true)
  if cerr then return nil, cerr end
  return meta, sb, sk
end

function S3:copy_object(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local kerr = check_key(r.key)
  if kerr then return nil, kerr end
  local src, sb, sk = self:copy_source(r)
  if not src then return nil, sb end
  local directive = r.h["x-amz-metadata-directive"] or "COPY"
  if directive ~= "COPY" and directive ~= "REPLACE" then
    return nil, invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
  end
  if sb == r.bucket and sk == r.key and directive == "COPY" and not r.h["x-amz-storage-class"]
    and not r.h["x-amz-website-redirect-location"] then
    return nil, s3err("InvalidRequest", 400, "This copy request is illegal because it is trying to copy an object "
      .. "to itself without changing the object's metadata, storage class, website redirect location or "
      .. "encryption attributes.")
  end
  local meta
  if directive == "REPLACE" then
    local merr
    meta, merr = meta_from_headers(r.h)
    if not meta then return nil, merr end
  else
    meta = { metadata = {} }
    for _, p in ipairs(STORED_HEADERS) do meta[p[2]] = src[p[2]] end
    for k, v in pairs(src.metadata or {}) do meta.metadata[k] = v end
    meta.storage_class = src.storage_class
    local sc = r.h["x-amz-storage-class"]
    if sc then meta.storage_class = sc ~= "STANDARD" and sc or nil end
  end
  local tmp = self.disk:tmp_path()
  local hm = core.hasher("md5")
  local ok, err = body_mod.copy_file(self.disk:data_path(src), tmp, 0, src.size, false, hm)
  if not ok then
    os.remove(tmp)
    return nil, internal(err)
  end
  meta.size, meta.etag, meta.mtime = src.size, '"' .. core.hex_encode(hm:digest()) .. '"', now_ms(self)
  ok, err = self.disk:put_object(r.bucket, r.key, tmp, meta)
  if not ok then
    if err == "NoSuchBucket" then return nil, no_such_bucket(r.bucket) end
    return nil, internal(err)
  end
  return xml_response(r, 200, "CopyObjectResult", { el("LastModified", iso_date(meta.mtime)), el("ETag", meta.etag) })
end

-- ------------------------------------------------------------ multipart

function S3:upload(r, id)
  local u = id and self.disk.uploads[id]
  if not u or u.bucket ~= r.bucket or u.key ~= r.key or u.completing then return nil, no_such_upload(id) end
  return u
end

function S3:create_multipart_upload(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local kerr = check_key(r.key)
  if kerr then return nil, kerr end
  local meta, merr = meta_from_headers(r.h)
  if not meta then return nil, merr end
  local u, err = self.disk:create_upload { bucket = r.bucket, key = r.key, initiated = now_ms(self), meta = meta }
  if not u then return nil, internal(err) end
  return xml_response(r, 200, "InitiateMultipartUploadResult",
    { el("Bucket", r.bucket), el("Key", r.key), el("UploadId", u.id) })
end

local function part_number(q)
  local v = q.partNumber
  local n = v and v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > 10000 then
    return nil, invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", v or "")
  end
  return n
end

function S3:upload_part(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local n, nerr = part_number(r.q)
  if not n then return nil, nerr end
  local u, uerr = self:upload(r, r.q.uploadId)
  if not u then return nil, uerr end
  if r.h["x-amz-copy-source"] then return self:upload_part_copy(r, u, n) end
  local got, gerr = self:ingest(r)
  if not got then return nil, gerr end
  if self.disk.uploads[u.id] ~= u then
    os.remove(got.tmp)
    return nil, no_such_upload(u.id)
  end
  local etag = '"' .. core.hex_encode(got.md5) .. '"'
  local ok, err = self.disk:put_part(u, n, got.tmp, { etag = etag, size = got.size, mtime = now_ms(self),
    md5 = core.hex_encode(got.md5) })
  if not ok then return nil, internal(err) end
  local extra = { etag = etag }
  if got.checksum then extra["x-amz-checksum-" .. got.checksum.alg] = got.checksum.value end
  return empty_response(r, 200, extra)
end

function S3:upload_part_copy(r, u, n)
  local src, sb = self:copy_source(r)
  if not src then return nil, sb end
  local first, last = 0, src.size - 1
  local rv = r.h["x-amz-copy-source-range"]
  if rv then
    local a, z = rv:match("^bytes=(%d+)%-(%d+)$")
    a, z = tonumber(a), tonumber(z)
    if not a or z < a or z >= src.size then
      return nil, s3err("InvalidRange", 416, "The requested range is not satisfiable",
        { RangeRequested = rv, ActualObjectSize = fmt("%d", src.size) })
    end
    first, last = a, z
  end
  local tmp = self.disk:tmp_path()
  local hm = core.hasher("md5")
  local ok, err = body_mod.copy_file(self.disk:data_path(src), tmp, first, last - first + 1, false, hm)
  if not ok then
    os.remove(tmp)
    return nil, internal(err)
  end
  local md5 = core.hex_encode(hm:digest())
  local part = { etag = '"' .. md5 .. '"', size = last - first + 1, mtime = now_ms(self), md5 = md5 }
  ok, err = self.disk:put_part(u, n, tmp, part)
  if not ok then return nil, internal(err) end
  return xml_response(r, 200, "CopyPartResult", { el("LastModified", iso_date(part.mtime)), el("ETag", part.etag) })
end

function S3:complete_multipart_upload(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local u, uerr = self:upload(r, r.q.uploadId)
  if not u then return nil, uerr end
  local node = decode_xml(r.req.body, "CompleteMultipartUpload")
  if not node then return nil, malformed_xml() end
  local list = {}
  for name, v in children(node) do
    if name == "Part" then
      local pn, et = child(v, "PartNumber"), child(v, "ETag")
      local num = type(pn) == "string" and pn:match("^%s*(%d+)%s*$") and tonumber(pn)
      if not num or type(et) ~= "string" then return nil, malformed_xml() end
      list[#list + 1] = { n = num, etag = et:match('^%s*"?(.-)"?%s*$') }
    end
  end
  if #list == 0 then return nil, malformed_xml() end
  for i = 2, #list do
    if list[i].n <= list[i - 1].n then
      return nil, s3err("InvalidPartOrder", 400,
        "The list of parts was not in ascending order. Parts must be ordered by part number.", { UploadId = u.id })
    end
  end
  local md5s, size = {}, 0
  for i, p in ipairs(list) do
    local part = u.parts[tostring(p.n)]
    if not part or part.md5 ~= p.etag:lower() then
      return nil, s3err("InvalidPart", 400, "One or more of the specified parts could not be found.  The part may "
        .. "not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        { UploadId = u.id, PartNumber = p.n, ETag = p.etag })
    end
    if i < #list and part.size < MIN_PART then
      return nil, s3err("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.",
        { ProposedSize = fmt("%d", part.size), MinSizeAllowed = fmt("%d", MIN_PART), PartNumber = p.n,
          ETag = part.etag })
    end
    md5s[i] = core.hex_decode(part.md5)
    size = size + part.size
    p.part = part
  end
  local perr = self:write_precondition(r, b)
  if perr then return nil, perr end
  u.completing = true
  local tmp = self.disk:tmp_path()
  local f = io.open(tmp, "wb")
  if f then f:close() end
  for _, p in ipairs(list) do
    local ok, err = body_mod.copy_file(self.disk:part_path(u, p.part), tmp, 0, p.part.size, true)
    if not ok then
      u.completing = nil
      os.remove(tmp)
      return nil, internal(err)
    end
  end
  -- the multipart ETag: MD5 of the concatenated binary part MD5s, "-", the
  -- part count (what S3 returns; not an MD5 of the data)
  local meta = u.meta or { metadata = {} }
  meta.size, meta.mtime = size, now_ms(self)
  meta.etag = '"' .. core.md5_hex(concat(md5s)) .. "-" .. #list .. '"'
  perr = self:write_precondition(r, b)
  if perr then
    u.completing = nil
    os.remove(tmp)
    return nil, perr
  end
  local ok, err = self.disk:put_object(r.bucket, r.key, tmp, meta)
  u.completing = nil
  if not ok then
    if err == "NoSuchBucket" then return nil, no_such_bucket(r.bucket) end
    return nil, internal(err)
  end
  self.disk:drop_upload(u.id)
  local base = self.ctx.url or ("http://" .. (r.h.host or "localhost"))
  local location = base .. "/" .. r.bucket .. "/" .. core.uri_encode(r.key, false)
  return xml_response(r, 200, "CompleteMultipartUploadResult",
    { el("Location", location), el("Bucket", r.bucket), el("Key", r.key), el("ETag", meta.etag) })
end

function S3:abort_multipart_upload(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local u, uerr = self:upload(r, r.q.uploadId)
  if not u then return nil, uerr end
  local ok, err = self.disk:drop_upload(u.id)
  if not ok then return nil, internal(err) end
  return empty_response(r, 204)
end

function S3:initiator_xml()
  return "<Initiator>" .. el("ID", self.owner_id) .. el("DisplayName", "aio-aws") .. "</Initiator>" .. self:owner_xml()
end

function S3:list_parts(r)
  local b, e = self:bucket(r.bucket)
  if not b then return nil, e end
  local u, uerr = self:upload(r, r.q.uploadId)
  if not u then return nil, uerr end
  local max, merr = parse_max(r.q, "max-parts", 1000, 1000)
  if not max then return nil, merr end
  local mv = r.q["part-number-marker"] or "0"
  local marker = mv:match("^%d+$") and tonumber(mv)
  if not marker then
    return nil, invalid_argument("Provided part-number-marker not an integer or within integer range",
      "part-number-marker", mv)
  end
  local nums = {}
  for k in pairs(u.parts) do
    local n = tonumber(k)
    if n > marker then nums[#nums + 1] = n end
  end
  table.sort(nums)
  local truncated = #nums > max
  local parts = { el("Bucket", r.bucket), el("Key", r.key), el("UploadId", u.id), self:initiator_xml(),
    el("StorageClass", u.meta and u.meta.storage_class or "STANDARD"), el("PartNumberMarker", marker) }
  local shown = math.min(#nums, max)
  if truncated then parts[#parts + 1] = el("NextPartNumberMarker", nums[shown]) end
  parts[#parts + 1] = el("MaxParts", max)
  parts[#parts + 1] = el("IsTruncated", truncated and "true" or "false")
  for i = 1, shown do
    local p = u.parts[tostring(nums[i])]
    parts[#parts + 1] = "<Part>" .. el("PartNumber", nums[i]) .. el("LastModified", iso_date(p.mtime))
      .. el("ETag", p.etag) .. el("Size", fmt("%d", p.size)) .. "</Part>"
  end
  return xml_response(r, 200, "ListPartsResult", parts)
end

function S3:list_multipart_uploads(r)
  local q = r.q
  local la, lerr = listing_args(self, r, "max-uploads")
  if not la then return nil, lerr end
  local enc, max = la.enc, la.max
  local prefix, delim = la.prefix, la.delim
  local km, uim = q["key-marker"] or "", q["upload-id-marker"] or ""
  local ups = {}
  for _, u in pairs(self.disk.uploads) do
    if u.bucket == r.bucket and u.key:sub(1, #prefix) == prefix and not u.completing then
      -- after (key-marker, upload-id-marker): later keys, or the same key
      -- with a later upload id when an upload-id-marker is given
      if u.key > km or (uim ~= "" and u.key == km and u.id > uim) then ups[#ups + 1] = u end
    end
  end
  table.sort(ups, function(x, y)
    if x.key ~= y.key then return x.key < y.key end
    if x.initiated ~= y.initiated then return x.initiated < y.initiated end
    return x.id < y.id
  end)
  local out, cps, seen, n, truncated = {}, {}, {}, 0, false
  for _, u in ipairs(ups) do
    local cp
    if delim and delim ~= "" then
      local s = u.key:find(delim, #prefix + 1, true)
      if s then cp = u.key:sub(1, s + #delim - 1) end
    end
    if not (cp and seen[cp]) then
      if n == max then
        truncated = true
        break
      end
      n = n + 1
      if cp then
        seen[cp] = true
        cps[#cps + 1] = cp
        out[n] = { prefix = cp }
      else
        out[n] = { upload = u }
      end
    end
  end
  local parts = { el("Bucket", r.bucket), el("KeyMarker", enc(km)), el("UploadIdMarker", uim) }
  if truncated then
    local last = out[#out]
    parts[#parts + 1] = el("NextKeyMarker", enc(last.upload and last.upload.key or last.prefix))
    parts[#parts + 1] = el("NextUploadIdMarker", last.upload and last.upload.id or "")
  end
  if delim then parts[#parts + 1] = el("Delimiter", enc(delim)) end
  parts[#parts + 1] = el("Prefix", enc(prefix))
  if q["encoding-type"] then parts[#parts + 1] = el("EncodingType", "url") end
  parts[#parts + 1] = el("MaxUploads", max)
  parts[#parts + 1] = el("IsTruncated", truncated and "true" or "false")
  for _, o in ipairs(out) do
    local u = o.upload
    if u then
      parts[#parts + 1] = "<Upload>" .. el("Key", enc(u.key)) .. el("UploadId", u.id) .. self:initiator_xml()
        .. el("StorageClass", u.meta and u.meta.storage_class or "STANDARD")
        .. el("Initiated", iso_date(u.initiated)) .. "</Upload>"
    end
  end
  for _, cp in ipairs(cps) do
    parts[#parts + 1] = "<CommonPrefixes>" .. el("Prefix", enc(cp)) .. "</CommonPrefixes>"
  end
  return xml_response(r, 200, "ListMultipartUploadsResult", parts)
end

-- ------------------------------------------------------------ dispatch

local function not_implemented(what)
  return s3err("NotImplemented", 501, "A header you provided implies functionality that is not implemented",
    { Header = what })
end

local function method_not_allowed(method)
  return s3err("MethodNotAllowed", 405, "The specified method is not allowed against this resource.",
    { Method = method, ResourceType = "OBJECT" })
end

-- sub-resources this emulator does not serve answer 501 instead of being
-- mistaken for a plain object or bucket request
local UNSUPPORTED = {
  "acl", "tagging", "versioning", "policy", "cors", "lifecycle", "website", "logging", "notification",
  "replication", "encryption", "versions", "accelerate", "analytics", "inventory", "metrics", "ownershipControls",
  "publicAccessBlock", "requestPayment", "retention", "legal-hold", "object-lock", "restore", "select", "torrent",
  "attributes", "intelligent-tiering", "policyStatus",
}

function S3:route(r)
  local m, q = r.method, r.q
  if q.versioning and m == "GET" and r.bucket and not r.key then
    -- buckets here are never versioned: no Status element (GetBucketVersioning)
    local b, e = self:bucket(r.bucket)
    if not b then return nil, e end
    return xml_response(r, 200, "VersioningConfiguration", {})
  end
  for _, sub in ipairs(UNSUPPORTED) do
    if q[sub] then return nil, not_implemented("?" .. sub) end
  end
  if not r.bucket then
    if m == "GET" then return self:list_buckets(r) end
    return nil, method_not_allowed(m)
  end
  if not r.key then
    if m == "PUT" then return self:create_bucket(r) end
    if m == "DELETE" then return self:delete_bucket(r) end
    if m == "HEAD" then return self:head_bucket(r) end
    if m == "GET" then
      if q.location then return self:get_bucket_location(r) end
      if q.uploads then return self:list_multipart_uploads(r) end
      if q["list-type"] == "2" then return self:list_objects_v2(r) end
      if q["list-type"] then return nil, invalid_argument("Invalid List Type specified in Request", "list-type", q["list-type"]) end
      return self:list_objects(r)
    end
    if m == "POST" and q.delete then return self:delete_objects(r) end
    return nil, method_not_allowed(m)
  end
  if m == "PUT" then
    if q.uploadId or q.partNumber then return self:upload_part(r) end
    if r.h["x-amz-copy-source"] then return self:copy_object(r) end
    return self:put_object(r)
  end
  if m == "GET" then
    if q.uploadId then return self:list_parts(r) end
    return self:get_object(r, false)
  end
  if m == "HEAD" then return self:get_object(r, true) end
  if m == "DELETE" then
    if q.uploadId then return self:abort_multipart_upload(r) end
    return self:delete_object(r)
  end
  if m == "POST" then
    if q.uploads then return self:create_multipart_upload(r) end
    if q.uploadId then return self:complete_multipart_upload(r) end
  end
  return nil, method_not_allowed(m)
end

--- Answer one S3 request.
-- @tparam table req raw server request
-- @tparam[opt] table info router info (see the module doc)
-- @treturn table the response
function S3:handle(req, info)
  if type(req) ~= "table" then error("aio_aws.emulator.s3: req must be a table", 2) end
  if info ~= nil and type(info) ~= "table" then error("aio_aws.emulator.s3: info must be a table or nil", 2) end
  if self.closed then error("aio_aws.emulator.s3: the service is closed", 2) end
  info = info or {}
  local path = req.path or (req.target or "/"):match("^[^?]*") or "/"
  local query = req.query or (req.target or ""):match("%?(.*)$") or ""
  local r = {
    req = req, info = info, method = (req.method or "GET"):upper(), h = req.headers or {},
    rid = request_id(),
  }
  r.q = parse_query(query)
  if info.bucket_from_host then
    r.bucket = info.bucket_from_host
    local rest = path:sub(2)
    if rest ~= "" then r.key = unescape(rest) end
  else
    local b, rest = path:match("^/([^/]*)/?(.*)$")
    if b and b ~= "" then
      r.bucket = unescape(b)
      if rest ~= "" then r.key = unescape(rest) end
    end
  end
  r.resource = r.bucket and ("/" .. r.bucket .. (r.key and "/" .. r.key or "")) or "/"
  local ok, res, err = pcall(self.route, self, r)
  if not ok then
    if type(res) == "table" and res.code == "Cancelled" then error(res, 0) end
    -- a bug here must not take the endpoint down; the server would answer
    -- 500 too, but without S3's error document
    return self:error_response(r, internal(res))
  end
  if not res then return self:error_response(r, err) end
  return res
end

M.S3 = S3
return M
