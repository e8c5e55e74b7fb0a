-- The local endpoint's CloudWatch Logs service, called directly (the live
-- wire tests are in the second part of this file). Expected values come
-- from the CloudWatch Logs API reference (PutLogEvents, GetLogEvents,
-- FilterLogEvents, DescribeLogStreams pages), not from the implementation.
local logs_mod = require "aio_aws.emulator.logs"
local store = require "aio_aws.emulator.store"

local NOW = 1700000000 -- seconds; a fixed clock for the 2 h / 14 day rules
local NOW_MS = NOW * 1000

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(store.mkdir_p(p))
  return p
end

local function rm_rf(p) os.execute("rm -rf '" .. p .. "'") end

local function new(dir, clock)
  return assert(logs_mod.new{ data_dir = dir, store = store, clock = clock or function() return NOW end,
    region = "eu-west-1", account_id = "123456789012" })
end

local function ok_call(l, op, params)
  local out, err = l:call(op, params)
  assert(out, err and tostring(err))
  return out
end

local function err_call(l, op, params, code, status)
  local out, err = l:call(op, params)
  assert.is_nil(out)
  assert.equal(code, err.code)
  assert.equal(status or 400, err.status)
  return err
end

local function msgs(events)
  local t = {}
  for i, e in ipairs(events) do t[i] = e.message end
  return t
end

describe("emulator logs (service object)", function()
  local dir, l
  before_each(function()
    dir = tmpdir()
    l = new(dir)
  end)
  after_each(function() rm_rf(dir) end)

  describe("append (for Batch and Lambda)", function()
    it("creates the group and stream and keeps events in timestamp order", function()
      assert.is_true(l:append("/aws/batch/job", "d/default/1", {
        { timestamp = NOW_MS + 2, message = "second" }, { timestamp = NOW_MS + 1, message = "first" } }))
      assert.is_true(l:append("/aws/batch/job", "d/default/1", { { timestamp = NOW_MS + 3, message = "third" } }))
      local out = ok_call(l, "GetLogEvents", { logGroupName = "/aws/batch/job", logStreamName = "d/default/1",
        startFromHead = true })
      assert.same({ "first", "second", "third" }, msgs(out.events))
      assert.equal(NOW_MS + 1, out.events[1].timestamp)
      assert.equal(NOW_MS, out.events[1].ingestionTime)
      local groups = ok_call(l, "DescribeLogGroups", {}).logGroups
      assert.equal("/aws/batch/job", groups[1].logGroupName)
    end)

    it("accepts messages with newlines, quotes, NULs and non-ASCII bytes, and keeps them after a restart", function()
      local m = 'a\n"b"\\ c\0d \xc3\xa9 \xff/'
      assert.is_true(l:append("g", "s", { { timestamp = NOW_MS, message = m } }))
      local again = new(dir)
      assert.same({ m }, msgs(again:events("g", "s")))
    end)

    it("raises on misuse", function()
      assert.has_error(function() l:append(nil, "s", {}) end)
      assert.has_error(function() l:append("g", "", {}) end)
      assert.has_error(function() l:append("g", "s", "x") end)
      assert.has_error(function() l:append("g", "s", { { timestamp = "soon", message = "m" } }) end)
      assert.has_error(function() l:append("g", "s", { { timestamp = 1 } }) end)
      assert.has_error(function() l:append("g", "s", { 5 }) end)
    end)
  end)

  describe("log groups", function()
    it("CreateLogGroup, duplicate, invalid and missing names", function()
      assert.same({}, ok_call(l, "CreateLogGroup", { logGroupName = "app/one" }))
      err_call(l, "CreateLogGroup", { logGroupName = "app/one" }, "ResourceAlreadyExistsException")
      -- pattern [\.\-_/#A-Za-z0-9]+, length 1..512 (CreateLogGroup)
      err_call(l, "CreateLogGroup", { logGroupName = "bad name" }, "InvalidParameterException")
      err_call(l, "CreateLogGroup", { logGroupName = "x:y" }, "InvalidParameterException")
      err_call(l, "CreateLogGroup", { logGroupName = string.rep("a", 513) }, "InvalidParameterException")
      assert.truthy(l:call("CreateLogGroup", { logGroupName = string.rep("a", 512) }))
      err_call(l, "CreateLogGroup", {}, "InvalidParameterException")
      err_call(l, "CreateLogGroup", { logGroupName = 5 }, "InvalidParameterException")
    end)

    it("DescribeLogGroups: fields, prefix, pattern, pages", function()
      for i = 1, 7 do ok_call(l, "CreateLogGroup", { logGroupName = ("grp-%02d"):format(i) }) end
      ok_call(l, "CreateLogGroup", { logGroupName = "other" })
      local g = ok_call(l, "DescribeLogGroups", { logGroupNamePrefix = "oth" }).logGroups
      assert.equal(1, #g)
      assert.equal("other", g[1].logGroupName)
      assert.equal("arn:aws:logs:eu-west-1:123456789012:log-group:other:*", g[1].arn)
      assert.equal(NOW_MS, g[1].creationTime)
      assert.equal(0, g[1].storedBytes)
      assert.equal(1, #ok_call(l, "DescribeLogGroups", { logGroupNamePattern = "THE" }).logGroups)
      local seen, token, pages = {}, nil, 0
      repeat
        local out = ok_call(l, "DescribeLogGroups", { logGroupNamePrefix = "grp-", limit = 3, nextToken = token })
        pages = pages + 1
        for _, x in ipairs(out.logGroups) do seen[#seen + 1] = x.logGroupName end
        token = out.nextToken
      until not token
      assert.equal(3, pages)
      assert.same({ "grp-01", "grp-02", "grp-03", "grp-04", "grp-05", "grp-06", "grp-07" }, seen)
      err_call(l, "DescribeLogGroups", { limit = 0 }, "InvalidParameterException")
      err_call(l, "DescribeLogGroups", { limit = 51 }, "InvalidParameterException")
      err_call(l, "DescribeLogGroups", { nextToken = "zz" }, "InvalidParameterException")
      err_call(l, "DescribeLogGroups", { logGroupNamePrefix = "a", logGroupNamePattern = "b" },
        "InvalidParameterException")
    end)

    it("DeleteLogGroup removes the group, its streams and their files", function()
      assert(l:append("gone", "s", { { timestamp = NOW_MS, message = "m" } }))
      assert.same({}, ok_call(l, "DeleteLogGroup", { logGroupName = "gone" }))
      err_call(l, "DeleteLogGroup", { logGroupName = "gone" }, "ResourceNotFoundException")
      err_call(l, "DescribeLogStreams", { logGroupName = "gone" }, "ResourceNotFoundException")
      assert.same({ "groups.json" }, store.list_dir(dir))
      ok_call(l, "CreateLogGroup", { logGroupName = "gone" })
      assert.same({}, ok_call(l, "DescribeLogStreams", { logGroupName = "gone" }).logStreams)
      assert.is_nil(new(dir):events("gone", "s"))
    end)
  end)

  describe("log streams", function()
    before_each(function() ok_call(l, "CreateLogGroup", { logGroupName = "g" }) end)

    it("CreateLogStream errors", function()
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" })
      err_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" }, "ResourceAlreadyExistsException")
      err_call(l, "CreateLogStream", { logGroupName = "nope", logStreamName = "s" }, "ResourceNotFoundException")
      -- logStreamName pattern [^:*]*
      err_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "a:b" }, "InvalidParameterException")
      err_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "a*" }, "InvalidParameterException")
      err_call(l, "CreateLogStream", { logGroupName = "g" }, "InvalidParameterException")
    end)

    it("DescribeLogStreams: fields, prefix, orderBy, descending, pages", function()
      for _, n in ipairs { "b", "a", "c", "ab" } do
        ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = n })
      end
      -- last event times: a 300, b 100, c 200, ab none
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "a",
        logEvents = { { timestamp = NOW_MS - 400, message = "x" }, { timestamp = NOW_MS - 300, message = "y" } } })
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "b",
        logEvents = { { timestamp = NOW_MS - 500, message = "x" } } })
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "c",
        logEvents = { { timestamp = NOW_MS - 450, message = "x" } } })
      local s = ok_call(l, "DescribeLogStreams", { logGroupName = "g" }).logStreams
      local names = {}
      for i, x in ipairs(s) do names[i] = x.logStreamName end
      assert.same({ "a", "ab", "b", "c" }, names)
      assert.equal(NOW_MS - 400, s[1].firstEventTimestamp)
      assert.equal(NOW_MS - 300, s[1].lastEventTimestamp)
      assert.equal(NOW_MS, s[1].lastIngestionTime)
      assert.equal(0, s[1].storedBytes)
      assert.equal("arn:aws:logs:eu-west-1:123456789012:log-group:g:log-stream:a", s[1].arn)
      assert.is_nil(s[2].firstEventTimestamp)
      assert.is_nil(s[2].lastEventTimestamp)
      local p = ok_call(l, "DescribeLogStreams", { logGroupName = "g", logStreamNamePrefix = "a" }).logStreams
      assert.equal(2, #p)
      local t = ok_call(l, "DescribeLogStreams", { logGroupName = "g", orderBy = "LastEventTime", descending = true })
      names = {}
      for i, x in ipairs(t.logStreams) do names[i] = x.logStreamName end
      assert.same({ "a", "c", "b", "ab" }, names)
      -- pages of 1, descending by name
      names = {}
      local token
      repeat
        local out = ok_call(l, "DescribeLogStreams", { logGroupName = "g", descending = true, limit = 1, nextToken = token })
        assert.is_true(#out.logStreams <= 1)
        for _, x in ipairs(out.logStreams) do names[#names + 1] = x.logStreamName end
        token = out.nextToken
      until not token
      assert.same({ "c", "b", "ab", "a" }, names)
      err_call(l, "DescribeLogStreams", { logGroupName = "g", orderBy = "LastEventTime", logStreamNamePrefix = "a" },
        "InvalidParameterException")
      err_call(l, "DescribeLogStreams", { logGroupName = "g", orderBy = "Size" }, "InvalidParameterException")
      err_call(l, "DescribeLogStreams", { logGroupName = "g", limit = 51 }, "InvalidParameterException")
      err_call(l, "DescribeLogStreams", { logGroupName = "g", descending = "yes" }, "InvalidParameterException")
    end)
  end)

  describe("PutLogEvents", function()
    local function put(events, extra)
      local p = { logGroupName = "g", logStreamName = "s", logEvents = events }
      for k, v in pairs(extra or {}) do p[k] = v end
      return l:call("PutLogEvents", p)
    end
    before_each(function()
      ok_call(l, "CreateLogGroup", { logGroupName = "g" })
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" })
    end)

    it("stores events and ignores the sequence token", function()
      local out = assert(put({ { timestamp = NOW_MS, message = "a" } }, { sequenceToken = "not-a-token" }))
      assert.is_nil(out.rejectedLogEventsInfo)
      assert.same({ "a" }, msgs(l:events("g", "s")))
    end)

    it("requires chronological order", function()
      local _, err = put({ { timestamp = NOW_MS, message = "a" }, { timestamp = NOW_MS - 1, message = "b" } })
      assert.equal("InvalidParameterException", err.code)
      assert.same({}, l:events("g", "s"))
      -- equal timestamps are in order
      assert(put({ { timestamp = NOW_MS, message = "a" }, { timestamp = NOW_MS, message = "b" } }))
    end)

    it("limits the count to 10,000 and the size to 1,048,576 bytes with 26 bytes per event", function()
      local many = {}
      for i = 1, 10001 do many[i] = { timestamp = NOW_MS, message = "x" } end
      local _, err = put(many)
      assert.equal("InvalidParameterException", err.code)
      many[10001] = nil
      assert(put(many))
      -- 4 x (262118 + 26) = 1,048,576 exactly: accepted
      local m = string.rep("x", 262118)
      assert(put({ { timestamp = NOW_MS, message = m }, { timestamp = NOW_MS, message = m },
        { timestamp = NOW_MS, message = m }, { timestamp = NOW_MS, message = m } }))
      -- 4 x (209690 + 26) + (209687 + 26) = 1,048,577: one byte too many
      local a, b = string.rep("y", 209690), string.rep("y", 209687)
      _, err = put({ { timestamp = NOW_MS, message = a }, { timestamp = NOW_MS, message = a },
        { timestamp = NOW_MS, message = a }, { timestamp = NOW_MS, message = a }, { timestamp = NOW_MS, message = b } })
      assert.equal("InvalidParameterException", err.code)
      -- one event over 256 KB (262144 bytes with its 26)
      _, err = put({ { timestamp = NOW_MS, message = string.rep("z", 262119) } })
      assert.equal("InvalidParameterException", err.code)
      _, err = put({})
      assert.equal("InvalidParameterException", err.code)
    end)

    it("refuses a batch spanning more than 24 hours", function()
      local day = 24 * 3600 * 1000
      local _, err = put({ { timestamp = NOW_MS - day - 1, message = "a" }, { timestamp = NOW_MS, message = "b" } })
      assert.equal("InvalidParameterException", err.code)
      assert(put({ { timestamp = NOW_MS - day, message = "a" }, { timestamp = NOW_MS, message = "b" } }))
    end)

    it("rejects events more than 14 days old or 2 hours ahead and reports their indexes", function()
      local old = NOW_MS - 14 * 24 * 3600 * 1000 - 1
      local new_ = NOW_MS + 2 * 3600 * 1000 + 1
      -- spans under 24 h are impossible with both, so test each side alone
      local out = assert(put({ { timestamp = old, message = "o1" }, { timestamp = old, message = "o2" },
        { timestamp = old + 2, message = "ok" } }))
      assert.same({ tooOldLogEventEndIndex = 1 }, out.rejectedLogEventsInfo)
      out = assert(put({ { timestamp = NOW_MS, message = "ok2" }, { timestamp = new_, message = "n1" },
        { timestamp = new_, message = "n2" } }))
      assert.same({ tooNewLogEventStartIndex = 1 }, out.rejectedLogEventsInfo)
      assert.same({ "ok", "ok2" }, msgs(l:events("g", "s")))
      -- exactly 2 hours ahead is still accepted
      out = assert(put({ { timestamp = NOW_MS + 2 * 3600 * 1000, message = "edge" } }))
      assert.is_nil(out.rejectedLogEventsInfo)
    end)

    it("missing group or stream and malformed input", function()
      local _, err = l:call("PutLogEvents", { logGroupName = "nope", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS, message = "a" } } })
      assert.equal("ResourceNotFoundException", err.code)
      _, err = l:call("PutLogEvents", { logGroupName = "g", logStreamName = "nope",
        logEvents = { { timestamp = NOW_MS, message = "a" } } })
      assert.equal("ResourceNotFoundException", err.code)
      _, err = put({ { timestamp = NOW_MS } })
      assert.equal("InvalidParameterException", err.code)
      _, err = put({ { message = "x" } })
      assert.equal("InvalidParameterException", err.code)
      _, err = put("nope")
      assert.equal("InvalidParameterException", err.code)
      _, err = put(nil)
      assert.equal("InvalidParameterException", err.code)
    end)
  end)

  describe("GetLogEvents", function()
    before_each(function()
      ok_call(l, "CreateLogGroup", { logGroupName = "g" })
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" })
      local evs = {}
      for i = 1, 25 do evs[i] = { timestamp = NOW_MS + i * 10, message = "m" .. i } end
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s", logEvents = evs })
    end)

    local function get(p)
      p.logGroupName, p.logStreamName = p.logGroupName or "g", p.logStreamName or "s"
      return ok_call(l, "GetLogEvents", p)
    end

    it("reads forward from the head and returns the same token at the end", function()
      local seen, token, pages = {}, nil, 0
      local out = get({ startFromHead = true, limit = 10 })
      while true do
        pages = pages + 1
        for _, e in ipairs(out.events) do seen[#seen + 1] = e.message end
        assert.matches("^f/%d+$", out.nextForwardToken)
        assert.matches("^b/%d+$", out.nextBackwardToken)
        local prev = token
        token = out.nextForwardToken
        if token == prev then break end
        out = get({ nextToken = token, limit = 10 })
      end
      assert.equal(4, pages) -- 10, 10, 5, then an empty page with the same token
      assert.equal(25, #seen)
      assert.equal("m1", seen[1])
      assert.equal("m25", seen[25])
      -- events appended later are read with the last token
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS + 1000, message = "late" } } })
      assert.same({ "late" }, msgs(get({ nextToken = token }).events))
    end)

    it("without startFromHead returns the newest events and pages backwards", function()
      local out = get({ limit = 10 })
      assert.equal("m16", out.events[1].message)
      assert.equal("m25", out.events[10].message)
      local back = get({ nextToken = out.nextBackwardToken, limit = 10 })
      assert.equal("m6", back.events[1].message)
      assert.equal("m15", back.events[10].message)
      back = get({ nextToken = back.nextBackwardToken, limit = 10 })
      assert.same({ "m1", "m2", "m3", "m4", "m5" }, msgs(back.events))
      local done = get({ nextToken = back.nextBackwardToken, limit = 10 })
      assert.same({}, done.events)
      assert.equal(back.nextBackwardToken, done.nextBackwardToken)
      -- and forward again from there
      assert.equal("m1", get({ nextToken = done.nextForwardToken, limit = 1 }).events[1].message)
      -- a forward token from a backward page continues after its last event
      assert.equal("m6", get({ nextToken = back.nextForwardToken, limit = 1 }).events[1].message)
    end)

    it("applies startTime (inclusive) and endTime (exclusive)", function()
      local out = get({ startFromHead = true, startTime = NOW_MS + 50, endTime = NOW_MS + 100 })
      assert.same({ "m5", "m6", "m7", "m8", "m9" }, msgs(out.events))
      out = get({ startTime = NOW_MS + 245 })
      assert.same({ "m25" }, msgs(out.events))
      out = get({ startTime = NOW_MS + 1000 })
      assert.same({}, out.events)
    end)

    it("limits a page to 1 MB", function()
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "big" })
      local m = string.rep("q", 200000)
      for _ = 1, 2 do
        local evs = {}
        for i = 1, 4 do evs[i] = { timestamp = NOW_MS, message = m } end
        ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "big", logEvents = evs })
      end
      -- 5 x 200,026 = 1,000,130 <= 1 MB < 6 x 200,026
      local out = get({ logStreamName = "big", startFromHead = true })
      assert.equal(5, #out.events)
      assert.equal(3, #get({ logStreamName = "big", nextToken = out.nextForwardToken }).events)
    end)

    it("errors", function()
      err_call(l, "GetLogEvents", { logGroupName = "g", logStreamName = "nope" }, "ResourceNotFoundException")
      err_call(l, "GetLogEvents", { logGroupName = "nope", logStreamName = "s" }, "ResourceNotFoundException")
      err_call(l, "GetLogEvents", { logGroupName = "g", logStreamName = "s", nextToken = "x/1" },
        "InvalidParameterException")
      err_call(l, "GetLogEvents", { logGroupName = "g", logStreamName = "s", limit = 0 }, "InvalidParameterException")
      err_call(l, "GetLogEvents", { logGroupName = "g", logStreamName = "s", limit = 10001 },
        "InvalidParameterException")
      err_call(l, "GetLogEvents", { logGroupName = "g" }, "InvalidParameterException")
    end)

    it("an empty stream gives no events and usable tokens", function()
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "empty" })
      local out = get({ logStreamName = "empty", startFromHead = true })
      assert.same({}, out.events)
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "empty",
        logEvents = { { timestamp = NOW_MS, message = "first" } } })
      assert.same({ "first" }, msgs(get({ logStreamName = "empty", nextToken = out.nextForwardToken }).events))
    end)
  end)

  describe("FilterLogEvents", function()
    before_each(function()
      ok_call(l, "CreateLogGroup", { logGroupName = "g" })
      for _, s in ipairs { "web-1", "web-2", "db" } do
        ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = s })
      end
      local function put(s, evs) ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = s, logEvents = evs }) end
      put("web-1", { { timestamp = NOW_MS + 1, message = "ERROR disk full" },
        { timestamp = NOW_MS + 4, message = "INFO all good" }, { timestamp = NOW_MS + 6, message = "WARN slow request" } })
      put("web-2", { { timestamp = NOW_MS + 2, message = "ERROR timeout talking to db" },
        { timestamp = NOW_MS + 5, message = "INFO request served" } })
      put("db", { { timestamp = NOW_MS + 3, message = "ERROR disk almost full" },
        { timestamp = NOW_MS + 7, message = "checkpoint done" } })
    end)

    local function filter(p)
      p.logGroupName = "g"
      return ok_call(l, "FilterLogEvents", p)
    end

    it("returns every stream's events interleaved by time", function()
      local out = filter({})
      assert.same({ "ERROR disk full", "ERROR timeout talking to db", "ERROR disk almost full", "INFO all good",
        "INFO request served", "WARN slow request", "checkpoint done" }, msgs(out.events))
      assert.equal("web-2", out.events[2].logStreamName)
      assert.equal(3, #out.searchedLogStreams)
      assert.is_true(out.searchedLogStreams[1].searchedCompletely)
      local ids = {}
      for _, e in ipairs(out.events) do
        assert.is_nil(ids[e.eventId]); ids[e.eventId] = true
        assert.equal(NOW_MS, e.ingestionTime)
      end
      assert.is_nil(out.nextToken)
    end)

    it("matches terms, quoted phrases, -exclusions and ?alternatives", function()
      assert.same({ "ERROR disk full", "ERROR disk almost full" }, msgs(filter({ filterPattern = "ERROR disk" }).events))
      assert.same({ "ERROR disk full" }, msgs(filter({ filterPattern = '"disk full"' }).events))
      assert.same({ "ERROR timeout talking to db" }, msgs(filter({ filterPattern = "ERROR -disk" }).events))
      assert.same({ "ERROR disk full", "ERROR timeout talking to db", "ERROR disk almost full", "WARN slow request" },
        msgs(filter({ filterPattern = "?ERROR ?WARN" }).events))
      -- terms are case sensitive
      assert.same({}, filter({ filterPattern = "error" }).events)
      assert.equal(7, #filter({ filterPattern = "" }).events)
      err_call(l, "FilterLogEvents", { logGroupName = "g", filterPattern = '"open' }, "InvalidParameterException")
    end)

    it("selects streams by name or prefix and times inclusively", function()
      assert.same({ "ERROR disk full", "INFO all good", "WARN slow request" },
        msgs(filter({ logStreamNames = { "web-1" } }).events))
      local two = filter({ logStreamNames = { "web-1", "db" } })
      assert.same({ "ERROR disk full", "ERROR disk almost full", "INFO all good", "WARN slow request",
        "checkpoint done" }, msgs(two.events))
      assert.equal(2, #two.searchedLogStreams)
      assert.equal(5, #filter({ logStreamNamePrefix = "web" }).events)
      assert.same({ "ERROR disk almost full", "INFO all good", "INFO request served" },
        msgs(filter({ startTime = NOW_MS + 3, endTime = NOW_MS + 5 }).events))
      err_call(l, "FilterLogEvents", { logGroupName = "g", logStreamNames = { "db" }, logStreamNamePrefix = "w" },
        "InvalidParameterException")
      err_call(l, "FilterLogEvents", { logGroupName = "nope" }, "ResourceNotFoundException")
      err_call(l, "FilterLogEvents", { logGroupName = "g", nextToken = "garbage" }, "InvalidParameterException")
    end)

    it("pages with nextToken without losing or repeating events", function()
      local seen, token, pages = {}, nil, 0
      repeat
        local out = filter({ limit = 2, nextToken = token })
        pages = pages + 1
        for _, e in ipairs(out.events) do seen[#seen + 1] = e.message end
        token = out.nextToken
      until not token
      assert.equal(4, pages)
      assert.equal(7, #seen)
      assert.same(msgs(filter({}).events), seen)
    end)
  end)

  describe("persistence", function()
    it("groups, streams and events survive a restart", function()
      ok_call(l, "CreateLogGroup", { logGroupName = "g" })
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" })
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "empty" })
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS + 5, message = "b" } } })
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS + 1, message = "a" } } })
      l:close()
      local again = new(dir)
      local s = ok_call(again, "DescribeLogStreams", { logGroupName = "g" }).logStreams
      assert.equal(2, #s)
      assert.equal("empty", s[1].logStreamName)
      assert.equal(NOW_MS + 1, s[2].firstEventTimestamp)
      local out = ok_call(again, "GetLogEvents", { logGroupName = "g", logStreamName = "s", startFromHead = true })
      assert.same({ "a", "b" }, msgs(out.events))
      err_call(again, "CreateLogStream", { logGroupName = "g", logStreamName = "s" }, "ResourceAlreadyExistsException")
    end)

    it("skips a torn last line left by a crash and keeps appending", function()
      assert(l:append("g", "s", { { timestamp = NOW_MS, message = "whole" } }))
      local path = dir .. "/g1/s1.log"
      local f = assert(io.open(path, "ab"))
      f:write('1700000000001 2 1700000000000 "half')
      f:close()
      local again = new(dir)
      assert.same({ "whole" }, msgs(again:events("g", "s")))
      assert(again:append("g", "s", { { timestamp = NOW_MS + 2, message = "next" } }))
      assert.same({ "whole", "next" }, msgs(new(dir):events("g", "s")))
    end)

    it("a failing disk gives nil, err from append and ServiceUnavailableException from PutLogEvents", function()
      assert(l:append("g", "s", { { timestamp = NOW_MS, message = "first" } }))
      local path = dir .. "/g1/s1.log"
      os.remove(path)
      assert(store.mkdir_p(path)) -- the stream's file is now a directory: opening it to append fails
      local ok, err = l:append("g", "s", { { timestamp = NOW_MS + 1, message = "lost" } })
      assert.is_nil(ok)
      assert.equal("LogsStoreError", err.code)
      err_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS + 1, message = "lost" } } }, "ServiceUnavailableException", 500)
      -- nothing unacknowledged is served
      assert.same({ "first" }, msgs(l:events("g", "s")))
    end)

    it("a corrupt groups.json is reported, not ignored", function()
      local f = assert(io.open(dir .. "/groups.json", "wb"))
      f:write("{not json")
      f:close()
      local svc, err = logs_mod.new{ data_dir = dir, store = store, clock = function() return NOW end }
      assert.is_nil(svc)
      assert.equal("LogsStateError", err.code)
    end)

    it("handles 100,000 events in one stream", function()
      ok_call(l, "CreateLogGroup", { logGroupName = "g" })
      ok_call(l, "CreateLogStream", { logGroupName = "g", logStreamName = "s" })
      for b = 0, 9 do
        local evs = {}
        for i = 1, 10000 do evs[i] = { timestamp = NOW_MS - 3600000 + b * 10000 + i, message = "event " .. (b * 10000 + i) } end
        ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s", logEvents = evs })
      end
      -- one older batch merged into the middle
      ok_call(l, "PutLogEvents", { logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = NOW_MS - 3600000 + 50000, message = "late" } } })
      local again = new(dir)
      local n, token, last_ts, late_at = 0, nil, -1, nil
      while true do
        local out = ok_call(again, "GetLogEvents", { logGroupName = "g", logStreamName = "s",
          startFromHead = true, nextToken = token })
        for _, e in ipairs(out.events) do
          n = n + 1
          assert(e.timestamp >= last_ts)
          last_ts = e.timestamp
          if e.message == "late" then late_at = n end
        end
        if out.nextForwardToken == token then break end
        token = out.nextForwardToken
      end
      assert.equal(100001, n)
      assert.equal(50001, late_at) -- after "event 50000", which has the same timestamp
      assert.equal(1, #ok_call(again, "FilterLogEvents", { logGroupName = "g", filterPattern = '"event 99999"' }).events)
    end)
  end)

  describe("misuse", function()
    it("raises on bad arguments and answers unknown operations with an error", function()
      assert.has_error(function() logs_mod.new() end)
      assert.has_error(function() logs_mod.new{ data_dir = 5 } end)
      assert.has_error(function() l:call(nil, {}) end)
      assert.has_error(function() l:call("DescribeLogGroups", "x") end)
      err_call(l, "PutRetentionPolicy", {}, "UnknownOperationException")
    end)

    it("works without a data dir (memory only)", function()
      local m = assert(logs_mod.new{ clock = function() return NOW end })
      assert(m:append("g", "s", { { timestamp = 1, message = "x" } }))
      assert.same({ "x" }, msgs(m:events("g", "s")))
    end)
  end)
end)

-- The same service through a real endpoint on loopback, with the project's
-- own client: the wire format is the model's, as botocore would see it.
describe("emulator logs (live, through the endpoint)", function()
  local aws = require "aio_aws"
  local emulator = require "aio_aws.emulator"
  local run = require "support.run"
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rm_rf(dir) end)

  -- Start an endpoint on a free port, run fn(client, em), close it.
  local function with_logs(fn, faults)
    return run(function()
      local em = assert(emulator.start{ data_dir = dir, port = 0, faults = faults })
      local session = assert(aws.session{ region = "us-east-1",
        credentials = { access_key = em.access_key, secret_key = em.secret_key } })
      local logs = assert(session:client("logs", { endpoint_url = em.url, retries = { max_attempts = 1 } }))
      local ok, err = pcall(fn, logs, em)
      em:close()
      if not ok then error(err, 0) end
    end)
  end

  local function now_ms() return os.time() * 1000 end

  it("groups and streams: create, describe, delete and their errors", function()
    with_logs(function(logs)
      assert(logs:create_log_group{ logGroupName = "/app/live" })
      local _, err = logs:create_log_group{ logGroupName = "/app/live" }
      assert.equal("ResourceAlreadyExistsException", err.code)
      assert.equal(400, err.status)
      _, err = logs:create_log_group{ logGroupName = "has space" }
      assert.equal("InvalidParameterException", err.code)
      for i = 1, 5 do assert(logs:create_log_group{ logGroupName = "/page/" .. i }) end
      local all = assert(logs:paginate("DescribeLogGroups", { logGroupNamePrefix = "/page/" }, { page_size = 2 })
        :build_full_result())
      assert.equal(5, #all.logGroups)
      assert.equal("/page/1", all.logGroups[1].logGroupName)
      assert.equal("arn:aws:logs:us-east-1:123456789012:log-group:/page/1:*", all.logGroups[1].arn)
      assert(logs:create_log_stream{ logGroupName = "/app/live", logStreamName = "one" })
      _, err = logs:create_log_stream{ logGroupName = "/app/live", logStreamName = "one" }
      assert.equal("ResourceAlreadyExistsException", err.code)
      _, err = logs:create_log_stream{ logGroupName = "/nope", logStreamName = "one" }
      assert.equal("ResourceNotFoundException", err.code)
      local s = assert(logs:describe_log_streams{ logGroupName = "/app/live", orderBy = "LastEventTime" })
      assert.equal("one", s.logStreams[1].logStreamName)
      assert.equal("number", type(s.logStreams[1].creationTime))
      _, err = logs:describe_log_streams{ logGroupName = "/app/live", orderBy = "LastEventTime", logStreamNamePrefix = "o" }
      assert.equal("InvalidParameterException", err.code)
      assert(logs:delete_log_group{ logGroupName = "/app/live" })
      _, err = logs:delete_log_group{ logGroupName = "/app/live" }
      assert.equal("ResourceNotFoundException", err.code)
      _, err = logs:describe_log_streams{ logGroupName = "/app/live" }
      assert.equal("ResourceNotFoundException", err.code)
    end)
  end)

  it("put, get with tokens, filter, and the PutLogEvents rules", function()
    with_logs(function(logs)
      assert(logs:create_log_group{ logGroupName = "g" })
      assert(logs:create_log_stream{ logGroupName = "g", logStreamName = "s" })
      assert(logs:create_log_stream{ logGroupName = "g", logStreamName = "t" })
      local t0 = now_ms() - 60000
      local evs = {}
      for i = 1, 30 do evs[i] = { timestamp = t0 + i, message = (i % 3 == 0 and "ERROR " or "INFO ") .. i } end
      local out = assert(logs:put_log_events{ logGroupName = "g", logStreamName = "s", logEvents = evs,
        sequenceToken = "anything" })
      assert.is_nil(out.rejectedLogEventsInfo)
      assert(logs:put_log_events{ logGroupName = "g", logStreamName = "t",
        logEvents = { { timestamp = t0 + 100, message = "ERROR in t" } } })
      -- rejected: 15 days old and 3 hours ahead (separate batches: 24 h span rule)
      out = assert(logs:put_log_events{ logGroupName = "g", logStreamName = "t", logEvents = {
        { timestamp = now_ms() - 15 * 86400000, message = "old" }, { timestamp = now_ms() - 15 * 86400000 + 1, message = "old2" } } })
      assert.equal(1, out.rejectedLogEventsInfo.tooOldLogEventEndIndex)
      out = assert(logs:put_log_events{ logGroupName = "g", logStreamName = "t", logEvents = {
        { timestamp = now_ms(), message = "now" }, { timestamp = now_ms() + 3 * 3600000, message = "future" } } })
      assert.equal(1, out.rejectedLogEventsInfo.tooNewLogEventStartIndex)
      local _, err = logs:put_log_events{ logGroupName = "g", logStreamName = "s",
        logEvents = { { timestamp = t0 + 2, message = "b" }, { timestamp = t0 + 1, message = "a" } } }
      assert.equal("InvalidParameterException", err.code)
      _, err = logs:put_log_events{ logGroupName = "g", logStreamName = "missing",
        logEvents = { { timestamp = t0, message = "a" } } }
      assert.equal("ResourceNotFoundException", err.code)

      -- forward from the head, 7 at a time, until the token repeats
      local seen, token = {}, nil
      for _ = 1, 20 do
        local page = assert(logs:get_log_events{ logGroupName = "g", logStreamName = "s", limit = 7,
          startFromHead = token == nil or nil, nextToken = token })
        for _, e in ipairs(page.events) do seen[#seen + 1] = e.message end
        if page.nextForwardToken == token then break end
        token = page.nextForwardToken
      end
      assert.equal(30, #seen)
      assert.equal("INFO 1", seen[1])
      assert.equal("ERROR 30", seen[30])
      -- the newest page by default, then one page back
      local last = assert(logs:get_log_events{ logGroupName = "g", logStreamName = "s", limit = 10 })
      assert.equal("ERROR 21", last.events[1].message)
      local back = assert(logs:get_log_events{ logGroupName = "g", logStreamName = "s", limit = 10,
        nextToken = last.nextBackwardToken })
      assert.equal("INFO 11", back.events[1].message)
      _, err = logs:get_log_events{ logGroupName = "g", logStreamName = "s", nextToken = "bogus" }
      assert.equal("InvalidParameterException", err.code)

      local f = assert(logs:paginate("FilterLogEvents", { logGroupName = "g", filterPattern = "ERROR" },
        { page_size = 4 }):build_full_result())
      assert.equal(11, #f.events) -- 10 in s, 1 in t
      assert.equal("ERROR 3", f.events[1].message)
      assert.equal("t", f.events[#f.events].logStreamName)
      local one = assert(logs:filter_log_events{ logGroupName = "g", logStreamNames = { "t" }, filterPattern = '"in t"' })
      assert.equal(1, #one.events)
      assert.equal("ERROR in t", one.events[1].message)
    end)
  end)

  it("state survives a restart of the endpoint", function()
    local t0 = now_ms()
    with_logs(function(logs)
      assert(logs:create_log_group{ logGroupName = "keep" })
      assert(logs:create_log_stream{ logGroupName = "keep", logStreamName = "s" })
      assert(logs:put_log_events{ logGroupName = "keep", logStreamName = "s",
        logEvents = { { timestamp = t0, message = "acknowledged" } } })
    end)
    with_logs(function(logs)
      local out = assert(logs:get_log_events{ logGroupName = "keep", logStreamName = "s", startFromHead = true })
      assert.equal(1, #out.events)
      assert.equal("acknowledged", out.events[1].message)
      assert.equal(t0, out.events[1].timestamp)
      local s = assert(logs:describe_log_streams{ logGroupName = "keep" }).logStreams[1]
      assert.equal(t0, s.lastEventTimestamp)
    end)
  end)

  it("the throttle fault answers ThrottlingException 400 (the Logs flavour)", function()
    with_logs(function(logs)
      local _, err = logs:describe_log_groups{}
      assert.equal("ThrottlingException", err.code)
      assert.equal(400, err.status)
    end, { throttle_rate = 1 })
  end)
end)
