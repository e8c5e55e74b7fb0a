--- Filesystem state of the local S3: buckets, objects and multipart
-- uploads under one directory, surviving a restart.
--
-- Layout of `dir`:
--
--   buckets.json          {buckets = {{name, created, region}, ...}}
--   index.log             key set journal: "+ <hex bucket> <hex key>" /
--                         "- <hex bucket> <hex key>" lines (compacted on open)
--   objects/<id>.json     an object's metadata (the commit point of a put)
--   objects/<id>.<ver>    its bytes; <id> = sha256(bucket NUL key), <ver>
--                         unique per write, so a new version never overwrites
--                         the bytes an older metadata file names
--   uploads/<upload>.json a multipart upload (key, initiated, parts)
--   uploads/<upload>.<n>.<ver>  its parts
--   tmp/                  files being written; renamed into place when whole
--
-- Why a journal: listing must not scan directories (no directory API in the
-- runtime), and rewriting one big index per put is O(keys). A line is
-- appended after the metadata file is renamed into place, so a crash can
-- only leave an unacknowledged object invisible; a torn last line is
-- ignored and the journal rewritten on the next open.
--
-- Everything in memory is an index of what is on disk: per bucket a sorted
-- key array (byte order, as S3 lists keys in UTF-8 binary order) and the
-- metadata of each key.
local core = require "aio_aws.core"
local default_store = require "aio_aws.emulator.store"

local M = {}

local hex_encode, hex_decode = core.hex_encode, core.hex_decode
local concat = table.concat

-- ------------------------------------------------------------ file helpers

local seq = 0
local function unique()
  seq = seq + 1
  return string.format("%x%04x%x", os.time(), math.random(0, 0xffff), seq)
end
M.unique = unique

-- ------------------------------------------------------------ sorted keys

-- first index i with keys[i] > k (k absent or equal sorts before)
local function upper_bound(keys, k)
  local lo, hi = 1, #keys + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if keys[mid] <= k then lo = mid + 1 else hi = mid end
  end
  return lo
end
M.upper_bound = upper_bound

-- first index i with keys[i] >= k
local function lower_bound(keys, k)
  local lo, hi = 1, #keys + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if keys[mid] < k then lo = mid + 1 else hi = mid end
  end
  return lo
end
M.lower_bound = lower_bound

-- first index i >= from whose key does not start with p (keys starting with
-- p are contiguous in a sorted array)
function M.skip_prefix(keys, p, from)
  local lo, hi, n = from, #keys + 1, #p
  while lo < hi do
    local mid = (lo + hi) // 2
    local k = keys[mid]
    if k < p or k:sub(1, n) == p then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- ------------------------------------------------------------ the store

local Disk = {}
Disk.__index = Disk

local function object_id(bucket, key)
  return core.sha256_hex(bucket .. "\0" .. key)
end

--- Open (creating it if needed) the state under `dir`.
-- @tparam string dir
-- @tparam[opt] table store aio_aws.emulator.store (file helpers)
-- @return disk | nil, err
function M.open(dir, store)
  store = store or default_store
  for _, sub in ipairs { "", "/objects", "/uploads", "/tmp" } do
    local ok, err = store.mkdir_p(dir .. sub)
    if not ok then return nil, err end
  end
  local self = setmetatable({
    dir = dir, store = store,
    buckets = {},      -- name -> {name, created, region, keys = {...}, objects = {key -> meta}}
    uploads = {},      -- upload id -> upload record
    journal_lines = 0,
  }, Disk)
  -- files of writes a crash interrupted: never committed, never visible
  local names = store.list_dir and store.list_dir(dir .. "/tmp") or {}
  for _, name in ipairs(names) do os.remove(dir .. "/tmp/" .. name) end
  local ok, err = self:load()
  if not ok then return nil, err end
  return self
end

function Disk:path(...)
  return self.dir .. "/" .. concat({ ... }, "/")
end

function Disk:tmp_path()
  return self:path("tmp", unique())
end

function Disk:save_buckets()
  local list = {}
  for _, b in pairs(self.buckets) do
    list[#list + 1] = { name = b.name, created = b.created, region = b.region }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return self.store.write_json(self:path("buckets.json"), { buckets = list })
end

local function insert_key(b, key)
  local keys = b.keys
  local i = lower_bound(keys, key)
  if keys[i] ~= key then table.insert(keys, i, key) end
end

local function remove_key(b, key)
  local keys = b.keys
  local i = lower_bound(keys, key)
  if keys[i] == key then table.remove(keys, i) end
end

function Disk:load()
  local state, err = self.store.read_json(self:path("buckets.json"))
  if err then return nil, err end
  for _, b in ipairs(state and state.buckets or {}) do
    self.buckets[b.name] = { name = b.name, created = b.created, region = b.region, keys = {}, objects = {} }
  end
  -- replay the key journal into a set, then read each live object's metadata
  local live, lines, torn = {}, 0, false
  local f = io.open(self:path("index.log"), "rb")
  if f then
    local data = f:read("a")
    f:close()
    if #data > 0 and data:sub(-1) ~= "\n" then torn = true end
    for op, hb, hk in data:gmatch("([+-]) (%x*) (%x*)\n") do
      lines = lines + 1
      local bucket, key = hex_decode(hb), hex_decode(hk)
      if bucket and key then
        local set = live[bucket]
        if not set then set = {}; live[bucket] = set end
        set[key] = op == "+" or nil
      end
    end
  end
  local count = 0
  for bucket, set in pairs(live) do
    local b = self.buckets[bucket]
    if b then
      for key in pairs(set) do
        local meta = self.store.read_json(self:path("objects", object_id(bucket, key) .. ".json"))
        if meta and meta.key == key and meta.bucket == bucket then
          b.objects[key] = meta
          b.keys[#b.keys + 1] = key
          count = count + 1
        end
      end
      table.sort(b.keys)
    end
  end
  self.live_count = count
  if torn or lines > 2 * count + 100 then
    local ok, cerr = self:compact()
    if not ok then return nil, cerr end
  else
    self.journal_lines = lines
  end
  -- multipart uploads: listed in uploads/index.json
  local ups = self.store.read_json(self:path("uploads", "index.json"))
  for _, id in ipairs(ups and ups.ids or {}) do
    local u = self.store.read_json(self:path("uploads", id .. ".json"))
    if u and self.buckets[u.bucket] then self.uploads[id] = u end
  end
  self:sweep()
  return true
end

--- Remove what a crash left behind: object and part files no committed
-- metadata names (written but never acknowledged, or deleted but not yet
-- removed). Only at start-up, when nothing is in flight.
function Disk:sweep()
  if not self.store.list_dir then return end
  local keep = { ["index.json"] = true }
  for name, b in pairs(self.buckets) do
    for key, meta in pairs(b.objects) do
      keep[object_id(name, key) .. ".json"] = true
      keep[meta.data] = true
    end
  end
  for id, u in pairs(self.uploads) do
    keep[id .. ".json"] = true
    for _, p in pairs(u.parts) do keep[p.data] = true end
  end
  for _, sub in ipairs { "objects", "uploads" } do
    for _, name in ipairs(self.store.list_dir(self:path(sub)) or {}) do
      if not keep[name] then os.remove(self:path(sub, name)) end
    end
  end
end

function Disk:close()
  if self.jf then
    self.jf:close()
    self.jf = nil
  end
end

--- Rewrite the journal as one "+" line per live key.
function Disk:compact()
  self:close()
  local out, n = {}, 0
  for name, b in pairs(self.buckets) do
    local hb = hex_encode(name)
    for _, key in ipairs(b.keys) do
      n = n + 1
      out[n] = "+ " .. hb .. " " .. hex_encode(key) .. "\n"
    end
  end
  local ok, err = self.store.write_file_atomic(self:path("index.log"), concat(out))
  if not ok then return nil, err end
  self.journal_lines = n
  return true
end

-- The journal stays open for appending (one open per process, not per
-- put); each line is flushed before the put is acknowledged.
function Disk:journal(op, bucket, key)
  local f = self.jf
  if not f then
    local err
    f, err = io.open(self:path("index.log"), "ab")
    if not f then return nil, err end
    self.jf = f
  end
  local ok, werr = f:write(op, " ", hex_encode(bucket), " ", hex_encode(key), "\n")
  local fok, ferr = f:flush()
  if not ok or not fok then
    f:close()
    self.jf = nil
    return nil, werr or ferr
  end
  self.journal_lines = self.journal_lines + 1
  if self.journal_lines > 2 * self.live_count + 10000 then return self:compact() end
  return true
end

-- ------------------------------------------------------------ buckets

function Disk:bucket(name) return self.buckets[name] end

function Disk:create_bucket(name, created, region)
  self.buckets[name] = { name = name, created = created, region = region, keys = {}, objects = {} }
  local ok, err = self:save_buckets()
  if not ok then
    self.buckets[name] = nil
    return nil, err
  end
  return self.buckets[name]
end

function Disk:delete_bucket(name)
  local b = self.buckets[name]
  self.buckets[name] = nil
  local ok, err = self:save_buckets()
  if not ok then
    self.buckets[name] = b
    return nil, err
  end
  for id, u in pairs(self.uploads) do
    if u.bucket == name then self:drop_upload(id) end
  end
  return true
end

function Disk:bucket_list()
  local list = {}
  for _, b in pairs(self.buckets) do list[#list + 1] = b end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- ------------------------------------------------------------ objects

--- Path of an object's bytes.
function Disk:data_path(meta)
  return self:path("objects", meta.data)
end

--- Commit an object whose bytes are whole in `tmp` (a file under tmp/ or
-- any file on the same filesystem, moved into place). `meta` gets
-- bucket, key and data filled in. Returns meta or nil, err.
function Disk:put_object(bucket, key, tmp, meta)
  local b = self.buckets[bucket]
  if not b then
    os.remove(tmp)
    return nil, "NoSuchBucket"
  end
  local id = object_id(bucket, key)
  meta.bucket, meta.key, meta.data = bucket, key, id .. "." .. unique()
  local ok, err = os.rename(tmp, self:path("objects", meta.data))
  if not ok then
    os.remove(tmp)
    return nil, err
  end
  ok, err = self.store.write_json(self:path("objects", id .. ".json"), meta)
  if not ok then
    os.remove(self:path("objects", meta.data))
    return nil, err
  end
  local old = b.objects[key]
  b.objects[key] = meta
  if not old then
    insert_key(b, key)
    self.live_count = self.live_count + 1
    ok, err = self:journal("+", bucket, key)
    if not ok then return nil, err end
  end
  if old and old.data ~= meta.data then os.remove(self:path("objects", old.data)) end
  return meta
end

function Disk:delete_object(bucket, key)
  local b = self.buckets[bucket]
  local old = b and b.objects[key]
  if not old then return true end
  local ok, err = self:journal("-", bucket, key)
  if not ok then return nil, err end
  b.objects[key] = nil
  remove_key(b, key)
  self.live_count = self.live_count - 1
  os.remove(self:path("objects", object_id(bucket, key) .. ".json"))
  os.remove(self:path("objects", old.data))
  return true
end

-- ------------------------------------------------------------ uploads

function Disk:save_upload_index()
  local ids = {}
  for id in pairs(self.uploads) do ids[#ids + 1] = id end
  table.sort(ids)
  return self.store.write_json(self:path("uploads", "index.json"), { ids = ids })
end

function Disk:save_upload(u)
  return self.store.write_json(self:path("uploads", u.id .. ".json"), u)
end

function Disk:create_upload(u)
  u.id = u.id or core.hex_encode(core.sha256(unique() .. tostring(math.random())):sub(1, 24))
  u.parts = u.parts or {}
  local ok, err = self:save_upload(u)
  if not ok then return nil, err end
  self.uploads[u.id] = u
  ok, err = self:save_upload_index()
  if not ok then
    self.uploads[u.id] = nil
    return nil, err
  end
  return u
end

--- Path of a part's bytes.
function Disk:part_path(u, part)
  return self:path("uploads", part.data)
end

--- Record part `n` (bytes whole in tmp) of upload u.
function Disk:put_part(u, n, tmp, part)
  part.data = u.id .. "." .. n .. "." .. unique()
  local ok, err = os.rename(tmp, self:path("uploads", part.data))
  if not ok then
    os.remove(tmp)
    return nil, err
  end
  local key = tostring(n)
  local old = u.parts[key]
  u.parts[key] = part
  ok, err = self:save_upload(u)
  if not ok then
    u.parts[key] = old
    os.remove(self:path("uploads", part.data))
    return nil, err
  end
  if old then os.remove(self:path("uploads", old.data)) end
  return part
end

--- Forget an upload and delete its parts.
function Disk:drop_upload(id)
  local u = self.uploads[id]
  if not u then return true end
  self.uploads[id] = nil
  local ok, err = self:save_upload_index()
  for _, p in pairs(u.parts) do os.remove(self:path("uploads", p.data)) end
  os.remove(self:path("uploads", id .. ".json"))
  if not ok then return nil, err end
  return true
end

return M
