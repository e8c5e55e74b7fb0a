-- aio_aws.endpoints: classic endpoint resolution, checked case by case
-- against Debian's botocore (an implementation nobody here wrote), S3
-- addressing, and the usual misuse / malformed input checks.
local endpoints = require "aio_aws.endpoints"
local config = require "aio_aws.config"
local model = require "aio_aws.model"
local cjson = require "cjson"
local proc = require "support.proc"

local PYTHON = "/usr/bin/python3" -- Debian's, with python3-botocore (not the first python3 on PATH)
local BOTOCORE_DATA = "/usr/lib/python3/dist-packages/botocore/data"

local function svc(prefix, extra)
  local md = { endpointPrefix = prefix }
  for k, v in pairs(extra or {}) do md[k] = v end
  return { metadata = md }
end

local function resolve(prefix, region, opts)
  local o = { service = svc(prefix), region = region }
  for k, v in pairs(opts or {}) do o[k] = v end
  return endpoints.resolve(o)
end

local function read(path)
  return (assert(proc.read_file(path), "cannot read " .. path))
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("endpoints.partition_of", function()
  it("chooses the partition by region list and regex", function()
    local cases = {
      ["us-east-1"] = { "aws", "amazonaws.com" }, ["eu-west-1"] = { "aws", "amazonaws.com" },
      ["af-south-1"] = { "aws", "amazonaws.com" }, ["me-central-1"] = { "aws", "amazonaws.com" },
      ["cn-north-1"] = { "aws-cn", "amazonaws.com.cn" }, ["cn-northwest-1"] = { "aws-cn", "amazonaws.com.cn" },
      ["us-gov-west-1"] = { "aws-us-gov", "amazonaws.com" }, ["us-gov-east-1"] = { "aws-us-gov", "amazonaws.com" },
      ["us-iso-east-1"] = { "aws-iso", "c2s.ic.gov" }, ["us-iso-west-1"] = { "aws-iso", "c2s.ic.gov" },
      ["us-isob-east-1"] = { "aws-iso-b", "sc2s.sgov.gov" },
      -- not listed, matched by the regex
      ["eu-south-9"] = { "aws", "amazonaws.com" }, ["cn-south-7"] = { "aws-cn", "amazonaws.com.cn" },
      ["us-gov-north-3"] = { "aws-us-gov", "amazonaws.com" }, ["us-isob-west-2"] = { "aws-iso-b", "sc2s.sgov.gov" },
      -- no partition claims these: "aws"
      ["xx-east-1"] = { "aws", "amazonaws.com" }, ["aws-global"] = { "aws", "amazonaws.com" },
      [""] = { "aws", "amazonaws.com" }, ["local"] = { "aws", "amazonaws.com" },
    }
    for region, want in pairs(cases) do
      local p, suffix = endpoints.partition_of(region)
      assert.are.same(want, { p, suffix }, region)
    end
  end)

  it("raises on a non-string region", function()
    for _, bad in ipairs({ 1, true, {}, print }) do
      assert.has_error(function() endpoints.partition_of(bad) end)
    end
    assert.has_error(function() endpoints.partition_of() end)
  end)
end)

describe("endpoints.regex_to_patterns", function()
  it("turns the region regexes of endpoints.json into Lua patterns", function()
    assert.are.same({ "^us%-[%w_]+%-%d+$", "^eu%-[%w_]+%-%d+$" },
      endpoints.regex_to_patterns([[^(us|eu)\-\w+\-\d+$]]))
    assert.are.same({ "^cn%-[%w_]+%-%d+$" }, endpoints.regex_to_patterns([[^cn\-\w+\-\d+$]]))
    assert.are.same({ "^ab?c*d+$" }, endpoints.regex_to_patterns("^ab?c*d+$"))
  end)

  it("refuses what it does not understand instead of matching wrongly", function()
    for _, re in ipairs({ "^[a-z]+$", "^(a|b)+$", "^a{2}$", "^a|b$", "x^", "^a$b", "^\\q$", "^(a$", "^a\\" }) do
      assert.has_error(function() endpoints.regex_to_patterns(re) end, nil, re)
    end
    assert.has_error(function() endpoints.regex_to_patterns(nil) end)
    assert.has_error(function() endpoints.regex_to_patterns(42) end)
  end)
end)

describe("endpoints.resolve", function()
  it("builds {service}.{region}.{dnsSuffix} per partition", function()
    local cases = {
      { "batch", "eu-west-1", "https://batch.eu-west-1.amazonaws.com", "aws", "amazonaws.com" },
      { "batch", "cn-north-1", "https://batch.cn-north-1.amazonaws.com.cn", "aws-cn", "amazonaws.com.cn" },
      { "batch", "us-gov-west-1", "https://batch.us-gov-west-1.amazonaws.com", "aws-us-gov", "amazonaws.com" },
      { "batch", "us-iso-east-1", "https://batch.us-iso-east-1.c2s.ic.gov", "aws-iso", "c2s.ic.gov" },
      { "batch", "us-isob-east-1", "https://batch.us-isob-east-1.sc2s.sgov.gov", "aws-iso-b", "sc2s.sgov.gov" },
      { "batch", "xx-east-1", "https://batch.xx-east-1.amazonaws.com", "aws", "amazonaws.com" },
    }
    for _, c in ipairs(cases) do
      local ep = assert(resolve(c[1], c[2]))
      assert.are.equal(c[3], ep.url)
      assert.are.equal(c[4], ep.partition)
      assert.are.equal(c[5], ep.dns_suffix)
      assert.are.equal(c[2], ep.signing_region)
      assert.are.equal("batch", ep.signing_name)
      assert.are.equal("v4", ep.signature_version)
    end
  end)

  it("uses global endpoints, credential scopes and hostname overrides", function()
    local ep = assert(resolve("iam", "eu-west-1"))
    assert.are.same({ "https://iam.amazonaws.com", "us-east-1", "aws-global" },
      { ep.url, ep.signing_region, ep.endpoint_name })
    ep = assert(resolve("iam", "cn-north-1"))
    assert.are.same({ "https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1" }, { ep.url, ep.signing_region })
    ep = assert(resolve("route53", "us-gov-west-1"))
    assert.are.equal("https://route53.us-gov.amazonaws.com", ep.url)
    ep = assert(resolve("cloudfront", "ap-south-1"))
    assert.are.same({ "https://cloudfront.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region })
    -- credentialScope.service overrides the signing name
    ep = assert(resolve("importexport", "eu-west-1"))
    assert.are.same({ "https://importexport.amazonaws.com", "IngestionService" }, { ep.url, ep.signing_name })
    -- a global service resolves without a region
    ep = assert(resolve("iam", nil))
    assert.are.equal("https://iam.amazonaws.com", ep.url)
    -- the model's signingName is used when the endpoint has no scope
    ep = assert(endpoints.resolve{ service = svc("logs", { signingName = "logs-x" }), region = "eu-west-1" })
    assert.are.equal("logs-x", ep.signing_name)
  end)

  it("resolves S3 in us-east-1 to the global s3.amazonaws.com (classic, legacy mode)", function()
    local ep = assert(resolve("s3", "us-east-1"))
    assert.are.same({ "https://s3.amazonaws.com", "us-east-1", "us-east-1", "s3v4" },
      { ep.url, ep.signing_region, ep.region, ep.signature_version })
    ep = assert(resolve("s3", nil))
    assert.are.same({ "https://s3.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region })
    ep = assert(resolve("s3", "us-east-1", { s3_us_east_1_regional = true }))
    assert.are.equal("https://s3.us-east-1.amazonaws.com", ep.url)
    ep = assert(resolve("s3", "us-west-2"))
    assert.are.equal("https://s3.us-west-2.amazonaws.com", ep.url)
    ep = assert(resolve("s3", "us-east-1", { use_dualstack = true }))
    assert.are.equal("https://s3.dualstack.us-east-1.amazonaws.com", ep.url)
    ep = assert(resolve("s3", "us-east-1", { use_fips = true }))
    assert.are.equal("https://s3-fips.us-east-1.amazonaws.com", ep.url)
  end)

  it("STS: regional by default, the global endpoint in legacy mode for the legacy regions", function()
    local ep = assert(resolve("sts", "eu-west-1"))
    assert.are.same({ "https://sts.eu-west-1.amazonaws.com", "eu-west-1" }, { ep.url, ep.signing_region })
    ep = assert(resolve("sts", "eu-west-1", { sts_regional = false }))
    assert.are.same({ "https://sts.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region })
    -- not a legacy region: regional even in legacy mode
    ep = assert(resolve("sts", "ap-east-1", { sts_regional = false }))
    assert.are.same({ "https://sts.ap-east-1.amazonaws.com", "ap-east-1" }, { ep.url, ep.signing_region })
    -- a variant is never redirected to the global endpoint
    ep = assert(resolve("sts", "us-east-2", { sts_regional = false, use_fips = true }))
    assert.are.equal("https://sts-fips.us-east-2.amazonaws.com", ep.url)
    for r in pairs(endpoints.LEGACY_GLOBAL_STS_REGIONS) do
      ep = assert(resolve("sts", r, { sts_regional = false }))
      assert.are.same({ "https://sts.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region }, r)
    end
  end)

  it("FIPS and dual-stack variants, and a clear error when one does not exist", function()
    local ep = assert(resolve("ec2", "eu-west-1", { use_fips = true }))
    assert.are.equal("https://ec2-fips.eu-west-1.amazonaws.com", ep.url)
    ep = assert(resolve("ec2", "eu-west-1", { use_dualstack = true }))
    assert.are.equal("https://ec2.eu-west-1.api.aws", ep.url)
    ep = assert(resolve("ec2", "us-east-1", { use_dualstack = true, use_fips = true }))
    assert.are.equal("https://ec2-fips.us-east-1.api.aws", ep.url)
    ep = assert(resolve("iam", "eu-west-1", { use_fips = true }))
    assert.are.same({ "https://iam-fips.amazonaws.com", "us-east-1" }, { ep.url, ep.signing_region })
    ep = assert(resolve("batch", "cn-north-1", { use_dualstack = true }))
    assert.are.equal("https://batch.cn-north-1.api.amazonwebservices.com.cn", ep.url)

    local nope, err = resolve("batch", "us-iso-east-1", { use_dualstack = true })
    assert.is_nil(nope)
    assert.are.equal("EndpointResolutionError", err.code)
    assert.matches("no dual%-stack endpoint for batch in us%-iso%-east%-1 %(partition aws%-iso%)", err.message)
    nope, err = resolve("iam", "eu-west-1", { use_dualstack = true })
    assert.is_nil(nope)
    assert.matches("no dual%-stack endpoint for iam in aws%-global", err.message)
    nope, err = resolve("cloudfront", "eu-west-1", { use_fips = true })
    assert.is_nil(nope)
    assert.matches("no FIPS endpoint for cloudfront", err.message)
  end)

  it("uses an explicit endpoint_url as it is", function()
    local ep = assert(resolve("batch", "eu-west-1", { endpoint_url = "http://localhost:4566/" }))
    assert.are.same({ "http://localhost:4566", "eu-west-1", "batch", "aws" },
      { ep.url, ep.signing_region, ep.signing_name, ep.partition })
    ep = assert(resolve("batch", nil, { endpoint_url = "https://example.com:8443/prefix" }))
    assert.are.same({ "https://example.com:8443/prefix", "us-east-1", "example.com:8443" },
      { ep.url, ep.signing_region, ep.hostname })
    ep = assert(resolve("batch", "cn-north-1", { endpoint_url = "http://127.0.0.1:9000", use_fips = true }))
    assert.are.same({ "http://127.0.0.1:9000", "cn-north-1", "aws-cn" }, { ep.url, ep.signing_region, ep.partition })
    ep = assert(resolve("importexport", "eu-west-1", { endpoint_url = "http://[::1]:9000" }))
    assert.are.same({ "http://[::1]:9000", "IngestionService" }, { ep.url, ep.signing_name })
  end)

  it("use_ssl = false gives http URLs", function()
    local ep = assert(resolve("batch", "eu-west-1", { use_ssl = false }))
    assert.are.equal("http://batch.eu-west-1.amazonaws.com", ep.url)
    ep = assert(resolve("sts", "eu-west-1", { use_ssl = false, sts_regional = false }))
    assert.are.equal("http://sts.amazonaws.com", ep.url)
  end)

  it("returns NoRegion without a region for a regional service", function()
    local ep, err = resolve("batch", nil)
    assert.is_nil(ep)
    assert.are.equal("NoRegion", err.code)
    assert.matches("region is needed", tostring(err))
  end)

  it("returns EndpointResolutionError for malformed regions and URLs", function()
    for _, r in ipairs({ "", "us-east-1/../evil", "us east 1", "us_east_1", "-us-east-1", "us-east-1-",
      "eu-west-1.attacker.com", "a\nb", string.rep("a", 64), "us-east-1:443", "é" }) do
      local ep, err = resolve("batch", r)
      assert.is_nil(ep, r)
      assert.are.equal("EndpointResolutionError", err.code, r)
      assert.matches("invalid region name", err.message)
    end
    for _, u in ipairs({ "ftp://host", "http://", "localhost:9000", "http:/x", "https://a b", "http://h/?q=1",
      "http://h#f", "http://user@h", " http://h", "" }) do
      local ep, err = resolve("batch", "eu-west-1", { endpoint_url = u })
      assert.is_nil(ep, u)
      assert.are.equal("EndpointResolutionError", err.code, u)
      assert.matches("invalid endpoint_url", err.message)
    end
  end)

  it("raises on misuse", function()
    local bad = {
      function() endpoints.resolve() end,
      function() endpoints.resolve("batch") end,
      function() endpoints.resolve{ region = "eu-west-1" } end,
      function() endpoints.resolve{ service = "batch", region = "eu-west-1" } end,
      function() endpoints.resolve{ service = {}, region = "eu-west-1" } end,
      function() endpoints.resolve{ service = { metadata = {} }, region = "eu-west-1" } end,
      function() endpoints.resolve{ service = { metadata = { endpointPrefix = 1 } } } end,
      function() endpoints.resolve{ service = svc("batch"), region = 1 } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", endpoint_url = true } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", use_fips = "true" } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", use_dualstack = 1 } end,
      function() endpoints.resolve{ service = svc("sts"), region = "eu-west-1", sts_regional = "legacy" } end,
      function() endpoints.resolve{ service = svc("s3"), s3_us_east_1_regional = "yes" } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", use_ssl = 0 } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", config = {} } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", config = "x" } end,
      function() endpoints.resolve{ service = svc("batch"), region = "eu-west-1", regoin = "typo" } end,
    }
    for i, f in ipairs(bad) do
      assert.has_error(f, nil, "case " .. i)
    end
  end)

  it("takes region, switches and endpoint_url from a config object", function()
    local function cfg(env, opts)
      opts = opts or {}
      env.AWS_CONFIG_FILE, env.AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/config", "/nonexistent/credentials"
      opts.env = env
      return assert(config.load(opts))
    end
    local batch = svc("batch", { serviceId = "Batch" })
    local ep = assert(endpoints.resolve{ service = batch, config = cfg({ AWS_REGION = "eu-central-1" }) })
    assert.are.equal("https://batch.eu-central-1.amazonaws.com", ep.url)
    ep = assert(endpoints.resolve{ service = batch, config = cfg({ AWS_DEFAULT_REGION = "us-west-2",
      AWS_USE_FIPS_ENDPOINT = "true" }) })
    assert.are.equal("https://fips.batch.us-west-2.amazonaws.com", ep.url)
    ep = assert(endpoints.resolve{ service = batch, config = cfg({ AWS_REGION = "eu-west-1",
      AWS_ENDPOINT_URL_BATCH = "http://localhost:4566" }) })
    assert.are.same({ "http://localhost:4566", "eu-west-1" }, { ep.url, ep.signing_region })
    -- explicit options win over the config
    ep = assert(endpoints.resolve{ service = batch, region = "ap-south-1",
      config = cfg({ AWS_REGION = "eu-west-1", AWS_USE_FIPS_ENDPOINT = "true" }), use_fips = false })
    assert.are.equal("https://batch.ap-south-1.amazonaws.com", ep.url)
    -- sts and s3 modes
    local sts = svc("sts", { serviceId = "STS" })
    ep = assert(endpoints.resolve{ service = sts, config = cfg({ AWS_REGION = "eu-west-1",
      AWS_STS_REGIONAL_ENDPOINTS = "legacy" }) })
    assert.are.equal("https://sts.amazonaws.com", ep.url)
    local s3 = svc("s3", { serviceId = "S3" })
    ep = assert(endpoints.resolve{ service = s3, config = cfg({ AWS_REGION = "us-east-1",
      AWS_S3_US_EAST_1_REGIONAL_ENDPOINT = "regional" }) })
    assert.are.equal("https://s3.us-east-1.amazonaws.com", ep.url)
    -- bad values in the config come back as errors, not raised
    local nope, err = endpoints.resolve{ service = sts, config = cfg({ AWS_REGION = "eu-west-1",
      AWS_STS_REGIONAL_ENDPOINTS = "sometimes" }) }
    assert.is_nil(nope)
    assert.are.equal("InvalidConfigError", err.code)
    nope, err = endpoints.resolve{ service = batch, config = cfg({}) }
    assert.is_nil(nope)
    assert.are.equal("NoRegion", err.code)
  end)

  it("resolves with the real bundled models", function()
    local s3 = assert(model.load("s3"))
    local ep = assert(endpoints.resolve{ service = s3, region = "eu-west-1" })
    assert.are.same({ "https://s3.eu-west-1.amazonaws.com", "s3", "s3v4" }, { ep.url, ep.signing_name, ep.signature_version })
    local logs = assert(model.load("logs"))
    ep = assert(endpoints.resolve{ service = logs, region = "cn-northwest-1" })
    assert.are.equal("https://logs.cn-northwest-1.amazonaws.com.cn", ep.url)
  end)
end)

describe("endpoints data", function()
  after_each(function() endpoints.use_data(nil) end)

  it("is stripped botocore data with its source recorded", function()
    local d = assert(endpoints.data())
    assert.are.equal(3, d.version)
    assert.matches("^botocore %d+%.%d+%.%d+ data/endpoints.json", d.source)
    local names = {}
    for i, p in ipairs(d.partitions) do names[i] = p.partition end
    assert.are.same({ "aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b" }, names)
    assert.matches("botocore", read("lua/aio_aws/endpoints/README.md"))
  end)

  it("is what tools/gen-endpoints makes from the installed botocore", function()
    local d = assert(endpoints.data())
    local version = d.source:match("^botocore (%S+)")
    local have = proc.sh(PYTHON .. " -c 'import botocore; print(botocore.__version__)' 2>/dev/null")
    if have ~= version then
      pending("installed botocore is " .. tostring(have) .. ", the data comes from " .. version)
      return
    end
    local tmp = proc.tmpdir("endpoints")
    finally(function() proc.rmdir(tmp) end)
    local out, ok = proc.sh("lua5.4 tools/gen-endpoints " .. BOTOCORE_DATA .. "/endpoints.json " .. tmp .. " 2>&1")
    assert(ok, out)
    assert.are.equal(read("lua/aio_aws/endpoints/endpoints.json"), read(tmp .. "/endpoints.json"))
    assert.are.equal(read("lua/aio_aws/endpoints/README.md"), read(tmp .. "/README.md"))
  end)

  it("accepts raw or compact data through use_data, and refuses bad data", function()
    local raw = {
      version = 3,
      partitions = { {
        partition = "test", dnsSuffix = "example.test", regionRegex = "^t\\-\\w+\\-\\d+$",
        regions = { ["t-one-1"] = { description = "one" } },
        defaults = { hostname = "{service}.{region}.{dnsSuffix}", protocols = { "https" }, signatureVersions = { "v4" } },
        services = { svc = { endpoints = { ["t-one-1"] = {}, ["t-special"] = { hostname = "special.example.test",
          credentialScope = { region = "t-one-1" }, deprecated = true } } } },
      } },
    }
    assert.is_true(endpoints.use_data(raw))
    local ep = assert(resolve("svc", "t-two-2"))
    assert.are.same({ "https://svc.t-two-2.example.test", "test" }, { ep.url, ep.partition })
    ep = assert(resolve("svc", "t-special"))
    assert.are.same({ "https://special.example.test", "t-one-1" }, { ep.url, ep.signing_region })
    -- no "aws" partition: unknown regions fall back to the first one
    ep = assert(resolve("svc", "zz-top-1"))
    assert.are.equal("https://svc.zz-top-1.example.test", ep.url)
    local compact = endpoints.compact(raw)
    assert.are.equal(endpoints.FORMAT, compact.format)
    assert.is_nil(compact.partitions[1].services.svc.endpoints["t-one-1"]) -- empty regional entry dropped
    assert.is_true(endpoints.use_data(compact))

    for _, bad in ipairs({ {}, { partitions = {} }, { partitions = { { partition = "x" } } },
      { partitions = { { partition = "x", dnsSuffix = "y", services = {}, regionRegex = "^[x]$" } } } }) do
      local ok, err = endpoints.use_data(bad)
      assert.is_nil(ok)
      assert.are.equal("EndpointResolutionError", err.code)
    end
    assert.has_error(function() endpoints.use_data("x") end)
    assert.has_error(function() endpoints.compact({}) end)
    assert.has_error(function() endpoints.compact(nil) end)
  end)
end)

describe("endpoints.s3_address", function()
  local A = "https://s3.us-west-2.amazonaws.com"
  local cases = {
    -- base, path, bucket, style, custom -> url, path
    { A, "/my-bucket/a/b.txt", "my-bucket", nil, nil, "https://my-bucket.s3.us-west-2.amazonaws.com", "/a/b.txt" },
    { A, "/my-bucket/a/b.txt", "my-bucket", "auto", nil, "https://my-bucket.s3.us-west-2.amazonaws.com", "/a/b.txt" },
    { A, "/my-bucket/a/b.txt", "my-bucket", "virtual", nil, "https://my-bucket.s3.us-west-2.amazonaws.com", "/a/b.txt" },
    { A, "/my-bucket/a/b.txt", "my-bucket", "path", nil, A, "/my-bucket/a/b.txt" },
    { A, "/my-bucket", "my-bucket", "auto", nil, "https://my-bucket.s3.us-west-2.amazonaws.com", "/" },
    { A, "/my-bucket/", "my-bucket", "auto", nil, "https://my-bucket.s3.us-west-2.amazonaws.com", "/" },
    { A, "/", nil, "auto", nil, A, "/" },
    { A .. "/", "/", nil, "virtual", nil, A, "/" },
    -- names that cannot be host labels
    { A, "/my.bucket/k", "my.bucket", "auto", nil, A, "/my.bucket/k" },
    { A, "/my.bucket/k", "my.bucket", "virtual", nil, A, "/my.bucket/k" },
    { A, "/My_Bucket/k", "My_Bucket", "auto", nil, A, "/My_Bucket/k" },
    { A, "/MyBucket/k", "MyBucket", "virtual", nil, A, "/MyBucket/k" },
    { A, "/ab/k", "ab", "auto", nil, A, "/ab/k" },
    { A, "/" .. ("a"):rep(64) .. "/k", ("a"):rep(64), "auto", nil, A, "/" .. ("a"):rep(64) .. "/k" },
    { A, "/-bucket/k", "-bucket", "auto", nil, A, "/-bucket/k" },
    { A, "/bucket-/k", "bucket-", "auto", nil, A, "/bucket-/k" },
    { A, "/192.168.1.1/k", "192.168.1.1", "auto", nil, A, "/192.168.1.1/k" },
    -- dots over plain http to an AWS endpoint are fine (no certificate)
    { "http://s3.eu-west-1.amazonaws.com", "/my.bucket/k", "my.bucket", "auto", nil,
      "http://my.bucket.s3.eu-west-1.amazonaws.com", "/k" },
    { "http://s3.eu-west-1.amazonaws.com", "/my..bucket/k", "my..bucket", "auto", nil,
      "http://s3.eu-west-1.amazonaws.com", "/my..bucket/k" },
    { "http://s3.eu-west-1.amazonaws.com", "/10.0.0.1/k", "10.0.0.1", "auto", nil,
      "http://s3.eu-west-1.amazonaws.com", "/10.0.0.1/k" },
    -- IPs and localhost
    { "http://127.0.0.1:9000", "/b-1/k", "b-1", "auto", nil, "http://127.0.0.1:9000", "/b-1/k" },
    { "http://127.0.0.1:9000", "/b-1/k", "b-1", "virtual", nil, "http://127.0.0.1:9000", "/b-1/k" },
    { "http://[::1]:9000", "/b-1/k", "b-1", "virtual", nil, "http://[::1]:9000", "/b-1/k" },
    { "http://localhost:9000", "/b-1/k", "b-1", "auto", nil, "http://localhost:9000", "/b-1/k" },
    { "http://LocalHost", "/b-1/k", "b-1", "auto", nil, "http://LocalHost", "/b-1/k" },
    { "http://localhost:9000", "/b-1/k", "b-1", "virtual", nil, "http://b-1.localhost:9000", "/k" },
    -- custom endpoints: path style in auto, as botocore
    { "https://minio.example.com", "/b-1/k", "b-1", "auto", true, "https://minio.example.com", "/b-1/k" },
    { "https://minio.example.com", "/b-1/k", "b-1", "auto", false, "https://b-1.minio.example.com", "/k" },
    { "https://minio.example.com", "/b-1/k", "b-1", "virtual", true, "https://b-1.minio.example.com", "/k" },
    { "http://minio.example.com:9000/prefix", "/b-1/k", "b-1", "virtual", true,
      "http://b-1.minio.example.com:9000/prefix", "/k" },
    { "http://minio.example.com:9000/prefix/", "/b-1/k", "b-1", "path", true,
      "http://minio.example.com:9000/prefix", "/b-1/k" },
    { "http://minio.example.com", "/a.b/k", "a.b", "virtual", true, "http://minio.example.com", "/a.b/k" },
    -- the path keeps its escapes; a bucket prefix of another bucket is not it
    { A, "/b-1/a%20b/c%2Fd", "b-1", "auto", nil, "https://b-1.s3.us-west-2.amazonaws.com", "/a%20b/c%2Fd" },
  }

  it("addresses buckets virtual-hosted or path style", function()
    for i, c in ipairs(cases) do
      local url, path = endpoints.s3_address(c[1], c[2], c[3], c[4], c[5])
      assert.are.same({ c[6], c[7] }, { url, path }, "case " .. i)
    end
  end)

  it("checks DNS-compatible bucket names", function()
    local yes = { "abc", "my-bucket", "a1b2", "123", ("a"):rep(63), "a-b-c" }
    local no = { "ab", ("a"):rep(64), "My-Bucket", "my_bucket", "-ab", "ab-", "a.b.c", "a b", "", "ab/", "äbc" }
    for _, b in ipairs(yes) do assert.is_true(endpoints.is_virtual_hostable(b), b) end
    for _, b in ipairs(no) do assert.is_false(endpoints.is_virtual_hostable(b), b) end
    assert.is_true(endpoints.is_virtual_hostable("a.b.c", true))
    assert.is_false(endpoints.is_virtual_hostable("a..b", true))
    assert.is_false(endpoints.is_virtual_hostable("1.2.3.4", true))
    assert.is_false(endpoints.is_virtual_hostable("a.-b", true))
    assert.has_error(function() endpoints.is_virtual_hostable(nil) end)
  end)

  it("raises on misuse", function()
    local bad = {
      { nil, "/b/k", "b" }, { 1, "/b/k", "b" }, { A, nil, "b" }, { A, 5, "b" }, { A, "/b/k", 3 },
      { A, "/b/k", "b", "virtualhost" }, { A, "/b/k", "b", 1 }, { A, "/b/k", "b", "auto", "yes" },
      { "s3.amazonaws.com", "/b/k", "b" }, { "ftp://h", "/b/k", "b" }, { "https://h?x=1", "/b/k", "b" },
      { A, "/other/k", "b" }, { A, "/bb/k", "b" }, { A, "b/k", "b" }, { A, "", "b" },
    }
    for i, c in ipairs(bad) do
      assert.has_error(function() endpoints.s3_address(c[1], c[2], c[3], c[4], c[5]) end, nil, "case " .. i)
    end
  end)
end)

-- ---------------------------------------------------------------- botocore

-- Run by Debian's python3 with python3-botocore. Input (stdin): JSON
-- {cases = [...], matrix = [{services = "all" | [...], regions, flags}],
-- s3 = [...]}. Every case is resolved by creating a real client
-- (session.create_client) with credentials that are never used, and
-- reading client.meta.endpoint_url, client.meta.partition,
-- client.meta.region_name and the request signer's region, signing name
-- and signature version. The S3 cases capture the URL of a real request at
-- `before-send` (nothing is sent). Shared files point nowhere and AWS_*
-- variables are cleared, so the machine's own configuration plays no part.
local BOTOCORE_SCRIPT = [=[
import sys, json, os
for k in list(os.environ):
    if k.startswith('AWS_'):
        del os.environ[k]
os.environ['AWS_CONFIG_FILE'] = '/nonexistent/config'
os.environ['AWS_SHARED_CREDENTIALS_FILE'] = '/nonexistent/credentials'
import botocore, botocore.session
from botocore.config import Config
from multiprocessing import Pool

SESSION = None

class Captured(Exception):
    pass

def capture(request, **kwargs):
    raise Captured(request.url)

def client(c, **extra):
    kw = dict(use_fips_endpoint=bool(c.get('fips')), use_dualstack_endpoint=bool(c.get('dualstack')))
    s3 = {}
    if c.get('s3_regional'):
        s3['us_east_1_regional_endpoint'] = 'regional'
    if c.get('style'):
        s3['addressing_style'] = c['style']
    if s3:
        kw['s3'] = s3
    kw.update(extra)
    SESSION.set_config_variable('sts_regional_endpoints', c.get('sts') or 'regional')
    return SESSION.create_client(c['service'], region_name=c.get('region'), endpoint_url=c.get('endpoint_url'),
                                 aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='not-a-secret',
                                 config=Config(**kw))

def resolve(cases):
    out = []
    for c in cases:
        try:
            if c.get('bucket'):
                cl = client(c, retries={'max_attempts': 0})
                cl.meta.events.register('before-send', capture)
                try:
                    cl.get_object(Bucket=c['bucket'], Key=c['key'])
                    r = dict(ok=False, error='NotCaptured')
                except Captured as e:
                    r = dict(ok=True, url=str(e))
            else:
                cl = client(c)
                sig = cl._request_signer
                r = dict(ok=True, url=cl.meta.endpoint_url, signing_region=sig._region_name,
                         signing_name=sig._signing_name, partition=cl.meta.partition,
                         region_name=cl.meta.region_name, signature_version=sig._signature_version)
        except Exception as e:
            r = dict(ok=False, error=type(e).__name__, message=str(e))
        out.append(r)
    return out

def main():
    global SESSION
    req = json.load(sys.stdin)
    SESSION = botocore.session.get_session()
    services = {}
    for name in SESSION.get_available_services():
        m = SESSION.get_service_model(name)
        services[name] = dict(endpointPrefix=m.endpoint_prefix, signingName=m.metadata.get('signingName'),
                              serviceId=m.metadata.get('serviceId'),
                              signatureVersion=m.metadata.get('signatureVersion'))
    cases = list(req.get('cases', []))
    for block in req.get('matrix', []):
        names = sorted(services) if block['services'] == 'all' else block['services']
        for s in names:
            for r in block['regions']:
                for f in block.get('flags', [{}]):
                    c = dict(f)
                    c['service'] = s
                    c['region'] = r
                    cases.append(c)
    # two processes forked after the models are loaded: they share the cache
    n = 2
    with Pool(n) as pool:
        parts = pool.map(resolve, [cases[i::n] for i in range(n)])
    results = [None] * len(cases)
    for i in range(n):
        for j, r in enumerate(parts[i]):
            results[i + j * n] = r
    json.dump(dict(version=botocore.__version__, services=services, cases=cases, results=results), sys.stdout)

main()
]=]

local function have_botocore()
  return os.execute(PYTHON .. " -c 'import botocore.session' >/dev/null 2>&1") == true
end

local function run_botocore(request)
  local tmp = proc.tmpdir("endpoints-botocore")
  local script, input, output = tmp .. "/resolve.py", tmp .. "/in.json", tmp .. "/out.json"
  write(script, BOTOCORE_SCRIPT)
  write(input, cjson.encode(request))
  local ok = os.execute(("%s %s < %s > %s"):format(PYTHON, proc.quote(script), proc.quote(input), proc.quote(output)))
  local text = read(output)
  proc.rmdir(tmp)
  assert(ok, "the botocore script failed")
  return cjson.decode(text)
end

-- Every region of the bundled data, plus ones no partition lists.
local function all_regions()
  local out = {}
  for _, p in ipairs(assert(endpoints.data()).partitions) do
    for _, r in ipairs(p.regions) do out[#out + 1] = r end
  end
  for _, r in ipairs({ "xx-east-9", "eu-south-9", "aws-global", "fips-us-east-1", "fips-us-gov-west-1",
    "us-east-1-fips", "s3-external-1", "eu-isoe-west-1" }) do
    out[#out + 1] = r
  end
  return out
end

local CURATED = {
  "batch", "logs", "lambda", "s3", "sqs", "dynamodb", "sts", "iam", "sns", "kms", "secretsmanager", "ssm",
  "ecr", "ecs", "cloudwatch", "ec2", "cloudfront", "route53", "organizations", "health", "importexport",
  "sdb", "budgets", "ce", "codecatalyst", "s3control", "waf", "shield", "networkmanager", "support",
}

-- Every region for these: the bundled models and the services with global
-- endpoints or special cases.
local EVERY_REGION = { "batch", "logs", "lambda", "s3", "sqs", "dynamodb", "sts", "iam", "ec2", "cloudfront",
  "route53", "health", "importexport", "sdb", "codecatalyst", "s3control", "support", "budgets" }

local FLAG_REGIONS = { "us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1",
  "aws-global", "ca-central-1" }

local function request()
  local cases = {}
  -- no region, for every curated service
  for _, s in ipairs(CURATED) do cases[#cases + 1] = { service = s } end
  -- S3 us-east-1 modes
  for _, r in ipairs({ "us-east-1", "us-west-2", "aws-global", cjson.null }) do
    cases[#cases + 1] = { service = "s3", region = r, s3_regional = true }
    cases[#cases + 1] = { service = "s3", region = r, dualstack = true }
  end
  -- explicit endpoint_url
  for _, s in ipairs({ "batch", "s3", "sts", "iam", "importexport", "logs" }) do
    for _, r in ipairs({ "eu-west-1", "cn-north-1", "us-gov-west-1", cjson.null }) do
      cases[#cases + 1] = { service = s, region = r, endpoint_url = "http://localhost:4566" }
    end
  end
  -- S3 addressing of a real request
  for _, style in ipairs({ "auto", "virtual", "path" }) do
    for _, eu in ipairs({ cjson.null, "http://localhost:9000", "http://127.0.0.1:9000", "https://minio.example.com",
      "http://minio.example.com:9000/prefix" }) do
      for _, b in ipairs({ "my-bucket", "my.bucket", "My_Bucket", "192.168.1.1", "ab", "b" .. ("x"):rep(62) }) do
        for _, r in ipairs({ "eu-west-1", "us-east-1", "cn-north-1" }) do
          cases[#cases + 1] = { service = "s3", region = r, endpoint_url = eu, style = style, bucket = b,
            key = "dir/file.txt" }
        end
      end
    end
  end
  local regions = all_regions()
  return {
    cases = cases,
    matrix = {
      { services = "all", regions = { "eu-west-1", "cn-north-1", "us-gov-west-1" } },
      { services = EVERY_REGION, regions = regions },
      { services = CURATED, regions = FLAG_REGIONS,
        flags = { { fips = true }, { dualstack = true }, { fips = true, dualstack = true } } },
      { services = { "sts" }, regions = regions, flags = { { sts = "legacy" }, { sts = "regional" } } },
    },
  }
end

-- FIPS asked for by the switch or by a pseudo region ("fips-us-east-1").
local function wants_fips(c)
  return c.fips or (c.region or ""):find("fips", 1, true) ~= nil
end

-- The places where this module deliberately answers differently from
-- botocore 1.29's classic resolution. Each returns a reason when the case
-- is one of them and our answer is the intended one.
local KNOWN = {
  {
    name = "dual-stack in aws-iso / aws-iso-b",
    reason = "botocore skips the ISO partitions when dual-stack is on and then builds an aws host "
      .. "(batch.us-iso-east-1.api.aws, s3.dualstack.us-iso-east-1.amazonaws.com) of the wrong partition; "
      .. "the ISO partitions have no dual-stack "
      .. "variant (botocore's own rule sets answer 'DualStack is enabled but this partition does not support "
      .. "DualStack'), so we return EndpointResolutionError",
    match = function(c, bc, ours, err)
      return c.dualstack and (c.region or ""):match("^us%-iso") and bc.ok and bc.partition == "aws"
        and not ours and err.code == "EndpointResolutionError" and err.message:match("dual%-stack")
    end,
  },
  {
    name = "variant of a global (non-regional) endpoint",
    reason = "for an endpoint name that is not a region (aws-global, aws-cn-global, ...) botocore expands the "
      .. "partition's variant template with that name (iam.aws-global.api.aws, cloudfront-fips.aws-global"
      .. ".amazonaws.com): hosts that do not exist. Unless the endpoint lists the variant itself, we return "
      .. "EndpointResolutionError",
    match = function(c, bc, ours, err)
      return (wants_fips(c) or c.dualstack) and bc.ok and bc.url:match("%-global%.") and not ours
        and err.code == "EndpointResolutionError"
    end,
  },
  {
    name = "S3 FIPS in us-east-1",
    reason = "with the legacy global us-east-1 endpoint botocore builds s3-fips.aws-global.amazonaws.com, which "
      .. "does not exist; we use s3-fips.us-east-1.amazonaws.com, which is also what botocore's S3 rule set sends "
      .. "the request to",
    match = function(c, bc, ours)
      return c.service == "s3" and wants_fips(c) and bc.ok and bc.url:match("aws%-global") and ours
        and ours.url:match("^https://s3%-fips%.") and ours.url:match("us%-east%-1")
    end,
  },
  {
    name = "endpoint_url without a region",
    reason = "given an endpoint_url but no region, botocore raises NoRegionError for regional services and "
      .. "leaves the signing region unset for global ones (the request then fails to sign); it signs S3 for "
      .. "us-east-1. We sign every service for us-east-1, the default the local endpoint and S3-compatible "
      .. "servers expect",
    match = function(c, bc, ours)
      return c.endpoint_url and c.region == nil and ours and ours.signing_region == "us-east-1"
        and ours.url == c.endpoint_url
        and ((not bc.ok and bc.error == "NoRegionError") or (bc.ok and bc.signing_region == nil))
    end,
  },
}

-- The bundled model (aio_aws.model) for the services bundled here, else
-- the metadata botocore reports (loading every raw model would be slow).
local BUNDLED = cjson.decode(read("lua/aio_aws/models/index.json")).services
local function our_model(name, meta, real)
  if BUNDLED[name] then
    real[name] = real[name] or assert(model.load(name))
    return real[name]
  end
  return { metadata = meta }
end

describe("endpoints against botocore", function()
  if not have_botocore() then
    pending("Debian's botocore (" .. PYTHON .. ", python3-botocore) is not installed")
    return
  end
  local bc = run_botocore(request())

  it("compares a broad table of (service, region, switches) cases", function()
    assert.is_true(#bc.cases > 2400, "only " .. #bc.cases .. " cases")
    assert.are.equal(#bc.cases, #bc.results)
  end)

  it("resolves every case as botocore does, apart from the documented differences", function()
    local real = {}
    local n, same, known, unexplained = 0, 0, {}, {}
    for i, c in ipairs(bc.cases) do
      local r = bc.results[i]
      for k, v in pairs(c) do if v == cjson.null then c[k] = nil end end
      for k, v in pairs(r) do if v == cjson.null then r[k] = nil end end
      if not c.bucket then
        n = n + 1
        local meta = assert(bc.services[c.service], c.service)
        for k, v in pairs(meta) do if v == cjson.null then meta[k] = nil end end
        local svc_model = our_model(c.service, meta, real)
        local ours, err = endpoints.resolve{
          service = svc_model, region = c.region, endpoint_url = c.endpoint_url,
          use_fips = c.fips or false, use_dualstack = c.dualstack or false,
          sts_regional = c.sts ~= "legacy", s3_us_east_1_regional = c.s3_regional or false,
        }
        local agree
        if r.ok and ours then
          local name_ok = c.endpoint_url ~= nil or ours.endpoint_name == r.region_name
            or (c.service == "s3" and ours.region == r.region_name)
          agree = ours.url == r.url and ours.signing_region == r.signing_region
            and ours.signing_name == r.signing_name and ours.partition == r.partition
            and ours.signature_version == r.signature_version and name_ok
        elseif not r.ok and not ours then
          local want = ({ NoRegionError = "NoRegion", InvalidRegionError = "EndpointResolutionError",
            EndpointVariantError = "EndpointResolutionError" })[r.error]
          agree = want ~= nil and err.code == want
        else
          agree = false
        end
        if agree then
          same = same + 1
        else
          local class
          for _, k in ipairs(KNOWN) do
            if k.match(c, r, ours, err) then class = k.name break end
          end
          if class then
            known[class] = (known[class] or 0) + 1
          else
            unexplained[#unexplained + 1] = cjson.encode({ case = c, botocore = r,
              ours = ours or { error = tostring(err) } })
          end
        end
      end
    end
    local parts = {}
    for _, k in ipairs(KNOWN) do parts[#parts + 1] = ("%s: %d"):format(k.name, known[k.name] or 0) end
    io.stderr:write(("\nendpoints vs botocore %s: %d cases, %d identical; known differences: %s\n")
      :format(bc.version, n, same, table.concat(parts, ", ")))
    assert.are.same({}, { table.unpack(unexplained, 1, math.min(#unexplained, 10)) })
    assert.is_true(same > 1800)
  end)

  it("addresses S3 requests as botocore does", function()
    local real = {}
    local n = 0
    for i, c in ipairs(bc.cases) do
      if c.bucket then
        local r = bc.results[i]
        assert(r.ok, cjson.encode({ c, r }))
        local ep = assert(endpoints.resolve{ service = our_model("s3", bc.services.s3, real), region = c.region,
          endpoint_url = c.endpoint_url })
        local url, path = endpoints.s3_address(ep.url, "/" .. c.bucket .. "/" .. c.key, c.bucket, c.style,
          c.endpoint_url ~= nil)
        assert.are.equal(r.url, url .. path, cjson.encode(c))
        n = n + 1
      end
    end
    assert.is_true(n >= 270)
  end)

  it("has the models' metadata botocore has", function()
    for _, name in ipairs({ "s3", "sts", "batch", "logs", "iam", "lambda", "dynamodb" }) do
      local m = assert(model.load(name))
      local b = bc.services[name]
      assert.are.equal(b.endpointPrefix, m.metadata.endpointPrefix)
      assert.are.equal(b.serviceId, m.metadata.serviceId)
    end
  end)

  it("documents every known difference with its reason", function()
    for _, k in ipairs(KNOWN) do
      assert.is_true(#k.reason > 80, k.name)
    end
  end)
end)
