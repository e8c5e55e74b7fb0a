--- The life of a job in the local Batch endpoint (aio_aws.emulator.batch):
-- one task per job walks it through the states of the AWS Batch user
-- guide ("Job states"):
--
--   SUBMITTED -> PENDING   (dependencies; an array parent stays here while
--                           its children run)
--   -> RUNNABLE            (waiting for vCPUs on a compute environment of
--                           its queue; placed by queue priority, then FIFO)
--   -> STARTING -> RUNNING (a local process) -> SUCCEEDED | FAILED
--
-- with `faults.state_delay` seconds in each intermediate state. Nothing
-- here polls: a job waiting for a dependency waits on that job's "done"
-- event, an array parent on its children's, a RUNNABLE job on its own
-- wake-up event, set when dispatch() places it. Costs stay linear in the
-- number of jobs that change state (an array of 10,000 children is fine).
--
-- Fields of a job record starting with "_" are run-time only (not saved).
local async = require "aio_aws.async"
local process = require "aio_aws.process"
local signal_number = require("aio_aws.core").signal_number

local M = {}

local fmt, sort = string.format, table.sort

M.LOG_GROUP = "/aws/batch/job"
M.SPOT_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
M.EXIT_REASON = "Essential container in task exited"
M.TIMEOUT_REASON = "Job attempt duration exceeded timeout"
M.DEP_REASON = "Dependent Job failed"
M.ARRAY_REASON = "Array Child Job failed"
M.RESTART_REASON = "Job was STARTING or RUNNING when the local endpoint stopped"
M.START_REASON = "Task failed to start"
M.KILL_GRACE = 10          -- seconds between SIGTERM and SIGKILL (ctx.kill_grace)
local LOG_FLUSH_LINES = 500  -- lines buffered before they go to the logs service
local LOG_FLUSH_SECS = 0.2
local DONE = { SUCCEEDED = true, FAILED = true }
M.DONE = DONE
M.STATUSES = { "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED" }

-- ------------------------------------------------------------ helpers

function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  return out
end
local copy = M.copy

function M.hex32()
  return fmt("%08x%08x%08x%08x", math.random(0, 0xffffffff), math.random(0, 0xffffffff),
    math.random(0, 0xffffffff), math.random(0, 0xffffffff))
end
local hex32 = M.hex32

-- Resolve "name" or an ARN to the record in `tbl` (keyed by name).
function M.by_name_or_arn(tbl, ref, kind)
  if type(ref) ~= "string" then return nil end
  local name = ref:match("^arn:aws[%w-]*:batch:[^:]*:%d*:" .. kind .. "/(.+)$") or ref
  return tbl[name]
end
local by_name_or_arn = M.by_name_or_arn

-- vCPUs a compute environment offers.
function M.ce_capacity(ce)
  if ce.type == "UNMANAGED" then return ce.unmanagedvCpus or 0 end
  return ce.computeResources and ce.computeResources.maxvCpus or 0
end
local ce_capacity = M.ce_capacity

-- An event set once, lazily created on a record (`key`).
local function event_of(rec, key)
  local ev = rec[key]
  if not ev then ev = async.Event(); rec[key] = ev end
  return ev
end

-- ------------------------------------------------------------ methods

local Jobs = {}

function Jobs:delay()
  local d = tonumber(self.faults.state_delay) or 0
  return d > 0 and d or 0
end

-- Wait for the job's wake-up event (a placement, a kill) or `secs`.
local function wait_job(job, secs)
  if secs and secs <= 0 then async.sleep(0); return end
  job._wake:wait(secs)
  job._wake:clear()
end

-- Array parents count their children by status (statusSummary).
function Jobs:count_child(job, old, new)
  local parent = job.parent and self.jobs[job.parent]
  if not parent or not parent.arrayProperties then return end
  local sum = parent.arrayProperties.statusSummary
  if old then sum[old] = (sum[old] or 1) - 1 end
  sum[new] = (sum[new] or 0) + 1
  if DONE[new] then event_of(parent, "_child_ev"):set() end
end

function Jobs:recount(parent)
  local sum = {}
  for _, s in ipairs(M.STATUSES) do sum[s] = 0 end
  for _, cid in ipairs(parent.children or {}) do
    local c = self.jobs[cid]
    if c then sum[c.status] = sum[c.status] + 1 end
  end
  parent.arrayProperties.statusSummary = sum
end

function Jobs:set_status(job, status)
  local old = job.status
  job.status = status
  self:save_job(job)
  self:count_child(job, old, status)
end

-- The job has finished for good: wake whoever depends on it.
function Jobs:finish(job, status, reason)
  if DONE[job.status] then return end
  local old = job.status
  job.status = status
  job.statusReason = reason
  job.stoppedAt = self:now_ms()
  self:unqueue(job)
  self:save_job(job)
  self:count_child(job, old, status)
  if job._done_ev then job._done_ev:set() end
  if job._children_ev then job._children_ev:set() end
end

function Jobs:start_task(job)
  job._wake = async.Event()
  self._tasks[job.id] = async.spawn(function()
    local ok, err = pcall(self.drive, self, job)
    if self._tasks[job.id] == async.current() then self._tasks[job.id] = nil end
    if not ok and not (type(err) == "table" and err.code == "Cancelled") then
      self.warn("job " .. job.id .. ": " .. tostring(err))
      if not self.closed then
        self:release(job)
        self:finish(job, "FAILED", "Internal error of the local endpoint: " .. tostring(err))
        self:dispatch()
      end
    end
  end)
end

-- Where the job stands with its dependencies: "ok", "failed", or "wait"
-- plus the event to wait on. Array children inherit their parent's
-- N_TO_N (child i waits for child i of the other array) and SEQUENTIAL
-- (child i waits for child i-1) dependencies; a plain dependency on an
-- array job waits for the whole array.
function Jobs:deps_state(job)
  local ids = {}
  local parent = job.parent and self.jobs[job.parent]
  if parent then
    local i = job.arrayProperties.index
    for _, d in ipairs(parent.dependsOn or {}) do
      if d.type == "N_TO_N" and d.jobId then
        ids[#ids + 1] = d.jobId .. ":" .. i
      elseif d.type == "SEQUENTIAL" and not d.jobId and i > 0 then
        ids[#ids + 1] = parent.id .. ":" .. (i - 1)
      end
    end
  else
    for _, d in ipairs(job.dependsOn or {}) do
      -- N_TO_N is resolved child by child (above)
      if d.jobId and not (d.type == "N_TO_N" and job.arrayProperties and job.arrayProperties.size) then
        ids[#ids + 1] = d.jobId
      end
    end
  end
  for _, id in ipairs(ids) do
    local dep = self.jobs[id]
    if dep then
      if dep.status == "FAILED" then return "failed" end
      if dep.status ~= "SUCCEEDED" then return "wait", event_of(dep, "_done_ev") end
    else
      -- a child of an array that has not made its children yet
      local other = self.jobs[id:match("^(.*):%d+$") or ""]
      if other then
        if other.status == "FAILED" then return "failed" end
        if not DONE[other.status] then return "wait", event_of(other, "_children_ev") end
      end
    end
  end
  return "ok"
end

-- Drives one job from its current state to the end (its task).
function Jobs:drive(job)
  if job.status == "SUBMITTED" then
    wait_job(job, self:delay())
    self:set_status(job, "PENDING")
  end
  if job.status == "PENDING" then
    while true do
      local st, ev = self:deps_state(job)
      if st == "failed" then return self:finish(job, "FAILED", M.DEP_REASON) end
      if st == "ok" then break end
      ev:wait() -- CancelJob cancels this task
    end
    if job.arrayProperties and job.arrayProperties.size then return self:run_array(job) end
    wait_job(job, self:delay())
    self:set_status(job, "RUNNABLE")
  end
  while true do
    -- RUNNABLE: at least the state delay, then wait for a place.
    wait_job(job, self:delay())
    self:enqueue(job)
    self:dispatch()
    while not job._ce do wait_job(job) end
    job._wake:clear()
    local again = self:run_attempt(job)
    self:release(job)
    self:dispatch()
    if not again then return end
    self:set_status(job, "RUNNABLE")
  end
end

-- ------------------------------------------------------------ placement

-- Run queues: per job queue, the RUNNABLE jobs in submission order.
function Jobs:enqueue(job)
  local q = self._runq[job.jobQueue]
  if not q then q = {}; self._runq[job.jobQueue] = q end
  local i = #q
  while i > 0 and q[i].seq > job.seq do i = i - 1 end -- a retry keeps its place
  table.insert(q, i + 1, job)
  job._queued = true
end

function Jobs:unqueue(job)
  if not job._queued then return end
  job._queued = nil
  local q = self._runq[job.jobQueue]
  for i = 1, q and #q or 0 do
    if q[i] == job then table.remove(q, i); return end
  end
end

function Jobs:release(job)
  if job._ce then
    self._used[job._ce] = (self._used[job._ce] or 0) - job.vcpus
    job._ce = nil
  end
  self:unqueue(job)
end

-- Place RUNNABLE jobs: queues by priority (higher first, "Job queues with a
-- higher priority are evaluated first"), each queue in submission order,
-- on the first ENABLED compute environment of the queue's order with room.
-- A DISABLED queue takes no new jobs, "but jobs already in the queue can
-- finish" (CreateJobQueue, state); a DISABLED compute environment gets no
-- new jobs placed (CreateComputeEnvironment, state).
function Jobs:dispatch()
  if self.closed then return end
  local queues = {}
  for _, q in pairs(self.queues) do
    local list = self._runq[q.jobQueueArn]
    if list and #list > 0 then queues[#queues + 1] = q end
  end
  sort(queues, function(a, b)
    if a.priority ~= b.priority then return a.priority > b.priority end
    return a.jobQueueName < b.jobQueueName
  end)
  for _, q in ipairs(queues) do
    local ces = {}
    for _, o in ipairs(q.computeEnvironmentOrder) do
      local ce = by_name_or_arn(self.ces, o.computeEnvironment, "compute%-environment")
      if ce and ce.state == "ENABLED" then ces[#ces + 1] = ce end
    end
    local list, i = self._runq[q.jobQueueArn], 1
    while i <= #list do
      local free = 0
      for _, ce in ipairs(ces) do
        local f = ce_capacity(ce) - (self._used[ce.computeEnvironmentName] or 0)
        if f > free then free = f end
      end
      if free <= 0 then break end
      local job, placed = list[i], false
      for _, ce in ipairs(ces) do
        local name = ce.computeEnvironmentName
        if (self._used[name] or 0) + job.vcpus <= ce_capacity(ce) then
          self._used[name] = (self._used[name] or 0) + job.vcpus
          job._ce = name
          job._queued = nil
          table.remove(list, i)
          job._wake:set()
          placed = true
          break
        end
      end
      if not placed then i = i + 1 end -- too big for now: smaller jobs may pass
    end
  end
end

-- ------------------------------------------------------------ running

-- Retry decision for a failed attempt (RetryStrategy: evaluateOnExit
-- patterns may end with "*"; the first match decides; no match retries).
local function glob_match(pat, s)
  if pat == nil then return true end
  if s == nil then return false end
  if pat:sub(-1) == "*" then return s:sub(1, #pat - 1) == pat:sub(1, -2) end
  return s == pat
end

function Jobs:should_retry(job, att)
  local rs = job.retryStrategy
  local max = rs and rs.attempts or 1
  if #job.attempts >= max then return false end
  for _, e in ipairs(rs.evaluateOnExit or {}) do
    local code = att.container.exitCode and tostring(att.container.exitCode) or nil
    if glob_match(e.onExitCode, code) and glob_match(e.onReason, att.container.reason)
        and glob_match(e.onStatusReason, att.statusReason) then
      return e.action:upper() == "RETRY"
    end
  end
  return true
end

-- The container's environment: PATH and HOME as an image would set them,
-- the job's variables, then what AWS Batch sets ("AWS Batch environment
-- variables" in the user guide).
function Jobs:job_env(job, ce_name, attempt, dir)
  local env = { PATH = os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin", HOME = dir or os.getenv("HOME") }
  for _, e in ipairs(job.container.environment or {}) do env[e.name] = e.value or "" end
  local q = by_name_or_arn(self.queues, job.jobQueue, "job%-queue")
  env.AWS_BATCH_JOB_ID = job.id
  env.AWS_BATCH_JQ_NAME = q and q.jobQueueName or job.jobQueue:match("[^/]+$")
  env.AWS_BATCH_CE_NAME = ce_name
  env.AWS_BATCH_JOB_ATTEMPT = tostring(attempt)
  if job.parent then env.AWS_BATCH_JOB_ARRAY_INDEX = tostring(job.arrayProperties.index) end
  return env
end

-- Lines to CloudWatch Logs, in batches.
local function log_sink(self, stream)
  local buf = {}
  local sink = {}
  function sink.flush()
    if #buf == 0 or not self.logs then buf = {}; return end
    local evs = buf
    buf = {}
    local ok, err = pcall(self.logs.append, self.logs, M.LOG_GROUP, stream, evs)
    if not ok then self.warn("logs: " .. tostring(err)) end
  end
  function sink.line(_, line)
    buf[#buf + 1] = { timestamp = self:now_ms(), message = line }
    if #buf >= LOG_FLUSH_LINES then sink.flush() end
  end
  return sink
end

-- One attempt on the compute environment job._ce. Returns true when the
-- job goes back to RUNNABLE for another attempt.
function Jobs:run_attempt(job)
  local ce_name = job._ce
  job.statusReason = nil
  self:set_status(job, "STARTING")
  wait_job(job, self:delay())
  local task_id = hex32()
  local stream = job.def_name .. "/default/" .. task_id
  local ce = self.ces[ce_name]
  local cluster = ce and ce.ecsClusterArn and ce.ecsClusterArn:match("cluster/(.+)$") or "local"
  local att = {
    container = {
      containerInstanceArn = fmt("arn:aws:ecs:%s:%s:container-instance/%s", self.region, self.account_id, hex32()),
      taskArn = fmt("arn:aws:ecs:%s:%s:task/%s/%s", self.region, self.account_id, cluster, task_id),
      logStreamName = stream, networkInterfaces = {},
    },
  }
  local c = job.container
  c.logStreamName, c.taskArn, c.containerInstanceArn = stream, att.container.taskArn, att.container.containerInstanceArn
  c.exitCode, c.reason = nil, nil
  if job._kill_reason then -- terminated while STARTING: nothing ran
    job.attempts[#job.attempts + 1] = att
    self:finish(job, "FAILED", job._kill_reason)
    return false
  end
  local n = #job.attempts + 1
  local now = self:now_ms()
  job.startedAt = job.startedAt or now
  att.startedAt = now
  local p, perr
  if not c.command or #c.command == 0 then
    perr = "the job has no command"
  else
    local dir
    if self.dir then
      dir = self.dir .. "/work/" .. job.id .. "/" .. n
      self.store.mkdir_p(dir)
    end
    job._sink = log_sink(self, stream)
    -- die_with_parent: a crashed endpoint leaves no job process behind
    p, perr = process.spawn { argv = c.command, env = self:job_env(job, ce_name, n, dir), cwd = dir,
      on_line = job._sink.line, die_with_parent = true }
  end
  if not p then
    att.stoppedAt = self:now_ms()
    att.container.reason = "CannotStartContainerError: " .. tostring(type(perr) == "table" and perr.message or perr)
    att.statusReason = M.START_REASON
    job.attempts[#job.attempts + 1] = att
    c.reason = att.container.reason
    if self:should_retry(job, att) then return true end
    self:finish(job, "FAILED", M.START_REASON)
    return false
  end
  job._proc = p
  self:set_status(job, "RUNNING")
  -- Timers of this attempt: timeout, spot interruption, log flushing.
  local timers = {}
  local limit = job.timeout and job.timeout.attemptDurationSeconds
  if limit then
    timers[#timers + 1] = async.spawn(function()
      async.sleep(limit)
      self:kill_job(job, M.TIMEOUT_REASON)
    end)
  end
  local spot = tonumber(self.faults.spot_rate) or 0
  if spot > 0 and math.random() < spot then
    timers[#timers + 1] = async.spawn(function()
      async.sleep(math.random() * 0.2)
      self:kill_job(job, M.SPOT_REASON, "KILL")
    end)
  end
  timers[#timers + 1] = async.spawn(function()
    while true do async.sleep(LOG_FLUSH_SECS); job._sink.flush() end
  end)
  local ok, st, werr = pcall(p.wait, p)
  for _, t in ipairs(timers) do t:cancel() end
  if job._grace then job._grace:cancel(); job._grace = nil end
  job._proc = nil
  if not ok then error(st, 0) end -- this task was cancelled (close): the process is killed
  job._sink.flush()
  att.stoppedAt = self:now_ms()
  if not st then st = {}; att.container.reason = tostring(werr) end
  local code = st.exit_code
  -- killed by a signal: 128 + its number, as Docker reports it
  if st.signal then code = 128 + (signal_number(st.signal) or 0) end
  att.container.exitCode = code
  c.exitCode = code
  local reason = job._kill_reason
  job._kill_reason = nil
  att.statusReason = reason or M.EXIT_REASON
  job.attempts[#job.attempts + 1] = att
  if code == 0 and not reason then
    self:finish(job, "SUCCEEDED", M.EXIT_REASON)
    return false
  end
  -- Timeouts and TerminateJob are final; exits and spot interruptions
  -- follow the retry strategy.
  local final = reason and reason ~= M.SPOT_REASON
  if not final and self:should_retry(job, att) then return true end
  self:finish(job, "FAILED", reason or M.EXIT_REASON)
  return false
end

-- Stop a STARTING or RUNNING job: SIGTERM, then SIGKILL after the grace
-- period (at once with sig "KILL").
function Jobs:kill_job(job, reason, sig)
  if not job._kill_reason then job._kill_reason = reason end
  local p = job._proc
  if not p then job._wake:set(); return end
  p:kill(sig or "TERM")
  if sig ~= "KILL" and not job._grace then
    job._grace = async.spawn(function()
      async.sleep(self.kill_grace)
      job._grace = nil
      p:kill("KILL")
    end)
  end
end

-- Cancel a job that has not started (SUBMITTED, PENDING, RUNNABLE): its
-- task, waiting in one of those states, is cancelled and the job FAILED at
-- once; an array parent takes its children that have not started along.
-- Returns false for a job that is STARTING, RUNNING or done.
function Jobs:cancel_job(job, reason)
  if DONE[job.status] or job.status == "STARTING" or job.status == "RUNNING" then return false end
  job._cancel = reason
  for _, cid in ipairs(job.children or {}) do
    local c = self.jobs[cid]
    if c then self:cancel_job(c, reason) end
  end
  local t = self._tasks[job.id]
  if t and t ~= async.current() then t:cancel(); self._tasks[job.id] = nil end
  self:release(job)
  self:finish(job, "FAILED", reason)
  self:dispatch()
  return true
end

-- An array job: its children run, the parent stays PENDING and follows
-- them (SUCCEEDED when all succeed, else FAILED).
function Jobs:run_array(job)
  local size = job.arrayProperties.size
  if not job.children then
    job.children = {}
    local def = self:find_def(job.jobDefinition)
      or { jobDefinitionArn = job.jobDefinition, jobDefinitionName = job.def_name }
    local q = { jobQueueArn = job.jobQueue }
    for i = 0, size - 1 do
      local child = self:new_job {
        id = job.id .. ":" .. i, jobName = job.jobName, q = q, def = def,
        container = copy(job.container), params = job.parameters, deps = {}, retry = job.retryStrategy,
        timeout = job.timeout, tags = job.tags, parent = job, index = i,
      }
      job.children[i + 1] = child.id
    end
    self:save_job(job)
    if job._children_ev then job._children_ev:set() end
  end
  self:recount(job)
  for _, cid in ipairs(job.children) do
    local c = self.jobs[cid]
    if c and not DONE[c.status] and not self._tasks[cid] then self:start_task(c) end
  end
  local sum = job.arrayProperties.statusSummary
  local ev = event_of(job, "_child_ev")
  while (sum.SUCCEEDED or 0) + (sum.FAILED or 0) < size do
    ev:wait()
    ev:clear()
  end
  if (sum.FAILED or 0) > 0 then return self:finish(job, "FAILED", job._cancel or M.ARRAY_REASON) end
  return self:finish(job, "SUCCEEDED", nil)
end

--- Add the life-cycle methods to the service class.
function M.install(cls)
  for k, f in pairs(Jobs) do cls[k] = f end
end

return M
