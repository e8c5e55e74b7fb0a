--- The `rest-json` protocol (aws.protocols#restJson1).
-- Spec: https://smithy.io/2.0/aws/protocols/aws-restjson1-protocol.html
--  * URI, query and headers per the HTTP bindings (protocol/rest.lua);
--  * a structure/union/document payload member is the JSON body; a blob or
--    string payload is the raw body (streaming values pass through
--    unchanged); otherwise the members without a location form a JSON object,
--    `{}` when the input has body members but none is set;
--  * Content-Type: application/json for JSON bodies, application/octet-stream
--    for blob payloads, text/plain for string payloads, unless a member
--    already set it;
--  * errors: code from `x-amzn-errortype`, else body `code`/`__type`
--    (namespace and ":" suffix dropped); modeled error members are read
--    from the body and the headers.
local common = require "aio_aws.protocol.common"
local rest = require "aio_aws.protocol.rest"
local json = require "aio_aws.protocol.json"
local errors = require "aio_aws.errors"

local M = {}

local absent = common.absent

function M.build(svc, op, params)
  local req, has_body = rest.bind(svc, op, params)
  local input = op.input
  if not input then return req end
  local shape = input.target
  local payload = shape.payload
  local headers = req.headers
  if payload then
    local pref = shape.members[payload]
    local v = params[payload]
    local t = pref.type
    if t == "blob" or t == "string" then
      rest.raw_payload(req, pref, v, shape.name .. "." .. payload)
    else
      if absent(v) then
        -- an unset structure payload is sent as "{}", an unset union as
        -- nothing (Smithy RestJsonHttpWithEmptyStructurePayload,
        -- RestJsonHttpPayloadWithUnsetUnion)
        if pref.union then return req end
        req.body = "{}"
      elseif pref.document or (t ~= "structure") then
        local buf = {}
        local n = json.write_document(buf, 0, v, shape.name .. "." .. payload, 0)
        req.body = table.concat(buf, "", 1, n)
      else
        req.body = json.encode(pref, v, shape.name .. "." .. payload)
      end
      if not headers["content-type"] then headers["content-type"] = "application/json" end
    end
  elseif has_body or rest.has_body_members(shape) then
    req.body = json.encode(input, params, shape.name, true)
    if not headers["content-type"] then headers["content-type"] = "application/json" end
  end
  return req
end

-- header-bound members of a modeled error
local function error_extra(response)
  return function(shape, out)
    rest.read_located(shape, response, out)
  end
end

local function parse_error(svc, response)
  return json.make_error(svc, response, error_extra(response))
end

local function payload_member(shape)
  return shape.payload and shape.members[shape.payload] or nil
end

function M.parse(svc, op, response)
  local status = response.status
  if status >= 300 then return nil, parse_error(svc, response) end
  local out = {}
  local output = op.output
  if not output then return out end
  local shape = output.target
  local headers = response.headers or {}
  local body = response.body
  local ok, res = pcall(function()
    rest.read_located(shape, response, out)
    local pref = payload_member(shape)
    if pref then
      local name = shape.payload
      if pref.eventstream or pref.streaming then
        out[name] = body
      elseif pref.type == "blob" or pref.type == "string" then
        if body ~= nil and body ~= "" then out[name] = body end
      elseif type(body) == "string" and body ~= "" then
        local v, err = json.decode(body)
        if v == nil and err then error({ json = err }, 0) end
        if pref.document then out[name] = v
        else out[name] = json.read(pref, v) end
      end
    elseif rest.has_body_members_out(shape) and type(body) == "string" and body ~= "" then
      local v, err = json.decode(body)
      if v == nil and err then error({ json = err }, 0) end
      local parsed = json.read(output, v)
      for k, x in pairs(parsed) do out[k] = x end
    end
  end)
  if not ok then
    local msg = type(res) == "table" and (res.json or res.message) or tostring(res)
    if type(res) ~= "table" then error(res, 0) end
    local rid = rest.ids(headers)
    return nil, errors.new("ResponseParserError", "Unable to parse response: " .. tostring(msg),
      { status = status, request_id = rid })
  end
  return out
end

return M
