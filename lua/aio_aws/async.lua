--- Tasks and concurrency primitives on top of the C runtime.
--
-- A task is a coroutine owned by the loop (`spawn`). Functions that wait
-- (`sleep`, `http.request`, `Semaphore:acquire`, `Task:wait`, ...) may only
-- be called from inside a task; elsewhere they raise. Waiting yields a
-- private sentinel to the C dispatcher, which resumes the task when what it
-- waits for has happened. Do not wrap task code in your own
-- `coroutine.wrap`: a wait inside it would yield to you, not to the loop.
--
-- Errors: misuse raises; runtime failures return `nil, err` (aio_aws.errors).
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"

local SENTINEL = core.SENTINEL
local c_spawn, c_wake, c_interrupt, c_sleep = core.spawn, core.wake, core.interrupt, core.sleep
local yield, running = coroutine.yield, coroutine.running
local pack, unpack = table.pack, table.unpack
local traceback = debug.traceback

local M = {}

local by_thread = setmetatable({}, { __mode = "k" }) -- coroutine -> Task
local by_token = setmetatable({}, { __mode = "k" })  -- C task userdata -> Task
local unobserved = {}                                -- failed tasks nobody looked at

local Task = {}
Task.__index = Task
Task.__name = "aio_aws.Task"

local WOKEN = setmetatable({}, { __tostring = function() return "WOKEN" end })

local function current()
  local co, main = running()
  if main then return nil end
  return by_thread[co]
end
M.current = current

local function need_task(what, level)
  local t = current()
  if not t then
    error("aio_aws: " .. what .. " must be called inside a task (use aws.run or aws.spawn)",
      (level or 2) + 1)
  end
  return t
end
M.need_task = need_task

local function after_suspend(t, ...)
  t._waiting = nil
  if t._cancel then
    t._cancel = nil
    error(errors.new("Cancelled", "task was cancelled"), 0)
  end
  return ...
end

--- Suspend task `t` until something wakes it. `waitable:cancel()` is called
-- if the task is cancelled meanwhile. Returns what the waker passed.
local function suspend(t, waitable)
  t._waiting = waitable
  return after_suspend(t, yield(SENTINEL))
end
M.suspend = suspend

local function is_cancelled_error(e)
  return errors.is(e) and e.code == "Cancelled"
end

local function finish(t, state, payload)
  t.state = state
  if state == "done" then
    t.results = payload
  else
    t.error = payload
    if state == "failed" then unobserved[t] = true end
  end
  local waiters = t._waiters
  t._waiters = nil
  if waiters then
    for i = 1, #waiters do c_wake(waiters[i].token, WOKEN) end
  end
end

local function on_error(e)
  if is_cancelled_error(e) then return e end
  local tb = traceback(nil, 2)
  if errors.is(e) then
    if not e.traceback then e.traceback = tb end
    return e
  end
  local msg = type(e) == "string" and e or tostring(e)
  return errors.new("TaskError", msg, { value = e, traceback = tb })
end

local function task_main(t, fn, ...)
  by_thread[running()] = t
  if t._cancel then
    t._cancel = nil
    return finish(t, "cancelled", errors.new("Cancelled", "task was cancelled"))
  end
  local res = pack(xpcall(fn, on_error, ...))
  if res[1] then
    res.n = res.n - 1
    table.remove(res, 1)
    return finish(t, "done", res)
  end
  local e = res[2]
  return finish(t, is_cancelled_error(e) and "cancelled" or "failed", e)
end

-- A task that dies outside task_main (a foreign yield): the C side calls
-- this with its traceback.
core.set_task_error_handler(function(token, tb)
  local t = by_token[token]
  if t and t.state == "pending" then
    finish(t, "failed", errors.new("TaskError", tb:match("^[^\n]*"), { traceback = tb }))
  end
end)

--- Start `fn(...)` as a new task; it first runs at the loop's next turn.
-- @treturn Task
function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("aio_aws.spawn: expected a function, got " .. type(fn), 2)
  end
  local t = setmetatable({ state = "pending" }, Task)
  t.token = c_spawn(task_main, t, fn, ...)
  by_token[t.token] = t
  return t
end

function Task:done()
  return self.state ~= "pending"
end

--- Cancel the task: it gets a "Cancelled" error at the wait it is in (or
-- before it starts), so its `<close>` variables and handlers run.
-- @treturn boolean false if it had already finished
function Task:cancel()
  if self.state ~= "pending" then return false end
  self._cancel = true
  if self ~= current() then
    local w = self._waiting
    if w then w:cancel() end
    c_interrupt(self.token, nil, "Cancelled")
  end
  return true
end

local function results_of(t)
  unobserved[t] = nil
  if t.state == "done" then return unpack(t.results, 1, t.results.n) end
  return nil, t.error
end

--- Wait until the task finishes. Returns its results, or `nil, err` if it
-- failed or was cancelled, or `nil, err` with code "Timeout".
function Task:wait(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("Task:wait: timeout must be a number >= 0", 2)
  end
  if self.state == "pending" then
    local me = need_task("Task:wait")
    if me == self then error("Task:wait: a task cannot wait for itself", 2) end
    local waiters = self._waiters
    if not waiters then waiters = {}; self._waiters = waiters end
    waiters[#waiters + 1] = me
    local timer = timeout and c_sleep(me.token, timeout) or nil
    local function unlink()
      for i = #waiters, 1, -1 do
        if waiters[i] == me then table.remove(waiters, i) end
      end
    end
    local ok, why = pcall(suspend, me, {
      cancel = function() unlink(); if timer then timer:cancel() end end,
    })
    if timer then timer:cancel() end
    if not ok then unlink(); error(why, 0) end
    if why ~= WOKEN then
      unlink()
      return nil, errors.new("Timeout", ("task did not finish within %g s"):format(timeout),
        { retryable = true })
    end
  end
  return results_of(self)
end

function Task:__tostring()
  return "aio_aws.Task (" .. self.state .. ")"
end

--- Suspend the current task for `seconds`.
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    error("aio_aws.sleep: seconds must be a number >= 0", 2)
  end
  local t = need_task("sleep")
  local timer = c_sleep(t.token, seconds)
  suspend(t, timer)
end

--- Wait for several tasks (or functions, spawned here) and return their
-- results in order: `results[i]` is the first value task i returned, and
-- `errs` is nil when all succeeded, else `errs[i]` is task i's error.
-- An error in one task does not stop the others.
function M.gather(...)
  local n = select("#", ...)
  need_task("gather")
  local tasks = {}
  for i = 1, n do
    local v = select(i, ...)
    if type(v) == "function" then
      tasks[i] = M.spawn(v)
    elseif getmetatable(v) == Task then
      tasks[i] = v
    else
      error(("aio_aws.gather: argument %d must be a task or a function, got %s"):format(i, type(v)), 2)
    end
  end
  local results, errs = { n = n }, nil
  for i = 1, n do
    local r, e = tasks[i]:wait()
    if tasks[i].state == "done" then
      results[i] = r
    else
      errs = errs or {}
      errs[i] = e
    end
  end
  return results, errs
end

--- Run `fn(...)` in a child task and give it `seconds` to finish. Returns
-- fn's results, or `nil, err` (code "Timeout" after cancelling the child
-- and waiting for its clean-up, or fn's own error).
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 then
    error("aio_aws.timeout: seconds must be a number >= 0", 2)
  end
  if type(fn) ~= "function" then error("aio_aws.timeout: expected a function", 2) end
  need_task("timeout")
  local child = M.spawn(fn, ...)
  local res = pack(child:wait(seconds))
  if child.state == "pending" then
    child:cancel()
    child:wait()
    unobserved[child] = nil
    return nil, res[2]
  end
  return unpack(res, 1, res.n)
end

--- Run `fn(...)` as the main task and drive the loop until it and every
-- task spawned meanwhile have finished. Returns fn's results, or `nil, err`
-- if it raised (err.traceback holds the traceback).
function M.run(fn, ...)
  if type(fn) ~= "function" then error("aio_aws.run: expected a function, got " .. type(fn), 2) end
  if current() then error("aio_aws.run: already inside a task (use aws.spawn)", 2) end
  local main = M.spawn(fn, ...)
  local ok, err = core.run()
  if not ok then
    if err == "loop already running" then error("aio_aws.run: loop already running", 2) end
    if main.state == "pending" then
      return nil, errors.new(err:match("^deadlock") and "Deadlock" or "TaskError", err)
    end
  end
  for t in pairs(unobserved) do
    if t ~= main then
      io.stderr:write("aio_aws: error in a task nobody waited for: ", tostring(t.error), "\n")
    end
    unobserved[t] = nil
  end
  return results_of(main)
end

--- Counting semaphore. Waiters are served first come, first served.
local Semaphore = {}
Semaphore.__index = Semaphore
Semaphore.__name = "aio_aws.Semaphore"

function M.Semaphore(n)
  if math.type(n) ~= "integer" or n < 0 then
    error("aio_aws.Semaphore: expected an integer >= 0", 2)
  end
  return setmetatable({ value = n, _waiters = {} }, Semaphore)
end

--- Take a permit, waiting up to `timeout` seconds (nil: forever).
-- @treturn boolean|nil true, or nil, err (code "Timeout")
function Semaphore:acquire(timeout)
  if self.value > 0 and #self._waiters == 0 then
    self.value = self.value - 1
    return true
  end
  local me = need_task("Semaphore:acquire")
  local entry = { task = me }
  local q = self._waiters
  q[#q + 1] = entry
  local timer = timeout and c_sleep(me.token, timeout) or nil
  local function unlink()
    for i = 1, #q do
      if q[i] == entry then table.remove(q, i); return end
    end
  end
  local ok, why = pcall(suspend, me, {
    cancel = function() unlink(); if timer then timer:cancel() end end,
  })
  if timer then timer:cancel() end
  if entry.granted then
    if not ok then self:release() ; error(why, 0) end
    return true
  end
  unlink()
  if not ok then error(why, 0) end
  return nil, errors.new("Timeout", "semaphore not acquired in time", { retryable = true })
end

--- Give a permit back (to the first waiter, if any).
function Semaphore:release()
  local q = self._waiters
  while #q > 0 do
    local entry = table.remove(q, 1)
    entry.granted = true
    if c_wake(entry.task.token, WOKEN) then return end
    entry.granted = nil
  end
  self.value = self.value + 1
end

--- Run `fn(...)` holding a permit; the permit is released even if it raises.
function Semaphore:with(fn, ...)
  local ok, err = self:acquire()
  if not ok then return nil, err end
  local res = pack(pcall(fn, ...))
  self:release()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- FIFO queue between tasks; `maxsize` 0 or nil means unbounded.
local Queue = {}
Queue.__index = Queue
Queue.__name = "aio_aws.Queue"

function M.Queue(maxsize)
  maxsize = maxsize or 0
  if math.type(maxsize) ~= "integer" or maxsize < 0 then
    error("aio_aws.Queue: maxsize must be an integer >= 0", 2)
  end
  return setmetatable({ maxsize = maxsize, _items = {}, _head = 1, _tail = 0,
    _getters = {}, _putters = {} }, Queue)
end

function Queue:size() return self._tail - self._head + 1 end
function Queue:empty() return self:size() == 0 end
function Queue:full() return self.maxsize > 0 and self:size() >= self.maxsize end

local function wake_first(list)
  while #list > 0 do
    local entry = table.remove(list, 1)
    if c_wake(entry.task.token, WOKEN) then return true end
  end
  return false
end

local function queue_wait(self, list, what, timeout)
  local me = need_task(what, 3)
  local entry = { task = me }
  list[#list + 1] = entry
  local timer = timeout and c_sleep(me.token, timeout) or nil
  local function unlink()
    for i = 1, #list do
      if list[i] == entry then table.remove(list, i); return end
    end
  end
  local ok, why = pcall(suspend, me, {
    cancel = function() unlink(); if timer then timer:cancel() end end,
  })
  if timer then timer:cancel() end
  unlink()
  if not ok then error(why, 0) end
  return why == WOKEN
end

--- Add `v` (not nil), waiting up to `timeout` while the queue is full.
function Queue:put(v, timeout)
  if v == nil then error("Queue:put: value must not be nil", 2) end
  local deadline = timeout and core.monotime() + timeout
  while self:full() do
    local left = deadline and math.max(0, deadline - core.monotime())
    if deadline and left <= 0 then
      return nil, errors.new("Timeout", "queue full", { retryable = true })
    end
    queue_wait(self, self._putters, "Queue:put", left)
  end
  self._tail = self._tail + 1
  self._items[self._tail] = v
  wake_first(self._getters)
  return true
end

function Queue:put_nowait(v)
  if v == nil then error("Queue:put_nowait: value must not be nil", 2) end
  if self:full() then return nil, errors.new("QueueFull", "queue full") end
  self._tail = self._tail + 1
  self._items[self._tail] = v
  wake_first(self._getters)
  return true
end

--- Take the oldest item, waiting up to `timeout` while the queue is empty.
function Queue:get(timeout)
  local deadline = timeout and core.monotime() + timeout
  while self:empty() do
    local left = deadline and math.max(0, deadline - core.monotime())
    if deadline and left <= 0 then
      return nil, errors.new("Timeout", "queue empty", { retryable = true })
    end
    queue_wait(self, self._getters, "Queue:get", left)
  end
  local v = self._items[self._head]
  self._items[self._head] = nil
  self._head = self._head + 1
  wake_first(self._putters)
  -- another getter may be waiting while items remain
  if not self:empty() then wake_first(self._getters) end
  return v
end

function Queue:get_nowait()
  if self:empty() then return nil, errors.new("QueueEmpty", "queue empty") end
  local v = self._items[self._head]
  self._items[self._head] = nil
  self._head = self._head + 1
  wake_first(self._putters)
  return v
end

--- A flag tasks can wait for.
local Event = {}
Event.__index = Event
Event.__name = "aio_aws.Event"

function M.Event() return setmetatable({ _set = false, _waiters = {} }, Event) end
function Event:is_set() return self._set end
function Event:clear() self._set = false end
function Event:set()
  self._set = true
  local list = self._waiters
  self._waiters = {}
  for i = 1, #list do c_wake(list[i].task.token, WOKEN) end
end
--- Wait until set; `true`, or `nil, err` (code "Timeout").
function Event:wait(timeout)
  if self._set then return true end
  if queue_wait(self, self._waiters, "Event:wait", timeout) or self._set then return true end
  return nil, errors.new("Timeout", "event not set in time", { retryable = true })
end

M.Task = Task
return M
