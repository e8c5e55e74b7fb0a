-- The local endpoint's AWS Batch service: first the service object called
-- directly (jobs really run, as local processes), then live through the
-- endpoint with the project's own client. Expected values come from the
-- AWS Batch API reference (SubmitJob, DescribeJobs, ListJobs, CancelJob,
-- TerminateJob, "Job states", "Array jobs", "Job timeouts",
-- "Automated job retries", "AWS Batch environment variables") and from
-- what the job commands are told to print, not from the implementation.
local aws = require "aio_aws"
local batch_mod = require "aio_aws.emulator.batch"
local logs_mod = require "aio_aws.emulator.logs"
local store = require "aio_aws.emulator.store"
local run = require "support.run"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(store.mkdir_p(p))
  return p
end

local function rm_rf(p) os.execute("rm -rf '" .. p .. "'") end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(s)
  local t = {}
  for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function ok_call(b, op, params)
  local out, err = b:call(op, params)
  assert(out, err and tostring(err))
  return out
end

local function err_call(b, op, params, code, pattern)
  local out, err = b:call(op, params)
  assert.is_nil(out)
  assert.equal(code or "ClientException", err.code)
  assert.equal(400, err.status)
  if pattern then assert.matches(pattern, err.message) end
  return err
end

-- Poll DescribeJobs until the job's status is one of `want` (a set or a
-- single status). Waits for a condition, bounded: no timing assertion.
local function wait_status(b, id, want, limit)
  if type(want) == "string" then want = { [want] = true } end
  local t0 = os.time()
  while true do
    local j = ok_call(b, "DescribeJobs", { jobs = { id } }).jobs[1]
    if j and want[j.status] then return j end
    if os.time() - t0 > (limit or 30) then
      error("job " .. id .. " stuck in " .. tostring(j and j.status) .. " (" .. tostring(j and j.statusReason) .. ")", 2)
    end
    aws.sleep(0.02)
  end
end
local DONE = { SUCCEEDED = true, FAILED = true }

local function sh(script) return { "sh", "-c", script } end

describe("emulator batch (service object)", function()
  local dir, work
  before_each(function()
    dir = tmpdir()
    work = tmpdir() -- where the job commands leave their marks
  end)
  after_each(function()
    rm_rf(dir)
    rm_rf(work)
  end)

  -- A Batch service with a Logs service, inside a task; closed afterwards.
  local function with_batch(opts, fn)
    if type(opts) == "function" then opts, fn = {}, opts end
    return run(function()
      local logs = assert(logs_mod.new { data_dir = dir .. "/logs", store = store })
      local ctx = { data_dir = dir .. "/batch", store = store, logs = logs, region = "eu-west-1",
        account_id = "123456789012", faults = opts.faults or {}, kill_grace = opts.kill_grace,
        clock = opts.clock }
      local b = assert(batch_mod.new(ctx))
      local ok, err = pcall(fn, b, logs)
      b:close()
      if not ok then error(err, 0) end
    end)
  end

  -- One compute environment of `vcpus` and a queue on it.
  local function env(b, vcpus, qname, prio)
    if not b.ces.ce then
      ok_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce", type = "MANAGED",
        computeResources = { type = "EC2", maxvCpus = vcpus or 4, subnets = { "subnet-1" } } })
    end
    ok_call(b, "CreateJobQueue", { jobQueueName = qname or "q", priority = prio or 1,
      computeEnvironmentOrder = { { order = 1, computeEnvironment = "ce" } } })
  end

  local function jobdef(b, name, cmd, extra)
    local p = { jobDefinitionName = name, type = "container",
      containerProperties = { image = "busybox", vcpus = 1, memory = 128, command = cmd } }
    for k, v in pairs(extra or {}) do p[k] = v end
    return ok_call(b, "RegisterJobDefinition", p)
  end

  local function submit(b, p)
    p.jobQueue = p.jobQueue or "q"
    p.jobName = p.jobName or "job"
    return ok_call(b, "SubmitJob", p).jobId
  end

  describe("compute environments and queues", function()
    it("create, describe by name and ARN, duplicates, pagination, update, delete", function()
      with_batch(function(b)
        local out = ok_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce1", type = "MANAGED",
          computeResources = { type = "EC2", minvCpus = 0, maxvCpus = 8, subnets = { "s" } } })
        assert.same({ computeEnvironmentName = "ce1",
          computeEnvironmentArn = "arn:aws:batch:eu-west-1:123456789012:compute-environment/ce1" }, out)
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce1", type = "MANAGED",
          computeResources = { type = "EC2", maxvCpus = 8, subnets = {} } }, nil, "already exists")
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce2", type = "MANAGED" })
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce2", type = "MANAGED",
          computeResources = { type = "EC2", subnets = {} } }, nil, "maxvCpus")
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "bad name", type = "MANAGED",
          computeResources = { type = "EC2", maxvCpus = 1, subnets = {} } })
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce2", type = "OTHER" })
        ok_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce2", type = "UNMANAGED", unmanagedvCpus = 2 })
        ok_call(b, "CreateComputeEnvironment", { computeEnvironmentName = "ce3", type = "MANAGED", state = "DISABLED",
          computeResources = { type = "SPOT", maxvCpus = 1, subnets = {} } })
        local d = ok_call(b, "DescribeComputeEnvironments", { computeEnvironments = {
          "arn:aws:batch:eu-west-1:123456789012:compute-environment/ce1", "nope" } })
        assert.equal(1, #d.computeEnvironments)
        local ce = d.computeEnvironments[1]
        assert.equal("ce1", ce.computeEnvironmentName)
        assert.equal("MANAGED", ce.type)
        assert.equal("ENABLED", ce.state)
        assert.equal("VALID", ce.status)
        assert.equal(8, ce.computeResources.maxvCpus)
        local p1 = ok_call(b, "DescribeComputeEnvironments", { maxResults = 2 })
        assert.equal(2, #p1.computeEnvironments)
        assert.is_string(p1.nextToken)
        local p2 = ok_call(b, "DescribeComputeEnvironments", { maxResults = 2, nextToken = p1.nextToken })
        assert.equal(1, #p2.computeEnvironments)
        assert.is_nil(p2.nextToken)
        local names = {}
        for _, c in ipairs(p1.computeEnvironments) do names[#names + 1] = c.computeEnvironmentName end
        names[#names + 1] = p2.computeEnvironments[1].computeEnvironmentName
        table.sort(names)
        assert.same({ "ce1", "ce2", "ce3" }, names)
        err_call(b, "DescribeComputeEnvironments", { nextToken = "garbage" })
        -- deleting needs DISABLED and no queue using it
        ok_call(b, "CreateJobQueue", { jobQueueName = "q", priority = 1,
          computeEnvironmentOrder = { { order = 1, computeEnvironment = "ce1" } } })
        err_call(b, "DeleteComputeEnvironment", { computeEnvironment = "ce1" }, nil, "DISABLED")
        ok_call(b, "UpdateComputeEnvironment", { computeEnvironment = "ce1", state = "DISABLED" })
        err_call(b, "DeleteComputeEnvironment", { computeEnvironment = "ce1" }, nil, "JobQueue")
        ok_call(b, "DeleteComputeEnvironment", { computeEnvironment = "ce3" })
        assert.equal(0, #ok_call(b, "DescribeComputeEnvironments", { computeEnvironments = { "ce3" } }).computeEnvironments)
      end)
    end)

    it("queues: priority, compute environment order (as ARNs, by order), errors", function()
      with_batch(function(b)
        for _, n in ipairs { "a", "b" } do
          ok_call(b, "CreateComputeEnvironment", { computeEnvironmentName = n, type = "MANAGED",
            computeResources = { type = "EC2", maxvCpus = 1, subnets = {} } })
        end
        local out = ok_call(b, "CreateJobQueue", { jobQueueName = "q", priority = 5, computeEnvironmentOrder = {
          { order = 2, computeEnvironment = "a" },
          { order = 1, computeEnvironment = "arn:aws:batch:eu-west-1:123456789012:compute-environment/b" } } })
        assert.same({ jobQueueName = "q", jobQueueArn = "arn:aws:batch:eu-west-1:123456789012:job-queue/q" }, out)
        local q = ok_call(b, "DescribeJobQueues", { jobQueues = { "q" } }).jobQueues[1]
        assert.equal(5, q.priority)
        assert.equal("ENABLED", q.state)
        assert.equal("VALID", q.status)
        assert.same({ { order = 1, computeEnvironment = "arn:aws:batch:eu-west-1:123456789012:compute-environment/b" },
          { order = 2, computeEnvironment = "arn:aws:batch:eu-west-1:123456789012:compute-environment/a" } },
          q.computeEnvironmentOrder)
        err_call(b, "CreateJobQueue", { jobQueueName = "q", priority = 1,
          computeEnvironmentOrder = { { order = 1, computeEnvironment = "a" } } }, nil, "already exists")
        err_call(b, "CreateJobQueue", { jobQueueName = "r", priority = 1,
          computeEnvironmentOrder = { { order = 1, computeEnvironment = "missing" } } }, nil, "does not exist")
        err_call(b, "CreateJobQueue", { jobQueueName = "r", computeEnvironmentOrder = {
          { order = 1, computeEnvironment = "a" } } }, nil, "priority")
        err_call(b, "CreateJobQueue", { jobQueueName = "r", priority = 1, computeEnvironmentOrder = {} })
        ok_call(b, "UpdateJobQueue", { jobQueue = "q", priority = 9 })
        assert.equal(9, ok_call(b, "DescribeJobQueues", {}).jobQueues[1].priority)
        err_call(b, "DeleteJobQueue", { jobQueue = "q" }, nil, "DISABLED")
        ok_call(b, "UpdateJobQueue", { jobQueue = "q", state = "DISABLED" })
        ok_call(b, "DeleteJobQueue", { jobQueue = "q" })
        assert.same({}, ok_call(b, "DescribeJobQueues", {}).jobQueues)
      end)
    end)
  end)

  describe("job definitions", function()
    it("revisions, describe filters, deregister", function()
      with_batch(function(b)
        local r1 = jobdef(b, "d", { "true" })
        assert.same({ jobDefinitionName = "d", revision = 1,
          jobDefinitionArn = "arn:aws:batch:eu-west-1:123456789012:job-definition/d:1" }, r1)
        local r2 = jobdef(b, "d", { "false" }, { retryStrategy = { attempts = 2 }, timeout = { attemptDurationSeconds = 60 } })
        assert.equal(2, r2.revision)
        jobdef(b, "other", { "true" })
        local all = ok_call(b, "DescribeJobDefinitions", { jobDefinitionName = "d" }).jobDefinitions
        assert.equal(2, #all)
        local d2 = ok_call(b, "DescribeJobDefinitions", { jobDefinitions = { "d:2" } }).jobDefinitions
        assert.equal(1, #d2)
        assert.same({ "false" }, d2[1].containerProperties.command)
        assert.same({ attempts = 2 }, d2[1].retryStrategy)
        assert.equal("ACTIVE", d2[1].status)
        assert.equal("container", d2[1].type)
        assert.equal(3, #ok_call(b, "DescribeJobDefinitions", {}).jobDefinitions)
        ok_call(b, "DeregisterJobDefinition", { jobDefinition = r2.jobDefinitionArn })
        assert.equal("INACTIVE", ok_call(b, "DescribeJobDefinitions", { jobDefinitions = { "d:2" } }).jobDefinitions[1].status)
        local active = ok_call(b, "DescribeJobDefinitions", { jobDefinitionName = "d", status = "ACTIVE" }).jobDefinitions
        assert.equal(1, #active)
        assert.equal(1, active[1].revision)
        -- submitting by name takes the latest ACTIVE revision; an INACTIVE one is refused
        env(b)
        local id = submit(b, { jobDefinition = "d" })
        local j = wait_status(b, id, DONE)
        assert.equal(r1.jobDefinitionArn, j.jobDefinition)
        assert.equal("SUCCEEDED", j.status)
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "d:2" }, nil, "INACTIVE")
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "nope" })
        err_call(b, "RegisterJobDefinition", { jobDefinitionName = "e", type = "container" }, nil, "containerProperties")
        err_call(b, "RegisterJobDefinition", { jobDefinitionName = "e", type = "container",
          containerProperties = { command = { 1 } } })
        err_call(b, "DeregisterJobDefinition", { jobDefinition = "d:9" })
      end)
    end)
  end)

  describe("jobs", function()
    it("run the command with the Batch environment, log to CloudWatch Logs, report times", function()
      with_batch(function(b, logs)
        env(b, 4, "myqueue")
        jobdef(b, "printer", nil,
          { containerProperties = { vcpus = 1,
            environment = { { name = "V", value = "from-def" } } } })
        -- the definition above has no command: the override supplies it
        local out = ok_call(b, "SubmitJob", { jobName = "hello", jobQueue = "myqueue", jobDefinition = "printer",
          containerOverrides = { command = sh('echo "id=$AWS_BATCH_JOB_ID q=$AWS_BATCH_JQ_NAME ce=$AWS_BATCH_CE_NAME '
            .. 'attempt=$AWS_BATCH_JOB_ATTEMPT idx=${AWS_BATCH_JOB_ARRAY_INDEX-unset} v=$V"; echo oops >&2; pwd') },
          tags = { team = "x" } })
        assert.equal("hello", out.jobName)
        assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", out.jobId)
        assert.equal("arn:aws:batch:eu-west-1:123456789012:job/" .. out.jobId, out.jobArn)
        local j = wait_status(b, out.jobId, DONE)
        assert.equal("SUCCEEDED", j.status)
        assert.equal("Essential container in task exited", j.statusReason)
        assert.equal(0, j.container.exitCode)
        assert.equal("arn:aws:batch:eu-west-1:123456789012:job-queue/myqueue", j.jobQueue)
        assert.same({ team = "x" }, j.tags)
        assert.equal(1, #j.attempts)
        assert.equal(0, j.attempts[1].container.exitCode)
        -- ms since the epoch, in order
        assert.is_true(math.type(j.createdAt) == "integer" and j.createdAt > 1.6e12)
        assert.is_true(j.createdAt <= j.startedAt and j.startedAt <= j.stoppedAt)
        assert.equal(j.startedAt, j.attempts[1].startedAt)
        -- logs: group /aws/batch/job, stream <jobDefinitionName>/default/<taskId>
        local stream = j.container.logStreamName
        assert.matches("^printer/default/%x+$", stream)
        assert.equal(stream, j.attempts[1].container.logStreamName)
        local evs = logs:events("/aws/batch/job", stream)
        local msgs = {}
        for _, e in ipairs(evs) do msgs[e.message] = true end
        -- the working directory is under the data dir
        assert.same({ [("id=%s q=myqueue ce=ce attempt=1 idx=unset v=from-def"):format(out.jobId)] = true,
          oops = true, [dir .. "/batch/work/" .. out.jobId .. "/1"] = true }, msgs)
      end)
    end)

    it("containerOverrides environment and Ref:: parameters, the AWS_BATCH_ prefix refused", function()
      with_batch(function(b)
        env(b)
        jobdef(b, "p", nil, {
          parameters = { ["a-b"] = "def-ab", c = "def-c" },
          containerProperties = { command = { "sh", "-c", "printf '%s|' \"$0\" Ref::c \"$E1\" \"$E2\" > " .. work .. "/out", "Ref::a-b" },
            environment = { { name = "E1", value = "def1" }, { name = "E2", value = "def2" } } } })
        local id = submit(b, { jobDefinition = "p", parameters = { c = "sub%c" },
          containerOverrides = { environment = { { name = "E2", value = "over2" } } } })
        local j = wait_status(b, id, DONE)
        assert.equal("SUCCEEDED", j.status)
        assert.equal("def-ab|sub%c|def1|over2|", read(work .. "/out"))
        assert.same({ ["a-b"] = "def-ab", c = "sub%c" }, j.parameters)
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "p",
          containerOverrides = { environment = { { name = "AWS_BATCH_X", value = "1" } } } }, nil, "AWS_BATCH")
      end)
    end)

    it("a non-zero exit fails the job; a program that cannot start too", function()
      with_batch(function(b)
        env(b)
        jobdef(b, "d", sh("exit 3"))
        local j = wait_status(b, submit(b, { jobDefinition = "d" }), DONE)
        assert.equal("FAILED", j.status)
        assert.equal("Essential container in task exited", j.statusReason)
        assert.equal(3, j.container.exitCode)
        assert.equal(3, j.attempts[1].container.exitCode)
        j = wait_status(b, submit(b, { jobDefinition = "d", containerOverrides = { command = { "/nonexistent/prog" } } }), DONE)
        assert.equal("FAILED", j.status)
        assert.matches("^CannotStartContainerError", j.attempts[1].container.reason)
      end)
    end)

    it("retryStrategy attempts re-run a failed job (AWS_BATCH_JOB_ATTEMPT counts up)", function()
      with_batch(function(b)
        env(b)
        jobdef(b, "flaky", sh('echo $AWS_BATCH_JOB_ATTEMPT >> ' .. work .. '/attempts; [ "$AWS_BATCH_JOB_ATTEMPT" -ge 3 ]'))
        local j = wait_status(b, submit(b, { jobDefinition = "flaky", retryStrategy = { attempts = 5 } }), DONE)
        assert.equal("SUCCEEDED", j.status)
        assert.equal(3, #j.attempts)
        assert.same({ 1, 1, 0 }, { j.attempts[1].container.exitCode, j.attempts[2].container.exitCode,
          j.attempts[3].container.exitCode })
        assert.same({ "1", "2", "3" }, lines_of(read(work .. "/attempts")))
        -- attempts run out
        os.remove(work .. "/attempts")
        j = wait_status(b, submit(b, { jobDefinition = "flaky", retryStrategy = { attempts = 2 } }), DONE)
        assert.equal("FAILED", j.status)
        assert.equal(2, #j.attempts)
        -- evaluateOnExit: EXIT on exit code 1 stops at the first attempt
        j = wait_status(b, submit(b, { jobDefinition = "flaky", retryStrategy = { attempts = 5,
          evaluateOnExit = { { onExitCode = "1", action = "EXIT" } } } }), DONE)
        assert.equal("FAILED", j.status)
        assert.equal(1, #j.attempts)
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "flaky", retryStrategy = { attempts = 11 } })
      end)
    end)

    it("a timeout kills the attempt, with no retry", function()
      with_batch(function(b)
        env(b)
        jobdef(b, "slow", { "sleep", "30" })
        local j = wait_status(b, submit(b, { jobDefinition = "slow", timeout = { attemptDurationSeconds = 1 },
          retryStrategy = { attempts = 3 } }), DONE)
        assert.equal("FAILED", j.status)
        assert.equal("Job attempt duration exceeded timeout", j.statusReason)
        assert.equal(1, #j.attempts)
        assert.equal(143, j.attempts[1].container.exitCode) -- 128 + SIGTERM
      end)
    end)

    it("dependsOn: a job waits in PENDING for its dependency; a failed dependency fails it", function()
      with_batch(function(b)
        env(b)
        jobdef(b, "gate", sh("while [ ! -e " .. work .. "/go ]; do sleep 0.02; done; exit ${CODE-0}"))
        jobdef(b, "after", sh("echo ran >> " .. work .. "/after"))
        local a = submit(b, { jobDefinition = "gate" })
        local c = submit(b, { jobDefinition = "after", dependsOn = { { jobId = a } } })
        wait_status(b, a, "RUNNING")
        assert.equal("PENDING", wait_status(b, c, "PENDING").status)
        assert(io.open(work .. "/go", "w")):close()
        local jc = wait_status(b, c, DONE)
        local ja = wait_status(b, a, DONE)
        assert.equal("SUCCEEDED", jc.status)
        assert.is_true(jc.startedAt >= ja.stoppedAt)
        assert.same({ { jobId = a } }, jc.dependsOn)
        -- a failing dependency
        local f = submit(b, { jobDefinition = "gate", containerOverrides = { environment = { { name = "CODE", value = "1" } } } })
        local g = submit(b, { jobDefinition = "after", dependsOn = { { jobId = f } } })
        local jg = wait_status(b, g, DONE)
        assert.equal("FAILED", jg.status)
        assert.equal("Dependent Job failed", jg.statusReason)
        assert.same({}, jg.attempts)
        assert.equal("ran", read(work .. "/after"):gsub("\n$", ""))
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "after",
          dependsOn = { { jobId = "no-such-job" } } })
      end)
    end)

    it("capacity: RUNNABLE until vCPUs are free, then by queue priority and submission order", function()
      with_batch(function(b)
        env(b, 1, "lo", 1)
        env(b, 1, "hi", 10)
        jobdef(b, "gate", sh("while [ ! -e " .. work .. "/go ]; do sleep 0.02; done"))
        jobdef(b, "mark", sh("echo $AWS_BATCH_JQ_NAME-$TAG >> " .. work .. "/order"))
        local function tagged(q, tag)
          return submit(b, { jobQueue = q, jobDefinition = "mark",
            containerOverrides = { environment = { { name = "TAG", value = tag } } } })
        end
        local blocker = submit(b, { jobQueue = "lo", jobDefinition = "gate" })
        wait_status(b, blocker, "RUNNING")
        local ids = { tagged("lo", "1"), tagged("lo", "2"), tagged("hi", "1"), tagged("hi", "2") }
        for _, id in ipairs(ids) do assert.equal("RUNNABLE", wait_status(b, id, "RUNNABLE").status) end
        -- a job needing more vCPUs than the environment has stays RUNNABLE
        local big = submit(b, { jobQueue = "hi", jobDefinition = "mark", containerOverrides = {
          resourceRequirements = { { type = "VCPU", value = "2" } } } })
        assert(io.open(work .. "/go", "w")):close()
        for _, id in ipairs(ids) do assert.equal("SUCCEEDED", wait_status(b, id, DONE).status) end
        assert.same({ "hi-1", "hi-2", "lo-1", "lo-2" }, lines_of(read(work .. "/order")))
        assert.equal("RUNNABLE", ok_call(b, "DescribeJobs", { jobs = { big } }).jobs[1].status)
        -- more capacity lets it run, even from a queue disabled meanwhile ("jobs
        -- already in the queue can finish"), which takes no new jobs
        ok_call(b, "UpdateJobQueue", { jobQueue = "hi", state = "DISABLED" })
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "hi", jobDefinition = "mark" }, nil, "ENABLED")
        ok_call(b, "UpdateComputeEnvironment", { computeEnvironment = "ce", computeResources = { maxvCpus = 2 } })
        assert.equal("SUCCEEDED", wait_status(b, big, DONE).status)
      end)
    end)

    it("CancelJob fails jobs that have not started and leaves running ones alone", function()
      with_batch(function(b)
        env(b, 1)
        jobdef(b, "gate", sh("while [ ! -e " .. work .. "/go ]; do sleep 0.02; done"))
        local running = submit(b, { jobDefinition = "gate" })
        wait_status(b, running, "RUNNING")
        local waiting = submit(b, { jobDefinition = "gate" })
        wait_status(b, waiting, "RUNNABLE")
        local dependent = submit(b, { jobDefinition = "gate", dependsOn = { { jobId = waiting } } })
        assert.same({}, ok_call(b, "CancelJob", { jobId = waiting, reason = "not needed" }))
        local jw = ok_call(b, "DescribeJobs", { jobs = { waiting } }).jobs[1]
        assert.equal("FAILED", jw.status)
        assert.equal("not needed", jw.statusReason)
        assert.equal("Dependent Job failed", wait_status(b, dependent, DONE).statusReason)
        assert.same({}, ok_call(b, "CancelJob", { jobId = running, reason = "too late" }))
        assert.equal("RUNNING", ok_call(b, "DescribeJobs", { jobs = { running } }).jobs[1].status)
        assert(io.open(work .. "/go", "w")):close()
        assert.equal("SUCCEEDED", wait_status(b, running, DONE).status)
        err_call(b, "CancelJob", { jobId = "nope", reason = "x" })
        err_call(b, "CancelJob", { jobId = running })
      end)
    end)

    it("TerminateJob: SIGTERM with the reason, SIGKILL after the grace period", function()
      with_batch({ kill_grace = 0.3 }, function(b)
        env(b)
        jobdef(b, "sleeper", { "sleep", "30" })
        local id = submit(b, { jobDefinition = "sleeper", retryStrategy = { attempts = 3 } })
        wait_status(b, id, "RUNNING")
        ok_call(b, "TerminateJob", { jobId = id, reason = "stop it" })
        local j = wait_status(b, id, DONE)
        assert.equal("FAILED", j.status)
        assert.equal("stop it", j.statusReason)
        assert.equal(1, #j.attempts)
        assert.equal(143, j.container.exitCode)
        -- ignores SIGTERM (and so does its child): SIGKILL follows
        id = submit(b, { jobDefinition = "sleeper", containerOverrides = {
          command = sh("trap '' TERM; echo ready > " .. work .. "/ready; sleep 30") } })
        wait_status(b, id, "RUNNING")
        while not read(work .. "/ready") do aws.sleep(0.02) end
        ok_call(b, "TerminateJob", { jobId = id, reason = "really" })
        j = wait_status(b, id, DONE)
        assert.equal("really", j.statusReason)
        assert.equal(137, j.container.exitCode)
        -- a job not started yet is simply failed
        env(b, 1, "q2")
        ok_call(b, "UpdateComputeEnvironment", { computeEnvironment = "ce", state = "DISABLED" })
        id = submit(b, { jobDefinition = "sleeper", jobQueue = "q2" })
        wait_status(b, id, "RUNNABLE")
        ok_call(b, "TerminateJob", { jobId = id, reason = "never ran" })
        j = ok_call(b, "DescribeJobs", { jobs = { id } }).jobs[1]
        assert.same({ "FAILED", "never ran", 0 }, { j.status, j.statusReason, #j.attempts })
      end)
    end)

    it("array jobs: children parentId:index with AWS_BATCH_JOB_ARRAY_INDEX, ListJobs by arrayJobId", function()
      with_batch(function(b)
        env(b, 2)
        jobdef(b, "arr", sh('echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ARRAY_INDEX" > ' .. work .. '/child-$AWS_BATCH_JOB_ARRAY_INDEX; '
          .. '[ "$AWS_BATCH_JOB_ARRAY_INDEX" != "$FAIL" ]'))
        local id = submit(b, { jobDefinition = "arr", arrayProperties = { size = 3 } })
        local j = wait_status(b, id, DONE)
        assert.equal("SUCCEEDED", j.status)
        assert.equal(3, j.arrayProperties.size)
        assert.equal(3, j.arrayProperties.statusSummary.SUCCEEDED)
        for i = 0, 2 do
          assert.equal(id .. ":" .. i .. " " .. i, (read(work .. "/child-" .. i) or ""):gsub("\n$", ""))
        end
        local l = ok_call(b, "ListJobs", { arrayJobId = id, jobStatus = "SUCCEEDED" }).jobSummaryList
        assert.equal(3, #l)
        local idx = {}
        for _, s in ipairs(l) do
          idx[#idx + 1] = s.arrayProperties.index
          assert.equal(id .. ":" .. s.arrayProperties.index, s.jobId)
        end
        table.sort(idx)
        assert.same({ 0, 1, 2 }, idx)
        local c1 = ok_call(b, "DescribeJobs", { jobs = { id .. ":1" } }).jobs[1]
        assert.equal(1, c1.arrayProperties.index)
        -- one failing child fails the parent
        local f = submit(b, { jobDefinition = "arr", arrayProperties = { size = 2 },
          containerOverrides = { environment = { { name = "FAIL", value = "1" } } } })
        local jf = wait_status(b, f, DONE)
        assert.equal("FAILED", jf.status)
        assert.equal(1, jf.arrayProperties.statusSummary.FAILED)
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "arr", arrayProperties = { size = 1 } })
        err_call(b, "ListJobs", { arrayJobId = "nope" })
      end)
    end)

    it("array dependencies: SEQUENTIAL runs children in order, N_TO_N pairs children by index", function()
      with_batch(function(b)
        env(b, 4)
        jobdef(b, "seq", sh('echo $AWS_BATCH_JOB_ARRAY_INDEX >> ' .. work .. '/seq'))
        local s = submit(b, { jobDefinition = "seq", arrayProperties = { size = 4 }, dependsOn = { { type = "SEQUENTIAL" } } })
        assert.equal("SUCCEEDED", wait_status(b, s, DONE).status)
        assert.same({ "0", "1", "2", "3" }, lines_of(read(work .. "/seq")))
        -- N_TO_N: child i of B after child i of A; A:1 fails -> only B:1 fails
        jobdef(b, "a", sh('[ "$AWS_BATCH_JOB_ARRAY_INDEX" != 1 ]'))
        jobdef(b, "b", sh("true"))
        local a = submit(b, { jobDefinition = "a", arrayProperties = { size = 3 } })
        local bb = submit(b, { jobDefinition = "b", arrayProperties = { size = 3 }, dependsOn = { { jobId = a, type = "N_TO_N" } } })
        wait_status(b, bb, DONE)
        local st = {}
        for i = 0, 2 do
          local ca = ok_call(b, "DescribeJobs", { jobs = { a .. ":" .. i } }).jobs[1]
          local cb = ok_call(b, "DescribeJobs", { jobs = { bb .. ":" .. i } }).jobs[1]
          st[#st + 1] = cb.status
          if cb.status == "SUCCEEDED" then assert.is_true(cb.startedAt >= ca.stoppedAt) end
        end
        assert.same({ "SUCCEEDED", "FAILED", "SUCCEEDED" }, st)
        assert.equal("Dependent Job failed", ok_call(b, "DescribeJobs", { jobs = { bb .. ":1" } }).jobs[1].statusReason)
        err_call(b, "SubmitJob", { jobName = "x", jobQueue = "q", jobDefinition = "b", dependsOn = { { jobId = a, type = "N_TO_N" } } })
      end)
    end)

    it("an array of 200 children on 8 vCPUs, listed in pages of 100", function()
      with_batch(function(b)
        env(b, 8)
        jobdef(b, "t", { "true" })
        local id = submit(b, { jobDefinition = "t", arrayProperties = { size = 200 } })
        local j = wait_status(b, id, DONE, 120)
        assert.equal("SUCCEEDED", j.status)
        assert.equal(200, j.arrayProperties.statusSummary.SUCCEEDED)
        local p1 = ok_call(b, "ListJobs", { arrayJobId = id, jobStatus = "SUCCEEDED" })
        assert.equal(100, #p1.jobSummaryList)
        local p2 = ok_call(b, "ListJobs", { arrayJobId = id, jobStatus = "SUCCEEDED", nextToken = p1.nextToken })
        assert.equal(100, #p2.jobSummaryList)
        assert.is_nil(p2.nextToken)
        assert.equal(id .. ":199", p2.jobSummaryList[100].jobId)
      end)
    end)

    it("ListJobs: default RUNNING, jobStatus, JOB_NAME filters with *, pagination; DescribeJobs limits", function()
      with_batch(function(b)
        env(b, 8)
        jobdef(b, "gate", sh("while [ ! -e " .. work .. "/go ]; do sleep 0.02; done"))
        jobdef(b, "quick", { "true" })
        local r = submit(b, { jobName = "Render-1", jobDefinition = "gate" })
        local done = {}
        for i = 1, 5 do done[i] = submit(b, { jobName = (i % 2 == 0 and "render-" or "other-") .. i, jobDefinition = "quick" }) end
        for i = 1, 5 do wait_status(b, done[i], DONE) end
        wait_status(b, r, "RUNNING")
        local l = ok_call(b, "ListJobs", { jobQueue = "q" }).jobSummaryList
        assert.equal(1, #l)
        assert.equal(r, l[1].jobId)
        assert.equal("RUNNING", l[1].status)
        assert.equal(5, #ok_call(b, "ListJobs", { jobQueue = "q", jobStatus = "SUCCEEDED" }).jobSummaryList)
        -- filters ignore jobStatus; JOB_NAME is case-insensitive, "*" only as a prefix match
        local f = ok_call(b, "ListJobs", { jobQueue = "arn:aws:batch:eu-west-1:123456789012:job-queue/q",
          jobStatus = "FAILED", filters = { { name = "JOB_NAME", values = { "RENDER*" } } } }).jobSummaryList
        local names = {}
        for _, s in ipairs(f) do names[#names + 1] = s.jobName end
        -- "sorted by the createdAt field, with the most recent jobs being first"
        assert.same({ "render-4", "render-2", "Render-1" }, names)
        assert.equal(1, #ok_call(b, "ListJobs", { jobQueue = "q", filters = { { name = "JOB_NAME", values = { "other-3" } } } }).jobSummaryList)
        -- JOB_DEFINITION: case-sensitive name (any revision) with "*", or an ARN (one revision)
        local function by_def(v)
          return #ok_call(b, "ListJobs", { jobQueue = "q", filters = { { name = "JOB_DEFINITION", values = { v } } } }).jobSummaryList
        end
        assert.same({ 5, 1, 6, 0, 5, 0 }, { by_def("quick"), by_def("gate"), by_def("*"), by_def("Quick"),
          by_def("arn:aws:batch:eu-west-1:123456789012:job-definition/quick:1"),
          by_def("arn:aws:batch:eu-west-1:123456789012:job-definition/quick:2") })
        assert.equal(3, #ok_call(b, "ListJobs", { jobQueue = "q", filters = { { name = "AFTER_CREATED_AT", values = { "0" } } },
          maxResults = 3 }).jobSummaryList)
        err_call(b, "ListJobs", { jobQueue = "q", filters = { { name = "JOB_NAME", values = { "a" } },
          { name = "JOB_NAME", values = { "b" } } } }, nil, "one filter")
        err_call(b, "ListJobs", { jobQueue = "q", maxResults = 101 })
        -- pages of 2
        local seen, token, pages = {}, nil, 0
        repeat
          local page = ok_call(b, "ListJobs", { jobQueue = "q", jobStatus = "SUCCEEDED", maxResults = 2, nextToken = token })
          pages = pages + 1
          for _, s in ipairs(page.jobSummaryList) do seen[#seen + 1] = s.jobId end
          token = page.nextToken
        until not token
        assert.equal(3, pages)
        table.sort(seen)
        table.sort(done)
        assert.same(done, seen)
        err_call(b, "ListJobs", {})
        err_call(b, "ListJobs", { jobQueue = "q", arrayJobId = r })
        err_call(b, "ListJobs", { jobQueue = "nope" })
        err_call(b, "ListJobs", { jobQueue = "q", filters = { { name = "COLOR", values = { "x" } } } })
        -- DescribeJobs: unknown ids are left out, at most 100
        local d = ok_call(b, "DescribeJobs", { jobs = { r, "unknown", done[1] } }).jobs
        assert.equal(2, #d)
        local many = {}
        for i = 1, 101 do many[i] = "id" .. i end
        err_call(b, "DescribeJobs", { jobs = many })
        err_call(b, "DescribeJobs", {})
        assert(io.open(work .. "/go", "w")):close()
        wait_status(b, r, DONE)
      end)
    end)

    it("uses the injected clock for its timestamps", function()
      with_batch({ clock = function() return 1700000000.25 end }, function(b)
        env(b)
        jobdef(b, "d", { "true" })
        local j = wait_status(b, submit(b, { jobDefinition = "d" }), DONE)
        assert.same({ 1700000000250, 1700000000250, 1700000000250 }, { j.createdAt, j.startedAt, j.stoppedAt })
      end)
    end)
  end)

  describe("faults", function()
    it("spot_rate 1: every running job is killed as a spot interruption (and retried)", function()
      with_batch({ faults = { spot_rate = 1 } }, function(b)
        env(b)
        jobdef(b, "d", { "sleep", "30" })
        local j = wait_status(b, submit(b, { jobDefinition = "d", retryStrategy = { attempts = 2 } }), DONE)
        assert.equal("FAILED", j.status)
        assert.equal("Host EC2 (instance i-0123456789abcdef0) terminated.", j.statusReason)
        assert.equal(2, #j.attempts)
        assert.equal("Host EC2 (instance i-0123456789abcdef0) terminated.", j.attempts[1].statusReason)
      end)
    end)

    it("state_delay: the job is seen in every state, in order", function()
      with_batch({ faults = { state_delay = 0.3 } }, function(b)
        env(b)
        jobdef(b, "d", { "true" })
        local id = submit(b, { jobDefinition = "d" })
        local seen = {}
        while true do
          local s = ok_call(b, "DescribeJobs", { jobs = { id } }).jobs[1].status
          if seen[#seen] ~= s then seen[#seen + 1] = s end
          if DONE[s] then break end
          aws.sleep(0.02)
        end
        assert.same({ "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "SUCCEEDED" },
          { seen[1], seen[2], seen[3], seen[4], seen[#seen] })
      end)
    end)
  end)

  describe("persistence", function()
    it("survives a restart: running jobs FAILED with a reason, waiting jobs continue", function()
      local running, waiting, done
      with_batch(function(b)
        env(b, 1)
        jobdef(b, "gate", sh("while [ ! -e " .. work .. "/go ]; do sleep 0.02; done"))
        jobdef(b, "quick", { "true" })
        done = submit(b, { jobDefinition = "quick" })
        wait_status(b, done, DONE)
        running = submit(b, { jobDefinition = "gate" })
        wait_status(b, running, "RUNNING")
        waiting = submit(b, { jobDefinition = "quick" })
        wait_status(b, waiting, "RUNNABLE")
      end)
      with_batch(function(b)
        assert.equal(1, #ok_call(b, "DescribeComputeEnvironments", {}).computeEnvironments)
        assert.equal(1, #ok_call(b, "DescribeJobQueues", {}).jobQueues)
        assert.equal(2, #ok_call(b, "DescribeJobDefinitions", {}).jobDefinitions)
        local jr = ok_call(b, "DescribeJobs", { jobs = { running } }).jobs[1]
        assert.equal("FAILED", jr.status)
        assert.matches("local endpoint stopped", jr.statusReason)
        assert.equal("SUCCEEDED", wait_status(b, waiting, DONE).status)
        assert.equal("SUCCEEDED", ok_call(b, "DescribeJobs", { jobs = { done } }).jobs[1].status)
        -- revisions keep counting
        assert.equal(2, jobdef(b, "quick", { "true" }).revision)
      end)
    end)
  end)

  describe("corrupt state", function()
    it("a corrupt state.json is an error at start; a corrupt job file is skipped", function()
      run(function()
        local b = assert(batch_mod.new { data_dir = dir .. "/batch", store = store })
        assert(b:call("CreateComputeEnvironment", { computeEnvironmentName = "ce", type = "UNMANAGED", unmanagedvCpus = 1 }))
        b:close()
        assert(store.write_file_atomic(dir .. "/batch/jobs/broken.json", "{\"id\": "))
        local warnings = {}
        b = assert(batch_mod.new { data_dir = dir .. "/batch", store = store,
          warn = function(m) warnings[#warnings + 1] = m end })
        assert.equal(1, #warnings)
        assert.matches("^skipping broken.json: ", warnings[1])
        assert.equal(1, #ok_call(b, "DescribeComputeEnvironments", {}).computeEnvironments)
        b:close()
        assert(store.write_file_atomic(dir .. "/batch/state.json", "not json"))
        local none, err = batch_mod.new { data_dir = dir .. "/batch", store = store }
        assert.is_nil(none)
        assert.equal("BatchStateError", err.code)
      end)
    end)
  end)

  describe("misuse", function()
    it("raises on bad calls, returns errors for bad requests", function()
      with_batch(function(b)
        assert.has_error(function() b:call(1, {}) end)
        assert.has_error(function() b:call("ListJobs", "x") end)
        local _, err = b:call("Frobnicate", {})
        assert.equal("UnknownOperationException", err.code)
        err_call(b, "CreateComputeEnvironment", { computeEnvironmentName = 5, type = "MANAGED" })
        err_call(b, "SubmitJob", { jobName = "j" })
        err_call(b, "SubmitJob", { jobName = "j", jobQueue = "none", jobDefinition = "none" })
        err_call(b, "TerminateJob", { jobId = "nope", reason = "x" })
      end)
      assert.has_error(function() batch_mod.new() end)
      assert.has_error(function() batch_mod.new { data_dir = 5 } end)
    end)
  end)
end)

-- The same service through a real endpoint (`bin/aio-aws local`, a child
-- process) with the project's own client: the wire format is the model's.
describe("emulator batch (live, through the endpoint)", function()
  local emulator = require "support.emulator"
  local proc = require "support.proc"
  local work
  before_each(function() work = tmpdir() end)
  after_each(function() rm_rf(work) end)

  local function client(em)
    local session = assert(aws.session { region = em.region,
      credentials = { access_key = em.access_key, secret_key = em.secret_key } })
    return assert(session:client("batch", { endpoint_url = em.url, retries = { max_attempts = 1 } }))
  end

  local function setup_env(b, vcpus)
    assert(b:create_compute_environment { computeEnvironmentName = "ce", type = "MANAGED",
      computeResources = { type = "EC2", maxvCpus = vcpus, subnets = { "s" } } })
    assert(b:create_job_queue { jobQueueName = "q", priority = 1,
      computeEnvironmentOrder = { { order = 1, computeEnvironment = "ce" } } })
  end

  local function live_status(b, id, want)
    if type(want) == "string" then want = { [want] = true } end
    local t0 = os.time()
    while true do
      local out = assert(b:describe_jobs { jobs = { id } })
      local j = out.jobs[1]
      if j and want[j.status] then return j end
      if os.time() - t0 > 30 then error("job " .. id .. " stuck in " .. tostring(j and j.status), 2) end
      aws.sleep(0.05)
    end
  end

  it("every operation over the wire, errors as ClientException 400", function()
    local em = assert(emulator.start { "--no-auth" })
    finally(function() em:stop() end)
    run(function()
      local b = client(em)
      setup_env(b, 2)
      local ces = assert(b:describe_compute_environments { computeEnvironments = { "ce" } })
      assert.equal(2, ces.computeEnvironments[1].computeResources.maxvCpus)
      local qs = assert(b:describe_job_queues {})
      assert.equal("q", qs.jobQueues[1].jobQueueName)
      local def = assert(b:register_job_definition { jobDefinitionName = "d", type = "container",
        containerProperties = { image = "x", vcpus = 1, memory = 64, command = { "sh", "-c", "echo Ref::p; exit $CODE" } },
        parameters = { p = "dflt" } })
      assert.equal(1, def.revision)
      assert.equal(1, #assert(b:describe_job_definitions { jobDefinitionName = "d" }).jobDefinitions)
      local ok_job = assert(b:submit_job { jobName = "ok", jobQueue = "q", jobDefinition = "d",
        parameters = { p = "given" }, containerOverrides = { environment = { { name = "CODE", value = "0" } } } })
      local bad_job = assert(b:submit_job { jobName = "bad", jobQueue = "q", jobDefinition = "d",
        containerOverrides = { environment = { { name = "CODE", value = "4" } } } })
      local j = live_status(b, ok_job.jobId, DONE)
      assert.equal("SUCCEEDED", j.status)
      assert.equal("Essential container in task exited", j.statusReason)
      assert.equal(0, j.container.exitCode)
      assert.equal("integer", math.type(j.createdAt))
      local jb = live_status(b, bad_job.jobId, DONE)
      assert.equal("FAILED", jb.status)
      assert.equal(4, jb.container.exitCode)
      local l = assert(b:list_jobs { jobQueue = "q", filters = { { name = "JOB_NAME", values = { "O*" } } } })
      assert.equal(1, #l.jobSummaryList)
      assert.equal(ok_job.jobId, l.jobSummaryList[1].jobId)
      -- the job's output, through the Logs service of the same endpoint
      local session = assert(aws.session { region = em.region,
        credentials = { access_key = em.access_key, secret_key = em.secret_key } })
      local logs = assert(session:client("logs", { endpoint_url = em.url }))
      local ev = assert(logs:get_log_events { logGroupName = "/aws/batch/job", logStreamName = j.container.logStreamName,
        startFromHead = true })
      assert.equal("given", ev.events[1].message)
      assert(b:deregister_job_definition { jobDefinition = "d:1" })
      local _, err = b:submit_job { jobName = "x", jobQueue = "q", jobDefinition = "d" }
      assert.equal("ClientException", err.code)
      assert.equal(400, err.status)
      _, err = b:cancel_job { jobId = "nope", reason = "x" }
      assert.equal("ClientException", err.code)
      _, err = b:terminate_job { jobId = "nope", reason = "x" }
      assert.equal("ClientException", err.code)
      assert.same({}, assert(b:describe_jobs { jobs = { "unknown" } }).jobs)
    end)
  end)

  it("cancel and terminate over the wire", function()
    local em = assert(emulator.start { "--no-auth" })
    finally(function() em:stop() end)
    run(function()
      local b = client(em)
      setup_env(b, 1)
      assert(b:register_job_definition { jobDefinitionName = "gate", type = "container",
        containerProperties = { image = "x", vcpus = 1, memory = 64,
          command = { "sh", "-c", "while [ ! -e " .. work .. "/go ]; do sleep 0.02; done" } } })
      local r = assert(b:submit_job { jobName = "r", jobQueue = "q", jobDefinition = "gate" }).jobId
      live_status(b, r, "RUNNING")
      local w = assert(b:submit_job { jobName = "w", jobQueue = "q", jobDefinition = "gate" }).jobId
      live_status(b, w, "RUNNABLE")
      assert(b:cancel_job { jobId = w, reason = "cancelled" })
      assert.equal("cancelled", live_status(b, w, DONE).statusReason)
      assert(b:terminate_job { jobId = r, reason = "terminated" })
      local j = live_status(b, r, DONE)
      assert.same({ "FAILED", "terminated" }, { j.status, j.statusReason })
    end)
  end)

  it("fault flags: --throttle-rate 1 gives 429 TooManyRequestsException, --spot-rate 1 kills jobs", function()
    local em = assert(emulator.start { "--no-auth", "--throttle-rate", "1" })
    finally(function() em:stop() end)
    run(function()
      local _, err = client(em):describe_job_queues {}
      assert.equal("TooManyRequestsException", err.code)
      assert.equal(429, err.status)
    end)
    em:stop()
    local em2 = assert(emulator.start { "--no-auth", "--spot-rate", "1", "--state-delay", "0.05" })
    finally(function() em2:stop() end)
    run(function()
      local b = client(em2)
      setup_env(b, 1)
      assert(b:register_job_definition { jobDefinitionName = "d", type = "container",
        containerProperties = { image = "x", vcpus = 1, memory = 64, command = { "sleep", "30" } } })
      local id = assert(b:submit_job { jobName = "s", jobQueue = "q", jobDefinition = "d" }).jobId
      local j = live_status(b, id, DONE)
      assert.same({ "FAILED", "Host EC2 (instance i-0123456789abcdef0) terminated." }, { j.status, j.statusReason })
    end)
  end)

  it("a restart keeps everything: running jobs FAILED with a reason, waiting jobs run", function()
    local em = assert(emulator.start { "--no-auth" })
    finally(function() em:stop() end)
    local running, waiting, done
    run(function()
      local b = client(em)
      setup_env(b, 1)
      assert(b:register_job_definition { jobDefinitionName = "gate", type = "container",
        containerProperties = { image = "x", vcpus = 1, memory = 64,
          command = { "sh", "-c", "echo $$ > " .. work .. "/pid-$AWS_BATCH_JOB_ID; "
            .. "while [ ! -e " .. work .. "/go ]; do sleep 0.02; done" } } })
      done = assert(b:submit_job { jobName = "done", jobQueue = "q", jobDefinition = "gate",
        containerOverrides = { command = { "true" } } }).jobId
      live_status(b, done, DONE)
      running = assert(b:submit_job { jobName = "running", jobQueue = "q", jobDefinition = "gate" }).jobId
      live_status(b, running, "RUNNING")
      waiting = assert(b:submit_job { jobName = "waiting", jobQueue = "q", jobDefinition = "gate",
        containerOverrides = { command = { "true" } } }).jobId
      live_status(b, waiting, "RUNNABLE")
    end)
    assert(em:restart())
    -- the job's process did not outlive the endpoint
    local pid = tonumber(proc.read_file(work .. "/pid-" .. running))
    assert.is_false(proc.alive(pid))
    run(function()
      local b = client(em)
      local j = live_status(b, running, DONE)
      assert.equal("FAILED", j.status)
      assert.matches("local endpoint stopped", j.statusReason)
      assert.equal("SUCCEEDED", live_status(b, waiting, DONE).status)
      assert.equal("SUCCEEDED", live_status(b, done, DONE).status)
      assert.equal(1, #assert(b:describe_job_queues {}).jobQueues)
      assert.equal(1, #assert(b:describe_job_definitions {}).jobDefinitions)
    end)
  end)
end)
