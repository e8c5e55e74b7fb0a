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

local M = {}

local codec = { empty_body = true }

function codec.payload(req, pref, v, where)
  if common.absent(v) then
    -- an unset structure payload is sent as "{}", an unset union as
    -- nothing (Smithy RestJsonHttpWithEmptyStructurePayload,
    -- RestJsonHttpPayloadWithUnsetUnion)
    if pref.union then return end
    req.body = "{}"
  elseif pref.document or pref.type ~= "structure" then
    local buf = {}
    local n = json.write_document(buf, 0, v, where, 0)
    req.body = table.concat(buf, "", 1, n)
  else
    req.body = json.encode(pref, v, where)
  end
  if not req.headers["content-type"] then req.headers["content-type"] = "application/json" end
end

function codec.body(req, input, params, has_body)
  -- "{}" even when no body member is set, as long as the input has some
  if not has_body and not rest.has_body_members(input.target) then return end
  req.body = json.encode(input, params, input.target.name, true)
  if not req.headers["content-type"] then req.headers["content-type"] = "application/json" end
end

codec.decode = json.decode
codec.read = json.read

function codec.error(svc, response)
  -- header-bound members of a modeled error join those from the body
  return json.make_error(svc, response, function(shape, out)
    rest.read_located(shape, response, out)
  end)
end

function M.build(svc, op, params)
  return rest.build(svc, op, params, codec)
end

function M.parse(svc, op, response)
  return rest.parse(svc, op, response, codec)
end

return M
