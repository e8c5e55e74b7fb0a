--- Paginators: every page of a paginated operation, as botocore's
-- `Paginator.paginate` / `PageIterator` (botocore/paginate.py), driven by
-- the model's paginators-1.json (`input_token`, `output_token`,
-- `limit_key`, `result_key`, `more_results`, `non_aggregate_keys`).
--
--     local pager = s3:paginate("ListObjectsV2", {Bucket = "b"}, {max_items = 500, page_size = 100})
--     for page in pager:pages() do ... end          -- or: for page in pager do ... end
--     if pager.err then ... end                      -- the failure that ended the loop
--     local all, err = s3:paginate("ListObjectsV2", {Bucket = "b"}):build_full_result()
--     for key in s3:paginate("ListObjectsV2", {Bucket = "b"}):search("Contents[].Key") do ... end
--
-- Errors, as everywhere in aio_aws: misuse raises (an operation without a
-- paginator, wrong option types, `page_size` for an operation without a
-- limit key, a malformed `starting_token`). Runtime failures end the
-- iteration: `pages()`, `search()` and `__call` stop, and `pager.err` holds
-- the error (an AWS or transport error from the page's call, or
-- "PaginationError" when the service sends the same next token twice);
-- `pager:next_page()` and `build_full_result()` return `nil, err`. A
-- pager is single use: once finished it yields nothing more.
--
-- `max_items` truncation and resume tokens are botocore's: the resume token
-- (`pager.resume_token`, and `NextToken` in `build_full_result`) is base64
-- of the JSON of the service's next tokens, plus `boto_truncate_amount`
-- when a page was cut in the middle, so a token from botocore resumes here
-- and the other way round (botocore's pre-JSON `a___b` token form is not
-- accepted). Binary token values that are not UTF-8 are
-- base64-encoded and listed under `boto_encoded_keys`, as botocore does
-- for bytes.
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"
local jmespath = require "aio_aws.jmespath"
local model = require "aio_aws.model"

local M = {}

local NULL = jmespath.null

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

-- Python truthiness (botocore `if next_token:`).
local function py_true(v)
  if v == nil or v == NULL or v == false or v == "" or v == 0 then return false end
  if type(v) == "table" and next(v) == nil then return false end
  return true
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- botocore.utils.set_value_from_jmespath: dotted names only.
local function set_path(source, expr, value)
  local parts = {}
  for p in (expr .. "."):gmatch("([^.]*)%.") do
    if not p:match("^[%w_]+$") then
      error("paginator: cannot set a value at " .. expr .. " (only dotted names)", 0)
    end
    parts[#parts + 1] = p
  end
  local node = source
  for i = 1, #parts - 1 do
    if type(node[parts[i]]) ~= "table" then node[parts[i]] = {} end
    node = node[parts[i]]
  end
  node[parts[#parts]] = value
end

-- --------------------------------------------------------------- tokens

local function valid_utf8(s) return utf8.len(s) ~= nil end

-- botocore TokenEncoder: json.dumps, bytes (here: strings that are not
-- UTF-8) base64-encoded with their paths under boto_encoded_keys.
local function encode_token(token, input_tokens)
  local encoded_keys = {}
  local function walk(v, path)
    if type(v) == "string" and not valid_utf8(v) then
      encoded_keys[#encoded_keys + 1] = setmetatable(table.move(path, 1, #path, 1, {}), jmespath.array_mt)
      return core.base64_encode(v)
    end
    if type(v) ~= "table" or v == NULL then return v end
    if jmespath.type(v) == "array" then
      local out = setmetatable({}, jmespath.array_mt)
      for i = 1, #v do
        path[#path + 1] = i - 1
        out[i] = walk(v[i], path)
        path[#path] = nil
      end
      return out
    end
    local list = {}
    for _, k in ipairs(jmespath.keys(v)) do
      path[#path + 1] = k
      list[#list + 1] = { k, walk(v[k], path) }
      path[#path] = nil
    end
    return jmespath.object(list)
  end
  local list = {}
  for _, name in ipairs(input_tokens) do
    list[#list + 1] = { name, walk(token[name], { name }) }
  end
  if token.boto_truncate_amount ~= nil then
    list[#list + 1] = { "boto_truncate_amount", token.boto_truncate_amount }
  end
  if #encoded_keys > 0 then
    list[#list + 1] = { "boto_encoded_keys", setmetatable(encoded_keys, jmespath.array_mt) }
  end
  return core.base64_encode(jmespath.py_dumps(jmespath.object(list)))
end
M.encode_token = encode_token

local function bad_token(tok, level)
  error("paginator: bad starting token: " .. tostring(tok), level + 1)
end

-- botocore TokenDecoder + PageIterator._parse_starting_token: the next
-- tokens by input name, and the number of items of the first page already
-- returned.
local function decode_token(tok, input_tokens, level)
  local ok, raw = pcall(core.base64_decode, tok)
  if not ok or not raw then bad_token(tok, level + 1) end
  local t = jmespath.json_decode(raw)
  if type(t) ~= "table" or jmespath.type(t) ~= "object" then bad_token(tok, level + 1) end
  local enc = t.boto_encoded_keys
  t.boto_encoded_keys = nil
  if enc ~= nil then
    if type(enc) ~= "table" then bad_token(tok, level + 1) end
    for _, path in ipairs(enc) do
      local node = t
      for i = 1, #path - 1 do
        local k = path[i]
        node = type(k) == "number" and node[k + 1] or node[k]
        if type(node) ~= "table" then bad_token(tok, level + 1) end
      end
      local k = path[#path]
      if type(k) == "number" then k = k + 1 end
      local ok2, bytes = pcall(core.base64_decode, node[k])
      if not ok2 or not bytes then bad_token(tok, level + 1) end
      node[k] = bytes
    end
  end
  local index = 0
  if t.boto_truncate_amount ~= nil then
    index = math.tointeger(t.boto_truncate_amount)
    if not index or index < 0 then bad_token(tok, level + 1) end
    t.boto_truncate_amount = nil
  end
  local known = {}
  for _, name in ipairs(input_tokens) do known[name] = true end
  for k in pairs(t) do
    if not known[k] then bad_token(tok, level + 1) end
  end
  local next_token = {}
  for _, name in ipairs(input_tokens) do next_token[name] = t[name] ~= NULL and t[name] or nil end
  return next_token, index
end

-- --------------------------------------------------------------- pager

local Pager = {}
Pager.__index = Pager
Pager.__name = "aio_aws.Paginator"

function Pager.__tostring(p)
  return ("aio_aws.Paginator(%s.%s)"):format(tostring(p._client.service_name), p.operation)
end

local OPTS = { max_items = "number", page_size = "number", starting_token = "string" }

--- Create a pager (`client:paginate`).
-- @param client an aio_aws client
-- @tparam string op operation ("ListObjectsV2" or "list_objects_v2")
-- @tparam[opt] table params the operation's parameters (copied)
-- @tparam[opt] table opts `max_items`, `page_size`, `starting_token`
function M.new(client, op, params, opts, level)
  level = (level or 1) + 1
  if type(op) ~= "string" then error("paginate: operation name must be a string", level) end
  if params == nil then params = {} end
  if type(params) ~= "table" then error("paginate: params must be a table", level) end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("paginate: opts must be a table", level) end
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then error("paginate: unknown option '" .. tostring(k) .. "'", level) end
    if type(v) ~= want then error(("paginate: option '%s' must be a %s"):format(k, want), level) end
  end
  local svc = client._svc
  local operation = svc:operation(op)
  if not operation then error(("paginate: %s has no operation %s"):format(client.service_name, op), level) end
  local cfg = svc:paginator(operation.name)
  if not cfg then
    error(("paginate: operation %s of %s cannot be paginated"):format(operation.name, client.service_name), level)
  end
  local input_tokens = as_list(cfg.input_token)
  local output_tokens, result_keys, non_aggregate = {}, {}, {}
  for i, e in ipairs(as_list(cfg.output_token)) do output_tokens[i] = jmespath.compile(e) end
  for i, e in ipairs(as_list(cfg.result_key)) do result_keys[i] = jmespath.compile(e) end
  for i, e in ipairs(as_list(cfg.non_aggregate_keys)) do non_aggregate[i] = jmespath.compile(e) end
  if #result_keys == 0 then
    error(("paginate: the paginator of %s has no result_key"):format(operation.name), level)
  end
  local max_items = opts.max_items
  if max_items ~= nil then
    max_items = math.tointeger(max_items)
    if not max_items or max_items < 1 then error("paginate: max_items must be a positive integer", level) end
  end
  local kwargs = copy(params)
  local page_size = opts.page_size
  if page_size ~= nil then
    if not cfg.limit_key then
      error("paginate: page_size is not supported for " .. operation.name .. " (PaginationError)", level)
    end
    if not math.tointeger(page_size) or page_size < 1 then
      error("paginate: page_size must be a positive integer", level)
    end
    local member = operation.input and operation.input.members[cfg.limit_key]
    -- botocore: a string limit key gets str(page_size)
    if member and member.type == "string" then
      kwargs[cfg.limit_key] = tostring(math.tointeger(page_size))
    else
      kwargs[cfg.limit_key] = math.tointeger(page_size)
    end
  end
  local next_token, truncation = {}, 0
  if opts.starting_token then
    next_token, truncation = decode_token(opts.starting_token, input_tokens, level)
  end
  local self = setmetatable({
    operation = operation.name,
    resume_token = nil,
    non_aggregate_part = {},
    err = nil,
    _client = client,
    _cfg = cfg,
    _input_tokens = input_tokens,
    _output_tokens = output_tokens,
    _result_keys = result_keys,
    _non_aggregate = non_aggregate,
    _more_results = cfg.more_results and jmespath.compile(cfg.more_results) or nil,
    _max_items = max_items,
    _starting = opts.starting_token ~= nil,
    _starting_truncation = truncation,
    _kwargs = kwargs,
    _next_token = next_token,
    _total = 0,
    _first = true,
  }, Pager)
  self:_inject(next_token)
  return self
end

-- botocore _inject_token_into_kwargs
function Pager:_inject(token)
  for _, name in ipairs(self._input_tokens) do
    local v = token[name]
    if v ~= nil and v ~= NULL and v ~= "None" then
      self._kwargs[name] = v
    else
      self._kwargs[name] = nil
    end
  end
end

-- botocore _get_next_token; nil when there are no more pages.
function Pager:_get_next_token(parsed)
  if self._more_results and not py_true(self._more_results:search(parsed)) then return nil end
  local out, any = {}, false
  for i, expr in ipairs(self._output_tokens) do
    local name = self._input_tokens[i]
    if name then
      local v = expr:search(parsed)
      if py_true(v) then
        out[name] = v
        any = true
      end
    end
  end
  return any and out or nil
end

local function same_token(a, b, names)
  for _, n in ipairs(names) do
    if not jmespath.equals(a[n], b[n]) then return false end
  end
  return true
end

local function list_len(v)
  if type(v) == "string" then return #v end
  if type(v) == "table" then return #v end
  return 0
end

-- botocore _handle_first_request: drop what the previous call already
-- returned of the first page.
function Pager:_handle_first_request(parsed)
  local primary = self._result_keys[1]
  local skip = self._starting_truncation
  local all = primary:search(parsed)
  local data
  if type(all) == "string" then
    data = all:sub(skip + 1)
  elseif type(all) == "table" and jmespath.type(all) == "array" then
    data = setmetatable(table.move(all, skip + 1, #all, 1, {}), jmespath.array_mt)
  end
  set_path(parsed, primary.expression, data)
  for i = 2, #self._result_keys do
    local rk = self._result_keys[i]
    local sample = rk:search(parsed)
    local empty
    if type(sample) == "table" and jmespath.type(sample) == "array" then empty = setmetatable({}, jmespath.array_mt)
    elseif type(sample) == "string" then empty = ""
    elseif type(sample) == "number" then empty = 0 end
    set_path(parsed, rk.expression, empty)
  end
end

function Pager:_record_non_aggregate(parsed)
  local part = {}
  for _, e in ipairs(self._non_aggregate) do
    set_path(part, e.expression, e:search(parsed))
  end
  self.non_aggregate_part = part
end

function Pager:_set_resume(token)
  self.resume_token = encode_token(token, self._input_tokens)
end

--- The next page: `page`, or `nil` when there are no more, or `nil, err`.
-- Must be called inside a task.
function Pager:next_page()
  if self._pending_err then
    self.err, self._pending_err = self._pending_err, nil
    self._done = true
    return nil, self.err
  end
  if self._done then return nil, self.err end
  local parsed, err = self._client:call(self.operation, copy(self._kwargs))
  if not parsed then
    self._done, self.err = true, err
    return nil, err
  end
  local primary = self._result_keys[1]
  if self._first then
    if self._starting then self:_handle_first_request(parsed) end
    self._first = false
    self:_record_non_aggregate(parsed)
  else
    self._starting_truncation = 0
  end
  local current = primary:search(parsed)
  local n = list_len(current)
  local truncate = self._max_items and (self._total + n - self._max_items) or 0
  if truncate > 0 then
    -- botocore _truncate_response: keep what fits, remember where to resume
    local keep = n - truncate
    if type(current) == "string" then
      set_path(parsed, primary.expression, current:sub(1, keep))
    else
      set_path(parsed, primary.expression, setmetatable(table.move(current, 1, keep, 1, {}), jmespath.array_mt))
    end
    local token = copy(self._next_token)
    token.boto_truncate_amount = keep + self._starting_truncation
    self:_set_resume(token)
    self._done = true
    return parsed
  end
  self._total = self._total + n
  local nt = self:_get_next_token(parsed)
  if not nt then
    self._done = true
    return parsed
  end
  if self._max_items and self._total == self._max_items then
    self:_set_resume(nt)
    self._done = true
    return parsed
  end
  if self._previous and same_token(self._previous, nt, self._input_tokens) then
    -- botocore raises when the consumer asks for the page after this one
    local shown = {}
    for _, name in ipairs(self._input_tokens) do shown[#shown + 1] = name .. "=" .. tostring(nt[name]) end
    self._pending_err = errors.new("PaginationError",
      "The same next token was received twice: " .. table.concat(shown, ", "))
    return parsed
  end
  self._next_token = nt
  self:_inject(nt)
  self._previous = nt
  return parsed
end

--- Iterator over pages: `for page in pager:pages() do ... end`; when it
-- stops early, `pager.err` says why.
function Pager:pages()
  return function()
    local page = self:next_page()
    return page
  end
end

function Pager.__call(self)
  local page = self:next_page()
  return page
end

--- Iterator over the elements `expr` selects in each page (a list result
-- is flattened, a null one skipped), as botocore's `PageIterator.search`.
function Pager:search(expr)
  local compiled = jmespath.compile(expr)
  local buf, i = nil, 0
  return function()
    while true do
      if buf and i < #buf then
        i = i + 1
        local v = buf[i]
        if v ~= NULL then return v end
      else
        local page = self:next_page()
        if not page then return nil end
        local r = compiled:search(page)
        if r ~= nil then
          if type(r) == "table" and jmespath.type(r) == "array" then
            buf, i = r, 0
          else
            buf, i = nil, 0
            return r
          end
        end
      end
    end
  end
end

--- All pages merged, as botocore's `build_full_result`: for each result
-- key, lists are concatenated and numbers and strings added up; the
-- non-aggregate keys come from the first page; `NextToken` is the resume
-- token when `max_items` cut the listing short.
-- @return the merged table, or nil, err
function Pager:build_full_result()
  local complete = {}
  while true do
    local page, err = self:next_page()
    if not page then
      if err then return nil, err end
      break
    end
    for _, rk in ipairs(self._result_keys) do
      local value = rk:search(page)
      if value ~= nil then
        local existing = rk:search(complete)
        if existing == nil then
          if type(value) == "table" then
            -- a fresh list: pages stay as they were
            value = setmetatable(table.move(value, 1, #value, 1, {}), jmespath.array_mt)
          end
          set_path(complete, rk.expression, value)
        elseif type(value) == "table" and type(existing) == "table" then
          table.move(value, 1, #value, #existing + 1, existing)
        elseif type(value) == "number" and type(existing) == "number" then
          set_path(complete, rk.expression, existing + value)
        elseif type(value) == "string" and type(existing) == "string" then
          set_path(complete, rk.expression, existing .. value)
        end
      end
    end
  end
  -- botocore.utils.merge_dicts
  local function merge(a, b)
    for k, v in pairs(b) do
      if type(v) == "table" and jmespath.type(v) == "object" and type(a[k]) == "table" then
        merge(a[k], v)
      else
        a[k] = v
      end
    end
  end
  merge(complete, self.non_aggregate_part)
  if self.resume_token then complete.NextToken = self.resume_token end
  return complete
end

--- `client:paginate(op, params, opts)`, `client:can_paginate(op)` and
-- `client:get_paginator(op)` (an object whose `paginate(params, opts)`
-- makes pagers, as botocore's `client.get_paginator(op).paginate(...)`).
function M.install(Client)
  function Client:paginate(op, params, opts)
    return M.new(self, op, params, opts, 2)
  end
  function Client:can_paginate(op)
    if type(op) ~= "string" then error("can_paginate: operation name must be a string", 2) end
    local o = self._svc:operation(op)
    return o ~= nil and self._svc:paginator(o.name) ~= nil
  end
  function Client:get_paginator(op)
    if not self:can_paginate(op) then
      error(("get_paginator: operation %s of %s cannot be paginated"):format(tostring(op), self.service_name), 2)
    end
    local client = self
    return {
      operation = self._svc:operation(op).name,
      method_name = model.xform_name(self._svc:operation(op).name),
      paginate = function(_, params, opts) return M.new(client, op, params, opts, 2) end,
    }
  end
end

return M
