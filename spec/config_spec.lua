-- aio_aws.config: the shared files and the environment, read as botocore
-- reads them. The INI reader is compared with Debian's botocore
-- (configloader.raw_config_parse) on the same files; everything else runs
-- on temporary files and an injected environment, never on ~/.aws.
local config = require "aio_aws.config"
local cjson = require "cjson"
local proc = require "support.proc"

local PYTHON = "/usr/bin/python3"

local files = require "support.aws_files"
local write, load = files.write, files.load
local function with_files(t) return files.with_files(t, "config", finally) end

describe("config.parse_ini", function()
  it("parses sections, options, comments and sub-sections", function()
    local s = assert(config.parse_ini(table.concat({
      "# comment", "; comment", "[default]", "Region = us-west-2", "output: json",
      "s3 =", "  addressing_style = path", "", "  max_concurrent_requests = 20",
      "multi = one", "  two", "empty =", "[profile dev]", "region = eu-west-1 # kept", "",
    }, "\n")))
    assert.are.same({
      default = { region = "us-west-2", output = "json", empty = "", multi = "one\ntwo",
        s3 = { addressing_style = "path", max_concurrent_requests = "20" } },
      ["profile dev"] = { region = "eu-west-1 # kept" },
    }, s)
  end)

  it("handles CRLF, tabs, a missing final newline and a UTF-8 BOM", function()
    local s = assert(config.parse_ini("\239\187\191[default]\r\nregion = x\r\ns3 =\r\n\taddressing_style = virtual"))
    assert.are.same({ default = { region = "x", s3 = { addressing_style = "virtual" } } }, s)
  end)

  it("returns ConfigParseError with the line, never the line's text", function()
    local cases = {
      { "aws_secret_access_key wJalrXUtnFEMI/K7MDENG\n[default]\n", 1, "outside a section" },
      { "[default]\naws_secret_access_key wJalrXUtnFEMI/K7MDENG\n", 2, "expected 'name = value'" },
      { "[default]\na = 1\n[default]\n", 3, "duplicate section" },
      { "[default]\na = 1\nA = 2\n", 3, "duplicate option" },
      { "[default]\n= wJalrXUtnFEMI/K7MDENG\n", 2, "expected" },
      { "[default]\ns3 =\n  wJalrXUtnFEMI/K7MDENG\n", 2, "malformed sub%-section" },
      { "[]\n", 1, "outside a section" },
    }
    for _, c in ipairs(cases) do
      local s, err = config.parse_ini(c[1], "/tmp/x")
      assert.is_nil(s, c[1])
      assert.are.equal("ConfigParseError", err.code)
      assert.are.equal("/tmp/x", err.file)
      assert.are.equal(c[2], err.line, c[1])
      assert.matches(c[3], err.message)
      assert.matches("line " .. c[2], tostring(err))
      assert.is_nil(tostring(err):find("wJalr", 1, true), "the secret leaked: " .. tostring(err))
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() config.parse_ini(nil) end)
    assert.has_error(function() config.parse_ini(42) end)
    assert.has_error(function() config.parse_ini({}) end)
  end)
end)

-- Files read by both implementations. Each must give the same sections (or
-- both an error). Not here: a UTF-8 BOM, which Python reads as part of the
-- first line (MissingSectionHeaderError) and we skip.
local INI_CASES = {
  "[default]\nregion = us-east-1\n",
  "# c\n; c\n\n[default]\n  # indented comment\nregion=us-east-1\n\n\n[profile dev]\nregion = eu-west-1\n",
  "[default]\ns3 =\n  addressing_style = path\n\n  signature_version = s3v4\n  # inside\nregion = x\n",
  "[default]\nmulti = first\n   second\n\tthird\nafter = 1\n",
  "[default]\nname: value\nName2 : v2\nUPPER = v\n",
  "[DEFAULT]\ninherited = yes\nregion = d\n[default]\nregion = r\n[profile a]\nx = 1\n",
  "[weird] junk]\na=b\n[a] # not a comment\nb = c\n[ default ]\nc = d\n",
  "[default]\r\nregion = x\r\ns3 =\r\n  addressing_style = virtual\r\n",
  "[default]\nempty =\nspaces =    \neq = a = b = c\ncolon = a:b\nsemi = v ; c\n",
  "  [default]\nregion = x\n  [profile not-a-section]\n",
  "[profile \"my dev\"]\nregion = ap-south-1\n[profile 'q']\nregion = q\n[sso-session s]\nsso_region = r\n",
  "[services local]\ns3 =\n  endpoint_url = http://localhost:9000\ndynamodb =\n  endpoint_url = http://l:8000\n",
  "[default]\nregion = üñí\n",
  "[default]\nlast = no newline",
  "",
  "# only a comment\n",
  "[default]\ns3 =\n",
  "[default]\ns3 = \n  a = 1\n  b=2\n",
  "[default]\nkey\n",
  "region = x\n",
  "[default]\na = 1\n[default]\nb = 2\n",
  "[default]\na = 1\na = 2\n",
  "[default]\ns3 =\n  not a pair\n",
  "[default]\n= v\n",
  "[]\n",
  "[a]\n[b]\n[c]\nx = 1\n",
}

describe("config.parse_ini against botocore", function()
  if os.execute(PYTHON .. " -c 'import botocore.configloader' >/dev/null 2>&1") ~= true then
    pending("Debian's botocore (" .. PYTHON .. ") is not installed")
    return
  end

  it("reads every file as botocore's raw_config_parse does", function()
    local dir = with_files()
    local paths = {}
    for i, text in ipairs(INI_CASES) do
      paths[i] = dir .. "/case" .. i .. ".ini"
      write(paths[i], text)
    end
    write(dir .. "/cases.json", cjson.encode(paths))
    write(dir .. "/parse.py", [[
import json, sys
from botocore.configloader import raw_config_parse
out = []
for path in json.load(open(sys.argv[1])):
    try:
        out.append({"ok": True, "sections": raw_config_parse(path)})
    except Exception as e:
        out.append({"ok": False, "error": type(e).__name__})
print(json.dumps(out))
]])
    local text, ok = proc.sh(PYTHON .. " " .. proc.quote(dir .. "/parse.py") .. " " .. proc.quote(dir .. "/cases.json"))
    assert(ok, text)
    local theirs = cjson.decode(text)
    assert.are.equal(#INI_CASES, #theirs)
    for i, want in ipairs(theirs) do
      local s, err = config.parse_ini(INI_CASES[i], paths[i])
      if want.ok then
        assert.is_table(s, ("case %d: %s"):format(i, tostring(err)))
        -- Python's dict of the [DEFAULT] values is not a section
        assert.are.same(want.sections, s, "case " .. i .. ": " .. INI_CASES[i])
      else
        assert.is_nil(s, ("case %d should fail (%s)"):format(i, want.error))
        assert.are.equal("ConfigParseError", err.code)
        assert.are.equal("ConfigParseError", want.error, "case " .. i)
      end
    end
  end)

  it("merges the two files into the same profiles as botocore's session", function()
    local dir = with_files({
      config = "[default]\nregion = us-east-1\noutput = json\n[profile dev]\nregion = eu-west-1\n"
        .. "aws_access_key_id = AKIACONFIG\n[profile only-config]\nregion = ca-central-1\n"
        .. "[profile \"spaced name\"]\nregion = ap-south-1\n[sso-session s]\nsso_region = x\n[plain]\na = 1\n",
      credentials = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n"
        .. "[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = s2\n[only-creds]\naws_access_key_id = k\n"
        .. "[profile dev]\nx = 1\n",
    })
    write(dir .. "/full.py", [[
import json, os, sys
os.environ["AWS_CONFIG_FILE"] = sys.argv[1] + "/config"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = sys.argv[1] + "/credentials"
import botocore.session
print(json.dumps(botocore.session.get_session().full_config["profiles"]))
]])
    local text, ok = proc.sh(PYTHON .. " " .. proc.quote(dir .. "/full.py") .. " " .. proc.quote(dir))
    assert(ok, text)
    local theirs = cjson.decode(text)
    local cfg = assert(load(dir))
    local mine = {}
    for _, name in ipairs(cfg:profile_names()) do mine[name] = cfg:profile(name) end
    assert.are.same(theirs, mine)
  end)
end)

describe("config.load", function()
  it("reads the files named by the environment, with ~ and $VAR expanded", function()
    local dir = with_files({ config = "[default]\nregion = eu-north-1\n" })
    local cfg = assert(config.load{ env = { HOME = dir, AWS_CONFIG_FILE = "~/config",
      AWS_SHARED_CREDENTIALS_FILE = "$HOME/nothing" } })
    assert.are.equal("eu-north-1", cfg:region())
    assert.are.same({ config_file = dir .. "/config", credentials_file = dir .. "/nothing",
      config_state = "loaded", credentials_state = "missing" }, cfg:files())
    cfg = assert(config.load{ env = { D = dir, AWS_CONFIG_FILE = "${D}/config" } })
    assert.are.equal("eu-north-1", cfg:region())
    -- the defaults: ~/.aws/config and ~/.aws/credentials under HOME
    os.execute("mkdir -p " .. proc.quote(dir .. "/.aws"))
    write(dir .. "/.aws/config", "[default]\nregion = sa-east-1\n")
    cfg = assert(config.load{ env = { HOME = dir } })
    assert.are.equal("sa-east-1", cfg:region())
    assert.are.equal(dir .. "/.aws/credentials", cfg:files().credentials_file)
    -- explicit paths win over the environment
    cfg = assert(config.load{ env = { HOME = "/nonexistent", AWS_CONFIG_FILE = "/nonexistent/c" },
      config_file = dir .. "/config" })
    assert.are.equal("eu-north-1", cfg:region())
  end)

  it("treats missing files (and directories) as empty", function()
    local dir = with_files()
    local cfg = assert(load(dir))
    assert.are.same({}, cfg:profile())
    assert.are.same({}, cfg:profile_names())
    assert.is_nil(cfg:region())
    cfg = assert(load(dir, { AWS_CONFIG_FILE = dir, AWS_SHARED_CREDENTIALS_FILE = dir }))
    assert.are.equal("missing", cfg:files().config_state)
  end)

  it("returns ConfigParseError for a malformed file, never quoting it", function()
    local dir = with_files({
      config = "[default]\nregion = x\n",
      credentials = "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key wJalrXUtnFEMI\n",
    })
    local cfg, err = load(dir)
    assert.is_nil(cfg)
    assert.are.equal("ConfigParseError", err.code)
    assert.are.equal(dir .. "/credentials", err.file)
    assert.are.equal(3, err.line)
    assert.is_nil(tostring(err):find("wJalr", 1, true))
    write(dir .. "/credentials", "")
    write(dir .. "/config", "[default]\nregion = x\nregion = y\n")
    cfg, err = load(dir)
    assert.is_nil(cfg)
    assert.are.same({ "ConfigParseError", dir .. "/config", 3 }, { err.code, err.file, err.line })
  end)

  it("chooses the profile: explicit, AWS_PROFILE, AWS_DEFAULT_PROFILE, default", function()
    local dir = with_files({ config = "[profile a]\nregion = ra\n[profile b]\nregion = rb\n[default]\nregion = rd\n",
      credentials = "[c]\naws_access_key_id = x\n" })
    local cfg = assert(load(dir, { AWS_PROFILE = "b", AWS_DEFAULT_PROFILE = "c" }, { profile = "a" }))
    assert.are.same({ "a", "explicit" }, { cfg:profile_name() })
    assert.are.equal("ra", cfg:region())
    cfg = assert(load(dir, { AWS_PROFILE = "b", AWS_DEFAULT_PROFILE = "c" }))
    assert.are.same({ "b", "AWS_PROFILE" }, { cfg:profile_name() })
    assert.are.equal("rb", cfg:region())
    cfg = assert(load(dir, { AWS_PROFILE = "", AWS_DEFAULT_PROFILE = "c" }))
    assert.are.same({ "c", "AWS_DEFAULT_PROFILE" }, { cfg:profile_name() })
    assert.is_nil(cfg:region())
    cfg = assert(load(dir))
    assert.are.same({ "default", "default" }, { cfg:profile_name() })
    assert.are.equal("rd", cfg:region())
  end)

  it("returns ProfileNotFound for a named profile in neither file", function()
    local dir = with_files({ config = "[profile a]\nregion = x\n" })
    for _, how in ipairs({ { {}, { profile = "nope" } }, { { AWS_PROFILE = "nope" } },
      { { AWS_DEFAULT_PROFILE = "nope" } } }) do
      local cfg, err = load(dir, how[1], how[2])
      assert.is_nil(cfg)
      assert.are.equal("ProfileNotFound", err.code)
      assert.are.equal("nope", err.profile)
      assert.matches('"nope"', err.message)
    end
    -- "default" may be absent
    assert.is_table(load(dir, { AWS_PROFILE = "default" }))
  end)

  it("merges the credentials file over the config file", function()
    local dir = with_files({
      config = "[profile dev]\nregion = eu-west-1\naws_access_key_id = FROMCONFIG\ns3 =\n  addressing_style = path\n",
      credentials = "[dev]\naws_access_key_id = FROMCREDS\naws_secret_access_key = s\n",
    })
    local cfg = assert(load(dir, nil, { profile = "dev" }))
    assert.are.same({ region = "eu-west-1", aws_access_key_id = "FROMCREDS", aws_secret_access_key = "s",
      s3 = { addressing_style = "path" } }, cfg:profile())
    assert.are.same({ aws_access_key_id = "FROMCREDS", aws_secret_access_key = "s" }, cfg:file_profile("credentials"))
    assert.are.equal("FROMCONFIG", cfg:file_profile("config").aws_access_key_id)
    assert.is_nil(cfg:file_profile("config", "other"))
    assert.is_nil(cfg:profile("other"))
    -- profile() is a copy
    cfg:profile().region = "changed"
    cfg:profile().s3.addressing_style = "changed"
    assert.are.equal("eu-west-1", cfg:profile().region)
    assert.are.equal("path", cfg:get("s3.addressing_style"))
  end)

  it("raises on misuse", function()
    local bad = {
      function() config.load("x") end,
      function() config.load{ profile = 1 } end,
      function() config.load{ credentials_file = true } end,
      function() config.load{ config_file = {} } end,
      function() config.load{ env = "x" } end,
      function() config.load{ regoin = "typo" } end,
      function() config.load{ region = 1 } end,
      function() config.load{ max_attempts = "3" } end,
      function() config.load{ max_attempts = 1.5 } end,
      function() config.load{ max_attempts = 0 } end,
      function() config.load{ use_fips_endpoint = "true" } end,
      function() config.load{ retry_mode = "sometimes" } end,
      function() config.load{ s3 = "path" } end,
      function() config.load{ s3 = { adressing_style = "path" } } end,
      function() config.load{ s3 = { addressing_style = "sideways" } } end,
      function() config.load{ endpoint_url = 1 } end,
    }
    for i, f in ipairs(bad) do
      assert.has_error(f, nil, "case " .. i)
    end
  end)

  it("reads nothing at require time", function()
    local dir = with_files({ config = "this is not an ini file\n" })
    local out, ok = proc.sh(("cd %s && AWS_CONFIG_FILE=%s lua5.4 -e %s 2>&1"):format(proc.quote(proc.sh("pwd")),
      proc.quote(dir .. "/config"), proc.quote(
        'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path; require "aio_aws.config"; '
        .. 'require "aio_aws.credentials"; require "aio_aws.endpoints"; local c, e = require("aio_aws.config").load(); '
        .. 'io.write(tostring(c), " ", tostring(e and e.code))')))
    assert(ok, out)
    assert.are.equal("nil ConfigParseError", out)
  end)
end)

describe("config settings", function()
  it("region: explicit > AWS_REGION > AWS_DEFAULT_REGION > profile > nil", function()
    local dir = with_files({ config = "[default]\nregion = from-profile\n" })
    local env = { AWS_REGION = "from-region", AWS_DEFAULT_REGION = "from-default" }
    assert.are.equal("explicit", assert(load(dir, env, { region = "explicit" })):region())
    assert.are.equal("from-region", assert(load(dir, env)):region())
    env.AWS_REGION = nil
    assert.are.equal("from-default", assert(load(dir, env)):region())
    env.AWS_DEFAULT_REGION = ""
    assert.are.equal("from-profile", assert(load(dir, env)):region())
    write(dir .. "/config", "")
    assert.is_nil(assert(load(dir, env)):region())
  end)

  it("applies explicit > environment > profile > default to every scalar", function()
    local dir = with_files({ config = table.concat({
      "[default]", "max_attempts = 7", "retry_mode = adaptive", "use_fips_endpoint = True",
      "use_dualstack_endpoint = false", "sts_regional_endpoints = legacy", "ca_bundle = ~/ca.pem",
      "request_checksum_calculation = when_required", "response_checksum_validation = when_required",
      "s3 =", "  addressing_style = virtual", "  us_east_1_regional_endpoint = regional",
      "  use_accelerate_endpoint = true", "" }, "\n") })
    local cfg = assert(load(dir, { HOME = "/home/u" }))
    assert.are.same({ 7, "adaptive", true, false, "legacy", "/home/u/ca.pem", "when_required", "when_required",
      "virtual", "regional", true },
      { cfg:get("max_attempts"), cfg:get("retry_mode"), cfg:get("use_fips_endpoint"),
        cfg:get("use_dualstack_endpoint"), cfg:get("sts_regional_endpoints"), cfg:get("ca_bundle"),
        cfg:get("request_checksum_calculation"), cfg:get("response_checksum_validation"),
        cfg:get("s3.addressing_style"), cfg:get("s3.us_east_1_regional_endpoint"),
        cfg:get("s3.use_accelerate_endpoint") })
    cfg = assert(load(dir, { AWS_MAX_ATTEMPTS = " 3 ", AWS_RETRY_MODE = "legacy", AWS_USE_FIPS_ENDPOINT = "false",
      AWS_USE_DUALSTACK_ENDPOINT = "TRUE", AWS_STS_REGIONAL_ENDPOINTS = "regional", AWS_CA_BUNDLE = "/etc/ca",
      AWS_REQUEST_CHECKSUM_CALCULATION = "when_supported", AWS_S3_US_EAST_1_REGIONAL_ENDPOINT = "legacy" }))
    assert.are.same({ 3, "legacy", false, true, "regional", "/etc/ca", "when_supported", "legacy" },
      { cfg:get("max_attempts"), cfg:get("retry_mode"), cfg:get("use_fips_endpoint"),
        cfg:get("use_dualstack_endpoint"), cfg:get("sts_regional_endpoints"), cfg:get("ca_bundle"),
        cfg:get("request_checksum_calculation"), cfg:get("s3.us_east_1_regional_endpoint") })
    cfg = assert(load(dir, { AWS_MAX_ATTEMPTS = "3" }, { max_attempts = 9, s3 = { addressing_style = "path" },
      use_fips_endpoint = false, ["s3.us_east_1_regional_endpoint"] = "legacy" }))
    assert.are.same({ 9, "path", false, "legacy" }, { cfg:get("max_attempts"), cfg:get("s3.addressing_style"),
      cfg:get("use_fips_endpoint"), cfg:get("s3.us_east_1_regional_endpoint") })
  end)

  it("has the documented defaults", function()
    local cfg = assert(load(with_files()))
    -- checksums: "when_required", as the client issue specifies (botocore
    -- 1.36 moved to "when_supported", which breaks S3-compatible stores)
    assert.are.same({ "standard", false, false, "regional", "auto", "when_required", "when_required", "legacy",
      false, 1, 1 },
      { cfg:get("retry_mode"), cfg:get("use_fips_endpoint"), cfg:get("use_dualstack_endpoint"),
        cfg:get("sts_regional_endpoints"), cfg:get("s3.addressing_style"), cfg:get("request_checksum_calculation"),
        cfg:get("response_checksum_validation"), cfg:get("s3.us_east_1_regional_endpoint"),
        cfg:get("ignore_configured_endpoint_urls"), cfg:get("metadata_service_timeout"),
        cfg:get("metadata_service_num_attempts") })
    assert.is_nil(cfg:get("max_attempts"))
    assert.is_nil(cfg:get("ca_bundle"))
    assert.is_nil(cfg:get("endpoint_url"))
  end)

  it("booleans as botocore's ensure_boolean: only 'true' (any case) is true", function()
    local dir = with_files()
    for v, want in pairs({ ["true"] = true, ["True"] = true, TRUE = true, ["false"] = false, yes = false,
      ["1"] = false, on = false }) do
      assert.are.equal(want, assert(load(dir, { AWS_USE_FIPS_ENDPOINT = v })):get("use_fips_endpoint"), v)
    end
  end)

  it("returns InvalidConfigError for values it cannot use", function()
    local dir = with_files({ config = "[default]\nmax_attempts = lots\ns3 =\n  addressing_style = sideways\n" })
    local cfg = assert(load(dir, { AWS_RETRY_MODE = "fast", AWS_STS_REGIONAL_ENDPOINTS = "both",
      AWS_METADATA_SERVICE_NUM_ATTEMPTS = "0", AWS_METADATA_SERVICE_TIMEOUT = "-1",
      AWS_REQUEST_CHECKSUM_CALCULATION = "always" }))
    for _, name in ipairs({ "max_attempts", "s3.addressing_style", "retry_mode", "sts_regional_endpoints",
      "metadata_service_num_attempts", "metadata_service_timeout", "request_checksum_calculation" }) do
      local v, err = cfg:get(name)
      assert.is_nil(v, name)
      assert.are.equal("InvalidConfigError", err.code, name)
      assert.are.equal(name, err.setting)
    end
    local _, err = cfg:get("max_attempts")
    assert.matches("max_attempts in profile default", err.message)
    _, err = cfg:get("retry_mode")
    assert.matches("environment variable AWS_RETRY_MODE", err.message)
    assert.is_nil(cfg:region())
  end)

  it("ignores a sub-section key written as a plain value", function()
    local cfg = assert(load(with_files({ config = "[default]\ns3 = path\n" })))
    assert.are.equal("auto", cfg:get("s3.addressing_style"))
  end)

  it("raises for unknown settings and wrong types", function()
    local cfg = assert(load(with_files()))
    assert.has_error(function() cfg:get("no_such_setting") end)
    assert.has_error(function() cfg:get(1) end)
    assert.has_error(function() cfg:get("endpoint_url", 1) end)
    assert.has_error(function() cfg:endpoint_url(true) end)
    assert.has_error(function() cfg:profile(1) end)
    assert.has_error(function() cfg:file_profile("both") end)
    assert.has_error(function() cfg:file_profile("config", 1) end)
    assert.has_error(function() cfg:section("profile", "x") end)
    assert.has_error(function() cfg:section("services", nil) end)
    assert.has_error(function() cfg:getenv(nil) end)
    assert.has_error(function() cfg:with("x") end)
    assert.has_error(function() cfg:with{ profile = "other" } end)
    assert.has_error(function() cfg:with{ max_attempts = "x" } end)
  end)

  it("with() adds explicit values and keeps the rest", function()
    local dir = with_files({ config = "[default]\nregion = eu-west-1\nmax_attempts = 4\n" })
    local cfg = assert(load(dir, { AWS_RETRY_MODE = "adaptive" }))
    local c2 = cfg:with{ region = "us-west-2", endpoint_url = "http://localhost:1" }
    assert.are.same({ "us-west-2", 4, "adaptive", "http://localhost:1" },
      { c2:region(), c2:get("max_attempts"), c2:get("retry_mode"), c2:endpoint_url("S3") })
    assert.are.equal("eu-west-1", cfg:region())
    assert.is_nil(cfg:endpoint_url("S3"))
  end)

  it("env may be a function; an empty variable is unset", function()
    local dir = with_files()
    local seen = {}
    local cfg = assert(config.load{ env = function(k)
      seen[k] = true
      if k == "AWS_CONFIG_FILE" then return dir .. "/c" end
      if k == "AWS_REGION" then return "" end
      if k == "AWS_DEFAULT_REGION" then return "ap-south-1" end
      return nil
    end })
    assert.are.equal("ap-south-1", cfg:region())
    assert.is_true(seen.AWS_REGION)
    assert.is_nil(cfg:getenv("AWS_REGION"))
    assert.are.equal("ap-south-1", cfg:getenv("AWS_DEFAULT_REGION"))
  end)
end)

describe("config endpoint_url", function()
  local CONFIG = table.concat({
    "[default]", "endpoint_url = http://profile-global", "services = local",
    "[profile other]", "endpoint_url = http://other-global",
    "[profile broken]", "services = missing",
    "[services local]", "s3 =", "  endpoint_url = http://services-s3",
    "cloudwatch_logs =", "  endpoint_url = http://services-logs",
    "elastic_beanstalk =", "  endpoint_url = http://services-eb", "" }, "\n")

  it("follows botocore's order: explicit, env per service, env global, services section, profile", function()
    local dir = with_files({ config = CONFIG })
    local cfg = assert(load(dir, { AWS_ENDPOINT_URL_S3 = "http://env-s3", AWS_ENDPOINT_URL = "http://env-global" },
      { endpoint_url = "http://explicit" }))
    assert.are.equal("http://explicit", cfg:endpoint_url("S3"))
    cfg = assert(load(dir, { AWS_ENDPOINT_URL_S3 = "http://env-s3", AWS_ENDPOINT_URL = "http://env-global" }))
    assert.are.equal("http://env-s3", cfg:endpoint_url("S3"))
    assert.are.equal("http://env-global", cfg:endpoint_url("DynamoDB"))
    assert.are.equal("http://env-global", cfg:get("endpoint_url", "Lambda"))
    cfg = assert(load(dir))
    assert.are.same({ "http://services-s3", "http://services-logs", "http://services-eb", "http://profile-global",
      "http://profile-global" },
      { cfg:endpoint_url("S3"), cfg:endpoint_url("CloudWatch Logs"), cfg:endpoint_url("Elastic Beanstalk"),
        cfg:endpoint_url("DynamoDB"), cfg:endpoint_url() })
    cfg = assert(load(dir, nil, { profile = "other" }))
    assert.are.equal("http://other-global", cfg:endpoint_url("S3"))
  end)

  it("upper-cases the serviceId with spaces and hyphens as underscores", function()
    local dir = with_files()
    local env = { AWS_ENDPOINT_URL_CLOUDWATCH_LOGS = "http://logs", AWS_ENDPOINT_URL_ACM_PCA = "http://pca",
      AWS_ENDPOINT_URL_SSO_OIDC = "http://oidc", AWS_ENDPOINT_URL_API_GATEWAY = "http://apigw" }
    local cfg = assert(load(dir, env))
    assert.are.same({ "http://logs", "http://pca", "http://oidc", "http://apigw" },
      { cfg:endpoint_url("CloudWatch Logs"), cfg:endpoint_url("ACM PCA"), cfg:endpoint_url("SSO OIDC"),
        cfg:endpoint_url("API-Gateway") })
    assert.is_nil(cfg:endpoint_url("Batch"))
  end)

  it("ignore_configured_endpoint_urls drops everything but an explicit endpoint_url", function()
    local dir = with_files({ config = CONFIG })
    local env = { AWS_ENDPOINT_URL = "http://env-global", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" }
    assert.is_nil(assert(load(dir, env)):endpoint_url("S3"))
    assert.are.equal("http://x", assert(load(dir, env, { endpoint_url = "http://x" })):endpoint_url("S3"))
    write(dir .. "/config", "[default]\nignore_configured_endpoint_urls = true\nendpoint_url = http://p\n")
    assert.is_nil(assert(load(dir)):endpoint_url("S3"))
    assert.is_nil(assert(load(dir, { AWS_ENDPOINT_URL = "http://e" })):endpoint_url("S3"))
    assert.are.equal("http://e", assert(load(dir, { AWS_ENDPOINT_URL = "http://e",
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "false" })):endpoint_url("S3"))
  end)

  it("returns InvalidConfigError for a profile naming a missing services section", function()
    local cfg = assert(load(with_files({ config = CONFIG }), nil, { profile = "broken" }))
    local url, err = cfg:endpoint_url("S3")
    assert.is_nil(url)
    assert.are.equal("InvalidConfigError", err.code)
    assert.matches('"missing"', err.message)
    assert.are.same({ s3 = { endpoint_url = "http://services-s3" },
      cloudwatch_logs = { endpoint_url = "http://services-logs" },
      elastic_beanstalk = { endpoint_url = "http://services-eb" } }, cfg:section("services", "local"))
    assert.is_nil(cfg:section("sso-session", "none"))
  end)
end)
