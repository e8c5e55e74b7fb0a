--- The `rest-xml` protocol (aws.protocols#restXml): S3, Route 53, CloudFront.
-- Spec: https://smithy.io/2.0/aws/protocols/aws-restxml-protocol.html
--  * URI, query and headers per the HTTP bindings (protocol/rest.lua);
--  * a structure payload member is the XML body, its root element named by
--    the member's locationName (or its shape's), with its xmlNamespace; a
--    blob or string payload is the raw body (streams pass through);
--    otherwise the members without a location are children of a root named
--    by the input's locationName (or the input shape's name); nothing set,
--    no body;
--  * Content-Type: application/xml for XML bodies, application/octet-stream
--    and text/plain for blob and string payloads, unless a member set it;
--  * errors: `<Error><Code/><Message/></Error>` (S3) or
--    `<ErrorResponse><Error>...</Error><RequestId/></ErrorResponse>`; with no
--    usable body the HTTP status is the code ("404" for a HEAD).
local common = require "aio_aws.protocol.common"
local rest = require "aio_aws.protocol.rest"
local xml = require "aio_aws.protocol.xml"
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
    elseif not absent(v) then
      local name = pref.locationName or pref.target.locationName or pref.target.name
      req.body = xml.encode(pref, v, name, shape.name .. "." .. payload)
      if not headers["content-type"] then headers["content-type"] = "application/xml" end
    end
  elseif has_body then
    local name = input.locationName or shape.name
    req.body = xml.encode(input, params, name, shape.name)
    if not headers["content-type"] then headers["content-type"] = "application/xml" end
  end
  return req
end

local function parse_error(svc, response)
  local headers = response.headers or {}
  local rid, hid = rest.ids(headers)
  local body = response.body
  local info = type(body) == "string" and body ~= "" and xml.error_info(body) or {}
  local code, msg, err_node = info.code, info.message, info.node
  rid, hid = rid or info.request_id, hid or info.host_id
  if not code or code == "" then
    code = tostring(response.status)
    msg = msg or common.reason(response.status)
  end
  local fields = { status = response.status, request_id = rid, host_id = hid, type = info.type }
  common.modeled_error(svc, code, fields, function(shape)
    local out = err_node and xml.read(shape, err_node) or {}
    rest.read_located(shape, response, out)
    return out
  end)
  return errors.new(code, msg or common.reason(response.status), fields)
end
M.parse_error = parse_error

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
    local pref = shape.payload and shape.members[shape.payload]
    if pref then
      local name = shape.payload
      if pref.eventstream or pref.streaming then
        out[name] = body
      elseif pref.type == "blob" or pref.type == "string" then
        if body ~= nil and body ~= "" then out[name] = body end
      elseif type(body) == "string" and body ~= "" then
        local node, err = xml.decode(body)
        if node == nil then error({ message = err }, 0) end
        out[name] = xml.read(pref, node)
      end
    elseif rest.has_body_members_out(shape) and type(body) == "string" and body ~= "" then
      local node, err = xml.decode(body)
      if node == nil then error({ message = err }, 0) end
      local parsed = xml.read(output, node)
      for k, v in pairs(parsed) do out[k] = v end
    end
  end)
  if not ok then
    if type(res) ~= "table" then error(res, 0) end
    local rid, hid = rest.ids(headers)
    return nil, errors.new("ResponseParserError", "Unable to parse response: " .. tostring(res.message),
      { status = status, request_id = rid, host_id = hid })
  end
  return out
end

return M
