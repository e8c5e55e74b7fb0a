--- Crash-safe files for the local endpoint's state (contract §3).
--
-- Every write goes to `path .. ".tmp.<random>"` first and is then renamed over
-- `path`: rename(2) is atomic within a file system (POSIX rename, "If newpath
-- already exists, it shall be atomically replaced"), so a reader or a restart
-- after a crash sees either the old or the new content, never half of it.
-- No fsync: a power loss may lose the last writes, a killed process may not.
--
-- JSON goes through aio_aws.model.json (sorted keys, exact 64-bit integers),
-- so state files are deterministic and ids / millisecond times survive.
-- Runtime failures return `nil, err` (a string); misuse raises.
local json = require "aio_aws.model.json"

local M = {}

local ok_lfs, lfs = pcall(require, "lfs")

local function check_path(path, fname)
  if type(path) ~= "string" or path == "" then
    error("store." .. fname .. ": path must be a non-empty string", 3)
  end
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local seeded = false
local function tmp_name(path)
  if not seeded then
    -- Two processes sharing a data dir must not pick the same temporary name.
    math.randomseed(os.time(), math.floor((os.clock() * 1e6) % 2^31))
    seeded = true
  end
  return string.format("%s.tmp.%08x%08x", path, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

--- Create a directory and its parents (like `mkdir -p`).
-- @return true, or nil, err
function M.mkdir_p(path)
  check_path(path, "mkdir_p")
  if ok_lfs then
    local prefix = path:sub(1, 1) == "/" and "/" or ""
    local cur = prefix
    for part in path:gmatch("[^/]+") do
      cur = (cur == "" or cur == "/") and cur .. part or cur .. "/" .. part
      if lfs.attributes(cur, "mode") ~= "directory" then
        local ok, err = lfs.mkdir(cur)
        if not ok and lfs.attributes(cur, "mode") ~= "directory" then
          return nil, "mkdir " .. cur .. ": " .. tostring(err)
        end
      end
    end
    return true
  end
  -- Fallback without LuaFileSystem: blocking, but only used at start-up and
  -- when a bucket or similar is created.
  local ok = os.execute("mkdir -p " .. quote(path) .. " 2>/dev/null")
  if not ok then return nil, "mkdir " .. path .. ": failed" end
  return true
end

--- Replace `path` with `data` atomically.
-- @return true, or nil, err
function M.write_file_atomic(path, data)
  check_path(path, "write_file_atomic")
  if type(data) ~= "string" then error("store.write_file_atomic: data must be a string", 2) end
  local tmp = tmp_name(path)
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, tostring(werr or cerr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- Write `value` as JSON to `path` atomically.
-- @return true, or nil, err
function M.write_json(path, value)
  check_path(path, "write_json")
  local ok, text = pcall(json.encode, value)
  if not ok then error("store.write_json: " .. tostring(text), 2) end
  return M.write_file_atomic(path, text)
end

--- Read a whole file.
-- @return data | nil (missing) | nil, err
function M.read_file(path)
  check_path(path, "read_file")
  local f, err, code = io.open(path, "rb")
  if not f then
    if code == 2 then return nil end -- ENOENT: missing is not an error
    return nil, err
  end
  local data, rerr = f:read("a")
  f:close()
  if not data then return nil, rerr end
  return data
end

--- Read JSON from `path`.
-- @return value | nil (missing) | nil, err (unreadable or corrupt)
function M.read_json(path)
  local data, err = M.read_file(path)
  if not data then return nil, err end
  local value, jerr = json.decode(data)
  if value == nil then return nil, path .. ": " .. tostring(jerr) end
  return value
end

--- Names in a directory (without "." and ".."), sorted; temporary files of
-- unfinished writes are left out.
-- @return list | nil, err
function M.list_dir(path)
  check_path(path, "list_dir")
  local out = {}
  if ok_lfs then
    if lfs.attributes(path, "mode") ~= "directory" then return nil, path .. ": not a directory" end
    for name in lfs.dir(path) do
      if name ~= "." and name ~= ".." and not name:find("%.tmp%.%x+$") then out[#out + 1] = name end
    end
  else
    local p = io.popen("ls -A " .. quote(path) .. " 2>/dev/null")
    if not p then return nil, path .. ": cannot list" end
    for name in p:lines() do
      if not name:find("%.tmp%.%x+$") then out[#out + 1] = name end
    end
    local ok = p:close()
    if not ok then return nil, path .. ": not a directory" end
  end
  table.sort(out)
  return out
end

--- Remove a file (missing is fine).
-- @return true | nil, err
function M.remove(path)
  check_path(path, "remove")
  local ok, err, code = os.remove(path)
  if ok or code == 2 then return true end
  return nil, err
end

return M
