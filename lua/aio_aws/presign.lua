--- Presigned URLs and S3 POST policies, as botocore's
-- `generate_presigned_url` and `generate_presigned_post`
-- (botocore/signers.py, auth.py SigV4QueryAuth, S3SigV4QueryAuth,
-- S3SigV4PostAuth), with SigV4 for every service (S3 included: botocore
-- 1.29 still defaults S3 presigning to SigV2 unless `signature_version =
-- "s3v4"`; AWS has deprecated SigV2).
--
--     local url = assert(s3:generate_presigned_url("GetObject", {Bucket = "b", Key = "k"}, {expires_in = 600}))
--     local post = assert(s3:generate_presigned_post("b", "uploads/${filename}",
--       {fields = {acl = "private"}, conditions = {{acl = "private"}, {"content-length-range", 1, 1048576}}}))
--     -- post.url, post.fields: the form to send (file last), see README
--
-- `generate_presigned_url(op, params, {expires_in = 3600, http_method})`:
-- the operation's request (validated, serialized, addressed as a call
-- would be) signed in the query string (`X-Amz-Algorithm`,
-- `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
-- `X-Amz-Security-Token`, `X-Amz-Signature`, in botocore's order after the
-- operation's own parameters). The method is the operation's unless
-- `http_method` says otherwise (botocore's rule: a presigned STS URL is a
-- POST). S3 URLs sign `UNSIGNED-PAYLOAD`; other services the empty body,
-- their form or JSON body moved into the query as botocore does. Headers
-- the operation sets (e.g. S3 `ContentType`) are signed and must be sent
-- with the request.
--
-- `generate_presigned_post(bucket, key, {fields, conditions, expires_in})`
-- (S3): `{url = ..., fields = {...}}` with the policy document (base64 of
-- its JSON, written as Python's json.dumps writes it), `x-amz-algorithm`,
-- `x-amz-credential`, `x-amz-date`, `x-amz-signature` and
-- `x-amz-security-token` when the credentials have one. A key ending in
-- `${filename}` becomes a `starts-with` condition. Conditions are lists
-- (`{"starts-with", "$key", "a/"}`) or one-entry maps (`{acl = "private"}`;
-- a map with several entries is written with sorted keys).
--
-- Misuse raises (wrong types, unknown operation, expires_in outside 1 to
-- 604800 s); runtime failures (parameter validation, credentials that
-- cannot be refreshed) return `nil, err`. Nothing here does I/O except a
-- credential refresh. The clock is `M.now` (epoch seconds; replaceable in
-- tests).
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"
local jmespath = require "aio_aws.jmespath"
local sigv4 = require "aio_aws.sigv4"

local M = {}

--- Clock (epoch seconds).
M.now = os.time

local uri_encode = core.uri_encode

-- Headers the client's header signing added; presigning replaces them.
local SIGNING_HEADERS = {
  authorization = true, ["x-amz-date"] = true, ["x-amz-security-token"] = true,
  ["x-amz-content-sha256"] = true, ["user-agent"] = true,
}

-- botocore auth.SigV4QueryAuth._modify_request_before_signing drops this
-- exact Content-Type (query protocol bodies move into the URL).
local FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

local function pct_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=2" -> {{"a", "1"}, {"b", "2"}} (decoded, order kept)
local function parse_query(q)
  local out = {}
  for part in (q or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    out[#out + 1] = { pct_decode(k), pct_decode(v) }
  end
  return out
end

-- Python str() of a JSON body value moved into the query.
local function py_scalar(v)
  if v == true then return "True" end
  if v == false then return "False" end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 1e16 then
    return string.format("%.1f", v)
  end
  return tostring(v)
end

local function frozen_credentials(client)
  local creds = client._credentials
  if type(creds) == "table" and type(creds.get_frozen) == "function" then
    local c, err = creds:get_frozen()
    if not c then return nil, err end
    return c
  end
  return creds
end

local function check_expires(v, what, level)
  if v == nil then return 3600 end
  local n = math.tointeger(v)
  if not n then error(what .. ": expires_in must be an integer number of seconds", level + 1) end
  -- SigV4 query auth: X-Amz-Expires is 1 to 604800 (7 days)
  if n < 1 or n > 604800 then error(what .. ": expires_in must be between 1 and 604800", level + 1) end
  return n
end

-- Signing region of a request to `bucket` (after an S3 region redirect).
local function signing_region(client, params)
  local redirect = client._s3_regions and type(params.Bucket) == "string" and client._s3_regions[params.Bucket]
  if redirect then return redirect.region end
  return client._endpoint.signing_region
end

--- See the module comment.
function M.generate_presigned_url(client, op, params, opts)
  if type(op) ~= "string" then error("generate_presigned_url: operation name must be a string", 2) end
  if params == nil then params = {} end
  if type(params) ~= "table" then error("generate_presigned_url: params must be a table", 2) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("generate_presigned_url: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "expires_in" and k ~= "http_method" then
      error("generate_presigned_url: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local expires = check_expires(opts.expires_in, "generate_presigned_url", 2)
  if opts.http_method ~= nil and (type(opts.http_method) ~= "string" or not opts.http_method:match("^%u+$")) then
    error("generate_presigned_url: http_method must be an upper-case method name", 2)
  end
  local svc = client._svc
  local operation = svc:operation(op)
  if not operation then
    error(("generate_presigned_url: %s has no operation %s"):format(client.service_name, op), 2)
  end
  local ok, verr = client._validate.params(svc, operation.name, params)
  if not ok then return nil, verr end
  local prepared, perr = client:_prepare(operation.name, params, {})
  if not prepared then return nil, perr end
  if prepared.body_file then
    return nil, errors.new("ParamValidation", "generate_presigned_url: a file body cannot be presigned")
  end
  local headers = {}
  for k, v in pairs(prepared.headers) do
    local lk = k:lower()
    if not SIGNING_HEADERS[lk] and lk ~= "content-md5" and lk ~= "content-length" then headers[lk] = v end
  end
  local base, query = prepared.url:match("^([^?]*)%??(.*)$")
  local qpairs = parse_query(query)
  local body = prepared.body
  if body ~= nil and body ~= "" then
    if headers["content-type"] == FORM_TYPE then
      for _, p in ipairs(parse_query(body)) do qpairs[#qpairs + 1] = p end
    else
      local data = jmespath.json_decode(body)
      if type(data) ~= "table" or jmespath.type(data) ~= "object" then
        return nil, errors.new("ParamValidation",
          "generate_presigned_url: the request body of " .. operation.name .. " cannot move into a URL")
      end
      for _, k in ipairs(jmespath.keys(data)) do
        local v = data[k]
        if type(v) == "table" then
          return nil, errors.new("ParamValidation", ("generate_presigned_url: parameter %s of %s "
            .. "is a structure or list and cannot move into a URL"):format(k, operation.name))
        end
        qpairs[#qpairs + 1] = { k, py_scalar(v) }
      end
    end
  end
  if headers["content-type"] == FORM_TYPE then headers["content-type"] = nil end
  local creds, cerr = frozen_credentials(client)
  if not creds then return nil, cerr end
  local op_query = {}
  for i, p in ipairs(qpairs) do op_query[i] = uri_encode(p[1], true) .. "=" .. uri_encode(p[2], true) end
  local url = base .. (#op_query > 0 and ("?" .. table.concat(op_query, "&")) or "")
  local method = opts.http_method or prepared.method
  local ep = client._endpoint
  local signed, dbg = sigv4.sign({ method = method, url = url, headers = headers },
    creds, { region = signing_region(client, params), service = ep.signing_name,
      s3 = client._is_s3 or nil, presign_expires = expires, time = M.now() })
  -- botocore's order: the operation's parameters, then the auth ones
  local auth = {}
  for _, p in ipairs(parse_query(signed.url:match("%?(.*)$"))) do auth[p[1]] = p[2] end
  local parts = {}
  for i, q in ipairs(op_query) do parts[i] = q end
  for _, k in ipairs({ "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token" }) do
    if auth[k] then parts[#parts + 1] = k .. "=" .. uri_encode(auth[k], true) end
  end
  parts[#parts + 1] = "X-Amz-Signature=" .. dbg.signature
  return base .. "?" .. table.concat(parts, "&")
end

local function iso(t, fmt) return os.date("!" .. fmt, t) end

-- SigV4 signing key (sig-v4-authenticating-requests): the POST policy is
-- its string to sign.
local function post_signature(secret, date, region, service, policy_b64)
  local hmac = core.hmac_sha256
  local k = hmac("AWS4" .. secret, date)
  k = hmac(k, region)
  k = hmac(k, service)
  k = hmac(k, "aws4_request")
  return core.hex_encode(hmac(k, policy_b64))
end

local function condition_value(c, i)
  if type(c) ~= "table" then
    error(("generate_presigned_post: condition %d must be a list or a map"):format(i), 4)
  end
  if c[1] ~= nil then return setmetatable(table.move(c, 1, #c, 1, {}), jmespath.array_mt) end
  local list = {}
  for k, v in pairs(c) do
    if type(k) ~= "string" then error(("generate_presigned_post: condition %d has a non-string key"):format(i), 4) end
    list[#list + 1] = { k, v }
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return jmespath.object(list)
end

--- See the module comment.
function M.generate_presigned_post(client, bucket, key, opts)
  if not client._is_s3 then error("generate_presigned_post is for S3 clients", 2) end
  if type(bucket) ~= "string" or bucket == "" then error("generate_presigned_post: bucket must be a string", 2) end
  if type(key) ~= "string" or key == "" then error("generate_presigned_post: key must be a string", 2) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("generate_presigned_post: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "expires_in" and k ~= "fields" and k ~= "conditions" then
      error("generate_presigned_post: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local expires = check_expires(opts.expires_in, "generate_presigned_post", 2)
  if opts.fields ~= nil and type(opts.fields) ~= "table" then error("generate_presigned_post: fields must be a table", 2) end
  if opts.conditions ~= nil and type(opts.conditions) ~= "table" then
    error("generate_presigned_post: conditions must be a list", 2)
  end
  local fields = {}
  for k, v in pairs(opts.fields or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error("generate_presigned_post: fields must map strings to strings", 2)
    end
    fields[k] = v
  end
  local conditions = setmetatable({}, jmespath.array_mt)
  for i, c in ipairs(opts.conditions or {}) do conditions[i] = condition_value(c, i) end
  -- botocore posts to the CreateBucket URL of the bucket
  local prepared, perr = client:_prepare("CreateBucket", { Bucket = bucket }, {})
  if not prepared then return nil, perr end
  local url = prepared.url:match("^([^?]*)")
  conditions[#conditions + 1] = jmespath.object({ { "bucket", bucket } })
  local suffix = "${filename}"
  if key:sub(-#suffix) == suffix then
    conditions[#conditions + 1] = setmetatable({ "starts-with", "$key", key:sub(1, -#suffix - 1) }, jmespath.array_mt)
  else
    conditions[#conditions + 1] = jmespath.object({ { "key", key } })
  end
  fields.key = key
  local creds, cerr = frozen_credentials(client)
  if not creds then return nil, cerr end
  local now = M.now()
  local stamp, date = iso(now, "%Y%m%dT%H%M%SZ"), iso(now, "%Y%m%d")
  local region = signing_region(client, { Bucket = bucket })
  local credential = ("%s/%s/%s/s3/aws4_request"):format(creds.access_key, date, region)
  fields["x-amz-algorithm"] = "AWS4-HMAC-SHA256"
  fields["x-amz-credential"] = credential
  fields["x-amz-date"] = stamp
  conditions[#conditions + 1] = jmespath.object({ { "x-amz-algorithm", "AWS4-HMAC-SHA256" } })
  conditions[#conditions + 1] = jmespath.object({ { "x-amz-credential", credential } })
  conditions[#conditions + 1] = jmespath.object({ { "x-amz-date", stamp } })
  if creds.session_token then
    fields["x-amz-security-token"] = creds.session_token
    conditions[#conditions + 1] = jmespath.object({ { "x-amz-security-token", creds.session_token } })
  end
  local policy = jmespath.object({
    { "expiration", iso(now + expires, "%Y-%m-%dT%H:%M:%SZ") },
    { "conditions", conditions },
  })
  local ok, doc = pcall(jmespath.py_dumps, policy)
  if not ok then error("generate_presigned_post: " .. tostring(doc), 2) end
  fields.policy = core.base64_encode(doc)
  fields["x-amz-signature"] = post_signature(creds.secret_key, date, region, "s3", fields.policy)
  return { url = url, fields = fields }
end

--- Installs `client:generate_presigned_url` and `client:generate_presigned_post`.
function M.install(Client)
  function Client:generate_presigned_url(op, params, opts)
    return M.generate_presigned_url(self, op, params, opts)
  end
  function Client:generate_presigned_post(bucket, key, opts)
    return M.generate_presigned_post(self, bucket, key, opts)
  end
end

return M
