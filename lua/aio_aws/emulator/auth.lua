--- SigV4 verification for the local endpoint.
--
-- A request is checked by recomputing its signature with the project's own
-- signer (aio_aws.sigv4 / core.sigv4_sign) from what was received: method,
-- wire path, wire query, the headers named in SignedHeaders (exactly those,
-- `options.signed_headers`), the request time, and the payload hash, then
-- comparing in constant time. The AWS rules followed:
--
--  * header form: `Authorization: AWS4-HMAC-SHA256 Credential=AK/date/region/
--    service/aws4_request, SignedHeaders=a;b, Signature=hex`
--    (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html);
--  * query form (presigned URLs): X-Amz-Algorithm, X-Amz-Credential,
--    X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature
--    (AmazonS3/latest/API/sigv4-query-string-auth.html); expired -> 403;
--  * payload hash: S3 signs the `x-amz-content-sha256` header as given
--    (a hex hash, `UNSIGNED-PAYLOAD` or `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`;
--    checking the body against a hex hash is S3's job); S3 presigned URLs
--    sign UNSIGNED-PAYLOAD; other services sign SHA-256 of the body (or
--    UNSIGNED-PAYLOAD when the client says so);
--  * clock skew: more than 15 minutes between X-Amz-Date and the server
--    clock gives RequestTimeTooSkewed (sig-v4-authenticating-requests.html,
--    "the request timestamp must be within 15 minutes").
--
-- The region of the scope is accepted as signed (the endpoint serves any
-- region). Nothing here logs or returns the secret key.
local core = require "aio_aws.core"
local sigv4 = require "aio_aws.sigv4"
local timestamp = require "aio_aws.protocol.timestamp"

local M = {}

M.MAX_SKEW = 15 * 60

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Decoded `{name, value}` pairs of a wire query string ("+" is a space, as
-- in application/x-www-form-urlencoded; a bare name has value "").
function M.parse_query(q)
  local out = {}
  if type(q) ~= "string" or q == "" then return out end
  for item in q:gmatch("[^&]+") do
    local k, v = item:match("^([^=]*)=(.*)$")
    if not k then k, v = item, "" end
    out[#out + 1] = { pct_decode((k:gsub("%+", " "))), pct_decode((v:gsub("%+", " "))) }
  end
  return out
end

local function query_get(pairs_, name)
  for _, p in ipairs(pairs_) do
    if p[1] == name then return p[2] end
  end
  return nil
end

local function split_credential(cred)
  -- AK/20150830/us-east-1/iam/aws4_request (the access key itself has no "/")
  local ak, date, region, service, term = cred:match("^([^/]+)/(%d%d%d%d%d%d%d%d)/([^/]+)/([^/]+)/([^/]+)$")
  if not ak or term ~= "aws4_request" then return nil end
  return { access_key = ak, date = date, region = region, service = service }
end

--- What a request says about its signature, without checking it.
-- @tparam table req a server request (`headers` with lower-case names, `query`)
-- @return nil when the request carries no SigV4 credentials at all;
--   else `{kind = "header"|"query"|"query_v2", access_key, date, region, service,
--   signed_headers = {...}, signature, amz_date, expires}`, or
--   `{kind = ..., malformed = "why"}` when it is unreadable.
function M.parse(req)
  local h = req.headers or {}
  local authz = h["authorization"]
  if authz then
    local alg, rest = authz:match("^%s*(%S+)%s+(.*)$")
    if alg ~= "AWS4-HMAC-SHA256" then
      return { kind = "header", malformed = "Unsupported Authorization Type" }
    end
    local fields = {}
    for part in rest:gmatch("[^,]+") do
      local k, v = part:match("^%s*([%w]+)=(.-)%s*$")
      if k then fields[k] = v end
    end
    local cred = fields.Credential and split_credential(fields.Credential)
    if not cred or not fields.SignedHeaders or not fields.Signature then
      return { kind = "header", malformed = "Authorization header requires Credential, SignedHeaders and Signature" }
    end
    cred.kind = "header"
    cred.signature = fields.Signature
    cred.signed_headers = {}
    for name in fields.SignedHeaders:gmatch("[^;]+") do cred.signed_headers[#cred.signed_headers + 1] = name end
    cred.amz_date = h["x-amz-date"]
    if not cred.amz_date and h["date"] then
      local secs = timestamp.parse(h["date"])
      cred.amz_date = secs and os.date("!%Y%m%dT%H%M%SZ", math.floor(secs)) or nil
    end
    if not cred.amz_date then
      return { kind = "header", malformed = "AWS authentication requires a valid Date or x-amz-date header",
        service = cred.service }
    end
    return cred
  end
  local q = req.query
  if type(q) == "string" and q:find("AWSAccessKeyId=", 1, true) and q:find("Signature=", 1, true) then
    -- S3 signature version 2 query auth, what boto3 1.29's
    -- generate_presigned_url makes for S3 unless told s3v4
    -- (AmazonS3/latest/userguide/RESTAuthentication.html, "Query string
    -- request authentication alternative")
    local params = M.parse_query(q)
    local exp = tonumber(query_get(params, "Expires") or "")
    local sig = query_get(params, "Signature")
    if not exp or not sig then
      return { kind = "query_v2", service = "s3", malformed = "Query-string authentication requires the Signature, "
        .. "Expires and AWSAccessKeyId parameters" }
    end
    return { kind = "query_v2", service = "s3", access_key = query_get(params, "AWSAccessKeyId"),
      signature = sig, expires = exp, region = "us-east-1" }
  end
  if type(q) == "string" and q:find("X-Amz-Credential=", 1, true) then
    local params = M.parse_query(q)
    local c = query_get(params, "X-Amz-Credential")
    local cred = c and split_credential(c)
    if not cred then return { kind = "query", malformed = "Invalid X-Amz-Credential" } end
    cred.kind = "query"
    if query_get(params, "X-Amz-Algorithm") ~= "AWS4-HMAC-SHA256" then
      return { kind = "query", malformed = "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"", service = cred.service }
    end
    cred.signature = query_get(params, "X-Amz-Signature")
    cred.amz_date = query_get(params, "X-Amz-Date")
    cred.expires = tonumber(query_get(params, "X-Amz-Expires") or "")
    local sh = query_get(params, "X-Amz-SignedHeaders")
    if not cred.signature or not cred.amz_date or not cred.expires or not sh then
      return { kind = "query", malformed = "Query-string authentication requires the X-Amz-Algorithm, "
        .. "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        service = cred.service }
    end
    cred.signed_headers = {}
    for name in sh:gmatch("[^;]+") do cred.signed_headers[#cred.signed_headers + 1] = name end
    return cred
  end
  return nil
end

local function amz_to_epoch(amz)
  local y, mo, d, hh, mi, ss = amz:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then return nil end
  return timestamp.days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mi) * 60 + tonumber(ss)
end
M.amz_to_epoch = amz_to_epoch

local function fail(code, status, message, extra)
  local e = { code = code, status = status, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return nil, e
end

--- Body bytes of a request (reads a spooled body file).
local function body_of(req)
  if req.body then return req.body end
  if req.body_file then
    local f = io.open(req.body_file, "rb")
    if not f then return "" end
    local s = f:read("a") or ""
    f:close()
    return s
  end
  return ""
end

local function file_sha256(path)
  local f = io.open(path, "rb")
  if not f then return sigv4.EMPTY_SHA256 end
  local h = core.hasher("sha256")
  while true do
    local chunk = f:read(1 << 16)
    if not chunk then break end
    h:update(chunk)
  end
  f:close()
  local hex = h:hexdigest()
  h:close()
  return hex
end

local function hmac_sha1(key, msg)
  -- RFC 2104 over the core's SHA-1 (block size 64)
  if #key > 64 then key = core.sha1(key) end
  key = key .. string.rep("\0", 64 - #key)
  local ipad = key:gsub(".", function(c) return string.char(string.byte(c) ~ 0x36) end)
  local opad = key:gsub(".", function(c) return string.char(string.byte(c) ~ 0x5c) end)
  return core.sha1(opad .. core.sha1(ipad .. msg))
end
M.hmac_sha1 = hmac_sha1

-- Sub-resources signed by S3 signature version 2 (botocore.auth.HmacV1Auth.QSAOfInterest).
local V2_SUBRESOURCES = {}
for name in ([[accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment
  torrent versioning versionId versions website uploads uploadId response-content-type
  response-content-language response-expires response-cache-control response-content-disposition
  response-content-encoding delete lifecycle tagging restore storageClass notification replication
  analytics metrics inventory select select-type object-lock]]):gmatch("%S+") do
  V2_SUBRESOURCES[name] = true
end

-- Signature version 2 string to sign of a presigned URL:
-- METHOD \n Content-MD5 \n Content-Type \n Expires \n x-amz-* headers, resource.
local function v2_string_to_sign(req, expires, bucket_from_host)
  local h = req.headers or {}
  local lines = { req.method:upper(), h["content-md5"] or "", h["content-type"] or "", tostring(math.tointeger(expires) or expires) }
  local amz = {}
  for k, v in pairs(h) do
    if k:sub(1, 6) == "x-amz-" then amz[#amz + 1] = k .. ":" .. v end
  end
  table.sort(amz)
  for _, l in ipairs(amz) do lines[#lines + 1] = l end
  local resource = (bucket_from_host and ("/" .. bucket_from_host) or "") .. (req.path ~= "" and req.path or "/")
  local sub = {}
  for item in (req.query or ""):gmatch("[^&]+") do
    local k, v = item:match("^([^=]*)=?(.*)$")
    if V2_SUBRESOURCES[k] then
      sub[#sub + 1] = { k, item:find("=", 1, true) and pct_decode(v) or nil }
    end
  end
  table.sort(sub, function(a, b) return a[1] < b[1] end)
  for i, p in ipairs(sub) do sub[i] = p[2] and (p[1] .. "=" .. p[2]) or p[1] end
  if #sub > 0 then resource = resource .. "?" .. table.concat(sub, "&") end
  lines[#lines + 1] = resource
  return table.concat(lines, "\n")
end

local function verify_v2(req, parsed, opts)
  if parsed.access_key ~= opts.access_key then
    return fail("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.",
      { AWSAccessKeyId = parsed.access_key })
  end
  if opts.now > parsed.expires then
    return fail("AccessDenied", 403, "Request has expired",
      { Expires = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(parsed.expires)),
        ServerTime = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(opts.now)) })
  end
  local sts = v2_string_to_sign(req, parsed.expires, opts.bucket_from_host)
  local want = core.base64_encode(hmac_sha1(opts.secret_key, sts))
  if not core.secure_equals(want, parsed.signature) then
    return fail("SignatureDoesNotMatch", 403,
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
      { AWSAccessKeyId = parsed.access_key, StringToSign = sts, SignatureProvided = parsed.signature })
  end
  return { kind = "query_v2", access_key = parsed.access_key, region = parsed.region, service = "s3",
    signature = parsed.signature, payload_hash = sigv4.UNSIGNED_PAYLOAD }
end

--- Verify a request's signature.
-- @tparam table req the server request
-- @tparam table parsed what `M.parse(req)` returned (not nil, not malformed)
-- @tparam table opts `access_key`, `secret_key`, `now` (epoch seconds),
--   `bucket_from_host` (virtual-hosted S3: the bucket is part of what
--   signature version 2 signs)
-- @return info `{access_key, region, service, signature, amz_date, kind,
--   payload_hash, streaming}` where `streaming` (aws-chunked uploads only) is
--   `{seed_signature, amz_date, region, service, scope, chunker}`:
--   `chunker:sign_chunk(data)` returns the signature the next chunk must carry
--   (the chain starts at the seed signature; the final empty chunk too), or
--   nil, err where err = `{code, status, message, ...}` with the XML fields
--   S3 reports (AWSAccessKeyId, StringToSign, SignatureProvided, CanonicalRequest).
function M.verify(req, parsed, opts)
  if parsed.kind == "query_v2" then return verify_v2(req, parsed, opts) end
  local h = req.headers or {}
  if parsed.access_key ~= opts.access_key then
    return fail("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.",
      { AWSAccessKeyId = parsed.access_key })
  end
  local t = amz_to_epoch(parsed.amz_date)
  if not t then
    return fail("AuthorizationHeaderMalformed", 400, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
  end
  local now = opts.now
  local s3 = parsed.service == "s3"
  if parsed.kind == "query" then
    local exp = math.tointeger(parsed.expires)
    if not exp or exp < 1 or exp > 604800 then
      return fail("AuthorizationQueryParametersError", 400,
        "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    end
    if now > t + exp then
      return fail("AccessDenied", 403, "Request has expired",
        { ["X-Amz-Expires"] = tostring(exp), Expires = os.date("!%Y-%m-%dT%H:%M:%SZ", t + exp),
          ServerTime = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(now)) })
    end
    if t > now + M.MAX_SKEW then
      return fail("AccessDenied", 403, "Request is not valid yet")
    end
  elseif math.abs(now - t) > M.MAX_SKEW then
    return fail("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large.",
      { RequestTime = parsed.amz_date, ServerTime = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(now)),
        MaxAllowedSkewMilliseconds = "900000" })
  end

  -- the payload hash the client signed
  local claimed = h["x-amz-content-sha256"]
  local payload
  if s3 then
    if parsed.kind == "query" then
      payload = claimed or sigv4.UNSIGNED_PAYLOAD
    elseif claimed then
      payload = claimed
    elseif req.body_file then
      payload = file_sha256(req.body_file)
    else
      payload = core.sha256_hex(req.body or "")
    end
  elseif claimed == sigv4.UNSIGNED_PAYLOAD then
    payload = claimed
  else
    payload = req.body_file and file_sha256(req.body_file) or core.sha256_hex(body_of(req))
  end

  local headers = {}
  local list = req.header_list
  if list then
    for _, p in ipairs(list) do
      if p[1]:lower() ~= "authorization" then headers[#headers + 1] = { p[1], p[2] } end
    end
  else
    for k, v in pairs(h) do
      if k ~= "authorization" then headers[#headers + 1] = { k, v } end
    end
  end
  local request = {
    method = req.method,
    scheme = "http",
    host = h.host or "localhost",
    path = req.path ~= "" and req.path or "/",
    query = req.query or "",
    headers = headers,
    payload_hash = payload,
  }
  local options = {
    region = parsed.region, service = parsed.service, time = parsed.amz_date,
    signed_headers = parsed.signed_headers, s3 = s3,
    presign_expires = parsed.kind == "query" and math.tointeger(parsed.expires) or nil,
  }
  local creds = { access_key = opts.access_key, secret_key = opts.secret_key }
  local ok, res, dbg = pcall(sigv4.sign, request, creds, options)
  if not ok then
    -- e.g. a header listed in SignedHeaders that the request lacks
    local why = tostring(res):gsub("^.-aio_aws%.sigv4: ", "")
    return fail("SignatureDoesNotMatch", 403,
      "The request signature we calculated does not match the signature you provided. " .. why,
      { AWSAccessKeyId = parsed.access_key, SignatureProvided = parsed.signature })
  end
  if not core.secure_equals(dbg.signature, parsed.signature or "") then
    return fail("SignatureDoesNotMatch", 403,
      "The request signature we calculated does not match the signature you provided. "
        .. "Check your key and signing method.",
      { AWSAccessKeyId = parsed.access_key, StringToSign = dbg.string_to_sign,
        SignatureProvided = parsed.signature, CanonicalRequest = dbg.canonical_request })
  end
  local info = {
    kind = parsed.kind, access_key = parsed.access_key, region = parsed.region,
    service = parsed.service, signature = parsed.signature, amz_date = parsed.amz_date,
    payload_hash = payload,
  }
  if s3 and payload == sigv4.STREAMING_PAYLOAD then
    info.streaming = {
      seed_signature = parsed.signature, amz_date = parsed.amz_date, region = parsed.region,
      service = parsed.service, scope = dbg.scope,
      chunker = sigv4.chunked(creds, { region = parsed.region, service = parsed.service, time = parsed.amz_date },
        parsed.signature),
    }
  end
  return info
end

return M
