-- Spins in pure Lua for event.seconds of CPU time, with a 1 second timeout.
return {
  timeout = 1,
  handler = function(event)
    local stop = os.clock() + (event.seconds or 0)
    local n = 0
    while os.clock() < stop do n = n + 1 end
    return n > 0
  end,
}
