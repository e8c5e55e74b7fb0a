--- Service models: finding, loading and resolving botocore-format models.
--
--     local model = require "aio_aws.model"
--     local svc = assert(model.load("s3"))        -- newest api version
--     local op = svc:operation("PutObject")      -- resolved operation
--     model.xform_name("ListObjectsV2")          --> "list_objects_v2"
--
-- Where models come from, in botocore's order of precedence
-- (botocore/loaders.py: customer paths before the builtin data):
--
--  1. every directory of `AWS_DATA_PATH` (colon separated), then
--     `~/.aws/models`: botocore layout, raw `<service>/<version>/service-2.json`
--     (or `.json.gz`, as newer botocore releases ship them);
--  2. the compact models bundled under lua/aio_aws/models/ (tools/gen-models);
--  3. a botocore data directory installed on the system (Debian's
--     python3-botocore, or `AIO_AWS_BOTOCORE_DATA`), only when 1 and 2 do not
--     have the service at all.
--
-- Without an explicit version the newest version found in 1 and 2 wins;
-- for one version the first source in that order wins, so a newer model
-- dropped into AWS_DATA_PATH overrides the bundled one, as with botocore.
--
-- Nothing is read at `require` time. A model is read and decoded on its first
-- `load` and kept for the life of the process; shapes and operations are
-- resolved lazily on first use and cached on the service object. Loading
-- is blocking file I/O: do it before the first request (DESIGN.md).
--
-- Errors: an unknown service or version, or an unreadable/invalid file,
-- returns `nil, err` (aio_aws.errors, code "UnknownService" or
-- "ModelError"). Asking a loaded service for an operation it does not have
-- returns nil from `svc:operation` (and raises from `svc:must_operation`).
local errors = require "aio_aws.errors"

local M = {}

-- --------------------------------------------------------------- names

local XFORM_SPECIAL = {
  -- botocore/__init__.py _xform_cache: names the regexes get wrong.
  CreateCachediSCSIVolume = "create_cached_iscsi_volume",
  DescribeCachediSCSIVolumes = "describe_cached_iscsi_volumes",
  DescribeStorediSCSIVolumes = "describe_stored_iscsi_volumes",
  CreateStorediSCSIVolume = "create_stored_iscsi_volume",
  ListHITsForQualificationType = "list_hits_for_qualification_type",
  ExecutePartiQLStatement = "execute_partiql_statement",
  ExecutePartiQLTransaction = "execute_partiql_transaction",
  ExecutePartiQLBatch = "execute_partiql_batch",
}

local xform_cache = {}

local function is_upper(c) return c and c >= 65 and c <= 90 end
local function is_lower(c) return c and c >= 97 and c <= 122 end
local function is_digit(c) return c and c >= 48 and c <= 57 end

--- CamelCase operation (or waiter) name -> snake_case method name, exactly
-- as botocore's `xform_name`: a pluralised acronym at the end becomes one
-- word ("ListWebACLs" -> "list_web_acls"), then the two regex passes
-- `(.)([A-Z][a-z]+)` and `([a-z0-9])([A-Z])` insert the separator, then
-- lower case. A name that already contains the separator is returned as is.
-- @tparam string name e.g. "ListObjectsV2"
-- @tparam[opt="_"] string sep separator
-- @treturn string e.g. "list_objects_v2"
function M.xform_name(name, sep)
  sep = sep or "_"
  if string.find(name, sep, 1, true) then return name end
  local key = sep == "_" and name or (name .. "\0" .. sep)
  local hit = xform_cache[key]
  if hit then return hit end
  local special = XFORM_SPECIAL[name]
  if special then
    hit = sep == "_" and special or (string.gsub(special, "_", sep))
    xform_cache[key] = hit
    return hit
  end
  local s = name
  local a = string.find(s, "%u%u+s$")
  if a then s = string.sub(s, 1, a - 1) .. sep .. string.lower(string.sub(s, a)) end
  -- pass 1: (.)([A-Z][a-z]+) -> \1 sep \2, left to right, non-overlapping
  local out, n, i, len = {}, 0, 1, #s
  while i <= len do
    local c1, c2, c3 = string.byte(s, i, i + 2)
    if i < len and is_upper(c2) and is_lower(c3) then
      local j = i + 2
      while is_lower(string.byte(s, j + 1)) do j = j + 1 end
      n = n + 1; out[n] = string.char(c1)
      n = n + 1; out[n] = sep
      n = n + 1; out[n] = string.sub(s, i + 1, j)
      i = j + 1
    else
      n = n + 1; out[n] = string.char(c1)
      i = i + 1
    end
  end
  s = table.concat(out)
  -- pass 2: ([a-z0-9])([A-Z]) -> \1 sep \2
  out, n, i, len = {}, 0, 1, #s
  while i <= len do
    local c1, c2 = string.byte(s, i, i + 1)
    if (is_lower(c1) or is_digit(c1)) and is_upper(c2) then
      n = n + 1; out[n] = string.char(c1) .. sep .. string.char(c2)
      i = i + 2
    else
      n = n + 1; out[n] = string.char(c1)
      i = i + 1
    end
  end
  hit = string.lower(table.concat(out))
  xform_cache[key] = hit
  return hit
end

-- --------------------------------------------------------------- shapes

-- A resolved shape is a table: `type`, `name`, the shape's traits as in the
-- model (`locationName`, `flattened`, `xmlNamespace`, `timestampFormat`,
-- `payload`, `streaming`, `eventstream`, `exception`, `error`, `union`,
-- `document`, `required`, `enum`, `min`, `max`, `pattern`, `sensitive`, ...),
-- `target` (the shape itself), and by type:
--   structure: `members` (name -> reference), `member_names` (model order),
--              `required_set` (name -> true)
--   list:      `member` (reference)
--   map:       `key`, `value` (references)
--
-- A reference is what a member, list member, map key/value, operation input
-- or output points at. When it carries traits of its own (`location`,
-- `locationName`, `hostLabel`, `idempotencyToken`, `jsonvalue`,
-- `xmlAttribute`, `xmlNamespace`, `flattened`, `queryName`,
-- `timestampFormat`, `streaming`, `eventpayload`, ...) it is a small table
-- of those traits whose metatable falls back to the target shape, so
-- `ref.type`, `ref.members`, `ref.locationName` read the member's trait
-- first and the shape's next, exactly botocore's merge of member traits
-- over shape traits. A reference without traits is the shape itself.
-- `ref.target` is always the plain shape (use it as a cache key).

local Service = {}
Service.__index = Service
Service.__name = "aio_aws.model.Service"

function Service.__tostring(s)
  return string.format("aio_aws.model.Service(%s %s)", tostring(s.name), tostring(s.api_version))
end

local function ref_mt(shape)
  local mt = shape._ref_mt
  if not mt then
    mt = { __index = shape }
    rawset(shape, "_ref_mt", mt)
  end
  return mt
end

local resolve_shape -- forward

-- def: {shape = "Name", trait = value, ...}; returns the reference.
local function resolve_ref(svc, def, where)
  local name = def.shape
  if type(name) ~= "string" then
    error(string.format("model %s: bad shape reference in %s", tostring(svc.name), where), 0)
  end
  local target = resolve_shape(svc, name)
  local traits
  for k, v in pairs(def) do
    if k ~= "shape" then
      traits = traits or {}
      traits[k] = v
    end
  end
  if not traits then return target end
  return setmetatable(traits, ref_mt(target))
end

function resolve_shape(svc, name)
  local shapes = svc._shapes
  local s = shapes[name]
  if s then return s end
  local def = svc._raw.shapes[name]
  if not def then
    error(string.format("model %s: unknown shape %q", tostring(svc.name), name), 0)
  end
  s = {}
  for k, v in pairs(def) do
    if k ~= "members" and k ~= "member" and k ~= "key" and k ~= "value" then s[k] = v end
  end
  s.name = name
  s.target = s
  shapes[name] = s -- before children: shapes may be recursive
  local t = def.type
  if t == "structure" then
    local members, names = {}, {}
    local list = def.members or {}
    if list[1] ~= nil or next(list) == nil then
      for i, pair in ipairs(list) do
        local mname = pair[1]
        names[i] = mname
        members[mname] = resolve_ref(svc, pair[2], name .. "." .. mname)
      end
    else
      -- botocore object form without order (hand-made description)
      for mname in pairs(list) do names[#names + 1] = mname end
      table.sort(names)
      for _, mname in ipairs(names) do
        members[mname] = resolve_ref(svc, list[mname], name .. "." .. mname)
      end
    end
    s.members, s.member_names = members, names
    local req = {}
    for _, r in ipairs(def.required or {}) do req[r] = true end
    s.required_set = req
  elseif t == "list" then
    s.member = resolve_ref(svc, def.member, name .. ".member")
  elseif t == "map" then
    s.key = resolve_ref(svc, def.key, name .. ".key")
    s.value = resolve_ref(svc, def.value, name .. ".value")
  end
  return s
end

--- The resolved shape `name`, or nil, err.
function Service:shape(name)
  local ok, s = pcall(resolve_shape, self, name)
  if ok then return s end
  return nil, errors.new("ModelError", s)
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- Sorted names of all shapes.
function Service:shape_names()
  return sorted_keys(self._raw.shapes)
end

-- --------------------------------------------------------------- operations

local function resolve_operation(svc, name, def)
  local op = {}
  for k, v in pairs(def) do op[k] = v end
  op.name = name
  op.method_name = M.xform_name(name)
  local http = {}
  for k, v in pairs(def.http or {}) do http[k] = v end
  http.method = http.method or "POST"
  http.requestUri = http.requestUri or "/"
  op.http = http
  op.input = def.input and resolve_ref(svc, def.input, name .. ".input") or nil
  op.output = def.output and resolve_ref(svc, def.output, name .. ".output") or nil
  local errs = {}
  for i, e in ipairs(def.errors or {}) do
    errs[i] = resolve_ref(svc, e, name .. ".errors")
  end
  op.errors = errs
  op.host_prefix = def.endpoint and def.endpoint.hostPrefix or nil
  op.service = svc
  -- flags the client stages ask for (botocore OperationModel properties)
  local function payload_ref(ref)
    local shape = ref and ref.target
    local p = shape and shape.payload
    return p and shape.members[p] or nil
  end
  local function eventstream_member(ref)
    local shape = ref and ref.target
    for _, m in ipairs(shape and shape.member_names or {}) do
      if shape.members[m].eventstream then return m end
    end
    return nil
  end
  local inp, outp = payload_ref(op.input), payload_ref(op.output)
  op.has_streaming_input = inp ~= nil and inp.streaming == true
  op.has_streaming_output = outp ~= nil and outp.streaming == true
  op.event_stream_input = eventstream_member(op.input)
  op.event_stream_output = eventstream_member(op.output)
  local hc = def.httpChecksum
  op.checksum_required = def.httpChecksumRequired == true
    or (type(hc) == "table" and hc.requestChecksumRequired == true)
  op.request_compression = def.requestcompression and def.requestcompression.encodings or nil
  return op
end

--- Operation information: `name`, `method_name`, `http` (`method`,
-- `requestUri`, `responseCode`), `input`, `output` (references or nil),
-- `errors` (references), `host_prefix` (endpoint.hostPrefix),
-- `has_streaming_input`, `has_streaming_output` (a streaming blob payload),
-- `event_stream_input`, `event_stream_output` (the member name, or nil),
-- `checksum_required` (httpChecksumRequired, or httpChecksum's
-- requestChecksumRequired), `request_compression` (encodings), and every other
-- trait as in the model (`httpChecksumRequired`, `httpChecksum`,
-- `requestcompression`, `idempotent`, `authtype`, `auth`, `endpoint`,
-- `deprecated`, `staticContextParams`, ...). Accepts the model name
-- ("PutObject") or the method name ("put_object").
-- @return the operation, or nil when the service has no such operation
function Service:operation(name)
  local op = self._ops[name]
  if op then return op end
  local def = self._raw.operations[name]
  if not def then
    local real = self:operation_for_method(name)
    if not real then return nil end
    name, def = real, self._raw.operations[real]
  end
  op = resolve_operation(self, name, def)
  self._ops[name] = op
  self._ops[op.method_name] = op
  return op
end

--- Like `operation`, but raises (misuse) for an unknown name.
function Service:must_operation(name)
  local op = self:operation(name)
  if not op then
    error(string.format("%s has no operation %q", tostring(self.name), tostring(name)), 2)
  end
  return op
end

--- Sorted list of operation names as in the model ("PutObject", ...).
function Service:operation_names()
  return sorted_keys(self._raw.operations)
end

local function method_map(svc)
  local map = svc._methods
  if not map then
    map = {}
    for k in pairs(svc._raw.operations) do map[M.xform_name(k)] = k end
    svc._methods = map
  end
  return map
end

--- Method name ("list_objects_v2") -> operation name ("ListObjectsV2"), or nil.
function Service:operation_for_method(method)
  return method_map(self)[method]
end

--- Sorted list of method names ("put_object", ...).
function Service:method_names()
  return sorted_keys(method_map(self))
end

--- The error shape for an error code (by shape name, or by the code its
-- `error.code` trait gives, as awsQuery errors use), or nil.
function Service:error_shape(code)
  if type(code) ~= "string" then return nil end
  local map = self._error_codes
  if not map then
    map = {}
    for sname, def in pairs(self._raw.shapes) do
      if def.exception or def.error then
        map[sname] = sname
        if type(def.error) == "table" and def.error.code then map[def.error.code] = sname end
      end
    end
    self._error_codes = map
  end
  local sname = map[code]
  return sname and resolve_shape(self, sname) or nil
end

--- Paginator configuration for an operation (botocore paginators-1.json:
-- input_token, output_token, limit_key, result_key, more_results,
-- non_aggregate_keys), or nil.
function Service:paginator(op_name)
  local p = self.paginators
  if not p then return nil end
  return p[op_name] or p[self:operation_for_method(op_name) or ""]
end

--- Waiter configuration (botocore waiters-2.json: delay, maxAttempts,
-- operation, acceptors) by name ("ObjectExists" or "object_exists"), or nil.
function Service:waiter(name)
  local w = self.waiters and self.waiters.waiters
  if not w then return nil end
  if w[name] then return w[name] end
  for k, v in pairs(w) do
    if M.xform_name(k) == name then return v end
  end
  return nil
end

--- Sorted waiter names.
function Service:waiter_names()
  return sorted_keys(self.waiters and self.waiters.waiters or {})
end

--- Build a service object from an in-memory description (botocore layout,
-- raw or compact, e.g. a protocol-test suite or a decoded service-2.json).
-- @tparam table desc `metadata`, `operations`, `shapes` (+ `paginators`, `waiters`)
-- @tparam[opt] table info `name`, `api_version`, `source`
-- @treturn Service
function M.new(desc, info)
  if type(desc) ~= "table" then error("model.new: description table expected", 2) end
  local compact = require "aio_aws.model.compact"
  if desc.format ~= compact.FORMAT then desc = compact.service(desc) end
  info = info or {}
  local md = desc.metadata or {}
  local svc = setmetatable({
    name = info.name or md.endpointPrefix or md.signingName,
    api_version = info.api_version or md.apiVersion,
    metadata = md,
    source = info.source,
    paginators = desc.paginators,
    waiters = desc.waiters,
    _raw = desc,
    _shapes = {},
    _ops = {},
  }, Service)
  return svc
end

-- --------------------------------------------------------------- finding

local cache = {}       -- "service" and "service@version" -> Service
local bundled_index    -- decoded models/index.json, false when absent

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Directory of the bundled models: next to this file's package directory.
local function models_dir()
  if M.models_dir then return M.models_dir end
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) == "@" then
    local dir = src:sub(2):match("^(.*)[/\\]model[/\\]init%.lua$")
    if dir then return dir .. "/models" end
  end
  -- fall back to package.path: the first template that finds the index
  for tmpl in package.path:gmatch("[^;]+") do
    local cand = tmpl:gsub("%?", "aio_aws/models/index"):gsub("%.lua$", ".json")
    if file_exists(cand) then return (cand:gsub("/index%.json$", "")) end
  end
  return nil
end

local function load_index()
  if bundled_index ~= nil then return bundled_index end
  bundled_index = false
  local dir = models_dir()
  local text = dir and read_file(dir .. "/index.json")
  if text then
    local ok, idx = pcall(require("cjson").decode, text)
    if ok and type(idx) == "table" then
      idx.dir = dir
      bundled_index = idx
    end
  end
  return bundled_index
end

local function split_path(s)
  local out = {}
  for p in string.gmatch(s or "", "[^:]+") do
    out[#out + 1] = (p:gsub("^~", os.getenv("HOME") or "~"))
  end
  return out
end

-- Directories holding botocore-layout raw data, in precedence order.
local function custom_dirs()
  local dirs = split_path(os.getenv("AWS_DATA_PATH"))
  local home = os.getenv("HOME")
  if home then dirs[#dirs + 1] = home .. "/.aws/models" end
  return dirs
end

local SYSTEM_DIRS = {
  "/usr/lib/python3/dist-packages/botocore/data",
  "/usr/local/lib/python3/dist-packages/botocore/data",
}

local function system_dirs()
  local dirs = split_path(os.getenv("AIO_AWS_BOTOCORE_DATA"))
  for _, d in ipairs(SYSTEM_DIRS) do dirs[#dirs + 1] = d end
  return dirs
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Newer botocore releases ship their data gzip-compressed ("service-2.json.gz").
local function data_file(path)
  if file_exists(path) then return path end
  if file_exists(path .. ".gz") then return path .. ".gz" end
  return nil
end

-- The text of a data file, decompressing a .gz with gzip(1).
local function read_data(path)
  if path:sub(-3) ~= ".gz" then return read_file(path) end
  local p = io.popen("gzip -dc " .. shell_quote(path) .. " 2>/dev/null")
  if not p then return nil end
  local text = p:read("a")
  p:close()
  return text ~= "" and text or nil
end

-- Sub-directory names of `dir` (lfs when installed, else `ls`).
local function list_dir(dir)
  local ok, lfs = pcall(require, "lfs")
  local out = {}
  if ok and lfs.dir then
    local okd, iter, state = pcall(lfs.dir, dir)
    if not okd then return out end
    for name in iter, state do
      if name ~= "." and name ~= ".." then out[#out + 1] = name end
    end
    return out
  end
  if not file_exists(dir) then return out end
  local p = io.popen("ls -1 " .. shell_quote(dir) .. " 2>/dev/null")
  if not p then return out end
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Versions of `service` available in a raw botocore-layout directory.
local function raw_versions(dir, service)
  local out = {}
  for _, v in ipairs(list_dir(dir .. "/" .. service)) do
    if v:match("^%d%d%d%d%-%d%d%-%d%d$") and data_file(dir .. "/" .. service .. "/" .. v .. "/service-2.json") then
      out[#out + 1] = v
    end
  end
  return out
end

-- Adds {version, "raw", dir} for each version of `service` under `dir`
-- (only `api_version` when one is asked for).
local function add_raw(cands, dir, service, api_version)
  if api_version then
    if data_file(dir .. "/" .. service .. "/" .. api_version .. "/service-2.json") then
      cands[#cands + 1] = { api_version, "raw", dir }
    end
  else
    for _, v in ipairs(raw_versions(dir, service)) do cands[#cands + 1] = { v, "raw", dir } end
  end
end

local function decode_raw(path)
  path = data_file(path)
  if not path then return nil, "missing data file" end
  local text = read_data(path)
  if not text then return nil, "cannot read " .. path end
  local json = require "aio_aws.model.json"
  local v, err = json.decode(text, { order = true })
  if not v then return nil, path .. ": " .. err end
  return v
end

local function load_raw(dir, service, version)
  local compact = require "aio_aws.model.compact"
  local base = dir .. "/" .. service .. "/" .. version .. "/"
  local raw, err = decode_raw(base .. "service-2.json")
  if not raw then return nil, err end
  local desc = compact.service(raw)
  local p = decode_raw(base .. "paginators-1.json")
  desc.paginators = p and compact.paginators(p)
  local w = decode_raw(base .. "waiters-2.json")
  desc.waiters = w and compact.waiters(w)
  return desc
end

-- lua-cjson reads every number as a float; model numbers (min, max,
-- waiter delays and attempts, error status codes) are integers.
local function integers(t)
  for k, v in next, t do
    local tv = type(v)
    if tv == "table" then
      integers(v)
    elseif tv == "number" then
      local i = math.tointeger(v)
      if i then t[k] = i end
    end
  end
end

local function load_bundled(idx, file)
  local text = read_file(idx.dir .. "/" .. file)
  if not text then return nil, "cannot read bundled model " .. file end
  local ok, desc = pcall(require("cjson").decode, text)
  if not ok or type(desc) ~= "table" then
    return nil, "bundled model " .. file .. " is not valid JSON: " .. tostring(desc)
  end
  integers(desc)
  return desc
end

local function newest(list)
  local best
  for _, v in ipairs(list) do
    if not best or v > best then best = v end
  end
  return best
end

--- Find, read and decode a service model (once per process).
-- @tparam string service botocore service name ("s3", "logs", "lambda", ...)
-- @tparam[opt] string api_version e.g. "2006-03-01"; newest when omitted
-- @return Service, or nil, err
function M.load(service, api_version)
  if type(service) ~= "string" then error("model.load: service name expected", 2) end
  if api_version ~= nil and type(api_version) ~= "string" then
    error("model.load: api_version must be a string", 2)
  end
  local key = api_version and (service .. "@" .. api_version) or service
  local hit = cache[key]
  if hit then return hit end
  if not service:match("^[%w][%w%.%-]*$") or (api_version and not api_version:match("^[%w%.%-]+$")) then
    return nil, errors.new("UnknownService", "unknown service: " .. service)
  end

  -- candidates: {version, kind, where}
  local cands = {}
  for _, dir in ipairs(custom_dirs()) do add_raw(cands, dir, service, api_version) end
  local idx = load_index()
  local entry = idx and idx.services and idx.services[service]
  if entry then
    for v, file in pairs(entry) do
      if not api_version or v == api_version then cands[#cands + 1] = { v, "bundled", file } end
    end
  end
  if #cands == 0 then
    for _, dir in ipairs(system_dirs()) do
      add_raw(cands, dir, service, api_version)
      if #cands > 0 then break end
    end
  end
  if #cands == 0 then
    local what = api_version and (service .. " " .. api_version) or service
    return nil, errors.new("UnknownService", "unknown service or no model found: " .. what)
  end
  local versions = {}
  for _, c in ipairs(cands) do versions[#versions + 1] = c[1] end
  local version = api_version or newest(versions)
  local vkey = service .. "@" .. version
  if cache[vkey] then
    cache[key] = cache[vkey]
    return cache[vkey]
  end
  local chosen
  for _, c in ipairs(cands) do
    if c[1] == version then chosen = c break end
  end
  local desc, err, source
  if chosen[2] == "raw" then
    desc, err = load_raw(chosen[3], service, version)
    source = chosen[3] .. "/" .. service .. "/" .. version
  else
    desc, err = load_bundled(idx, chosen[3])
    source = idx.dir .. "/" .. chosen[3]
  end
  if not desc then return nil, errors.new("ModelError", err) end
  local svc = M.new(desc, { name = service, api_version = version, source = source })
  cache[vkey] = svc
  cache[key] = svc
  return svc
end

--- Services and versions bundled with this package: {service = {version, ...}}.
function M.bundled()
  local idx = load_index()
  local out = {}
  for svc, versions in pairs(idx and idx.services or {}) do
    local list = {}
    for v in pairs(versions) do list[#list + 1] = v end
    table.sort(list)
    out[svc] = list
  end
  return out
end

--- Forget every loaded model and the bundled index (tests; AWS_DATA_PATH changes).
function M.clear_cache()
  cache = {}
  bundled_index = nil
end

M.Service = Service
return M
