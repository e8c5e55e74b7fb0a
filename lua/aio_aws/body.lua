--- Streaming payloads: response bodies handed to the caller, and request
-- bodies sent without reading them whole.
--
-- Response side: `body.new(stream, {content_length, checksum = {alg,
-- expected}})` wraps an `aio_aws.http` Stream (or `body.from_string(s)` a
-- buffered payload) in a Body, the value of S3 GetObject's `Body` and of
-- every streaming output member:
--
--     local obj = assert(s3:get_object{Bucket = "b", Key = "k"})
--     local b <close> = obj.Body
--     for chunk in b:iter_chunks(65536) do sink(chunk) end
--
-- * `read(n)`: up to n bytes (fewer only at the end), nil at the end,
--   nil, err on failure; `read()` / `read_all()`: the rest ("" at the end).
-- * `iter_chunks(size)`, `iter_lines([keepends])` (lines end at "\n" or
--   "\r\n"; the last may have no end): iterators that raise the error
--   object on failure.
-- * `tell()`: bytes read so far; `close()` (also `<close>`): stops the
--   transfer. A body dropped unread is closed when collected, so its
--   connection is never held (aiobotocore's most reported leak).
-- * At the end the byte count is checked against Content-Length
--   (`IncompleteRead`, with `expected` and `actual`; botocore
--   StreamingBody._verify_content_length) and, when the call validates
--   checksums, the checksum (`FlexibleChecksumError`; botocore
--   StreamingChecksumBody). A connection cut before Content-Length bytes
--   is an `IncompleteRead` too. Errors are sticky: later reads repeat them.
--
-- Request side: `body.source(value)` describes what the caller gave as a
-- streaming input: a string (bytes), an open file (`io.open`, sent from
-- its current position; or any object with `read(n)` and `seek`),
-- `{file = path [, offset] [, length]}`, or an object with only `read(n)`
-- (length unknown: sent chunked, and cannot be resent).
local errors = require "aio_aws.errors"
local checksum = require "aio_aws.checksum"


local M = {}

local Body = {}
Body.__index = Body
Body.__name = "aio_aws.Body"

-- A buffered payload behind the Stream interface (read, read_all, close).
local StringStream = {}
StringStream.__index = StringStream

function StringStream:read(n)
  local s = self._s
  if not s then return nil, errors.new("Closed", "body stream is closed") end
  if self._pos > #s then return nil end
  local chunk = s:sub(self._pos, self._pos + n - 1)
  self._pos = self._pos + #chunk
  return chunk
end

function StringStream:read_all()
  local s = self._s
  if not s then return nil, errors.new("Closed", "body stream is closed") end
  local rest = self._pos == 1 and s or s:sub(self._pos)
  self._pos = #s + 1
  return rest
end

function StringStream:close() self._s = nil end

local function new(stream, opts)
  local self = setmetatable({ _s = stream, _got = 0, _done = false }, Body)
  if opts then
    local len = opts.content_length
    if type(len) == "string" then len = math.tointeger(tonumber(len)) end
    self._len = len
    local ck = opts.checksum
    if ck then
      self._h = checksum.new(ck[1])
      self._alg, self._expected = ck[1], ck[2]
    end
  end
  return self
end

--- Wrap an http Stream. `opts.content_length` (number or header string),
-- `opts.checksum = {alg, expected_base64}`.
function M.new(stream, opts)
  if type(stream) ~= "table" or type(stream.read) ~= "function" then
    error("body.new: expected an aio_aws.http Stream", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("body.new: opts must be a table", 2) end
  return new(stream, opts)
end

--- A Body over an in-memory string (same interface and checks).
function M.from_string(s, opts)
  if type(s) ~= "string" then error("body.from_string: expected a string", 2) end
  return new(setmetatable({ _s = s, _pos = 1 }, StringStream), opts)
end

--- True for a Body.
function M.is(v) return getmetatable(v) == Body end

-- curl's CURLE_PARTIAL_FILE: the connection ended before Content-Length.
local CURLE_PARTIAL_FILE = 18

local function incomplete(self)
  return errors.new("IncompleteRead",
    ("%d read, but total bytes expected is %d."):format(self._got, self._len),
    { expected = self._len, actual = self._got, retryable = true })
end

local function fail(self, err)
  if type(err) == "table" and err.curl_code == CURLE_PARTIAL_FILE and self._len then
    err = incomplete(self)
  end
  self._err = err
  return nil, err
end

-- The end of the payload: Content-Length, then the checksum.
local function finish(self)
  self._done = true
  if self._len and self._got ~= self._len then return fail(self, incomplete(self)) end
  if self._h then
    local got = self._h:b64digest()
    self._h = nil
    if got ~= self._expected then return fail(self, checksum.mismatch(self._expected, got)) end
  end
  return true
end

local function account(self, s)
  self._got = self._got + #s
  if self._h then self._h:update(s) end
end

--- Up to `n` bytes; nil at the end; nil, err on failure.
function Body:read(n)
  if n == nil then return self:read_all() end
  if math.type(n) ~= "integer" or n < 1 then error("Body:read: n must be a positive integer", 2) end
  if self._err then return nil, self._err end
  if self._done then return nil end
  local s, err = self._s:read(n)
  if s then
    account(self, s)
    return s
  end
  if err then return fail(self, err) end
  local ok, ferr = finish(self)
  if not ok then return nil, ferr end
  return nil
end

--- The rest of the payload ("" at the end), or nil, err.
function Body:read_all()
  if self._err then return nil, self._err end
  if self._done then return "" end
  local parts, stream = {}, self._s
  while true do
    -- in pieces, so a failure midway knows how much arrived
    local s, err = stream:read(1 << 20)
    if s then
      account(self, s)
      parts[#parts + 1] = s
    elseif err then
      return fail(self, err)
    else
      break
    end
  end
  local ok, ferr = finish(self)
  if not ok then return nil, ferr end
  return table.concat(parts)
end

--- Iterate over chunks of `size` bytes (default 64 KiB; the last may be
-- shorter). Raises the error object on failure.
function Body:iter_chunks(size)
  size = size or 65536
  if math.type(size) ~= "integer" or size < 1 then error("Body:iter_chunks: size must be a positive integer", 2) end
  return function()
    local s, err = self:read(size)
    if err then error(err, 0) end
    return s
  end
end

--- Iterate over lines, split at "\n" (a "\r" before it belongs to the line
-- end); the last line may lack an end. With `keepends`, lines keep their
-- end. Raises the error object on failure.
function Body:iter_lines(keepends, chunk_size)
  chunk_size = chunk_size or 65536
  if math.type(chunk_size) ~= "integer" or chunk_size < 1 then
    error("Body:iter_lines: chunk_size must be a positive integer", 2)
  end
  local buf, pos, eof = "", 1, false
  return function()
    while true do
      local i = buf:find("\n", pos, true)
      if i then
        local line
        if keepends then
          line = buf:sub(pos, i)
        elseif i > pos and buf:byte(i - 1) == 13 then
          line = buf:sub(pos, i - 2)
        else
          line = buf:sub(pos, i - 1)
        end
        pos = i + 1
        return line
      end
      if eof then
        if pos > #buf then return nil end
        local line = buf:sub(pos)
        pos = #buf + 1
        if not keepends and line:byte(-1) == 13 then line = line:sub(1, -2) end
        return line
      end
      local s, err = self:read(chunk_size)
      if err then error(err, 0) end
      if s then
        buf = pos > #buf and s or (buf:sub(pos) .. s)
        pos = 1
      else
        eof = true
      end
    end
  end
end

--- Bytes read so far.
function Body:tell() return self._got end

--- Stop the transfer (its connection is not reused). Idempotent.
function Body:close()
  local s = self._s
  if s then
    s:close()
    if not self._done and not self._err then
      self._err = errors.new("Closed", "body stream is closed")
    end
  end
end
Body.__close = Body.close
-- the http Stream closes itself when collected; a StringStream holds nothing

function Body.__tostring(self)
  return ("aio_aws.Body(%s bytes read%s)"):format(self._got,
    self._len and (" of " .. self._len) or "")
end

M.Body = Body

-- ------------------------------------------------------------ request side

local CHUNK = 65536

-- readers without seek already sent once (each attempt describes the
-- caller's value anew); weak, so they are not kept alive
local consumed = setmetatable({}, { __mode = "k" })

--- Describe a streaming input (see the module comment).
-- @return `{kind = "string", data}`, `{kind = "path", path, offset, length}`,
--   `{kind = "handle", handle, start, length}`, `{kind = "reader", handle}`;
--   or nil, err (a file that cannot be opened or sized).
function M.source(v)
  local tv = type(v)
  if tv == "string" then return { kind = "string", data = v, length = #v } end
  if tv == "table" and type(rawget(v, "file")) == "string" then
    local path = v.file
    local offset = v.offset or 0
    if math.type(offset) ~= "integer" or offset < 0 then
      error("body: {file = path, offset}: offset must be a non-negative integer", 3)
    end
    if v.length ~= nil and (math.type(v.length) ~= "integer" or v.length < 0) then
      error("body: {file = path, length}: length must be a non-negative integer", 3)
    end
    local f, ferr = io.open(path, "rb")
    if not f then return nil, errors.new("BodyReadError", ferr) end
    local size = f:seek("end")
    f:close()
    if not size then return nil, errors.new("BodyReadError", "cannot size " .. path) end
    if offset > size then return nil, errors.new("BodyReadError", "offset is past the end of " .. path) end
    local length = v.length or (size - offset)
    if offset + length > size then
      return nil, errors.new("BodyReadError", "offset + length is past the end of " .. path)
    end
    return { kind = "path", path = path, offset = offset, length = length }
  end
  local ok, read = pcall(function() return v.read end)
  if ok and (type(read) == "function" or io.type(v) == "file") then
    if io.type(v) == "closed file" then error("body: the file handle is closed", 3) end
    local sok, seek = pcall(function() return v.seek end)
    if sok and seek then
      local start = v:seek()
      local size = start and v:seek("end")
      if start and size then
        v:seek("set", start)
        return { kind = "handle", handle = v, start = start, length = size - start }
      end
    end
    return { kind = "reader", handle = v }
  end
  error("body: a streaming body must be a string, a file handle, an object with read(n), or {file = path}", 3)
end

--- A `read(n)` function over a described source, from its start (each
-- attempt of a request calls it again), and a function closing it.
-- @return read, close; or nil, err
function M.open(src)
  local k = src.kind
  if k == "string" then
    local pos, data = 1, src.data
    return function(n)
      if pos > #data then return nil end
      local s = data:sub(pos, pos + n - 1)
      pos = pos + #s
      return s
    end, function() end
  end
  local f, left
  if k == "path" then
    local ferr
    f, ferr = io.open(src.path, "rb")
    if not f then return nil, errors.new("BodyReadError", ferr) end
    if src.offset > 0 and not f:seek("set", src.offset) then
      f:close()
      return nil, errors.new("BodyReadError", "cannot seek in " .. src.path)
    end
    left = src.length
  elseif k == "handle" then
    f = src.handle
    if not f:seek("set", src.start) then return nil, errors.new("BodyReadError", "cannot rewind the body") end
    left = src.length
  else
    f = src.handle
    if consumed[f] then
      return nil, errors.new("BodyReadError", "the body cannot be rewound to send it again (no seek)")
    end
    consumed[f] = true
  end
  local function read(n)
    if left then
      if left <= 0 then return nil end
      if n > left then n = left end
    end
    local s, err = f:read(n)
    if s == nil and err then return nil, errors.new("BodyReadError", tostring(err)) end
    if s and left then left = left - #s end
    return s
  end
  local function close()
    if k == "path" then f:close() end
  end
  return read, close
end

--- An http `body_source` function over a described source, reading
-- `chunk` bytes at a time, and its close function.
function M.feeder(src, chunk)
  local read, close = M.open(src)
  if not read then return nil, close end
  chunk = chunk or CHUNK
  return function() return read(chunk) end, close
end

--- Feed every byte of a described source to `fn(chunk)` (hashing for
-- the signature or a header checksum), then rewind it.
-- @return true or nil, err
function M.each_chunk(src, fn)
  if src.kind == "string" then
    fn(src.data)
    return true
  end
  if src.kind == "reader" then
    return nil, errors.new("BodyReadError", "a body without seek cannot be hashed before sending")
  end
  local read, close = M.open(src)
  if not read then return nil, close end
  while true do
    local s, err = read(1 << 20)
    if err then close() return nil, err end
    if not s or s == "" then break end
    fn(s)
  end
  close()
  if src.kind == "handle" then src.handle:seek("set", src.start) end
  return true
end

return M
