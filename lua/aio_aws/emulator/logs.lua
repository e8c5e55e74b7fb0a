--- CloudWatch Logs for the local endpoint (`aio-aws local`).
--
--     local logs = require("aio_aws.emulator.logs").new(ctx)
--     logs:append("/aws/batch/job", "def/default/123", {{timestamp = ms, message = "hi"}})
--     local out, err = logs:call("GetLogEvents", {logGroupName = ..., logStreamName = ...})
--
-- Operations: CreateLogGroup, DeleteLogGroup, DescribeLogGroups,
-- CreateLogStream, DescribeLogStreams, PutLogEvents, GetLogEvents,
-- FilterLogEvents, with the rules of the CloudWatch Logs API reference
-- (docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/). `call`
-- returns the output table or `nil, err` (`err.code` is the AWS error code,
-- `err.status` the HTTP status: 400, or 500 for ServiceUnavailableException).
--
-- Storage under `ctx.data_dir` (nothing when it is nil):
--   groups.json              {next_id, groups = {name -> {id, creationTime}}}
--                            written crash-safe (aio_aws.emulator.store)
--   g<id>/s<id>.log          one file per stream: a header line
--                            `#{"name":...,"creationTime":...}` written
--                            atomically at CreateLogStream, then one line per
--                            event, appended: `<timestamp> <seq> <ingestionTime> <json message>`
-- A crash can leave at most a torn last line, which is skipped on load. A
-- stream's events are read on first use and kept in memory sorted by
-- (timestamp, seq), so reads are binary searches (100k events per stream
-- are fine); `seq` is the arrival order and makes the sort and the
-- pagination tokens stable.
-- File access is plain (blocking) Lua I/O: the core has no asynchronous
-- file API, and each write is one small append or one small atomic file.
local cjson = require "cjson"
local errors = require "aio_aws.errors"

local M = {}

local floor, min, max = math.floor, math.min, math.max
local concat, sort = table.concat, table.sort
local find, fmt = string.find, string.format

-- PutLogEvents quotas (API reference, PutLogEvents; CloudWatch Logs quotas page).
local MAX_BATCH_EVENTS = 10000
local MAX_BATCH_BYTES = 1048576
local EVENT_OVERHEAD = 26            -- bytes counted per event on top of its message
local MAX_EVENT_BYTES = 262144       -- 256 KB per event, overhead included
local MAX_SPAN_MS = 24 * 3600 * 1000 -- a batch may not span more than 24 hours
local TOO_NEW_MS = 2 * 3600 * 1000   -- more than 2 hours in the future
local TOO_OLD_MS = 14 * 24 * 3600 * 1000 -- more than 14 days in the past
-- GetLogEvents / FilterLogEvents: "up to 1 MB (up to 10,000 log events)".
local MAX_READ_EVENTS = 10000
local MAX_READ_BYTES = 1048576
local MAX_DESCRIBE = 50

local GROUP_NAME_PATTERN = "^[%.%-_/#A-Za-z0-9]+$"

local function fail(code, message)
  -- ServiceUnavailableException is the model's only fault (a 5xx); the rest are 400s.
  return nil, errors.new(code, message, { status = code == "ServiceUnavailableException" and 500 or 400 })
end

local function invalid(message) return fail("InvalidParameterException", message) end

-- The message AWS gives for a constraint failure (Coral validation).
local function constraint(name, value, what)
  return invalid(fmt("1 validation error detected: Value %s at '%s' failed to satisfy constraint: %s",
    value == nil and "null" or ("'" .. tostring(value) .. "'"), name, what))
end

local function no_group() return fail("ResourceNotFoundException", "The specified log group does not exist.") end
local function no_stream() return fail("ResourceNotFoundException", "The specified log stream does not exist.") end
local function bad_token() return invalid("The specified nextToken is invalid.") end

local function hex(s) return (s:gsub(".", function(c) return fmt("%02x", c:byte()) end)) end
local function unhex(s)
  if #s % 2 ~= 0 or find(s, "[^%x]") then return nil end
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parameter readers: each returns value or nil, err (already an error pair).
local function opt_string(p, name)
  local v = p[name]
  if v == nil or type(v) == "string" then return true, v end
  return false, select(2, constraint(name, v, "Member must be a string"))
end

local function req_string(p, name)
  local v = p[name]
  if v == nil then return false, select(2, constraint(name, nil, "Member must not be null")) end
  if type(v) ~= "string" then return false, select(2, constraint(name, v, "Member must be a string")) end
  return true, v
end

local function to_int(v)
  if type(v) == "string" and find(v, "^%-?%d+$") then v = tonumber(v) end
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return nil end
  return math.tointeger(v) or math.tointeger(floor(v))
end

local function opt_int(p, name, lo, hi)
  local v = p[name]
  if v == nil then return true, nil end
  local n = to_int(v)
  if not n then return false, select(2, constraint(name, v, "Member must be a number")) end
  if lo and n < lo then
    return false, select(2, constraint(name, n, "Member must have value greater than or equal to " .. lo))
  end
  if hi and n > hi then
    return false, select(2, constraint(name, n, "Member must have value less than or equal to " .. hi))
  end
  return true, n
end

local function opt_bool(p, name)
  local v = p[name]
  if v == nil or type(v) == "boolean" then return true, v end
  return false, select(2, constraint(name, v, "Member must be a boolean"))
end

-- Run the readers in order; stop at the first failure.
local function read_params(p, specs)
  local out = {}
  for i = 1, #specs do
    local s = specs[i]
    local ok, v = s[1](p, s[2], s[3], s[4])
    if not ok then return nil, v end
    out[s[2]] = v
  end
  return out
end

local function check_group_name(name)
  if #name < 1 or #name > 512 then
    return constraint("logGroupName", name, "Member must have length less than or equal to 512")
  end
  if not find(name, GROUP_NAME_PATTERN) then
    return constraint("logGroupName", name, "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+")
  end
  return true
end

local function check_stream_name(name)
  if #name < 1 or #name > 512 then
    return constraint("logStreamName", name, "Member must have length between 1 and 512")
  end
  if find(name, "[:*]") then
    return constraint("logStreamName", name, "Member must satisfy regular expression pattern: [^:*]*")
  end
  return true
end

-- ------------------------------------------------------------ the service

local Logs = {}
Logs.__index = Logs
Logs.__name = "aio_aws.emulator.Logs"

function Logs:now_ms()
  return floor(self.clock() * 1000)
end

function Logs:group_arn(name)
  return fmt("arn:aws:logs:%s:%s:log-group:%s:*", self.region, self.account_id, name)
end

function Logs:stream_arn(group, stream)
  return fmt("arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", self.region, self.account_id, group, stream)
end

function Logs:save_groups()
  if not self.dir then return true end
  local groups = {}
  for name, g in pairs(self.groups) do
    groups[name] = { id = g.id, creationTime = g.creationTime }
  end
  return self.store.write_json(self.dir .. "/groups.json", { next_id = self.next_group_id, groups = groups })
end

local function new_stream(group, name, id, creation_time)
  return {
    group = group, name = name, id = id, creationTime = creation_time,
    loaded = false, n = 0, ts = {}, seq = {}, ing = {}, msg = {}, next_seq = 1,
    last_ingestion = nil, path = group.dir and fmt("%s/s%d.log", group.dir, id) or nil,
  }
end

-- Read a stream file: header, then events in arrival order; sort by (ts, seq).
local function load_stream(st)
  st.loaded = true
  if not st.path then return end
  local f = io.open(st.path, "rb")
  if not f then return end
  local data = f:read("a") or ""
  f:close()
  local ts, seq, ing, msg = st.ts, st.seq, st.ing, st.msg
  local n, next_seq, last_ing = 0, 1, nil
  local pos, len = 1, #data
  local sorted = true
  while pos <= len do
    local nl = find(data, "\n", pos, true)
    if not nl then
      st.torn = true -- a write cut short by a crash; the next append starts a new line
      break
    end
    if data:byte(pos) ~= 35 then -- not the "#" header
      local t, s, g, m = data:sub(pos, nl - 1):match("^(%-?%d+) (%d+) (%d+) (\".*\")$")
      if t then
        local ok, text = pcall(cjson.decode, m)
        if ok and type(text) == "string" then
          n = n + 1
          t, s, g = math.tointeger(tonumber(t)), math.tointeger(tonumber(s)), math.tointeger(tonumber(g))
          ts[n], seq[n], ing[n], msg[n] = t, s, g, text
          if n > 1 and (t < ts[n - 1] or (t == ts[n - 1] and s < seq[n - 1])) then sorted = false end
          if s >= next_seq then next_seq = s + 1 end
          if not last_ing or g > last_ing then last_ing = g end
        end
      end
    end
    pos = nl + 1
  end
  st.n, st.next_seq, st.last_ingestion = n, next_seq, last_ing
  if not sorted then
    local idx = {}
    for i = 1, n do idx[i] = i end
    sort(idx, function(a, b)
      if ts[a] ~= ts[b] then return ts[a] < ts[b] end
      return seq[a] < seq[b]
    end)
    local t2, s2, g2, m2 = {}, {}, {}, {}
    for i = 1, n do
      local j = idx[i]
      t2[i], s2[i], g2[i], m2[i] = ts[j], seq[j], ing[j], msg[j]
    end
    st.ts, st.seq, st.ing, st.msg = t2, s2, g2, m2
  end
end

local function ensure_loaded(st)
  if not st.loaded then load_stream(st) end
  return st
end

--- Load groups.json and the stream headers of every group.
local function load_state(self)
  local store, dir = self.store, self.dir
  local ok, err = store.mkdir_p(dir)
  if not ok then return nil, err end
  local state, rerr = store.read_json(dir .. "/groups.json")
  if state == nil and rerr then return nil, rerr end
  state = state or {}
  self.next_group_id = math.tointeger(state.next_id) or 1
  for name, g in pairs(state.groups or {}) do
    local group = { name = name, id = math.tointeger(g.id), creationTime = math.tointeger(g.creationTime),
      streams = {}, next_stream_id = 1 }
    group.dir = fmt("%s/g%d", dir, group.id)
    self.groups[name] = group
    local files = store.list_dir(group.dir) or {}
    for _, file in ipairs(files) do
      local id = file:match("^s(%d+)%.log$")
      if id then
        id = math.tointeger(tonumber(id))
        local f = io.open(group.dir .. "/" .. file, "rb")
        local line = f and f:read("l")
        if f then f:close() end
        local okh, head = pcall(cjson.decode, line and line:match("^#(.*)$") or "")
        if okh and type(head) == "table" and type(head.name) == "string" then
          group.streams[head.name] = new_stream(group, head.name, id, math.tointeger(head.creationTime) or 0)
        end
        if id >= group.next_stream_id then group.next_stream_id = id + 1 end
      end
    end
  end
  return true
end

--- Create the service. `ctx`: data_dir (nil: memory only), store, clock,
-- region, account_id (see the emulator contract).
-- @return service | nil, err (the data dir cannot be read)
function M.new(ctx)
  if type(ctx) ~= "table" then error("emulator.logs.new: ctx must be a table", 2) end
  if ctx.data_dir ~= nil and type(ctx.data_dir) ~= "string" then
    error("emulator.logs.new: ctx.data_dir must be a string", 2)
  end
  local self = setmetatable({
    ctx = ctx,
    dir = ctx.data_dir,
    store = ctx.store or require("aio_aws.emulator.store"),
    clock = ctx.clock or os.time,
    region = ctx.region or "us-east-1",
    account_id = ctx.account_id or "123456789012",
    groups = {},
    next_group_id = 1,
  }, Logs)
  if self.dir then
    local ok, err = load_state(self)
    if not ok then return nil, errors.new("LogsStateError", "cannot load logs state: " .. tostring(err)) end
  end
  return self
end

function Logs:close()
  self.closed = true
end

-- ----------------------------------------------------- groups and streams

function Logs:create_group(name)
  local group = { name = name, id = self.next_group_id, creationTime = self:now_ms(), streams = {},
    next_stream_id = 1 }
  self.next_group_id = self.next_group_id + 1
  if self.dir then
    group.dir = fmt("%s/g%d", self.dir, group.id)
    local ok, err = self.store.mkdir_p(group.dir)
    if not ok then return nil, err end
  end
  self.groups[name] = group
  local ok, err = self:save_groups()
  if not ok then
    self.groups[name] = nil
    return nil, err
  end
  return group
end

function Logs:create_stream(group, name)
  local id = group.next_stream_id
  group.next_stream_id = id + 1
  local st = new_stream(group, name, id, self:now_ms())
  st.loaded = true -- nothing on disk yet but the header
  if st.path then
    local ok, err = self.store.write_file_atomic(st.path,
      "#" .. cjson.encode({ name = name, creationTime = st.creationTime }) .. "\n")
    if not ok then return nil, err end
  end
  group.streams[name] = st
  return st
end

-- First index in 1..n whose key (ts, seq) is > (kt, ks); n + 1 if none.
local function upper_key(st, kt, ks)
  local ts, seq = st.ts, st.seq
  local lo, hi = 1, st.n + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    local t = ts[mid]
    if t > kt or (t == kt and seq[mid] > ks) then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- First index whose timestamp is >= t (n + 1 if none).
local function lower_ts(st, t)
  local ts = st.ts
  local lo, hi = 1, st.n + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if ts[mid] >= t then hi = mid else lo = mid + 1 end
  end
  return lo
end

--- Store `evs` (each {ts, msg}, sorted by ts) in `st`: append to the file,
-- then insert into the sorted arrays.
-- @return true | nil, err
function Logs:store_events(st, evs)
  ensure_loaded(st)
  local now = self:now_ms()
  local k = #evs
  if k == 0 then return true end
  local lines = {}
  local base = st.next_seq
  for i = 1, k do
    local e = evs[i]
    e.seq = base + i - 1
    lines[i] = fmt("%d %d %d %s\n", e.ts, e.seq, now, cjson.encode(e.msg))
  end
  if st.path then
    local f, err = io.open(st.path, "ab")
    if not f then return nil, err end
    local ok, werr = f:write(st.torn and "\n" or "", concat(lines))
    local cok, cerr = f:close()
    if not ok or not cok then return nil, werr or cerr end
    st.torn = false
  end
  st.next_seq = base + k
  st.last_ingestion = now
  local ts, seq, ing, msg = st.ts, st.seq, st.ing, st.msg
  local n = st.n
  if n == 0 or evs[1].ts >= ts[n] then
    for i = 1, k do
      local e = evs[i]
      ts[n + i], seq[n + i], ing[n + i], msg[n + i] = e.ts, e.seq, now, e.msg
    end
  else
    -- Older than what is stored: merge the batch into the tail it overlaps.
    local p = upper_key(st, evs[1].ts, math.maxinteger)
    local tt, ts2, tg, tm = {}, {}, {}, {}
    for i = p, n do
      local j = i - p + 1
      tt[j], ts2[j], tg[j], tm[j] = ts[i], seq[i], ing[i], msg[i]
    end
    local a, b, out, na = 1, 1, p, n - p + 1
    while a <= na or b <= k do
      local e = evs[b]
      if b > k or (a <= na and tt[a] <= e.ts) then
        ts[out], seq[out], ing[out], msg[out] = tt[a], ts2[a], tg[a], tm[a]
        a = a + 1
      else
        ts[out], seq[out], ing[out], msg[out] = e.ts, e.seq, now, e.msg
        b = b + 1
      end
      out = out + 1
    end
  end
  st.n = n + k
  return true
end

--- Append events for Batch and Lambda (contract §5): the group and stream
-- are created when missing; the PutLogEvents batch rules do not apply.
-- @tparam string group log group name
-- @tparam string stream log stream name
-- @tparam table events list of {timestamp = ms, message = string}
-- @return true | nil, err
function Logs:append(group_name, stream_name, events)
  if type(group_name) ~= "string" or group_name == "" then error("logs:append: group must be a non-empty string", 2) end
  if type(stream_name) ~= "string" or stream_name == "" then error("logs:append: stream must be a non-empty string", 2) end
  if type(events) ~= "table" then error("logs:append: events must be a list", 2) end
  local evs = {}
  for i = 1, #events do
    local e = events[i]
    if type(e) ~= "table" then error("logs:append: event " .. i .. " must be a table", 2) end
    local t = to_int(e.timestamp)
    if not t then error("logs:append: event " .. i .. " needs a numeric timestamp", 2) end
    if type(e.message) ~= "string" then error("logs:append: event " .. i .. " needs a string message", 2) end
    evs[i] = { ts = max(0, t), msg = e.message, i = i }
  end
  sort(evs, function(a, b) if a.ts ~= b.ts then return a.ts < b.ts end return a.i < b.i end)
  local g = self.groups[group_name]
  if not g then
    local err
    g, err = self:create_group(group_name)
    if not g then return nil, errors.new("LogsStoreError", tostring(err)) end
  end
  local st = g.streams[stream_name]
  if not st then
    local err
    st, err = self:create_stream(g, stream_name)
    if not st then return nil, errors.new("LogsStoreError", tostring(err)) end
  end
  local ok, err = self:store_events(st, evs)
  if not ok then return nil, errors.new("LogsStoreError", tostring(err)) end
  return true
end

--- Read events back (for tests and tools): a list of {timestamp, message,
-- ingestionTime} in timestamp order, or nil when the stream is missing.
function Logs:events(group_name, stream_name)
  local g = self.groups[group_name]
  local st = g and g.streams[stream_name]
  if not st then return nil end
  ensure_loaded(st)
  local out = {}
  for i = 1, st.n do out[i] = { timestamp = st.ts[i], message = st.msg[i], ingestionTime = st.ing[i] } end
  return out
end

-- ------------------------------------------------------------ operations

local OPS = {}

function OPS.CreateLogGroup(self, p)
  local a, err = read_params(p, { { req_string, "logGroupName" }, { opt_string, "kmsKeyId" } })
  if not a then return nil, err end
  local ok, cerr = check_group_name(a.logGroupName)
  if not ok then return nil, cerr end
  if self.groups[a.logGroupName] then
    return fail("ResourceAlreadyExistsException", "The specified log group already exists")
  end
  local g, serr = self:create_group(a.logGroupName)
  if not g then return fail("ServiceUnavailableException", "cannot store the log group: " .. tostring(serr)) end
  return {}
end

function OPS.DeleteLogGroup(self, p)
  local a, err = read_params(p, { { req_string, "logGroupName" } })
  if not a then return nil, err end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  self.groups[a.logGroupName] = nil
  local ok, serr = self:save_groups()
  if not ok then
    self.groups[a.logGroupName] = g
    return fail("ServiceUnavailableException", "cannot store the log groups: " .. tostring(serr))
  end
  -- groups.json no longer names the group: leftovers after a crash here are ignored.
  if g.dir then
    for _, file in ipairs(self.store.list_dir(g.dir) or {}) do os.remove(g.dir .. "/" .. file) end
    os.remove(g.dir)
  end
  return {}
end

-- Page through `items` (sorted) after the token's key; `key(item)` gives the
-- comparable string the token holds.
local function page(items, key, token, limit, descending)
  local start = 1
  if token then
    local after = unhex(token)
    if not after then return nil end
    start = #items + 1
    for i = 1, #items do
      local k = key(items[i])
      if (descending and k < after) or (not descending and k > after) then start = i; break end
    end
  end
  local out = {}
  for i = start, min(#items, start + limit - 1) do out[#out + 1] = items[i] end
  local next_token
  if start + limit - 1 < #items then next_token = hex(key(out[#out])) end
  return out, next_token
end

function OPS.DescribeLogGroups(self, p)
  local a, err = read_params(p, {
    { opt_string, "logGroupNamePrefix" }, { opt_string, "logGroupNamePattern" },
    { opt_string, "nextToken" }, { opt_int, "limit", 1, MAX_DESCRIBE },
  })
  if not a then return nil, err end
  if a.logGroupNamePrefix and a.logGroupNamePattern then
    return invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
  end
  local prefix, pattern = a.logGroupNamePrefix, a.logGroupNamePattern and a.logGroupNamePattern:lower()
  local names = {}
  for name in pairs(self.groups) do
    if (not prefix or name:sub(1, #prefix) == prefix)
      and (not pattern or find(name:lower(), pattern, 1, true)) then
      names[#names + 1] = name
    end
  end
  sort(names)
  local items, next_token = page(names, function(n) return n end, a.nextToken, a.limit or MAX_DESCRIBE)
  if not items then return bad_token() end
  local out = {}
  for i, name in ipairs(items) do
    local g = self.groups[name]
    out[i] = { logGroupName = name, creationTime = g.creationTime, metricFilterCount = 0,
      arn = self:group_arn(name), storedBytes = 0 }
  end
  return { logGroups = out, nextToken = next_token }
end

function OPS.CreateLogStream(self, p)
  local a, err = read_params(p, { { req_string, "logGroupName" }, { req_string, "logStreamName" } })
  if not a then return nil, err end
  local ok, cerr = check_stream_name(a.logStreamName)
  if not ok then return nil, cerr end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  if g.streams[a.logStreamName] then
    return fail("ResourceAlreadyExistsException", "The specified log stream already exists")
  end
  local st, serr = self:create_stream(g, a.logStreamName)
  if not st then return fail("ServiceUnavailableException", "cannot store the log stream: " .. tostring(serr)) end
  return {}
end

function Logs:describe_stream(st)
  ensure_loaded(st)
  local d = { logStreamName = st.name, creationTime = st.creationTime,
    arn = self:stream_arn(st.group.name, st.name), storedBytes = 0 }
  if st.n > 0 then
    d.firstEventTimestamp = st.ts[1]
    d.lastEventTimestamp = st.ts[st.n]
    d.lastIngestionTime = st.last_ingestion
    d.uploadSequenceToken = fmt("%056d", st.next_seq)
  end
  return d
end

function OPS.DescribeLogStreams(self, p)
  local a, err = read_params(p, {
    { req_string, "logGroupName" }, { opt_string, "logStreamNamePrefix" }, { opt_string, "orderBy" },
    { opt_bool, "descending" }, { opt_string, "nextToken" }, { opt_int, "limit", 1, MAX_DESCRIBE },
  })
  if not a then return nil, err end
  local order = a.orderBy or "LogStreamName"
  if order ~= "LogStreamName" and order ~= "LastEventTime" then
    return constraint("orderBy", order, "Member must satisfy enum value set: [LogStreamName, LastEventTime]")
  end
  if order == "LastEventTime" and a.logStreamNamePrefix then
    return invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
  end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  local prefix = a.logStreamNamePrefix
  local list = {}
  for name, st in pairs(g.streams) do
    if not prefix or name:sub(1, #prefix) == prefix then list[#list + 1] = st end
  end
  local key
  if order == "LogStreamName" then
    key = function(st) return st.name end
  else
    -- Streams without events sort as time 0; ties by name keep pages stable.
    key = function(st)
      ensure_loaded(st)
      return fmt("%015d\0%s", st.n > 0 and st.ts[st.n] or 0, st.name)
    end
  end
  local desc = a.descending == true
  for _, st in ipairs(list) do st._key = key(st) end
  sort(list, function(x, y) if desc then return x._key > y._key end return x._key < y._key end)
  local items, next_token = page(list, function(st) return st._key end, a.nextToken, a.limit or MAX_DESCRIBE, desc)
  if not items then return bad_token() end
  local out = {}
  for i, st in ipairs(items) do out[i] = self:describe_stream(st) end
  return { logStreams = out, nextToken = next_token }
end

function OPS.PutLogEvents(self, p)
  local a, err = read_params(p, {
    { req_string, "logGroupName" }, { req_string, "logStreamName" }, { opt_string, "sequenceToken" },
  })
  if not a then return nil, err end
  local events = p.logEvents
  if events == nil then return constraint("logEvents", nil, "Member must not be null") end
  if type(events) ~= "table" then return constraint("logEvents", events, "Member must be a list") end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  local st = g.streams[a.logStreamName]
  if not st then return no_stream() end
  local k = #events
  if k < 1 then return constraint("logEvents", "[]", "Member must have length greater than or equal to 1") end
  if k > MAX_BATCH_EVENTS then
    return constraint("logEvents", k .. " events", "Member must have length less than or equal to 10000")
  end
  local evs, total = {}, 0
  for i = 1, k do
    local e = events[i]
    if type(e) ~= "table" then return constraint("logEvents." .. i, e, "Member must be a structure") end
    local t = to_int(e.timestamp)
    if not t then return constraint("logEvents." .. i .. ".member.timestamp", e.timestamp, "Member must not be null") end
    if type(e.message) ~= "string" then
      return constraint("logEvents." .. i .. ".member.message", e.message, "Member must not be null")
    end
    local size = #e.message + EVENT_OVERHEAD
    if size > MAX_EVENT_BYTES then
      return invalid(fmt("Log event too large: %d bytes exceeds limit of %d", size, MAX_EVENT_BYTES))
    end
    total = total + size
    if i > 1 and t < evs[i - 1].ts then
      return invalid("Log events in a single PutLogEvents request must be in chronological order.")
    end
    evs[i] = { ts = t, msg = e.message }
  end
  if total > MAX_BATCH_BYTES then
    return invalid(fmt("Upload too large: %d bytes exceeds limit of %d", total, MAX_BATCH_BYTES))
  end
  if evs[k].ts - evs[1].ts > MAX_SPAN_MS then
    return invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
  end
  -- Too old / too new events are dropped and reported, the rest stored
  -- (PutLogEvents, RejectedLogEventsInfo). Sorted, so they form a prefix / suffix.
  local now = self:now_ms()
  local first, last = 1, k
  while first <= k and evs[first].ts < now - TOO_OLD_MS do first = first + 1 end
  while last >= first and evs[last].ts > now + TOO_NEW_MS do last = last - 1 end
  local keep = {}
  for i = first, last do keep[#keep + 1] = evs[i] end
  local ok, serr = self:store_events(st, keep)
  if not ok then return fail("ServiceUnavailableException", "cannot store the events: " .. tostring(serr)) end
  local out = { nextSequenceToken = fmt("%056d", st.next_seq) }
  if first > 1 or last < k then
    local info = {}
    if first > 1 then info.tooOldLogEventEndIndex = first - 2 end      -- 0-based
    if last < k then info.tooNewLogEventStartIndex = last end          -- 0-based index of last + 1
    out.rejectedLogEventsInfo = info
  end
  return out
end

-- GetLogEvents tokens: "f/<ts:15><seq:10>" reads events after that key,
-- "b/<...>" events before it. Digits only, like AWS's tokens.
local function key_token(dir, t, s)
  return fmt("%s/%015d%010d", dir, max(0, t), max(0, s))
end

local function parse_key_token(tok)
  local d, t, s = tok:match("^([fb])/(%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d)(%d%d%d%d%d%d%d%d%d%d)$")
  if not d then return nil end
  return d, math.tointeger(tonumber(t)), math.tointeger(tonumber(s))
end

function OPS.GetLogEvents(self, p)
  local a, err = read_params(p, {
    { req_string, "logGroupName" }, { req_string, "logStreamName" }, { opt_int, "startTime", 0 },
    { opt_int, "endTime", 0 }, { opt_string, "nextToken" }, { opt_int, "limit", 1, MAX_READ_EVENTS },
    { opt_bool, "startFromHead" },
  })
  if not a then return nil, err end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  local st = g.streams[a.logStreamName]
  if not st then return no_stream() end
  ensure_loaded(st)
  local dir, kt, ks
  if a.nextToken then
    dir, kt, ks = parse_key_token(a.nextToken)
    if not dir then return bad_token() end
  end
  -- The window: startTime inclusive, endTime exclusive (GetLogEvents).
  local lo = a.startTime and lower_ts(st, a.startTime) or 1
  local hi = a.endTime and lower_ts(st, a.endTime) - 1 or st.n
  local limit = a.limit or MAX_READ_EVENTS
  local ts, seq = st.ts, st.seq
  local first, last -- the page, inclusive
  local forward
  if dir == "f" or (not dir and a.startFromHead) then
    forward = true
    first = dir and max(lo, upper_key(st, kt, ks)) or lo
    last = first - 1
    local bytes = 0
    while last < hi and last - first + 1 < limit do
      local size = #st.msg[last + 1] + EVENT_OVERHEAD
      if bytes + size > MAX_READ_BYTES and last >= first then break end
      bytes = bytes + size
      last = last + 1
    end
  else
    forward = false
    -- "before key": the last index whose key is < (kt, ks).
    last = dir and min(hi, upper_key(st, kt, ks - 1) - 1) or hi
    first = last + 1
    local bytes = 0
    while first > lo and last - first + 1 < limit do
      local size = #st.msg[first - 1] + EVENT_OVERHEAD
      if bytes + size > MAX_READ_BYTES and first <= last then break end
      bytes = bytes + size
      first = first - 1
    end
  end
  local events = {}
  for i = first, last do
    events[#events + 1] = { timestamp = ts[i], message = st.msg[i], ingestionTime = st.ing[i] }
  end
  local fwd, bwd
  if #events > 0 then
    fwd = key_token("f", ts[last], seq[last])
    bwd = key_token("b", ts[first], seq[first])
  elseif dir == "f" then
    -- End of the stream: the same forward token again (GetLogEvents docs).
    fwd, bwd = a.nextToken, key_token("b", kt, ks + 1)
  elseif dir == "b" then
    fwd, bwd = key_token("f", kt, ks - 1), a.nextToken
  else
    fwd, bwd = key_token("f", 0, 0), key_token("b", 0, 0)
    if not forward and hi >= 1 then
      -- An empty window at the tail: continue after the last stored event.
      fwd = key_token("f", ts[hi], seq[hi])
    end
  end
  return { events = events, nextForwardToken = fwd, nextBackwardToken = bwd }
end

-- Filter patterns for unstructured events (CloudWatch Logs "Filter pattern
-- syntax"): terms and "quoted phrases" must all appear (case-sensitive),
-- `-term` must not appear, and when `?term`s are given at least one must.
local function parse_pattern(pattern)
  local all, none, any = {}, {}, {}
  local i, n = 1, #pattern
  while i <= n do
    local c = pattern:sub(i, i)
    if c:match("%s") then
      i = i + 1
    else
      local kind = all
      if c == "-" or c == "?" then
        kind = c == "-" and none or any
        i = i + 1
        c = pattern:sub(i, i)
      end
      local term
      if c == '"' then
        local close = find(pattern, '"', i + 1, true)
        if not close then return nil, "unbalanced quote in filter pattern" end
        term = pattern:sub(i + 1, close - 1)
        i = close + 1
      else
        local s, e = find(pattern, "^[^%s]+", i)
        if not s then return nil, "empty term in filter pattern" end
        term = pattern:sub(s, e)
        i = e + 1
      end
      if term ~= "" then kind[#kind + 1] = term end
    end
  end
  return function(msg)
    for j = 1, #all do if not find(msg, all[j], 1, true) then return false end end
    for j = 1, #none do if find(msg, none[j], 1, true) then return false end end
    if #any > 0 then
      for j = 1, #any do if find(msg, any[j], 1, true) then return true end end
      return false
    end
    return true
  end
end

-- FilterLogEvents results are ordered by (timestamp, stream id, seq); the
-- token and the eventId spell that key as digits.
local function filter_key(t, sid, s) return fmt("%015d%08d%010d", t, sid, s) end

function OPS.FilterLogEvents(self, p)
  local a, err = read_params(p, {
    { req_string, "logGroupName" }, { opt_string, "logStreamNamePrefix" }, { opt_int, "startTime", 0 },
    { opt_int, "endTime", 0 }, { opt_string, "filterPattern" }, { opt_string, "nextToken" },
    { opt_int, "limit", 1, MAX_READ_EVENTS }, { opt_bool, "interleaved" },
  })
  if not a then return nil, err end
  local names = p.logStreamNames
  if names ~= nil then
    if type(names) ~= "table" then return constraint("logStreamNames", names, "Member must be a list") end
    if #names < 1 or #names > 100 then
      return constraint("logStreamNames", #names, "Member must have length between 1 and 100")
    end
    for i = 1, #names do
      if type(names[i]) ~= "string" then return constraint("logStreamNames", names[i], "Member must be a string") end
    end
    if a.logStreamNamePrefix then
      return invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
    end
  end
  local g = self.groups[a.logGroupName]
  if not g then return no_group() end
  local pattern = a.filterPattern or ""
  if find(pattern, "^%s*[%[{]") then
    return invalid("aio-aws local supports terms, -terms, ?terms and quoted phrases; not JSON or space-delimited filter patterns")
  end
  local match, perr = parse_pattern(pattern)
  if not match then return invalid("Invalid filter pattern: " .. perr) end
  local tt, tsid, ts_ = -1, -1, -1
  if a.nextToken then
    local t, sid, s = a.nextToken:match("^(%d+)/(%d+)/(%d+)$")
    if not t then return bad_token() end
    tt, tsid, ts_ = math.tointeger(tonumber(t)), math.tointeger(tonumber(sid)), math.tointeger(tonumber(s))
  end
  local streams = {}
  if names then
    local seen = {}
    for _, name in ipairs(names) do
      local st = g.streams[name]
      if st and not seen[st] then seen[st] = true; streams[#streams + 1] = st end
    end
  else
    local prefix = a.logStreamNamePrefix
    for name, st in pairs(g.streams) do
      if not prefix or name:sub(1, #prefix) == prefix then streams[#streams + 1] = st end
    end
  end
  sort(streams, function(x, y) return x.id < y.id end)
  -- A cursor per stream, merged through a binary heap on (ts, sid, seq).
  local heap, hn = {}, 0
  local function less(x, y)
    local xt, yt = x.st.ts[x.i], y.st.ts[y.i]
    if xt ~= yt then return xt < yt end
    if x.st.id ~= y.st.id then return x.st.id < y.st.id end
    return x.st.seq[x.i] < y.st.seq[y.i]
  end
  local function push(c)
    hn = hn + 1
    heap[hn] = c
    local j = hn
    while j > 1 do
      local parent = j // 2
      if less(heap[j], heap[parent]) then heap[j], heap[parent] = heap[parent], heap[j]; j = parent else break end
    end
  end
  local function pop()
    local top = heap[1]
    heap[1] = heap[hn]
    heap[hn] = nil
    hn = hn - 1
    local j = 1
    while true do
      local l, r, m = 2 * j, 2 * j + 1, j
      if l <= hn and less(heap[l], heap[m]) then m = l end
      if r <= hn and less(heap[r], heap[m]) then m = r end
      if m == j then break end
      heap[j], heap[m] = heap[m], heap[j]
      j = m
    end
    return top
  end
  -- Move a cursor to its next matching event inside the window; false at the end.
  local function advance(c)
    local st = c.st
    while c.i <= c.hi do
      if match(st.msg[c.i]) then return true end
      c.i = c.i + 1
    end
    return false
  end
  local searched = {}
  for _, st in ipairs(streams) do
    ensure_loaded(st)
    searched[#searched + 1] = { logStreamName = st.name, searchedCompletely = true }
    local lo = a.startTime and lower_ts(st, a.startTime) or 1
    -- endTime is inclusive here ("Events with a timestamp later than this time are not returned").
    local hi = a.endTime and (a.endTime < math.maxinteger and lower_ts(st, a.endTime + 1) - 1) or st.n
    if a.nextToken then
      -- Strictly after (tt, tsid, ts_) in the merged order.
      local start
      if st.id > tsid then start = lower_ts(st, tt)
      elseif st.id < tsid then start = lower_ts(st, tt + 1)
      else start = upper_key(st, tt, ts_) end
      lo = max(lo, start)
    end
    local c = { st = st, i = lo, hi = hi }
    if advance(c) then push(c) end
  end
  local limit = a.limit or MAX_READ_EVENTS
  local events, bytes = {}, 0
  while hn > 0 and #events < limit do
    local c = heap[1]
    local st, i = c.st, c.i
    local size = #st.msg[i] + EVENT_OVERHEAD
    if bytes + size > MAX_READ_BYTES and #events > 0 then break end
    bytes = bytes + size
    pop()
    events[#events + 1] = { logStreamName = st.name, timestamp = st.ts[i], message = st.msg[i],
      ingestionTime = st.ing[i], eventId = filter_key(st.ts[i], st.id, st.seq[i]) }
    c.i = i + 1
    if advance(c) then push(c) end
  end
  local next_token
  if hn > 0 and #events > 0 then
    local e = events[#events]
    local st = g.streams[e.logStreamName]
    next_token = fmt("%d/%d/%d", e.timestamp, st.id, tonumber(e.eventId:sub(-10)))
  end
  return { events = events, searchedLogStreams = searched, nextToken = next_token }
end

--- Run one operation. `params` is the decoded request (a table).
-- @return output table | nil, err (err.code = AWS error code, err.status = 400)
function Logs:call(op, params, _req)
  if type(op) ~= "string" then error("logs:call: operation name must be a string", 2) end
  if params ~= nil and type(params) ~= "table" then error("logs:call: params must be a table", 2) end
  local f = OPS[op]
  if not f then return fail("UnknownOperationException", "Operation " .. op .. " is not supported by aio-aws local") end
  return f(self, params or {})
end

M.OPERATIONS = {}
for name in pairs(OPS) do M.OPERATIONS[#M.OPERATIONS + 1] = name end
sort(M.OPERATIONS)

return M
