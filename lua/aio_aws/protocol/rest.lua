--- HTTP bindings shared by rest-json and rest-xml: URI labels, query
-- string, headers and prefix headers on the way out; status code, headers
-- and prefix headers on the way back.
--
-- Spec: https://smithy.io/2.0/spec/http-bindings.html
--  * `{Label}` is percent-encoded as one segment (every byte but RFC 3986
--    unreserved); a greedy `{Label+}` keeps its "/"; labels must be set and
--    non-empty;
--  * the constant query of a requestUri ("/{Bucket}?versioning") comes
--    first, then members bound to the query string in model order; a list
--    repeats its name; a map binds each key (named members win over map
--    keys of the same name: httpQueryParams precedence);
--  * timestamps: date-time in labels and the query string, http-date in
--    headers, unless `timestampFormat` says otherwise;
--  * header lists are joined with ", ", strings that hold a comma or a
--    double quote are quoted (RFC 9110 §5.6.4); `jsonvalue` strings are
--    base64 of their JSON text; blobs are base64.
local common = require "aio_aws.protocol.common"

local M = {}

local absent, fail = common.absent, common.fail
local lower, gsub, find, sub = string.lower, string.gsub, string.find, string.sub

-- Percent-decoding of the constant query in a requestUri: req.query holds
-- values unencoded, and models write these already encoded.
local function unpct(s)
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- requestUri -> {parts = {literal, {label, greedy}, ...}, query = {{k, v}, ...}}
local function template(op)
  local t = op._uri_template
  if t then return t end
  local uri = op.http.requestUri or "/"
  local path, q = uri:match("^([^?]*)%??(.*)$")
  local parts = {}
  local pos = 1
  while true do
    local a, b, name = find(path, "{([^}]+)}", pos)
    if not a then break end
    if a > pos then parts[#parts + 1] = sub(path, pos, a - 1) end
    local greedy = name:sub(-1) == "+"
    if greedy then name = name:sub(1, -2) end
    parts[#parts + 1] = { name, greedy }
    pos = b + 1
  end
  if pos <= #path then parts[#parts + 1] = sub(path, pos) end
  local query = {}
  for item in string.gmatch(q, "[^&]+") do
    local k, v = item:match("^([^=]*)=(.*)$")
    if k then query[#query + 1] = { unpct(k), unpct(v) }
    else query[#query + 1] = { unpct(item) } end
  end
  t = { parts = parts, query = query }
  op._uri_template = t
  return t
end
M.template = template

-- Text of a scalar for a URI label, the query string or a header.
local text = common.scalar_text
M.text = text

local function quote_header_item(s)
  if find(s, '[,"]') then
    return '"' .. gsub(s, '(["\\])', "\\%1") .. '"'
  end
  return s
end

-- Text of a header value, nil to leave the header out.
local function header_text(ref, v, where)
  local t = ref.type
  if t == "list" then
    local n = common.check_list(v, where)
    if n == 0 then return nil end
    local mref = ref.member
    local items = {}
    for i = 1, n do
      local item = text(mref, v[i], where .. "[" .. i .. "]", "rfc822")
      if mref.type == "string" then item = quote_header_item(item) end
      items[i] = item
    end
    return table.concat(items, ", ")
  end
  if t == "string" and ref.jsonvalue then
    local json = require "aio_aws.protocol.json"
    local buf = {}
    local n = json.write_document(buf, 0, v, where, 0)
    return common.b64encode(table.concat(buf, "", 1, n))
  end
  return text(ref, v, where, "rfc822")
end
M.header_text = header_text

-- Host prefix (the endpoint trait): "{Label}." filled from hostLabel members.
-- https://smithy.io/2.0/spec/endpoint-traits.html
function M.host_prefix(op, params)
  local tmpl = op.host_prefix
  if not tmpl then return nil end
  return (gsub(tmpl, "{([^}]+)}", function(name)
    local v = params[name]
    if absent(v) or type(v) ~= "string" or v == "" then
      fail("Missing required host label parameter: %s", name)
    end
    if #v > 63 or not find(v, "^[%w][%w%-]*$") then
      fail("Invalid value for parameter %s: %q is not a valid host label", name, v)
    end
    return v
  end))
end

-- The members present in `params`, in model order (so the request is the
-- same whatever order `pairs` visits them in). Inputs bind up to fifty
-- members while a call sets a few, so this walks the params, not the model.
local function present_members(shape, params)
  local pos = rawget(shape, "_member_pos")
  if not pos then
    pos = {}
    for i, n in ipairs(shape.member_names) do pos[n] = i end
    rawset(shape, "_member_pos", pos)
  end
  local list, n = {}, 0
  for k, v in pairs(params) do
    local p = pos[k]
    if p and not absent(v) then
      -- insertion sort: a handful of members
      local j = n
      while j > 0 and pos[list[j]] > p do list[j + 1] = list[j]; j = j - 1 end
      list[j + 1] = k
      n = n + 1
    end
  end
  return list, n
end

--- Bind the input members that live outside the body.
-- @return req, has_body_members (a member without location is set)
function M.bind(svc, op, params)
  local tpl = template(op)
  local query = {}
  for i, p in ipairs(tpl.query) do query[i] = { p[1], p[2] } end
  local headers = {}
  local req = { method = op.http.method or "POST", query = query, headers = headers }
  local input = op.input
  local labels = {}
  local has_body = false
  if input then
    common.check_table(params, input.target.name, "structure")
    local shape = input.target
    common.check_members(shape, params, shape.name)
    local members = shape.members
    local named, maps = nil, nil
    local names, count = present_members(shape, params)
    for i = 1, count do
      local m = names[i]
      local v = params[m]
      do
        local mref = members[m]
        local loc = mref.location
        local where = shape.name .. "." .. m
        if loc == nil then
          has_body = true
        elseif loc == "uri" then
          labels[mref.locationName or m] = text(mref, v, where, "iso8601")
        elseif loc == "querystring" then
          if mref.type == "map" then
            maps = maps or {}
            maps[#maps + 1] = { mref, v, where }
          else
            local key = mref.locationName or m
            named = named or {}
            named[key] = true
            if mref.type == "list" then
              local n = common.check_list(v, where)
              local item = mref.member
              for j = 1, n do
                query[#query + 1] = { key, text(item, v[j], where .. "[" .. j .. "]", "iso8601") }
              end
            else
              query[#query + 1] = { key, text(mref, v, where, "iso8601") }
            end
          end
        elseif loc == "header" then
          local hv = header_text(mref, v, where)
          if hv ~= nil then headers[lower(mref.locationName or m)] = hv end
        elseif loc == "headers" then
          local prefix = lower(mref.locationName or "")
          local keys, n = common.map_keys(v, where)
          for j = 1, n do
            local k = keys[j]
            headers[prefix .. lower(k)] = text(mref.value, v[k], where .. "." .. k, "rfc822")
          end
        end
      end
    end
    if maps then
      for _, mp in ipairs(maps) do
        local mref, v, where = mp[1], mp[2], mp[3]
        local keys, n = common.map_keys(v, where)
        local vref = mref.value
        for j = 1, n do
          local k = keys[j]
          if not (named and named[k]) then
            local val = v[k]
            if vref.type == "list" then
              local c = common.check_list(val, where .. "." .. k)
              for x = 1, c do
                query[#query + 1] = { k, text(vref.member, val[x], where .. "." .. k, "iso8601") }
              end
            else
              query[#query + 1] = { k, text(vref, val, where .. "." .. k, "iso8601") }
            end
          end
        end
      end
    end
  elseif type(params) == "table" and common.has_keys(params) then
    fail("Unknown parameter in input: %q: %s takes no parameters", tostring(next(params)), op.name)
  end
  -- the path
  local out = {}
  for i, part in ipairs(tpl.parts) do
    if type(part) == "string" then
      out[i] = part
    else
      local v = labels[part[1]]
      if v == nil or v == "" then
        fail("Missing required parameter in input: %q (URI label of %s)", part[1], op.name)
      end
      out[i] = part[2] and common.pct_path(v) or common.pct(v)
    end
  end
  req.path = table.concat(out)
  return req, has_body
end

-- ---------------------------------------------------------------- responses

-- Splits a header list (RFC 9110 §5.6.1) honouring quoted strings.
local function split_list(s)
  local items = {}
  local i, len = 1, #s
  while i <= len do
    i = find(s, "[^ \t]", i) or len + 1
    if i > len then break end
    if sub(s, i, i) == '"' then
      local buf = {}
      local j = i + 1
      while j <= len do
        local c = sub(s, j, j)
        if c == "\\" then buf[#buf + 1] = sub(s, j + 1, j + 1); j = j + 2
        elseif c == '"' then j = j + 1 break
        else buf[#buf + 1] = c; j = j + 1 end
      end
      items[#items + 1] = table.concat(buf)
      i = find(s, ",", j, true)
      i = i and i + 1 or len + 1
    else
      local j = find(s, ",", i, true) or len + 1
      items[#items + 1] = (gsub(sub(s, i, j - 1), "[ \t]+$", ""))
      i = j + 1
    end
  end
  return items
end
M.split_list = split_list

local xml_scalar -- reuse the scalar reader of the XML module for text values
local function scalar(ref, s)
  xml_scalar = xml_scalar or require("aio_aws.protocol.xml").read_scalar
  return xml_scalar(ref, s)
end

local function header_value(ref, s)
  local t = ref.type
  if t == "list" then
    local mref = ref.member
    local items = split_list(s)
    if mref.type == "timestamp" and (mref.timestampFormat or "rfc822") == "rfc822" then
      -- "Mon, 16 Dec 2019 23:48:18 GMT, Mon, 16 Dec ..." : every HTTP-date
      -- holds one comma, so items pair up
      local joined = {}
      for i = 1, #items, 2 do
        joined[#joined + 1] = items[i] .. (items[i + 1] and (", " .. items[i + 1]) or "")
      end
      items = joined
    end
    local out = {}
    for i, item in ipairs(items) do out[i] = scalar(mref, item) end
    return out
  end
  if t == "string" and ref.jsonvalue then
    local raw = common.b64decode(s)
    if not raw then require("aio_aws.protocol.xml").perr("invalid base64 in a JSON value header") end
    local v, err = require("aio_aws.protocol.json").decode(raw)
    if v == nil and err then require("aio_aws.protocol.xml").perr("invalid JSON value header: %s", err) end
    return v
  end
  return scalar(ref, s)
end

-- Per output shape, once: lower-cased header name -> member, the prefix
-- maps (x-amz-meta-) and the status-code members. A response carries about
-- ten headers while S3 outputs bind up to fifty, so parsing walks the
-- headers, not the members.
local function located_index(shape)
  local idx = rawget(shape, "_located_index")
  if idx then return idx end
  idx = { header = {}, prefixes = {}, status = {} }
  local members = shape.members
  for _, m in ipairs(shape.member_names) do
    local mref = members[m]
    local loc = mref.location
    if loc == "header" then
      idx.header[lower(mref.locationName or m)] = { m, mref }
    elseif loc == "headers" then
      local prefix = lower(mref.locationName or "")
      idx.prefixes[#idx.prefixes + 1] = { m, mref, prefix, #prefix }
    elseif loc == "statusCode" then
      idx.status[#idx.status + 1] = m
    end
  end
  rawset(shape, "_located_index", idx)
  return idx
end

-- header name -> lower case, memoized (responses repeat the same dozen
-- names); bounded, since names like x-amz-meta-* are the caller's choice
local LOWER, lower_count = {}, 0

--- Fill `out` with the output members bound to the status code and headers.
-- (raises the XML module's PARSE error for malformed values)
function M.read_located(shape, response, out)
  local headers = response.headers or {}
  local idx = located_index(shape)
  local by_header, prefixes = idx.header, idx.prefixes
  local np = #prefixes
  for i = 1, np do out[prefixes[i][1]] = {} end
  for name, v in pairs(headers) do
    -- http.lua gives lower-case names; a transport handed in may not
    local lname = LOWER[name]
    if not lname then
      lname = lower(name)
      if lower_count < 1024 then LOWER[name] = lname; lower_count = lower_count + 1 end
    end
    local hit = by_header[lname]
    if hit then out[hit[1]] = header_value(hit[2], v) end
    for i = 1, np do
      local p = prefixes[i]
      if find(lname, p[3], 1, true) == 1 then
        out[p[1]][sub(lname, p[4] + 1)] = scalar(p[2].value, v)
      end
    end
  end
  local st = idx.status
  for i = 1, #st do out[st[i]] = response.status end
  return out
end

-- Locations outside the body, on the way out and on the way back ("uri"
-- and "querystring" mean nothing in a response, so such output members are
-- read from the body: Smithy IgnoreQueryParamsInResponse).
local LOCATED_IN = { uri = true, querystring = true, header = true, headers = true }
local LOCATED_OUT = { header = true, headers = true, statusCode = true }

local function any_body_member(shape, located, cache_key)
  local v = shape[cache_key]
  if v == nil then
    v = false
    for _, m in ipairs(shape.member_names) do
      if not located[shape.members[m].location or false] then v = true break end
    end
    rawset(shape, cache_key, v)
  end
  return v
end

--- Does an input structure have a member that goes in the body?
function M.has_body_members(shape)
  return any_body_member(shape, LOCATED_IN, "_has_body_members")
end

--- Does an output structure have a member read from the body?
function M.has_body_members_out(shape)
  return any_body_member(shape, LOCATED_OUT, "_has_body_members_out")
end

--- Sets a blob or string payload member as the raw body (streams pass
-- through unchanged), with a default Content-Type unless a member set one
-- or the payload is empty (Smithy restJson1/restXml httpPayload).
function M.raw_payload(req, pref, v, where)
  if common.absent(v) then return end
  if pref.type == "string" then common.check_string(v, where) end
  req.body = v
  if not (type(v) == "string" and v == "") and not req.headers["content-type"] then
    req.headers["content-type"] = pref.type == "blob" and "application/octet-stream" or "text/plain"
  end
end

--- request id / host id from the headers of a REST response
function M.ids(headers)
  local rid = headers["x-amzn-requestid"] or headers["x-amz-request-id"]
  return rid, headers["x-amz-id-2"]
end

-- ------------------------------------------------------------ both REST protocols
--
-- rest-json and rest-xml differ only in how a body is written and read;
-- each hands a codec to these:
--   codec.payload(req, pref, v, where)     a structure/union/document payload member
--   codec.body(req, input, params)          the members without a location (some set)
--   codec.decode(text) -> value | nil, err  a response body
--   codec.read(ref, value)                  shape-directed reading (raises PARSE)
--   codec.error(svc, response)              the error object of an error response

--- Build a REST request: HTTP bindings, then the payload or body.
function M.build(svc, op, params, codec)
  local req, has_body = M.bind(svc, op, params)
  local input = op.input
  if not input then return req end
  local shape = input.target
  local payload = shape.payload
  if payload then
    local pref = shape.members[payload]
    local where = shape.name .. "." .. payload
    if pref.type == "blob" or pref.type == "string" then
      M.raw_payload(req, pref, params[payload], where)
    else
      codec.payload(req, pref, params[payload], where)
    end
  elseif has_body or codec.empty_body then
    codec.body(req, input, params, has_body)
  end
  return req
end

local function decoded(codec, body)
  local v, err = codec.decode(body)
  if v == nil then error({ message = tostring(err) }, 0) end
  return v
end

--- Parse a REST response: status code and header members, then the
-- payload member (a stream or raw bytes pass through) or the body members.
function M.parse(svc, op, response, codec)
  local status = response.status
  if status >= 300 then return nil, codec.error(svc, response) end
  local out = {}
  local output = op.output
  if not output then return out end
  local shape = output.target
  local body = response.body
  local ok, res = pcall(function()
    M.read_located(shape, response, out)
    local name = shape.payload
    local pref = name and shape.members[name]
    if pref then
      if pref.eventstream or pref.streaming then
        out[name] = body
      elseif pref.type == "blob" or pref.type == "string" then
        if body ~= nil and body ~= "" then out[name] = body end
      elseif type(body) == "string" and body ~= "" then
        out[name] = codec.read(pref, decoded(codec, body))
      end
    elseif M.has_body_members_out(shape) and type(body) == "string" and body ~= "" then
      local v = codec.read_body and codec.read_body(output, body)
      if v == nil then v = codec.read(output, decoded(codec, body)) end
      for k, x in pairs(v) do out[k] = x end
    end
  end)
  if not ok then
    if type(res) ~= "table" then error(res, 0) end -- a bug, not bad input
    local rid, hid = M.ids(response.headers or {})
    return nil, require("aio_aws.errors").new("ResponseParserError",
      "Unable to parse response: " .. tostring(res.message), { status = status, request_id = rid, host_id = hid })
  end
  return out
end

return M
