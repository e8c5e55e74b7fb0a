--- Request routing for the local endpoint: which service, is it signed
-- right, faults, then the service (contract §2).
--
--     local handle = router.new(state)   -- state: see below
--     local res = handle(req)            -- req/res as aio_aws.server uses them
--
-- `state` = {
--   services = {s3 = obj, batch = obj, logs = obj, lambda = obj},
--   missing  = {name = "why the module could not be loaded"},
--   models   = {batch = svc, logs = svc, lambda = svc},
--   access_key, secret_key, no_auth, region,
--   faults = {latency_ms, throttle_rate},
--   clock = function() -> epoch seconds end,
--   sleep = function(seconds) end,     -- aio_aws.sleep (latency fault)
--   random = function() -> [0, 1) end, -- math.random (throttle fault)
-- }
--
-- Which service:
--  1. the SigV4 credential scope (`Authorization` header or the
--     `X-Amz-Credential` query parameter of a presigned URL);
--  2. unsigned requests: `X-Amz-Target` naming a json service's
--     targetPrefix, then a rest-json operation matching method + path, else S3.
-- S3 virtual-hosted style: a Host of `<bucket>.localhost[:port]` gives
-- `info.bucket_from_host`.
--
-- Errors made here follow each service's real format: S3 XML
-- `<Error><Code>..</Code><Message>..</Message><RequestId>..</RequestId></Error>`
-- (AmazonS3/latest/API/ErrorResponses.html), the JSON services through
-- emulator/wire.lua. Auth failures: S3 `AccessDenied` (unsigned),
-- `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `RequestTimeTooSkewed`;
-- JSON `MissingAuthenticationTokenException`, `UnrecognizedClientException`,
-- `InvalidSignatureException`, `RequestTimeTooSkewed`, all 403 (malformed
-- signatures 400). Throttle fault: Batch and Lambda 429
-- `TooManyRequestsException`, Logs 400 `ThrottlingException`, S3 503 `SlowDown`.
local auth = require "aio_aws.emulator.auth"
local wire = require "aio_aws.emulator.wire"
local common = require "aio_aws.protocol.common"
local log = require("aio_aws.log").get("aio_aws.emulator")

local M = {}

M.SERVICES = { "s3", "batch", "logs", "lambda" }
local JSON_SERVICES = { "logs", "batch", "lambda" }

local function xml_escape(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&apos;" }))
end

local function hexid(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%X", math.random(0, 15)) end
  return table.concat(t)
end

local function s3_request_id()
  return hexid(16)
end

--- An S3-style XML error response.
-- @tparam string code
-- @tparam string message
-- @tparam integer status
-- @tparam string request_id
-- @tparam[opt] table extra more elements (name -> text), written in sorted order
-- @tparam[opt] string method "HEAD" answers without a body, as S3 does
function M.s3_error(code, message, status, request_id, extra, method)
  local host_id = common.b64encode(hexid(32))
  local headers = {
    ["content-type"] = "application/xml",
    ["x-amz-request-id"] = request_id,
    ["x-amz-id-2"] = host_id,
  }
  if method == "HEAD" then
    headers["content-length"] = "0"
    return { status = status, headers = headers }
  end
  local parts = { '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>', xml_escape(code),
    "</Code><Message>", xml_escape(message), "</Message>" }
  local keys = {}
  for k in pairs(extra or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = "<" .. k .. ">" .. xml_escape(extra[k]) .. "</" .. k .. ">"
  end
  parts[#parts + 1] = "<RequestId>" .. request_id .. "</RequestId><HostId>" .. host_id .. "</HostId></Error>"
  return { status = status, headers = headers, body = table.concat(parts) }
end

-- Auth failures as the JSON services name them.
local JSON_AUTH = {
  InvalidAccessKeyId = { "UnrecognizedClientException", "The security token included in the request is invalid." },
  SignatureDoesNotMatch = { "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. "
      .. "Check your AWS Secret Access Key and signing method. Consult the service documentation for details." },
  AccessDenied = { "InvalidSignatureException", nil },
  AuthorizationHeaderMalformed = { "IncompleteSignatureException", nil },
  AuthorizationQueryParametersError = { "IncompleteSignatureException", nil },
}

local function host_bucket(host)
  if type(host) ~= "string" then return nil end
  local name = host:lower():gsub(":%d+$", "")
  return name:match("^(.+)%.localhost$")
end

-- Which service an unsigned request is for.
local function guess_service(state, req)
  local target = req.headers["x-amz-target"]
  if target then
    for _, name in ipairs(JSON_SERVICES) do
      local svc = state.models[name]
      if svc and wire.target_op(svc, target) then return name end
    end
    for _, name in ipairs(JSON_SERVICES) do
      local svc = state.models[name]
      local prefix = svc and svc.metadata.targetPrefix
      if prefix and target:sub(1, #prefix + 1) == prefix .. "." then return name end
    end
  end
  if not host_bucket(req.headers.host) then
    local qpairs = auth.parse_query(req.query or "")
    for _, name in ipairs(JSON_SERVICES) do
      local svc = state.models[name]
      if svc and svc.metadata.protocol == "rest-json" and wire.match(svc, req.method, req.path or "/", qpairs) then
        return name
      end
    end
  end
  return "s3"
end

local function json_error(state, name, code, message, status, rid, fields)
  return wire.encode_error(state.models[name], { code = code, message = message, status = status, fields = fields }, rid)
end

local function auth_error(state, name, e, rid, method)
  if name == "s3" then
    local extra = {}
    for k, v in pairs(e) do
      if k ~= "code" and k ~= "message" and k ~= "status" then extra[k] = v end
    end
    return M.s3_error(e.code, e.message, e.status, rid, extra, method)
  end
  local map = JSON_AUTH[e.code]
  local code, msg = e.code, e.message
  if map then
    code = map[1]
    msg = map[2] or e.message
  end
  if e.code == "SignatureDoesNotMatch" and e.CanonicalRequest then
    -- what AWS adds to help find the difference
    msg = msg .. "\n\nThe Canonical String for this request should have been\n'" .. e.CanonicalRequest
      .. "'\n\nThe String-to-Sign should have been\n'" .. e.StringToSign .. "'\n"
  end
  return json_error(state, name, code, msg, e.status, rid)
end

local THROTTLE = {
  batch = { "TooManyRequestsException", 429, "Too Many Requests" },
  lambda = { "TooManyRequestsException", 429, "Rate Exceeded." },
  logs = { "ThrottlingException", 400, "Rate exceeded" },
}

local function read_body_file(req)
  local f = io.open(req.body_file, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The largest JSON-service request read into memory (Lambda's own limit is
-- 6 MB; the service answers RequestEntityTooLargeException itself).
M.MAX_JSON_BODY = 16 * 1024 * 1024

local function call_json(state, name, req, rid, info)
  local svc_model = state.models[name]
  if req.body == nil and req.body_file then
    if (req.body_length or 0) > M.MAX_JSON_BODY then
      return json_error(state, name, "RequestEntityTooLargeException", "Request must be smaller than "
        .. M.MAX_JSON_BODY .. " bytes", 413, rid)
    end
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.body = read_body_file(req) or ""
    req = copy
  end
  local op, params = wire.decode(svc_model, req)
  if not op then
    local e = params
    return json_error(state, name, e.code, e.message, e.status, rid)
  end
  local service = state.services[name]
  req.auth = info
  local ok, out, err = xpcall(service.call, debug.traceback, service, op.name, params, req)
  if not ok then
    log:error("%s.%s raised: %s", name, op.name, tostring(out))
    return json_error(state, name, "ServiceException", "internal error in the local " .. name .. " service", 500, rid)
  end
  if out == nil then
    if type(err) ~= "table" or type(err.code) ~= "string" then
      err = { code = "ServiceException", message = tostring(err), status = 500 }
    end
    return wire.encode_error(svc_model, err, rid)
  end
  if type(out) == "table" and type(out.raw) == "table" then
    local res = out.raw
    res.headers = res.headers or {}
    if not res.headers["x-amzn-requestid"] then res.headers["x-amzn-requestid"] = rid end
    return res
  end
  return wire.encode(svc_model, op, out, rid)
end

local function call_s3(service, req, info, rid)
  local ok, res = xpcall(service.handle, debug.traceback, service, req, info)
  if not ok or type(res) ~= "table" then
    log:error("s3 raised: %s", tostring(res))
    return M.s3_error("InternalError", "We encountered an internal error. Please try again.", 500, rid, nil, req.method)
  end
  res.headers = res.headers or {}
  if not res.headers["x-amz-request-id"] then res.headers["x-amz-request-id"] = rid end
  return res
end

--- The request handler for `state` (see the module comment).
function M.new(state)
  if type(state) ~= "table" or type(state.services) ~= "table" or type(state.models) ~= "table" then
    error("router.new: state with services and models expected", 2)
  end
  local faults = state.faults or {}
  local clock = state.clock or os.time
  local random = state.random or math.random

  return function(req)
    if type(req) ~= "table" or type(req.method) ~= "string" then
      error("router: a request table is expected", 2)
    end
    req.headers = req.headers or {}
    local parsed = auth.parse(req)
    local name = parsed and parsed.service or guess_service(state, req)
    local is_s3 = name == "s3"
    local rid = is_s3 and s3_request_id() or common.uuid4()

    if not (is_s3 or state.models[name]) then
      -- a service this endpoint does not speak: answer as a JSON service
      local body = '{"__type":"UnknownServiceException","message":'
        .. require("aio_aws.protocol.json").quote("aio-aws local does not serve " .. tostring(name)) .. "}"
      return { status = 400, headers = { ["content-type"] = "application/json", ["x-amzn-requestid"] = rid,
        ["x-amzn-errortype"] = "UnknownServiceException" }, body = body }
    end

    local info = { access_key = parsed and parsed.access_key or nil,
      bucket_from_host = is_s3 and host_bucket(req.headers.host) or nil }
    if not state.no_auth then
      if not parsed then
        if is_s3 then return M.s3_error("AccessDenied", "Access Denied", 403, rid, nil, req.method) end
        return json_error(state, name, "MissingAuthenticationTokenException", "Missing Authentication Token", 403, rid)
      end
      if parsed.malformed then
        local code = is_s3 and (parsed.kind == "query" and "AuthorizationQueryParametersError"
          or "AuthorizationHeaderMalformed") or "IncompleteSignatureException"
        if is_s3 then return M.s3_error(code, parsed.malformed, 400, rid, nil, req.method) end
        return json_error(state, name, code, parsed.malformed, 400, rid)
      end
      local verified, e = auth.verify(req, parsed,
        { access_key = state.access_key, secret_key = state.secret_key, now = clock(),
          bucket_from_host = info.bucket_from_host })
      if not verified then return auth_error(state, name, e, rid, req.method) end
      for k, v in pairs(verified) do info[k] = v end
    end

    local service = state.services[name]
    if not service then
      local why = (state.missing or {})[name] or "not loaded"
      local msg = "the local " .. name .. " service is not available: " .. tostring(why)
      if is_s3 then return M.s3_error("NotImplemented", msg, 501, rid, nil, req.method) end
      return json_error(state, name, "NotImplemented", msg, 501, rid)
    end

    local latency = tonumber(faults.latency_ms) or 0
    if latency > 0 and state.sleep then state.sleep(latency / 1000) end
    local rate = tonumber(faults.throttle_rate) or 0
    if rate > 0 and random() < rate then
      if is_s3 then return M.s3_error("SlowDown", "Please reduce your request rate.", 503, rid, nil, req.method) end
      local t = THROTTLE[name]
      return json_error(state, name, t[1], t[3], t[2], rid)
    end

    local res
    if is_s3 then
      res = call_s3(service, req, info, rid)
    else
      res = call_json(state, name, req, rid, info)
    end
    if req.method == "HEAD" then res.body = nil end
    return res
  end
end

return M
