-- busted output handler: the usual terminal output, then one last line
-- "N passed, N failed" that make test and .ci/run read. Errors count as
-- failures; pending tests are reported by the terminal handler only.
return function(options)
  local busted = require 'busted'
  local inner = require('busted.outputHandlers.utfTerminal')(options)
  busted.subscribe({ 'suite', 'end' }, function()
    io.write(string.format('\n%d passed, %d failed\n', inner.successesCount,
      inner.failuresCount + inner.errorsCount))
    io.flush()
    return nil, true
  end)
  return inner
end
