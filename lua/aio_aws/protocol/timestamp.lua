--- Timestamps: parsing to epoch seconds and formatting per `timestampFormat`.
--
-- Smithy's three formats (https://smithy.io/2.0/spec/protocol-traits.html#timestampformat-trait):
--   date-time     RFC 3339 / ISO 8601, "2015-01-25T08:00:00Z" (models: "iso8601")
--   http-date     RFC 7231 IMF-fixdate, "Sun, 25 Jan 2015 08:00:00 GMT" ("rfc822")
--   epoch-seconds seconds since 1970 with optional fraction ("unixTimestamp")
--
-- Parsing accepts any of them whatever the model says, as botocore's
-- `parse_timestamp` does (services are not always consistent), plus ISO
-- offsets other than Z. Results are numbers: an integer when the instant is
-- a whole second, else a float (microsecond precision, computed as one
-- division so it equals what Python's datetime.timestamp() gives).
-- Arithmetic is proleptic Gregorian in UTC; the C library's time zone and
-- locale are never involved.
local M = {}

local byte, find, match, format, sub = string.byte, string.find, string.match, string.format, string.sub
local floor, tointeger = math.floor, math.tointeger

-- Days since 1970-01-01 of a civil date (H. Hinnant, "chrono-compatible
-- low-level date algorithms", days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end
M.days_from_civil = days_from_civil

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local MONTH_NAMES = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local DAY_NAMES = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }

local function finish(secs, frac)
  -- frac: digit string after the decimal point, or nil
  if not frac or frac == "" or not find(frac, "[1-9]") then return secs end
  local micro = tonumber(sub(frac .. "00000", 1, 6))
  return (secs * 1000000 + micro) / 1000000
end

local function valid(y, mo, d, h, mi, s)
  return mo >= 1 and mo <= 12 and d >= 1 and d <= 31 and h <= 24 and mi <= 59 and s <= 60
end

-- "+hh:mm", "-hhmm", "+hh", "Z" -> offset seconds, or nil
local function tz_offset(z)
  if z == "" or z == "Z" or z == "z" or z == "GMT" or z == "UTC" or z == "UT" then return 0 end
  local sign, hh, mm = match(z, "^%s*([+-])(%d%d):?(%d?%d?)$")
  if not sign then return nil end
  local off = tonumber(hh) * 3600 + (tonumber(mm) or 0) * 60
  return sign == "-" and -off or off
end

local DIG = {}
for i = 0, 9 do DIG[48 + i] = i end

-- days_from_civil of the first of a month, cached by year*100+month: the
-- hot path (a page of ListObjectsV2 timestamps) then costs a lookup.
local month_days = {}
local function month_base(y, mo)
  local k = y * 100 + mo
  local v = month_days[k]
  if not v then
    v = days_from_civil(y, mo, 1)
    month_days[k] = v
  end
  return v
end

-- "YYYY-MM-DDThh:mm:ss[.f+]Z" without allocating; nil when not that form.
local function iso_fast(s)
  local y1, y2, y3, y4, dash1, m1, m2, dash2, d1, d2, tt, h1, h2, col1, i1, i2, col2, s1, s2, nxt = byte(s, 1, 20)
  if col2 ~= 58 or dash1 ~= 45 or dash2 ~= 45 or col1 ~= 58 or not (tt == 84 or tt == 116 or tt == 32) then return nil end
  if not (y1 >= 48 and y1 <= 57 and y2 >= 48 and y2 <= 57 and y3 >= 48 and y3 <= 57 and y4 >= 48 and y4 <= 57
      and m1 >= 48 and m1 <= 49 and m2 >= 48 and m2 <= 57 and d1 >= 48 and d1 <= 51 and d2 >= 48 and d2 <= 57
      and h1 >= 48 and h1 <= 50 and h2 >= 48 and h2 <= 57 and i1 >= 48 and i1 <= 53 and i2 >= 48 and i2 <= 57
      and s1 >= 48 and s1 <= 54 and s2 and s2 >= 48 and s2 <= 57) then
    return nil
  end
  local mo = m1 * 10 + m2 - 528
  local d = d1 * 10 + d2 - 528
  if mo < 1 or mo > 12 or d < 1 then return nil end
  local secs = (month_base(y1 * 1000 + y2 * 100 + y3 * 10 + y4 - 53328, mo) + d - 1) * 86400
    + (h1 * 10 + h2 - 528) * 3600 + (i1 * 10 + i2 - 528) * 60 + (s1 * 10 + s2 - 528)
  if nxt == 90 or nxt == 122 then -- Z
    if #s == 20 then return secs end
    return nil
  end
  if nxt ~= 46 then return nil end
  local len = #s
  if len == 24 then -- ".mmmZ", the usual S3 form
    local f1, f2, f3, z = byte(s, 21, 24)
    if z ~= 90 or not (f1 >= 48 and f1 <= 57 and f2 >= 48 and f2 <= 57 and f3 >= 48 and f3 <= 57) then
      return nil
    end
    local ms = f1 * 100 + f2 * 10 + f3 - 5328
    if ms == 0 then return secs end
    return (secs * 1000 + ms) / 1000
  end
  local last = byte(s, len)
  if last ~= 90 and last ~= 122 then return nil end
  local micro, k = 0, 21
  while k < len do
    local dg = DIG[byte(s, k)]
    if not dg then return nil end
    if k <= 26 then micro = micro * 10 + dg end
    k = k + 1
  end
  if k == 21 then return nil end
  for _ = k, 26 do micro = micro * 10 end
  if micro == 0 then return secs end
  return (secs * 1000000 + micro) / 1000000
end
M.iso_fast = iso_fast

local function parse_iso(s)
  local v = iso_fast(s)
  if v then return v end
  -- general: basic or extended format, offsets, optional time
  local ys, mos, ds, rest = match(s, "^(%d%d%d%d)%-?(%d%d)%-?(%d%d)(.*)$")
  if not ys then return nil end
  local y, mo, d = tonumber(ys), tonumber(mos), tonumber(ds)
  local h, mi, sec
  if rest == "" then
    h, mi, sec = 0, 0, 0
  else
    local hs, mis, ss
    hs, mis, ss, rest = match(rest, "^[Tt ](%d%d):?(%d%d):?(%d?%d?)(.*)$")
    if not hs then return nil end
    h, mi, sec = tonumber(hs), tonumber(mis), tonumber(ss) or 0
  end
  if not valid(y, mo, d, h, mi, sec) then return nil end
  local frac, z = match(rest, "^[.,](%d+)(.*)$")
  if not frac then z = rest end
  local off = tz_offset(z)
  if not off then return nil end
  local secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off
  return finish(secs, frac)
end

-- "Sun, 06 Nov 1994 08:49:37 GMT", "06 Nov 1994 08:49:37 +0000",
-- "Sunday, 06-Nov-94 08:49:37 GMT" (RFC 850), "Sun Nov  6 08:49:37 1994" (asctime)
local function parse_http(s)
  local d, mon, y, h, mi, sec, frac, z = match(s,
    "^%a*,?%s*(%d%d?)[%s%-](%a%a%a)[%s%-](%d+)%s+(%d%d?):(%d%d):(%d%d)%.?(%d*)%s*(.-)%s*$")
  if not d then
    local mon2, d2, h2, mi2, s2, y2 = match(s, "^%a+%s+(%a%a%a)%s+(%d%d?)%s+(%d%d?):(%d%d):(%d%d)%s+(%d%d%d%d)%s*$")
    if not mon2 then return nil end
    d, mon, y, h, mi, sec, frac, z = d2, mon2, y2, h2, mi2, s2, "", "GMT"
  end
  local mo = MONTHS[mon:sub(1, 1):upper() .. mon:sub(2):lower()]
  if not mo then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  d, h, mi, sec = tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if not valid(y, mo, d, h, mi, sec) then return nil end
  local off = tz_offset(z)
  if not off then return nil end
  return finish(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off, frac)
end

--- Parse a timestamp given as epoch seconds (number or numeric string),
-- ISO 8601 / RFC 3339, or HTTP-date.
-- @return epoch seconds (integer or float), or nil, message
function M.parse(v)
  local tv = type(v)
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "invalid timestamp: " .. tostring(v) end
    return tointeger(v) or v
  end
  if tv ~= "string" then return nil, "invalid timestamp: " .. tostring(v) end
  local r = iso_fast(v)
  if r then return r end
  local c = byte(v, 5)
  if c == 45 or (c and c >= 48 and c <= 57 and byte(v, 9) == 84) then -- "YYYY-" or "YYYYMMDDT"
    r = parse_iso(v)
    if r then return r end
  end
  if find(v, "^%s*%-?%d+%.?%d*%s*$") then
    local n = tonumber(v)
    if n then return tointeger(n) or n end
  end
  r = parse_http(v) or parse_iso(v)
  if r then return r end
  return nil, "invalid timestamp: " .. v
end

--- Normalise `timestampFormat` spellings ("iso8601", "rfc822",
-- "unixTimestamp", or Smithy's "date-time", "http-date", "epoch-seconds").
local CANON = {
  iso8601 = "iso8601", ["date-time"] = "iso8601",
  rfc822 = "rfc822", ["http-date"] = "rfc822",
  unixtimestamp = "unixtimestamp", ["epoch-seconds"] = "unixtimestamp",
}

--- Format epoch seconds.
-- @tparam number t epoch seconds
-- @tparam string fmt a timestampFormat
-- @return a string (iso8601, rfc822) or a number (unixTimestamp)
function M.format(t, fmt)
  local which = CANON[fmt] or CANON[string.lower(fmt)]
  if not which then error("unknown timestampFormat " .. tostring(fmt), 0) end
  local whole = floor(t)
  local frac = t - whole
  if which == "unixtimestamp" then
    if frac == 0 then return tointeger(whole) end
    -- millisecond precision, as Smithy's epoch-seconds allows
    local ms = floor(frac * 1000 + 0.5)
    if ms == 0 then return tointeger(whole) end
    if ms == 1000 then return tointeger(whole + 1) end
    return tonumber(format("%d.%03d", whole, ms))
  end
  local tm = os.date("!*t", tointeger(whole))
  if which == "iso8601" then
    local micro = floor(frac * 1e6 + 0.5)
    if micro >= 1000000 then micro = 999999 end
    if micro > 0 then
      -- botocore's ISO8601_MICRO: "%Y-%m-%dT%H:%M:%S.%fZ"
      return format("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec, micro)
    end
    return format("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec)
  end
  return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAY_NAMES[tm.wday], tm.day,
    MONTH_NAMES[tm.month], tm.year, tm.hour, tm.min, tm.sec)
end

return M
