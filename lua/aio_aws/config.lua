--- Shared configuration: `~/.aws/config`, `~/.aws/credentials` and the
-- environment, read the way botocore reads them.
--
--     local config = require "aio_aws.config"
--     local cfg = assert(config.load{ profile = "dev" })
--     cfg:region()                          --> "eu-west-1"
--     cfg:get("max_attempts")               --> 5
--     cfg:get("s3.addressing_style")        --> "path"
--     cfg:endpoint_url("CloudWatch Logs")   --> "http://localhost:4566" or nil
--
-- `config.load(opts)` reads both files once (blocking file I/O: do it before
-- the first request, DESIGN.md) and returns a config object; nothing is read
-- at `require` time. opts:
--
-- * `profile`: the profile to use. Without it: `AWS_PROFILE`, then
--   `AWS_DEFAULT_PROFILE`, then "default". (botocore looks at
--   AWS_DEFAULT_PROFILE first; the AWS SDKs reference guide names
--   AWS_PROFILE, which is what most tools set, so it wins here.)
-- * `credentials_file`, `config_file`: paths; default `AWS_SHARED_CREDENTIALS_FILE`
--   / `AWS_CONFIG_FILE`, else `~/.aws/credentials` / `~/.aws/config`. `~`
--   and `$VAR` / `${VAR}` are expanded (botocore/configloader.py
--   `raw_config_parse`: expandvars, then expanduser).
-- * `env`: a table or a function `name -> value` used instead of
--   `os.getenv` (tests). An empty value counts as unset.
-- * any setting of `config.SETTINGS` by name (`region = "eu-west-1"`,
--   `max_attempts = 5`, `["s3.addressing_style"] = "path"`, or
--   `s3 = {addressing_style = "path"}`), and `endpoint_url`: explicit
--   values, which win over the environment and the files.
--
-- Precedence of every setting, as botocore's `ConfigChainFactory`
-- (botocore/configprovider.py): explicit > environment > profile > default.
--
-- Errors: wrong argument types and unknown options raise. `load` returns
-- `nil, err` for a malformed file (code "ConfigParseError", with `file` and
-- `line`; the message never quotes the line, which may hold a secret) and
-- for a named profile that exists in neither file ("ProfileNotFound", as
-- botocore's session does). A missing or unreadable file is not an error
-- (botocore ignores both). `cfg:get` returns `nil, err` ("InvalidConfigError")
-- for a value it cannot use, e.g. `AWS_MAX_ATTEMPTS=lots`.
local errors = require "aio_aws.errors"

local M = {}

local find, sub, gsub, format, lower, upper = string.find, string.sub, string.gsub, string.format,
  string.lower, string.upper

-- ---------------------------------------------------------------- INI

local function trim(s)
  return (gsub(s, "^%s+", ""):gsub("%s+$", ""))
end

-- Python's shlex.split for a section header such as `profile "my dev"`
-- (botocore/configloader.py `build_profile_map`); nil where shlex raises
-- (an unclosed quote), which botocore skips.
local function shlex_split(s)
  local words, cur, i, n, in_word = {}, {}, 1, #s, false
  while i <= n do
    local c = sub(s, i, i)
    if c == "'" then
      local j = find(s, "'", i + 1, true)
      if not j then return nil end
      cur[#cur + 1] = sub(s, i + 1, j - 1); in_word = true; i = j + 1
    elseif c == '"' then
      local j = i + 1
      local buf = {}
      while true do
        if j > n then return nil end
        local d = sub(s, j, j)
        if d == '"' then break end
        if d == "\\" and j < n and find(sub(s, j + 1, j + 1), '^["\\]') then
          buf[#buf + 1] = sub(s, j + 1, j + 1); j = j + 2
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      cur[#cur + 1] = table.concat(buf); in_word = true; i = j + 1
    elseif c == "\\" then
      if i == n then return nil end
      cur[#cur + 1] = sub(s, i + 1, i + 1); in_word = true; i = i + 2
    elseif find(c, "^%s$") then
      if in_word then words[#words + 1] = table.concat(cur); cur = {}; in_word = false end
      i = i + 1
    else
      cur[#cur + 1] = c; in_word = true; i = i + 1
    end
  end
  if in_word then words[#words + 1] = table.concat(cur) end
  return words
end

-- botocore/configloader.py `_parse_nested`: the indented block of
-- `s3 =\n  addressing_style = path` as a table; nil for a line without "=".
local function parse_nested(value)
  local out = {}
  for line in (value .. "\n"):gmatch("([^\n]*)\n") do
    line = trim(line)
    if line ~= "" then
      local eq = find(line, "=", 1, true)
      if not eq then return nil end
      out[trim(sub(line, 1, eq - 1))] = trim(sub(line, eq + 1))
    end
  end
  return out
end

local function parse_error(path, line, what)
  return nil, errors.new("ConfigParseError",
    format("unable to parse config file %s, line %d: %s", path, line, what), { file = path, line = line })
end

--- Parse INI text the way botocore does: Python's
-- `configparser.RawConfigParser` with its defaults, then
-- `raw_config_parse(parse_subsections=True)`:
--
-- * `[section]` headers (names case-sensitive); `name = value` or
--   `name: value` options, names lower-cased, names and values trimmed;
-- * whole-line comments starting with `#` or `;` (no inline comments:
--   `region = us-east-1 # x` keeps `# x`, as botocore does);
-- * a line indented deeper than its option continues the value; a value
--   that starts on the next line (`s3 =` then indented `key = value`
--   lines) becomes a sub-table;
-- * `[DEFAULT]` values are inherited by every section (configparser);
-- * duplicate sections or options, an option before any section, a line
--   that is neither, or a malformed sub-section are errors.
--
-- @tparam string text
-- @tparam[opt="<string>"] string path name used in error messages
-- @treturn table section name -> {option -> string or table}, or nil, err
function M.parse_ini(text, path)
  if type(text) ~= "string" then error("config.parse_ini: text must be a string", 2) end
  path = path or "<string>"
  if sub(text, 1, 3) == "\239\187\191" then text = sub(text, 4) end -- UTF-8 BOM
  text = gsub(text, "\r\n?", "\n")
  local sections, order = {}, {}
  local defaults = {}
  local cur, cur_name, opt, indent = nil, nil, nil, math.huge
  local seen = {}
  local lineno = 0
  for line in (text .. (sub(text, -1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local stripped = trim(line)
    local comment = find(stripped, "^[#;]") ~= nil
    local value = comment and "" or stripped
    if value == "" then
      -- empty_lines_in_values: an empty line inside a value is kept (and
      -- dropped again at the end if trailing); a comment line is not.
      if not comment and cur and opt and cur[opt] then
        local v = cur[opt]
        v[#v + 1] = ""
      end
    else
      local lead = #(line:match("^%s*"))
      if cur and opt and lead > indent then
        local v = cur[opt]
        v[#v + 1] = value
      else
        indent = lead
        -- configparser's SECTCRE `\[(?P<header>.+)\]` is greedy and not
        -- anchored at the end: the header runs to the last "]" of the line.
        local header = value:match("^%[(.+)%]")
        if header then
          if header == "DEFAULT" then
            cur = defaults
          else
            if sections[header] then
              return parse_error(path, lineno, "duplicate section [" .. header .. "]")
            end
            cur = {}
            sections[header] = cur
            order[#order + 1] = header
          end
          cur_name = header
          seen[cur_name] = seen[cur_name] or {}
          opt = nil
        elseif not cur then
          return parse_error(path, lineno, "option outside a section (expected a [section] header first)")
        else
          local a = find(value, "[=:]")
          local name = a and lower(trim(sub(value, 1, a - 1)))
          if not name or name == "" then
            return parse_error(path, lineno, "expected 'name = value' or '[section]'")
          end
          if seen[cur_name][name] then
            return parse_error(path, lineno, "duplicate option '" .. name .. "' in [" .. cur_name .. "]")
          end
          seen[cur_name][name] = true
          opt = name
          cur[name] = { trim(sub(value, a + 1)), line = lineno }
        end
      end
    end
  end
  -- join multi-line values, parse sub-sections
  local function finish(sec, name)
    for k, parts in pairs(sec) do
      local v = gsub(table.concat(parts, "\n"), "%s+$", "")
      if sub(v, 1, 1) == "\n" then
        local nested = parse_nested(v)
        if not nested then
          return parse_error(path, parts.line, "malformed sub-section '" .. k .. "' in [" .. name .. "] (expected 'name = value' lines)")
        end
        sec[k] = nested
      else
        sec[k] = v
      end
    end
    return true
  end
  local ok, err = finish(defaults, "DEFAULT")
  if not ok then return nil, err end
  for _, name in ipairs(order) do
    ok, err = finish(sections[name], name)
    if not ok then return nil, err end
    for k, v in pairs(defaults) do
      if sections[name][k] == nil then sections[name][k] = v end
    end
  end
  return sections, order
end

-- botocore/configloader.py `build_profile_map` (+ the `services` sections
-- of endpoint configuration, botocore >= 1.31): `[profile NAME]` and
-- `[default]` are profiles, `[sso-session NAME]` and `[services NAME]`
-- their own kinds, anything else is kept under its own name. Sections are
-- applied in file order, so of `[default]` and `[profile default]` the later
-- one wins, as in botocore.
local function profile_map(sections, order)
  local out = { profiles = {}, ["sso-session"] = {}, services = {}, other = {} }
  for _, key in ipairs(order) do
    local values = sections[key]
    local kind
    for _, k in ipairs({ "profile", "sso-session", "services" }) do
      if sub(key, 1, #k) == k then kind = k break end
    end
    if kind then
      local parts = shlex_split(key)
      if parts and #parts == 2 then
        local bucket = kind == "profile" and out.profiles or out[kind]
        bucket[parts[2]] = values
      end
    elseif key == "default" then
      out.profiles.default = values
    else
      out.other[key] = values
    end
  end
  return out
end

-- ---------------------------------------------------------------- environment

local function env_getter(env)
  if env == nil then return os.getenv end
  if type(env) == "function" then return env end
  if type(env) == "table" then return function(k) return env[k] end end
  error("config.load: env must be a table or a function", 3)
end

-- "" counts as unset everywhere (an exported but empty variable).
local function getenv(self, name)
  local v = self._getenv(name)
  if v == nil or v == "" then return nil end
  if type(v) ~= "string" then v = tostring(v) end
  return v
end

-- botocore: os.path.expandvars then os.path.expanduser.
local function expand_path(p, get)
  p = gsub(p, "%$(%b{})", function(b)
    local v = get(sub(b, 2, -2))
    return v
  end)
  p = gsub(p, "%$([%a_][%w_]*)", function(n) return get(n) end)
  if sub(p, 1, 1) == "~" and (#p == 1 or sub(p, 2, 2) == "/") then
    local home = get("HOME")
    if home and home ~= "" then p = home .. sub(p, 2) end
  end
  return p
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text -- nil for a directory
end

-- ---------------------------------------------------------------- settings

-- botocore's ensure_boolean: a boolean, or a string equal to "true" in any
-- case; anything else is false (botocore/utils.py).
local function to_boolean(v)
  if type(v) == "boolean" then return v end
  return type(v) == "string" and lower(v) == "true"
end

local function enum(...)
  local set = {}
  for _, v in ipairs({ ... }) do set[v] = true end
  return set
end

--- The scalar settings: name -> spec. `env`: variable(s), searched in
-- order; `keys`: profile keys, a string or a path into a sub-section
-- (`{"s3", "addressing_style"}`), searched in order; `default`; `type`
-- ("string", "boolean", "integer", "number"); `enum`: accepted values.
-- Sources: botocore/configprovider.py BOTOCORE_DEFAUT_SESSION_VARIABLES and
-- DEFAULT_S3_CONFIG_VARS; the AWS SDKs and Tools reference guide, "Settings
-- reference".
M.SETTINGS = {
  -- region: AWS_REGION is the SDKs' variable (Lambda and ECS set it);
  -- botocore reads only AWS_DEFAULT_REGION, which comes second here.
  region = { env = { "AWS_REGION", "AWS_DEFAULT_REGION" }, keys = { "region" } },
  max_attempts = { env = { "AWS_MAX_ATTEMPTS" }, keys = { "max_attempts" }, type = "integer", min = 1 },
  -- "standard" is the SDKs' default (botocore's own is still "legacy").
  retry_mode = { env = { "AWS_RETRY_MODE" }, keys = { "retry_mode" }, default = "standard",
    enum = enum("legacy", "standard", "adaptive") },
  use_fips_endpoint = { env = { "AWS_USE_FIPS_ENDPOINT" }, keys = { "use_fips_endpoint" },
    type = "boolean", default = false },
  use_dualstack_endpoint = { env = { "AWS_USE_DUALSTACK_ENDPOINT" }, keys = { "use_dualstack_endpoint" },
    type = "boolean", default = false },
  -- "regional" is the SDKs' default; botocore 1.29 still defaults to "legacy".
  sts_regional_endpoints = { env = { "AWS_STS_REGIONAL_ENDPOINTS" }, keys = { "sts_regional_endpoints" },
    default = "regional", enum = enum("legacy", "regional") },
  ignore_configured_endpoint_urls = { env = { "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" },
    keys = { "ignore_configured_endpoint_urls" }, type = "boolean", default = false },
  ca_bundle = { env = { "AWS_CA_BUNDLE" }, keys = { "ca_bundle" }, path = true },
  -- "when_required" by default, not botocore >= 1.36's "when_supported":
  -- default CRC32 checksums break S3-compatible stores (botocore#3415)
  request_checksum_calculation = { env = { "AWS_REQUEST_CHECKSUM_CALCULATION" },
    keys = { "request_checksum_calculation" }, default = "when_required",
    enum = enum("when_supported", "when_required") },
  response_checksum_validation = { env = { "AWS_RESPONSE_CHECKSUM_VALIDATION" },
    keys = { "response_checksum_validation" }, default = "when_required",
    enum = enum("when_supported", "when_required") },
  defaults_mode = { env = { "AWS_DEFAULTS_MODE" }, keys = { "defaults_mode" }, default = "legacy",
    enum = enum("legacy", "standard", "in-region", "cross-region", "mobile", "auto") },
  parameter_validation = { keys = { "parameter_validation" }, type = "boolean", default = true },
  -- the `s3` sub-section
  ["s3.addressing_style"] = { keys = { { "s3", "addressing_style" } }, default = "auto",
    enum = enum("auto", "virtual", "path") },
  ["s3.use_accelerate_endpoint"] = { keys = { { "s3", "use_accelerate_endpoint" } }, type = "boolean",
    default = false },
  ["s3.use_dualstack_endpoint"] = { keys = { { "s3", "use_dualstack_endpoint" } }, type = "boolean" },
  ["s3.payload_signing_enabled"] = { keys = { { "s3", "payload_signing_enabled" } }, type = "boolean" },
  ["s3.use_arn_region"] = { env = { "AWS_S3_USE_ARN_REGION" },
    keys = { "s3_use_arn_region", { "s3", "use_arn_region" } }, type = "boolean" },
  ["s3.us_east_1_regional_endpoint"] = { env = { "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT" },
    keys = { "s3_us_east_1_regional_endpoint", { "s3", "us_east_1_regional_endpoint" } },
    default = "legacy", enum = enum("legacy", "regional") },
  -- instance metadata and containers (read by the providers of issue 4)
  metadata_service_timeout = { env = { "AWS_METADATA_SERVICE_TIMEOUT" }, keys = { "metadata_service_timeout" },
    type = "number", default = 1 },
  metadata_service_num_attempts = { env = { "AWS_METADATA_SERVICE_NUM_ATTEMPTS" },
    keys = { "metadata_service_num_attempts" }, type = "integer", min = 1, default = 1 },
  ec2_metadata_service_endpoint = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT" },
    keys = { "ec2_metadata_service_endpoint" } },
  ec2_metadata_service_endpoint_mode = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" },
    keys = { "ec2_metadata_service_endpoint_mode" }, enum = enum("IPv4", "IPv6", "ipv4", "ipv6") },
  ec2_metadata_v1_disabled = { env = { "AWS_EC2_METADATA_V1_DISABLED" }, keys = { "ec2_metadata_v1_disabled" },
    type = "boolean", default = false },
}

-- Converts and checks a value from the environment or a file (strings), or
-- an explicit one (already typed). Returns the value, or nil, err.
local function convert(name, spec, v, where)
  local function bad(why)
    return nil, errors.new("InvalidConfigError",
      format("invalid %s from %s: %s", name, where, why), { setting = name })
  end
  local t = spec.type or "string"
  if t == "boolean" then
    v = to_boolean(v)
  elseif t == "integer" or t == "number" then
    local n = tonumber(type(v) == "string" and trim(v) or v)
    if t == "integer" then n = n and math.tointeger(n) end
    if not n then return bad("expected " .. (t == "integer" and "an integer" or "a number")) end
    if spec.min and n < spec.min then return bad("must be at least " .. spec.min) end
    if n < 0 then return bad("must not be negative") end
    v = n
  else
    if type(v) ~= "string" then return bad("expected a string") end
    if spec.enum and not spec.enum[v] then
      local allowed = {}
      for k in pairs(spec.enum) do allowed[#allowed + 1] = k end
      table.sort(allowed)
      return bad(format("%q is not one of %s", v, table.concat(allowed, ", ")))
    end
  end
  return v
end

--- Python's `shlex.split` (POSIX mode): the words of a command line such
-- as a `credential_process` value (botocore `compat_shell_split`), or nil
-- for an unclosed quote or a trailing backslash.
-- @tparam string s
-- @treturn table|nil words
function M.shlex_split(s)
  if type(s) ~= "string" then error("config.shlex_split: string expected", 2) end
  return shlex_split(s)
end

-- ---------------------------------------------------------------- Config

-- A copy of a section, its sub-sections copied too (callers get tables
-- they may change without changing the config).
local function copy(t)
  if t == nil then return nil end
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "table" then v = copy(v) end
    out[k] = v
  end
  return out
end

local Config = {}
Config.__index = Config
Config.__name = "aio_aws.Config"

function Config.__tostring(c)
  return format("aio_aws.Config(profile=%s)", tostring(c._profile_name))
end

local LOAD_OPTS = { profile = "string", credentials_file = "string", config_file = "string", env = true,
  endpoint_url = "string", s3 = "table" }

-- Explicit values of `load` / `with`: typed and checked (misuse raises).
local function explicit_value(fname, name, v)
  local spec = M.SETTINGS[name]
  local t = spec.type or "string"
  local lua_t = (t == "integer" or t == "number") and "number" or t
  if type(v) ~= lua_t then
    error(format("%s: %s must be a %s (got %s)", fname, name, t, type(v)), 3)
  end
  local c, err = convert(name, spec, v, "the explicit value")
  if c == nil and err then error(fname .. ": " .. err.message, 3) end
  return c
end

local function collect_explicit(fname, opts, into)
  for k, v in pairs(opts) do
    if k == "s3" then
      if type(v) ~= "table" then error(fname .. ": s3 must be a table", 3) end
      for sk, sv in pairs(v) do
        local name = "s3." .. tostring(sk)
        if not M.SETTINGS[name] then error(format("%s: unknown s3 option %q", fname, tostring(sk)), 3) end
        into[name] = explicit_value(fname, name, sv)
      end
    elseif M.SETTINGS[k] then
      into[k] = explicit_value(fname, k, v)
    elseif k == "endpoint_url" then
      if type(v) ~= "string" then error(fname .. ": endpoint_url must be a string", 3) end
      into.endpoint_url = v
    elseif not LOAD_OPTS[k] then
      error(format("%s: unknown option %q", fname, tostring(k)), 3)
    end
  end
end

local function load_file(path, kind)
  local text = read_file(path)
  if not text then return {}, {}, "missing" end
  local sections, order = M.parse_ini(text, path)
  if not sections then return nil, order end
  if kind == "credentials" then return sections, order, "loaded" end
  return profile_map(sections, order), order, "loaded"
end

--- Load the shared files and the environment (see the module comment).
-- @tparam[opt] table opts
-- @treturn Config or nil, err
function M.load(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("config.load: options table expected", 2) end
  for _, k in ipairs({ "profile", "credentials_file", "config_file" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error(format("config.load: %s must be a string (got %s)", k, type(opts[k])), 2)
    end
  end
  local get = env_getter(opts.env)
  local self = setmetatable({ _getenv = get, _explicit = {} }, Config)
  collect_explicit("config.load", opts, self._explicit)

  local function env(n) return getenv(self, n) end
  local cpath = opts.config_file or env("AWS_CONFIG_FILE") or "~/.aws/config"
  local kpath = opts.credentials_file or env("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
  cpath, kpath = expand_path(cpath, env), expand_path(kpath, env)

  local cfile, err, cstate = load_file(cpath, "config")
  if not cfile then return nil, err end
  local kfile, kstate
  kfile, err, kstate = load_file(kpath, "credentials")
  if not kfile then return nil, err end
  self._files = { config_file = cpath, credentials_file = kpath, config_state = cstate, credentials_state = kstate }
  self._config = cfile.profiles and cfile or profile_map({}, {})
  self._creds = kfile

  -- the merged profiles: config file, then the credentials file's values
  -- over them (botocore/session.py `full_config`)
  local merged = {}
  for name, values in pairs(self._config.profiles) do merged[name] = copy(values) end
  for name, values in pairs(kfile) do
    local t = merged[name] or {}
    for k, v in pairs(values) do t[k] = v end
    merged[name] = t
  end
  self._profiles = merged

  local name, source = opts.profile, "explicit"
  if name == nil then
    name, source = env("AWS_PROFILE"), "AWS_PROFILE"
    if name == nil then name, source = env("AWS_DEFAULT_PROFILE"), "AWS_DEFAULT_PROFILE" end
    if name == nil then name, source = "default", "default" end
  end
  self._profile_name, self._profile_source = name, source
  if name ~= "default" and not merged[name] then
    return nil, errors.new("ProfileNotFound", format("the config profile %q (from %s) could not be found in %s or %s",
      name, source == "explicit" and "the profile option" or source, cpath, kpath), { profile = name })
  end
  return self
end

--- A copy of this config with more explicit values (same files, same
-- environment), e.g. a client's own `region` or `max_attempts`.
-- @tparam table overrides settings by name, `s3 = {...}`, `endpoint_url`
-- @treturn Config
function Config:with(overrides)
  if type(overrides) ~= "table" then error("config:with: table expected", 2) end
  for k in pairs(overrides) do
    if k == "profile" or k == "credentials_file" or k == "config_file" or k == "env" then
      error(format("config:with: %s cannot change (load another config)", k), 2)
    end
  end
  local c = setmetatable({}, Config)
  for k, v in pairs(self) do c[k] = v end
  c._explicit = copy(self._explicit)
  collect_explicit("config:with", overrides, c._explicit)
  return c
end

--- A copy of this config using another profile, as if it had been chosen
-- explicitly (same files, environment and explicit values). The assume
-- role provider reads a `source_profile` through it (botocore resolves a
-- source profile with the environment providers disabled).
-- @tparam string name
-- @treturn Config or nil, err ("ProfileNotFound")
function Config:for_profile(name)
  if type(name) ~= "string" then error("config:for_profile: name must be a string", 2) end
  if name ~= "default" and not self._profiles[name] then
    return nil, errors.new("ProfileNotFound", format("the config profile %q could not be found", name),
      { profile = name })
  end
  local c = setmetatable({}, Config)
  for k, v in pairs(self) do c[k] = v end
  c._explicit = copy(self._explicit)
  c._profile_name, c._profile_source = name, "explicit"
  return c
end

--- The profile in use and where its name came from: "explicit",
-- "AWS_PROFILE", "AWS_DEFAULT_PROFILE" or "default". An explicit profile
-- takes the environment credentials out of the chain (botocore/credentials.py
-- `create_credential_resolver`).
-- @treturn string name
-- @treturn string source
function Config:profile_name()
  return self._profile_name, self._profile_source
end

--- The merged profile: config file values, with the credentials file's
-- values for the same profile over them. A copy; `{}` when the profile is
-- in neither file. Sub-sections (`s3 = ...`) are tables.
-- @tparam[opt] string name another profile (e.g. a `source_profile`)
-- @treturn table or nil when `name` is given and does not exist
function Config:profile(name)
  if name ~= nil and type(name) ~= "string" then error("config:profile: name must be a string", 2) end
  local p = self._profiles[name or self._profile_name]
  if p == nil and name == nil then return {} end
  return copy(p)
end

--- Sorted names of every profile in either file.
function Config:profile_names()
  local out = {}
  for k in pairs(self._profiles) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- One file's own section for a profile, not merged: `which` is
-- "credentials" (`[name]` in the shared credentials file) or "config"
-- (`[profile name]` / `[default]` in the config file). Used by the
-- credential providers, which botocore keeps apart.
-- @treturn table (a copy) or nil
function Config:file_profile(which, name)
  if which ~= "credentials" and which ~= "config" then
    error("config:file_profile: which must be \"credentials\" or \"config\"", 2)
  end
  if name ~= nil and type(name) ~= "string" then error("config:file_profile: name must be a string", 2) end
  name = name or self._profile_name
  if which == "credentials" then return copy(self._creds[name]) end
  return copy(self._config.profiles[name])
end

--- A `[sso-session NAME]` or `[services NAME]` section of the config file
-- (a copy), or nil.
function Config:section(kind, name)
  if kind ~= "sso-session" and kind ~= "services" then
    error("config:section: kind must be \"sso-session\" or \"services\"", 2)
  end
  if type(name) ~= "string" then error("config:section: name must be a string", 2) end
  return copy(self._config[kind][name])
end

--- Paths of the two files and whether each was "loaded" or "missing".
-- @treturn table `{config_file, credentials_file, config_state, credentials_state}`
function Config:files()
  return copy(self._files)
end

--- The value of an environment variable as this config sees it (the
-- injected `env`, "" as nil). For the credential providers.
function Config:getenv(name)
  if type(name) ~= "string" then error("config:getenv: name must be a string", 2) end
  return getenv(self, name)
end

local function profile_value(profile, key)
  if type(key) == "string" then return profile[key] end
  local sec = profile[key[1]]
  if type(sec) ~= "table" then return nil end
  return sec[key[2]]
end

local function key_name(key)
  if type(key) == "string" then return key end
  return key[1] .. "." .. key[2]
end

--- A setting, by the precedence explicit > environment > profile > default.
-- @tparam string name a key of `config.SETTINGS`, or "endpoint_url"
-- @tparam[opt] string service_id the model's `metadata.serviceId` (used by
--   "endpoint_url")
-- @return the value (typed: booleans, numbers), nil when unset, or nil, err
--   ("InvalidConfigError") for a value that does not convert
function Config:get(name, service_id)
  if type(name) ~= "string" then error("config:get: name must be a string", 2) end
  if service_id ~= nil and type(service_id) ~= "string" then
    error("config:get: service_id must be a string", 2)
  end
  if name == "endpoint_url" then return self:endpoint_url(service_id) end
  local spec = M.SETTINGS[name]
  if not spec then error(format("config:get: unknown setting %q", name), 2) end
  local v = self._explicit[name]
  if v ~= nil then return v end
  for _, e in ipairs(spec.env or {}) do
    v = getenv(self, e)
    if v ~= nil then
      v = spec.path and expand_path(v, function(n) return getenv(self, n) end) or v
      return convert(name, spec, v, "environment variable " .. e)
    end
  end
  local profile = self._profiles[self._profile_name] or {}
  for _, key in ipairs(spec.keys or {}) do
    v = profile_value(profile, key)
    if v ~= nil and type(v) ~= "table" then
      v = spec.path and expand_path(v, function(n) return getenv(self, n) end) or v
      return convert(name, spec, v, format("%s in profile %s", key_name(key), self._profile_name))
    end
  end
  return spec.default
end

--- The region: explicit > AWS_REGION > AWS_DEFAULT_REGION > profile
-- `region` > nil. The instance metadata region, the last resort, needs I/O:
-- `session:client` asks it inside a task (aio_aws.credentials.imds `region`).
-- @treturn string or nil
function Config:region()
  return (self:get("region"))
end

-- `AWS_ENDPOINT_URL_<ID>` and the `services` key: the serviceId upper-cased
-- (resp. lower-cased) with spaces and hyphens as underscores ("CloudWatch
-- Logs" -> CLOUDWATCH_LOGS / cloudwatch_logs). AWS SDKs reference guide,
-- "Service-specific endpoints"; botocore/configprovider.py
-- `ConfiguredEndpointProvider`.
local function service_key(service_id)
  return (gsub(service_id, "[%s%-]", "_"))
end

--- The configured endpoint URL of a service, in botocore's order
-- (configprovider.py `ConfiguredEndpointProvider`): explicit
-- `endpoint_url`; nothing more when `ignore_configured_endpoint_urls`;
-- then `AWS_ENDPOINT_URL_<SERVICE_ID>`, `AWS_ENDPOINT_URL`, the service's
-- `endpoint_url` in the `[services NAME]` section the profile names with
-- `services = NAME`, and the profile's own `endpoint_url`.
-- @tparam[opt] string service_id e.g. "S3", "CloudWatch Logs"
-- @treturn string or nil; nil, err for a profile naming a missing
--   services section ("InvalidConfigError", as botocore)
function Config:endpoint_url(service_id)
  if service_id ~= nil and type(service_id) ~= "string" then
    error("config:endpoint_url: service_id must be a string", 2)
  end
  if self._explicit.endpoint_url then return self._explicit.endpoint_url end
  local ignore, err = self:get("ignore_configured_endpoint_urls")
  if err then return nil, err end
  if ignore then return nil end
  local key = service_id and service_key(service_id)
  if key then
    local v = getenv(self, "AWS_ENDPOINT_URL_" .. upper(key))
    if v then return v end
  end
  local v = getenv(self, "AWS_ENDPOINT_URL")
  if v then return v end
  local profile = self._profiles[self._profile_name] or {}
  local sname = profile.services
  if type(sname) == "string" and key then
    local section = self._config.services[sname]
    if not section then
      return nil, errors.new("InvalidConfigError", format(
        "the profile %s is configured to use the services section %q, which does not exist",
        self._profile_name, sname))
    end
    local sub_section = section[lower(key)]
    if type(sub_section) == "table" and sub_section.endpoint_url then return sub_section.endpoint_url end
  end
  if type(profile.endpoint_url) == "string" then return profile.endpoint_url end
  return nil
end

M.Config = Config
return M
