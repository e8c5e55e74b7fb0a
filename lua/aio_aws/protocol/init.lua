--- Request serialization and response parsing for the five AWS wire
-- protocols: json, rest-json, rest-xml, query, ec2. No networking here.
--
--     local protocol = require "aio_aws.protocol"
--     local req, err = protocol.build(svc, "PutObject", params, {host_prefix_enabled = true})
--     local out, err = protocol.parse(svc, "GetObject", response)
--
-- `req` = {
--   method = "PUT",
--   path = "/bucket/key%20with%2Bplus",  -- URI-encoded path only
--   query = {{"name", "value"}, {"flag"}}, -- ordered pairs, NOT encoded; a
--                                          -- pair without a value is a bare
--                                          -- name ("?versioning"), which SigV4
--                                          -- canonicalises as "flag="
--   headers = {["content-type"] = "...", ...}, -- lower-case names
--   body = string | nil | the caller's streaming value (blob payloads),
--   host_prefix = "data-" or nil,         -- endpoint trait, labels expanded
--   checksum_required = true or nil,      -- Content-MD5 needed but the body
--                                          -- is a stream (not computed here)
-- }
-- `response` = {status = 200, headers = {lower-case name = string}, body = string | stream}
-- `out` = the output members (timestamps as epoch seconds, blobs as raw
-- strings, numbers as Lua numbers, streaming payload = the body as given)
-- plus `ResponseMetadata` = {RequestId, HostId, HTTPStatusCode, HTTPHeaders}.
--
-- Errors: bad parameters return `nil, err` with err.code "ParamValidation"
-- (type and structure checks only; aio_aws.validate does full validation);
-- an error response (status >= 300) returns `nil, err` with the service's
-- error code, message, status, request_id and the modeled error members as
-- fields (err.error_shape names the shape); an unparsable success body
-- returns `nil, err` with code "ResponseParserError". An unknown operation
-- or a non-table response is misuse and raises.
local common = require "aio_aws.protocol.common"

local M = {}

local MODULES = {
  json = "aio_aws.protocol.json",
  ["rest-json"] = "aio_aws.protocol.rest_json",
  ["rest-xml"] = "aio_aws.protocol.rest_xml",
  query = "aio_aws.protocol.query",
  ec2 = "aio_aws.protocol.ec2",
}

-- botocore's PRIORITY_ORDERED_SUPPORTED_PROTOCOLS, minus smithy-rpc-v2-cbor
-- which this client does not speak.
local PRIORITY = { "json", "rest-json", "rest-xml", "query", "ec2" }

--- The wire protocol used for a service: the first of `metadata.protocols`
-- in botocore's priority order, else `metadata.protocol`.
function M.protocol_of(svc)
  local md = svc.metadata
  if type(md.protocols) == "table" then
    local set = {}
    for _, p in ipairs(md.protocols) do set[p] = true end
    for _, p in ipairs(PRIORITY) do
      if set[p] then return p end
    end
  end
  return md.protocol
end

local function impl_for(svc)
  local name = svc._protocol
  if not name then
    name = M.protocol_of(svc)
    svc._protocol = name
  end
  local mod = MODULES[name]
  if not mod then error("unsupported protocol " .. tostring(name) .. " for " .. tostring(svc.name), 3) end
  return require(mod), name
end

local function operation(svc, op_name)
  if type(svc) ~= "table" or type(svc.operation) ~= "function" then
    error("protocol: a service model (aio_aws.model) is expected", 3)
  end
  local op = svc:operation(op_name)
  if not op then error(string.format("%s has no operation %q", tostring(svc.name), tostring(op_name)), 3) end
  return op
end

--- Idempotency token generator (UUID v4); replace it in tests for fixed
-- tokens, or pass `opts.idempotency_token`.
M.new_idempotency_token = common.uuid4

local function fill_tokens(op, params, opts)
  local input = op.input
  if not input then return params end
  local shape = input.target
  local tokens = shape._token_members
  if tokens == nil then
    tokens = false
    for _, m in ipairs(shape.member_names) do
      if shape.members[m].idempotencyToken then
        tokens = tokens or {}
        tokens[#tokens + 1] = m
      end
    end
    rawset(shape, "_token_members", tokens)
  end
  if not tokens then return params end
  local copy
  for _, m in ipairs(tokens) do
    if common.absent(params[m]) then
      if not copy then
        copy = {}
        for k, v in pairs(params) do copy[k] = v end
      end
      local gen = opts.idempotency_token or M.new_idempotency_token
      copy[m] = gen()
    end
  end
  return copy or params
end

local function do_build(impl, svc, op, params, opts)
  local req = impl.build(svc, op, params)
  if op.host_prefix and opts.host_prefix_enabled ~= false then
    req.host_prefix = require("aio_aws.protocol.rest").host_prefix(op, params)
  end
  if op.checksum_required and not req.headers["content-md5"] then
    -- https://smithy.io/2.0/aws/aws-core.html#httpchecksumrequired-trait
    local body = req.body
    if body == nil or type(body) == "string" then
      req.headers["content-md5"] = common.md5_base64(body or "")
    else
      req.checksum_required = true
    end
  end
  return req
end

--- Serialize an operation's parameters to an HTTP request description.
-- @tparam Service svc a loaded model (aio_aws.model)
-- @tparam string op_name operation name ("PutObject" or "put_object")
-- @tparam[opt] table params the input members
-- @tparam[opt] table opts `host_prefix_enabled` (default true),
-- `idempotency_token` (a generator function)
-- @return req, or nil, err (code "ParamValidation")
function M.build(svc, op_name, params, opts)
  local op = operation(svc, op_name)
  opts = opts or {}
  if params == nil then params = {} end
  if type(params) ~= "table" then
    return nil, require("aio_aws.errors").new("ParamValidation",
      "Invalid type for parameters of " .. op.name .. ": table expected, got " .. type(params))
  end
  local impl = impl_for(svc)
  params = fill_tokens(op, params, opts)
  return common.protect("ParamValidation", do_build, impl, svc, op, params, opts)
end

--- Parse an HTTP response into the operation's output, or its error.
-- @tparam Service svc a loaded model
-- @tparam string op_name operation name
-- @tparam table response `status`, `headers` (lower-case names), `body`
-- @return out, or nil, err
function M.parse(svc, op_name, response)
  local op = operation(svc, op_name)
  if type(response) ~= "table" or math.type(response.status) ~= "integer" then
    error("protocol.parse: response table with an integer status expected", 2)
  end
  local impl, name = impl_for(svc)
  local out, err = impl.parse(svc, op, response, name)
  if not out then return nil, err end
  local headers = response.headers or {}
  local md = out.ResponseMetadata or {}
  md.RequestId = md.RequestId or headers["x-amzn-requestid"] or headers["x-amz-request-id"]
  md.HostId = md.HostId or headers["x-amz-id-2"]
  md.HTTPStatusCode = response.status
  md.HTTPHeaders = headers
  out.ResponseMetadata = md
  return out
end

--- Percent-encode ordered query pairs ("a=1&flag&b=x%20y").
function M.encode_query(query)
  local parts = {}
  local pct = common.pct
  for i, p in ipairs(query or {}) do
    parts[i] = p[2] == nil and pct(p[1]) or (pct(p[1]) .. "=" .. pct(p[2]))
  end
  return table.concat(parts, "&")
end

--- Path and query of a built request as they go on the request line.
function M.url_path(req)
  local q = M.encode_query(req.query)
  if q == "" then return req.path end
  return req.path .. "?" .. q
end

return M
