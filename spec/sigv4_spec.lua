-- SigV4 signer (csrc/sigv4.c via lua/aio_aws/sigv4.lua) against data that
-- nobody in this project computed:
--   * the AWS test suites and published S3 signatures in
--     ../shared/testdata/sigv4/ (read in place, never copied; see its
--     README for formats and errata), stage by stage: canonical request,
--     string to sign and signature are separate assertions;
--   * the project's own cases in spec/sigv4/ (expected values computed by
--     botocore, see spec/sigv4/README.md);
--   * botocore itself on a few hundred seeded random requests
--     (spec/support/botocore_sign.py, Debian's /usr/bin/python3).
local cjson = require("cjson")
local sigv4 = require("aio_aws.sigv4")

local spec_dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
local root = spec_dir:match("^(.*)/spec$") or "."
local shared = root .. "/../shared/testdata/sigv4"

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- luassert's assert returns more than its first argument: use this where
-- the value is passed on.
local function must(v, msg)
  if not v then error(msg or "missing value", 2) end
  return v
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Expected files may or may not end in "\n"; the strings they hold never do.
local function expected(path)
  local s = must(readfile(path), "missing " .. path)
  return (s:gsub("\n+$", ""))
end

-- Sorted list of paths printed by find(1) (no lfs: not a project dependency).
local function find(dir, args)
  local p = must(io.popen("find '" .. dir .. "' " .. args .. " 2>/dev/null | LC_ALL=C sort"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function basename(path) return path:match("([^/]+)/*$") end
local function dirname(path) return path:match("^(.*)/[^/]+/*$") end

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The query of a URL as a sorted list of decoded "name=value" strings, to
-- compare two URLs whose parameters come in different orders.
local function query_set(url)
  local q = url:match("%?(.*)$") or ""
  local out = {}
  for piece in q:gmatch("[^&]+") do
    local k, v = piece:match("^([^=]*)=?(.*)$")
    out[#out + 1] = pct_decode(k) .. "=" .. pct_decode(v)
  end
  table.sort(out)
  return out
end

-- An HTTP request file of the suites (.req, request.txt, *-signed-request.txt):
-- "METHOD target HTTP/1.1", "Name:value" lines (a line starting with
-- whitespace continues the previous value: obs-fold, kept raw so that the
-- signer has to fold it), a blank line, the body.
local function parse_http(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  if not head then head, body = text:gsub("\n+$", ""), nil end
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  -- (smithy-rs's double-url-encode/request.txt has no "HTTP/1.1")
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
  if not method then method, target = lines[1]:match("^(%S+) (.*)$") end
  local headers = {}
  for i = 2, #lines do
    local line = lines[i]
    if line:match("^[ \t]") and #headers > 0 then
      headers[#headers][2] = headers[#headers][2] .. "\n" .. line
    elseif line ~= "" then
      local name, value = line:match("^([^:]+):(.*)$")
      headers[#headers + 1] = { name, value }
    end
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  return { method = method, path = path, query = query, headers = headers, body = body }
end

local function header_of(req, name)
  for _, h in ipairs(req.headers) do
    if h[1]:lower() == name then return (h[2]:gsub("^%s+", "")) end
  end
end

local function signature_of(authz)
  return authz:match("Signature=(%x+)")
end

-- One case: the three stages, each its own assertion, plus what the case
-- offers beyond them.
local function check(result, debug, want)
  if want.canonical_request then
    assert.are.equal(want.canonical_request, debug.canonical_request, "canonical request")
  end
  if want.string_to_sign then
    assert.are.equal(want.string_to_sign, debug.string_to_sign, "string to sign")
  end
  if want.signature then
    assert.are.equal(want.signature, debug.signature, "signature")
  end
  if want.authorization then
    assert.are.equal(want.authorization, result.headers.authorization, "Authorization header")
  end
  if want.url then
    assert.are.equal(want.url, result.url, "presigned URL")
  end
  if want.url_params then
    assert.are.same(want.url_params, query_set(result.url), "presigned URL parameters")
  end
end

-- The same from files: canonical request, string to sign, and the
-- Authorization value that carries the signature.
local function check_files(result, debug, creq_file, sts_file, authz)
  check(result, debug, {
    canonical_request = expected(creq_file),
    string_to_sign = expected(sts_file),
    signature = signature_of(authz),
    authorization = authz,
  })
end

local SUITE_CREDS = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

local function with_token(creds, token)
  return { access_key = creds.access_key, secret_key = creds.secret_key, session_token = token }
end

local have_shared = exists(shared .. "/README.md")

describe("sigv4", function()
  if not have_shared then
    pending("../shared/testdata/sigv4 not found (" .. shared .. "): only the project's own cases in spec/sigv4/ run")
  end

  -- The original AWS Signature Version 4 Test Suite: .req -> .creq, .sts, .authz.
  describe("aws-sig-v4-test-suite", function()
    if not have_shared then return end
    local dir = shared .. "/aws-sig-v4-test-suite"
    local sts_token = must(readfile(dir .. "/post-sts-token/readme.txt"))
      :match("X%-Amz%-Security%-Token:%s*(%S+)%s*$")
    local reqs = find(dir, "-name '*.req'")
    it("has all 34 cases", function()
      assert.are.equal(34, #reqs)
    end)
    for _, reqfile in ipairs(reqs) do
      local base = reqfile:gsub("%.req$", "")
      local name = basename(dirname(reqfile))
      it(name, function()
        local req = parse_http(must(readfile(reqfile)))
        local creds, opts = SUITE_CREDS, { region = "us-east-1", service = "service", time = "20150830T123600Z" }
        if name == "get-vanilla-with-session-token" then
          -- The .req lacks the token; it is passed as a credential (README).
          creds = with_token(SUITE_CREDS, "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")
        elseif name == "post-sts-header-before" or name == "post-sts-header-after" then
          creds = with_token(SUITE_CREDS, sts_token)
          opts.omit_session_token = (name == "post-sts-header-after")
        end
        local result, debug = sigv4.sign(req, creds, opts)
        -- Erratum: get-vanilla-with-session-token.sreq shows the get-vanilla
        -- signature; .authz is right, so .authz is what this compares.
        check_files(result, debug, base .. ".creq", base .. ".sts", expected(base .. ".authz"))
      end)
    end
  end)

  -- The CRT suite: context.json + request.txt, header and query variants.
  describe("aws-signing-test-suite/v4", function()
    if not have_shared then return end
    local dir = shared .. "/aws-signing-test-suite/v4"
    local cases = find(dir, "-mindepth 1 -maxdepth 1 -type d")
    it("has all 38 cases", function()
      assert.are.equal(38, #cases)
    end)
    for _, case in ipairs(cases) do
      local name = basename(case)
      for _, variant in ipairs({ "header", "query" }) do
        it(name .. " (" .. variant .. ")", function()
          local ctx = cjson.decode(must(readfile(case .. "/context.json")))
          local req = parse_http(must(readfile(case .. "/request.txt")))
          local cred = ctx.credentials
          local creds = { access_key = cred.access_key_id, secret_key = cred.secret_access_key,
                          session_token = cred.token }
          local opts = {
            region = ctx.region, service = ctx.service, time = ctx.timestamp,
            normalize_path = ctx.normalize, sign_body = ctx.sign_body,
            omit_session_token = ctx.omit_session_token == true,
          }
          if variant == "query" then opts.presign_expires = ctx.expiration_in_seconds end
          local result, debug = sigv4.sign(req, creds, opts)
          local signed = parse_http(must(readfile(case .. "/" .. variant .. "-signed-request.txt")))
          local want = {
            canonical_request = expected(case .. "/" .. variant .. "-canonical-request.txt"),
            string_to_sign = expected(case .. "/" .. variant .. "-string-to-sign.txt"),
            signature = expected(case .. "/" .. variant .. "-signature.txt"),
          }
          if variant == "header" then
            want.authorization = header_of(signed, "authorization")
          else
            want.url_params = query_set("?" .. signed.query)
          end
          check(result, debug, want)
        end)
      end
    end
  end)

  pending("aws-signing-test-suite/v4a: SigV4a (ECDSA) is out of scope")

  -- smithy-rs's double-encoding additions (see the README for their inputs).
  describe("smithy-rs-extras/v4", function()
    if not have_shared then return end
    local dir = shared .. "/smithy-rs-extras/v4"
    it("double-url-encode", function()
      local req = parse_http(must(readfile(dir .. "/double-url-encode/request.txt")))
      local signed = parse_http(must(readfile(dir .. "/double-url-encode/header-signed-request.txt")))
      local result, debug = sigv4.sign(req, SUITE_CREDS,
        { region = "us-east-2", service = "lambda", time = "20210511T154045Z" })
      check_files(result, debug, dir .. "/double-url-encode/header-canonical-request.txt",
                  dir .. "/double-url-encode/header-string-to-sign.txt", header_of(signed, "authorization"))
    end)
    it("double-encode-path (canonical request only, per the README)", function()
      local req = parse_http(must(readfile(dir .. "/double-encode-path/request.txt")))
      local result, debug = sigv4.sign(req, SUITE_CREDS,
        { region = "us-east-1", service = "service", time = "20210511T154045Z" })
      check(result, debug, {
        canonical_request = expected(dir .. "/double-encode-path/header-canonical-request.txt"),
      })
    end)
  end)

  -- s3/, generated/ and spec/sigv4/: the reference-signer JSON format.
  local function body_of(b)
    if b == nil or b == cjson.null then return nil end
    if type(b) == "string" then return b end
    if b.hex then return (b.hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
    if b.base64 then return must(require("aio_aws.core").base64_decode(b.base64)) end
    if b["repeat"] then return string.rep(b["repeat"], b.count) end
    error("unknown body form")
  end

  local function json_case(file)
    local case = cjson.decode(must(readfile(file)))
    local r = case.request
    local cred = r.credentials
    local request = {
      method = r.method, host = r.host, path = r.path, scheme = r.scheme,
      query = r.query ~= "" and r.query or nil, headers = r.headers, body = body_of(r.body),
    }
    local credentials = { access_key = cred.accessKeyId, secret_key = cred.secretAccessKey,
                          session_token = cred.sessionToken }
    local options = {
      region = r.region, service = r.service, time = r.date or r.epoch,
      s3 = r.s3, normalize_path = r.normalizePath, double_encode = r.doubleEncode,
      sign_body = r.signBody, unsigned_payload = r.unsignedPayload,
      omit_session_token = r.omitSessionToken,
      presign_expires = r.mode == "presign" and (r.expires or 3600) or nil,
    }
    return case, request, credentials, options
  end

  local function run_json(file)
    local case, request, credentials, options = json_case(file)
    local e = case.expected
    local result, debug = sigv4.sign(request, credentials, options)
    local want = {
      canonical_request = e.canonical_request,
      string_to_sign = e.string_to_sign,
      signature = e.signature,
      authorization = e.authorization,
    }
    if e.url then
      -- botocore orders the parameters differently from the S3 docs; the
      -- docs' URL (s3/) is compared whole, botocore's as a set.
      if case.request.mode == "presign" and (case.verified_by or {})[1]
         and tostring(case.verified_by[1]):match("^botocore") then
        want.url_params = query_set(e.url)
        assert.are.equal(e.url:match("^[^?]*"), result.url:match("^[^?]*"), "URL before the query")
      else
        want.url = e.url
      end
    end
    if e.signed_query then
      local list = {}
      for k, v in pairs(e.signed_query) do list[#list + 1] = k .. "=" .. v end
      table.sort(list)
      want.url_params = list
    end
    check(result, debug, want)

    if e.chunks then
      -- aws-chunked: every chunk's string to sign, signature and header,
      -- chained from the seed signature, and the encoded length.
      local signer = sigv4.chunked(credentials, options, debug)
      local total, decoded = 0, 0
      for i, chunk in ipairs(e.chunks) do
        local data = string.rep(chunk.fill_byte, chunk.size)
        local framed, sig = signer:frame(data)
        assert.are.equal(chunk.signature, sig, "chunk " .. i .. " signature")
        assert.are.equal(chunk.chunk_header, framed:match("^(.-)\r\n"), "chunk " .. i .. " header")
        assert.are.equal(chunk.chunk_header .. "\r\n" .. data .. "\r\n", framed, "chunk " .. i .. " framing")
        total, decoded = total + #framed, decoded + chunk.size
      end
      -- The string to sign, from a second signer over the same chain.
      local again = sigv4.chunked(credentials, options, debug.signature)
      for i, chunk in ipairs(e.chunks) do
        local sig, sts = again:sign_chunk(string.rep(chunk.fill_byte, chunk.size))
        assert.are.equal(chunk.string_to_sign, sts, "chunk " .. i .. " string to sign")
        assert.are.equal(chunk.signature, sig, "chunk " .. i .. " signature (sign_chunk)")
      end
      assert.are.equal(e.body_total_length, total, "encoded length")
      assert.are.equal(e.body_total_length, sigv4.chunked_length(decoded, e.chunks[1].size),
        "chunked_length")
    end
  end

  for _, folder in ipairs({ "s3", "generated" }) do
    describe(folder, function()
      if not have_shared then return end
      local files = find(shared .. "/" .. folder, "-name '*.json'")
      it("has its cases", function()
        assert.are.equal(folder == "s3" and 6 or 18, #files)
      end)
      for _, file in ipairs(files) do
        it(basename(file):gsub("%.json$", ""), function() run_json(file) end)
      end
    end)
  end

  describe("spec/sigv4 (the project's own cases)", function()
    local files = find(spec_dir .. "/sigv4", "-name '*.json'")
    it("exist", function() assert.is_true(#files > 0) end)
    for _, file in ipairs(files) do
      it(basename(file):gsub("%.json$", ""), function() run_json(file) end)
    end
  end)
end)

-- botocore on random requests ------------------------------------------------

local PYTHON = "/usr/bin/python3"
local BOTOCORE = root .. "/spec/support/botocore_sign.py"

local function have_botocore()
  return os.execute(PYTHON .. " -c 'import botocore.auth' >/dev/null 2>&1") == true
end

-- Run botocore_sign.py over a list of cases.
local function botocore_sign(cases)
  local input, output = os.tmpname(), os.tmpname()
  local f = must(io.open(input, "wb"))
  f:write(cjson.encode(cases))
  f:close()
  local ok = os.execute(PYTHON .. " '" .. BOTOCORE .. "' < '" .. input .. "' > '" .. output .. "'")
  local out = readfile(output)
  os.remove(input)
  os.remove(output)
  assert(ok, "botocore_sign.py failed")
  return cjson.decode(out)
end

-- A deterministic generator (Lua 5.4's xoshiro256** with a fixed seed).
local function generator(seed)
  math.randomseed(seed)
  local R = math.random
  local function pick(t) return t[R(#t)] end

  local UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
  -- Path pieces: spaces, unicode, reserved characters, '%' (valid and
  -- invalid escapes), dot segments. No '?' or '#': they end a path in a
  -- URL, and botocore reads the path out of one.
  local SEG = { "a", "b", "key", "Dir", "x y", " lead", "trail ", "ü", "ሴ", "😀", "~", "-", "_",
                ".", "..", "%", "%41", "%2F", "%zz", "+", "=", "&", ";", ":", "@", "!", "$", "'",
                "(", ")", "*", ",", "[", "]", "a.b", "..a", "arn:aws:lambda:us-east-1:1:function:f" }
  local QNAME = { "a", "b", "A", "Z", "key", "x y", "ü", "a+b", "a=b", "%", "", "prefix",
                  "max-keys", "~t", "list-type", "Param-3", "uploads", "x/y", "ሴ", "&" }
  local QVAL = { "", "1", "v", "Value1", "a b", "a+b", "c/d", "=", "&", "%", "%41", "~", "ü", "😀",
                 "logs/2024 01/", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "$LATEST", "*" }
  -- Header names: none of Host, Date (botocore then signs Date instead of
  -- X-Amz-Date), the signer-owned x-amz-* ones, or those the signers skip
  -- differently (hop-by-hop: this signer, like aws-c-auth, leaves them
  -- unsigned; botocore signs them).
  local HNAME = { "X-Amz-Meta-A", "x-amz-meta-b", "Content-Type", "Content-MD5", "X-Custom",
                  "My-Header1", "Range", "X-Amz-Target", "If-Match", "Cache-Control", "x-amz-acl" }
  local HVAL = { "", "v", "value1", "  lead", "trail  ", "a   b\tc", "\"a   b   c\"", "bytes=0-9",
                 "application/json", "text/plain; charset=utf-8", "DynamoDB_20120810.PutItem",
                 "a,b", " , ", "x=1;y=2" }
  local HOST = { "example.amazonaws.com", "s3.us-east-1.amazonaws.com", "bucket.s3.amazonaws.com",
                 "Mixed.Case.Example.COM", "localhost:4566", "127.0.0.1:9000", "[::1]:8443" }

  local function path()
    local segs = {}
    for i = 1, R(0, 5) do segs[i] = R(6) == 1 and "" or (pick(SEG) .. (R(2) == 1 and pick(SEG) or "")) end
    return "/" .. table.concat(segs, "/") .. (R(4) == 1 and "/" or "")
  end

  -- Wire form of a decoded string, written here (not with the code under
  -- test): escapes in random hex case, unreserved bytes sometimes escaped
  -- anyway, and some sub-delimiters left raw.
  local function wire(s, is_name)
    return (s:gsub(".", function(ch)
      local b = ch:byte()
      local hex = string.format(R(2) == 1 and "%%%02X" or "%%%02x", b)
      if UNRESERVED:find(ch, 1, true) then
        return R(10) == 1 and hex or ch
      elseif ch:match("[+:@!$'()*,;/?]") or (ch == "=" and not is_name) then
        return R(2) == 1 and ch or hex
      end
      return hex
    end))
  end

  local function hexbody(n)
    local t = {}
    for i = 1, n do t[i] = string.format("%02x", R(0, 255)) end
    return table.concat(t)
  end

  return function()
    local presign = R(3) == 1
    local s3 = R(2) == 1
    local service = s3 and (R(5) == 1 and "s3-object-lambda" or "s3")
                       or pick({ "dynamodb", "execute-api", "lambda", "service", "sqs" })
    local case = {
      method = pick({ "GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "get" }),
      host = pick(HOST), path = path(), region = pick({ "us-east-1", "eu-west-3", "ap-southeast-2" }),
      service = service, s3 = s3, epoch = R(946684800, 2114380800),
      credentials = { accessKeyId = "AKID" .. R(100000, 999999),
                      secretAccessKey = hexbody(20) },
      mode = presign and "presign" or "header",
    }
    case.scheme = case.host:match(":%d+$") and R(2) == 1 and "http" or "https"
    if R(5) <= 2 then
      case.credentials.sessionToken = "FQoG" .. hexbody(R(8, 40)) .. "/+=="
    end
    if presign then case.expires = R(1, 604800) end

    -- Query: presigned requests get unique names (botocore's presigner
    -- folds the query into a dict).
    local query, seen = {}, {}
    for _ = 1, R(0, 6) do
      local k, v = pick(QNAME), pick(QVAL)
      if not (presign and seen[k]) then
        seen[k] = true
        query[#query + 1] = { k, v }
      end
    end
    case.query = query

    local headers = {}
    for _ = 1, R(0, 5) do
      local name = pick(HNAME)
      if R(3) == 1 then name = name:upper() elseif R(3) == 1 then name = name:lower() end
      headers[#headers + 1] = { name, pick(HVAL) }
    end
    case.headers = headers

    -- Bodies only in header mode: botocore's presigner moves a body into
    -- the query string.
    if not presign and R(3) > 1 then case.body = { hex = hexbody(R(0, 300)) } end
    if not presign and not s3 and R(4) == 1 then case.signBody = true end
    -- (botocore signs the payload over http whatever it is told)
    if R(6) == 1 and case.scheme == "https" then case.unsignedPayload = true end

    -- The same request in one of the forms sign() accepts.
    local request = { method = case.method, headers = headers }
    local qform = R(3)
    local qvalue
    if qform == 1 then
      local parts = {}
      for i, p in ipairs(query) do parts[i] = wire(p[1], true) .. "=" .. wire(p[2]) end
      qvalue = table.concat(parts, "&")
    elseif qform == 2 or #query == 0 then
      qvalue = query
    else
      local map, unique = {}, true
      for _, p in ipairs(query) do
        if map[p[1]] == nil then map[p[1]] = p[2]
        elseif type(map[p[1]]) == "table" then table.insert(map[p[1]], p[2])
        else map[p[1]] = { map[p[1]], p[2] } end
      end
      for _, v in pairs(map) do if type(v) == "table" then unique = false end end
      -- A map loses the order of repeated values only across names, which
      -- the canonical sort ignores; a list of values keeps theirs.
      qvalue = (unique or R(2) == 1) and map or query
    end
    if R(2) == 1 and type(qvalue) == "string" then
      request.url = case.scheme .. "://" .. case.host .. case.path .. (qvalue ~= "" and "?" .. qvalue or "")
    else
      request.scheme, request.host, request.path, request.query = case.scheme, case.host, case.path, qvalue
    end
    if R(3) == 1 and #headers > 0 then
      -- map form, a list of values for repeated names (order kept)
      local map = {}
      for _, h in ipairs(headers) do
        local k = h[1]:lower()
        if map[k] == nil then map[k] = h[2]
        elseif type(map[k]) == "table" then table.insert(map[k], h[2])
        else map[k] = { map[k], h[2] } end
      end
      request.headers = map
    end
    if case.body then
      request.body = case.body.hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    end
    local options = {
      region = case.region, service = case.service, s3 = s3,
      time = R(2) == 1 and case.epoch or os.date("!%Y-%m-%dT%H:%M:%SZ", case.epoch),
      presign_expires = case.expires, sign_body = case.signBody,
      unsigned_payload = case.unsignedPayload,
    }
    local credentials = { access_key = case.credentials.accessKeyId,
                          secret_key = case.credentials.secretAccessKey,
                          session_token = case.credentials.sessionToken }
    return case, request, credentials, options
  end
end

describe("sigv4 against botocore on random requests", function()
  if not have_botocore() then
    pending("Debian's botocore (" .. PYTHON .. ", python3-botocore) is not installed")
    return
  end
  local N = 400
  local next_case = generator(20240115)
  local cases, mine = {}, {}
  for i = 1, N do
    local case, request, credentials, options = next_case()
    cases[i] = case
    mine[i] = { request, credentials, options }
  end
  -- Give the other specs back an unpredictable generator (ports, names).
  math.randomseed()
  local theirs = botocore_sign(cases)

  it("signs every request", function()
    assert.are.equal(N, #theirs)
  end)
  for i = 1, N do
    local case = cases[i]
    local label = string.format("#%d %s %s %s%s", i, case.mode, case.service, case.method,
                                case.s3 and " (s3)" or "")
    it(label, function()
      local result, debug = sigv4.sign(table.unpack(mine[i]))
      local want = theirs[i]
      assert.are.equal(want.canonical_request, debug.canonical_request, "canonical request")
      assert.are.equal(want.string_to_sign, debug.string_to_sign, "string to sign")
      assert.are.equal(want.signature, debug.signature, "signature")
      if case.mode == "presign" then
        assert.are.equal(want.url:match("^[^?]*"), result.url:match("^[^?]*"), "URL before the query")
        assert.are.same(query_set(want.url), query_set(result.url), "presigned URL parameters")
      else
        assert.are.equal(want.authorization, result.headers.authorization, "Authorization header")
      end

      -- The receiving side (the local endpoint): sign the request as sent,
      -- with the client's SignedHeaders and time, no session token (the
      -- token travels in the request), and get botocore's signature back.
      local request, credentials, options = table.unpack(mine[i])
      local check_opts = { region = options.region, service = options.service, s3 = options.s3 }
      local sent = { method = request.method, url = result.url, headers = result.headers, body = request.body }
      local names = {}
      if case.mode == "presign" then
        local q = {}
        for k, v in (result.url:match("%?(.*)$") .. "&"):gmatch("([^=&]*)=?([^&]*)&") do
          q[pct_decode(k)] = pct_decode(v)
        end
        check_opts.time, check_opts.presign_expires = q["X-Amz-Date"], tonumber(q["X-Amz-Expires"])
        -- nothing in a presigned URL says its payload is unsigned: the
        -- receiver knows it from the service's rules
        check_opts.unsigned_payload = options.unsigned_payload
        for n in q["X-Amz-SignedHeaders"]:gmatch("[^;]+") do names[#names + 1] = n end
      else
        check_opts.time = result.headers["x-amz-date"]
        for n in want.authorization:match("SignedHeaders=([^,]*)"):gmatch("[^;]+") do names[#names + 1] = n end
      end
      check_opts.signed_headers = names
      local _, again = sigv4.sign(sent, { access_key = credentials.access_key,
                                          secret_key = credentials.secret_key }, check_opts)
      assert.are.equal(want.signature, again.signature, "signature recomputed by the receiver")
    end)
  end
end)

describe("sigv4 misuse and secrets", function()
  local creds = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                  session_token = "SECRET-TOKEN-VALUE" }
  local opts = { region = "us-east-1", service = "service", time = "20150830T123600Z" }
  local req = { method = "GET", host = "example.amazonaws.com", path = "/" }

  local function raises(pattern, ...)
    local ok, err = pcall(sigv4.sign, ...)
    assert.is_false(ok)
    err = tostring(err)
    assert.matches(pattern, err, 1, true)
    assert.is_nil(err:find(creds.secret_key, 1, true), "secret in: " .. err)
    assert.is_nil(err:find(creds.session_token, 1, true), "token in: " .. err)
  end

  local function with(t, k, v)
    local c = {}
    for kk, vv in pairs(t) do c[kk] = vv end
    c[k] = v
    return c
  end

  it("raises on missing or mistyped input without quoting credentials", function()
    raises("options.region is required", req, creds, with(opts, "region", nil))
    raises("options.service is required", req, creds, with(opts, "service", nil))
    raises("options.region contains '/'", req, creds, with(opts, "region", "us/east"))
    raises("credentials.access_key and credentials.secret_key are required", req,
           with(creds, "secret_key", nil), opts)
    raises("credentials.secret_key must be a string", req, with(creds, "secret_key", {}), opts)
    raises("credentials.session_token must be a string", req, with(creds, "session_token", true), opts)
    raises("options.time must be", req, creds, with(opts, "time", "2015-08-30 12:36"))
    raises("options.time must be", req, creds, with(opts, "time", "20151330T123600Z"))
    raises("options.time is out of range", req, creds, with(opts, "time", -1))
    raises("options.presign_expires must be", req, creds, with(opts, "presign_expires", 0))
    raises("options.presign_expires must be", req, creds, with(opts, "presign_expires", 604801))
    raises("options.s3 must be a boolean", req, creds, with(opts, "s3", "yes"))
    raises("request.headers must be a table", with(req, "headers", "x"), creds, opts)
    raises("header values must be strings", with(req, "headers", { a = true }), creds, opts)
    raises("outside the HTTP token set", with(req, "headers", { ["x-a\r\nx-b"] = "1" }), creds, opts)
    raises("outside the HTTP token set", with(req, "headers", { { "x:y", "1" } }), creds, opts)
    raises("request.query must be a string or a table", with(req, "query", true), creds, opts)
    raises("request.url must be absolute", { url = "/no/scheme" }, creds, opts)
    raises("needs url, host or a Host header", { path = "/" }, creds, opts)
    raises("signed header 'x-missing' is not in the request", req, creds,
           with(opts, "signed_headers", { "host", "x-missing" }))
    raises("bad argument #1", nil, creds, opts)
    raises("bad argument #2", req, "creds", opts)
    raises("bad argument #3", req, creds, nil)
  end)

  it("defaults to the current time", function()
    local before = os.time()
    local _, debug = sigv4.sign(req, creds, with(opts, "time", nil))
    local dates = {}
    for t = before, os.time() do dates[os.date("!%Y%m%dT%H%M%SZ", t)] = true end
    assert.is_true(dates[debug.date], debug.date)
    assert.are.equal(debug.date:sub(1, 8) .. "/us-east-1/service/aws4_request", debug.scope)
  end)

  it("accepts every documented time form (get-vanilla's signature)", function()
    local want = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    -- 1440938160 is `date -u -d 2015-08-30T12:36:00Z +%s`
    for _, t in ipairs({ "20150830T123600Z", "2015-08-30T12:36:00Z", "2015-08-30T12:36:00.250Z",
                         1440938160, 1440938160.75 }) do
      local _, debug = sigv4.sign(req, { access_key = creds.access_key, secret_key = creds.secret_key },
                                  with(opts, "time", t))
      assert.are.equal(want, debug.signature, tostring(t))
    end
  end)

  it("keeps secrets out of tostring", function()
    local c = sigv4.chunked(creds, with(opts, "service", "s3"), string.rep("0", 64))
    local s = tostring(c)
    assert.matches("^aio_aws%.sigv4_chunker %(open%)", s)
    assert.is_nil(s:find("AKID", 1, true))
    c:close()
    c:close()
    assert.matches("(closed)", tostring(c), 1, true)
    assert.has_error(function() c:sign_chunk("x") end, "attempt to use a closed aio_aws.sigv4 chunk signer")
    assert.has_error(function() sigv4.chunked(creds, with(opts, "time", nil), string.rep("0", 64)) end)
    assert.has_error(function() sigv4.chunked(creds, opts, "not-a-signature") end)
  end)

  it("frames aws-chunked bodies with the lengths of sigv4-streaming.html", function()
    -- The doc's example: 66560 bytes in 64 KiB chunks is 66824 bytes encoded.
    assert.are.same({ ["content-encoding"] = "aws-chunked", ["x-amz-decoded-content-length"] = "66560",
                      ["content-length"] = "66824" }, sigv4.streaming_headers(66560, 65536))
    assert.are.equal(86, sigv4.chunked_length(0, 65536))
    assert.has_error(function() sigv4.chunked_length(-1, 10) end)
    assert.has_error(function() sigv4.chunked_length(10, 0) end)
  end)
end)
