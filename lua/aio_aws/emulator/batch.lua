--- AWS Batch for the local endpoint (`aio-aws local`): job queues and
-- compute environments whose jobs run as local processes.
--
--     local batch = require("aio_aws.emulator.batch").new(ctx)
--     local out, err = batch:call("SubmitJob", {jobName = "j", jobQueue = "q", jobDefinition = "d"})
--
-- Operations (AWS Batch API reference, docs.aws.amazon.com/batch/latest/APIReference/):
-- Create/Describe/Update/DeleteComputeEnvironment(s), Create/Describe/
-- Update/DeleteJobQueue(s), Register/Describe/DeregisterJobDefinition(s),
-- SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob, TagResource,
-- UntagResource, ListTagsForResource. `call` returns the output table or
-- `nil, err` with `err.code` "ClientException" and `err.status` 400.
--
-- Execution. A job's container command runs as a local process
-- (aio_aws.process; argv exactly as given, no shell), in
-- `<data_dir>/work/<jobId>/<attempt>`, with an environment made of PATH and
-- HOME (what an image would provide), the job definition's environment,
-- the overrides, and AWS_BATCH_JOB_ID, AWS_BATCH_JQ_NAME, AWS_BATCH_CE_NAME,
-- AWS_BATCH_JOB_ATTEMPT (and AWS_BATCH_JOB_ARRAY_INDEX for array children).
-- A compute environment's capacity is its `computeResources.maxvCpus`
-- (`unmanagedvCpus` for UNMANAGED ones); RUNNABLE jobs are placed by queue
-- priority (higher first) then submission order, on the first compute
-- environment of the queue's order with enough free vCPUs.
-- States SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING ->
-- SUCCEEDED | FAILED; each intermediate state lasts `faults.state_delay`
-- seconds (0 by default). stdout and stderr lines go to CloudWatch Logs
-- (`ctx.logs:append`), group /aws/batch/job, stream
-- `<jobDefinitionName>/default/<taskId>`. A process killed by a signal
-- reports exit code 128 + signal number, as Docker does.
-- Deviation: `timeout.attemptDurationSeconds` below AWS's minimum of 60 is
-- accepted, so tests can be quick.
--
-- The job life cycle (states, placement, processes, retries, arrays) is in
-- aio_aws.emulator.batch.jobs; this file holds the API and the state.
--
-- State (compute environments, queues, job definitions in `state.json`, one
-- `jobs/<jobId>.json` per job) is written crash-safe with
-- aio_aws.emulator.store on every change; at start, jobs that were STARTING
-- or RUNNING are FAILED (the process is gone), the others continue.
local errors = require "aio_aws.errors"
local jobs = require "aio_aws.emulator.batch.jobs"

local M = {}

local floor, fmt, sort = math.floor, string.format, table.sort

local DONE = jobs.DONE
local copy, hex32, by_name_or_arn = jobs.copy, jobs.hex32, jobs.by_name_or_arn

local Batch = {}
Batch.__index = Batch
jobs.install(Batch) -- the job life cycle: emulator/batch/jobs.lua

-- ------------------------------------------------------------ helpers

local function client_error(message)
  return nil, errors.new("ClientException", message, { status = 400 })
end

-- A v4 UUID, the form of AWS Batch job ids.
local function uuid()
  local r = math.random
  return fmt("%08x-%04x-4%03x-%04x-%012x", r(0, 0xffffffff), r(0, 0xffff), r(0, 0xfff),
    0x8000 | r(0, 0x3fff), r(0, 0xffffffffffff))
end

-- Parameter checks: each returns value or raises a ClientException table,
-- caught in call().
local Invalid = {}
local function invalid(msg) error(setmetatable({ msg = msg }, Invalid), 0) end

local function need_string(p, name)
  local v = p[name]
  if type(v) ~= "string" or v == "" then invalid(name .. " is required and must be a non-empty string") end
  return v
end

local function opt_type(p, name, ty)
  local v = p[name]
  if v ~= nil and type(v) ~= ty then invalid(name .. " must be a " .. ty) end
  return v
end

local function opt_int(p, name, lo, hi)
  local v = p[name]
  if v == nil then return nil end
  if math.type(v) ~= "integer" then invalid(name .. " must be an integer") end
  if (lo and v < lo) or (hi and v > hi) then
    invalid(fmt("%s must be between %s and %s", name, tostring(lo), tostring(hi)))
  end
  return v
end

local NAME_PATTERN = "^[%w][%w_%-]*$" -- "up to 128 letters, numbers, hyphens, and underscores"
local function check_name(kind, v)
  if #v > 128 or not v:match(NAME_PATTERN) then
    invalid(kind .. " name must be up to 128 letters (uppercase and lowercase), numbers, hyphens, and underscores")
  end
end

local function kv_list(list, what)
  if list == nil then return {} end
  if type(list) ~= "table" then invalid(what .. " must be a list") end
  local out = {}
  for i, e in ipairs(list) do
    if type(e) ~= "table" or type(e.name) ~= "string" then invalid(what .. "[" .. i .. "].name must be a string") end
    if e.value ~= nil and type(e.value) ~= "string" then invalid(what .. "[" .. i .. "].value must be a string") end
    out[i] = { name = e.name, value = e.value }
  end
  return out
end

local function string_list(list, what)
  if list == nil then return nil end
  if type(list) ~= "table" then invalid(what .. " must be a list of strings") end
  for i, s in ipairs(list) do
    if type(s) ~= "string" then invalid(what .. "[" .. i .. "] must be a string") end
  end
  return copy(list)
end

local function string_map(m, what)
  if m == nil then return nil end
  if type(m) ~= "table" then invalid(what .. " must be a map of strings") end
  for k, v in pairs(m) do
    if type(k) ~= "string" or type(v) ~= "string" then invalid(what .. " must be a map of strings") end
  end
  return copy(m)
end

-- vCPUs of a container: resourceRequirements VCPU wins over vcpus.
local function vcpus_of(c)
  local v = c.vcpus
  for _, r in ipairs(c.resourceRequirements or {}) do
    if r.type == "VCPU" then v = tonumber(r.value) end
  end
  return v or 1
end

-- Paginate a sorted list: token is the index of the next item.
local function paginate(items, p, max_default, max_limit)
  local maxr = opt_int(p, "maxResults", 1, max_limit) or max_default
  local start = 1
  if p.nextToken ~= nil then
    start = type(p.nextToken) == "string" and tonumber(p.nextToken:match("^i(%d+)$") or "")
    if not start then invalid("nextToken is invalid") end
  end
  local page = {}
  for i = start, math.min(#items, start + maxr - 1) do page[#page + 1] = items[i] end
  local nxt = start + maxr <= #items and ("i" .. (start + maxr)) or nil
  return page, nxt
end

-- ------------------------------------------------------------ persistence

function Batch:now_ms()
  return floor(self.clock() * 1000)
end

function Batch:save_state()
  if not self.dir then return true end
  local ok, err = self.store.write_json(self.dir .. "/state.json", {
    version = 1, ces = self.ces, queues = self.queues, jobdefs = self.jobdefs, seq = self.seq,
  })
  if not ok then self.warn("cannot save state: " .. tostring(err)) end
  return ok, err
end

-- Jobs are saved without their run-time fields (names starting with "_").
function Batch:save_job(job)
  if not self.dir then return true end
  local rec = {}
  for k, v in pairs(job) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then rec[k] = v end
  end
  local ok, err = self.store.write_json(self.dir .. "/jobs/" .. job.id .. ".json", rec)
  if not ok then self.warn("cannot save job " .. job.id .. ": " .. tostring(err)) end
  return ok, err
end

function Batch:load()
  local st, err = self.store.read_json(self.dir .. "/state.json")
  if err then return nil, err end
  if st then
    self.ces, self.queues, self.jobdefs = st.ces or {}, st.queues or {}, st.jobdefs or {}
    self.seq = st.seq or 0
  end
  local names = self.store.list_dir(self.dir .. "/jobs") or {}
  for _, name in ipairs(names) do
    if name:match("%.json$") then
      local job, jerr = self.store.read_json(self.dir .. "/jobs/" .. name)
      if job then
        self.jobs[job.id] = job
        if job.seq > self.seq then self.seq = job.seq end
      else
        self.warn("skipping " .. name .. ": " .. tostring(jerr))
      end
    end
  end
  return true
end

-- ------------------------------------------------------------ service

-- Epoch seconds with sub-second steps: os.time() gives whole seconds only.
local monotime = require("aio_aws.core").monotime
local clock_base
local function default_clock()
  clock_base = clock_base or (os.time() - monotime())
  return clock_base + monotime()
end

local function default_warn(msg)
  io.stderr:write("aio-aws local: batch: ", msg, "\n")
end

--- Create the service. `ctx` as in the emulator contract: data_dir (nil:
-- memory only), store, clock, region, account_id, faults {spot_rate,
-- state_delay}, logs (the Logs service, for job output), kill_grace
-- (seconds from SIGTERM to SIGKILL), warn (function(msg), default stderr).
-- Must run with the aio_aws runtime (jobs are tasks).
-- @return service | nil, err (the state cannot be read)
function M.new(ctx)
  if type(ctx) ~= "table" then error("emulator.batch.new: ctx must be a table", 2) end
  if ctx.data_dir ~= nil and type(ctx.data_dir) ~= "string" then
    error("emulator.batch.new: ctx.data_dir must be a string", 2)
  end
  local self = setmetatable({
    ctx = ctx,
    dir = ctx.data_dir,
    store = ctx.store or require("aio_aws.emulator.store"),
    clock = ctx.clock or default_clock,
    region = ctx.region or "us-east-1",
    account_id = ctx.account_id or "123456789012",
    faults = ctx.faults or {},
    logs = ctx.logs,
    kill_grace = ctx.kill_grace or jobs.KILL_GRACE,
    warn = ctx.warn or default_warn,
    ces = {}, queues = {}, jobdefs = {}, jobs = {}, seq = 0,
    _tasks = {},  -- job id -> the task driving it
    _runq = {},   -- job queue ARN -> RUNNABLE jobs waiting for a place, FIFO
    _used = {},   -- compute environment name -> vCPUs in use
  }, Batch)
  if self.dir then
    local ok, err = self.store.mkdir_p(self.dir .. "/jobs")
    if ok then ok, err = self:load() end
    if not ok then return nil, errors.new("BatchStateError", "cannot load batch state: " .. tostring(err)) end
    -- Jobs that were running died with the endpoint; the rest continue.
    local resume = {}
    for _, job in pairs(self.jobs) do
      if job.status == "STARTING" or job.status == "RUNNING" then
        local att = job.attempts[#job.attempts]
        if att and not att.stoppedAt then
          att.stoppedAt = self:now_ms()
          att.statusReason = jobs.RESTART_REASON
        end
        self:finish(job, "FAILED", jobs.RESTART_REASON)
      elseif not DONE[job.status] then
        resume[#resume + 1] = job
      end
    end
    sort(resume, function(a, b) return a.seq < b.seq end)
    for _, job in ipairs(resume) do self:start_task(job) end
  end
  return self
end

--- Stop every job task and process; what is on disk stays (running jobs
-- are FAILED at the next start).
function Batch:close()
  if self.closed then return end
  self.closed = true
  for _, job in pairs(self.jobs) do
    if job._proc then job._proc:kill("KILL") end
  end
  for id, t in pairs(self._tasks) do
    t:cancel()
    self._tasks[id] = nil
  end
end

function Batch:arn(kind, name)
  return fmt("arn:aws:batch:%s:%s:%s/%s", self.region, self.account_id, kind, name)
end


-- ------------------------------------------------------------ compute environments

local OPS = {}

function OPS.CreateComputeEnvironment(self, p)
  local name = need_string(p, "computeEnvironmentName")
  check_name("Compute environment", name)
  local ty = need_string(p, "type")
  if ty ~= "MANAGED" and ty ~= "UNMANAGED" then invalid("type must be MANAGED or UNMANAGED") end
  local state = opt_type(p, "state", "string") or "ENABLED"
  if state ~= "ENABLED" and state ~= "DISABLED" then invalid("state must be ENABLED or DISABLED") end
  local cr = opt_type(p, "computeResources", "table")
  if ty == "MANAGED" then
    if not cr then invalid("computeResources is required for a MANAGED compute environment") end
    if math.type(cr.maxvCpus) ~= "integer" or cr.maxvCpus < 0 then
      invalid("computeResources.maxvCpus is required and must be an integer >= 0")
    end
    if cr.minvCpus ~= nil and (math.type(cr.minvCpus) ~= "integer" or cr.minvCpus > cr.maxvCpus) then
      invalid("computeResources.minvCpus must be an integer <= maxvCpus")
    end
  end
  local unmanaged = opt_int(p, "unmanagedvCpus", 0)
  if self.ces[name] then return client_error("Object already exists") end
  local ce = {
    computeEnvironmentName = name,
    computeEnvironmentArn = self:arn("compute-environment", name),
    ecsClusterArn = fmt("arn:aws:ecs:%s:%s:cluster/%s_Batch_%s", self.region, self.account_id, name, hex32():sub(1, 8)),
    type = ty, state = state, status = "VALID", statusReason = "ComputeEnvironment Healthy",
    computeResources = copy(cr), serviceRole = opt_type(p, "serviceRole", "string"),
    unmanagedvCpus = unmanaged, tags = string_map(p.tags, "tags"),
    containerOrchestrationType = "ECS", uuid = uuid(),
  }
  self.ces[name] = ce
  self:save_state()
  return { computeEnvironmentName = name, computeEnvironmentArn = ce.computeEnvironmentArn }
end

local function describe(self, tbl, p, list_name, kind)
  local wanted = string_list(p[list_name], list_name)
  if wanted and #wanted > 100 then invalid(list_name .. " can list at most 100 items") end
  local items = {}
  if wanted and #wanted > 0 then
    local seen = {}
    for _, ref in ipairs(wanted) do
      local r = by_name_or_arn(tbl, ref, kind)
      if r and not seen[r] then seen[r] = true; items[#items + 1] = r end
    end
  else
    for _, r in pairs(tbl) do items[#items + 1] = r end
  end
  return items
end

function OPS.DescribeComputeEnvironments(self, p)
  local items = describe(self, self.ces, p, "computeEnvironments", "compute%-environment")
  sort(items, function(a, b) return a.computeEnvironmentName < b.computeEnvironmentName end)
  local page, nxt = paginate(items, p, 100, 100)
  local out = {}
  for i, ce in ipairs(page) do out[i] = copy(ce) end
  return { computeEnvironments = out, nextToken = nxt }
end

function OPS.UpdateComputeEnvironment(self, p)
  local ce = by_name_or_arn(self.ces, need_string(p, "computeEnvironment"), "compute%-environment")
  if not ce then return client_error("ComputeEnvironment " .. p.computeEnvironment .. " does not exist") end
  local state = opt_type(p, "state", "string")
  if state and state ~= "ENABLED" and state ~= "DISABLED" then invalid("state must be ENABLED or DISABLED") end
  local cr = opt_type(p, "computeResources", "table")
  if cr and cr.maxvCpus ~= nil then
    if math.type(cr.maxvCpus) ~= "integer" or cr.maxvCpus < 0 then invalid("computeResources.maxvCpus must be an integer >= 0") end
    ce.computeResources = ce.computeResources or {}
    ce.computeResources.maxvCpus = cr.maxvCpus
  end
  local unmanaged = opt_int(p, "unmanagedvCpus", 0)
  if unmanaged then ce.unmanagedvCpus = unmanaged end
  if state then ce.state = state end
  self:save_state()
  self:dispatch()
  return { computeEnvironmentName = ce.computeEnvironmentName, computeEnvironmentArn = ce.computeEnvironmentArn }
end

function OPS.DeleteComputeEnvironment(self, p)
  local ce = by_name_or_arn(self.ces, need_string(p, "computeEnvironment"), "compute%-environment")
  if not ce then return client_error("ComputeEnvironment " .. p.computeEnvironment .. " does not exist") end
  if ce.state ~= "DISABLED" then return client_error("Cannot delete, compute environment is not DISABLED") end
  for _, q in pairs(self.queues) do
    for _, o in ipairs(q.computeEnvironmentOrder) do
      if o.computeEnvironment == ce.computeEnvironmentArn then
        return client_error("Cannot delete, found existing JobQueue relationship")
      end
    end
  end
  self.ces[ce.computeEnvironmentName] = nil
  self:save_state()
  return {}
end

-- ------------------------------------------------------------ job queues

local function ce_order(self, list)
  if type(list) ~= "table" or #list == 0 then invalid("computeEnvironmentOrder must list at least one compute environment") end
  if #list > 3 then invalid("computeEnvironmentOrder can list at most 3 compute environments") end
  local out, seen = {}, {}
  for i, o in ipairs(list) do
    if type(o) ~= "table" or math.type(o.order) ~= "integer" or type(o.computeEnvironment) ~= "string" then
      invalid("computeEnvironmentOrder[" .. i .. "] needs an integer order and a computeEnvironment")
    end
    local ce = by_name_or_arn(self.ces, o.computeEnvironment, "compute%-environment")
    if not ce then invalid("computeEnvironmentOrder[" .. i .. "]: compute environment " .. o.computeEnvironment .. " does not exist") end
    if seen[o.order] then invalid("computeEnvironmentOrder: duplicate order " .. o.order) end
    seen[o.order] = true
    out[i] = { order = o.order, computeEnvironment = ce.computeEnvironmentArn }
  end
  sort(out, function(a, b) return a.order < b.order end)
  return out
end

function OPS.CreateJobQueue(self, p)
  local name = need_string(p, "jobQueueName")
  check_name("Job queue", name)
  local prio = p.priority
  if math.type(prio) ~= "integer" or prio < 0 or prio > 1000 then invalid("priority is required and must be an integer between 0 and 1000") end
  local state = opt_type(p, "state", "string") or "ENABLED"
  if state ~= "ENABLED" and state ~= "DISABLED" then invalid("state must be ENABLED or DISABLED") end
  local order = ce_order(self, p.computeEnvironmentOrder)
  if self.queues[name] then return client_error("Object already exists") end
  self.seq = self.seq + 1
  local q = {
    jobQueueName = name, jobQueueArn = self:arn("job-queue", name), state = state, status = "VALID",
    statusReason = "JobQueue Healthy", priority = prio, computeEnvironmentOrder = order,
    tags = string_map(p.tags, "tags"), schedulingPolicyArn = opt_type(p, "schedulingPolicyArn", "string"),
  }
  self.queues[name] = q
  self:save_state()
  return { jobQueueName = name, jobQueueArn = q.jobQueueArn }
end

function OPS.DescribeJobQueues(self, p)
  local items = describe(self, self.queues, p, "jobQueues", "job%-queue")
  sort(items, function(a, b) return a.jobQueueName < b.jobQueueName end)
  local page, nxt = paginate(items, p, 100, 100)
  local out = {}
  for i, q in ipairs(page) do out[i] = copy(q) end
  return { jobQueues = out, nextToken = nxt }
end

function OPS.UpdateJobQueue(self, p)
  local q = by_name_or_arn(self.queues, need_string(p, "jobQueue"), "job%-queue")
  if not q then return client_error("JobQueue " .. p.jobQueue .. " does not exist") end
  local state = opt_type(p, "state", "string")
  if state and state ~= "ENABLED" and state ~= "DISABLED" then invalid("state must be ENABLED or DISABLED") end
  local prio = opt_int(p, "priority", 0, 1000)
  local order = p.computeEnvironmentOrder ~= nil and ce_order(self, p.computeEnvironmentOrder) or nil
  if state then q.state = state end
  if prio then q.priority = prio end
  if order then q.computeEnvironmentOrder = order end
  self:save_state()
  self:dispatch()
  return { jobQueueName = q.jobQueueName, jobQueueArn = q.jobQueueArn }
end

function OPS.DeleteJobQueue(self, p)
  local q = by_name_or_arn(self.queues, need_string(p, "jobQueue"), "job%-queue")
  if not q then return client_error("JobQueue " .. p.jobQueue .. " does not exist") end
  if q.state ~= "DISABLED" then return client_error("Cannot delete, job queue is not DISABLED") end
  self.queues[q.jobQueueName] = nil
  -- Its unfinished jobs are failed, as AWS does when a queue is deleted.
  for _, job in pairs(self.jobs) do
    if job.jobQueue == q.jobQueueArn and not DONE[job.status] then
      self:cancel_job(job, "Job queue deleted")
    end
  end
  self:save_state()
  return {}
end

-- ------------------------------------------------------------ job definitions

local function check_retry(rs, what)
  if rs == nil then return nil end
  if type(rs) ~= "table" then invalid(what .. " must be a structure") end
  if rs.attempts ~= nil and (math.type(rs.attempts) ~= "integer" or rs.attempts < 1 or rs.attempts > 10) then
    invalid(what .. ".attempts must be an integer between 1 and 10")
  end
  if rs.evaluateOnExit ~= nil then
    if type(rs.evaluateOnExit) ~= "table" or #rs.evaluateOnExit > 5 then invalid(what .. ".evaluateOnExit must be a list of at most 5") end
    for i, e in ipairs(rs.evaluateOnExit) do
      local a = type(e) == "table" and type(e.action) == "string" and e.action:upper()
      if a ~= "RETRY" and a ~= "EXIT" then invalid(what .. ".evaluateOnExit[" .. i .. "].action must be RETRY or EXIT") end
    end
  end
  return copy(rs)
end

local function check_timeout(t, what)
  if t == nil then return nil end
  if type(t) ~= "table" or (t.attemptDurationSeconds ~= nil and
      (math.type(t.attemptDurationSeconds) ~= "integer" or t.attemptDurationSeconds < 1)) then
    invalid(what .. ".attemptDurationSeconds must be an integer >= 1")
  end
  return copy(t)
end

function OPS.RegisterJobDefinition(self, p)
  local name = need_string(p, "jobDefinitionName")
  check_name("Job definition", name)
  local ty = need_string(p, "type")
  if ty ~= "container" then
    if ty == "multinode" then return client_error("multinode job definitions are not supported by the local endpoint") end
    invalid("type must be container or multinode")
  end
  local cp = opt_type(p, "containerProperties", "table")
  if not cp then invalid("containerProperties is required for a container job definition") end
  cp = copy(cp)
  cp.command = string_list(cp.command, "containerProperties.command")
  cp.environment = kv_list(cp.environment, "containerProperties.environment")
  if cp.vcpus ~= nil and (math.type(cp.vcpus) ~= "integer" or cp.vcpus < 1) then invalid("containerProperties.vcpus must be an integer >= 1") end
  local defs = self.jobdefs[name]
  if not defs then defs = { latest = 0, revisions = {} }; self.jobdefs[name] = defs end
  local rev = defs.latest + 1
  local arn = self:arn("job-definition", name .. ":" .. rev)
  local def = {
    jobDefinitionName = name, jobDefinitionArn = arn, revision = rev, status = "ACTIVE", type = ty,
    parameters = string_map(p.parameters, "parameters") or {},
    retryStrategy = check_retry(p.retryStrategy, "retryStrategy"),
    containerProperties = cp, timeout = check_timeout(p.timeout, "timeout"),
    tags = string_map(p.tags, "tags"), propagateTags = opt_type(p, "propagateTags", "boolean"),
    schedulingPriority = opt_int(p, "schedulingPriority", 0, 9999),
    platformCapabilities = string_list(p.platformCapabilities, "platformCapabilities"),
    containerOrchestrationType = "ECS",
  }
  defs.latest = rev
  defs.revisions[tostring(rev)] = def
  self:save_state()
  return { jobDefinitionName = name, jobDefinitionArn = arn, revision = rev }
end

-- "name", "name:rev" or an ARN; "name" means the latest ACTIVE revision.
function Batch:find_def(ref)
  if type(ref) ~= "string" then return nil end
  local s = ref:match("^arn:aws[%w-]*:batch:[^:]*:%d*:job%-definition/(.+)$") or ref
  local name, rev = s:match("^(.-):(%d+)$")
  if not name then name = s end
  local defs = self.jobdefs[name]
  if not defs then return nil end
  if rev then return defs.revisions[rev] end
  for r = defs.latest, 1, -1 do
    local d = defs.revisions[tostring(r)]
    if d and d.status == "ACTIVE" then return d end
  end
  return nil
end

function OPS.DescribeJobDefinitions(self, p)
  local refs = string_list(p.jobDefinitions, "jobDefinitions")
  if refs and #refs > 100 then invalid("jobDefinitions can list at most 100 items") end
  local name = opt_type(p, "jobDefinitionName", "string")
  local status = opt_type(p, "status", "string")
  local items = {}
  if refs and #refs > 0 then
    for _, ref in ipairs(refs) do
      -- Without a revision every revision of the name is described.
      local s = ref:match("^arn:aws[%w-]*:batch:[^:]*:%d*:job%-definition/(.+)$") or ref
      if s:match(":%d+$") then
        local d = self:find_def(s)
        if d then items[#items + 1] = d end
      elseif self.jobdefs[s] then
        for _, d in pairs(self.jobdefs[s].revisions) do items[#items + 1] = d end
      end
    end
  else
    for n, defs in pairs(self.jobdefs) do
      if not name or n == name then
        for _, d in pairs(defs.revisions) do items[#items + 1] = d end
      end
    end
  end
  local out = {}
  for _, d in ipairs(items) do
    if not status or d.status == status then out[#out + 1] = d end
  end
  sort(out, function(a, b)
    if a.jobDefinitionName ~= b.jobDefinitionName then return a.jobDefinitionName < b.jobDefinitionName end
    return a.revision < b.revision
  end)
  local page, nxt = paginate(out, p, 100, 100)
  local res = {}
  for i, d in ipairs(page) do res[i] = copy(d) end
  return { jobDefinitions = res, nextToken = nxt }
end

function OPS.DeregisterJobDefinition(self, p)
  local ref = need_string(p, "jobDefinition")
  local s = ref:match("^arn:aws[%w-]*:batch:[^:]*:%d*:job%-definition/(.+)$") or ref
  if not s:match(":%d+$") then invalid("jobDefinition must be name:revision or an ARN") end
  local d = self:find_def(s)
  if not d then return client_error("JobDefinition " .. ref .. " does not exist") end
  d.status = "INACTIVE"
  self:save_state()
  return {}
end

-- ------------------------------------------------------------ jobs

local function merge_env(base, over)
  local out, idx = {}, {}
  for _, list in ipairs { base or {}, over or {} } do
    for _, e in ipairs(list) do
      if idx[e.name] then out[idx[e.name]].value = e.value
      else out[#out + 1] = { name = e.name, value = e.value }; idx[e.name] = #out end
    end
  end
  return out
end

-- Ref::name placeholders in the command (SubmitJob `parameters`: "Parameters
-- in a SubmitJob request override any corresponding parameter defaults
-- from the job definition").
local function substitute(cmd, params)
  if not cmd then return nil end
  local out = {}
  for i, a in ipairs(cmd) do
    out[i] = a:gsub("Ref::([%w_%-]+)", function(n)
      return params[n] -- a function's result is used as is; nil keeps the placeholder
    end)
  end
  return out
end

local function check_overrides(o)
  if o == nil then return {} end
  if type(o) ~= "table" then invalid("containerOverrides must be a structure") end
  local out = {
    command = string_list(o.command, "containerOverrides.command"),
    environment = o.environment ~= nil and kv_list(o.environment, "containerOverrides.environment") or nil,
    resourceRequirements = o.resourceRequirements, vcpus = o.vcpus, memory = o.memory,
    instanceType = o.instanceType,
  }
  for _, e in ipairs(out.environment or {}) do
    if e.name:sub(1, 10) == "AWS_BATCH_" then
      invalid("Environment variables cannot start with AWS_BATCH; this naming convention is reserved")
    end
  end
  if out.resourceRequirements ~= nil then
    if type(out.resourceRequirements) ~= "table" then invalid("containerOverrides.resourceRequirements must be a list") end
    for i, r in ipairs(out.resourceRequirements) do
      if type(r) ~= "table" or type(r.value) ~= "string" or (r.type ~= "VCPU" and r.type ~= "MEMORY" and r.type ~= "GPU") then
        invalid("containerOverrides.resourceRequirements[" .. i .. "] needs a type (GPU, VCPU, MEMORY) and a value")
      end
    end
  end
  return out
end

function OPS.SubmitJob(self, p)
  local name = need_string(p, "jobName")
  check_name("Job", name)
  local qref = need_string(p, "jobQueue")
  local dref = need_string(p, "jobDefinition")
  local overrides = check_overrides(p.containerOverrides)
  local params = string_map(p.parameters, "parameters") or {}
  local retry = check_retry(p.retryStrategy, "retryStrategy")
  local timeout = check_timeout(p.timeout, "timeout")
  local tags = string_map(p.tags, "tags")
  local ap = opt_type(p, "arrayProperties", "table")
  local size
  if ap and ap.size ~= nil then
    if math.type(ap.size) ~= "integer" or ap.size < 2 or ap.size > 10000 then
      invalid("arrayProperties.size must be an integer between 2 and 10000")
    end
    size = ap.size
  end
  local deps = {}
  if p.dependsOn ~= nil then
    if type(p.dependsOn) ~= "table" or #p.dependsOn > 20 then invalid("dependsOn must be a list of at most 20 dependencies") end
    for i, d in ipairs(p.dependsOn) do
      if type(d) ~= "table" then invalid("dependsOn[" .. i .. "] must be a structure") end
      if d.type ~= nil and d.type ~= "N_TO_N" and d.type ~= "SEQUENTIAL" then
        invalid("dependsOn[" .. i .. "].type must be N_TO_N or SEQUENTIAL")
      end
      if d.jobId == nil then
        if d.type ~= "SEQUENTIAL" or not size then invalid("dependsOn[" .. i .. "].jobId is required") end
      else
        if type(d.jobId) ~= "string" then invalid("dependsOn[" .. i .. "].jobId must be a string") end
        local dep = self.jobs[d.jobId]
        if not dep then return client_error("Dependent job " .. d.jobId .. " does not exist") end
        if d.type == "N_TO_N" and not (size and dep.arrayProperties and dep.arrayProperties.size == size) then
          return client_error("N_TO_N dependency requires array jobs of the same size")
        end
      end
      deps[#deps + 1] = { jobId = d.jobId, type = d.type }
    end
  end
  local q = by_name_or_arn(self.queues, qref, "job%-queue")
  if not q then return client_error("Job Queue " .. qref .. " does not exist") end
  if q.state ~= "ENABLED" then return client_error("Job Queue " .. qref .. " is not ENABLED") end
  local def = self:find_def(dref)
  if not def then return client_error("Job Definition " .. dref .. " does not exist or is INACTIVE") end
  if def.status ~= "ACTIVE" then return client_error("Job Definition " .. dref .. " is INACTIVE") end

  local cp = def.containerProperties
  local allparams = copy(def.parameters or {})
  for k, v in pairs(params) do allparams[k] = v end
  local rr = cp.resourceRequirements and copy(cp.resourceRequirements) or nil
  if overrides.resourceRequirements then
    rr = rr or {}
    for _, o in ipairs(overrides.resourceRequirements) do
      local found
      for _, r in ipairs(rr) do if r.type == o.type then r.value = o.value; found = true end end
      if not found then rr[#rr + 1] = { type = o.type, value = o.value } end
    end
  end
  local container = {
    image = cp.image,
    vcpus = overrides.vcpus or cp.vcpus,
    memory = overrides.memory or cp.memory,
    command = substitute(overrides.command or cp.command, allparams),
    environment = merge_env(cp.environment, overrides.environment),
    resourceRequirements = rr,
    jobRoleArn = cp.jobRoleArn, executionRoleArn = cp.executionRoleArn, user = cp.user,
    instanceType = overrides.instanceType or cp.instanceType,
    volumes = cp.volumes, mountPoints = cp.mountPoints, ulimits = cp.ulimits,
    readonlyRootFilesystem = cp.readonlyRootFilesystem, privileged = cp.privileged,
    logConfiguration = cp.logConfiguration, secrets = cp.secrets,
    networkInterfaces = {},
  }
  local id = uuid()
  local job = self:new_job {
    id = id, jobName = name, q = q, def = def, container = container, params = allparams,
    deps = deps, retry = retry or copy(def.retryStrategy), timeout = timeout or copy(def.timeout),
    tags = tags, size = size,
  }
  self:start_task(job)
  return { jobArn = job.jobArn, jobName = name, jobId = id }
end

function Batch:new_job(a)
  self.seq = self.seq + 1
  local now = self:now_ms()
  local job = {
    id = a.id, seq = self.seq,
    jobArn = self:arn("job", a.id), jobName = a.jobName, jobId = a.id,
    jobQueue = a.q.jobQueueArn, status = "SUBMITTED", attempts = {}, createdAt = now,
    retryStrategy = a.retry, dependsOn = a.deps, jobDefinition = a.def.jobDefinitionArn,
    def_name = a.def.jobDefinitionName, parameters = a.params, container = a.container,
    timeout = a.timeout, tags = a.tags, propagateTags = a.def.propagateTags,
    platformCapabilities = a.def.platformCapabilities,
    vcpus = vcpus_of(a.container),
  }
  if a.size then
    job.arrayProperties = { size = a.size, statusSummary = {} }
  elseif a.parent then
    job.parent = a.parent.id
    job.arrayProperties = { index = a.index }
  end
  self.jobs[job.id] = job
  self:save_job(job)
  return job
end

-- ------------------------------------------------------------ job operations

local function job_detail(job)
  local d = {
    jobArn = job.jobArn, jobName = job.jobName, jobId = job.jobId, jobQueue = job.jobQueue,
    status = job.status, statusReason = job.statusReason, attempts = copy(job.attempts),
    createdAt = job.createdAt, startedAt = job.startedAt, stoppedAt = job.stoppedAt,
    retryStrategy = copy(job.retryStrategy), dependsOn = copy(job.dependsOn),
    jobDefinition = job.jobDefinition, parameters = copy(job.parameters),
    container = copy(job.container), timeout = copy(job.timeout), tags = copy(job.tags),
    propagateTags = job.propagateTags, platformCapabilities = copy(job.platformCapabilities),
  }
  if job.arrayProperties then
    d.arrayProperties = copy(job.arrayProperties)
    if not job.arrayProperties.size then d.arrayProperties.statusSummary = nil end
    -- A parent has no container run of its own.
    if job.arrayProperties.size then
      d.container.logStreamName, d.container.exitCode, d.container.taskArn = nil, nil, nil
    end
  end
  return d
end

function OPS.DescribeJobs(self, p)
  local ids = p.jobs
  if type(ids) ~= "table" then invalid("jobs is required and must be a list of job ids") end
  if #ids > 100 then invalid("jobs can list at most 100 job ids") end
  local out = {}
  for i, id in ipairs(ids) do
    if type(id) ~= "string" then invalid("jobs[" .. i .. "] must be a string") end
    local job = self.jobs[id] or self.jobs[id:match("^arn:aws[%w-]*:batch:[^:]*:%d*:job/(.+)$") or ""]
    if job then out[#out + 1] = job_detail(job) end
  end
  return { jobs = out }
end

local function summary(job)
  local s = {
    jobArn = job.jobArn, jobId = job.jobId, jobName = job.jobName, createdAt = job.createdAt,
    status = job.status, statusReason = job.statusReason, startedAt = job.startedAt,
    stoppedAt = job.stoppedAt, jobDefinition = job.jobDefinition,
  }
  if job.container and (job.container.exitCode or job.container.reason) and not (job.arrayProperties and job.arrayProperties.size) then
    s.container = { exitCode = job.container.exitCode, reason = job.container.reason }
  end
  if job.arrayProperties then
    s.arrayProperties = { size = job.arrayProperties.size, index = job.arrayProperties.index }
  end
  return s
end

-- ListJobs filters (API reference, ListJobs "filters"; one at a time):
-- JOB_NAME case-insensitive, JOB_DEFINITION case-sensitive (a name matches
-- every revision, an ARN one revision), both with an optional trailing "*"
-- (not for ARNs) meaning "begins with"; BEFORE_CREATED_AT /
-- AFTER_CREATED_AT in ms since the epoch.
local function filter_fn(filters)
  local preds = {}
  if #filters > 1 then invalid("Only one filter can be used at a time") end
  for i, f in ipairs(filters) do
    if type(f) ~= "table" or type(f.name) ~= "string" or type(f.values) ~= "table" or #f.values ~= 1
        or type(f.values[1]) ~= "string" then
      invalid("filters[" .. i .. "] needs a name and exactly one value")
    end
    local v = f.values[1]
    local function text(get, fold)
      local want = fold and v:lower() or v
      if want:sub(-1) == "*" then
        local pre = want:sub(1, -2)
        return function(job)
          local s = get(job)
          return (fold and s:lower() or s):sub(1, #pre) == pre
        end
      end
      return function(job)
        local s = get(job)
        return (fold and s:lower() or s) == want
      end
    end
    if f.name == "JOB_NAME" then
      preds[#preds + 1] = text(function(job) return job.jobName end, true)
    elseif f.name == "JOB_DEFINITION" then
      if v:match("^arn:") then
        preds[#preds + 1] = function(job) return job.jobDefinition == v end
      else
        preds[#preds + 1] = text(function(job) return job.def_name end, false)
      end
    elseif f.name == "BEFORE_CREATED_AT" or f.name == "AFTER_CREATED_AT" then
      local t = math.tointeger(tonumber(v))
      if not t then invalid("filters[" .. i .. "] value must be a time in milliseconds") end
      local before = f.name == "BEFORE_CREATED_AT"
      preds[#preds + 1] = function(job)
        if before then return job.createdAt < t end
        return job.createdAt > t
      end
    else
      invalid("filters[" .. i .. "].name must be JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT or AFTER_CREATED_AT")
    end
  end
  return function(job)
    for _, pr in ipairs(preds) do if not pr(job) then return false end end
    return true
  end
end

function OPS.ListJobs(self, p)
  local qref = opt_type(p, "jobQueue", "string")
  local array = opt_type(p, "arrayJobId", "string")
  local multi = opt_type(p, "multiNodeJobId", "string")
  local n = (qref and 1 or 0) + (array and 1 or 0) + (multi and 1 or 0)
  if n ~= 1 then return client_error("Exactly one of jobQueue, arrayJobId or multiNodeJobId must be given") end
  local status = opt_type(p, "jobStatus", "string")
  local filters = p.filters
  if filters ~= nil and type(filters) ~= "table" then invalid("filters must be a list") end
  -- "The filter doesn't apply to child jobs in an array"; with a filter
  -- "jobStatus is ignored".
  local pred = not array and filters and #filters > 0 and filter_fn(filters) or nil
  if not pred then status = status or "RUNNING" else status = nil end
  local items = {}
  if qref then
    local q = by_name_or_arn(self.queues, qref, "job%-queue")
    if not q then return client_error("Job Queue " .. qref .. " does not exist") end
    for _, job in pairs(self.jobs) do
      if job.jobQueue == q.jobQueueArn and not job.parent then items[#items + 1] = job end
    end
  elseif array then
    local parent = self.jobs[array]
    if not parent or not (parent.arrayProperties and parent.arrayProperties.size) then
      return client_error("Job " .. array .. " is not an array job")
    end
    for _, cid in ipairs(parent.children or {}) do items[#items + 1] = self.jobs[cid] end
  end
  local sel = {}
  for _, job in ipairs(items) do
    if (not status or job.status == status) and (not pred or pred(job)) then sel[#sel + 1] = job end
  end
  if pred then
    -- "sorted by the createdAt field, with the most recent jobs being first"
    sort(sel, function(a, b)
      if a.createdAt ~= b.createdAt then return a.createdAt > b.createdAt end
      return a.seq > b.seq
    end)
  else
    sort(sel, function(a, b) return a.seq < b.seq end)
  end
  local page, nxt = paginate(sel, p, 100, 100)
  local out = {}
  for i, job in ipairs(page) do out[i] = summary(job) end
  return { jobSummaryList = out, nextToken = nxt }
end

function OPS.CancelJob(self, p)
  local id = need_string(p, "jobId")
  local reason = need_string(p, "reason")
  local job = self.jobs[id]
  if not job then return client_error("Job " .. id .. " does not exist") end
  -- "Jobs that progressed to the STARTING or RUNNING state aren't canceled.
  -- However, the API operation still succeeds."
  self:cancel_job(job, reason)
  return {}
end

function OPS.TerminateJob(self, p)
  local id = need_string(p, "jobId")
  local reason = need_string(p, "reason")
  local job = self.jobs[id]
  if not job then return client_error("Job " .. id .. " does not exist") end
  if job.children then
    for _, cid in ipairs(job.children) do
      local c = self.jobs[cid]
      if c and not DONE[c.status] then OPS.TerminateJob(self, { jobId = cid, reason = reason }) end
    end
  end
  if not self:cancel_job(job, reason) and (job.status == "STARTING" or job.status == "RUNNING") then
    self:kill_job(job, reason)
  end
  return {}
end

-- ------------------------------------------------------------ tags

function Batch:tagged(arn)
  if type(arn) ~= "string" then return nil end
  for _, ce in pairs(self.ces) do if ce.computeEnvironmentArn == arn then return ce end end
  for _, q in pairs(self.queues) do if q.jobQueueArn == arn then return q end end
  for _, defs in pairs(self.jobdefs) do
    for _, d in pairs(defs.revisions) do if d.jobDefinitionArn == arn then return d end end
  end
  local id = arn:match(":job/(.+)$")
  return id and self.jobs[id]
end

function OPS.TagResource(self, p)
  local r = self:tagged(need_string(p, "resourceArn"))
  if not r then return client_error("Resource " .. p.resourceArn .. " does not exist") end
  local tags = string_map(p.tags, "tags") or invalid("tags is required")
  r.tags = r.tags or {}
  for k, v in pairs(tags) do r.tags[k] = v end
  if r.jobId then self:save_job(r) else self:save_state() end
  return {}
end

function OPS.UntagResource(self, p)
  local r = self:tagged(need_string(p, "resourceArn"))
  if not r then return client_error("Resource " .. p.resourceArn .. " does not exist") end
  for _, k in ipairs(string_list(p.tagKeys, "tagKeys") or {}) do
    if r.tags then r.tags[k] = nil end
  end
  if r.jobId then self:save_job(r) else self:save_state() end
  return {}
end

function OPS.ListTagsForResource(self, p)
  local r = self:tagged(need_string(p, "resourceArn"))
  if not r then return client_error("Resource " .. p.resourceArn .. " does not exist") end
  return { tags = copy(r.tags or {}) }
end

-- ------------------------------------------------------------ entry point

--- Run one operation: `params` as decoded from the request by the model.
-- @return output table | nil, err (ClientException, status 400)
function Batch:call(op, params, _req)
  if type(op) ~= "string" then error("batch:call: op must be a string", 2) end
  if params ~= nil and type(params) ~= "table" then error("batch:call: params must be a table", 2) end
  local f = OPS[op]
  if not f then
    return nil, errors.new("UnknownOperationException", "Operation " .. op .. " is not supported by the local Batch endpoint", { status = 400 })
  end
  if self.closed then return nil, errors.new("ServerException", "the Batch service is closed", { status = 500 }) end
  local ok, res, err = pcall(f, self, params or {})
  if not ok then
    if getmetatable(res) == Invalid then return client_error(res.msg) end
    error(res, 0)
  end
  return res, err
end

--- Read a job record (tests and tools).
function Batch:job(id)
  local job = self.jobs[id]
  return job and job_detail(job)
end

M.OPS = OPS
return M
