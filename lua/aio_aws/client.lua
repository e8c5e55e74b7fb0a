--- The model-driven client: one method per operation of any AWS service.
--
--     local s3 = session:client("s3", {endpoint_url = "http://127.0.0.1:4568"})
--     local out, err = s3:put_object({Bucket = "b", Key = "k", Body = "hello"})
--     local out, err = s3:call("PutObject", params, {dry_run = true})
--
-- One call runs the pipeline of DESIGN.md, one module per stage:
-- validate (aio_aws.validate) -> build (aio_aws.protocol) -> endpoint
-- (aio_aws.endpoints) -> sign (aio_aws.sigv4) -> send (aio_aws.http, or a
-- transport handed in) -> parse (aio_aws.protocol) -> retry decision
-- (aio_aws.retry). `dry_run` stops after signing and returns the request.
--
-- Results are plain tables with `ResponseMetadata = {RequestId,
-- HTTPStatusCode, HTTPHeaders, RetryAttempts}`. Failures return `nil, err`
-- (aio_aws.errors) with `err.code` the AWS error code (the status, e.g.
-- "404", for bodyless HEAD errors), `message`, `status`, `request_id`,
-- `retryable`, modeled error members, and `err.response_metadata`.
-- Misuse (wrong argument types, unknown operation) raises.
--
-- Streaming outputs (S3 GetObject's `Body`) are aio_aws.body Bodies;
-- streaming inputs take a string, an open file or `{file = path [, offset,
-- length]}`, sent without reading them whole. Flexible checksums follow
-- `request_checksum_calculation` / `response_checksum_validation`
-- (aio_aws.checksum; default "when_required"). `client:on(event, fn,
-- filter)` registers hooks (aio_aws.hooks). Requests and responses are
-- logged at DEBUG (aio_aws.log), secrets redacted. S3 clients also have
-- `upload_file` and `download_file` (aio_aws.transfer).
local core = require "aio_aws.core"
local async = require "aio_aws.async"
local bodymod = require "aio_aws.body"
local checksum = require "aio_aws.checksum"
local errors = require "aio_aws.errors"
local hooks = require "aio_aws.hooks"
local http = require "aio_aws.http"
local log = require "aio_aws.log"
local model = require "aio_aws.model"
local protocol = require "aio_aws.protocol"
local sigv4 = require "aio_aws.sigv4"
local transfer = require "aio_aws.transfer"

local LOG = log.get("aio_aws.client")
local walltime = core.walltime

local uri_encode = core.uri_encode
local concat = table.concat

local M = {}

-- botocore's S3 customizations (botocore/handlers.py) that change what
-- goes on the wire:
-- * Content-MD5 on PutObject and UploadPart with an in-memory body
--   (conditionally_calculate_md5), so S3 rejects a corrupted upload;
-- * ListObjects* ask for url-encoded keys (set_list_objects_encoding_type_url)
--   so keys with characters XML cannot carry survive, and the named fields
--   are decoded in the response (decode_list_object*).
local S3_MD5_OPS = { PutObject = true, UploadPart = true }
local S3_LIST_DECODE = {
  ListObjects = { top = { "Delimiter", "Marker", "NextMarker", "Prefix" },
    lists = { Contents = "Key", CommonPrefixes = "Prefix" } },
  ListObjectsV2 = { top = { "Delimiter", "Prefix", "StartAfter" },
    lists = { Contents = "Key", CommonPrefixes = "Prefix" } },
  ListObjectVersions = { top = { "KeyMarker", "NextKeyMarker", "Prefix", "Delimiter" },
    lists = { Versions = "Key", DeleteMarkers = "Key", CommonPrefixes = "Prefix" } },
}

-- urllib's unquote_plus, as botocore decodes url-encoded listings (in C:
-- a 1,000-key page decodes 2,000 escapes)
local uri_decode = core.uri_decode
local function url_decode(s) return uri_decode(s, true) end

local function s3_decode_listing(spec, out)
  -- only when S3 says it encoded them (botocore decode_list_object*)
  if out.EncodingType ~= "url" then return end
  for _, k in ipairs(spec.top) do
    if type(out[k]) == "string" then out[k] = url_decode(out[k]) end
  end
  for list, field in pairs(spec.lists) do
    for _, item in ipairs(out[list] or {}) do
      if type(item[field]) == "string" then item[field] = url_decode(item[field]) end
    end
  end
end

local Client = {}
Client.__name = "aio_aws.Client"

local VERSION = "0.1"

function Client.__index(self, k)
  local v = Client[k]
  if v ~= nil then return v end
  local name = type(k) == "string" and rawget(self, "_svc"):operation_for_method(k)
  if not name then return nil end
  local f = function(client, params, opts) return client:call(name, params, opts) end
  rawset(self, k, f)
  return f
end

function Client.__tostring(self)
  -- never the credentials
  return ("aio_aws.Client(%s, %s)"):format(self.service_name, tostring(self.region))
end

-- RFC 3986 query string from ordered {name, value} pairs ({name} alone is
-- a bare flag such as "?uploads"), as SigV4 and the services expect.
local function encode_query(pairs_list)
  if not pairs_list or #pairs_list == 0 then return "" end
  local parts = {}
  for i, p in ipairs(pairs_list) do
    if p[2] == nil then
      parts[i] = uri_encode(p[1], true)
    else
      parts[i] = uri_encode(p[1], true) .. "=" .. uri_encode(tostring(p[2]), true)
    end
  end
  return "?" .. concat(parts, "&")
end

local function split_url(url)
  local scheme, host, path = url:match("^(https?)://([^/]+)(.*)$")
  if not scheme then return nil end
  path = path:gsub("/+$", "")
  return scheme, host, path
end

--- Build the signed HTTP request for one attempt.
-- @treturn table {method, url, headers, body | body_file, ...}
-- `call_state` (per call, for operations with a streaming input) keeps
-- the body's description across attempts: a file handle is resent from
-- where it was when the call began.
function Client:_prepare(op_name, params, opts, call_state)
  local svc = self._svc
  local req, err = protocol.build(svc, op_name, params, { host_prefix_enabled = self._inject_host_prefix })
  if not req then return nil, err end
  local ep = self._endpoint
  local base = ep.url
  local region, signing_name = ep.signing_region, ep.signing_name
  local redirect = self._s3_regions and params.Bucket and self._s3_regions[params.Bucket]
  if redirect then
    base, region = redirect.url, redirect.region
  end
  local path = req.path
  if self._is_s3 and type(params.Bucket) == "string" then
    base, path = self._endpoints.s3_address(base, path, params.Bucket, self._addressing_style,
      self._fixed_endpoint)
  end
  local scheme, host, prefix = split_url(base)
  if not scheme then
    return nil, errors.new("EndpointResolutionError", "invalid endpoint URL " .. tostring(base))
  end
  if req.host_prefix and self._inject_host_prefix then host = req.host_prefix .. host end
  local url = scheme .. "://" .. host .. prefix .. path .. encode_query(req.query)

  local headers = req.headers
  headers["user-agent"] = self._user_agent
  local body = req.body
  local src, payload_hash, body_file, body_offset, body_length, body_open
  if body ~= nil and type(body) ~= "string" then
    -- a file, a file handle or a reader: streamed, never read whole
    src = call_state and call_state.src
    if not src then
      local serr
      src, serr = bodymod.source(body)
      if not src then return nil, serr end
      if call_state then call_state.src = src end
    end
    body = nil
  end
  local op = svc:operation(op_name)
  -- no default checksum in a presigned request (botocore: is_presign_request)
  local alg, alg_header = checksum.request_algorithm(op, params,
    opts.presign and "when_required" or self._request_checksum)
  if alg == nil and self._is_s3 and S3_MD5_OPS[op_name] then alg = "md5" end
  if alg == "md5" then
    -- in-memory bodies only, as before (a streamed one is not read twice)
    if body and not headers["content-md5"] then headers["content-md5"] = core.md5_base64(body) end
    alg = nil
  elseif alg then
    local hname = checksum.header_name(alg)
    if alg_header and not headers[alg_header] then headers[alg_header] = alg:upper() end
    if headers[hname] then
      alg = nil -- the caller gave the value (botocore: skip the calculation)
    elseif body then
      headers[hname] = checksum.compute(alg, body or "")
      alg = nil
    elseif not src then
      headers[hname] = checksum.compute(alg, "")
      alg = nil
    end
  end
  -- here `alg` is set only for a streamed body that still needs its checksum
  local trailer = alg and op.has_streaming_input and scheme == "https"
  if src then
    -- S3 over TLS signs UNSIGNED-PAYLOAD (botocore); so does a body that
    -- can be read only once, which S3 accepts over http too
    local signed_payload = not (self._is_s3 and (scheme == "https" or src.kind == "reader"))
    if trailer then
      -- aws-chunked with the checksum in a trailer: one pass over the file
      -- (botocore _apply_request_trailer_checksum; unsigned, so TLS only)
      local hname = checksum.header_name(alg)
      local ce = headers["content-encoding"]
      headers["content-encoding"] = ce and ("aws-chunked," .. ce) or "aws-chunked"
      headers["x-amz-trailer"] = hname
      headers["content-length"] = nil
      local len = src.length
      if len then
        headers["x-amz-decoded-content-length"] = tostring(len)
        body_length = checksum.chunked_length(len, alg)
      end
      payload_hash = checksum.STREAMING_UNSIGNED_TRAILER
      local talg = alg
      body_open = function()
        local read, close = bodymod.open(src)
        if not read then return nil, close end
        return checksum.chunked_source(read, len, talg), close
      end
    else
      if alg or signed_payload then
        -- hash the body first: the header checksum and/or the signed payload
        local ck = alg and checksum.new(alg)
        local sha = signed_payload and core.hasher("sha256")
        local ok, herr = bodymod.each_chunk(src, function(chunk)
          if ck then ck:update(chunk) end
          if sha then sha:update(chunk) end
        end)
        if not ok then return nil, herr end
        if ck then headers[checksum.header_name(alg)] = ck:b64digest() end
        if sha then payload_hash = sha:hexdigest() end
      else
        payload_hash = sigv4.UNSIGNED_PAYLOAD
      end
      if src.kind == "path" then
        body_file, body_offset, body_length = src.path, src.offset, src.length
      else
        body_length = src.length
        body_open = function() return bodymod.feeder(src) end
      end
    end
  end
  local request = { method = req.method, url = url, headers = headers, body = body, payload_hash = payload_hash }
  local hk = self._hooks
  if hk and hk.before_sign then
    hooks.emit(hk.before_sign, op_name, request, self:_ctx(op_name, params, opts))
  end
  -- a snapshot, refreshed or fetched first when due (aio_aws.credentials)
  local creds, cerr = self._credentials:get_frozen()
  if not creds then return nil, cerr end
  local signed, dbg = sigv4.sign(request, creds,
    { region = region, service = signing_name, s3 = self._is_s3 or nil,
      unsigned_payload = (self._is_s3 and scheme == "https") or nil })
  return {
    method = request.method,
    url = signed.url or request.url,
    headers = signed.headers,
    body = request.body,
    body_file = body_file,
    body_offset = body_offset,
    body_length = body_length,
    body_open = body_open,
    stream = self._stream_ops[op_name] and true or nil,
    signature = dbg.signature,
  }
end

-- Send one prepared request through the transport.
function Client:_send(prepared)
  if self._transport then return self._transport(prepared) end
  local source, close
  if prepared.body_open then
    source, close = prepared.body_open()
    if not source then return nil, close end
  end
  local res, err = http.request({
    method = prepared.method,
    url = prepared.url,
    headers = prepared.headers,
    body = prepared.body,
    body_file = prepared.body_file,
    body_offset = prepared.body_offset,
    body_length = prepared.body_length,
    body_source = source,
    stream = prepared.stream,
    pool = self._pool,
    connect_timeout = self._connect_timeout,
    -- botocore's read_timeout: no byte received (or sent) for that long
    read_timeout = self._read_timeout,
    verify = self._verify ~= false,
    cafile = type(self._verify) == "string" and self._verify or nil,
  })
  if close then close() end
  return res, err
end

-- The hook context of a call (allocated only when hooks are registered).
function Client:_ctx(op_name, params, opts)
  local ctx = opts._hook_ctx
  if not ctx then
    ctx = { operation = op_name, client = self, params = params, attempt = 1 }
  end
  return ctx
end

-- A streaming output member becomes a Body: Content-Length checked at its
-- end, and the checksum when this call validates one.
local function wrap_stream(out, member, res, ck_alg, ck_value)
  local v = out[member]
  if bodymod.is(v) then return end
  local opts = {
    content_length = res.headers and res.headers["content-length"],
    checksum = ck_alg and { ck_alg, ck_value } or nil,
  }
  if type(v) == "table" and type(v.read) == "function" then
    out[member] = bodymod.new(v, opts)
  else
    out[member] = bodymod.from_string(type(v) == "string" and v or "", opts)
  end
end

local function close_body(out)
  for _, v in pairs(out) do
    if bodymod.is(v) or getmetatable(v) == http.Stream then v:close() end
  end
end

-- One call after validation: attempts, redirects and retries.
function Client:_call(op_name, params, opts, op)
  local svc = self._svc
  local decode_listing = self._is_s3 and params.EncodingType == nil and S3_LIST_DECODE[op_name]
  if decode_listing then
    local p = {}
    for k, v in pairs(params) do p[k] = v end
    p.EncodingType = "url"
    params = p
  end
  local vmember = op.httpChecksum and checksum.validation_member(op, params, self._response_checksum)
  if vmember then
    local p = {}
    for k, v in pairs(params) do p[k] = v end
    p[vmember] = "ENABLED"
    params = p
  end
  if opts.dry_run then return Client._prepare(self, op_name, params, opts) end
  async.need_task("client:" .. model.xform_name(op_name))
  local resp_algs = op.httpChecksum and checksum.response_algorithms(op, params)
  local stream_member = self._stream_ops[op_name]
  local hk = self._hooks
  local debug_log = LOG:enabled("DEBUG")

  local call_state = op.has_streaming_input and {} or nil
  local attempt = self._retry:start(op)
  local redirected = false
  local n = 0
  while true do
    n = n + 1
    local wait = self._retry:before_send()
    if wait and wait > 0 then async.sleep(wait) end
    if hk and opts._hook_ctx then opts._hook_ctx.attempt = n end
    local prepared, perr = Client._prepare(self, op_name, params, opts, call_state)
    if not prepared then return nil, perr end
    local t0
    if debug_log then
      t0 = walltime()
      LOG:debug("%s %s %s (attempt %d) headers: %s", op_name, prepared.method, log.redact_url(prepared.url), n,
        table.concat(log.redact_headers(prepared.headers), "; "))
    end
    local res, err
    if hk and hk.before_send then
      res = hooks.emit(hk.before_send, op_name, prepared, self:_ctx(op_name, params, opts), true)
    end
    if res == nil then res, err = Client._send(self, prepared) end
    if debug_log then
      if res then
        LOG:debug("%s %s %s -> %s in %.3f s (attempt %d, request id %s)", op_name, prepared.method,
          log.redact_url(prepared.url), tostring(res.status), walltime() - t0, n,
          tostring(res.headers and (res.headers["x-amzn-requestid"] or res.headers["x-amz-request-id"])))
      else
        LOG:debug("%s %s %s -> %s in %.3f s (attempt %d)", op_name, prepared.method,
          log.redact_url(prepared.url), tostring(err and err.code), walltime() - t0, n)
      end
    end
    if res and res.status >= 300 and prepared.stream and type(res.body) == "table" then
      -- an error body to parse, not a stream to hand over
      local whole, rerr = res.body:read_all()
      res.body:close()
      if whole then res.body = whole else res, err = nil, rerr end
    end
    local out
    if res then out, err = protocol.parse(svc, op_name, res) end
    if not out and type(err) ~= "table" then err = errors.new("HTTPError", tostring(err)) end
    if out then
      -- flexible checksum validation (botocore handle_checksum_body)
      local ck_alg, ck_value
      if resp_algs then ck_alg, ck_value = checksum.pick_response(resp_algs, res.headers or {}) end
      if stream_member then
        wrap_stream(out, stream_member, res, ck_alg, ck_value)
      elseif ck_alg then
        local ok, cerr = checksum.verify(ck_alg, ck_value, type(res.body) == "string" and res.body or "")
        if not ok then out, err = nil, cerr end
      end
    end
    -- S3 answers a request sent to the wrong region with 301/307/400 and
    -- the bucket's region in x-amz-bucket-region: retry once there and
    -- remember it (botocore S3RegionRedirectorv2).
    local bucket_region = not out and res and res.headers and res.headers["x-amz-bucket-region"]
    if bucket_region and self._is_s3 and not redirected and not self._fixed_endpoint
        and type(params.Bucket) == "string"
        and (err.status == 301 or err.status == 307 or err.status == 400)
        and bucket_region ~= self._endpoint.signing_region then
      local ep, eerr = self._endpoints.resolve({ service = svc, region = bucket_region,
        use_fips = self._use_fips, use_dualstack = self._use_dualstack })
      if not ep then return nil, eerr end
      self._s3_regions[params.Bucket] = { url = ep.url, region = bucket_region }
      redirected = true
    else
      local delay = attempt:next(not out and err or nil, res)
      if not delay then
        local md = attempt:metadata()
        if out and attempt.crc32_mismatch then
          -- DynamoDB's x-amz-crc32 still mismatched on the last attempt:
          -- the body was damaged in transit (botocore raises ChecksumError).
          close_body(out)
          return nil, errors.new("ChecksumError", "response body does not match x-amz-crc32",
            { status = res and res.status, retryable = true })
        end
        if out then
          if decode_listing then s3_decode_listing(decode_listing, out) end
          local rm = out.ResponseMetadata or {}
          for k, v in pairs(md) do rm[k] = v end
          out.ResponseMetadata = rm
          return out
        end
        local rm = err.response_metadata or {
          RequestId = err.request_id, HTTPStatusCode = err.status,
          HTTPHeaders = res and res.headers }
        for k, v in pairs(md) do rm[k] = v end
        err.response_metadata = rm
        err.retry_attempts = md.RetryAttempts
        return nil, err
      end
      if out then close_body(out) end
      if delay > 0 then async.sleep(delay) end
    end
  end
end

--- Call `op_name` (the model's name, e.g. "PutObject") with `params`.
-- `opts.dry_run = true` returns the signed request without sending it.
function Client:call(op_name, params, opts)
  if type(op_name) ~= "string" then error("client:call: operation name must be a string", 2) end
  if params == nil then params = {} end
  if type(params) ~= "table" then error("client:call: params must be a table", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("client:call: opts must be a table", 2) end
  opts = opts or {}
  if self._closed then error("client:call: the client is closed", 2) end
  local svc = self._svc
  local op = svc:operation(op_name)
  if not op then
    error(("client:call: %s has no operation %s"):format(self.service_name, op_name), 2)
  end
  local hk = self._hooks
  if not hk then
    -- the hot path: no hook registered, nothing allocated for them
    local ok, verr = self._validate.params(svc, op_name, params)
    if not ok then return nil, verr end
    return Client._call(self, op_name, params, opts, op)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  opts = o
  local p = {}
  for k, v in pairs(params) do p[k] = v end -- hooks may edit: not the caller's table
  params = p
  local ctx = { operation = op_name, client = self, params = params, attempt = 1 }
  opts._hook_ctx = ctx
  if hk.before_parameter_build then
    -- before validation, as botocore emits before-parameter-build first
    params = hooks.emit(hk.before_parameter_build, op_name, params, ctx)
    if type(params) ~= "table" then error("before_parameter_build hooks must leave a params table", 2) end
    ctx.params = params
  end
  local out, err
  local ok, verr = self._validate.params(svc, op_name, params)
  if ok then
    out, err = Client._call(self, op_name, params, opts, op)
  else
    err = verr
  end
  if opts.dry_run then return out, err end
  if out and hk.after_call then
    local hok, herr = pcall(hooks.emit, hk.after_call, op_name, out, ctx)
    if not hok then
      close_body(out) -- the output is lost with the raise: free its connection
      error(herr, 0)
    end
  elseif not out and hk.after_call_error then
    hooks.emit(hk.after_call_error, op_name, err, ctx)
  end
  return out, err
end

--- Register a hook (aio_aws.hooks): `event`, `fn(payload, ctx)`, and an
-- operation filter (a name, a list of names, or "*"). Returns a handle
-- with `remove()`.
function Client:on(event, fn, filter)
  local svc = self._svc
  local reg = self._hooks
  if not reg then
    reg = {}
    self._hooks = reg
  end
  local h = hooks.add(reg, event, fn, filter, function(name)
    local op = svc:operation(name)
    return op and op.name
  end, 2)
  return h
end

--- Release the client's connections. Idempotent.
function Client:close()
  if self._closed then return end
  self._closed = true
  if self._pool then self._pool:close() end
end
Client.__close = Client.close

--- The operations' method names, sorted.
function Client:operations()
  return self._svc:method_names()
end

local function check_opts(opts)
  local known = {
    region = "string", endpoint_url = "string", api_version = "string",
    max_pool_connections = "number", connect_timeout = "number", read_timeout = "number",
    retries = "table", s3 = "table", verify = true, user_agent_extra = "string",
    credentials = "table", transport = "function", use_fips_endpoint = "boolean",
    use_dualstack_endpoint = "boolean", inject_host_prefix = "boolean",
    service_model = "table", request_checksum_calculation = "string",
    response_checksum_validation = "string",
  }
  for k, v in pairs(opts) do
    local want = known[k]
    if not want then error("client: unknown option '" .. tostring(k) .. "'", 3) end
    if (k == "request_checksum_calculation" or k == "response_checksum_validation")
        and v ~= "when_supported" and v ~= "when_required" then
      error(("client: option '%s' must be \"when_supported\" or \"when_required\""):format(k), 3)
    end
    if want == true then
      if type(v) ~= "boolean" and type(v) ~= "string" then
        error("client: option 'verify' must be a boolean or a CA bundle path", 3)
      end
    elseif type(v) ~= want then
      error(("client: option '%s' must be a %s"):format(k, want), 3)
    end
  end
end

-- request_checksum_calculation / response_checksum_validation from the
-- caller's config, environment or profile (default "when_required", see
-- config.lua).
local function checksum_setting(cfg, name)
  return cfg and cfg:get(name) or "when_required"
end

--- Create a client (see session:client). `deps` supplies the config,
-- credentials, endpoint, validation and retry modules.
function M.new(service_name, opts, deps)
  if type(service_name) ~= "string" then error("client: service name must be a string", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("client: options must be a table", 2) end
  check_opts(opts)
  -- a model the caller built (aio_aws.model.new), e.g. a newer or custom
  -- one, as botocore accepts models from AWS_DATA_PATH
  local svc = opts.service_model
  if not svc then
    local err
    svc, err = model.load(service_name, opts.api_version)
    if not svc then return nil, err end
  end
  local cfg = deps.config
  local md = svc.metadata
  local service_id = md.serviceId or service_name
  local region = opts.region or deps.region
  local endpoint_url = opts.endpoint_url or (cfg and cfg:endpoint_url(service_id))
  local use_fips = opts.use_fips_endpoint
  if use_fips == nil and cfg then use_fips = cfg:get("use_fips_endpoint", service_id) end
  local use_dualstack = opts.use_dualstack_endpoint
  if use_dualstack == nil and cfg then use_dualstack = cfg:get("use_dualstack_endpoint", service_id) end
  local sts_mode = cfg and cfg:get("sts_regional_endpoints") or "regional"
  local ep, eerr = deps.endpoints.resolve({
    service = svc, region = region, endpoint_url = endpoint_url,
    use_fips = use_fips == true or use_fips == "true",
    use_dualstack = use_dualstack == true or use_dualstack == "true",
    sts_regional = sts_mode ~= "legacy",
  })
  if not ep then return nil, eerr end
  local retries = opts.retries or {}
  local mode = retries.mode or (cfg and cfg:get("retry_mode")) or "standard"
  local max_attempts = retries.max_attempts or (cfg and cfg:get("max_attempts"))
  local policy = deps.retry.new({ mode = mode, max_attempts = math.tointeger(tonumber(max_attempts)),
    service = md.endpointPrefix })
  local s3opts = opts.s3 or {}
  local style = s3opts.addressing_style or (cfg and cfg:get("s3.addressing_style")) or "auto"
  local verify = opts.verify
  if verify == nil and cfg then verify = cfg:get("ca_bundle") end
  local pool
  if not opts.transport then
    pool = http.pool({ max_total = math.tointeger(opts.max_pool_connections) or 10 })
  end
  -- operation -> its streaming output member (handed over as a Body)
  local stream_ops = {}
  for _, name in ipairs(svc:operation_names()) do
    local op = svc:operation(name)
    if op.has_streaming_output then stream_ops[name] = op.output.target.payload end
  end
  local self = {
    service_name = service_name,
    region = region,
    meta = { endpoint_url = ep.url, region_name = ep.signing_region, service_model = svc },
    _svc = svc,
    _endpoint = ep,
    _endpoints = deps.endpoints,
    _fixed_endpoint = endpoint_url ~= nil,
    _use_fips = use_fips, _use_dualstack = use_dualstack,
    _credentials = deps.credentials,
    _validate = deps.validate,
    _retry = policy,
    _pool = pool,
    _transport = opts.transport,
    _connect_timeout = opts.connect_timeout or 60,
    _read_timeout = opts.read_timeout or 60,
    _verify = verify,
    _is_s3 = (md.signingName or md.endpointPrefix) == "s3",
    _addressing_style = style,
    _s3_regions = {},
    _inject_host_prefix = opts.inject_host_prefix ~= false,
    _stream_ops = stream_ops,
    _hooks = false, -- a registry once client:on is used (aio_aws.hooks)
    _closed = false, -- (a nil field would go through __index on every call)
    _request_checksum = opts.request_checksum_calculation
      or checksum_setting(cfg, "request_checksum_calculation"),
    _response_checksum = opts.response_checksum_validation
      or checksum_setting(cfg, "response_checksum_validation"),
    _user_agent = ("aio-aws-lua/%s lua/5.4%s"):format(VERSION,
      opts.user_agent_extra and (" " .. opts.user_agent_extra) or ""),
  }
  if self._is_s3 then
    -- botocore injects these into S3 clients only (boto3 s3.inject)
    self.upload_file, self.download_file = transfer.upload_file, transfer.download_file
  end
  return setmetatable(self, Client)
end

-- [paginators, waiters, presigning] (issue 4): the logic lives in these
-- modules; they add paginate/can_paginate/get_paginator, wait/get_waiter/
-- waiter_names and generate_presigned_url/generate_presigned_post.
require("aio_aws.paginator").install(Client)
require("aio_aws.waiter").install(Client)
require("aio_aws.presign").install(Client)
-- [end paginators, waiters, presigning]

M.Client = Client
return M
