-- The task runtime: aio_aws.run/spawn/gather/sleep/timeout, Semaphore,
-- Queue, Event, cancellation, error isolation, and the C driver's rules
-- (STYLE.md s5): foreign yields, re-entrancy, GC inside completions.
local aws = require "aio_aws"
local core = require "aio_aws.core"

-- Nothing may be left behind by a spec: no live task, timer or transfer.
local function assert_quiet()
  local s = core.stats()
  assert.are.same({ tasks = 0, timers = 0, in_flight = 0, ready = 0 },
    { tasks = s.tasks, timers = s.timers, in_flight = s.in_flight, ready = s.ready })
end

describe("runtime", function()
  after_each(function()
    collectgarbage()
    assert_quiet()
  end)

  it("run returns the function's results", function()
    local a, b, c = aws.run(function(x, y) return x + y, "two", nil end, 40, 2)
    assert.are.equal(42, a)
    assert.are.equal("two", b)
    assert.is_nil(c)
  end)

  it("run returns nil, err with a traceback when the function raises", function()
    local r, err = aws.run(function() error("kaboom") end)
    assert.is_nil(r)
    assert.are.equal("TaskError", err.code)
    assert.matches("kaboom", err.message)
    assert.matches("traceback", err.traceback)
    assert.matches("kaboom", tostring(err))
  end)

  it("run keeps error objects raised by the function", function()
    local e = aws.errors.new("Custom", "mine")
    local _, err = aws.run(function() error(e) end)
    assert.are.equal(e, err)
  end)

  it("run waits for tasks spawned and not awaited", function()
    local done = {}
    aws.run(function()
      for i = 1, 5 do
        aws.spawn(function() aws.sleep(0.01 * i); done[#done + 1] = i end)
      end
    end)
    assert.are.same({ 1, 2, 3, 4, 5 }, done)
  end)

  it("waiting functions raise outside a task", function()
    assert.has_error(function() aws.sleep(0) end,
      "aio_aws: sleep must be called inside a task (use aws.run or aws.spawn)")
    assert.has_error(function() aws.Semaphore(0):acquire() end)
    assert.has_error(function() aws.Queue():get() end)
    assert.has_error(function() aws.gather(function() end) end)
  end)

  it("rejects wrong argument types", function()
    assert.has_error(function() aws.run(42) end)
    assert.has_error(function() aws.spawn("x") end)
    assert.has_error(function() aws.Semaphore(-1) end)
    assert.has_error(function() aws.Semaphore(1.5) end)
    assert.has_error(function() aws.Queue("big") end)
    aws.run(function()
      assert.has_error(function() aws.sleep(-1) end)
      assert.has_error(function() aws.sleep("1") end)
      assert.has_error(function() aws.sleep(0 / 0) end)
      assert.has_error(function() aws.gather(1) end)
      assert.has_error(function() aws.timeout("1", function() end) end)
    end)
  end)

  it("run is not re-entrant from inside a task", function()
    aws.run(function()
      assert.has_error(function() aws.run(function() end) end)
      local ok, err = core.run()
      assert.is_nil(ok)
      assert.are.equal("loop already running", err)
    end)
  end)

  it("sleep waits at least the given time, concurrently across tasks", function()
    local t0 = core.monotime()
    aws.run(function()
      aws.gather(function() aws.sleep(0.2) end, function() aws.sleep(0.2) end,
        function() aws.sleep(0.2) end)
    end)
    local dt = core.monotime() - t0
    assert.is_true(dt >= 0.2, "slept " .. dt)
  end)

  it("gather returns results in argument order, not completion order", function()
    local order = {}
    local results, errs = aws.run(function()
      return aws.gather(
        function() aws.sleep(0.06); order[#order + 1] = 1; return "a" end,
        function() aws.sleep(0.02); order[#order + 1] = 2; return "b" end,
        function() order[#order + 1] = 3; return "c" end)
    end)
    assert.are.same({ "a", "b", "c", n = 3 }, results)
    assert.is_nil(errs)
    assert.are.same({ 3, 2, 1 }, order)
  end)

  it("an error in one task leaves the others running and is reported in place", function()
    local finished = false
    local results, errs = aws.run(function()
      return aws.gather(
        function() aws.sleep(0.05); finished = true; return "late" end,
        function() error("first fails") end,
        aws.spawn(function() return "ok" end))
    end)
    assert.is_true(finished)
    assert.are.equal("late", results[1])
    assert.is_nil(results[2])
    assert.are.equal("ok", results[3])
    assert.matches("first fails", errs[2].message)
    assert.is_nil(errs[1])
  end)

  it("nested spawns run and finish", function()
    local depth = 0
    local function nest(n)
      if n == 0 then return 0 end
      local t = aws.spawn(nest, n - 1)
      local v = t:wait()
      depth = math.max(depth, n)
      return v + 1
    end
    assert.are.equal(50, aws.run(nest, 50))
    assert.are.equal(50, depth)
  end)

  it("cancel raises Cancelled at the wait and runs <close> variables", function()
    local closed, after = false, false
    local st, err = aws.run(function()
      local t = aws.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        aws.sleep(10)
        after = true
      end)
      aws.sleep(0.01)
      assert.is_true(t:cancel())
      local r, e = t:wait()
      return r, e, t.state
    end)
    assert.is_nil(st)
    assert.are.equal("Cancelled", err.code)
    assert.is_true(closed)
    assert.is_false(after)
  end)

  it("cancel before the first resume means the function never runs", function()
    local ran = false
    aws.run(function()
      local t = aws.spawn(function() ran = true end)
      t:cancel()
      local _, e = t:wait()
      assert.are.equal("Cancelled", e.code)
    end)
    assert.is_false(ran)
  end)

  it("cancel of a finished task returns false", function()
    aws.run(function()
      local t = aws.spawn(function() return 1 end)
      assert.are.equal(1, t:wait())
      assert.is_false(t:cancel())
    end)
  end)

  it("a task that raises with a <close> variable closes it and others go on", function()
    local closed, other = nil, false
    local _, errs = aws.run(function()
      return aws.gather(function()
        local _ <close> = setmetatable({}, { __close = function(_, e) closed = e end })
        aws.sleep(0.01)
        error("inner")
      end, function() aws.sleep(0.03); other = true end)
    end)
    assert.matches("inner", tostring(closed))
    assert.is_true(other)
    assert.matches("inner", errs[1].message)
  end)

  it("timeout cancels a slow function and waits for its clean-up", function()
    local cleaned = false
    local r, err = aws.run(function()
      return aws.timeout(0.05, function()
        local _ <close> = setmetatable({}, { __close = function() cleaned = true end })
        aws.sleep(5)
        return "never"
      end)
    end)
    assert.is_nil(r)
    assert.are.equal("Timeout", err.code)
    assert.is_true(cleaned)
  end)

  it("timeout returns the function's results when it is fast enough", function()
    local a, b = aws.run(function()
      return aws.timeout(1, function(x) aws.sleep(0.01); return x, "y" end, "x")
    end)
    assert.are.equal("x", a)
    assert.are.equal("y", b)
  end)

  it("timeout reports the function's own error", function()
    local r, err = aws.run(function()
      return aws.timeout(1, function() error("own") end)
    end)
    assert.is_nil(r)
    assert.matches("own", err.message)
  end)

  it("Task:wait with a timeout gives Timeout and leaves the task running", function()
    aws.run(function()
      local t = aws.spawn(function() aws.sleep(0.1); return "done" end)
      local r, e = t:wait(0.01)
      assert.is_nil(r)
      assert.are.equal("Timeout", e.code)
      assert.is_false(t:done())
      assert.are.equal("done", t:wait())
    end)
  end)

  it("a Semaphore bounds concurrency and serves waiters in order", function()
    local sem = aws.Semaphore(3)
    local cur, max, order = 0, 0, {}
    aws.run(function()
      local ts = {}
      for i = 1, 20 do
        ts[i] = aws.spawn(function()
          sem:with(function()
            cur = cur + 1
            max = math.max(max, cur)
            order[#order + 1] = i
            aws.sleep(0.005)
            cur = cur - 1
          end)
        end)
      end
      aws.gather(table.unpack(ts))
    end)
    assert.are.equal(3, max)
    local expect = {}
    for i = 1, 20 do expect[i] = i end
    assert.are.same(expect, order)
    assert.are.equal(3, sem.value)
  end)

  it("Semaphore:acquire times out and the permit is not lost", function()
    local sem = aws.Semaphore(1)
    aws.run(function()
      assert.is_true(sem:acquire())
      local ok, err = sem:acquire(0.02)
      assert.is_nil(ok)
      assert.are.equal("Timeout", err.code)
      sem:release()
      assert.is_true(sem:acquire(0.02))
      sem:release()
    end)
    assert.are.equal(1, sem.value)
  end)

  it("Semaphore:with releases when the function raises", function()
    local sem = aws.Semaphore(1)
    aws.run(function()
      assert.has_error(function() sem:with(function() error("x") end) end)
    end)
    assert.are.equal(1, sem.value)
  end)

  it("a Queue is FIFO, bounded, and wakes producers and consumers", function()
    local got = {}
    aws.run(function()
      local q = aws.Queue(2)
      local maxsize = 0
      local prod = aws.spawn(function()
        for i = 1, 10 do
          q:put(i)
          maxsize = math.max(maxsize, q:size())
        end
      end)
      for _ = 1, 10 do got[#got + 1] = q:get() end
      prod:wait()
      assert.is_true(maxsize <= 2)
      local v, e = q:get(0.01)
      assert.is_nil(v)
      assert.are.equal("Timeout", e.code)
      assert.are.equal("QueueEmpty", select(2, q:get_nowait()).code)
      assert.is_true(q:put_nowait("a"))
      assert.is_true(q:put_nowait("b"))
      assert.are.equal("QueueFull", select(2, q:put_nowait("c")).code)
      assert.has_error(function() q:put(nil) end)
    end)
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
  end)

  it("Queue getters are served in order", function()
    local got = {}
    aws.run(function()
      local q = aws.Queue()
      local ts = {}
      for i = 1, 5 do ts[i] = aws.spawn(function() got[i] = q:get() end) end
      aws.sleep(0.01)
      for i = 1, 5 do q:put(i * 10) end
      aws.gather(table.unpack(ts))
    end)
    assert.are.same({ 10, 20, 30, 40, 50 }, got)
  end)

  it("an Event wakes every waiter", function()
    local woke = 0
    aws.run(function()
      local ev = aws.Event()
      local ts = {}
      for i = 1, 4 do ts[i] = aws.spawn(function() assert.is_true(ev:wait()); woke = woke + 1 end) end
      aws.sleep(0.01)
      assert.are.equal(0, woke)
      ev:set()
      aws.gather(table.unpack(ts))
      local r, e = aws.Event():wait(0.01)
      assert.is_nil(r)
      assert.are.equal("Timeout", e.code)
    end)
    assert.are.equal(4, woke)
  end)

  it("a deadlock is reported instead of hanging, and a later run can finish it", function()
    local q = aws.Queue()
    local got
    local r, err = aws.run(function() got = q:get() end)
    assert.is_nil(r)
    assert.are.equal("Deadlock", err.code)
    assert.are.equal(1, core.stats().tasks)
    aws.run(function() q:put("late") end)
    assert.are.equal("late", got)
  end)

  it("a coroutine.yield inside a task fails that task only, with its <close> run", function()
    local closed = false
    local results, errs = aws.run(function()
      return aws.gather(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        coroutine.yield("foreign")
      end, function() aws.sleep(0.01); return "other" end)
    end)
    assert.is_true(closed)
    assert.are.equal("other", results[2])
    assert.matches("yielded outside an aio_aws wait", errs[1].message)
  end)

  it("collectgarbage inside completions does not disturb waiting tasks", function()
    local sum = 0
    aws.run(function()
      local ts = {}
      for i = 1, 200 do
        ts[i] = aws.spawn(function()
          aws.sleep((i % 7) * 0.001)
          collectgarbage()
          sum = sum + i
        end)
      end
      collectgarbage()
      aws.gather(table.unpack(ts))
    end)
    assert.are.equal(200 * 201 / 2, sum)
  end)

  it("the loop can be driven step by step by a host (pollfd, timeout, step)", function()
    local fd = core.pollfd()
    assert.is_true(math.type(fd) == "integer" and fd >= 0)
    local done = false
    local t = aws.spawn(function() aws.sleep(0.05); done = true end)
    -- ready task: the host must not wait
    assert.are.equal(0, core.timeout())
    assert.is_true(core.step(0))
    -- now the task sleeps: the deadline is the timer's
    local to = core.timeout()
    assert.is_true(to > 0 and to <= 0.05 + 1e-6, "timeout " .. tostring(to))
    local steps = 0
    while not done and steps < 1000 do
      assert.is_true(core.step(core.timeout() or 1))
      steps = steps + 1
    end
    assert.is_true(done)
    assert.is_true(t:done())
    assert.is_nil(core.timeout())
  end)
end)

describe("runtime created inside a coroutine", function()
  -- luv's test-coroutines-require: the module is loaded and the runtime
  -- created inside a coroutine that is then abandoned and collected; the
  -- main thread must still drive everything (the runtime keeps the main
  -- thread, never the creating coroutine). Own process: fresh module state.
  it("keeps working from the main thread after that coroutine is gone", function()
    local proc = require "support.proc"
    local script = [[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = (os.getenv("AIO_AWS_CPATH") or "") .. ";lua/?.so;" .. package.cpath
      local co = coroutine.create(function()
        local aws = require "aio_aws"
        require("aio_aws.core").stats()      -- creates the runtime here
        coroutine.yield(aws)
        error("never resumed")
      end)
      local _, aws = coroutine.resume(co)
      co = nil
      collectgarbage(); collectgarbage()
      local r = aws.run(function()
        local t = aws.spawn(function() aws.sleep(0.01); collectgarbage(); return 21 end)
        return t:wait() * 2
      end)
      io.write(tostring(r))
    ]]
    assert.are.equal("42", proc.sh("lua5.4 -e " .. proc.quote(script) .. " 2>&1"))
  end)
end)
