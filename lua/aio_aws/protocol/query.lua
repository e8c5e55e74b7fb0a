--- The `query` protocol (aws.protocols#awsQuery): IAM, STS, SNS, SQS (old), ...
-- and, through `variant = "ec2"`, the `ec2` protocol (aws.protocols#ec2Query).
--
-- Specs: https://smithy.io/2.0/aws/protocols/aws-query-protocol.html and
-- https://smithy.io/2.0/aws/protocols/aws-ec2-query-protocol.html
--  * `POST /`, form-encoded body `Action=<Op>&Version=<apiVersion>&...`,
--    Content-Type `application/x-www-form-urlencoded; charset=utf-8`;
--  * nested names join with "."; a member is named by its locationName;
--  * query lists: `Name.member.N` (`member` replaced by the list member's
--    locationName), `Name.N` when flattened (the last name replaced by the
--    member's locationName when it has one), and an empty list is sent as
--    `Name=`; maps: `Name.entry.N.key` / `.value` (or their locationNames),
--    `Name.N.key` when flattened;
--  * ec2: a member is named by `queryName`, else its capitalised
--    locationName, else its capitalised name; every list is `Name.N` and
--    an empty list is not sent;
--  * timestamps default to ISO 8601, booleans are "true"/"false", blobs base64;
--  * responses are XML: `<OpResponse><OpResult>...</OpResult>` (the output's
--    resultWrapper) for query, the members directly under the root for ec2;
--    errors are `<ErrorResponse><Error><Code/>...` (query) and
--    `<Response><Errors><Error><Code/>...</Errors><RequestID/>` (ec2).
local common = require "aio_aws.protocol.common"
local xml = require "aio_aws.protocol.xml"
local errors = require "aio_aws.errors"

local M = {}

local absent, fail = common.absent, common.fail
local upper, sub, concat = string.upper, string.sub, table.concat

local function capitalize(s)
  return upper(sub(s, 1, 1)) .. sub(s, 2)
end

local function member_name(mref, m, ec2)
  if ec2 then
    if mref.queryName then return mref.queryName end
    return capitalize(mref.locationName or m)
  end
  return mref.locationName or m
end

local serialize -- forward

local function ser_struct(out, ref, v, prefix, where, ec2)
  common.check_table(v, where, "structure")
  local shape = ref.target
  common.check_members(shape, v, where)
  local members, names = shape.members, shape.member_names
  for i = 1, #names do
    local m = names[i]
    local mv = v[m]
    if not absent(mv) then
      local mref = members[m]
      local name = member_name(mref, m, ec2)
      serialize(out, mref, mv, prefix == "" and name or (prefix .. "." .. name), where .. "." .. m, ec2)
    end
  end
end

function serialize(out, ref, v, prefix, where, ec2)
  local t = ref.type
  if t == "structure" then
    return ser_struct(out, ref, v, prefix, where, ec2)
  elseif t == "list" then
    local n = common.check_list(v, where)
    local mref = ref.member
    local list_prefix
    if ec2 then
      list_prefix = prefix
    else
      if n == 0 then
        out[#out + 1] = { prefix, "" }
        return
      end
      if ref.flattened then
        list_prefix = prefix
        local mname = mref.locationName
        if mname then
          list_prefix = (prefix:match("^(.*)%.[^.]*$") or "")
          list_prefix = list_prefix == "" and mname or (list_prefix .. "." .. mname)
        end
      else
        list_prefix = prefix .. "." .. (mref.locationName or "member")
      end
    end
    for i = 1, n do
      serialize(out, mref, v[i], list_prefix .. "." .. i, where .. "[" .. i .. "]", ec2)
    end
  elseif t == "map" then
    local keys, n = common.map_keys(v, where)
    local full = ref.flattened and prefix or (prefix .. ".entry")
    local kref, vref = ref.key, ref.value
    local kname, vname = kref.locationName or "key", vref.locationName or "value"
    for i = 1, n do
      local k = keys[i]
      serialize(out, kref, k, full .. "." .. i .. "." .. kname, where, ec2)
      serialize(out, vref, v[k], full .. "." .. i .. "." .. vname, where .. "." .. k, ec2)
    end
  else
    out[#out + 1] = { prefix, xml.scalar_text(ref, v, where, "iso8601") }
  end
end

--- Form-encode ordered pairs (percent-encoding every byte but the RFC 3986
-- unreserved ones, as botocore's percent_encode_sequence).
function M.form(pairs_list)
  local parts = {}
  local pct = common.pct
  for i, p in ipairs(pairs_list) do
    parts[i] = pct(p[1]) .. "=" .. pct(p[2])
  end
  return concat(parts, "&")
end

function M.build(svc, op, params, variant)
  local ec2 = variant == "ec2"
  local body = { { "Action", op.name }, { "Version", svc.metadata.apiVersion or "" } }
  if op.input then
    ser_struct(body, op.input, params, "", op.input.target.name, ec2)
  elseif common.has_keys(params) then
    fail("Unknown parameter in input: %q: %s takes no parameters", tostring(next(params)), op.name)
  end
  return {
    method = op.http.method or "POST",
    path = "/",
    query = {},
    headers = { ["content-type"] = "application/x-www-form-urlencoded; charset=utf-8" },
    body = M.form(body),
    form = body, -- the same pairs, for callers that want them (presigning)
  }
end

local text_of, child = xml.text_of, xml.child

local function parse_error(svc, response)
  local body = response.body
  local info = type(body) == "string" and body ~= "" and xml.error_info(body) or {}
  local code, msg, err_node = info.code, info.message, info.node
  local rid = info.request_id or (response.headers or {})["x-amzn-requestid"]
  if not code or code == "" then
    code = tostring(response.status)
    msg = msg or common.reason(response.status)
  end
  local fields = { status = response.status, request_id = rid, type = info.type }
  common.modeled_error(svc, code, fields, function(shape) return xml.read(shape, err_node or "") end)
  return errors.new(code, msg or common.reason(response.status), fields)
end

function M.parse(svc, op, response, variant)
  local ec2 = variant == "ec2"
  local status = response.status
  if status >= 300 then return nil, parse_error(svc, response) end
  local body = response.body
  local out = {}
  if type(body) ~= "string" or body == "" then return out end
  local node, root = xml.decode(body)
  if node == nil then
    return nil, errors.new("ResponseParserError", "Unable to parse response: " .. tostring(root),
      { status = status, request_id = (response.headers or {})["x-amzn-requestid"] })
  end
  local output = op.output
  if output then
    local start = node
    if not ec2 then
      -- <OpResponse><OpResult>: the output's resultWrapper, else "<Op>Result"
      -- (botocore's default from the operation name)
      local wrapper = output.resultWrapper
      if wrapper then
        start = child(node, wrapper) or ""
      else
        start = child(node, op.name .. "Result") or node
      end
    end
    local ok, res = pcall(xml.read, output, start)
    if not ok then
      if type(res) ~= "table" then error(res, 0) end
      return nil, errors.new("ResponseParserError", "Unable to parse response: " .. tostring(res.message),
        { status = status })
    end
    out = res
  end
  local rid
  if ec2 then
    local r = child(node, "requestId")
    rid = r and text_of(r)
  else
    local md = child(node, "ResponseMetadata")
    local r = md and child(md, "RequestId")
    rid = r and text_of(r)
  end
  if rid then out.ResponseMetadata = { RequestId = rid } end
  return out
end

return M
