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

local codec = {}

function codec.payload(req, pref, v, where)
  if common.absent(v) then return end
  local name = pref.locationName or pref.target.locationName or pref.target.name
  req.body = xml.encode(pref, v, name, where)
  if not req.headers["content-type"] then req.headers["content-type"] = "application/xml" end
end

function codec.body(req, input, params)
  req.body = xml.encode(input, params, input.locationName or input.target.name, input.target.name)
  if not req.headers["content-type"] then req.headers["content-type"] = "application/xml" end
end

codec.decode = xml.decode
codec.read = xml.read
codec.read_body = xml.read_body

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
codec.error = parse_error

function M.build(svc, op, params)
  return rest.build(svc, op, params, codec)
end

function M.parse(svc, op, response)
  return rest.parse(svc, op, response, codec)
end

return M
