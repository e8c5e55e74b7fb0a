--- Retry policies, as botocore implements them: `standard`, `legacy` and
-- `adaptive` (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
--
--     local retry = require "aio_aws.retry"
--     local policy = retry.new{ mode = "standard", max_attempts = 3, service = "dynamodb" }
--     -- one policy per client: the retry quota and the rate limiter are shared
--     -- by every call made through it, as botocore keeps them per client.
--
--     local attempt = policy:start(op)          -- op: the operation model (optional)
--     while true do
--       local wait = policy:before_send()       -- adaptive: seconds to wait first
--       if wait > 0 then aws.sleep(wait) end
--       local res, err = send()                 -- transport or service error
--       local delay = attempt:next(err, res)    -- nil: stop (see attempt.reason)
--       if not delay then break end
--       aws.sleep(delay)
--     end
--     -- attempt.count: attempts made; attempt:metadata() -> ResponseMetadata
--     -- fields {RetryAttempts = count - 1, MaxAttemptsReached, RetryQuotaReached}
--
-- `attempt:next(err, res)` takes what one try produced: `err` an aio_aws
-- error (a transport error has no `status`; a service error has its code and
-- `status`), `res` the HTTP response when there was one ({status, headers,
-- body}; used for a status without an error and for DynamoDB's CRC32
-- header). It returns the seconds to wait before the next try, or nil when
-- the call must stop, with `attempt.reason` one of "success", "not
-- retryable", "max attempts", "quota exhausted". On success it also does
-- `attempt:success()` (botocore's after-call quota refund); calling it again
-- is harmless. `attempt.crc32_mismatch` is true when the last response
-- failed DynamoDB's x-amz-crc32 check (botocore retries those; when it stops
-- retrying, legacy mode raises ChecksumError and standard mode returns the
-- response: the caller decides).
--
-- `max_attempts` counts every attempt, the first included, in every mode
-- (AWS_MAX_ATTEMPTS and botocore's `total_max_attempts`; botocore's
-- `retries = {max_attempts = n}` means n retries, i.e. n + 1 here).
-- The default mode here is `standard` (the SDKs' recommended mode;
-- botocore itself still defaults to `legacy`).
--
-- Modes (botocore/retries/standard.py, adaptive.py, bucket.py,
-- throttling.py, quota.py, special.py; botocore/retryhandler.py and
-- data/_retry.json for legacy):
--
-- standard: default 3 attempts. Retried: transient errors (transport
--   failures: ConnectionError, Timeout, DNSError (EndpointConnectionError),
--   TLSError (botocore's SSLError is a ConnectionError), ProtocolError
--   (ConnectionClosedError), HTTPError (HTTPClientError); error codes
--   RequestTimeout, RequestTimeoutException, PriorRequestNotComplete; HTTP
--   500, 502, 503, 504), throttling error codes (THROTTLING_CODES below),
--   errors modeled with the `retryable` trait, sts IDPCommunicationError and
--   a DynamoDB CRC32 mismatch. Back-off `min(random() * 2^(n-1), 20)`
--   seconds after attempt n (ExponentialBackoff: the cap applies after the
--   jitter). A retry quota per policy: 500 tokens, a retry costs 5, or 10
--   after a Timeout (ConnectTimeoutError/ReadTimeoutError); a call that ends
--   in a 2xx response gives back 1 token if it was never retried, else what
--   its last retry cost (RetryQuotaChecker).
-- legacy: botocore's `_retry.json` policies, transcribed below: 5 attempts
--   (DynamoDB 10), retried on connection errors, HTTP 429, 500, 502, 503,
--   504, 509 and (error code, status) pairs per service; back-off
--   `random() * 2^(n-1)` without a cap (DynamoDB: `0.05 * 2^(n-1)`, no
--   jitter); no quota.
-- adaptive: standard plus botocore's client-side rate limiter: a token
--   bucket whose rate follows CUBIC on throttling responses. It only starts
--   limiting after the first throttling response. `policy:before_send()`
--   never blocks: it takes a token and returns how long the caller must wait
--   before sending (0 when a token was there). A caller that has to wait
--   takes its token ahead of time, so concurrent callers queue in order
--   rather than waking together (botocore blocks a thread on a condition
--   variable instead; one caller sees the same waits either way).
--
-- Never retried: ParamValidation and every other client-side error
-- (InvalidURL, Cancelled, BodyReadError, BodyWriteError, ...). botocore does
-- not read Retry-After or x-amz-retry-after headers, nor does this module.
--
-- Tests inject `clock` (seconds, any origin) and `random` ([0, 1)).
-- No I/O, nothing at require time.
local M = {}

local floor, min, max, type, mtype = math.floor, math.min, math.max, type, math.type

-- --------------------------------------------------------------- tables

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

--- Error codes botocore treats as throttling (ThrottledRetryableChecker).
M.THROTTLING_CODES = set{
  "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
  "TooManyRequestsException", "ProvisionedThroughputExceededException",
  "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
  "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
  "EC2ThrottledException",
}

--- Transient error codes and statuses (TransientRetryableChecker).
M.TRANSIENT_CODES = set{ "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete" }
M.TRANSIENT_STATUS = set{ 500, 502, 503, 504 }

-- Transport error codes of aio_aws.http (README "Errors"): an error with one
-- of these codes and no HTTP status never reached the service.
local TRANSPORT = set{ "Timeout", "ConnectionError", "DNSError", "TLSError", "InvalidURL",
  "ProtocolError", "BodyReadError", "BodyWriteError", "Cancelled", "HTTPError", "OutOfMemory" }

-- standard: botocore's TransientRetryableChecker retries ConnectionError
-- (EndpointConnectionError for refused/DNS, SSLError, ConnectTimeoutError,
-- ProxyConnectionError) and HTTPClientError (ReadTimeoutError,
-- ConnectionClosedError for urllib3's ProtocolError, any other HTTP client
-- failure). BodyReadError/BodyWriteError here are local file failures.
local STANDARD_TRANSPORT = set{ "Timeout", "ConnectionError", "DNSError", "TLSError", "ProtocolError", "HTTPError" }
-- legacy: GENERAL_CONNECTION_ERROR (retryhandler.EXCEPTION_MAP) is
-- ConnectionError, ConnectionClosedError, ReadTimeoutError,
-- EndpointConnectionError: not the generic HTTPClientError.
local LEGACY_TRANSPORT = set{ "Timeout", "ConnectionError", "DNSError", "TLSError", "ProtocolError" }

-- botocore/data/_retry.json (botocore 1.29.27), same layout: `definitions`
-- and `retry` with a `__default__` and per-service (endpoint prefix) parts.
local RETRY_JSON = {
  definitions = {
    throttling = { applies_when = { response = { service_error_code = "Throttling", http_status_code = 400 } } },
    throttling_exception = { applies_when = { response = { service_error_code = "ThrottlingException", http_status_code = 400 } } },
    throttled_exception = { applies_when = { response = { service_error_code = "ThrottledException", http_status_code = 400 } } },
    request_throttled_exception = {
      applies_when = { response = { service_error_code = "RequestThrottledException", http_status_code = 400 } } },
    too_many_requests = { applies_when = { response = { http_status_code = 429 } } },
    general_socket_errors = { applies_when = { socket_errors = { "GENERAL_CONNECTION_ERROR" } } },
    general_server_error = { applies_when = { response = { http_status_code = 500 } } },
    bad_gateway = { applies_when = { response = { http_status_code = 502 } } },
    service_unavailable = { applies_when = { response = { http_status_code = 503 } } },
    gateway_timeout = { applies_when = { response = { http_status_code = 504 } } },
    limit_exceeded = { applies_when = { response = { http_status_code = 509 } } },
    throughput_exceeded = {
      applies_when = { response = { service_error_code = "ProvisionedThroughputExceededException", http_status_code = 400 } } },
  },
  retry = {
    __default__ = {
      max_attempts = 5,
      delay = { type = "exponential", base = "rand", growth_factor = 2 },
      policies = {
        general_socket_errors = "general_socket_errors", general_server_error = "general_server_error",
        bad_gateway = "bad_gateway", service_unavailable = "service_unavailable",
        gateway_timeout = "gateway_timeout", limit_exceeded = "limit_exceeded",
        throttling_exception = "throttling_exception", throttled_exception = "throttled_exception",
        request_throttled_exception = "request_throttled_exception", throttling = "throttling",
        too_many_requests = "too_many_requests", throughput_exceeded = "throughput_exceeded",
      },
    },
    organizations = { policies = { too_many_requests = {
      applies_when = { response = { service_error_code = "TooManyRequestsException", http_status_code = 400 } } } } },
    dynamodb = {
      max_attempts = 10,
      delay = { type = "exponential", base = 0.05, growth_factor = 2 },
      policies = {
        still_processing = {
          applies_when = { response = { service_error_code = "TransactionInProgressException", http_status_code = 400 } } },
        crc32 = { applies_when = { response = { crc32body = "x-amz-crc32" } } },
      },
    },
    ec2 = { policies = {
      request_limit_exceeded = { applies_when = { response = { service_error_code = "RequestLimitExceeded", http_status_code = 503 } } },
      ec2_throttled_exception = { applies_when = { response = { service_error_code = "EC2ThrottledException", http_status_code = 503 } } },
    } },
    cloudsearch = { policies = { request_limit_exceeded = {
      applies_when = { response = { service_error_code = "BandwidthLimitExceeded", http_status_code = 509 } } } } },
    kinesis = { policies = { request_limit_exceeded = {
      applies_when = { response = { service_error_code = "LimitExceededException", http_status_code = 400 } } } } },
    sqs = { policies = { request_limit_exceeded = {
      applies_when = { response = { service_error_code = "RequestThrottled", http_status_code = 403 } } } } },
    s3 = { policies = {
      timeouts = { applies_when = { response = { http_status_code = 400, service_error_code = "RequestTimeout" } } },
      contentmd5 = { applies_when = { response = { http_status_code = 400, service_error_code = "BadDigest" } } },
    } },
    glacier = { policies = { timeouts = {
      applies_when = { response = { http_status_code = 408, service_error_code = "RequestTimeoutException" } } } } },
    route53 = { policies = {
      request_limit_exceeded = { applies_when = { response = { service_error_code = "Throttling", http_status_code = 400 } } },
      still_processing = { applies_when = { response = { service_error_code = "PriorRequestNotComplete", http_status_code = 400 } } },
    } },
    sts = { policies = { idp_unreachable_error = {
      applies_when = { response = { service_error_code = "IDPCommunicationError", http_status_code = 400 } } } } },
  },
}

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

-- botocore.utils.merge_dicts: nested tables merge, anything else replaces.
local function merge(into, from)
  for k, v in pairs(from) do
    if type(v) == "table" and type(into[k]) == "table" then merge(into[k], v) else into[k] = deep_copy(v) end
  end
  return into
end

-- botocore.translate.build_retry_config for one endpoint prefix, compiled
-- into {max_attempts, base, growth, socket (connection errors retried),
-- crc32 (header name or nil), responses = {{status =, code =}, ...}} (a
-- response matches when its status and, if given, its error code match).
local legacy_cache = {}
local function legacy_config(prefix)
  local key = prefix or ""
  local hit = legacy_cache[key]
  if hit then return hit end
  local cfg = deep_copy(RETRY_JSON.retry.__default__)
  for name, ref in pairs(cfg.policies) do cfg.policies[name] = deep_copy(RETRY_JSON.definitions[ref]) end
  local svc = prefix and RETRY_JSON.retry[prefix]
  if svc then merge(cfg, svc) end
  hit = { max_attempts = cfg.max_attempts, base = cfg.delay.base, growth = cfg.delay.growth_factor,
    socket = false, responses = {} }
  for _, p in pairs(cfg.policies) do
    local when = p.applies_when
    if when.socket_errors then
      hit.socket = true
    elseif when.response.crc32body then
      hit.crc32 = when.response.crc32body
    else
      local r = hit.responses
      r[#r + 1] = { status = when.response.http_status_code, code = when.response.service_error_code }
    end
  end
  legacy_cache[key] = hit
  return hit
end

-- --------------------------------------------------------------- classifying

-- (code, status, transport) of one try's outcome.
local function classify(err, res)
  local status = res and res.status
  if err == nil then return nil, status, false end
  if type(err) ~= "table" then return tostring(err), status, false end
  status = err.status or status
  local code = err.code
  return code, status, status == nil and TRANSPORT[code] == true
end

-- Error shapes of the operation modeled with the `retryable` trait:
-- "transient" or "throttling" for a matching code, else nil
-- (ModeledRetryErrorDetector: the shape's error.code, else its name).
local function modeled(op, code)
  if not op or code == nil then return nil end
  local list = op.errors
  if not list then return nil end
  for i = 1, #list do
    local shape = list[i]
    local r = shape.retryable
    if r ~= nil then
      local e = shape.error
      local want = (type(e) == "table" and e.code) or shape.name
      if want == code then
        return (type(r) == "table" and r.throttling) and "throttling" or "transient"
      end
    end
  end
  return nil
end

--- True when `err` is a throttling error: one of THROTTLING_CODES, or an
-- error the operation `op` (optional) models as retryable with
-- `throttling = true` (botocore ThrottlingErrorDetector).
function M.is_throttle(err, op)
  local code, _, transport = classify(err)
  if code == nil or transport then return false end
  return M.THROTTLING_CODES[code] == true or modeled(op, code) == "throttling"
end

-- standard-mode retryable conditions, without max attempts and quota.
local function standard_retryable(code, status, transport, op, service)
  if transport then return STANDARD_TRANSPORT[code] == true end
  if code ~= nil and (M.TRANSIENT_CODES[code] or M.THROTTLING_CODES[code]) then return true end
  if status and M.TRANSIENT_STATUS[status] then return true end
  if modeled(op, code) then return true end
  -- botocore/retries/special.py RetryIDPCommunicationError
  if service == "sts" and code == "IDPCommunicationError" then return true end
  return false
end

--- True when standard mode would retry `err` (ignoring max attempts and
-- the quota): transient, throttling or modeled retryable errors. `op`
-- (optional) is the operation model, for modeled errors.
function M.is_retryable(err, op)
  if err == nil then return false end
  local code, status, transport = classify(err)
  return standard_retryable(code, status, transport, op, nil)
end

-- DynamoDB's x-amz-crc32 header against the body (special.RetryDDBChecksumError,
-- retryhandler.CRC32Checker): true on a mismatch.
local function crc32_mismatch(res, header)
  local h = res and res.headers
  local want = h and h[header]
  if want == nil or type(res.body) ~= "string" then return false end
  local crc32 = require("aio_aws.core").crc32
  return crc32(res.body) ~= tonumber(want)
end

-- --------------------------------------------------------------- adaptive

-- botocore/retries/bucket.py TokenBucket, without blocking: `acquire`
-- reserves a token and says how long to wait for it.
local MIN_RATE = 0.5

local function bucket_refill(b, now)
  if b.last == nil then b.last = now return end
  local fill = (now - b.last) * b.fill_rate
  b.capacity = min(b.max_capacity, b.capacity + fill)
  b.last = now
end

local function bucket_set_rate(b, value, now)
  bucket_refill(b, now)
  b.fill_rate = max(value, MIN_RATE)
  b.max_capacity = value >= 1 and value or 1
  b.capacity = min(b.capacity, b.max_capacity)
end

-- botocore/retries/throttling.py CubicCalculator.
local CUBIC_SCALE, CUBIC_BETA = 0.4, 0.7

local function cubic_zero_point(w_max)
  return (w_max * (1 - CUBIC_BETA) / CUBIC_SCALE) ^ (1 / 3.0)
end

local Limiter = {}
Limiter.__index = Limiter

-- botocore/retries/adaptive.py register_retry_handler: CUBIC starting at a
-- max rate of 0, a bucket at rate 1, RateClocker smoothing 0.8 over
-- half-second buckets; the limiter is off until the first throttle.
local function new_limiter(clock)
  -- the clock is read in botocore's order: CUBIC start, bucket, rate clocker
  local lim = setmetatable({
    clock = clock, enabled = false,
    w_max = 0, k = cubic_zero_point(0), last_fail = clock(),
    measured = 0, count = 0, bucket = { capacity = 0 },
  }, Limiter)
  bucket_set_rate(lim.bucket, 1, clock())
  lim.last_bucket = floor(clock())
  return lim
end

-- RateClocker.record: the measured sending rate, updated per half second.
function Limiter:record()
  local t = self.clock()
  local b = floor(t * 2) / 2
  self.count = self.count + 1
  if b > self.last_bucket then
    local current = self.count / (b - self.last_bucket)
    self.measured = current * 0.8 + self.measured * (1 - 0.8)
    self.count = 0
    self.last_bucket = b
  end
  return self.measured
end

-- ClientRateLimiter.on_receiving_response.
function Limiter:update(throttled)
  local measured = self:record()
  local now = self.clock()
  local new_rate
  if not throttled then
    new_rate = CUBIC_SCALE * (now - self.last_fail - self.k) ^ 3 + self.w_max
  else
    local rate = measured
    if self.enabled then rate = min(measured, self.bucket.fill_rate) end
    self.w_max = rate
    self.k = cubic_zero_point(rate)
    self.last_fail = now
    new_rate = rate * CUBIC_BETA
    self.enabled = true
  end
  bucket_set_rate(self.bucket, min(new_rate, 2.0 * measured), self.clock())
  return new_rate
end

-- ClientRateLimiter.on_sending_request + TokenBucket.acquire(1).
function Limiter:acquire()
  if not self.enabled then return 0 end
  local b = self.bucket
  bucket_refill(b, self.clock())
  local cap = b.capacity
  b.capacity = cap - 1
  if cap >= 1 then return 0 end
  return (1 - cap) / b.fill_rate
end

-- --------------------------------------------------------------- policy

local Policy = {}
Policy.__index = Policy
Policy.__name = "aio_aws.retry.Policy"

local Attempt = {}
Attempt.__index = Attempt
Attempt.__name = "aio_aws.retry.Attempt"

M.MODES = set{ "standard", "legacy", "adaptive" }
M.DEFAULT_MODE = "standard"
M.STANDARD_MAX_ATTEMPTS = 3
M.MAX_BACKOFF = 20
M.QUOTA = 500
M.RETRY_COST, M.TIMEOUT_RETRY_COST, M.NO_RETRY_INCREMENT = 5, 10, 1

local OPTIONS = set{ "mode", "max_attempts", "service", "clock", "random", "quota" }

--- Make a retry policy (one per client).
-- @tparam[opt] table opts
--   `mode` "standard" (default), "legacy" or "adaptive";
--   `max_attempts` total attempts (default: 3; legacy: _retry.json's, 5 or 10);
--   `service` the botocore service name / endpoint prefix ("dynamodb",
--     "s3", ...): legacy per-service policies, sts and DynamoDB special cases;
--   `clock` function returning seconds (adaptive; default the core's
--     monotonic clock); `random` function returning [0, 1) (default
--     math.random); `quota` initial retry quota (default 500).
-- @return Policy; raises on bad options (misuse)
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("retry.new: options table expected", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then error("retry.new: unknown option " .. tostring(k), 2) end
  end
  local mode = opts.mode or M.DEFAULT_MODE
  if not M.MODES[mode] then
    error("retry.new: mode must be one of standard, legacy, adaptive, got " .. tostring(mode), 2)
  end
  local n = opts.max_attempts
  if n ~= nil and (mtype(n) ~= "integer" or n < 1) then
    -- botocore InvalidMaxRetryAttemptsError: total attempts must be >= 1
    error("retry.new: max_attempts must be an integer >= 1 (attempts in total), got " .. tostring(n), 2)
  end
  for _, k in ipairs{ "clock", "random" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then error("retry.new: " .. k .. " must be a function", 2) end
  end
  if opts.service ~= nil and type(opts.service) ~= "string" then error("retry.new: service must be a string", 2) end
  local quota = opts.quota or M.QUOTA
  if mtype(quota) ~= "integer" or quota < 0 then error("retry.new: quota must be a non-negative integer", 2) end
  local p = setmetatable({ mode = mode, service = opts.service, random = opts.random or math.random }, Policy)
  if mode == "legacy" then
    p.legacy = legacy_config(opts.service)
    p.max_attempts = n or p.legacy.max_attempts
  else
    p.max_attempts = n or M.STANDARD_MAX_ATTEMPTS
    p.quota_max, p.quota_left = quota, quota
    if mode == "adaptive" then
      local clock = opts.clock
      if not clock then
        local ok, core = pcall(require, "aio_aws.core")
        clock = ok and core.monotime or os.time
      end
      p.limiter = new_limiter(clock)
    end
  end
  -- DynamoDB's CRC32 header is checked in both modes (special.py, _retry.json).
  if opts.service == "dynamodb" then p.crc32_header = "x-amz-crc32" end
  return p
end

--- Start one call: returns its Attempt.
-- @param[opt] op the operation model (aio_aws.model), for modeled retryable errors
function Policy:start(op)
  if op ~= nil and type(op) ~= "table" then error("retry: policy:start(op): op must be an operation model", 2) end
  return setmetatable({ policy = self, op = op, count = 0 }, Attempt)
end

--- Seconds to wait before sending (adaptive mode once throttled; else 0).
-- The token is taken now: send after waiting, without calling again.
function Policy:before_send()
  local lim = self.limiter
  if not lim then return 0 end
  return lim:acquire()
end

--- Feed the rate limiter one response (adaptive; `attempt:next` does this
-- itself). Returns the new CUBIC rate, or nil outside adaptive mode.
function Policy:after_response(throttled)
  local lim = self.limiter
  if not lim then return nil end
  return lim:update(throttled and true or false)
end

--- Retry tokens left (standard and adaptive; nil in legacy mode).
function Policy:quota_available()
  return self.quota_left
end

--- Rate limiter state (adaptive; nil otherwise): enabled, fill_rate
-- (the bucket's max_rate), capacity, measured_rate, w_max, k, last_fail.
function Policy:limiter_state()
  local lim = self.limiter
  if not lim then return nil end
  local b = lim.bucket
  return { enabled = lim.enabled, fill_rate = b.fill_rate, max_capacity = b.max_capacity,
    capacity = b.capacity, measured_rate = lim.measured, w_max = lim.w_max, k = lim.k,
    last_fail = lim.last_fail }
end

-- quota.RetryQuota.release: never above the initial capacity.
local function release(p, amount)
  p.quota_left = min(p.quota_max, p.quota_left + amount)
end

--- The call ended with a 2xx response: refund the retry quota
-- (RetryQuotaChecker.release_retry_quota). Idempotent.
function Attempt:success()
  if self.released then return end
  self.released = true
  local p = self.policy
  if p.quota_left == nil then return end
  release(p, self.quota_cost or M.NO_RETRY_INCREMENT)
end

local function stop(a, reason, ok2xx)
  a.reason = reason
  if ok2xx then a:success() end
  return nil
end

-- A response matching one of the (status, error code) policies.
local function legacy_response_match(cfg, code, status)
  if status == nil then return false end
  local list = cfg.responses
  for i = 1, #list do
    local c = list[i]
    if status == c.status and (c.code == nil or c.code == code) then return true end
  end
  return false
end

--- Record the outcome of the attempt just made and decide.
-- @param err nil on success, else the error (transport: no `status`)
-- @param[opt] res the HTTP response, when one arrived
-- @return seconds to wait before the next attempt, or nil to stop
function Attempt:next(err, res)
  if err ~= nil and type(err) ~= "table" then error("attempt:next: err must be an error table or nil", 2) end
  if res ~= nil and type(res) ~= "table" then error("attempt:next: res must be a response table or nil", 2) end
  local p = self.policy
  local count = self.count + 1
  self.count = count
  local code, status, transport = classify(err, res)
  self.crc32_mismatch = p.crc32_header ~= nil and not transport and crc32_mismatch(res, p.crc32_header) or nil
  local ok2xx = err == nil and (status == nil or (status >= 200 and status < 300))
  local maxn = p.max_attempts

  if p.legacy then
    -- retryhandler.MaxAttemptsDecorator over the MultiChecker of the
    -- service's policies, in _retry.json's order: the general ones, then the
    -- service's own, the CRC32 check last.
    local cfg = p.legacy
    if transport then
      -- ExceptionRaiser: the error is caught (retried) only below max
      -- attempts and only for GENERAL_CONNECTION_ERROR; else re-raised.
      if not (cfg.socket and LEGACY_TRANSPORT[code]) then return stop(self, "not retryable", false) end
      if count >= maxn then
        self.max_attempts_reached = true
        return stop(self, "max attempts", false)
      end
    elseif legacy_response_match(cfg, code, status) then
      if count >= maxn then
        self.max_attempts_reached = true -- botocore flags the response's metadata
        return stop(self, "max attempts", false)
      end
    elseif cfg.crc32 and self.crc32_mismatch then
      -- CRC32Checker raises ChecksumError: retried below max attempts,
      -- raised to the caller at max attempts (no metadata flag then)
      if count >= maxn then return stop(self, "max attempts", false) end
    else
      return stop(self, ok2xx and "success" or "not retryable", false)
    end
    -- retryhandler.delay_exponential: base * growth_factor ^ (attempts - 1)
    local base = cfg.base == "rand" and p.random() or cfg.base
    return base * cfg.growth ^ (count - 1)
  end

  -- standard / adaptive
  if p.limiter then
    -- adaptive.py hooks needs-retry: every response and every exception
    local throttled = code ~= nil and not transport and
      (M.THROTTLING_CODES[code] == true or modeled(self.op, code) == "throttling")
    p.limiter:update(throttled)
  end
  -- MaxAttemptsChecker runs first and flags the metadata on every response
  if count >= maxn then self.max_attempts_reached = true end
  local retryable = self.crc32_mismatch or (not ok2xx and standard_retryable(code, status, transport, self.op, p.service))
  if not retryable then return stop(self, ok2xx and "success" or "not retryable", ok2xx) end
  if count >= maxn then return stop(self, "max attempts", ok2xx) end
  local cost = (transport and code == "Timeout") and M.TIMEOUT_RETRY_COST or M.RETRY_COST
  if cost > p.quota_left then
    self.quota_reached = true
    return stop(self, "quota exhausted", ok2xx)
  end
  p.quota_left = p.quota_left - cost
  self.quota_cost = cost
  -- ExponentialBackoff.delay_amount: min(rand * 2 ** (attempt - 1), 20)
  return min(p.random() * 2 ^ (count - 1), M.MAX_BACKOFF)
end

--- ResponseMetadata fields botocore adds: RetryAttempts (retries made),
-- MaxAttemptsReached and RetryQuotaReached when they happened.
function Attempt:metadata()
  return {
    RetryAttempts = self.count > 0 and self.count - 1 or 0,
    MaxAttemptsReached = self.max_attempts_reached or nil,
    RetryQuotaReached = self.quota_reached or nil,
  }
end

M.Policy, M.Attempt = Policy, Attempt
return M
