-- aio_aws.credentials: the credentials object, the providers of this issue
-- (explicit, environment, shared credentials file, config file), the chain
-- and refreshing. Shared files are temporary, the environment is a table.
local credentials = require "aio_aws.credentials"
local config = require "aio_aws.config"
local cjson = require "cjson"
local proc = require "support.proc"

-- Values that must never show up in a string a user could see.
local SECRETS = { "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLETOKEN",
  "SECRETFROMFILE0123456789", "TOKENFROMFILE0123456789", "SECRETFROMCONFIG987", "CfgToken555" }
local AKID = "AKIAIOSFODNN7EXAMPLE"

local files = require "support.aws_files"
local write = files.write
-- busted keeps only the last `finally` of a test, and tests make several
-- directories: they are removed after each test from this list
local cleanups = {}
after_each(function()
  local list = cleanups
  cleanups = {}
  for i = #list, 1, -1 do list[i]() end
end)
local function with_files(t)
  return files.with_files(t, "credentials", function(fn) cleanups[#cleanups + 1] = fn end)
end
-- The instance metadata provider (last in the chain) would be asked for
-- real: these tests switch it off unless they say otherwise.
local function load(dir, env, opts)
  env = env or {}
  if env.AWS_EC2_METADATA_DISABLED == nil then env.AWS_EC2_METADATA_DISABLED = "true" end
  return assert(files.load(dir, env, opts))
end

local function assert_no_secret(s, what)
  s = tostring(s)
  for _, secret in ipairs(SECRETS) do
    assert.is_nil(s:find(secret, 1, true), (what or "") .. " leaks a secret: " .. s)
  end
end

local FILES = {
  credentials = table.concat({
    "[default]", "aws_access_key_id = AKIADEFAULTFILE01", "aws_secret_access_key = " .. SECRETS[3], "",
    "[tok]", "aws_access_key_id = AKIATOKENFILE0001", "aws_secret_access_key = " .. SECRETS[3],
    "aws_session_token = " .. SECRETS[4], "",
    "[legacy]", "aws_access_key_id = AKIALEGACYFILE001", "aws_secret_access_key = " .. SECRETS[3],
    "aws_security_token = " .. SECRETS[4], "",
    "[partial]", "aws_access_key_id = AKIAPARTIAL000001", "",
    "[both]", "aws_access_key_id = AKIABOTHFILE00001", "aws_secret_access_key = " .. SECRETS[3], "",
    "[no-keys]", "region = x", "" }, "\n"),
  config = table.concat({
    "[profile cfg]", "aws_access_key_id = AKIACONFIGFILE001", "aws_secret_access_key = " .. SECRETS[5],
    "aws_session_token = " .. SECRETS[6], "",
    "[profile both]", "aws_access_key_id = AKIABOTHCONFIG001", "aws_secret_access_key = " .. SECRETS[5], "",
    "[profile partial]", "aws_access_key_id = AKIAPARTIALCFG001", "aws_secret_access_key = " .. SECRETS[5], "",
    "[profile no-keys]", "output = json", "",
    "[profile cfg-partial]", "aws_access_key_id = AKIACFGPARTIAL001", "" }, "\n"),
}

describe("credentials objects", function()
  it("expose the values and hide the secrets from tostring, pairs and JSON", function()
    local c = credentials.new{ access_key = AKID, secret_key = SECRETS[1], session_token = SECRETS[2], source = "test" }
    assert.are.equal(AKID, c.access_key)
    assert.are.equal(SECRETS[1], c.secret_key)
    assert.are.equal(SECRETS[2], c.session_token)
    assert.are.equal("test", c.source)
    assert.are.equal("aio_aws.Credentials(source=test, access_key=****************MPLE)", tostring(c))
    assert.is_nil(next(c)) -- no field at all: nothing to dump
    assert_no_secret(cjson.encode(c), "cjson")
    assert_no_secret(require("aio_aws.model.json").encode(c), "json")
    assert.is_true(credentials.is(c))
    assert.is_false(credentials.is({ access_key = AKID }))
    assert.are.equal(c, credentials.new(c))
  end)

  it("sign like the plain table they stand for", function()
    local sigv4 = require "aio_aws.sigv4"
    local plain = { access_key = AKID, secret_key = SECRETS[1], session_token = SECRETS[2] }
    local c = credentials.new(plain)
    local req = function() return { method = "GET", url = "https://example.amazonaws.com/", headers = {} } end
    local opts = { region = "us-east-1", service = "svc", time = "20150830T123600Z" }
    local a, b = sigv4.sign(req(), c, opts), sigv4.sign(req(), plain, opts)
    assert.are.equal(b.headers.authorization, a.headers.authorization)
    assert.are.equal(SECRETS[2], a.headers["x-amz-security-token"])
  end)

  it("are read-only", function()
    local c = credentials.new{ access_key = AKID, secret_key = SECRETS[1] }
    assert.has_error(function() c.secret_key = "x" end)
    assert.has_error(function() c.access_key = "x" end)
    assert.has_error(function() c.anything = 1 end)
    assert.are.equal(SECRETS[1], c.secret_key)
  end)

  it("mask all but the last four characters", function()
    assert.are.equal("****************MPLE", credentials.mask(AKID))
    assert.are.equal("*bcde", credentials.mask("abcde"))
    assert.are.equal("****", credentials.mask("abcd"))
    assert.are.equal("", credentials.mask(""))
    assert.matches("expires=2030%-01%-02T03:04:05Z", tostring(credentials.new{ access_key = AKID,
      secret_key = "s", expiration = "2030-01-02T03:04:05Z" }))
  end)

  it("parse the expiration as epoch seconds or ISO 8601", function()
    local c = credentials.new{ access_key = AKID, secret_key = "s", expiration = "2030-01-01T00:00:00Z" }
    assert.are.equal(1893456000, c.expiration)
    c = credentials.new{ access_key = AKID, secret_key = "s", expiration = 1893456000 }
    assert.are.equal(1893456000, c.expiration)
    assert.are.equal(100, c:remaining(1893455900))
    assert.is_false(c:expired(1893455900))
    assert.is_true(c:expired(1893456000))
    assert.is_nil(credentials.new{ access_key = AKID, secret_key = "s" }:remaining())
  end)

  it("raise on misuse", function()
    local bad = {
      "x", {}, { access_key = AKID }, { secret_key = "s" }, { access_key = 1, secret_key = "s" },
      { access_key = AKID, secret_key = {} }, { access_key = "", secret_key = "s" }, { access_key = AKID, secret_key = "" },
      { access_key = AKID, secret_key = "s", session_token = 5 }, { access_key = AKID, secret_key = "s", source = 1 },
      { access_key = AKID, secret_key = "s", expiration = "tomorrow" }, { access_key = AKID, secret_key = "s", expiration = {} },
      { access_key = AKID, secret_key = "s", expiration = 0 / 0 }, { access_key = AKID, secret_key = "s", refresh = "f" },
    }
    for i, t in ipairs(bad) do
      local ok, err = pcall(credentials.new, t)
      assert.is_false(ok, "case " .. i)
      assert_no_secret(err)
    end
    assert.has_error(function() credentials.new() end)
  end)
end)

describe("credentials.resolve", function()
  it("uses explicit credentials first, before any provider", function()
    local dir = with_files(FILES)
    local cfg = load(dir, { AWS_ACCESS_KEY_ID = "AKIAENV", AWS_SECRET_ACCESS_KEY = SECRETS[1] })
    local c = assert(credentials.resolve{ config = cfg,
      credentials = { access_key = AKID, secret_key = SECRETS[1], session_token = SECRETS[2] } })
    assert.are.same({ AKID, SECRETS[1], SECRETS[2], "explicit" }, { c.access_key, c.secret_key, c.session_token, c.source })
    -- a credentials object passes through
    assert.are.equal(c, credentials.resolve{ credentials = c })
  end)

  it("refuses partial explicit credentials", function()
    for _, t in ipairs({ { access_key = AKID }, { secret_key = SECRETS[1] }, { access_key = AKID, secret_key = "" },
      { session_token = SECRETS[2] } }) do
      local c, err = credentials.resolve{ credentials = t, config = load(with_files()) }
      assert.is_nil(c)
      assert.are.equal("PartialCredentials", err.code)
      assert_no_secret(err)
    end
    assert.has_error(function() credentials.resolve{ credentials = { access_key = 1, secret_key = "s" } } end)
    assert.has_error(function() credentials.resolve{ credentials = { acess_key = AKID, secret_key = "s" } } end)
    assert.has_error(function() credentials.resolve{ credentials = "AKID:secret" } end)
  end)

  it("reads the environment: key, secret, session or legacy security token, expiration", function()
    local dir = with_files()
    local c = assert(credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID,
      AWS_SECRET_ACCESS_KEY = SECRETS[1], AWS_SESSION_TOKEN = SECRETS[2] }) })
    assert.are.same({ AKID, SECRETS[1], SECRETS[2], "env" }, { c.access_key, c.secret_key, c.session_token, c.source })
    assert.is_false(c:refreshable())
    c = assert(credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID,
      AWS_SECRET_ACCESS_KEY = SECRETS[1], AWS_SECURITY_TOKEN = SECRETS[2] }) })
    assert.are.equal(SECRETS[2], c.session_token)
    c = assert(credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID,
      AWS_SECRET_ACCESS_KEY = SECRETS[1], AWS_SECURITY_TOKEN = "old", AWS_SESSION_TOKEN = SECRETS[2] }) })
    assert.are.equal(SECRETS[2], c.session_token)
    c = assert(credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID,
      AWS_SECRET_ACCESS_KEY = SECRETS[1], AWS_SESSION_TOKEN = "" }) })
    assert.is_nil(c.session_token)
    c = assert(credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID,
      AWS_SECRET_ACCESS_KEY = SECRETS[1], AWS_CREDENTIAL_EXPIRATION = "2030-01-01T00:00:00Z" }) })
    assert.are.equal(1893456000, c.expiration)
    assert.is_true(c:refreshable())
  end)

  it("environment errors: partial credentials, bad expiration", function()
    local dir = with_files(FILES)
    local c, err = credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID }) }
    assert.is_nil(c)
    assert.are.equal("PartialCredentials", err.code)
    assert.matches("AWS_SECRET_ACCESS_KEY", err.message)
    c, err = credentials.resolve{ config = load(dir, { AWS_ACCESS_KEY_ID = AKID, AWS_SECRET_ACCESS_KEY = SECRETS[1],
      AWS_CREDENTIAL_EXPIRATION = "soon" }) }
    assert.is_nil(c)
    assert.are.equal("InvalidCredentials", err.code)
    assert_no_secret(err)
    -- a secret alone is not a start: the chain goes on to the files
    c = assert(credentials.resolve{ config = load(dir, { AWS_SECRET_ACCESS_KEY = SECRETS[1] }) })
    assert.are.equal("shared-credentials-file", c.source)
  end)

  it("reads the shared credentials file profile", function()
    local dir = with_files(FILES)
    local c = assert(credentials.resolve{ config = load(dir) })
    assert.are.same({ "AKIADEFAULTFILE01", SECRETS[3], "shared-credentials-file" }, { c.access_key, c.secret_key, c.source })
    assert.is_nil(c.session_token)
    c = assert(credentials.resolve{ config = load(dir, { AWS_PROFILE = "tok" }) })
    assert.are.same({ "AKIATOKENFILE0001", SECRETS[4] }, { c.access_key, c.session_token })
    c = assert(credentials.resolve{ config = load(dir, nil, { profile = "legacy" }) })
    assert.are.same({ "AKIALEGACYFILE001", SECRETS[4] }, { c.access_key, c.session_token })
  end)

  it("reads the config file profile after the credentials file", function()
    local dir = with_files(FILES)
    local c = assert(credentials.resolve{ config = load(dir, nil, { profile = "cfg" }) })
    assert.are.same({ "AKIACONFIGFILE001", SECRETS[5], SECRETS[6], "config-file" },
      { c.access_key, c.secret_key, c.session_token, c.source })
    c = assert(credentials.resolve{ config = load(dir, nil, { profile = "both" }) })
    assert.are.same({ "AKIABOTHFILE00001", "shared-credentials-file" }, { c.access_key, c.source })
  end)

  it("stops at partial credentials in a file, even when a later provider has some", function()
    local dir = with_files(FILES)
    local c, err = credentials.resolve{ config = load(dir, nil, { profile = "partial" }) }
    assert.is_nil(c)
    assert.are.equal("PartialCredentials", err.code)
    assert.matches("shared credentials file .*%[partial%]", err.message)
    assert.matches("aws_secret_access_key is missing", err.message)
    assert_no_secret(err)
    assert.is_nil(tostring(err):find("AKIAPARTIAL", 1, true))
    c, err = credentials.resolve{ config = load(dir, nil, { profile = "cfg-partial" }) }
    assert.is_nil(c)
    assert.matches("config file .*%[profile cfg%-partial%]", err.message)
  end)

  it("asks env before the files, unless the profile was chosen explicitly", function()
    local dir = with_files(FILES)
    local env = { AWS_ACCESS_KEY_ID = AKID, AWS_SECRET_ACCESS_KEY = SECRETS[1] }
    assert.are.equal("env", assert(credentials.resolve{ config = load(dir, env) }).source)
    env.AWS_PROFILE = "tok"
    assert.are.equal("env", assert(credentials.resolve{ config = load(dir, env) }).source)
    env.AWS_PROFILE = nil
    local c = assert(credentials.resolve{ config = load(dir, env, { profile = "tok" }) })
    assert.are.same({ "shared-credentials-file", "AKIATOKENFILE0001" }, { c.source, c.access_key })
    -- explicit profile without keys: no env fallback
    local none, err = credentials.resolve{ config = load(dir, env, { profile = "no-keys" }) }
    assert.is_nil(none)
    assert.are.equal("NoCredentials", err.code)
    assert.is_nil(err.message:find("environment", 1, true))
  end)

  it("returns NoCredentials listing where it looked, never a value", function()
    local dir = with_files(FILES)
    local c, err = credentials.resolve{ config = load(dir, { AWS_SECRET_ACCESS_KEY = SECRETS[1] },
      { profile = "no-keys" }) }
    assert.is_nil(c)
    assert.are.equal("NoCredentials", err.code)
    assert.are.same({ "shared credentials file " .. dir .. "/credentials [no-keys]",
      "config file " .. dir .. "/config [profile no-keys]" }, err.looked_in)
    assert_no_secret(err)
    c, err = credentials.resolve{ config = load(with_files()) }
    assert.is_nil(c)
    assert.matches("^NoCredentials: unable to locate credentials; looked in: environment variables "
      .. "%(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY%); shared credentials file .*%[default%]; config file .*"
      .. "%[default%]$", tostring(err))
  end)

  it("never shows secrets in the errors of bad profiles and files", function()
    local dir = with_files({
      credentials = "[bad]\naws_access_key_id = AKIABAD\naws_secret_access_key " .. SECRETS[1] .. "\n",
      config = "[profile p]\naws_secret_access_key = " .. SECRETS[5] .. "\naws_session_token = " .. SECRETS[6] .. "\n",
    })
    local cfg, err = config.load{ env = { AWS_CONFIG_FILE = dir .. "/config",
      AWS_SHARED_CREDENTIALS_FILE = dir .. "/credentials" }, profile = "bad" }
    assert.is_nil(cfg)
    assert_no_secret(err)
    write(dir .. "/credentials", "")
    cfg = load(dir, nil, { profile = "p" }) -- a secret without an access key: no credentials there
    local c
    c, err = credentials.resolve{ config = cfg }
    assert.is_nil(c)
    assert.are.equal("NoCredentials", err.code)
    assert_no_secret(err)
    assert_no_secret(cfg, "tostring(config)")
    cfg, err = config.load{ env = { AWS_CONFIG_FILE = dir .. "/config" }, profile = SECRETS[1]:sub(1, 3) }
    assert.is_nil(cfg)
    assert.are.equal("ProfileNotFound", err.code)
    -- a provider handing back junk
    for _, t in ipairs({ { access_key = AKID, secret_key = 42 }, { access_key = AKID },
      { access_key = AKID, secret_key = SECRETS[1], expiration = "never" } }) do
      c, err = credentials.resolve{ config = cfg, providers = { { name = "junk", load = function() return t end } } }
      assert.is_nil(c)
      assert.are.equal("InvalidCredentials", err.code)
      assert.matches("provider junk", err.message)
      assert_no_secret(err)
      assert.is_nil(tostring(err):find(AKID, 1, true))
    end
  end)

  it("takes a list of providers; their errors stop the chain", function()
    local cfg = load(with_files())
    local calls = {}
    local function provider(name, ...)
      local ret = table.pack(...)
      return { name = name, load = function() calls[#calls + 1] = name return table.unpack(ret, 1, ret.n) end,
        describe = function() return "the " .. name .. " place" end }
    end
    local c = assert(credentials.resolve{ config = cfg, providers = {
      provider("a"), provider("b", { access_key = AKID, secret_key = SECRETS[1] }), provider("c") } })
    assert.are.same({ "b", AKID }, { c.source, c.access_key })
    assert.are.same({ "a", "b" }, calls)
    local _, err = credentials.resolve{ config = cfg, providers = { provider("a", nil, "boom"), provider("b") } }
    assert.are.same({ "CredentialError", "boom" }, { err.code, err.message })
    _, err = credentials.resolve{ config = cfg, providers = { provider("a"), provider("b") } }
    assert.are.same({ "the a place", "the b place" }, err.looked_in)
    _, err = credentials.resolve{ config = cfg, providers = {} }
    assert.matches("no providers", err.message)
    _, err = credentials.resolve{ config = cfg, providers = { provider("a", "nope") } }
    assert.are.equal("InvalidCredentials", err.code)
  end)

  it("loads the default config when none is given", function()
    local dir = with_files({ [".aws-credentials"] = "[default]\naws_access_key_id = AKIAHOMEFILE00001\n"
      .. "aws_secret_access_key = " .. SECRETS[3] .. "\n" })
    os.execute("mkdir -p " .. proc.quote(dir .. "/.aws") .. " && mv " .. proc.quote(dir .. "/.aws-credentials")
      .. " " .. proc.quote(dir .. "/.aws/credentials"))
    local script = 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path '
      .. 'local c, e = require("aio_aws.credentials").resolve() io.write(tostring(c or e))'
    local out = proc.sh(("env -i HOME=%s PATH=/usr/bin:/bin lua5.4 -e %s 2>&1"):format(proc.quote(dir),
      proc.quote(script)))
    assert.are.equal("aio_aws.Credentials(source=shared-credentials-file, access_key=*************0001)", out)
  end)

  it("raises on misuse", function()
    local cfg = load(with_files())
    local bad = {
      function() credentials.resolve("x") end,
      function() credentials.resolve{ confg = cfg } end,
      function() credentials.resolve{ config = "x" } end,
      function() credentials.resolve{ config = {} } end,
      function() credentials.resolve{ config = cfg, providers = "env" } end,
      function() credentials.resolve{ config = cfg, providers = { {} } } end,
      function() credentials.resolve{ config = cfg, providers = { 1 } } end,
      function() credentials.chain() end,
      function() credentials.chain("x") end,
    }
    for i, f in ipairs(bad) do assert.has_error(f, nil, "case " .. i) end
  end)
end)

describe("credentials helpers", function()
  it("explicit() checks what it is given", function()
    local p = credentials.explicit{ access_key = AKID, secret_key = SECRETS[1] }
    assert.are.equal("explicit", p.name)
    assert.are.same({ AKID, SECRETS[1] }, { p.load().access_key, p.load().secret_key })
    assert.has_error(function() credentials.explicit("x") end)
    assert.has_error(function() credentials.explicit{ access_key = 1 } end)
    assert.has_error(function() credentials.explicit{ token = "t" } end)
  end)

  it("from_profile() reads a section with botocore's keys", function()
    local t = credentials.from_profile({ aws_access_key_id = AKID, aws_secret_access_key = SECRETS[1],
      aws_security_token = "old", aws_session_token = SECRETS[2] }, "src", "here")
    assert.are.same({ access_key = AKID, secret_key = SECRETS[1], session_token = SECRETS[2], source = "src" }, t)
    assert.is_nil(credentials.from_profile(nil, "src", "here"))
    assert.is_nil(credentials.from_profile({ region = "x" }, "src", "here"))
    assert.is_nil(credentials.from_profile({ aws_access_key_id = "" }, "src", "here"))
    assert.is_nil(credentials.from_profile({ aws_access_key_id = { nested = "x" } }, "src", "here"))
    local none, err = credentials.from_profile({ aws_access_key_id = AKID, aws_secret_access_key = "" }, "src", "here")
    assert.is_nil(none)
    assert.are.same({ "PartialCredentials", "src" }, { err.code, err.provider })
    assert.has_error(function() credentials.from_profile("x", "src", "here") end)
    assert.has_error(function() credentials.from_profile({}, nil, "here") end)
    assert.has_error(function() credentials.from_profile({}, "src", 1) end)
  end)

  it("file_provider() builds a provider over one file's section", function()
    local dir = with_files(FILES)
    local p = credentials.file_provider("mine", "config", function() return "my place" end)
    assert.are.equal("mine", p.name)
    local t = assert(p.load(load(dir, nil, { profile = "cfg" })))
    assert.are.same({ "AKIACONFIGFILE001", "mine" }, { t.access_key, t.source })
    assert.is_nil(p.load(load(dir)))
    assert.are.equal("my place", p.describe())
    assert.has_error(function() credentials.file_provider(1, "config", print) end)
    assert.has_error(function() credentials.file_provider("x", "both", print) end)
    assert.has_error(function() credentials.file_provider("x", "config", "where") end)
  end)

  it("parse_expiration() takes numbers and ISO 8601 only", function()
    assert.are.equal(1893456000, credentials.parse_expiration("2030-01-01T00:00:00Z"))
    assert.are.equal(1893456000, credentials.parse_expiration("2030-01-01T01:00:00+01:00"))
    assert.are.equal(12.5, credentials.parse_expiration(12.5))
    assert.is_nil(credentials.parse_expiration(nil))
    for _, bad in ipairs({ "soon", "", {}, true, 1 / 0 }) do
      local v, why = credentials.parse_expiration(bad)
      assert.is_nil(v)
      assert.is_string(why)
    end
  end)

  it("the methods raise on a non-number clock", function()
    local c = credentials.new{ access_key = AKID, secret_key = SECRETS[1], expiration = 10 }
    for _, m in ipairs({ "remaining", "expired", "refresh_needed", "get_frozen" }) do
      assert.has_error(function() c[m](c, "now") end, nil, m)
    end
  end)
end)

describe("credentials.chain", function()
  it("lists botocore's order and skips env for an explicit profile", function()
    assert.are.same({ "env", "assume_role", "web_identity", "sso", "shared_credentials_file", "credential_process",
      "config_file", "container", "imds" }, credentials.ORDER)
    local dir = with_files({ config = "[profile p]\nregion = x\n" })
    -- botocore's method names
    local all = { "assume-role", "assume-role-with-web-identity", "sso", "shared-credentials-file", "custom-process",
      "config-file", "container-role", "iam-role" }
    local names = {}
    for i, p in ipairs(credentials.chain(load(dir))) do names[i] = p.name end
    assert.are.same({ "env", table.unpack(all) }, names)
    names = {}
    for i, p in ipairs(credentials.chain(load(dir, nil, { profile = "p" }))) do names[i] = p.name end
    assert.are.same(all, names)
    names = {}
    for i, p in ipairs(credentials.chain(load(dir, { AWS_PROFILE = "p" }))) do names[i] = p.name end
    assert.are.same({ "env", table.unpack(all) }, names)
  end)
end)

describe("refreshable credentials", function()
  local T0 = 1893456000 -- 2030-01-01T00:00:00Z

  local function refreshable(refresh, expiration)
    return credentials.new{ access_key = "AKIAOLD000000001", secret_key = SECRETS[1], expiration = expiration or T0,
      source = "test", refresh = refresh }
  end

  it("refresh in the advisory and mandatory windows only", function()
    local n = 0
    local c = refreshable(function()
      n = n + 1
      return { access_key = "AKIANEW00000000" .. n, secret_key = SECRETS[3], expiration = T0 + 3600 * n }
    end)
    assert.is_nil(c:refresh_needed(T0 - 3600))
    assert.are.equal("advisory", c:refresh_needed(T0 - 14 * 60))
    assert.are.equal("mandatory", c:refresh_needed(T0 - 9 * 60))
    local f = assert(c:get_frozen(T0 - 3600))
    assert.are.same({ 0, "AKIAOLD000000001", SECRETS[1] }, { n, f.access_key, f.secret_key })
    assert.is_false(f:refreshable())
    f = assert(c:get_frozen(T0 - 14 * 60))
    assert.are.same({ 1, "AKIANEW000000001", SECRETS[3], T0 + 3600 }, { n, f.access_key, f.secret_key, f.expiration })
    assert.are.equal("AKIANEW000000001", c.access_key)
    -- the snapshot does not change when the source refreshes again
    local g = assert(c:get_frozen(T0 + 3600 - 60))
    assert.are.same({ 2, "AKIANEW000000002", "AKIANEW000000001" }, { n, g.access_key, f.access_key })
  end)

  it("keep the current credentials when an advisory refresh fails; fail in the mandatory window", function()
    local fail = true
    local c = refreshable(function()
      if fail then return nil, require("aio_aws.errors").new("Boom", "no network") end
      return { access_key = "AKIANEW000000001", secret_key = SECRETS[3], expiration = T0 + 3600 }
    end)
    local logged = {}
    local old_log = credentials.log
    credentials.log = function(level, msg) logged[#logged + 1] = level .. ": " .. msg end
    finally(function() credentials.log = old_log end)
    local f = assert(c:get_frozen(T0 - 14 * 60))
    assert.are.equal("AKIAOLD000000001", f.access_key)
    assert.are.equal(1, #logged)
    assert.matches("^warning: refreshing credentials from test failed.*no network", logged[1])
    local none, err = c:get_frozen(T0 - 5 * 60)
    assert.is_nil(none)
    assert.are.equal("CredentialRefreshError", err.code)
    assert.matches("no network", err.message)
    assert.are.equal("Boom", err.cause.code)
    assert_no_secret(err)
    -- a refresh that raises counts as a failure
    local r = refreshable(function() error("exploded") end)
    none, err = r:get_frozen(T0)
    assert.is_nil(none)
    assert.matches("exploded", err.message)
    fail = false
    assert.are.equal("AKIANEW000000001", assert(c:get_frozen(T0 - 5 * 60)).access_key)
  end)

  it("refuse refreshed credentials that are still expired, and junk from the refresh", function()
    local c = refreshable(function() return { access_key = "AKIANEW000000001", secret_key = "s", expiration = T0 - 1 } end)
    local none, err = c:get_frozen(T0)
    assert.is_nil(none)
    assert.matches("already expired", err.message)
    c = refreshable(function() return { access_key = "AKIANEW000000001" } end)
    none, err = c:get_frozen(T0)
    assert.is_nil(none)
    assert.matches("incomplete", err.message)
    for _, junk in ipairs({ "AKIA", 42, true, { access_key = "AKIANEW000000001", secret_key = "s", session_token = 7 } }) do
      c = refreshable(function() return junk end)
      none, err = c:get_frozen(T0)
      assert.is_nil(none)
      assert.are.equal("CredentialRefreshError", err.code)
    end
  end)

  it("expired credentials that cannot refresh are an error", function()
    local c = credentials.new{ access_key = AKID, secret_key = SECRETS[1], expiration = T0, source = "x" }
    assert.are.equal(c, assert(c:get_frozen(T0 - 1)))
    local none, err = c:get_frozen(T0 + 1)
    assert.is_nil(none)
    assert.are.equal("ExpiredCredentials", err.code)
    assert_no_secret(err)
    -- and credentials without expiry never expire
    local forever = credentials.new{ access_key = AKID, secret_key = SECRETS[1] }
    assert.are.equal(forever, assert(forever:get_frozen(math.maxinteger)))
  end)

  it("environment credentials with an expiration re-read the environment", function()
    local env = { AWS_ACCESS_KEY_ID = "AKIAENVFIRST00001", AWS_SECRET_ACCESS_KEY = SECRETS[1],
      AWS_CREDENTIAL_EXPIRATION = "2030-01-01T00:00:00Z" }
    local c = assert(credentials.resolve{ config = load(with_files(), env) })
    env.AWS_ACCESS_KEY_ID, env.AWS_SESSION_TOKEN = "AKIAENVSECOND0001", SECRETS[2]
    env.AWS_CREDENTIAL_EXPIRATION = "2030-01-01T06:00:00Z"
    local f = assert(c:get_frozen(T0 - 60))
    assert.are.same({ "AKIAENVSECOND0001", SECRETS[2], T0 + 6 * 3600 }, { f.access_key, f.session_token, f.expiration })
    -- the expiration went away: botocore's fetcher requires it on refresh
    env.AWS_CREDENTIAL_EXPIRATION = nil
    local none, err = c:get_frozen(T0 + 6 * 3600 - 60)
    assert.is_nil(none)
    assert.matches("AWS_CREDENTIAL_EXPIRATION", err.message)
  end)

  it("refresh once for concurrent tasks", function()
    local aws = require "aio_aws"
    local n = 0
    local c = refreshable(function()
      n = n + 1
      aws.sleep(0.05) -- a refresh that waits (as an HTTP one would)
      return { access_key = "AKIANEW000000001", secret_key = SECRETS[3], expiration = T0 + 3600 }
    end)
    local results = assert(aws.run(function()
      local fns = {}
      for i = 1, 5 do fns[i] = function() return assert(c:get_frozen(T0 - 60)).access_key end end
      return aws.gather(table.unpack(fns))
    end))
    for i = 1, 5 do assert.are.equal("AKIANEW000000001", results[i]) end
    assert.are.equal(1, n)
  end)
end)
