-- core.xml_decode / core.xml_escape (csrc/xml.c): the decoded form,
-- hostile and malformed input, and the cost of a ListObjectsV2 page.
local core = require "aio_aws.core"

local decode = core.xml_decode

-- decode must never raise on bad input: nil, message
local function bad(s, pattern)
  local ok, node, err = pcall(decode, s)
  assert.is_true(ok, "xml_decode raised: " .. tostring(node))
  assert.is_nil(node)
  assert.is_string(err)
  if pattern then assert.matches(pattern, err) end
  return err
end

describe("xml_decode", function()
  it("turns a leaf into its text and names the root", function()
    local node, root = decode("<Key>a.txt</Key>")
    assert.equal("a.txt", node)
    assert.equal("Key", root)
    assert.equal("", (decode("<Empty/>")))
    assert.equal("", (decode("<Empty></Empty>")))
  end)

  it("makes records of distinct children and sequences of repeated ones", function()
    local node = decode("<Owner><ID>1</ID><DisplayName>w</DisplayName></Owner>")
    assert.same({ ID = "1", DisplayName = "w", _n = 2 }, node)
    node = decode("<L><member>a</member><member>b</member><other>c</other></L>")
    assert.same({ "member", "a", "member", "b", "other", "c" }, node)
  end)

  it("keeps document order in sequence mode", function()
    local node = decode("<R><b>1</b><a>2</a></R>", "sequence")
    assert.same({ "b", "1", "a", "2" }, node)
    assert.has_error(function() decode("<R/>", "bogus") end)
  end)

  it("keeps attributes raw and strips element prefixes", function()
    local node, root = decode('<s:Root xmlns:s="urn:x" xmlns="urn:d" a="1"><s:Child xsi:type="T" xmlns:xsi="urn:i">t</s:Child></s:Root>')
    assert.equal("Root", root)
    assert.equal("urn:x", node._attr["xmlns:s"])
    assert.equal("urn:d", node._attr.xmlns)
    assert.equal("1", node._attr.a)
    assert.equal("T", node.Child._attr["xsi:type"])
    assert.equal("t", node.Child._text)
  end)

  it("keeps whitespace of leaves and drops it between elements", function()
    local node = decode("<R>\n  <a>  x  </a>\n  <b>\n</b>\n</R>")
    assert.equal("  x  ", node.a)
    assert.equal("\n", node.b)
    assert.is_nil(node._text)
  end)

  it("keeps mixed content text", function()
    local node = decode("<R>head<a>1</a>tail</R>")
    assert.equal("headtail", node._text)
    assert.equal("1", node.a)
  end)

  it("resolves character references, predefined entities and CDATA", function()
    assert.equal("a&b<c>\"'A\u{e9}", (decode("<v>a&amp;b&lt;c&gt;&quot;&apos;&#65;&#xE9;</v>")))
    assert.equal("<not a tag> & raw", (decode("<v><![CDATA[<not a tag> & raw]]></v>")))
    assert.equal("ab<c>d", (decode("<v>a<![CDATA[b<c>]]>d</v>")))
    assert.equal("\u{1F600}", (decode("<v>\u{1F600}</v>")))
  end)

  it("honours an XML declaration and a non-UTF-8 encoding", function()
    assert.equal("x", (decode('<?xml version="1.0" encoding="UTF-8"?>\n<v>x</v>')))
    assert.equal("\u{e9}", (decode('<?xml version="1.0" encoding="ISO-8859-1"?><v>\xE9</v>')))
  end)

  it("does not let a child named like a bookkeeping key break a record", function()
    local node = decode("<R><_attr>1</_attr><_n>2</_n></R>")
    assert.same({ "_attr", "1", "_n", "2" }, node)
  end)

  it("returns nil, err for malformed input and never raises", function()
    bad("", "no element found")
    bad("   ")
    bad("<a>", "no element found")
    bad("<a><b></a>", "mismatched tag")
    bad("<a></a><b></b>", "junk after document element")
    bad("<a>&undefined;</a>", "undefined entity")
    bad("not xml at all")
    bad("<a b='1' b='2'/>", "duplicate attribute")
    bad("<a>\1</a>")
    bad("<a>\xff\xfe</a>")
    bad("<?xml version='1.0'?>")
    local truncated = "<R><Contents><Key>k</Key><Size>1</Si"
    bad(truncated)
    assert.has_error(function() decode(nil) end)
  end)

  it("refuses entity declarations: billion laughs, external and parameter entities", function()
    local lol = [[<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>]]
    bad(lol, "DTD%) are not allowed")
    bad([[<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>]],
      "DTD%) are not allowed")
    bad([[<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://example.com/x.dtd"> %p;]><r/>]],
      "DTD%) are not allowed")
    bad([[<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://example.com/x.dtd"><r>&ext;</r>]])
    -- AWS never sends a DTD: even a harmless one is refused
    bad([[<?xml version="1.0"?><!DOCTYPE r><r>x</r>]], "not allowed")
  end)

  it("caps nesting depth", function()
    local deep = string.rep("<a>", 300) .. string.rep("</a>", 300)
    bad(deep, "too deep")
    local ok = string.rep("<a>", 200) .. "x" .. string.rep("</a>", 200)
    local node = decode(ok)
    for _ = 1, 199 do node = node.a end
    assert.equal("x", node)
  end)

  it("decodes huge documents and huge text nodes", function()
    local big = string.rep("x", 8 * 1024 * 1024)
    assert.equal(#big, #decode("<v>" .. big .. "</v>"))
    local parts = { "<R>" }
    for i = 1, 200000 do parts[#parts + 1] = "<i>" .. i .. "</i>" end
    parts[#parts + 1] = "</R>"
    local node = decode(table.concat(parts))
    assert.equal(400000, #node)
    assert.equal("200000", node[400000])
    -- and the reused buffer still works for a small one afterwards
    assert.equal("y", (decode("<v>y</v>")))
  end)

  it("survives being called again from a finalizer during a decode", function()
    -- in a child interpreter, for a heap (and so collector timing) that the
    -- other specs do not change
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([==[
      local extra = os.getenv("AIO_AWS_CPATH")
      package.cpath = (extra and extra ~= "" and (extra .. ";") or "") .. "lua/?.so;" .. package.cpath
      local decode = require("aio_aws.core").xml_decode
      local decoding, during, bad = false, 0, 0
      local mt = { __gc = function()
        local v = decode("<v><a>gc</a><b>x</b></v>")
        if type(v) ~= "table" or v.a ~= "gc" then bad = bad + 1 end
        if decoding then during = during + 1 end
      end }
      local parts = { "<R>" }
      for i = 1, 3000 do parts[#parts + 1] = "<i><k>" .. i .. "</k><v>" .. i .. "</v></i>" end
      parts[#parts + 1] = "</R>"
      local doc = table.concat(parts)
      for _ = 1, 20 do
        for _ = 1, 200 do setmetatable({}, mt) end
        decoding = true
        local node = decode(doc)
        decoding = false
        assert(#node == 6000 and node[6000].k == "3000" and node[5999] == "i", "corrupted result")
      end
      collectgarbage()
      print("during=" .. during .. " bad=" .. bad)
    ]==])
    f:close()
    local p = io.popen("lua5.4 " .. script .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    local during, nbad = out:match("during=(%d+) bad=(%d+)")
    assert(during, out)
    assert.equal("0", nbad)
    assert.is_true(tonumber(during) > 0, "no finalizer ran during a decode: " .. out)
  end)
end)

describe("xml_escape", function()
  it("escapes markup and line ends, and returns other strings as they are", function()
    assert.equal("a&lt;b&gt;&amp;&quot;&apos;&#xD;&#xA;", core.xml_escape("a<b>&\"'\r\n"))
    local s = "plain text"
    assert.equal(s, core.xml_escape(s))
    assert.equal("", core.xml_escape(""))
  end)

  it("round-trips through decode", function()
    local s = "x < y & \"q\" 'a'\nnext\r\n"
    assert.equal(s, (decode("<v a=\"" .. core.xml_escape(s) .. "\">" .. core.xml_escape(s) .. "</v>")._text))
    assert.equal(s, decode("<v a=\"" .. core.xml_escape(s) .. "\"/>")._attr.a)
  end)
end)

-- A 1,000-key ListObjectsV2 page, bytes to the final parsed output table.
-- The number is printed (not asserted: CPU speed varies); csrc/xml.c
-- quotes the figure measured on the build machine.
describe("ListObjectsV2 page", function()
  local model = require "aio_aws.model"
  local protocol = require "aio_aws.protocol"

  local function page(with_owner)
    local parts = { '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
      .. "<Name>my-bucket</Name><Prefix></Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys>"
      .. "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>" }
    for i = 1, 1000 do
      local key = with_owner and string.format("logs/2024/%02d/app-server-042/events-%06d.json.gz", i % 12 + 1, i)
        or string.format("warehouse/events/region=eu-west-1/year=2024/month=%02d/day=17/hour=03/part-%06d-8d1c2e4f.snappy.parquet", i % 12 + 1, i)
      parts[#parts + 1] = string.format("<Contents><Key>%s</Key><LastModified>2024-%02d-%02dT12:%02d:%02d.000Z</LastModified>"
        .. "<ETag>&quot;%032x&quot;</ETag><Size>%d</Size>%s<StorageClass>STANDARD</StorageClass></Contents>",
        key, i % 12 + 1, i % 28 + 1, i % 60, i % 60, i * 7919, i * 104729 + 13,
        with_owner and "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>webfile</DisplayName></Owner>" or "")
    end
    parts[#parts + 1] = "</ListBucketResult>"
    return table.concat(parts)
  end

  local function best(n, rounds, fn)
    local b = math.huge
    for _ = 1, rounds do
      collectgarbage()
      local t = os.clock()
      for _ = 1, n do fn() end
      b = math.min(b, (os.clock() - t) / n)
    end
    return b * 1000
  end

  for _, with_owner in ipairs({ false, true }) do
    it("parses " .. (with_owner and "with Owner" or "without Owner") .. " and reports the CPU time", function()
      local s3 = assert(model.load("s3"))
      local body = page(with_owner)
      local resp = { status = 200, headers = { ["x-amz-request-id"] = "R" }, body = body }
      local out = assert(protocol.parse(s3, "ListObjectsV2", resp))
      assert.equal(1000, #out.Contents)
      assert.equal(1000, out.KeyCount)
      assert.is_true(out.IsTruncated)
      local c = out.Contents[1]
      assert.equal(string.format('"%032x"', 7919), c.ETag)
      assert.equal(104742, c.Size)
      assert.equal("STANDARD", c.StorageClass)
      assert.equal("number", type(c.LastModified))
      if with_owner then assert.equal("webfile", c.Owner.DisplayName) end
      if os.getenv("AIO_AWS_SANITIZED") == "1" or os.getenv("AIO_AWS_GC_STRESS") == "1" then
        return -- timings under sanitizers or GC stress mean nothing and take minutes
      end
      local dec = best(20, 5, function() return core.xml_decode(body) end)
      local full = best(20, 5, function() return protocol.parse(s3, "ListObjectsV2", resp) end)
      io.write(string.format("\nxml: 1,000-key ListObjectsV2 page%s, %d KB: xml_decode %.2f ms, bytes -> parsed output %.2f ms CPU (best of 5 x 20)\n",
        with_owner and " with Owner" or "", #body // 1024, dec, full))
    end)
  end
end)

-- The C shape-directed path (core.xml_decode_shaped, via xml.read_body)
-- must give exactly what decode + the Lua reader give, or decline (nil).
-- Random documents for every S3 output structure with a body, with
-- unknown elements, attributes and malformed values mixed in.
describe("shaped XML decoding", function()
  local model = require "aio_aws.model"
  local xml = require "aio_aws.protocol.xml"
  local esc = core.xml_escape

  local LOCATED = { header = true, headers = true, statusCode = true }
  local rnd = math.random

  local function scalar_text(ref, malformed)
    local t = ref.type
    if malformed and rnd(8) == 1 then return ({ "x1", "", "1e3", " 7", "2024-13-01T00:00:00Z", "NaN" })[rnd(6)] end
    if t == "string" then
      local s = {}
      for i = 1, rnd(0, 12) do s[i] = string.char(({ rnd(97, 122), rnd(48, 57), 38, 60, 32, 47 })[rnd(6)]) end
      return esc(table.concat(s))
    elseif t == "integer" or t == "long" then
      return tostring(rnd(-1000, 1000000))
    elseif t == "boolean" then
      return rnd(2) == 1 and "true" or "false"
    elseif t == "timestamp" then
      return ({ "2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000Z", "2024-02-29T23:59:59.250Z",
        "2024-02-29T23:59:59.123456Z", "1970-01-01T00:00:00Z" })[rnd(5)]
    elseif t == "float" or t == "double" then
      return ({ "1.5", "-0.25", "3", "1e3" })[rnd(4)]
    elseif t == "blob" then
      return "aGVsbG8="
    end
    return "x"
  end

  local gen
  local function value(ref, depth, malformed)
    local t = ref.type
    if t == "structure" then return gen(ref.target, depth + 1, malformed) end
    if t == "list" then
      local item = ref.member
      local name = item.locationName or "member"
      local parts = {}
      for i = 1, rnd(0, 3) do parts[i] = "<" .. name .. ">" .. value(item, depth + 1, malformed) .. "</" .. name .. ">" end
      return table.concat(parts)
    end
    if t == "map" then
      return "<entry><key>k</key><value>" .. value(ref.value, depth + 1, malformed) .. "</value></entry>"
    end
    return scalar_text(ref, malformed)
  end

  function gen(shape, depth, malformed)
    if depth > 4 then return "" end
    local parts = {}
    for _, m in ipairs(shape.member_names) do
      local mref = shape.members[m]
      if not LOCATED[mref.location or false] and not mref.xmlAttribute and rnd(10) <= 7 then
        if mref.type == "list" and mref.flattened then
          local item = mref.member
          local name = item.locationName or mref.locationName or m
          for _ = 1, rnd(1, 3) do parts[#parts + 1] = "<" .. name .. ">" .. value(item, depth, malformed) .. "</" .. name .. ">" end
        else
          local name = mref.locationName or m
          local attr = malformed and rnd(10) == 1 and ' a="1"' or ""
          parts[#parts + 1] = "<" .. name .. attr .. ">" .. value(mref, depth, malformed) .. "</" .. name .. ">"
        end
      end
      if malformed and rnd(20) == 1 then parts[#parts + 1] = "<Unknown><Deep>1</Deep></Unknown>" end
    end
    return table.concat(parts)
  end

  local function generic(ref, body)
    local node = assert(xml.decode(body))
    local ok, v = pcall(xml.read, ref, node)
    if ok then return v end
    return nil
  end

  it("agrees with the Lua reader on random documents of every S3 output, or declines", function()
    local s3 = assert(model.load("s3"))
    math.randomseed(2006)
    local fast, declined, shapes = 0, 0, 0
    for _, op_name in ipairs(s3:operation_names()) do
      local op = s3:operation(op_name)
      local out = op.output
      local shape = out and out.target
      if shape and not shape.payload and require("aio_aws.protocol.rest").has_body_members_out(shape) then
        shapes = shapes + 1
        for round = 1, 30 do
          local malformed = round > 15
          local body = '<?xml version="1.0"?><R xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            .. gen(shape, 0, malformed) .. "</R>"
          local want = generic(out, body)
          local got = xml.read_body(out, body)
          if got == nil then
            declined = declined + 1
          else
            fast = fast + 1
            assert.are.same(want, got, op_name .. ": " .. body)
          end
        end
      end
    end
    assert.is_true(shapes > 20)
    assert.is_true(fast > shapes * 10, "the C path should take most documents: " .. fast)
    assert.is_true(declined > 0, "malformed values must be declined")
  end)

  it("declines what only the Lua reader decides, and gives the same page otherwise", function()
    local s3 = assert(model.load("s3"))
    local out = s3:operation("ListObjectsV2").output
    local function doc(contents) return "<ListBucketResult><Contents>" .. contents .. "</Contents></ListBucketResult>" end
    -- 1e3 is a number to tonumber, not plain digits: declined, the Lua reader decides
    assert.is_nil(xml.read_body(out, doc("<Size>1e3</Size>")))
    assert.is_nil(xml.read_body(out, doc("<Size><X>1</X></Size>")))
    assert.is_nil(xml.read_body(out, doc("<LastModified>Mon, 16 Dec 2019 23:48:18 GMT</LastModified>")))
    assert.is_nil(xml.read_body(out, "<not xml"))
    local got = assert(xml.read_body(out, doc("<Key>a&amp;b</Key><Size>-12</Size><ETag a=\"1\">e</ETag><Zz>q</Zz>"
      .. "<LastModified>2024-01-02T03:04:05.500Z</LastModified><Owner/><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
      .. "<ChecksumAlgorithm>SHA1</ChecksumAlgorithm>")))
    -- independent expectations: S3's documented element meanings
    assert.are.same({ { Key = "a&b", Size = -12, ETag = "e", LastModified = 1704164645.5, Owner = {},
      ChecksumAlgorithm = { "CRC32", "SHA1" } } }, got.Contents)
    assert.are.equal(math.type(1704164645), math.type(assert(xml.read_body(out,
      doc("<LastModified>2024-01-02T03:04:05.000Z</LastModified>"))).Contents[1].LastModified))
  end)

  it("raises on a malformed schema and a wrong argument", function()
    assert.has_error(function() core.xml_schema({}) end)
    assert.has_error(function() core.xml_schema({ { { elem = "A" } } }) end)
    assert.has_error(function() core.xml_schema({ { { elem = "A", member = "A", kind = 7 } } }) end)
    assert.has_error(function() core.xml_decode_shaped("<a/>", {}) end)
    assert.has_error(function() core.xml_decode_shaped(nil, core.xml_schema({ {} })) end)
  end)
end)
