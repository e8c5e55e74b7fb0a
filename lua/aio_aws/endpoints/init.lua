--- Endpoint resolution: which URL a client talks to and how it signs.
--
--     local endpoints = require "aio_aws.endpoints"
--     local svc = assert(require("aio_aws.model").load("batch"))
--     local ep = assert(endpoints.resolve{ service = svc, region = "eu-west-1" })
--     --> ep.url = "https://batch.eu-west-1.amazonaws.com",
--     --  ep.signing_region = "eu-west-1", ep.signing_name = "batch",
--     --  ep.partition = "aws", ep.dns_suffix = "amazonaws.com"
--
-- This is botocore's *classic* resolution: `EndpointResolver` over
-- `endpoints.json` (botocore/regions.py) plus the client-creation rules
-- layered on top of it (`ClientEndpointBridge` in botocore/client.py and
-- `ClientArgsCreator._compute_endpoint_config` in botocore/args.py: S3's
-- global us-east-1 endpoint, STS's legacy global endpoint, an explicit
-- `endpoint_url`). Newer botocore resolves through per-service rule sets
-- (`endpoint-rule-set-1.json`); for the regions and switches the classic
-- data covers, both give the same host. spec/endpoints_spec.lua compares
-- this module with Debian's botocore case by case and lists the few places
-- where we deliberately differ (each one a host that does not exist).
--
-- The data is `endpoints.json` beside this file, a stripped copy of
-- botocore's file made by `tools/gen-endpoints` (see README.md there). It is
-- read on the first call that needs it, never at `require` time.
--
-- Errors: misuse (wrong argument types, a service without
-- `metadata.endpointPrefix`) raises. A region or setting that cannot be
-- resolved returns `nil, err` with `err.code` "NoRegion" (no region and no
-- global endpoint for the service) or "EndpointResolutionError" (invalid
-- region name, a FIPS/dual-stack variant that does not exist, a malformed
-- `endpoint_url`).
local errors = require "aio_aws.errors"

local M = {}

M.FORMAT = "aio-aws-endpoints/1"

local find, sub, gsub, format = string.find, string.sub, string.gsub, string.format

-- ---------------------------------------------------------------- data

-- Python `re` region regexes (`regionRegex`, e.g. `^(us|eu|ap)\-\w+\-\d+$`)
-- as a list of Lua patterns, one per alternative of the groups. Only the
-- subset endpoints.json uses is accepted; anything else raises, so a new
-- construct in a future endpoints.json fails the generator loudly instead
-- of matching the wrong regions.
local CLASS = { w = "[%w_]", d = "%d", s = "%s", W = "[^%w_]", D = "%D", S = "%S" }

local function lua_escape(c)
  if find(c, "^[%w_]$") then return c end
  return "%" .. c
end

function M.regex_to_patterns(re)
  if type(re) ~= "string" then error("endpoints.regex_to_patterns: string expected", 2) end
  local alts = { "" } -- patterns built so far
  local i, n = 1, #re
  local function bad(why)
    error(format("endpoints: unsupported region regex %q (%s at %d)", re, why, i), 0)
  end
  local function append(list, piece)
    for k = 1, #list do list[k] = list[k] .. piece end
  end
  while i <= n do
    local c = sub(re, i, i)
    local atom
    if c == "^" then
      if i ~= 1 then bad("^ not at the start") end
      append(alts, "^"); i = i + 1
    elseif c == "$" then
      if i ~= n then bad("$ not at the end") end
      append(alts, "$"); i = i + 1
    elseif c == "(" then
      -- a group of plain alternatives: (us|eu|ap)
      local close = find(re, ")", i, true)
      if not close then bad("unclosed group") end
      local body = sub(re, i + 1, close - 1)
      if find(body, "^%?:") then body = sub(body, 3) end
      local choices = {}
      for word in (body .. "|"):gmatch("([^|]*)|") do
        if not find(word, "^[%w_-]*$") then bad("non-literal alternative") end
        choices[#choices + 1] = gsub(word, "%-", "%%-")
      end
      local q = sub(re, close + 1, close + 1)
      if q == "+" or q == "*" or q == "?" or q == "{" then bad("quantified group") end
      local out = {}
      for _, a in ipairs(alts) do
        for _, w in ipairs(choices) do out[#out + 1] = a .. w end
      end
      alts = out
      i = close + 1
    elseif c == "\\" then
      local e = sub(re, i + 1, i + 1)
      if e == "" then bad("trailing backslash") end
      atom = CLASS[e] or (find(e, "^%w$") and bad("unknown escape") or lua_escape(e))
      i = i + 2
    elseif c == "." then
      atom = "."; i = i + 1
    elseif find(c, "^[%w_%-]$") then
      atom = lua_escape(c); i = i + 1
    else
      bad("unsupported character")
    end
    if atom then
      local q = sub(re, i, i)
      if q == "+" or q == "*" or q == "?" then
        atom = atom .. (q == "*" and "*" or q == "+" and "+" or "?")
        i = i + 1
      elseif q == "{" then
        bad("counted repetition")
      end
      append(alts, atom)
    end
  end
  return alts
end

-- Endpoint entry keys resolution reads (botocore/regions.py `_resolve` and
-- client.py `ClientEndpointBridge`); `deprecated`, `sslCommonName` and the
-- descriptions are dropped.
local function strip_entry(e)
  local out = {}
  for _, k in ipairs({ "hostname", "dnsSuffix", "protocols", "signatureVersions" }) do
    if e[k] ~= nil then out[k] = e[k] end
  end
  if e.credentialScope then
    out.credentialScope = { region = e.credentialScope.region, service = e.credentialScope.service }
  end
  if e.variants then
    out.variants = {}
    for i, v in ipairs(e.variants) do
      local tags = {}
      for j, t in ipairs(v.tags or {}) do tags[j] = t end
      table.sort(tags)
      out.variants[i] = { tags = tags, hostname = v.hostname, dnsSuffix = v.dnsSuffix }
    end
    table.sort(out.variants, function(a, b) return table.concat(a.tags, ",") < table.concat(b.tags, ",") end)
  end
  return out
end

local function matches_any(patterns, s)
  for _, p in ipairs(patterns) do
    if find(s, p) then return true end
  end
  return false
end

--- Strip a decoded botocore `endpoints.json` (version 3) down to what
-- resolution reads. Used by `tools/gen-endpoints`, and by `use_data` when
-- it is given raw botocore data. Resolution over the result is identical:
-- an empty entry is dropped only for a name the partition already matches
-- as a region of a regionalized service, where botocore resolves the same
-- empty entry either way (regions.py `_endpoint_for_partition`).
-- @tparam table raw decoded endpoints.json
-- @treturn table compact data (`format`, `version`, `partitions`)
function M.compact(raw)
  if type(raw) ~= "table" or type(raw.partitions) ~= "table" then
    error("endpoints.compact: decoded endpoints.json with `partitions` expected", 2)
  end
  local parts = {}
  for pi, p in ipairs(raw.partitions) do
    local regions = {}
    for name in pairs(p.regions or {}) do regions[#regions + 1] = name end
    table.sort(regions)
    local region_set = {}
    for _, r in ipairs(regions) do region_set[r] = true end
    local patterns = p.regionRegex and M.regex_to_patterns(p.regionRegex) or {}
    local services = {}
    for sname, s in pairs(p.services or {}) do
      local regionalized = s.isRegionalized ~= false
      local eps = {}
      for ename, e in pairs(s.endpoints or {}) do
        local st = strip_entry(e)
        local is_region = region_set[ename] or matches_any(patterns, ename)
        if next(st) ~= nil or not (regionalized and is_region) then eps[ename] = st end
      end
      services[sname] = {
        endpoints = eps,
        defaults = s.defaults and strip_entry(s.defaults) or nil,
        partitionEndpoint = s.partitionEndpoint,
        isRegionalized = s.isRegionalized,
      }
    end
    parts[pi] = {
      partition = p.partition,
      dnsSuffix = p.dnsSuffix,
      regionRegex = p.regionRegex,
      regionPatterns = patterns,
      regions = regions,
      defaults = strip_entry(p.defaults or {}),
      services = services,
    }
  end
  return { format = M.FORMAT, version = math.tointeger(raw.version) or raw.version, partitions = parts }
end

local data -- prepared data, loaded on first use

-- Adds the lookup sets resolution needs; checks the shape once.
local function prepare(d)
  if type(d) ~= "table" or type(d.partitions) ~= "table" or #d.partitions == 0 then
    return nil, "no partitions"
  end
  for _, p in ipairs(d.partitions) do
    if type(p.partition) ~= "string" or type(p.dnsSuffix) ~= "string" or type(p.services) ~= "table" then
      return nil, "partition without name, dnsSuffix or services"
    end
    p.region_set = {}
    for _, r in ipairs(p.regions or {}) do p.region_set[r] = true end
    if not p.regionPatterns then
      local ok, pats = pcall(M.regex_to_patterns, p.regionRegex or "^$")
      if not ok then return nil, pats end
      p.regionPatterns = pats
    end
    p.defaults = p.defaults or {}
  end
  return d
end

local function data_file()
  local src = debug.getinfo(1, "S").source
  if sub(src, 1, 1) == "@" then
    local dir = src:sub(2):match("^(.*)[/\\]init%.lua$")
    if dir then return dir .. "/endpoints.json" end
  end
  for tmpl in package.path:gmatch("[^;]+") do
    local cand = tmpl:gsub("%?", "aio_aws/endpoints/endpoints"):gsub("%.lua$", ".json")
    local f = io.open(cand, "rb")
    if f then f:close() return cand end
  end
  return nil
end

local function load_data()
  if data then return data end
  local path = data_file()
  local f = path and io.open(path, "rb")
  if not f then
    return nil, errors.new("EndpointResolutionError", "endpoint data not found (aio_aws/endpoints/endpoints.json)")
  end
  local text = f:read("a")
  f:close()
  local ok, d = pcall(require("cjson").decode, text)
  if not ok then
    return nil, errors.new("EndpointResolutionError", "endpoint data " .. path .. " is not valid JSON")
  end
  local p, why = prepare(d)
  if not p then
    return nil, errors.new("EndpointResolutionError", "endpoint data " .. path .. ": " .. why)
  end
  data = p
  return data
end

--- Replace the endpoint data (a decoded botocore endpoints.json, raw or
-- compact), as botocore accepts a custom endpoints.json on its data path.
-- `nil` goes back to the bundled file. Returns true, or nil, err.
function M.use_data(d)
  if d == nil then data = nil return true end
  if type(d) ~= "table" then error("endpoints.use_data: table expected", 2) end
  if d.format ~= M.FORMAT then
    local ok, c = pcall(M.compact, d)
    if not ok then return nil, errors.new("EndpointResolutionError", "invalid endpoint data: " .. tostring(c)) end
    d = c
  end
  local p, why = prepare(d)
  if not p then return nil, errors.new("EndpointResolutionError", "invalid endpoint data: " .. why) end
  data = p
  return true
end

--- The data as loaded (for tools and tests): `version`, `partitions`.
function M.data()
  return load_data()
end

-- ---------------------------------------------------------------- partitions

local function region_match(p, region)
  return p.region_set[region] or matches_any(p.regionPatterns, region) or false
end

local function partition_named(d, name)
  for _, p in ipairs(d.partitions) do
    if p.partition == name then return p end
  end
  return nil
end

-- botocore's rule (regions.py `get_partition_for_region`), with its client
-- fallback: a region no partition claims is treated as one of "aws"
-- (client.py `ClientEndpointBridge.resolve` retries with partition "aws").
local function partition_for(d, region)
  for _, p in ipairs(d.partitions) do
    if region_match(p, region) then return p end
  end
  return partition_named(d, "aws") or d.partitions[1]
end

--- The partition of a region: its name ("aws", "aws-cn", "aws-us-gov",
-- "aws-iso", "aws-iso-b", ...) and DNS suffix. A region listed in a
-- partition or matching its `regionRegex` belongs to it; any other region
-- is taken to be in "aws".
-- @tparam string region
-- @treturn string partition name, or nil, err
-- @treturn string DNS suffix
function M.partition_of(region)
  if type(region) ~= "string" then error("endpoints.partition_of: region must be a string", 2) end
  local d, err = load_data()
  if not d then return nil, err end
  local p = partition_for(d, region)
  return p.partition, p.dnsSuffix
end

-- ---------------------------------------------------------------- resolution

-- botocore/utils.py `validate_region_name`: the region becomes part of a
-- host name, so anything but a DNS label is refused before it gets there.
local function valid_region(r)
  return #r >= 1 and #r <= 63 and find(r, "^[%w%-]+$") ~= nil
    and find(r, "^%w") ~= nil and find(r, "%w$") ~= nil
end

-- The regions whose STS calls go to sts.amazonaws.com under
-- `sts_regional_endpoints = legacy` (botocore/args.py
-- LEGACY_GLOBAL_STS_REGIONS; AWS SDKs reference guide, "AWS STS Regional
-- endpoints").
local LEGACY_GLOBAL_STS = {}
for _, r in ipairs({ "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global",
  "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
  "us-east-1", "us-east-2", "us-west-1", "us-west-2" }) do
  LEGACY_GLOBAL_STS[r] = true
end
M.LEGACY_GLOBAL_STS_REGIONS = LEGACY_GLOBAL_STS

-- Signature versions botocore knows (botocore/auth.py AUTH_TYPE_MAPS) and
-- the legacy ones a model's `signatureVersion` does not override
-- (client.py _LEGACY_SIGNATURE_VERSIONS).
local KNOWN_SIG = {
  v2 = true, v3 = true, v3https = true, v4 = true, ["v4-query"] = true, v4a = true,
  s3 = true, ["s3-query"] = true, ["s3-presign-post"] = true, s3v4 = true,
  ["s3v4-query"] = true, ["s3v4-presign-post"] = true, bearer = true,
}
local LEGACY_SIG = { v2 = true, v3 = true, v3https = true, v4 = true, s3 = true, s3v4 = true }

local function tags_key(fips, dualstack)
  if fips and dualstack then return "dualstack,fips" end
  if fips then return "fips" end
  if dualstack then return "dualstack" end
  return nil
end

local function find_variant(entry, key)
  for _, v in ipairs(entry and entry.variants or {}) do
    if table.concat(v.tags, ",") == key then return v end
  end
  return nil
end

local function merge_keys(from, into)
  for k, v in pairs(from or {}) do
    if into[k] == nil then into[k] = v end
  end
end

local VARIANT_NAME = { fips = "FIPS", dualstack = "dual-stack", ["dualstack,fips"] = "FIPS dual-stack" }

-- botocore/regions.py `EndpointResolver._resolve`: the endpoint entry, then
-- the variant for the requested tags (endpoint entry, service defaults,
-- partition defaults, first key wins), then the service and partition
-- defaults; `{service}`, `{region}` and `{dnsSuffix}` expanded in the
-- host name.
--
-- One deliberate difference: for an endpoint name that is not a region of
-- the partition ("aws-global", "fips-us-east-1", ...) a variant must be
-- given by that endpoint itself (or be a template without `{region}`).
-- botocore would expand the partition template with the endpoint name and
-- produce hosts such as iam.aws-global.api.aws, which do not exist.
local function resolve_in(p, prefix, sdata, endpoint_name, key)
  local entry = sdata.endpoints and sdata.endpoints[endpoint_name] or {}
  local sdef, pdef = sdata.defaults or {}, p.defaults
  local r = {}
  if key then
    local regional = region_match(p, endpoint_name)
    for i, src in ipairs({ entry, sdef, pdef }) do
      local v = find_variant(src, key)
      if v and (regional or i == 1 or not find(v.hostname or "{region}", "{region}", 1, true)) then
        merge_keys(v, r)
      end
    end
    if next(r) == nil then
      return nil, errors.new("EndpointResolutionError", format(
        "no %s endpoint for %s in %s (partition %s)", VARIANT_NAME[key], prefix, endpoint_name, p.partition),
        { variant = key, partition = p.partition })
    end
    r.tags = key
  end
  merge_keys(entry, r)
  if r.dnsSuffix == nil then r.dnsSuffix = p.dnsSuffix end
  merge_keys(sdef, r)
  merge_keys(pdef, r)
  local host = r.hostname or "{service}.{region}.{dnsSuffix}"
  host = gsub(host, "{(%w+)}", function(name)
    if name == "service" then return prefix end
    if name == "region" then return endpoint_name end
    if name == "dnsSuffix" then return r.dnsSuffix end
    return nil
  end)
  r.hostname = host
  r.partition = p.partition
  r.endpointName = endpoint_name
  return r
end

-- botocore/regions.py `_endpoint_for_partition`.
local function for_partition(p, prefix, region, key, force)
  local sdata = p.services[prefix] or { endpoints = {} }
  if sdata.endpoints and sdata.endpoints[region] then
    return resolve_in(p, prefix, sdata, region, key)
  end
  if force or region_match(p, region) then
    if sdata.partitionEndpoint and sdata.isRegionalized == false then
      return resolve_in(p, prefix, sdata, sdata.partitionEndpoint, key)
    end
    return resolve_in(p, prefix, sdata, region, key)
  end
  return false
end

-- botocore/regions.py `construct_endpoint`, then client.py's fallback to
-- partition "aws". botocore skips aws-iso and aws-iso-b when dual-stack is
-- on and then resolves an aws host (batch.us-iso-east-1.api.aws); here the
-- region's own partition answers and says it has no dual-stack endpoint.
local function construct(d, prefix, region, key)
  if region == nil then
    -- No region: only a service with a partition-wide endpoint resolves,
    -- and botocore only ever looks at the first partition ("aws").
    local p = d.partitions[1]
    local sdata = p.services[prefix]
    if not (sdata and sdata.partitionEndpoint) then
      return nil, errors.new("NoRegion", format(
        "a region is needed to resolve the endpoint of %s: pass region, or set AWS_REGION or `region` in the profile",
        prefix))
    end
    return resolve_in(p, prefix, sdata, sdata.partitionEndpoint, key)
  end
  for _, p in ipairs(d.partitions) do
    local r, err = for_partition(p, prefix, region, key, false)
    if r == nil then return nil, err end
    if r then return r end
  end
  return for_partition(partition_named(d, "aws") or d.partitions[1], prefix, region, key, true)
end

-- client.py `ClientEndpointBridge._resolve_signature_version` (without a
-- configured version, which the client layer applies).
local function signature_version(prefix, md, resolved)
  local potential = resolved.signatureVersions or {}
  local msig = md.signatureVersion
  if msig ~= nil and not LEGACY_SIG[msig] then potential = { msig } end
  if prefix == "s3" then return "s3v4" end
  for _, v in ipairs(potential) do
    if v == "v4" then return "v4" end
  end
  for _, v in ipairs(potential) do
    if KNOWN_SIG[v] then return v end
  end
  return potential[1]
end

local function check_opt(opts, name, want)
  local v = opts[name]
  if v ~= nil and type(v) ~= want then
    error(format("endpoints.resolve: %s must be a %s (got %s)", name, want, type(v)), 3)
  end
  return v
end

local RESOLVE_OPTS = {
  service = true, region = true, endpoint_url = true, use_fips = true, use_dualstack = true,
  sts_regional = true, s3_us_east_1_regional = true, use_ssl = true, config = true,
}

-- Values a config object (aio_aws.config) supplies for options not given.
local function from_config(cfg, o, md)
  local function get(name)
    local v, err = cfg:get(name)
    if err then error(err, 0) end
    return v
  end
  if o.region == nil then o.region = cfg:region() end
  if o.endpoint_url == nil then
    local url, err = cfg:endpoint_url(md.serviceId)
    if err then error(err, 0) end
    o.endpoint_url = url
  end
  if o.use_fips == nil then o.use_fips = get("use_fips_endpoint") end
  if o.use_dualstack == nil then
    -- S3 has its own switch in the `s3` sub-section (configprovider.py
    -- DEFAULT_S3_CONFIG_VARS, client.py `_is_s3_dualstack_mode`).
    if md.endpointPrefix == "s3" or md.endpointPrefix == "s3-control" then
      o.use_dualstack = get("s3.use_dualstack_endpoint") or nil
    end
    if o.use_dualstack == nil then o.use_dualstack = get("use_dualstack_endpoint") end
  end
  if o.sts_regional == nil then o.sts_regional = get("sts_regional_endpoints") ~= "legacy" end
  if o.s3_us_east_1_regional == nil then
    o.s3_us_east_1_regional = get("s3.us_east_1_regional_endpoint") == "regional"
  end
end

local function bad_url(url)
  return nil, errors.new("EndpointResolutionError",
    format("invalid endpoint_url %q: expected http(s)://host[:port][/path]", url))
end

--- Resolve the endpoint of a service in a region.
-- @tparam table opts
--
-- * `service` (required): the service model (aio_aws.model), or any table
--   with `metadata` (`endpointPrefix` required; `signingName`,
--   `serviceId`, `signatureVersion` used when present).
-- * `region`: e.g. "eu-west-1"; nil resolves only services with a global
--   endpoint (IAM, CloudFront, Route 53, STS, S3 -> us-east-1).
-- * `endpoint_url`: used as it is (a trailing "/" removed); signing region
--   is `region`, or us-east-1 without one.
-- * `use_fips`, `use_dualstack`: endpoint variants (default false).
-- * `sts_regional` (default true): false is botocore's
--   `sts_regional_endpoints = legacy`: sts.amazonaws.com signed for
--   us-east-1 in the 16 legacy regions.
-- * `s3_us_east_1_regional` (default false): false is botocore's classic
--   `us_east_1_regional_endpoint = legacy`, where S3 in us-east-1 uses the
--   global s3.amazonaws.com; true gives s3.us-east-1.amazonaws.com.
-- * `use_ssl` (default true): false gives http:// URLs.
-- * `config`: an aio_aws.config object; fills every option above that is
--   not given (region, endpoint_url for the service's serviceId,
--   use_fips_endpoint, use_dualstack_endpoint, sts_regional_endpoints,
--   s3.us_east_1_regional_endpoint).
-- @treturn table `{url, hostname, signing_region, signing_name, partition,
--   dns_suffix, region, endpoint_name, signature_version}`, or nil, err
function M.resolve(opts)
  if type(opts) ~= "table" then error("endpoints.resolve: options table expected", 2) end
  for k in pairs(opts) do
    if not RESOLVE_OPTS[k] then error(format("endpoints.resolve: unknown option %q", tostring(k)), 2) end
  end
  local svc = opts.service
  if type(svc) ~= "table" or type(svc.metadata) ~= "table" then
    error("endpoints.resolve: service must be a service model (a table with `metadata`)", 2)
  end
  local md = svc.metadata
  local prefix = md.endpointPrefix
  if type(prefix) ~= "string" or prefix == "" then
    error("endpoints.resolve: service metadata has no endpointPrefix", 2)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  check_opt(o, "region", "string")
  check_opt(o, "endpoint_url", "string")
  for _, k in ipairs({ "use_fips", "use_dualstack", "sts_regional", "s3_us_east_1_regional", "use_ssl" }) do
    check_opt(o, k, "boolean")
  end
  local cfg = o.config
  if cfg ~= nil then
    if type(cfg) ~= "table" or type(cfg.get) ~= "function" then
      error("endpoints.resolve: config must be an aio_aws.config object", 2)
    end
    local ok, err = pcall(from_config, cfg, o, md)
    if not ok then
      if errors.is(err) then return nil, err end
      error(err, 0)
    end
  end

  local d, derr = load_data()
  if not d then return nil, derr end
  local region = o.region
  if region ~= nil and not valid_region(region) then
    return nil, errors.new("EndpointResolutionError",
      format("invalid region name %q: a region is a DNS label such as us-east-1", region))
  end
  local fips, dualstack = o.use_fips == true, o.use_dualstack == true
  -- "fips-us-east-1" / "us-east-1-fips" are pseudo regions meaning
  -- us-east-1 with FIPS on (botocore/client.py `_normalize_fips_region`).
  if region ~= nil then
    local plain = gsub(gsub(region, "fips%-", ""), "%-fips", "")
    if plain ~= region then
      if plain == "" then
        return nil, errors.new("EndpointResolutionError", format("invalid region name %q", region))
      end
      region, fips = plain, true
    end
  end
  local sts_regional = o.sts_regional ~= false
  local scheme = o.use_ssl == false and "http" or "https"
  local signing_name = md.signingName or prefix

  local url = o.endpoint_url
  if url ~= nil then
    -- An explicit endpoint wins over everything (args.py
    -- `_compute_endpoint_config`; client.py `_pick_region_values` does not
    -- take the resolved signing region for a custom URL).
    local s, rest = url:match("^(https?)://(.*)$")
    if not s then return bad_url(url) end
    local host = rest:match("^([^/?#]*)")
    if host == "" or find(host, "[%s@]") or find(rest, "[%s]") then return bad_url(url) end
    if find(rest, "[?#]") then return bad_url(url) end
    url = gsub(url, "/+$", "")
    local sregion = region or "us-east-1"
    -- the credential scope's service name still applies (botocore resolves
    -- the endpoint and keeps credentialScope.service)
    local r = construct(d, prefix, sregion, nil)
    if r and r.credentialScope and r.credentialScope.service then signing_name = r.credentialScope.service end
    local p = partition_for(d, sregion)
    return {
      url = url,
      hostname = host,
      signing_region = sregion,
      signing_name = signing_name,
      partition = p.partition,
      dns_suffix = p.dnsSuffix,
      region = region,
      endpoint_name = nil,
      signature_version = signature_version(prefix, md, r or { signatureVersions = { "v4" } }),
    }
  end

  local key = tags_key(fips, dualstack)
  -- S3: dual-stack without a region means us-east-1 (regions.py
  -- `construct_endpoint`); us-east-1 (or no region) goes to the global
  -- endpoint s3.amazonaws.com unless `us_east_1_regional_endpoint =
  -- regional` (args.py `_should_force_s3_global`). With FIPS botocore would
  -- build s3-fips.aws-global.amazonaws.com, which does not exist: here FIPS
  -- keeps the regional us-east-1 endpoint, as the S3 rule set does.
  local lookup = region
  local s3_global = false
  if prefix == "s3" then
    if dualstack and lookup == nil then lookup = "us-east-1" end
    if not o.s3_us_east_1_regional and (lookup == "us-east-1" or lookup == nil) and not fips and not dualstack then
      lookup, s3_global = nil, true
    end
    if fips and lookup == nil then lookup = "us-east-1" end
  end
  local r, err = construct(d, prefix, lookup, key)
  if not r then return nil, err end

  local endpoint_name = r.endpointName
  local signing_region = endpoint_name
  local scope = r.credentialScope
  if scope and scope.region then signing_region = scope.region end
  if scope and scope.service then signing_name = scope.service end
  local protocols = r.protocols or {}
  local secure = false
  for _, pr in ipairs(protocols) do
    if pr == "https" then secure = true end
  end
  local s = (scheme == "https" and secure) and "https" or "http"
  local out = {
    url = s .. "://" .. r.hostname,
    hostname = r.hostname,
    signing_region = signing_region,
    signing_name = signing_name,
    partition = r.partition,
    dns_suffix = r.dnsSuffix,
    region = region or endpoint_name,
    endpoint_name = endpoint_name,
    signature_version = signature_version(prefix, md, r),
  }
  if s3_global and endpoint_name == "aws-global" then out.region = "us-east-1" end
  -- STS legacy mode (args.py `_should_set_global_sts_endpoint`): not with
  -- a variant, not with a custom URL.
  if prefix == "sts" and not sts_regional and not key and region and LEGACY_GLOBAL_STS[region] then
    out.url = s .. "://sts.amazonaws.com"
    out.hostname = "sts.amazonaws.com"
    out.signing_region = "us-east-1"
  end
  return out
end

-- ---------------------------------------------------------------- S3 addressing

-- An IPv4 dotted quad (each part 0-255) or a bracketed IPv6 literal.
local function is_ip(host)
  if sub(host, 1, 1) == "[" then return true end
  local a, b, c, e = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs({ a, b, c, e }) do
    if #x > 3 or tonumber(x) > 255 then return false end
  end
  return true
end

local function valid_label(l)
  return find(l, "^[a-z0-9][a-z0-9%-]*$") ~= nil and find(l, "[a-z0-9]$") ~= nil
end

--- True when a bucket name can be a DNS label in front of the S3 host
-- (virtual-hosted style): 3 to 63 characters, lower-case letters, digits
-- and hyphens, starting and ending with a letter or digit, not shaped like
-- an IP address. Dots separate labels, and are accepted only when
-- `allow_dots` (plain http): over https a dotted name would not match the
-- *.s3 wildcard certificate (botocore/utils.py `check_dns_name`; S3 user
-- guide, "Bucket naming rules" and "Virtual hosting of buckets").
-- @tparam string bucket
-- @tparam[opt=false] boolean allow_dots
-- @treturn boolean
function M.is_virtual_hostable(bucket, allow_dots)
  if type(bucket) ~= "string" then error("endpoints.is_virtual_hostable: bucket must be a string", 2) end
  local n = #bucket
  if n < 3 or n > 63 then return false end
  if find(bucket, ".", 1, true) then
    if not allow_dots then return false end
    if is_ip(bucket) then return false end
    for label in (bucket .. "."):gmatch("([^.]*)%.") do
      if not valid_label(label) then return false end
    end
    return true
  end
  return valid_label(bucket)
end

local STYLES = { auto = true, virtual = true, path = true }

--- Address an S3 request to a bucket.
--
--     endpoints.s3_address("https://s3.us-west-2.amazonaws.com", "/my-bucket/a/b.txt", "my-bucket", "auto")
--     --> "https://my-bucket.s3.us-west-2.amazonaws.com", "/a/b.txt"
--
-- `path` is the path-style request path the REST serializer produced
-- (`/{Bucket}/{Key+}`), starting with "/" .. bucket. Virtual-hosted style
-- moves the bucket into the host name; path style leaves both untouched.
--
-- * "path": always path style (botocore `addressing_style = path`).
-- * "virtual": virtual-hosted style, except for a bucket name that cannot
--   be a host label and an endpoint that is an IP address, where only path
--   style can work (botocore does the same).
-- * "auto" (default): virtual-hosted style when the bucket name allows it
--   and the endpoint is a host name other than `localhost` (any port);
--   path style for IP addresses and localhost, where there is no DNS to
--   give `bucket.host` a meaning (as the S3 rule set does for IPs), and,
--   when `custom` is true, for every custom endpoint: botocore sends
--   path-style requests to an `endpoint_url` unless told "virtual"
--   (botocore/args.py `compute_endpoint_resolver_builtin_defaults`), the
--   safe choice for S3-compatible servers.
--
-- Dotted bucket names go virtual only over plain http to an AWS endpoint
-- (no wildcard certificate problem; never to a custom endpoint, as botocore).
-- `base_url` may carry a port and a path prefix, which are kept.
-- @tparam string base_url e.g. the `url` of `resolve`
-- @tparam string path e.g. "/my-bucket/key"
-- @tparam[opt] string bucket nil: no bucket (ListBuckets), nothing changes
-- @tparam[opt="auto"] string style "auto", "virtual" or "path"
-- @tparam[opt=false] boolean custom `base_url` is a configured `endpoint_url`
-- @treturn string url (scheme://host[:port][/prefix], no trailing "/")
-- @treturn string path
function M.s3_address(base_url, path, bucket, style, custom)
  if type(base_url) ~= "string" then error("endpoints.s3_address: base_url must be a string", 2) end
  if type(path) ~= "string" then error("endpoints.s3_address: path must be a string", 2) end
  if bucket ~= nil and type(bucket) ~= "string" then error("endpoints.s3_address: bucket must be a string", 2) end
  style = style or "auto"
  if type(style) ~= "string" or not STYLES[style] then
    error("endpoints.s3_address: style must be \"auto\", \"virtual\" or \"path\"", 2)
  end
  local scheme, authority, prefix = base_url:match("^(https?)://([^/?#]+)(/?[^?#]*)$")
  if not scheme then error(format("endpoints.s3_address: base_url %q is not an http(s) URL", base_url), 2) end
  prefix = gsub(prefix, "/+$", "")
  local base = scheme .. "://" .. authority .. prefix
  if bucket == nil or bucket == "" then return base, path end
  local head = "/" .. bucket
  local after = sub(path, #head + 1, #head + 1)
  if sub(path, 1, #head) ~= head or not (after == "" or after == "/" or after == "?") then
    error(format("endpoints.s3_address: path %q does not start with /%s", path, bucket), 2)
  end
  if custom ~= nil and type(custom) ~= "boolean" then error("endpoints.s3_address: custom must be a boolean", 2) end
  if style == "path" or (style == "auto" and custom) then return base, path end
  local host = authority:match("^%[[^%]]*%]") or authority:match("^[^:]*")
  local lhost = string.lower(host)
  if is_ip(lhost) then return base, path end
  if style == "auto" and lhost == "localhost" then return base, path end
  if not M.is_virtual_hostable(bucket, scheme == "http" and not custom) then return base, path end
  local rest = sub(path, #head + 1)
  if rest == "" or sub(rest, 1, 1) == "?" then rest = "/" .. rest end
  return scheme .. "://" .. bucket .. "." .. authority .. prefix, rest
end

return M
