-- luacheck: std +busted
-- Retry policies (aio_aws.retry) against botocore itself: the same call
-- outcomes, the same random numbers and the same clock are fed to botocore's
-- own classes (Debian's /usr/bin/python3 and python3-botocore: standard.
-- RetryHandler with RetryQuotaChecker, the legacy handler built from
-- data/_retry.json by translate.build_retry_config, adaptive.ClientRateLimiter
-- with bucket.TokenBucket and throttling.CubicCalculator) and to this module;
-- every delay, stop, quota level, metadata flag and rate-limiter value must
-- agree. Hand cases check the formulas as botocore's code writes them.
local retry = require "aio_aws.retry"
local errors = require "aio_aws.errors"
local model = require "aio_aws.model"
local cjson = require "cjson"
local proc = require "support.proc"
local harness = require "support.botocore_harness"

-- The harness: reads scenarios (JSON) on stdin, answers results (JSON).
local HARNESS = [==[
import json, math, random, sys
from types import SimpleNamespace
import botocore.session
import botocore.model
from botocore import exceptions as bx, retryhandler, translate
from botocore.retries import adaptive, bucket, quota, standard, throttling

RETRY_JSON = "/usr/lib/python3/dist-packages/botocore/data/_retry.json"
session = botocore.session.get_session()
models = {}

def op_model(sc, name):
    key = sc["service"] if isinstance(sc.get("model"), str) or sc.get("model") is None else id(sc)
    if key not in models:
        if isinstance(sc.get("model"), dict):
            models[key] = botocore.model.ServiceModel(sc["model"], service_name=sc["service"])
        else:
            models[key] = session.get_service_model(sc.get("model") or sc["service"])
    return models[key].operation_model(name)

# The transport error codes of aio_aws.http and the botocore exception each
# stands for (botocore/httpsession.py maps urllib3's errors to these).
EXC = {
    "Timeout": lambda: bx.ReadTimeoutError(endpoint_url="http://x"),
    "ConnectionError": lambda: bx.EndpointConnectionError(endpoint_url="http://x"),
    "DNSError": lambda: bx.EndpointConnectionError(endpoint_url="http://x"),
    "TLSError": lambda: bx.SSLError(endpoint_url="http://x", error="e"),
    "ProtocolError": lambda: bx.ConnectionClosedError(endpoint_url="http://x"),
    "HTTPError": lambda: bx.HTTPClientError(error="x"),
    "BodyReadError": lambda: OSError("cannot read the body file"),
    "BodyWriteError": lambda: OSError("cannot write the sink file"),
    "InvalidURL": lambda: ValueError("bad url"),
    "Cancelled": lambda: RuntimeError("cancelled"),
}

def outcome(oc):
    if "transport" in oc:
        return None, EXC[oc["transport"]]()
    headers = dict(oc.get("headers") or {})
    http = SimpleNamespace(status_code=oc["status"], headers=headers, content=oc.get("body", "").encode())
    parsed = {"ResponseMetadata": {}}
    if oc.get("code") is not None:
        parsed["Error"] = {"Code": oc["code"], "Message": ""}
    return (http, parsed), None

class FakeClock:
    def __init__(self, t):
        self.t = t
    def current_time(self):
        return self.t
    def sleep(self, amount):
        self.t += amount

class FakeCondition:
    """TokenBucket's condition variable, waiting on the fake clock."""
    def __init__(self, clock):
        self.clock = clock
        self.waits = 0
    def __enter__(self):
        return self
    def __exit__(self, *a):
        return False
    def wait(self, amount):
        # Time always moves on, as it does for botocore's real waits: a wait
        # shorter than the clock's resolution still advances it one step.
        self.waits += 1
        if self.waits > 100000:
            raise RuntimeError("token bucket wait loop does not end")
        self.clock.t = max(self.clock.t + amount, math.nextafter(self.clock.t, math.inf))
    def notify(self):
        pass

def limiter_for(clock):
    # adaptive.register_retry_handler, with the fake clock
    rate_adjustor = throttling.CubicCalculator(starting_max_rate=0, start_time=clock.current_time())
    token_bucket = bucket.TokenBucket(max_rate=1, clock=clock)
    token_bucket._new_fill_rate_condition = FakeCondition(clock)
    rate_clocker = adaptive.RateClocker(clock)
    detector = standard.ThrottlingErrorDetector(retry_event_adapter=standard.RetryEventAdapter())
    lim = adaptive.ClientRateLimiter(rate_adjustor=rate_adjustor, rate_clocker=rate_clocker,
                                     token_bucket=token_bucket, throttling_detector=detector, clock=clock)
    return lim, rate_adjustor, token_bucket, rate_clocker

def snapshot(lim, ra, tb, rc):
    return {"enabled": lim._enabled, "fill_rate": tb._fill_rate, "max_capacity": tb._max_capacity,
            "capacity": tb._current_capacity, "measured_rate": rc._measured_rate,
            "w_max": ra._w_max, "k": ra._k, "last_fail": ra._last_fail}

def run_standard(sc):
    rnd = iter(sc["random"])
    rq = quota.RetryQuota(sc.get("quota", 500))
    qc = standard.RetryQuotaChecker(rq)
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=sc.get("max_attempts") or standard.DEFAULT_MAX_ATTEMPTS),
            retry_backoff=standard.ExponentialBackoff(random=lambda: next(rnd))),
        retry_event_adapter=standard.RetryEventAdapter(), retry_quota=qc)
    lim = None
    if sc["mode"] == "adaptive":
        clock = FakeClock(sc["t0"])
        lim, ra, tb, rc = limiter_for(clock)
    results = []
    for call in sc["calls"]:
        op = op_model(sc, call["op"])
        ctx = {}
        res = {"delays": [], "waits": [], "states": [], "meta": None}
        last = None
        for i, oc in enumerate(call["outcomes"], 1):
            if lim:
                clock.t += oc.get("dt", 0)
                before = clock.t
                lim.on_sending_request(request=None)
                res["waits"].append(clock.t - before)
            response, exc = outcome(oc)
            kw = dict(response=response, attempts=i, operation=op, caught_exception=exc,
                      request_dict={"context": ctx})
            delay = handler.needs_retry(**kw)
            if lim:
                lim.on_receiving_response(**kw)
                res["states"].append(snapshot(lim, ra, tb, rc))
            res["delays"].append(delay)
            last = response
            if delay is None:
                break
            if lim:
                clock.t += delay
        if last is not None:
            # after-call: botocore emits it when the final attempt got a response
            qc.release_retry_quota(ctx, last[0])
            md = last[1]["ResponseMetadata"]
            res["meta"] = {k: md[k] for k in ("MaxAttemptsReached", "RetryQuotaReached") if k in md}
        res["quota"] = rq.available_capacity
        results.append(res)
    return results

def run_legacy(sc):
    rnd = iter(sc["random"])
    random.random = lambda: next(rnd)  # retryhandler.delay_exponential's base "rand"
    with open(RETRY_JSON) as f:
        raw = json.load(f)  # fresh: build_retry_config mutates shared definitions
    client = {"max_attempts": sc["max_attempts"] - 1} if sc.get("max_attempts") else None
    cfg = translate.build_retry_config(sc["service"], raw.get("retry", {}), raw.get("definitions", {}), client)
    handler = retryhandler.create_retry_handler(cfg, sc["service"])
    results = []
    for call in sc["calls"]:
        res = {"delays": [], "meta": None, "raised": None}
        for i, oc in enumerate(call["outcomes"], 1):
            response, exc = outcome(oc)
            try:
                delay = handler(attempts=i, response=response, caught_exception=exc,
                                request_dict={"context": {}})
            except Exception as e:
                delay, res["raised"] = None, type(e).__name__
            res["delays"].append(delay)
            if response is not None:
                md = response[1]["ResponseMetadata"]
                res["meta"] = {k: md[k] for k in ("MaxAttemptsReached",) if k in md}
            else:
                res["meta"] = None
            if delay is None:
                break
        results.append(res)
    return results

out = []
for sc in json.load(sys.stdin):
    out.append(run_legacy(sc) if sc["mode"] == "legacy" else run_standard(sc))
json.dump(out, sys.stdout)
]==]

local work

local function botocore(scenarios)
  return harness.run(work, HARNESS, cjson.encode(scenarios))
end

local rng = harness.rng

-- Random numbers that survive JSON exactly: multiples of 1/1024 in [0, 1).
local function random_list(r, n)
  local out = {}
  for i = 1, n do out[i] = (r(1024) - 1) / 1024 end
  return out
end

-- crc32 of "{}" (zlib.crc32, computed with Python: python3 -c
-- "import zlib; print(zlib.crc32(b'{}'))").
local CRC_OF_BRACES = "2745614147"

-- Outcomes of one attempt: a transport failure, an error response, or a
-- success (optionally with DynamoDB's x-amz-crc32 header).
local POOL = {
  { status = 200 }, { status = 200 }, { status = 200 }, { status = 200 },
  { status = 400, code = "Throttling" }, { status = 400, code = "ThrottlingException" },
  { status = 400, code = "ThrottledException" }, { status = 400, code = "RequestThrottledException" },
  { status = 400, code = "TooManyRequestsException" }, { status = 429, code = "TooManyRequestsException" },
  { status = 400, code = "ProvisionedThroughputExceededException" },
  { status = 400, code = "TransactionInProgressException" }, { status = 503, code = "RequestLimitExceeded" },
  { status = 509, code = "BandwidthLimitExceeded" }, { status = 400, code = "LimitExceededException" },
  { status = 403, code = "RequestThrottled" }, { status = 503, code = "SlowDown" },
  { status = 400, code = "PriorRequestNotComplete" }, { status = 503, code = "EC2ThrottledException" },
  { status = 400, code = "RequestTimeout" }, { status = 408, code = "RequestTimeoutException" },
  { status = 500, code = "InternalError" }, { status = 502, code = "BadGateway" },
  { status = 503, code = "ServiceUnavailable" }, { status = 504, code = "GatewayTimeout" },
  { status = 501, code = "NotImplemented" }, { status = 400, code = "ValidationException" },
  { status = 403, code = "AccessDenied" }, { status = 404, code = "NoSuchKey" },
  { status = 400, code = "IDPCommunicationError" }, { status = 400, code = "BadDigest" },
  { status = 429, code = "SomethingElse" }, { status = 400, code = "InternalServerException" },
  { status = 400, code = "ServiceUnavailableException" }, { status = 400, code = "CustomBusy" },
  { status = 400, code = "Custom.Slow" },
  { transport = "Timeout" }, { transport = "ConnectionError" }, { transport = "DNSError" },
  { transport = "TLSError" }, { transport = "ProtocolError" }, { transport = "HTTPError" },
  { transport = "BodyReadError" }, { transport = "BodyWriteError" }, { transport = "InvalidURL" },
  { transport = "Cancelled" },
  { status = 200, body = "{}", headers = { ["x-amz-crc32"] = "12345" } },
  { status = 200, body = "{}", headers = { ["x-amz-crc32"] = CRC_OF_BRACES } },
}
-- Outcomes that are retried in most modes, to drain the quota.
local FAILING = {
  { status = 400, code = "ThrottlingException" }, { status = 503, code = "ServiceUnavailable" },
  { transport = "Timeout" }, { transport = "ConnectionError" }, { status = 500, code = "InternalError" },
  { status = 200 },
}

-- What the client hands to attempt:next for one outcome.
local function as_lua(oc)
  if oc.transport then return errors.new(oc.transport, "transport failure"), nil end
  local res = { status = oc.status, headers = oc.headers or {}, body = oc.body or "" }
  if oc.status >= 300 then
    return errors.new(oc.code, "service error", { status = oc.status }), res
  end
  return nil, res
end

-- A hand-made model with errors modeled as retryable, one with its own
-- error code (the `error.code` trait) and throttling.
local CUSTOM = {
  metadata = { apiVersion = "2020-01-01", endpointPrefix = "custom", protocol = "json",
    serviceId = "Custom", signatureVersion = "v4", jsonVersion = "1.1", targetPrefix = "Custom" },
  operations = {
    Work = { name = "Work", http = { method = "POST", requestUri = "/" },
      input = { shape = "WorkInput" },
      errors = { { shape = "Busy" }, { shape = "Slow" }, { shape = "Plain" } } },
  },
  shapes = {
    WorkInput = { type = "structure", members = {} },
    Busy = { type = "structure", members = {}, exception = true, retryable = { throttling = false },
      error = { code = "CustomBusy", httpStatusCode = 400 } },
    Slow = { type = "structure", members = {}, exception = true, retryable = { throttling = true },
      error = { code = "Custom.Slow", httpStatusCode = 400 } },
    Plain = { type = "structure", members = {}, exception = true },
  },
}

local function service_for(sc)
  if type(sc.model) == "table" then return model.new(sc.model, { name = sc.service }) end
  return assert(model.load(sc.model or sc.service))
end

local compared = 0

local function close_to(a, b, what)
  if a == b then return end
  local scale = math.max(1, math.abs(a), math.abs(b))
  assert(math.abs(a - b) <= 1e-9 * scale, ("%s: %.17g vs botocore %.17g"):format(what, a, b))
end

-- Run one scenario through aio_aws.retry and compare with botocore's results.
local function check_scenario(sc, expected)
  local svc = service_for(sc)
  local t = sc.t0 or 0
  local policy = retry.new{ mode = sc.mode, max_attempts = sc.max_attempts, service = sc.service,
    quota = sc.quota, random = (function()
      local i = 0
      return function() i = i + 1 return sc.random[i] end
    end)(), clock = function() return t end }
  for ci, call in ipairs(sc.calls) do
    local exp = expected[ci]
    local where = ("%s %s call %d"):format(sc.mode, sc.service, ci)
    local a = policy:start(svc:operation(call.op))
    local n = 0
    for i, oc in ipairs(call.outcomes) do
      if sc.mode == "adaptive" then
        t = t + (oc.dt or 0)
        local wait = policy:before_send()
        close_to(wait, exp.waits[i], where .. " wait before attempt " .. i)
        t = t + wait
      end
      local delay = a:next(as_lua(oc))
      n = i
      local want = exp.delays[i]
      if want == cjson.null then
        assert(delay == nil, ("%s attempt %d: retry after %s, botocore stops"):format(where, i, tostring(delay)))
      else
        assert(delay ~= nil, ("%s attempt %d: stops (%s), botocore retries after %s")
          :format(where, i, tostring(a.reason), tostring(want)))
        assert(delay == want, ("%s attempt %d: delay %.17g, botocore %.17g"):format(where, i, delay, want))
      end
      compared = compared + 1
      if sc.mode == "adaptive" then
        local st, ws = policy:limiter_state(), exp.states[i]
        assert(st.enabled == ws.enabled, where .. " limiter enabled")
        for _, k in ipairs{ "fill_rate", "max_capacity", "capacity", "measured_rate", "w_max", "k", "last_fail" } do
          close_to(st[k], ws[k], ("%s attempt %d %s"):format(where, i, k))
        end
        compared = compared + 1
        if delay then t = t + delay end
      end
      if not delay then break end
    end
    assert(n == #exp.delays, where .. ": number of attempts")
    if sc.mode ~= "legacy" then
      assert(policy:quota_available() == exp.quota,
        ("%s: quota %s, botocore %s"):format(where, tostring(policy:quota_available()), tostring(exp.quota)))
      compared = compared + 1
    end
    if exp.meta ~= cjson.null then
      local md = a:metadata()
      assert(md.RetryAttempts == n - 1)
      assert((md.MaxAttemptsReached or false) == (exp.meta.MaxAttemptsReached or false),
        where .. ": MaxAttemptsReached")
      assert((md.RetryQuotaReached or false) == (exp.meta.RetryQuotaReached or false), where .. ": RetryQuotaReached")
      compared = compared + 1
    end
    if exp.raised and exp.raised ~= cjson.null then
      -- legacy: botocore raises (the transport error, or ChecksumError) instead of retrying
      assert(a.reason ~= "success", where .. ": botocore raised " .. exp.raised)
      if exp.raised == "ChecksumError" then assert.is_true(a.crc32_mismatch) end
    end
  end
end

local function scenarios(mode, services, seed, calls_each, opts)
  opts = opts or {}
  local r = rng(seed)
  local out = {}
  for _, s in ipairs(services) do
    local name, op, mdl = s[1], s[2], s[3]
    local sc = { mode = mode, service = name, model = mdl, calls = {}, t0 = 1000 + (r(1024) - 1) / 1024,
      max_attempts = opts.max_attempts, quota = opts.quota }
    if opts.vary_attempts and r(3) == 1 then sc.max_attempts = r(6) end
    local rounds = 0
    for _ = 1, calls_each do
      local outcomes = {}
      local failing = opts.failing and r(4) > 1
      for i = 1, 12 do
        local pick = failing and FAILING[r(#FAILING)] or POOL[r(#POOL)]
        local oc = {}
        for k, v in pairs(pick) do oc[k] = v end
        if mode == "adaptive" then oc.dt = (r(512) - 1) / 1024 * (r(4) == 1 and 8 or 1) end
        outcomes[i] = oc
      end
      rounds = rounds + #outcomes
      sc.calls[#sc.calls + 1] = { op = op, outcomes = outcomes }
    end
    sc.random = random_list(r, rounds)
    out[#out + 1] = sc
  end
  return out
end

local function compare(list)
  local expected = botocore(list)
  for i, sc in ipairs(list) do check_scenario(sc, expected[i]) end
end

describe("aio_aws.retry", function()
  setup(function() work = proc.tmpdir("retry") end)
  teardown(function() if work then proc.rmdir(work) end end)

  describe("formulas from botocore's code", function()
    it("standard: min(random * 2^(attempt-1), 20), cost 5 a retry, 10 after a timeout", function()
      -- botocore/retries/standard.py ExponentialBackoff.delay_amount and RetryQuotaChecker
      local p = retry.new{ mode = "standard", max_attempts = 10, random = function() return 0.75 end }
      local a = p:start()
      local want = { 0.75, 1.5, 3, 6, 12, 20, 20, 20, 20 }
      for n = 1, 9 do
        assert.equal(want[n], a:next(errors.new("Throttling", "slow down", { status = 400 })))
        assert.equal(500 - 5 * n, p:quota_available())
      end
      assert.is_nil(a:next(errors.new("Throttling", "slow down", { status = 400 })))
      assert.equal("max attempts", a.reason)
      assert.same({ RetryAttempts = 9, MaxAttemptsReached = true }, a:metadata())
      local b = p:start()
      assert.equal(0.75, b:next(errors.new("Timeout", "timed out")))
      assert.equal(455 - 10, p:quota_available())
      assert.is_nil(b:next(nil, { status = 200 }))
      assert.equal("success", b.reason)
      assert.equal(455, p:quota_available()) -- the last retry's cost comes back
      local c = p:start()
      assert.is_nil(c:next(nil, { status = 204 }))
      assert.equal(456, p:quota_available()) -- never retried: 1 token back
    end)

    it("standard: the quota runs out after 100 retries at cost 5 and refills 1 per success", function()
      local p = retry.new{ random = function() return 0 end }
      local retried = 0
      for _ = 1, 60 do
        local a = p:start()
        while a:next(errors.new("ServiceUnavailable", "busy", { status = 503 })) do retried = retried + 1 end
      end
      assert.equal(100, retried)
      assert.equal(0, p:quota_available())
      local a = p:start()
      assert.is_nil(a:next(errors.new("SlowDown", "busy", { status = 503 })))
      assert.equal("quota exhausted", a.reason)
      assert.is_true(a:metadata().RetryQuotaReached)
      for _ = 1, 7 do p:start():next(nil, { status = 200 }) end
      assert.equal(7, p:quota_available())
      local b = p:start()
      assert.equal(0, b:next(errors.new("SlowDown", "busy", { status = 503 })))
      assert.equal(2, p:quota_available())
      assert.is_nil(b:next(errors.new("Timeout", "timed out")))
      assert.equal("quota exhausted", b.reason)
    end)

    it("legacy: random * 2^(attempt-1) without a cap, 5 attempts; DynamoDB 0.05 * 2^(attempt-1), 10", function()
      -- botocore/retryhandler.py delay_exponential, data/_retry.json
      local p = retry.new{ mode = "legacy", random = function() return 0.5 end }
      local a = p:start()
      for n = 1, 4 do assert.equal(0.5 * 2 ^ (n - 1), a:next(errors.new("Throttling", "x", { status = 400 }))) end
      assert.is_nil(a:next(errors.new("Throttling", "x", { status = 400 })))
      assert.equal("max attempts", a.reason)
      assert.is_nil(p:quota_available())
      local d = retry.new{ mode = "legacy", service = "dynamodb", random = function() error("not used") end }
      local b = d:start()
      for n = 1, 9 do
        assert.equal(0.05 * 2 ^ (n - 1), b:next(errors.new("ProvisionedThroughputExceededException", "x", { status = 400 })))
      end
      assert.is_nil(b:next(errors.new("ProvisionedThroughputExceededException", "x", { status = 400 })))
      assert.equal(5, retry.new{ mode = "legacy" }.max_attempts)
      assert.equal(10, d.max_attempts)
      assert.equal(3, retry.new{ mode = "legacy", max_attempts = 3 }.max_attempts)
      assert.equal(3, retry.new{}.max_attempts)
      assert.equal("standard", retry.new{}.mode)
    end)

    it("adaptive: no waiting until the first throttle, then CUBIC: rate = 0.7 * measured", function()
      -- botocore/retries/adaptive.py, throttling.py: beta 0.7, scale 0.4
      local t = 0
      local p = retry.new{ mode = "adaptive", clock = function() return t end, random = function() return 0 end }
      for _ = 1, 10 do
        assert.equal(0, p:before_send())
        p:start():next(nil, { status = 200 })
        t = t + 0.1
      end
      assert.is_false(p:limiter_state().enabled)
      p:start():next(errors.new("Throttling", "slow", { status = 400 }))
      local st = p:limiter_state()
      assert.is_true(st.enabled)
      assert.equal(st.measured_rate, st.w_max)
      -- new rate min(0.7 * measured, 2 * measured), never below 0.5
      assert.equal(math.max(0.5, 0.7 * st.measured_rate), st.fill_rate)
      -- k = (w_max * (1 - beta) / scale) ^ (1/3)
      assert.near((st.w_max * 0.3 / 0.4) ^ (1 / 3), st.k, 1e-12)
    end)
  end)

  describe("classification", function()
    local function e(code, status) return errors.new(code, "x", { status = status }) end

    it("throttling codes are retryable and throttles; others are not throttles", function()
      for _, code in ipairs{ "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "EC2ThrottledException", "PriorRequestNotComplete" } do
        assert.is_true(retry.is_throttle(e(code, 400)), code)
        assert.is_true(retry.is_retryable(e(code, 400)), code)
      end
      for _, code in ipairs{ "RequestTimeout", "RequestTimeoutException", "InternalError", "ValidationException" } do
        assert.is_false(retry.is_throttle(e(code, 400)), code)
      end
    end)

    it("transient codes, 500/502/503/504 and transport failures are retryable", function()
      for _, code in ipairs{ "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete" } do
        assert.is_true(retry.is_retryable(e(code, 400)), code)
      end
      for _, status in ipairs{ 500, 502, 503, 504 } do assert.is_true(retry.is_retryable(e("Whatever", status))) end
      for _, status in ipairs{ 400, 403, 404, 409, 429, 501, 505 } do assert.is_false(retry.is_retryable(e("Whatever", status))) end
      for _, code in ipairs{ "ConnectionError", "Timeout", "DNSError", "TLSError", "ProtocolError", "HTTPError" } do
        assert.is_true(retry.is_retryable(errors.new(code, "x")), code)
      end
    end)

    it("client-side errors are never retried", function()
      for _, code in ipairs{ "ParamValidation", "InvalidURL", "Cancelled", "BodyReadError", "BodyWriteError",
        "NoCredentials", "UnknownService" } do
        assert.is_false(retry.is_retryable(errors.new(code, "x")), code)
        local a = retry.new{}:start()
        assert.is_nil(a:next(errors.new(code, "x")))
        assert.equal("not retryable", a.reason)
      end
      assert.is_false(retry.is_retryable(nil))
    end)

    it("errors modeled with the retryable trait, by shape name or error code", function()
      local svc = model.new(CUSTOM, { name = "custom" })
      local op = svc:operation("Work")
      assert.is_true(retry.is_retryable(e("CustomBusy", 400), op))
      assert.is_false(retry.is_throttle(e("CustomBusy", 400), op))
      assert.is_true(retry.is_throttle(e("Custom.Slow", 400), op))
      assert.is_false(retry.is_retryable(e("Plain", 400), op))
      assert.is_false(retry.is_retryable(e("CustomBusy", 400))) -- without the model
    end)
  end)

  describe("misuse raises", function()
    it("bad options", function()
      assert.has_error(function() retry.new{ mode = "fast" } end)
      assert.has_error(function() retry.new{ max_attempts = 0 } end)
      assert.has_error(function() retry.new{ max_attempts = 2.5 } end)
      assert.has_error(function() retry.new{ retries = 3 } end)
      assert.has_error(function() retry.new{ clock = 5 } end)
      assert.has_error(function() retry.new():start("op") end)
      assert.has_error(function() retry.new():start():next("boom") end)
    end)
  end)

  describe("against botocore", function()
    local STANDARD_SERVICES = {
      { "batch", "SubmitJob" }, { "dynamodb", "PutItem" }, { "sts", "AssumeRoleWithSAML" },
      { "s3", "PutObject" }, { "accessanalyzer", "ApplyArchiveRule" }, { "appmesh", "CreateGatewayRoute" },
      { "custom", "Work", CUSTOM },
    }
    local LEGACY_SERVICES = {
      { "batch", "SubmitJob" }, { "dynamodb", "PutItem" }, { "sts", "AssumeRoleWithSAML" },
      { "s3", "PutObject" }, { "ec2", "DescribeInstances" }, { "sqs", "SendMessage" },
      { "kinesis", "PutRecord" }, { "cloudsearch", "DescribeDomains" }, { "glacier", "ListVaults" },
      { "route53", "ListHostedZones" }, { "organizations", "ListAccounts" }, { "logs", "PutLogEvents" },
    }

    it("standard: decisions, delays, quota and metadata over mixed calls", function()
      compare(scenarios("standard", STANDARD_SERVICES, 11, 120, { vary_attempts = true }))
    end)

    it("standard: quota accounting across many failing calls", function()
      compare(scenarios("standard", { { "batch", "SubmitJob" }, { "dynamodb", "PutItem" } }, 12, 300,
        { failing = true, max_attempts = 5 }))
      compare(scenarios("standard", { { "batch", "SubmitJob" } }, 13, 200, { failing = true, quota = 37 }))
    end)

    it("legacy: the _retry.json policies of every service that has its own", function()
      compare(scenarios("legacy", LEGACY_SERVICES, 21, 100, { vary_attempts = true }))
    end)

    it("adaptive: waits, CUBIC rates and the token bucket step by step", function()
      compare(scenarios("adaptive", { { "batch", "SubmitJob" }, { "dynamodb", "PutItem" },
        { "accessanalyzer", "ApplyArchiveRule" }, { "custom", "Work", CUSTOM } }, 31, 150, { failing = true }))
      compare(scenarios("adaptive", { { "s3", "PutObject" } }, 32, 150))
    end)

    it("made enough comparisons to mean something", function()
      assert.is_true(compared > 10000, "only " .. compared .. " comparisons")
    end)
  end)
end)
