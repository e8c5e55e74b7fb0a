-- The credential providers that need I/O (aio_aws.credentials.{imds,
-- container, assume_role, web_identity, process}) and the whole chain,
-- against loopback stand-ins for the instance metadata service, the
-- container endpoint and STS (spec/support/creds_server.py), and a fake
-- credential_process program (spec/support/fake_credential_process.sh).
-- The clock of the credentials module is injected for expiry and refresh.
local credentials = require "aio_aws.credentials"
local imds = require "aio_aws.credentials.imds"
local container = require "aio_aws.credentials.container"
local creds_server = require "support.creds_server"
local files = require "support.aws_files"
local proc = require "support.proc"
local run = require "support.run"
local aws = require "aio_aws"

local T0 = 1893456000 -- 2030-01-01T00:00:00Z, the servers' reference time
local FAKE = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/support/fake_credential_process.sh"
FAKE = proc.sh("readlink -f " .. proc.quote(FAKE))

-- values that must never show up in an error or a log line
local SECRETS = { "imdsSECRETkey", "stsSECRETkey", "procSECRETkey", "baseSECRET0000000000000000000000000000001",
  "envSECRET000000000000000000000000000000001", "WEBIDENTITYTOKEN-abc", "Bearer container-secret" }

local function assert_no_secret(s, what)
  s = tostring(s)
  for _, secret in ipairs(SECRETS) do
    assert.is_nil(s:find(secret, 1, true), (what or "") .. " leaks a secret: " .. s)
  end
end

-- busted keeps only the last `finally` of a test: every cleanup (temp
-- directories, module settings) goes through this list instead
local cleanups = {}
local function on_end(fn) cleanups[#cleanups + 1] = fn end
after_each(function()
  local list = cleanups
  cleanups = {}
  for i = #list, 1, -1 do list[i]() end
end)

-- the keys the STS stand-in hands out (numbered by its counter)
local function sts_key(n) return ("ASIASTS0000000000%03d"):format(n) end
local function sts_secret(n) return ("stsSECRETkey00000000000000000000000000%04d"):format(n) end

describe("credential providers with I/O", function()
  local srv
  local saved = {}

  setup(function()
    srv = creds_server.start()
    saved.now, saved.log, saved.base, saved.sleep = credentials.now, credentials.log, container._relative_base,
      container.SLEEP
    saved.random = imds.random
  end)
  teardown(function()
    if srv then srv:stop() end
  end)

  local logged
  before_each(function()
    srv:reset()
    local secrets = { AKIABASE0000000001 = SECRETS[4], AKIAENV00000000001 = SECRETS[5],
      ASIAIMDS000000000001 = "imdsSECRETkey0000000000000000000000000001" }
    for n = 1, 20 do secrets[sts_key(n)] = sts_secret(n) end
    srv:config{ secrets = secrets }
    credentials.now = function() return T0 end
    logged = {}
    credentials.log = function(level, msg) logged[#logged + 1] = { level, msg } end
    container._relative_base = srv.url
    container.SLEEP = 0 -- the retries' pause (botocore: 1 s) would only slow the specs down
    imds.random = function(lo) return lo end
  end)
  after_each(function()
    credentials.now, credentials.log, container._relative_base, container.SLEEP = saved.now, saved.log, saved.base,
      saved.sleep
    imds.random = saved.random
  end)

  -- a config over temp files; the instance metadata service and STS are
  -- the stand-in unless the test says otherwise
  local function cfg(file_texts, env, opts)
    local dir = files.with_files(file_texts, "chain", on_end)
    env = env or {}
    if env.AWS_EC2_METADATA_DISABLED == nil then env.AWS_EC2_METADATA_DISABLED = "true" end
    if env.AWS_EC2_METADATA_SERVICE_ENDPOINT == nil then env.AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url end
    if env.AWS_ENDPOINT_URL_STS == nil then env.AWS_ENDPOINT_URL_STS = srv.url end
    return assert(files.load(dir, env, opts)), dir
  end
  local function imds_cfg(env)
    env = env or {}
    env.AWS_EC2_METADATA_DISABLED = env.AWS_EC2_METADATA_DISABLED or "false"
    return (cfg(nil, env))
  end

  local function frozen(c)
    return run(function() return c:get_frozen() end)
  end

  -- ------------------------------------------------------------ IMDS

  describe("instance metadata", function()
    it("uses IMDSv2: a token PUT with its TTL header, then the role and its credentials with the token", function()
      srv:config{ imds_v2_only = true }
      local c = assert(credentials.resolve{ config = imds_cfg() })
      -- nothing asked yet: the fetch waits for the first use inside a task
      assert.are.same({}, srv:requests())
      assert.are.equal("aio_aws.Credentials(source=iam-role, not fetched yet)", tostring(c))
      local f = assert(frozen(c))
      assert.are.same({ "ASIAIMDS000000000001", "imdsSECRETkey0000000000000000000000000001", "imdsTOKEN0001",
        T0 + 6 * 3600, "iam-role" }, { f.access_key, f.secret_key, f.session_token, f.expiration, f.source })
      local reqs = srv:requests()
      assert.are.same({ "PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
        "GET /latest/meta-data/iam/security-credentials/test-role" },
        { reqs[1].method .. " " .. reqs[1].path, reqs[2].method .. " " .. reqs[2].path,
          reqs[3].method .. " " .. reqs[3].path })
      assert.are.equal("21600", reqs[1].headers["x-aws-ec2-metadata-token-ttl-seconds"])
      assert.are.equal("IMDSTOKEN-1", reqs[2].headers["x-aws-ec2-metadata-token"])
      assert.are.equal("IMDSTOKEN-1", reqs[3].headers["x-aws-ec2-metadata-token"])
      assert.is_true(c:refreshable())
    end)

    it("resolved inside a task, fetches at once", function()
      local c = assert(run(function() return credentials.resolve{ config = imds_cfg() } end))
      assert.are.equal(3, #srv:requests())
      assert.are.equal("ASIAIMDS000000000001", c.access_key)
    end)

    it("falls back to IMDSv1 when the token PUT answers 404, 403 or 405", function()
      for _, status in ipairs({ 404, 403, 405 }) do
        srv:reset()
        srv:script("/latest/api/token", { { status = status } }, "PUT")
        local c = assert(credentials.resolve{ config = imds_cfg() })
        local f = assert(frozen(c))
        assert.are.equal("ASIAIMDS000000000001", f.access_key)
        local gets = srv:requests_to("/latest/meta-data/iam/security-credentials/test-role")
        assert.are.equal(1, #gets, "status " .. status)
        assert.is_nil(gets[1].headers["x-aws-ec2-metadata-token"])
      end
    end)

    it("falls back to IMDSv1 when the token PUT times out, not after a 400", function()
      srv:script("/latest/api/token", { { status = 200, body = "late", delay = 1.5 } }, "PUT")
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_METADATA_SERVICE_TIMEOUT = "0.3" } })
      assert.are.equal("ASIAIMDS000000000001", assert(frozen(c)).access_key)
      assert.is_nil(srv:requests_to("/latest/meta-data/iam/security-credentials/test-role")[1]
        .headers["x-aws-ec2-metadata-token"])
      -- 400: a bad request, nothing here (botocore BadIMDSRequestError)
      srv:reset()
      srv:script("/latest/api/token", { { status = 400 } }, "PUT")
      c = assert(credentials.resolve{ config = imds_cfg() })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("NoCredentials", err.code)
      assert.matches("instance metadata service %(" .. srv.url:gsub("%p", "%%%0") .. "/%)", err.message)
      assert.are.equal(1, #srv:requests())
    end)

    it("retries other token failures, then tries IMDSv1", function()
      srv:script("/latest/api/token", { { status = 500 } }, "PUT")
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_METADATA_SERVICE_NUM_ATTEMPTS = "2" } })
      assert(frozen(c))
      assert.are.equal(2, #srv:requests_to("/latest/api/token"))
      assert.are.equal("IMDSTOKEN-1", srv:requests_to("/latest/meta-data/iam/security-credentials/")[1]
        .headers["x-aws-ec2-metadata-token"])
    end)

    it("times out a slow answer and finds nothing after the attempts", function()
      local role = "/latest/meta-data/iam/security-credentials/"
      srv:script(role, { { status = 200, body = "test-role", delay = 1.5, times = 2 } }, "GET")
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_METADATA_SERVICE_TIMEOUT = "0.3",
        AWS_METADATA_SERVICE_NUM_ATTEMPTS = "2" } })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("NoCredentials", err.code)
      assert.matches("Timeout", err.message)
      assert.are.equal(2, #srv:requests_to(role))
    end)

    it("refuses IMDSv1 when ec2_metadata_v1_disabled", function()
      srv:script("/latest/api/token", { { status = 404 } }, "PUT")
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_EC2_METADATA_V1_DISABLED = "true" } })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("MetadataRetrievalError", err.code)
      assert.are.equal(1, #srv:requests())
    end)

    it("retries non-200, empty and invalid answers up to the number of attempts", function()
      local role = "/latest/meta-data/iam/security-credentials/"
      srv:script(role, { { status = 500 }, { status = 200, body = "" } }, "GET")
      srv:script(role .. "test-role", { { status = 200, body = "{not json" } }, "GET")
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_METADATA_SERVICE_NUM_ATTEMPTS = "3" } })
      assert.are.equal("ASIAIMDS000000000001", assert(frozen(c)).access_key)
      assert.are.equal(3, #srv:requests_to(role))
      assert.are.equal(2, #srv:requests_to(role .. "test-role"))
      -- one attempt: the first 500 ends it, and the chain finds nothing
      srv:reset()
      srv:script(role, { { status = 500 } }, "GET")
      c = assert(credentials.resolve{ config = imds_cfg() })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("NoCredentials", err.code)
      assert.matches("status 500", err.message)
    end)

    it("finds nothing in answers without every field, or with an error document", function()
      local bad = {
        { Code = "AssumeRoleUnauthorizedAccess", Message = "EC2 cannot assume the role", LastUpdated = "x" },
        { AccessKeyId = "ASIAIMDS000000000001", SecretAccessKey = "imdsSECRETkey1", Token = "t" },
        { AccessKeyId = 5, SecretAccessKey = "imdsSECRETkey1", Token = "t", Expiration = "2030-01-01T06:00:00Z" },
        { AccessKeyId = "ASIAIMDS000000000001", SecretAccessKey = "imdsSECRETkey1", Token = "t", Expiration = "soon" },
        "[1, 2]", "null",
      }
      for i, doc in ipairs(bad) do
        srv:config{ creds = doc }
        local c = assert(credentials.resolve{ config = imds_cfg() })
        local none, err = frozen(c)
        assert.is_nil(none, "case " .. i)
        assert.are.equal("NoCredentials", err.code, "case " .. i)
        assert_no_secret(err)
      end
    end)

    it("is not asked at all when AWS_EC2_METADATA_DISABLED=true", function()
      local c, err = credentials.resolve{ config = cfg(nil, { AWS_EC2_METADATA_DISABLED = "TRUE" }) }
      assert.is_nil(c)
      assert.are.equal("NoCredentials", err.code)
      assert.is_nil(err.message:find("instance metadata", 1, true))
      assert.are.same({}, srv:requests())
      local r, rerr = run(function() return imds.region(cfg(nil, { AWS_EC2_METADATA_DISABLED = "true" })) end)
      assert.is_nil(r)
      assert.are.equal("NoCredentials", rerr.code)
    end)

    it("chooses the endpoint like botocore: custom, else IPv6 or IPv4 by mode", function()
      local function base(env) return imds.base_url(cfg(nil, env)) end
      assert.are.equal(srv.url .. "/", base{})
      assert.are.equal("http://169.254.169.254/", base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "" })
      assert.are.equal("http://[fd00:ec2::254]/", base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "",
        AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv6" })
      assert.are.equal("http://169.254.169.254/", base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "",
        AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv4" })
      assert.are.equal("http://10.0.0.1:80/", base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://10.0.0.1:80",
        AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv6" })
      local none, err = base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "169.254.169.254" }
      assert.is_nil(none)
      assert.are.equal("InvalidIMDSEndpoint", err.code)
      none, err = base{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "", AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "ipv5" }
      assert.is_nil(none)
      assert.are.equal("InvalidConfigError", err.code)
      -- an invalid endpoint is reported by the fetch, as a config error
      local c = assert(credentials.resolve{ config = imds_cfg{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "nope" } })
      local f
      f, err = frozen(c)
      assert.is_nil(f)
      assert.are.equal("InvalidIMDSEndpoint", err.code)
    end)

    it("refreshes in the advisory window, once for concurrent tasks", function()
      local c = assert(credentials.resolve{ config = imds_cfg() })
      assert(frozen(c))
      assert.are.equal(1, #srv:requests_to("/latest/api/token"))
      srv:config{ creds = { AccessKeyId = "ASIAIMDS000000000002", SecretAccessKey = "imdsSECRETkey2",
        Token = "imdsTOKEN0002", Expiration = "2030-01-01T12:00:00Z" } }
      credentials.now = function() return T0 + 6 * 3600 - 14 * 60 end
      local keys = assert(run(function()
        local fns = {}
        for i = 1, 6 do fns[i] = function() return assert(c:get_frozen()).access_key end end
        return aws.gather(table.unpack(fns))
      end))
      for i = 1, 6 do assert.are.equal("ASIAIMDS000000000002", keys[i]) end
      assert.are.equal(2, #srv:requests_to("/latest/api/token"))
      assert.are.equal(2, #srv:requests_to("/latest/meta-data/iam/security-credentials/test-role"))
    end)

    it("keeps the current credentials when an advisory refresh fails, and logs it", function()
      local c = assert(credentials.resolve{ config = imds_cfg() })
      assert(frozen(c))
      srv:script("/latest/meta-data/iam/security-credentials/", { { status = 500 } }, "GET")
      credentials.now = function() return T0 + 6 * 3600 - 12 * 60 end
      assert.are.equal("ASIAIMDS000000000001", assert(frozen(c)).access_key)
      assert.are.equal(1, #logged)
      assert.are.equal("warning", logged[1][1])
      assert.matches("iam%-role", logged[1][2])
      assert_no_secret(logged[1][2])
      -- in the mandatory window a failure is an error
      srv:script("/latest/meta-data/iam/security-credentials/", { { status = 500 } }, "GET")
      credentials.now = function() return T0 + 6 * 3600 - 5 * 60 end
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRefreshError", err.code)
      assert_no_secret(err)
    end)

    it("extends credentials served close to their expiry (botocore static stability)", function()
      srv:config{ creds = { AccessKeyId = "ASIAIMDS000000000001", SecretAccessKey = "imdsSECRETkey1",
        Token = "t", Expiration = "2030-01-01T00:05:00Z" } }
      local c = assert(credentials.resolve{ config = imds_cfg() })
      local f = assert(frozen(c))
      -- now + 15 min + the smallest jitter (2 min), instead of 5 min
      assert.are.equal(T0 + 15 * 60 + 120, f.expiration)
    end)

    it("gives the region, and sessions use it as the last resort inside a task", function()
      assert.are.equal("eu-central-1", run(function() return imds.region(imds_cfg()) end))
      srv:config{ region = "not a region!" }
      local none, err = run(function() return imds.region(imds_cfg()) end)
      assert.is_nil(none)
      assert.are.equal("InvalidRegion", err.code)
      srv:reset()
      srv:config{ region = "us-west-2" }
      local dir = files.with_files(nil, "chain", on_end)
      local env = { AWS_CONFIG_FILE = dir .. "/c", AWS_SHARED_CREDENTIALS_FILE = dir .. "/k",
        AWS_EC2_METADATA_SERVICE_ENDPOINT = srv.url }
      local session = assert(aws.session{ config = { env = env },
        credentials = { access_key = "AKIDEXAMPLE", secret_key = "s" } })
      -- outside a task: no I/O, no region
      assert.is_nil(assert(session:client("s3")).region)
      assert.are.same({}, srv:requests_to("/latest/meta-data/placement/region"))
      local client = assert(run(function() return session:client("s3") end))
      assert.are.equal("us-west-2", client.region)
      assert.are.equal("https://s3.us-west-2.amazonaws.com", client.meta.endpoint_url)
      assert(run(function() return session:client("sqs") end))
      assert.are.equal(1, #srv:requests_to("/latest/meta-data/placement/region"), "asked once per session")
      -- a configured region or an endpoint_url: never asked
      srv:reset()
      local other = assert(aws.session{ config = { env = env }, region = "eu-west-1",
        credentials = { access_key = "AKIDEXAMPLE", secret_key = "s" } })
      assert.are.equal("eu-west-1", assert(run(function() return other:client("s3") end)).region)
      other = assert(aws.session{ config = { env = env }, credentials = { access_key = "AKIDEXAMPLE", secret_key = "s" } })
      assert(run(function() return other:client("s3", { endpoint_url = "http://127.0.0.1:1" }) end))
      assert.are.same({}, srv:requests())
    end)
  end)

  -- ------------------------------------------------------------ container

  describe("container credentials", function()
    local REL = "/v2/credentials/test-uuid"

    it("GET 169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI with the authorization token", function()
      srv:config{ container_token = SECRETS[7] }
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN = SECRETS[7],
        AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:1/ignored" }) })
      assert.are.same({}, srv:requests())
      local f = assert(frozen(c))
      assert.are.same({ "ASIAIMDS000000000001", "imdsTOKEN0001", "container-role", T0 + 6 * 3600 },
        { f.access_key, f.session_token, f.source, f.expiration })
      local r = srv:requests_to(REL)
      assert.are.equal(1, #r)
      assert.are.equal(SECRETS[7], r[1].headers.authorization)
      assert.are.equal("application/json", r[1].headers.accept)
    end)

    it("uses a loopback FULL_URI and re-reads the token file for every fetch", function()
      local dir = files.with_files({ token = "Bearer first" }, "chain", on_end)
      srv:config{ container_token = "Bearer first" }
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_FULL_URI = srv.url .. REL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = dir .. "/token", AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer env" }) })
      assert(frozen(c))
      files.write(dir .. "/token", "Bearer second")
      srv:config{ container_token = "Bearer second" }
      credentials.now = function() return T0 + 6 * 3600 - 60 end
      assert(frozen(c))
      local r = srv:requests_to(REL)
      assert.are.same({ "Bearer first", "Bearer second" }, { r[1].headers.authorization, r[2].headers.authorization })
    end)

    it("allows the hosts botocore allows, checked before any request", function()
      -- Python's ipaddress is the oracle for "loopback"
      local hosts = { "127.0.0.1", "127.1.2.3", "127.0.0.256", "128.0.0.1", "::1", "0:0:0:0:0:0:0:1", "::2",
        "0::1", "1::1", "::", "localhost.example.com", "10.0.0.1", "0127.0.0.1" }
      local script = "import ipaddress,sys\nfor h in sys.argv[1:]:\n  try: print(ipaddress.ip_address(h).is_loopback)\n"
        .. "  except ValueError: print(False)"
      local argv = { "/usr/bin/python3", "-c", script }
      for _, h in ipairs(hosts) do argv[#argv + 1] = h end
      local words = {}
      for i, a in ipairs(argv) do words[i] = proc.quote(a) end
      local out = proc.sh(table.concat(words, " "))
      local i = 0
      for line in out:gmatch("[^\n]+") do
        i = i + 1
        assert.are.equal(line == "True", container._is_loopback(hosts[i]), hosts[i])
      end
      assert.are.equal(#hosts, i)
      for _, ok in ipairs({ "http://169.254.170.2/x", "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/x",
        "http://localhost:8080/x", "http://LOCALHOST/x", "http://127.0.0.5:1/x", "http://[::1]:80/x",
        "https://127.0.0.1/x", "http://user@127.0.0.1/x" }) do
        assert.is_true(container.allowed_url(ok), ok)
      end
      for _, bad in ipairs({ "http://169.254.169.254/latest", "http://example.com/x", "http://127.0.0.1.evil.com/x",
        "http://10.0.0.1/x", "ftp://127.0.0.1/x", "127.0.0.1/x", "http:///x" }) do
        assert.is_false(container.allowed_url(bad), bad)
      end
      local c, err = credentials.resolve{ config = cfg(nil, {
        AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://169.254.169.254/latest/meta-data" }) }
      assert.is_nil(c)
      assert.are.equal("InvalidConfigError", err.code)
      assert.matches("unsupported host", err.message)
      assert.are.same({}, srv:requests())
      assert.has_error(function() container.allowed_url(1) end)
    end)

    it("refuses a token with CR or LF", function()
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer x\r\nX-Evil: 1" }) })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRetrievalError", err.code)
      assert.matches("legal header value", err.message)
      assert.are.same({}, srv:requests())
      local dir = files.with_files(nil, "chain", on_end)
      c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = dir .. "/missing" }) })
      none, err = frozen(c)
      assert.is_nil(none)
      assert.matches("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", err.message)
    end)

    it("retries failures three times and reports them without the body", function()
      srv:script(REL, { { status = 500, body = SECRETS[7] } })
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL }) })
      assert(frozen(c))
      assert.are.equal(2, #srv:requests_to(REL))
      srv:reset()
      srv:config{ container_token = "Bearer right" }
      c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer wrong" }) })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRetrievalError", err.code)
      assert.matches("401", err.message)
      assert.are.equal(3, #srv:requests_to(REL))
      for i, doc in ipairs({ "{broken " .. SECRETS[2], { AccessKeyId = "ASIA1", SecretAccessKey = SECRETS[2] },
        { AccessKeyId = "ASIA1", SecretAccessKey = SECRETS[2], Token = "t", Expiration = 17 } }) do
        srv:reset()
        srv:config{ creds = doc }
        c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL }) })
        none, err = frozen(c)
        assert.is_nil(none, "case " .. i)
        assert.are.equal("CredentialRetrievalError", err.code)
        assert_no_secret(err)
      end
    end)

    it("times out a server that does not answer", function()
      local old = container.TIMEOUT
      container.TIMEOUT = 0.3
      on_end(function() container.TIMEOUT = old end)
      srv:script(REL, { { status = 200, delay = 1.5, times = 3 } })
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = REL }) })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRetrievalError", err.code)
      assert.matches("Timeout", err.message)
    end)
  end)

  -- ------------------------------------------------------------ assume role

  describe("assume role", function()
    local BASE = "[base]\naws_access_key_id = AKIABASE0000000001\naws_secret_access_key = " .. SECRETS[4] .. "\n"

    local function role_cfg(config_text, env, opts)
      return cfg({ credentials = BASE, config = config_text }, env, opts)
    end

    it("calls AssumeRole with the profile's parameters, signed with the source profile's keys", function()
      local c = assert(credentials.resolve{ config = role_cfg(table.concat({
        "[profile dev]", "role_arn = arn:aws:iam::123456789012:role/dev", "source_profile = base",
        "external_id = ext-42", "role_session_name = my-session", "duration_seconds = 1800", "region = eu-west-1",
      }, "\n"), nil, { profile = "dev" }) })
      assert.are.same({}, srv:requests())
      local f = assert(frozen(c))
      assert.are.same({ sts_key(1), sts_secret(1), "stsTOKEN0001", T0 + 3600, "assume-role" },
        { f.access_key, f.secret_key, f.session_token, f.expiration, f.source })
      local r = srv:requests_to("/", "POST")
      assert.are.equal(1, #r)
      assert.are.same({ Action = "AssumeRole", Version = "2011-06-15", RoleArn = "arn:aws:iam::123456789012:role/dev",
        RoleSessionName = "my-session", ExternalId = "ext-42", DurationSeconds = "1800" }, r[1].params)
      assert.are.same({ access_key = "AKIABASE0000000001", region = "eu-west-1", service = "sts", valid = true },
        r[1].auth)
    end)

    it("names the session after the clock and ignores a non-integer duration, as botocore", function()
      local c = assert(credentials.resolve{ config = role_cfg(
        "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\nduration_seconds = 1h\n",
        nil, { profile = "dev" }) })
      assert(frozen(c))
      local p = srv:requests_to("/", "POST")[1].params
      assert.are.equal("aio-aws-session-" .. T0, p.RoleSessionName)
      assert.is_nil(p.DurationSeconds)
      assert.is_nil(p.ExternalId)
    end)

    it("chains roles: each AssumeRole signed with the credentials of the one before", function()
      local c = assert(credentials.resolve{ config = role_cfg(table.concat({
        "[profile a]", "role_arn = arn:aws:iam::123456789012:role/a", "source_profile = b", "",
        "[profile b]", "role_arn = arn:aws:iam::123456789012:role/b", "source_profile = base",
      }, "\n"), { AWS_PROFILE = "a" }) })
      local f = assert(frozen(c))
      assert.are.equal(sts_key(2), f.access_key)
      local r = srv:requests_to("/", "POST")
      assert.are.equal(2, #r)
      assert.are.same({ "arn:aws:iam::123456789012:role/b", "AKIABASE0000000001", true },
        { r[1].params.RoleArn, r[1].auth.access_key, r[1].auth.valid })
      assert.is_nil(r[1].auth.token)
      assert.are.same({ "arn:aws:iam::123456789012:role/a", sts_key(1), "stsTOKEN0001", true },
        { r[2].params.RoleArn, r[2].auth.access_key, r[2].auth.token, r[2].auth.valid })
    end)

    it("detects loops; a profile may source itself only with static keys", function()
      local conf = table.concat({
        "[profile a]", "role_arn = arn:aws:iam::123456789012:role/a", "source_profile = b", "",
        "[profile b]", "role_arn = arn:aws:iam::123456789012:role/b", "source_profile = a", "",
        "[profile self]", "role_arn = arn:aws:iam::123456789012:role/s", "source_profile = self", "",
        "[profile selfkeys]", "role_arn = arn:aws:iam::123456789012:role/k", "source_profile = selfkeys",
        "aws_access_key_id = AKIABASE0000000001", "aws_secret_access_key = " .. SECRETS[4], "",
      }, "\n")
      local c, err = credentials.resolve{ config = role_cfg(conf, nil, { profile = "a" }) }
      assert.is_nil(c)
      assert.are.equal("InfiniteLoopConfigError", err.code)
      assert.matches("a %-> b %-> a", err.message)
      c, err = credentials.resolve{ config = role_cfg(conf, nil, { profile = "self" }) }
      assert.is_nil(c)
      assert.are.equal("InfiniteLoopConfigError", err.code)
      c = assert(credentials.resolve{ config = role_cfg(conf, nil, { profile = "selfkeys" }) })
      assert(frozen(c))
      assert.are.same({ "AKIABASE0000000001", true }, { srv:requests()[1].auth.access_key, srv:requests()[1].auth.valid })
    end)

    it("refuses bad role configurations before any request", function()
      local cases = {
        { "role_arn = arn:x\nsource_profile = base\ncredential_source = Environment", "InvalidConfigError",
          "both source_profile and credential_source" },
        { "role_arn = arn:x", "PartialCredentials", "neither source_profile nor credential_source" },
        { "role_arn = arn:x\ncredential_source = Ec2Metadata", "InvalidConfigError", "is not valid" },
        { "role_arn = arn:x\nsource_profile = nowhere", "InvalidConfigError", "does not exist" },
        { "role_arn = arn:x\nsource_profile = empty", "InvalidConfigError", "must have credentials" },
        { "role_arn = arn:x\nsource_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/me", "MFANotSupported",
          "mfa_serial" },
        { "role_arn =\nsource_profile = base", "InvalidConfigError", "empty role_arn" },
        { "role_arn = arn:x\ncredential_source = Environment", "CredentialRetrievalError", "credential_source" },
      }
      for i, case in ipairs(cases) do
        local c, err = credentials.resolve{ config = role_cfg("[profile dev]\n" .. case[1]
          .. "\n[profile empty]\nregion = x\n", nil, { profile = "dev" }) }
        assert.is_nil(c, "case " .. i)
        assert.are.equal(case[2], err.code, "case " .. i)
        assert.matches(case[3], err.message, 1, true)
        assert_no_secret(err)
      end
      assert.are.same({}, srv:requests())
    end)

    it("takes the source from credential_source: Environment, EcsContainer, Ec2InstanceMetadata", function()
      local conf = "[profile env]\nrole_arn = arn:aws:iam::123456789012:role/env\ncredential_source = Environment\n"
        .. "[profile ecs]\nrole_arn = arn:aws:iam::123456789012:role/ecs\ncredential_source = EcsContainer\n"
        .. "[profile ec2]\nrole_arn = arn:aws:iam::123456789012:role/ec2\ncredential_source = ec2instancemetadata\n"
      -- the environment provider is the source even for an explicit profile
      local c = assert(credentials.resolve{ config = role_cfg(conf, { AWS_ACCESS_KEY_ID = "AKIAENV00000000001",
        AWS_SECRET_ACCESS_KEY = SECRETS[5] }, { profile = "env" }) })
      assert(frozen(c))
      local r = srv:requests()[1]
      assert.are.same({ "arn:aws:iam::123456789012:role/env", "AKIAENV00000000001", true }, { r.params.RoleArn, r.auth.access_key, r.auth.valid })
      srv:reset()
      srv:config{ secrets = { ASIAIMDS000000000001 = "imdsSECRETkey0000000000000000000000000001" } }
      c = assert(credentials.resolve{ config = role_cfg(conf, {
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/test-uuid" }, { profile = "ecs" }) })
      assert(frozen(c))
      local reqs = srv:requests()
      assert.are.same({ "/v2/credentials/test-uuid", "/" }, { reqs[1].path, reqs[2].path })
      assert.are.same({ "ASIAIMDS000000000001", "imdsTOKEN0001", true },
        { reqs[2].auth.access_key, reqs[2].auth.token, reqs[2].auth.valid })
      srv:reset()
      srv:config{ secrets = { ASIAIMDS000000000001 = "imdsSECRETkey0000000000000000000000000001" } }
      c = assert(credentials.resolve{ config = role_cfg(conf, { AWS_EC2_METADATA_DISABLED = "false" },
        { profile = "ec2" }) })
      assert(frozen(c))
      reqs = srv:requests()
      assert.are.same({ "/latest/api/token", "/" }, { reqs[1].path, reqs[4].path })
      assert.is_true(reqs[4].auth.valid)
    end)

    it("returns STS errors, retrying the retryable ones", function()
      local conf = "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n"
      local denied = '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        .. "<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error>"
        .. "<RequestId>4e4fd5a3-0f5c-4e1a-a3b7-6f8e3b0b1d11</RequestId></ErrorResponse>"
      srv:script("/", { { status = 403, body = denied, headers = { ["Content-Type"] = "text/xml" } } }, "POST")
      local c = assert(credentials.resolve{ config = role_cfg(conf, nil, { profile = "dev" }) })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.same({ "AccessDenied", 403, "4e4fd5a3-0f5c-4e1a-a3b7-6f8e3b0b1d11" },
        { err.code, err.status, err.request_id })
      assert_no_secret(err)
      srv:reset()
      srv:config{ secrets = { AKIABASE0000000001 = SECRETS[4] } }
      srv:script("/", { { status = 500, body = "<oops/>" } }, "POST")
      c = assert(credentials.resolve{ config = role_cfg(conf, nil, { profile = "dev" }) })
      assert.are.equal(sts_key(1), assert(frozen(c)).access_key)
      assert.are.equal(2, #srv:requests_to("/", "POST"))
      -- an answer without Credentials
      srv:reset()
      srv:script("/", { { status = 200, body = '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        .. "<AssumeRoleResult></AssumeRoleResult></AssumeRoleResponse>" } }, "POST")
      c = assert(credentials.resolve{ config = role_cfg(conf, nil, { profile = "dev" }) })
      none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRetrievalError", err.code)
    end)

    it("refreshes by assuming the role again, once for concurrent tasks", function()
      local c = assert(credentials.resolve{ config = role_cfg(
        "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n", nil,
        { profile = "dev" }) })
      local keys = assert(run(function()
        local fns = {}
        for i = 1, 5 do fns[i] = function() return assert(c:get_frozen()).access_key end end
        return aws.gather(table.unpack(fns))
      end))
      for i = 1, 5 do assert.are.equal(sts_key(1), keys[i]) end
      assert.are.equal(1, #srv:requests_to("/", "POST"))
      srv:config{ sts_expiration = "2030-01-01T02:00:00Z" }
      credentials.now = function() return T0 + 3600 - 5 * 60 end
      keys = assert(run(function()
        local fns = {}
        for i = 1, 5 do fns[i] = function() return assert(c:get_frozen()).access_key end end
        return aws.gather(table.unpack(fns))
      end))
      for i = 1, 5 do assert.are.equal(sts_key(2), keys[i]) end
      assert.are.equal(2, #srv:requests_to("/", "POST"))
      assert.are.equal(T0 + 7200, c.expiration)
    end)

    it("signs a client's requests with the assumed role, resolved outside a task", function()
      local dir = files.with_files({ credentials = BASE, config =
        "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\nregion = eu-west-1\n" },
        "chain", on_end)
      local session = assert(aws.session{ profile = "dev", config = { env = { AWS_CONFIG_FILE = dir .. "/config",
        AWS_SHARED_CREDENTIALS_FILE = dir .. "/credentials", AWS_ENDPOINT_URL_STS = srv.url,
        AWS_EC2_METADATA_DISABLED = "true" } } })
      local sts = assert(session:client("sts"))
      assert.are.same({}, srv:requests())
      local out = assert(run(function() return sts:get_caller_identity() end))
      assert.are.equal("123456789012", out.Account)
      local r = srv:requests()
      assert.are.same({ "AssumeRole", "GetCallerIdentity" }, { r[1].params.Action, r[2].params.Action })
      assert.are.same({ sts_key(1), "stsTOKEN0001", true }, { r[2].auth.access_key, r[2].auth.token, r[2].auth.valid })
      -- signing outside a task needs the fetch: misuse
      local fresh = assert(aws.session{ profile = "dev", config = { env = { AWS_CONFIG_FILE = dir .. "/config",
        AWS_SHARED_CREDENTIALS_FILE = dir .. "/credentials", AWS_ENDPOINT_URL_STS = srv.url } } })
      local client = assert(fresh:client("sts"))
      assert.has_error(function() client:get_caller_identity({}, { dry_run = true }) end)
    end)
  end)

  -- ------------------------------------------------------------ web identity

  describe("web identity", function()
    local function token_dir(token)
      return files.with_files({ token = token or SECRETS[6] }, "chain", on_end)
    end

    it("calls AssumeRoleWithWebIdentity unsigned with the token file's content (environment)", function()
      local dir = token_dir()
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web", AWS_ROLE_SESSION_NAME = "pod-1" }) })
      assert.are.same({}, srv:requests())
      local f = assert(frozen(c))
      assert.are.same({ sts_key(1), "stsTOKEN0001", "assume-role-with-web-identity", T0 + 3600 },
        { f.access_key, f.session_token, f.source, f.expiration })
      local r = srv:requests_to("/", "POST")
      assert.are.equal(1, #r)
      assert.are.same({ Action = "AssumeRoleWithWebIdentity", Version = "2011-06-15",
        RoleArn = "arn:aws:iam::123456789012:role/web", RoleSessionName = "pod-1", WebIdentityToken = SECRETS[6] },
        r[1].params)
      assert.is_nil(r[1].auth) -- botocore sends it unsigned
      assert.is_nil(r[1].headers["x-amz-security-token"])
    end)

    it("reads the profile's keys; an explicit profile ignores the environment", function()
      local dir = token_dir()
      local conf = "[profile web]\nweb_identity_token_file = " .. dir .. "/token\nrole_arn = arn:aws:iam::123456789012:role/profile\n"
      local env = { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/nothing", AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/env" }
      local c = assert(credentials.resolve{ config = cfg({ config = conf }, env, { profile = "web" }) })
      assert(frozen(c))
      local p = srv:requests()[1].params
      assert.are.same({ "arn:aws:iam::123456789012:role/profile", "aio-aws-session-" .. T0 }, { p.RoleArn, p.RoleSessionName })
      -- with AWS_PROFILE the environment wins, as botocore
      srv:reset()
      env.AWS_PROFILE = "web"
      env.AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token"
      c = assert(credentials.resolve{ config = cfg({ config = conf }, env) })
      assert(frozen(c))
      assert.are.equal("arn:aws:iam::123456789012:role/env", srv:requests()[1].params.RoleArn)
    end)

    it("re-reads a rotated token on refresh", function()
      local dir = token_dir("token-one")
      local c = assert(credentials.resolve{ config = cfg(nil, { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web" }) })
      assert(frozen(c))
      files.write(dir .. "/token", "token-two")
      credentials.now = function() return T0 + 3600 - 60 end
      srv:config{ sts_expiration = "2030-01-01T03:00:00Z" }
      assert.are.equal(sts_key(2), assert(frozen(c)).access_key)
      local r = srv:requests_to("/", "POST")
      assert.are.same({ "token-one", "token-two" }, { r[1].params.WebIdentityToken, r[2].params.WebIdentityToken })
    end)

    it("errors: no role ARN, an unreadable token file, STS refusing the token", function()
      local dir = token_dir()
      local c, err = credentials.resolve{ config = cfg(nil, { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token" }) }
      assert.is_nil(c)
      assert.are.equal("InvalidConfigError", err.code)
      assert.matches("role ARN", err.message)
      c = assert(credentials.resolve{ config = cfg(nil, { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/gone",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web" }) })
      local none
      none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("CredentialRetrievalError", err.code)
      srv:script("/", { { status = 400, body = '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        .. "<Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key"
        .. "</Message></Error><RequestId>r-1</RequestId></ErrorResponse>" } }, "POST")
      c = assert(credentials.resolve{ config = cfg(nil, { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web" }) })
      none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("InvalidIdentityToken", err.code)
      assert_no_secret(err)
    end)
  end)

  -- ------------------------------------------------------------ SSO

  describe("IAM Identity Center (SSO)", function()
    local sso = require "aio_aws.credentials.sso"
    local START = "https://corp.awsapps.com/start"
    local CONF = table.concat({
      "[profile dev]", "sso_session = corp", "sso_account_id = 123456789012", "sso_role_name = Dev", "",
      "[sso-session corp]", "sso_start_url = " .. START, "sso_region = us-east-1", "",
      "[profile legacy]", "sso_start_url = " .. START, "sso_region = us-east-1", "sso_account_id = 123456789012",
      "sso_role_name = Legacy Role", "",
      "[profile broken]", "sso_session = corp", "sso_account_id = 123456789012", "sso_role_name = Dev",
      "sso_region = eu-west-1", "",
      "[profile nosession]", "sso_session = nope", "sso_account_id = 1", "sso_role_name = r", "",
      "[profile partial]", "sso_account_id = 123456789012", "sso_role_name = Dev", "",
      "[profile via-sso]", "role_arn = arn:aws:iam::123456789012:role/next", "source_profile = dev", "",
    }, "\n")

    -- Python's hashlib names the cache files (the oracle for the key)
    local function sha1(s)
      return proc.sh("/usr/bin/python3 -c 'import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())' "
        .. proc.quote(s))
    end

    local function sso_cfg(profile, token_docs)
      local dir = files.with_files(nil, "sso", on_end)
      os.execute("mkdir -p " .. proc.quote(dir .. "/.aws/sso/cache"))
      for key, doc in pairs(token_docs or {}) do
        files.write(dir .. "/.aws/sso/cache/" .. sha1(key) .. ".json", doc)
      end
      files.write(dir .. "/config", CONF)
      return assert(files.load(dir, { HOME = dir, AWS_ENDPOINT_URL_SSO = srv.url, AWS_ENDPOINT_URL_STS = srv.url,
        AWS_EC2_METADATA_DISABLED = "true" }, { profile = profile })), dir
    end
    local GOOD = '{"startUrl": "' .. START .. '", "region": "us-east-1", "accessToken": "SSOACCESSTOKEN", '
      .. '"expiresAt": "2030-01-01T08:00:00Z"}'

    it("calls GetRoleCredentials with the sso-session's cached token, unsigned", function()
      local conf, dir = sso_cfg("dev", { corp = GOOD })
      assert.are.equal(dir .. "/.aws/sso/cache/" .. sha1("corp") .. ".json", sso.cache_file(conf, "corp"))
      local c = assert(credentials.resolve{ config = conf })
      assert.are.same({}, srv:requests())
      local f = assert(frozen(c))
      assert.are.same({ "ASIASSO000000000001", "ssoTOKEN0001", "sso", T0 + 3600 },
        { f.access_key, f.session_token, f.source, f.expiration })
      local r = srv:requests()
      assert.are.equal(1, #r)
      assert.are.same({ "GET", "/federation/credentials", "role_name=Dev&account_id=123456789012", "SSOACCESSTOKEN" },
        { r[1].method, r[1].path, r[1].query, r[1].headers["x-amz-sso_bearer_token"] })
      assert.is_nil(r[1].headers.authorization)
    end)

    it("legacy profiles key the cache by the start URL and do not check the token's expiry", function()
      local doc = GOOD:gsub("2030%-01%-01T08", "2020-01-01T08")
      local c = assert(credentials.resolve{ config = sso_cfg("legacy", { [START] = doc }) })
      assert(frozen(c))
      assert.are.equal("role_name=Legacy%20Role&account_id=123456789012", srv:requests()[1].query)
    end)

    it("token problems: missing, invalid, expired, refused", function()
      local cases = {
        { {}, "SSOTokenLoadError", "does not exist" },
        { { corp = "{not json" }, "SSOTokenLoadError", "is invalid" },
        { { corp = '{"accessToken": "SSOACCESSTOKEN"}' }, "SSOTokenLoadError", "is invalid" },
        { { corp = GOOD:gsub("2030%-01%-01T08", "2029-12-31T23") }, "UnauthorizedSSOTokenError", "aws sso login" },
        { { corp = GOOD:gsub("SSOACCESSTOKEN", "OTHERTOKEN") }, "UnauthorizedSSOTokenError", "aws sso login" },
      }
      for i, case in ipairs(cases) do
        local c = assert(credentials.resolve{ config = sso_cfg("dev", case[1]) })
        local none, err = frozen(c)
        assert.is_nil(none, "case " .. i)
        assert.are.equal(case[2], err.code, "case " .. i)
        assert.matches(case[3], err.message, 1, true)
        assert.is_nil(tostring(err):find("TOKEN", 1, true))
      end
      -- only the refused token reached the server
      assert.are.equal(1, #srv:requests())
    end)

    it("retries server errors; refuses bad answers", function()
      srv:script("/federation/credentials", { { status = 503 } })
      local c = assert(credentials.resolve{ config = sso_cfg("dev", { corp = GOOD }) })
      assert(frozen(c))
      assert.are.equal(2, #srv:requests())
      for i, body in ipairs({ "{}", "nope", '{"roleCredentials": {"accessKeyId": "A", "secretAccessKey": "s", '
        .. '"sessionToken": "t", "expiration": "soon"}}' }) do
        srv:script("/federation/credentials", { { status = 200, body = body } })
        c = assert(credentials.resolve{ config = sso_cfg("dev", { corp = GOOD }) })
        local none, err = frozen(c)
        assert.is_nil(none, "case " .. i)
        assert.are.equal("CredentialRetrievalError", err.code)
      end
    end)

    it("refuses incomplete or inconsistent configurations at once", function()
      for _, case in ipairs({ { "broken", "differs" }, { "nosession", "does not exist" },
        { "partial", "missing required configuration: sso_start_url, sso_region" } }) do
        local c, err = credentials.resolve{ config = sso_cfg(case[1]) }
        assert.is_nil(c)
        assert.are.equal("InvalidConfigError", err.code)
        assert.matches(case[2], err.message, 1, true)
      end
    end)

    it("can be the source profile of a role", function()
      srv:config{ secrets = { ASIASSO000000000001 = "ssoSECRETkey000000000000000000000000000001" } }
      local c = assert(credentials.resolve{ config = sso_cfg("via-sso", { corp = GOOD }) })
      assert.are.equal(sts_key(2), assert(frozen(c)).access_key)
      local r = srv:requests()
      assert.are.same({ "/federation/credentials", "/" }, { r[1].path, r[2].path })
      assert.are.same({ "ASIASSO000000000001", true }, { r[2].auth.access_key, r[2].auth.valid })
    end)
  end)

  -- ------------------------------------------------------------ credential_process

  describe("credential_process", function()
    local function process_cfg(cmd, extra)
      return cfg({ config = "[profile p]\ncredential_process = " .. cmd .. "\n" .. (extra or "") }, nil,
        { profile = "p" })
    end

    it("runs the program (words split like a shell's) and reads Version 1 JSON", function()
      local c = assert(credentials.resolve{ config = process_cfg(proc.quote(FAKE) .. " ok") })
      assert.are.equal("aio_aws.Credentials(source=custom-process, not fetched yet)", tostring(c))
      local f = assert(frozen(c))
      assert.are.same({ "AKIAPROCESS00000001", "procSECRETkey000000000000000000000000001", "procTOKEN01", "custom-process" },
        { f.access_key, f.secret_key, f.session_token, f.source })
      assert.is_nil(f.expiration)
      assert.is_false(c:refreshable())
      c = assert(credentials.resolve{ config = process_cfg(proc.quote(FAKE) .. [[ args "two words" 'it''s' a\ b]]) })
      assert.are.equal("two words|its|a b", assert(frozen(c)).access_key)
    end)

    it("honours Expiration and runs the program again to refresh", function()
      local dir = files.with_files(nil, "chain", on_end)
      local c = assert(credentials.resolve{ config = process_cfg(proc.quote(FAKE) .. " expiring 2030-01-01T01:00:00Z "
        .. proc.quote(dir .. "/n")) })
      local f = assert(frozen(c))
      assert.are.same({ "AKIAPROCESS000000001", T0 + 3600 }, { f.access_key, f.expiration })
      assert.is_true(c:refreshable())
      credentials.now = function() return T0 + 3600 - 14 * 60 end
      assert.are.equal("AKIAPROCESS000000002", assert(frozen(c)).access_key)
      credentials.now = function() return T0 + 3600 - 30 * 60 end
      assert.are.equal("AKIAPROCESS000000002", assert(frozen(c)).access_key)
      assert.are.equal("2", proc.read_file(dir .. "/n"):match("%d+"))
    end)

    it("reports failures clearly without the program's output", function()
      local cases = {
        { "fail", "exited with status 3: token expired: run the login command again" },
        { "badjson", "did not print a JSON object" },
        { "empty", "did not print a JSON object" },
        { "version2", "unsupported Version 2" },
        { "noversion", "unsupported Version none" },
        { "missing", "missing required key in the output: SecretAccessKey" },
        { "wrongtype", "AccessKeyId must be a non-empty string" },
        { "badexp", "Expiration is not an ISO 8601 timestamp" },
      }
      for _, case in ipairs(cases) do
        local c = assert(credentials.resolve{ config = process_cfg(proc.quote(FAKE) .. " " .. case[1]) })
        local none, err = frozen(c)
        assert.is_nil(none, case[1])
        assert.are.equal("CredentialRetrievalError", err.code, case[1])
        assert.matches(case[2], err.message, 1, true)
        assert_no_secret(err)
      end
      local c = assert(credentials.resolve{ config = process_cfg("/nonexistent/credential-helper --x") })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.matches("could not run", err.message)
      none, err = credentials.resolve{ config = process_cfg(proc.quote(FAKE) .. " 'ok") }
      assert.is_nil(none)
      assert.are.equal("InvalidConfigError", err.code)
    end)

    it("comes after the shared credentials file and before the config file's keys", function()
      local conf = "[profile p]\ncredential_process = " .. proc.quote(FAKE) .. " ok\n"
        .. "aws_access_key_id = AKIACONFIG00000001\naws_secret_access_key = s\n"
      local c = assert(credentials.resolve{ config = cfg({ config = conf }, nil, { profile = "p" }) })
      assert.are.equal("AKIAPROCESS00000001", assert(frozen(c)).access_key)
      c = assert(credentials.resolve{ config = cfg({ config = conf,
        credentials = "[p]\naws_access_key_id = AKIAFILE0000000001\naws_secret_access_key = s\n" }, nil,
        { profile = "p" }) })
      assert.are.equal("shared-credentials-file", c.source)
    end)
  end)

  -- ------------------------------------------------------------ the chain

  describe("the chain", function()
    it("asks the providers in botocore's order", function()
      local dir = files.with_files({ token = "tok" }, "chain", on_end)
      local rel = "/v2/credentials/test-uuid"
      local base = "[base]\naws_access_key_id = AKIABASE0000000001\naws_secret_access_key = " .. SECRETS[4] .. "\n"
      local function source(file_texts, env)
        local c = assert(credentials.resolve{ config = cfg(file_texts, env) })
        return c.source, c
      end
      local env_keys = { AWS_ACCESS_KEY_ID = "AKIAENV00000000001", AWS_SECRET_ACCESS_KEY = SECRETS[5] }
      local role = "[default]\nrole_arn = arn:x\nsource_profile = base\n"
      -- env > assume role
      assert.are.equal("env", source({ credentials = base, config = role }, env_keys))
      -- assume role > web identity
      assert.are.equal("assume-role", source({ credentials = base, config = role },
        { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token", AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web" }))
      -- web identity > shared credentials file
      assert.are.equal("assume-role-with-web-identity", source({ credentials = base:gsub("%[base%]", "[default]") },
        { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token", AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web" }))
      -- a profile with role_arn and web_identity_token_file is web identity's
      assert.are.equal("assume-role-with-web-identity", source({ config =
        "[default]\nrole_arn = arn:x\nweb_identity_token_file = " .. dir .. "/token\n" }))
      -- config file keys > container > instance metadata
      assert.are.equal("config-file", source({ config =
        "[default]\naws_access_key_id = AKIACONFIG00000001\naws_secret_access_key = s\n" },
        { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = rel }))
      assert.are.equal("container-role", source(nil, { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = rel,
        AWS_EC2_METADATA_DISABLED = "false" }))
      local s, c = source(nil, { AWS_EC2_METADATA_DISABLED = "false" })
      assert.are.equal("iam-role", s)
      assert.are.same({}, srv:requests()) -- all of it without I/O
      assert(frozen(c))
    end)

    it("reports NoCredentials with every place it looked when IMDS has nothing", function()
      srv:script("/latest/meta-data/iam/security-credentials/", { { status = 404 } }, "GET")
      local c = assert(credentials.resolve{ config = imds_cfg() })
      local none, err = frozen(c)
      assert.is_nil(none)
      assert.are.equal("NoCredentials", err.code)
      assert.are.equal(4, #err.looked_in)
      assert.matches("^environment variables", err.looked_in[1])
      assert.matches("^instance metadata service", err.looked_in[4])
      -- and inside a task, resolve itself reports it
      srv:script("/latest/meta-data/iam/security-credentials/", { { status = 404 } }, "GET")
      none, err = run(function() return credentials.resolve{ config = imds_cfg() } end)
      assert.is_nil(none)
      assert.are.equal("NoCredentials", err.code)
    end)
  end)
end)

describe("deferred credentials", function()
  it("are fetched once, on first use inside a task, and raise when used outside one", function()
    local n = 0
    local c = credentials.deferred{ source = "later", fetch = function()
      n = n + 1
      aws.sleep(0.01)
      return { access_key = "AKIALATER000000001", secret_key = "s" }
    end }
    assert.are.equal("aio_aws.Credentials(source=later, not fetched yet)", tostring(c))
    assert.is_nil(c.access_key)
    assert.has_error(function() c:get_frozen() end)
    assert.are.equal(0, n)
    local keys = assert(run(function()
      return aws.gather(function() return c:get_frozen().access_key end, function() return c:get_frozen().access_key end)
    end))
    assert.are.same({ "AKIALATER000000001", "AKIALATER000000001" }, { keys[1], keys[2] })
    assert.are.equal(1, n)
    -- no expiration: static from now on, usable outside a task
    assert.is_false(c:refreshable())
    assert.are.equal("AKIALATER000000001", assert(c:get_frozen()).access_key)
  end)

  it("return the provider's error from the first fetch, and fetch again next time", function()
    local fail = true
    local c = credentials.deferred{ source = "later", fetch = function()
      if fail then return nil, aws.errors.new("Nope", "not today") end
      return { access_key = "AKIALATER000000001", secret_key = "s", expiration = 4102444800 }
    end }
    local none, err = run(function() return c:get_frozen() end)
    assert.is_nil(none)
    assert.are.equal("Nope", err.code)
    fail = false
    assert.are.equal("AKIALATER000000001", assert(run(function() return c:get_frozen() end)).access_key)
    assert.is_true(c:refreshable())
  end)

  it("need I/O to refresh: outside a task the current ones serve in the advisory window only", function()
    local c = credentials.deferred{ source = "later", fetch = function()
      return { access_key = "AKIALATER000000001", secret_key = "s", expiration = 1000000 }
    end }
    assert(run(function() return c:get_frozen(0) end))
    assert.are.equal("AKIALATER000000001", assert(c:get_frozen(1000000 - 14 * 60)).access_key)
    local none, err = c:get_frozen(1000000 - 5 * 60)
    assert.is_nil(none)
    assert.are.equal("CredentialRefreshError", err.code)
    assert.matches("inside a task", err.message)
  end)

  it("raise on misuse", function()
    assert.has_error(function() credentials.deferred() end)
    assert.has_error(function() credentials.deferred{ source = "x" } end)
    assert.has_error(function() credentials.deferred{ fetch = print } end)
    assert.has_error(function() credentials.deferred{ source = 1, fetch = print } end)
  end)
end)

describe("provider helpers", function()
  it("config.shlex_split splits like Python's shlex.split", function()
    local config = require "aio_aws.config"
    local lines = { [[a b  c]], [["two words" 'single q' x\ y]], [[pre"mid dle"post]], [["esc \" \\ \$ \` \n" 'no \esc']],
      [[  lead trail  ]], [[a\\b]], [[/opt/bin/creds --role "build agent" --x='y z']], [[""]], [[a '' b]] }
    local script = "import shlex,sys,json\nprint(json.dumps([shlex.split(a) for a in sys.argv[1:]]))"
    local words = {}
    for i, l in ipairs(lines) do words[i] = proc.quote(l) end
    local out = proc.sh("/usr/bin/python3 -c " .. proc.quote(script) .. " " .. table.concat(words, " "))
    local expected = require("cjson").decode(out)
    for i, l in ipairs(lines) do
      assert.are.same(expected[i], config.shlex_split(l), l)
    end
    assert.is_nil(config.shlex_split([[a "open]]))
    assert.is_nil(config.shlex_split([[a 'open]]))
    assert.is_nil(config.shlex_split([[trailing\]]))
    assert.has_error(function() config.shlex_split(1) end)
  end)

  it("config:for_profile reads another profile as an explicit one", function()
    local dir = files.with_files({ config = "[profile a]\nregion = eu-west-1\n[profile b]\nregion = us-east-2\n" },
      "chain", on_end)
    local cfg = assert(files.load(dir, { AWS_PROFILE = "a" }))
    local b = assert(cfg:for_profile("b"))
    assert.are.same({ "b", "explicit", "us-east-2" }, { select(1, b:profile_name()), select(2, b:profile_name()),
      b:region() })
    assert.are.same({ "a", "AWS_PROFILE", "eu-west-1" }, { select(1, cfg:profile_name()),
      select(2, cfg:profile_name()), cfg:region() })
    local none, err = cfg:for_profile("nope")
    assert.is_nil(none)
    assert.are.equal("ProfileNotFound", err.code)
    assert.has_error(function() cfg:for_profile(1) end)
  end)

  it("do no I/O when required: no HTTP, no process module loaded", function()
    local script = 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path '
      .. 'package.cpath = "lua/?.so;" .. package.cpath '
      .. 'for _, m in ipairs({"env", "assume_role", "web_identity", "sso", "shared_credentials_file", "process", '
      .. '"config_file", "container", "imds"}) do require("aio_aws.credentials." .. m) end '
      .. 'require "aio_aws.session" '
      .. 'io.write(tostring(package.loaded["aio_aws.process"]), " ", tostring(package.loaded["aio_aws.http"] ~= nil))'
    -- aio_aws.http comes with the client (session), but no request is made
    assert.are.equal("nil true", proc.sh("env -u LD_PRELOAD lua5.4 -e " .. proc.quote(script) .. " 2>&1"))
  end)

  it("raise on misuse", function()
    assert.has_error(function() imds.region("x") end)
    assert.has_error(function() imds.region({}) end)
    assert.has_error(function() require("aio_aws.credentials.process").run("cmd") end)
    assert.has_error(function() require("aio_aws.credentials.process").run({}) end)
  end)
end)
