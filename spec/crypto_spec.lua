-- Crypto helpers of the C core (csrc/crypto.c) against values nobody in
-- this project computed: Python's hashlib, hmac, zlib, base64 and
-- urllib.parse (Debian's /usr/bin/python3) on the same inputs, plus
-- published vectors (NIST FIPS 180 examples, RFC 1321, RFC 4231, RFC 3720
-- appendix B.4, the CRC catalogue check values).
local cjson = require("cjson")
local core = require("aio_aws.core")

local PYTHON = "/usr/bin/python3"

local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function fromhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- The independent side: one Python process over files written here.
local PY = [[
import base64, hashlib, hmac, json, sys, urllib.parse, zlib

def crc32c(data, crc=0):
    # Castagnoli, reflected 0x82F63B78, table-driven (RFC 3720 section 12.1)
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

spec = json.load(open(sys.argv[1]))
out = {"data": [], "hmac": []}
for path in spec["data"]:
    d = open(path, "rb").read()
    out["data"].append({
        "sha256": hashlib.sha256(d).hexdigest(),
        "sha1": hashlib.sha1(d).hexdigest(),
        "md5": hashlib.md5(d).hexdigest(),
        "md5_base64": base64.b64encode(hashlib.md5(d).digest()).decode(),
        "crc32": zlib.crc32(d),
        "crc32c": crc32c(d),
        "base64": base64.b64encode(d).decode(),
        "hex": d.hex(),
        "uri": urllib.parse.quote(d, safe="/"),
        "uri_slash": urllib.parse.quote(d, safe=""),
        "unquote": urllib.parse.unquote_to_bytes(d).hex(),
        "unquote_plus": urllib.parse.unquote_to_bytes(d.replace(b"+", b" ")).hex(),
    })
for key, msg in spec["hmac"]:
    out["hmac"].append(hmac.new(open(key, "rb").read(), open(msg, "rb").read(),
                                hashlib.sha256).hexdigest())
out["bad_base64"] = []
for s in spec["bad_base64"]:
    try:
        base64.b64decode(s, validate=True)
        out["bad_base64"].append(False)
    except Exception:
        out["bad_base64"].append(True)
json.dump(out, sys.stdout)
]]

local function have_python()
  return os.execute(PYTHON .. " -c 'import hashlib, zlib' >/dev/null 2>&1") == true
end

local function writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Inputs: empty, short, NULs, every byte value, seeded random binary of
-- many lengths, and two large ones (1e6 'a' for the NIST long message, and
-- several MB of random bytes).
local function inputs()
  math.randomseed(3720)
  local t = { "", "a", "abc", "\0", "a\0b\0\0c", "The quick brown fox jumps over the lazy dog",
              "123456789", "a b/c?d=e&f~g+h", "ü€😀ሴ", "%2F%zz%", "a%2", "%41%4a%4A%g1%", "+%2B+%20%%25",
              "events/dt%3D2026-11-01/part%2B1+x", "-._~ABCxyz019!*'();:@&=+$,/?#[]" }
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  t[#t + 1] = table.concat(all)
  for _, n in ipairs({ 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 63, 64, 65, 127, 1000, 4097 }) do
    local b = {}
    for i = 1, n do b[i] = string.char(math.random(0, 255)) end
    t[#t + 1] = table.concat(b)
  end
  t[#t + 1] = string.rep("a", 1000000)
  local block = {}
  for i = 1, 65536 do block[i] = string.char(math.random(0, 255)) end
  block = table.concat(block)
  local big = {}
  for i = 1, 96 do big[i] = block:sub(i * 7 % 4096 + 1) .. string.char(i) end
  t[#t + 1] = table.concat(big) -- about 6 MB, no period of 64 KiB
  math.randomseed() -- unpredictable again for the other specs
  return t
end

-- RFC 4231 section 4 test cases 1-4, 6, 7 (key, data); their expected
-- HMAC-SHA-256 values come from Python and, for 1 and 2, from the RFC.
local HMAC_CASES = {
  { string.rep("\x0b", 20), "Hi There" },
  { "Jefe", "what do ya want for nothing?" },
  { string.rep("\xaa", 20), string.rep("\xdd", 50) },
  { fromhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), string.rep("\xcd", 50) },
  { string.rep("\xaa", 131), "Test Using Larger Than Block-Size Key - Hash Key First" },
  { string.rep("\xaa", 131), "This is a test using a larger than block-size key and a larger than "
    .. "block-size data. The key needs to be hashed before being used by the HMAC algorithm." },
  { "", "" },
  { "key\0with\0nul", "msg\0" },
  { string.rep("k", 64), string.rep("m", 100000) },
}

local BAD_BASE64 = { "Q", "QQ", "QQQ", "Q===", "QQ=A", "=QQQ", "QQ==QQ", "QUJD\n", "QU JD", "QUJ*", "QQ=\0", "\0\0\0\0" }

describe("crypto", function()
  local data = inputs()
  local py

  setup(function()
    if not have_python() then return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local spec = { data = {}, hmac = {}, bad_base64 = BAD_BASE64 }
    for i, d in ipairs(data) do
      spec.data[i] = dir .. "/d" .. i
      writefile(spec.data[i], d)
    end
    for i, c in ipairs(HMAC_CASES) do
      writefile(dir .. "/k" .. i, c[1])
      writefile(dir .. "/m" .. i, c[2])
      spec.hmac[i] = { dir .. "/k" .. i, dir .. "/m" .. i }
    end
    writefile(dir .. "/spec.json", cjson.encode(spec))
    writefile(dir .. "/oracle.py", PY)
    local p = assert(io.popen(PYTHON .. " '" .. dir .. "/oracle.py' '" .. dir .. "/spec.json'"))
    py = cjson.decode(p:read("a"))
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function oracle()
    if not py then pending("Debian's " .. PYTHON .. " is not available") end
    return py
  end

  describe("published vectors", function()
    it("SHA-256, SHA-1 (FIPS 180 examples) and MD5 (RFC 1321)", function()
      assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256_hex("abc"))
      assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
      assert.are.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                       core.sha256_hex(string.rep("a", 1000000)))
      assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d", tohex(core.sha1("abc")))
      assert.are.equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", tohex(core.sha1(string.rep("a", 1000000))))
      assert.are.equal("d41d8cd98f00b204e9800998ecf8427e", core.md5_hex(""))
      assert.are.equal("900150983cd24fb0d6963f7d28e17f72", core.md5_hex("abc"))
    end)

    it("HMAC-SHA-256 (RFC 4231 test cases 1 and 2)", function()
      assert.are.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                       tohex(core.hmac_sha256(string.rep("\x0b", 20), "Hi There")))
      assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                       tohex(core.hmac_sha256("Jefe", "what do ya want for nothing?")))
    end)

    it("CRC-32 and CRC-32C check values, RFC 3720 appendix B.4", function()
      assert.are.equal(0xCBF43926, core.crc32("123456789"))
      assert.are.equal(0xE3069283, core.crc32c("123456789"))
      local up, down = {}, {}
      for i = 0, 31 do up[#up + 1] = string.char(i); down[#down + 1] = string.char(31 - i) end
      assert.are.equal(0x8A9136AA, core.crc32c(string.rep("\0", 32)))
      assert.are.equal(0x62A8AB43, core.crc32c(string.rep("\xff", 32)))
      assert.are.equal(0x46DD794E, core.crc32c(table.concat(up)))
      assert.are.equal(0x113FDB5C, core.crc32c(table.concat(down)))
      assert.are.equal(0, core.crc32(""))
      assert.are.equal(0, core.crc32c(""))
    end)

    it("base64 (RFC 4648 section 10)", function()
      local v = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                  fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
      for plain, enc in pairs(v) do
        assert.are.equal(enc, core.base64_encode(plain))
        assert.are.equal(plain, core.base64_decode(enc))
      end
    end)
  end)

  describe("against Python", function()
    it("digests, checksums and encodings of every input", function()
      local want = oracle().data
      assert.are.equal(#data, #want)
      for i, d in ipairs(data) do
        local w, label = want[i], "input #" .. i .. " (" .. #d .. " bytes)"
        assert.are.equal(w.sha256, tohex(core.sha256(d)), label .. " sha256")
        assert.are.equal(w.sha256, core.sha256_hex(d), label .. " sha256_hex")
        assert.are.equal(w.sha1, tohex(core.sha1(d)), label .. " sha1")
        assert.are.equal(w.md5, tohex(core.md5(d)), label .. " md5")
        assert.are.equal(w.md5, core.md5_hex(d), label .. " md5_hex")
        assert.are.equal(w.md5_base64, core.md5_base64(d), label .. " md5_base64")
        assert.are.equal(w.crc32, core.crc32(d), label .. " crc32")
        assert.are.equal(w.crc32c, core.crc32c(d), label .. " crc32c")
        assert.are.equal(w.base64, core.base64_encode(d), label .. " base64_encode")
        assert.are.equal(d, core.base64_decode(w.base64), label .. " base64_decode")
        assert.are.equal(w.hex, core.hex_encode(d), label .. " hex_encode")
        assert.are.equal(d, core.hex_decode(w.hex), label .. " hex_decode")
        assert.are.equal(d, core.hex_decode(w.hex:upper()), label .. " hex_decode upper case")
        if #d < 100000 then
          assert.are.equal(w.uri, core.uri_encode(d), label .. " uri_encode")
          assert.are.equal(w.uri, core.uri_encode(d, false), label .. " uri_encode keep /")
          assert.are.equal(w.uri_slash, core.uri_encode(d, true), label .. " uri_encode encode /")
          assert.are.equal(w.unquote, core.hex_encode(core.uri_decode(d)), label .. " uri_decode")
          assert.are.equal(w.unquote_plus, core.hex_encode(core.uri_decode(d, true)), label .. " uri_decode plus")
        end
      end
    end)

    it("hmac_sha256 (RFC 4231 inputs and more)", function()
      local want = oracle().hmac
      for i, c in ipairs(HMAC_CASES) do
        assert.are.equal(want[i], tohex(core.hmac_sha256(c[1], c[2])), "case " .. i)
      end
    end)

    it("running CRCs continue with prev", function()
      local want = oracle().data
      for i, d in ipairs(data) do
        local cut = #d // 3
        local a, b = d:sub(1, cut), d:sub(cut + 1)
        assert.are.equal(want[i].crc32, core.crc32(b, core.crc32(a)), "crc32 #" .. i)
        assert.are.equal(want[i].crc32c, core.crc32c(b, core.crc32c(a)), "crc32c #" .. i)
      end
    end)

    it("hasher streams uneven pieces to the same digests", function()
      local want = oracle().data
      local sizes = { 1, 7, 3, 4096, 65537, 13, 0, 100003 }
      local function be32(n)
        return string.char(n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
      end
      for i, d in ipairs(data) do
        local hs = {}
        for _, alg in ipairs({ "sha256", "sha1", "md5", "crc32", "crc32c" }) do hs[alg] = core.hasher(alg) end
        local pos, k = 1, 1
        while pos <= #d do
          local n = sizes[(k - 1) % #sizes + 1]
          k = k + 1
          local piece = d:sub(pos, pos + n - 1)
          for _, h in pairs(hs) do assert.are.equal(h, h:update(piece)) end
          pos = pos + n
        end
        local w = want[i]
        assert.are.equal(w.sha256, hs.sha256:hexdigest(), "sha256 #" .. i)
        assert.are.equal(w.sha1, tohex(hs.sha1:digest()), "sha1 #" .. i)
        assert.are.equal(w.md5, tohex(hs.md5:digest()), "md5 #" .. i)
        assert.are.equal(be32(w.crc32), hs.crc32:digest(), "crc32 #" .. i)
        assert.are.equal(tohex(be32(w.crc32c)), hs.crc32c:hexdigest(), "crc32c #" .. i)
      end
    end)

    it("base64_decode rejects what Python's strict decoder rejects", function()
      local want = oracle().bad_base64
      for i, s in ipairs(BAD_BASE64) do
        assert.is_true(want[i], "Python accepts " .. string.format("%q", s))
        local v, err = core.base64_decode(s)
        assert.is_nil(v, string.format("%q", s))
        assert.is_string(err)
        assert.matches("invalid base64", err)
      end
    end)
  end)

  describe("invalid input", function()
    it("hex_decode returns nil, err", function()
      for _, s in ipairs({ "a", "abc", "zz", "0g", "12 34", "1\0", "é" }) do
        local v, err = core.hex_decode(s)
        assert.is_nil(v, s)
        assert.matches("invalid hex", err)
      end
    end)

    it("wrong argument types raise", function()
      for _, name in ipairs({ "sha256", "sha256_hex", "sha1", "md5", "md5_hex", "md5_base64", "crc32",
                              "crc32c", "base64_encode", "base64_decode", "hex_encode", "hex_decode",
                              "uri_encode", "uri_decode", "hasher" }) do
        assert.has_error(function() core[name]() end, nil, name .. "()")
        assert.has_error(function() core[name]({}) end, nil, name .. "({})")
        assert.has_error(function() core[name](true) end, nil, name .. "(true)")
      end
      assert.has_error(function() core.hmac_sha256("key") end)
      assert.has_error(function() core.hmac_sha256({}, "msg") end)
      assert.has_error(function() core.secure_equals("a") end)
      assert.has_error(function() core.crc32("x", "prev") end)
      assert.has_error(function() core.crc32("x", -1) end)
      assert.has_error(function() core.crc32c("x", 1 << 32) end)
      assert.has_error(function() core.hasher("sha512") end)
    end)
  end)

  describe("hasher", function()
    it("raises on use after digest, and close is idempotent", function()
      local h = core.hasher("sha256")
      h:update("abc")
      assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h:hexdigest())
      assert.has_error(function() h:update("x") end, "attempt to use a closed sha256 hasher (digest already taken or closed)")
      assert.has_error(function() h:digest() end)
      h:close()
      h:close()
      assert.matches("^aio_aws%.hasher %(sha256, closed%)", tostring(h))
      local c = core.hasher("crc32")
      c:close()
      assert.has_error(function() c:hexdigest() end)
      assert.has_error(function() h.update(io.stdout, "x") end)
      assert.has_error(function() c:update(nil) end)
    end)

    it("closes at the end of a to-be-closed scope", function()
      local kept
      do
        local h <close> = core.hasher("md5")
        kept = h
        h:update("abc")
      end
      assert.has_error(function() kept:update("x") end)
    end)

    it("survives collection of unfinished hashers", function()
      for _ = 1, 200 do core.hasher("sha1"):update("data") end
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("secure_equals", function()
    assert.is_true(core.secure_equals("", ""))
    assert.is_true(core.secure_equals("a\0b", "a\0b"))
    assert.is_false(core.secure_equals("a\0b", "a\0c"))
    assert.is_false(core.secure_equals("abc", "ab"))
  end)
end)
