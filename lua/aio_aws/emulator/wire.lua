--- Server side of the `json` and `rest-json` protocols, driven by the
-- service models: the inverse of aio_aws.protocol.json / rest_json.
--
--     local svc = model.load("lambda")
--     local op, params = wire.decode(svc, req)        -- or nil, err
--     local res = wire.encode(svc, op, output, request_id)
--     local res = wire.encode_error(svc, err, request_id)
--
-- Requests (`req` as the HTTP server hands it: method, path and query raw
-- from the wire, lower-case headers, body):
--  * json (awsJson1_1, Smithy aws-json-1_1-protocol.html): the operation is
--    `X-Amz-Target: <targetPrefix>.<Operation>`, the body the input as a
--    JSON object (blobs base64, timestamps epoch seconds);
--  * rest-json (Smithy aws-restjson1-protocol.html and http-bindings.html):
--    the operation is the one whose `method` + `requestUri` template matches
--    (a `{Label}` is one path segment, `{Label+}` the rest of the path; the
--    template with the most literal characters wins); labels, query-string
--    members (lists repeat their key, a map takes the keys no named member
--    claims), header members (lists split on ",", quoted strings honoured,
--    jsonvalue base64) and prefix-header maps are read from there; a blob or
--    string payload member is the raw body, a structure payload or the
--    remaining members the JSON body.
-- Responses: json: the output as a JSON object; rest-json: status code from
-- the `statusCode` member or the operation's `responseCode`, header and
-- prefix-header members as headers, a blob/string payload as the raw body,
-- else the body members as JSON. Timestamps go out as epoch seconds (the
-- models' default for both protocols). Every response has `x-amzn-RequestId`.
-- Errors: `{"__type": Code, "message": ...}` plus the modeled members of the
-- error shape, status from the error or the shape's httpStatusCode, header
-- `x-amzn-ErrorType: Code` (what botocore's parsers read first).
--
-- Decoding failures return `nil, err` with `err = {code, status, message}`
-- (UnknownOperationException, SerializationException); misuse raises.
local json = require "aio_aws.protocol.json"
local rest = require "aio_aws.protocol.rest"
local common = require "aio_aws.protocol.common"
local protocol = require "aio_aws.protocol"
local xml = require "aio_aws.protocol.xml"
local auth = require "aio_aws.emulator.auth"

local M = {}

local lower, format = string.lower, string.format

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function bad(code, message, status)
  return nil, { code = code, message = message, status = status or 400 }
end

-- A text value (label, query item, header) as the member's type.
local function scalar(ref, s)
  return xml.read_scalar(ref, s)
end

local function body_text(req)
  if req.body then return req.body end
  if req.body_file then
    local f = io.open(req.body_file, "rb")
    if f then
      local s = f:read("a") or ""
      f:close()
      return s
    end
  end
  return ""
end

-- ------------------------------------------------------------ operation lookup

local LPAT_MAGIC = "([%^%$%(%)%%%.%[%]%*%+%-%?])"

-- Matchers of the rest-json operations of a service, most specific first.
local function matchers(svc)
  local list = rawget(svc, "_emulator_matchers")
  if list then return list end
  list = {}
  for _, name in ipairs(svc:operation_names()) do
    local op = svc:operation(name)
    local tpl = rest.template(op)
    local pat, labels, literal = { "^" }, {}, 0
    for _, part in ipairs(tpl.parts) do
      if type(part) == "string" then
        pat[#pat + 1] = part:gsub(LPAT_MAGIC, "%%%1")
        literal = literal + #part
      else
        pat[#pat + 1] = part[2] and "(.+)" or "([^/]+)"
        labels[#labels + 1] = part[1]
      end
    end
    local p = table.concat(pat)
    local alt -- tolerate a trailing "/" difference ("/functions/" vs "/functions")
    if p:sub(-1) == "/" then alt = p:sub(1, -2) .. "$" else alt = p .. "/$" end
    list[#list + 1] = { op = op, method = op.http.method, pat = p .. "$", alt = alt, labels = labels,
      literal = literal + 10 * #tpl.query, query = tpl.query }
  end
  table.sort(list, function(a, b)
    if a.literal ~= b.literal then return a.literal > b.literal end
    return a.op.name < b.op.name
  end)
  rawset(svc, "_emulator_matchers", list)
  return list
end

local function query_has(qpairs, want)
  for _, w in ipairs(want) do
    local found = false
    for _, p in ipairs(qpairs) do
      if p[1] == w[1] and (w[2] == nil or p[2] == w[2]) then found = true break end
    end
    if not found then return false end
  end
  return true
end

--- The rest-json operation for a method and raw path, with its raw labels.
-- @return op, labels (name -> decoded text), or nil
function M.match(svc, method, path, qpairs)
  qpairs = qpairs or {}
  for pass = 1, 2 do
    for _, m in ipairs(matchers(svc)) do
      if m.method == method and query_has(qpairs, m.query) then
        local caps = table.pack(path:match(pass == 1 and m.pat or m.alt))
        if caps[1] ~= nil then
          local labels = {}
          for i, name in ipairs(m.labels) do labels[name] = pct_decode(caps[i]) end
          return m.op, labels
        end
      end
    end
  end
  return nil
end

--- The json-protocol operation named by X-Amz-Target, or nil.
function M.target_op(svc, target)
  if type(target) ~= "string" then return nil end
  local prefix, name = target:match("^(.*)%.([^.]+)$")
  if prefix ~= svc.metadata.targetPrefix then return nil end
  local op = svc:operation(name)
  if op and op.name == name then return op end -- not a snake_case method name
  return nil
end

-- ------------------------------------------------------------ decoding

local function read_json_body(text, ref)
  if text == "" then return {} end
  local v, err = json.decode(text)
  if v == nil then return bad("SerializationException", "Malformed JSON body: " .. tostring(err)) end
  if type(v) ~= "table" or v[1] ~= nil then
    return bad("SerializationException", "The request body must be a JSON object")
  end
  local res, perr = json.guard(json.read, ref, v)
  if not res then return bad("SerializationException", perr) end
  return res
end

local function decode_json(svc, req)
  local target = (req.headers or {})["x-amz-target"]
  local op = M.target_op(svc, target)
  if not op then
    return bad("UnknownOperationException", target and ("Unknown operation " .. target) or "Missing X-Amz-Target header")
  end
  if not op.input then return op, {} end
  local params, err = read_json_body(body_text(req), op.input)
  if not params then return nil, err end
  return op, params
end

local LOCATED_IN = { uri = true, querystring = true, header = true, headers = true }

local function decode_rest_json(svc, req)
  local qpairs = auth.parse_query(req.query or "")
  local op, labels = M.match(svc, req.method, req.path or "/", qpairs)
  if not op then
    return bad("UnknownOperationException", format("No operation matches %s %s", tostring(req.method), tostring(req.path)), 404)
  end
  local params = {}
  local input = op.input
  if not input then return op, params end
  local shape = input.target
  local ok, perr = pcall(function()
    local named = {}
    local members, names = shape.members, shape.member_names
    local map_member
    for _, m in ipairs(names) do
      local mref = members[m]
      local loc = mref.location
      if loc == "uri" then
        local v = labels[mref.locationName or m]
        if v ~= nil then params[m] = scalar(mref, v) end
      elseif loc == "querystring" then
        if mref.type == "map" then
          map_member = m
        else
          local key = mref.locationName or m
          named[key] = true
          if mref.type == "list" then
            local items = {}
            for _, p in ipairs(qpairs) do
              if p[1] == key then items[#items + 1] = scalar(mref.member, p[2]) end
            end
            if #items > 0 then params[m] = items end
          else
            for _, p in ipairs(qpairs) do
              if p[1] == key then params[m] = scalar(mref, p[2]) break end
            end
          end
        end
      end
    end
    if map_member then
      local mref = members[map_member]
      local vref = mref.value
      local map = {}
      local fixed = {}
      for _, p in ipairs(rest.template(op).query) do fixed[p[1]] = true end
      for _, p in ipairs(qpairs) do
        local k = p[1]
        if not named[k] and not fixed[k] then
          if vref.type == "list" then
            map[k] = map[k] or {}
            table.insert(map[k], scalar(vref.member, p[2]))
          elseif map[k] == nil then
            map[k] = scalar(vref, p[2])
          end
        end
      end
      if next(map) then params[map_member] = map end
    end
    -- header and prefix-header members, read as the client reads response headers
    local hv = rest.read_located(shape, { headers = req.headers or {} }, {})
    for k, v in pairs(hv) do
      if not (type(v) == "table" and next(v) == nil and members[k].location == "headers") then params[k] = v end
    end
  end)
  if not ok then
    if type(perr) == "table" and perr.message then
      return bad("SerializationException", perr.message)
    end
    error(perr, 0)
  end
  local text = body_text(req)
  local pname = shape.payload
  if pname then
    local pref = shape.members[pname]
    if pref.type == "blob" or pref.type == "string" then
      if text ~= "" then params[pname] = text end
    elseif text ~= "" then
      local v, err = json.decode(text)
      if v == nil then return bad("SerializationException", "Malformed JSON body: " .. tostring(err)) end
      local res, rerr = json.guard(json.read, pref, v)
      if res == nil then return bad("SerializationException", rerr) end
      params[pname] = res
    end
  elseif rest.has_body_members(shape) then
    local body, err = read_json_body(text, input)
    if not body then return nil, err end
    for k, v in pairs(body) do
      if not LOCATED_IN[shape.members[k].location or false] then params[k] = v end
    end
  end
  return op, params
end

--- Decode a request into its operation and input parameters.
-- @tparam Service svc the service model
-- @tparam table req the server request
-- @return op (the resolved operation: `op.name`), params; or nil, err
function M.decode(svc, req)
  if type(svc) ~= "table" or type(svc.operation) ~= "function" then
    error("wire.decode: a service model is expected", 2)
  end
  if type(req) ~= "table" then error("wire.decode: a request table is expected", 2) end
  local proto = protocol.protocol_of(svc)
  if proto == "json" then return decode_json(svc, req) end
  if proto == "rest-json" then return decode_rest_json(svc, req) end
  error("wire.decode: protocol " .. tostring(proto) .. " is not served here", 2)
end

-- ------------------------------------------------------------ encoding

local function base_headers(request_id, ctype)
  return { ["x-amzn-requestid"] = request_id, ["content-type"] = ctype }
end

local function json_ctype(svc)
  if protocol.protocol_of(svc) == "json" then
    return "application/x-amz-json-" .. (svc.metadata.jsonVersion or "1.0")
  end
  return "application/json"
end

local function strip(out)
  if out.ResponseMetadata == nil then return out end
  local copy = {}
  for k, v in pairs(out) do if k ~= "ResponseMetadata" then copy[k] = v end end
  return copy
end

local function encode_rest_json(op, out, request_id)
  local headers = base_headers(request_id, "application/json")
  local status = op.http.responseCode or 200
  local body = "{}"
  local output = op.output
  if not output then return { status = status, headers = headers, body = body } end
  local shape = output.target
  local members = shape.members
  for _, m in ipairs(shape.member_names) do
    local v = out[m]
    if not common.absent(v) then
      local mref = members[m]
      local loc = mref.location
      if loc == "header" then
        local t = rest.header_text(mref, v, shape.name .. "." .. m)
        if t ~= nil then headers[lower(mref.locationName or m)] = t end
      elseif loc == "headers" then
        local prefix = lower(mref.locationName or "")
        local keys, n = common.map_keys(v, shape.name .. "." .. m)
        for i = 1, n do
          headers[prefix .. lower(keys[i])] = common.scalar_text(mref.value, v[keys[i]], m, "rfc822")
        end
      elseif loc == "statusCode" then
        status = math.tointeger(v) or common.fail("%s.%s must be an integer status code", shape.name, m)
      end
    end
  end
  common.check_members(shape, out, shape.name)
  local pname = shape.payload
  if pname then
    local pref = members[pname]
    local v = out[pname]
    if pref.type == "blob" or pref.type == "string" then
      if common.absent(v) then
        body = ""
      else
        if type(v) ~= "string" then common.fail("%s.%s must be a string", shape.name, pname) end
        body = v
        headers["content-type"] = pref.type == "blob" and "application/octet-stream" or "text/plain"
      end
    elseif common.absent(v) then
      body = "{}"
    else
      body = json.encode(pref, v, shape.name .. "." .. pname)
    end
  elseif rest.has_body_members_out(shape) then
    body = json.encode(output, out, shape.name, true)
  end
  if status == 204 or status == 304 then body = "" end
  return { status = status, headers = headers, body = body }
end

--- Encode an operation's output as the HTTP response.
-- @tparam Service svc
-- @tparam table op the operation (from `decode`)
-- @tparam table out the output members
-- @tparam string request_id
-- @return res `{status, headers, body}`; an output that does not fit the
--   model gives a 500 InternalFailure naming the problem
function M.encode(svc, op, out, request_id)
  if type(op) ~= "table" or not op.http then error("wire.encode: an operation is expected", 2) end
  out = strip(out or {})
  local ok, res = pcall(function()
    if protocol.protocol_of(svc) == "json" then
      local body = op.output and json.encode(op.output, out, op.output.target.name) or "{}"
      return { status = 200, headers = base_headers(request_id, json_ctype(svc)), body = body }
    end
    return encode_rest_json(op, out, request_id)
  end)
  if ok then return res end
  if type(res) == "table" and res.message then
    return M.encode_error(svc, { code = "InternalFailure", status = 500,
      message = "emulator: output of " .. op.name .. " does not fit the model: " .. res.message }, request_id)
  end
  error(res, 0)
end

local function message_member(shape)
  if not shape then return "message" end
  for _, m in ipairs(shape.member_names) do
    if lower(m) == "message" then return m end
  end
  return nil
end

--- Encode an error response in the service's JSON error format.
-- @tparam Service svc
-- @tparam table err `{code, message, status, fields}` (`fields`: modeled
--   members of the error shape, e.g. Lambda `Type`)
-- @tparam string request_id
-- @return res
function M.encode_error(svc, err, request_id)
  if type(err) ~= "table" or type(err.code) ~= "string" then
    error("wire.encode_error: an error table with a code is expected", 2)
  end
  local code = err.code
  local shape = svc and svc:error_shape(code) or nil
  local headers = base_headers(request_id, json_ctype(svc))
  headers["x-amzn-errortype"] = code
  local status = err.status
  if not status and shape and type(shape.error) == "table" then status = shape.error.httpStatusCode end
  status = status or 400
  local fields = {}
  for k, v in pairs(err.fields or {}) do fields[k] = v end
  local mm = message_member(shape)
  local body
  if shape then
    if mm and err.message ~= nil and fields[mm] == nil then fields[mm] = tostring(err.message) end
    local keep = {}
    for _, m in ipairs(shape.member_names) do
      local v = fields[m]
      if v ~= nil then
        local mref = shape.members[m]
        if mref.location == "header" then
          local ok, t = pcall(rest.header_text, mref, v, m)
          if ok and t then headers[lower(mref.locationName or m)] = t end
        else
          keep[m] = v
        end
      end
    end
    local ok, text = pcall(json.encode, shape, keep, shape.name, true)
    if not ok then text = "{}" end
    body = text
    if not mm then
      local msg = '"message":' .. json.quote(tostring(err.message or code)) .. ","
      body = body:gsub("^{", function() return "{" .. msg end, 1)
    end
  else
    body = "{" .. '"message":' .. json.quote(tostring(err.message or code)) .. "}"
  end
  body = body:gsub(",}$", "}")
  local typ = '"__type":' .. json.quote(code) .. (body == "{}" and "" or ",")
  body = body:gsub("^{", function() return "{" .. typ end, 1)
  return { status = status, headers = headers, body = body }
end

return M
