--- Request bodies of the local S3: a plain body (in memory or spooled to a
-- file by the server) or an aws-chunked upload, copied to a temporary file
-- while its MD5 (the ETag) and, when the client signed it, its SHA-256 are
-- computed; every chunk signature of a signed aws-chunked upload is
-- verified (sigv4-streaming.html in the Amazon S3 API Reference).
--
-- Failures are S3 errors `{code, message, status, fields}` for the caller
-- to render.
local async = require "aio_aws.async"
local checksum = require "aio_aws.checksum"
local core = require "aio_aws.core"
local sigv4 = require "aio_aws.sigv4"

local M = {}

local BLOCK = 1 << 20
local YIELD_EVERY = 16 << 20

local function s3err(code, status, message, fields)
  return { code = code, status = status, message = message, fields = fields }
end
M.s3err = s3err

-- Let other requests run during long file work (the core has no async
-- file I/O; a 5 GiB upload would otherwise hold the loop for seconds).
local function breathe(state, n)
  state.since = (state.since or 0) + n
  if state.since >= YIELD_EVERY then
    state.since = 0
    if async.current() then async.sleep(0) end
  end
end
M.breathe = breathe

-- A reader over a string or a file, with the two reads the chunk parser
-- needs.
local function reader(req)
  if req.body_file then
    local f, err = io.open(req.body_file, "rb")
    if not f then return nil, err end
    return {
      read = function(_, n) return f:read(n) end,
      line = function() return f:read("L") end,
      close = function() f:close() end,
    }
  end
  local s, pos = req.body or "", 1
  return {
    read = function(_, n)
      if pos > #s then return nil end
      local out = s:sub(pos, pos + n - 1)
      pos = pos + #out
      return out
    end,
    line = function()
      if pos > #s then return nil end
      local e = s:find("\n", pos, true) or #s
      local out = s:sub(pos, e)
      pos = e + 1
      return out
    end,
    close = function() end,
  }
end

local function hashers(want_sha256)
  return core.hasher("md5"), want_sha256 and core.hasher("sha256") or nil
end

--- Parse the Authorization header of the seed request: scope region and
-- signature (used when the router's info does not carry them).
local function parse_authorization(auth)
  if type(auth) ~= "string" then return nil end
  local region = auth:match("Credential=[^/,]+/%d+/([^/,]+)/")
  local sig = auth:match("Signature=(%x+)")
  return region, sig
end

local SHA256_LITERALS = {
  ["UNSIGNED-PAYLOAD"] = true,
  [sigv4.STREAMING_PAYLOAD] = true,
  ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"] = true,
}

--- Read the payload of `req` into a new file `tmp`.
-- `opts`: `tmp` (path to create), `info` (router info), `secret_key`,
-- `access_key`, `verify_chunks` (boolean).
-- @return `{size, md5 (raw), md5_hex}` | nil, s3 error
function M.ingest(req, opts)
  local h = req.headers or {}
  local csha = h["x-amz-content-sha256"]
  local hex = csha and #csha == 64 and csha:match("^%x+$")
  if csha and not hex and not SHA256_LITERALS[csha] then
    return nil, s3err("InvalidArgument", 400,
      "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
      { ArgumentName = "x-amz-content-sha256", ArgumentValue = csha })
  end
  local want_md5 = h["content-md5"]
  if want_md5 then
    local raw = core.base64_decode(want_md5)
    if not raw or #raw ~= 16 then
      return nil, s3err("InvalidDigest", 400, "The Content-MD5 you specified was not valid.",
        { ["Content-MD5"] = want_md5 })
    end
  end
  -- flexible checksums ("Checking object integrity"): one algorithm, its
  -- value in a header or (aws-chunked) in the trailer x-amz-trailer names
  local alg, want_ck
  local trailer = h["x-amz-trailer"]
  for _, a in ipairs(checksum.PRIORITY) do
    local name = "x-amz-checksum-" .. a
    if h[name] or (trailer and trailer:lower() == name) then
      if alg then
        return nil, s3err("InvalidRequest", 400, "Expecting a single x-amz-checksum- header. Multiple checksum "
          .. "Types are not allowed.")
      end
      alg, want_ck = a, h[name]
    end
  end
  if want_ck and #want_ck ~= checksum.ALGORITHMS[alg] then
    return nil, s3err("InvalidRequest", 400, "Value for x-amz-checksum-" .. alg .. " header is invalid.")
  end
  opts.checksum_alg = alg
  local res, err
  if csha == sigv4.STREAMING_PAYLOAD or csha == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" then
    res, err = M.dechunk(req, opts, csha == sigv4.STREAMING_PAYLOAD)
  else
    res, err = M.plain(req, opts, hex and hex:lower())
  end
  if not res then return nil, err end
  if want_md5 and core.base64_decode(want_md5) ~= res.md5 then
    os.remove(opts.tmp)
    return nil, s3err("BadDigest", 400, "The Content-MD5 you specified did not match what we received.",
      { ExpectedDigest = want_md5, CalculatedDigest = core.base64_encode(res.md5) })
  end
  if alg then
    want_ck = want_ck or (res.trailers or {})["x-amz-checksum-" .. alg]
    if not want_ck or #want_ck ~= checksum.ALGORITHMS[alg] then
      os.remove(opts.tmp)
      return nil, s3err("InvalidRequest", 400, "Value for x-amz-checksum-" .. alg .. " trailing header is invalid.")
    end
    if want_ck ~= res.checksum then
      os.remove(opts.tmp)
      return nil, s3err("BadDigest", 400, "The " .. alg:upper() .. " you specified did not match the calculated checksum.")
    end
    res.checksum = { alg = alg, value = want_ck }
  else
    res.checksum = nil
  end
  return res
end

local function sha_mismatch(tmp, want, got)
  os.remove(tmp)
  return nil, s3err("XAmzContentSHA256Mismatch", 400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
    { ClientComputedContentSHA256 = want, S3ComputedContentSHA256 = got })
end

--- A plain payload; `want_sha` is the hex SHA-256 the client signed, if any.
function M.plain(req, opts, want_sha)
  local tmp = opts.tmp
  if not req.body_file then
    local body = req.body or ""
    if want_sha then
      local got = core.sha256_hex(body)
      if got ~= want_sha then return sha_mismatch(tmp, want_sha, got) end
    end
    local f, err = io.open(tmp, "wb")
    if not f then return nil, s3err("InternalError", 500, "cannot write: " .. tostring(err)) end
    local ok, werr = f:write(body)
    f:close()
    if not ok then
      os.remove(tmp)
      return nil, s3err("InternalError", 500, "cannot write: " .. tostring(werr))
    end
    local md5 = core.md5(body)
    return { size = #body, md5 = md5, checksum = opts.checksum_alg and checksum.compute(opts.checksum_alg, body) }
  end
  -- spooled: hash it in blocks, then move it (copy only across filesystems)
  local f, err = io.open(req.body_file, "rb")
  if not f then return nil, s3err("InternalError", 500, "cannot read the request body: " .. tostring(err)) end
  local hm, hs = hashers(want_sha)
  local hc = opts.checksum_alg and checksum.new(opts.checksum_alg)
  local size, st = 0, {}
  while true do
    local chunk = f:read(BLOCK)
    if not chunk then break end
    hm:update(chunk)
    if hs then hs:update(chunk) end
    if hc then hc:update(chunk) end
    size = size + #chunk
    breathe(st, #chunk)
  end
  f:close()
  if want_sha then
    local got = core.hex_encode(hs:digest())
    if got ~= want_sha then return sha_mismatch(tmp, want_sha, got) end
  end
  local moved = os.rename(req.body_file, tmp)
  if not moved then
    local okc, cerr = M.copy_file(req.body_file, tmp, 0, size)
    if not okc then return nil, s3err("InternalError", 500, "cannot write: " .. tostring(cerr)) end
  end
  return { size = size, md5 = hm:digest(), checksum = hc and hc:b64digest() }
end

--- Copy `length` bytes of `src` from `offset` to a new file `dst`
-- (appending when `append`). Returns true or nil, err.
function M.copy_file(src, dst, offset, length, append, hasher)
  local f, err = io.open(src, "rb")
  if not f then return nil, err end
  local o
  o, err = io.open(dst, append and "ab" or "wb")
  if not o then
    f:close()
    return nil, err
  end
  f:seek("set", offset or 0)
  local left, st = length, {}
  while left == nil or left > 0 do
    local n = left and math.min(BLOCK, left) or BLOCK
    local chunk = f:read(n)
    if not chunk then break end
    local ok, werr = o:write(chunk)
    if not ok then
      f:close(); o:close()
      return nil, werr
    end
    if hasher then hasher:update(chunk) end
    if left then left = left - #chunk end
    breathe(st, #chunk)
  end
  f:close()
  local ok, cerr = o:close()
  if not ok then return nil, cerr end
  if left and left > 0 then return nil, src .. " is shorter than expected" end
  return true
end

local function incomplete(msg)
  return s3err("IncompleteBody", 400, msg or "The request body terminated unexpectedly")
end

--- An aws-chunked payload: `hex-size[;chunk-signature=sig]\r\n data \r\n`
-- ... `0[;chunk-signature=sig]\r\n` [trailers] `\r\n`. With `signed`, each
-- chunk signature must equal the next link of the chain that starts at
-- the seed request's signature (sigv4-streaming.html), or the upload
-- fails with 403 SignatureDoesNotMatch.
function M.dechunk(req, opts, signed)
  local h = req.headers or {}
  local tmp = opts.tmp
  local decoded = tonumber(h["x-amz-decoded-content-length"] or "")
  if not decoded then
    return nil, s3err("MissingContentLength", 411, "You must provide the Content-Length HTTP header.",
      { ["x-amz-decoded-content-length"] = "" })
  end
  local chunker
  if signed then
    local info = opts.info or {}
    local st = info.streaming
    if st and st.chunker then
      -- the router's verified seed (emulator/auth.lua verify: info.streaming)
      chunker = st.chunker
    elseif opts.verify_chunks and not (info.access_key and not info.kind and not st) then
      -- (a router that parsed a signature without verifying it, `kind`
      -- missing, runs without auth: nothing to check then)
      st = st or info
      local region, seed = parse_authorization(h.authorization)
      region, seed = st.region or region, st.seed_signature or seed
      local amz_date = st.amz_date or h["x-amz-date"]
      if seed then
        local ok, c = false, nil
        if region and amz_date and opts.secret_key then
          ok, c = pcall(sigv4.chunked, { access_key = opts.access_key or "x", secret_key = opts.secret_key },
            { region = region, service = "s3", time = amz_date }, seed:lower())
        end
        if not ok then
          return nil, s3err("AccessDenied", 403, "aws-chunked upload without a usable seed signature")
        end
        chunker = c
      end
      -- no seed at all: an unsigned request, which the router refuses
      -- before it gets here unless it runs without auth
    end
  end
  local r, rerr = reader(req)
  if not r then return nil, s3err("InternalError", 500, "cannot read the request body: " .. tostring(rerr)) end
  local out, oerr = io.open(tmp, "wb")
  if not out then
    r:close()
    return nil, s3err("InternalError", 500, "cannot write: " .. tostring(oerr))
  end
  local hm = core.hasher("md5")
  local hc = opts.checksum_alg and checksum.new(opts.checksum_alg)
  local trailers = {}
  local size, st = 0, {}
  local function fail(e)
    r:close(); out:close(); os.remove(tmp)
    if chunker then chunker:close() end
    return nil, e
  end
  while true do
    local line = r:line()
    if not line or line:sub(-2) ~= "\r\n" then return fail(incomplete()) end
    local hex, ext = line:match("^(%x+)(.-)\r\n$")
    if not hex or #hex > 12 then return fail(incomplete("malformed aws-chunked frame")) end
    local n = tonumber(hex, 16)
    local sig = ext:match("^;chunk%-signature=(%x+)$")
    if chunker and not sig then return fail(incomplete("aws-chunked frame without a chunk-signature")) end
    local data = n > 0 and r:read(n) or ""
    if #data ~= n then return fail(incomplete()) end
    if chunker then
      local want = chunker:sign_chunk(data)
      if not core.secure_equals(want, sig:lower()) then
        return fail(s3err("SignatureDoesNotMatch", 403,
          "The request signature we calculated does not match the signature you provided. Check your key and signing method."))
      end
    end
    if n == 0 then
      -- final chunk: optional trailers (x-amz-checksum-*: ...) then CRLF
      while true do
        local tl = r:line()
        if tl == nil or tl == "\r\n" then break end
        if tl:sub(-2) ~= "\r\n" then return fail(incomplete()) end
        local name, value = tl:match("^([^:]+):%s*(.-)%s*\r\n$")
        if name then trailers[name:lower()] = value end
      end
      break
    end
    hm:update(data)
    if hc then hc:update(data) end
    local ok, werr = out:write(data)
    if not ok then return fail(s3err("InternalError", 500, "cannot write: " .. tostring(werr))) end
    size = size + n
    if size > decoded then break end
    if r:read(2) ~= "\r\n" then return fail(incomplete("malformed aws-chunked frame")) end
    breathe(st, n)
  end
  if size ~= decoded then
    return fail(incomplete("You did not provide the number of bytes specified by the x-amz-decoded-content-length HTTP header"))
  end
  r:close()
  if chunker then chunker:close() end
  local ok, cerr = out:close()
  if not ok then
    os.remove(tmp)
    return nil, s3err("InternalError", 500, "cannot write: " .. tostring(cerr))
  end
  return { size = size, md5 = hm:digest(), checksum = hc and hc:b64digest(), trailers = trailers }
end

return M
