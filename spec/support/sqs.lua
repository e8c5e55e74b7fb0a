--- A throwaway SQS server: local-aws-sqs (npm, pinned in package.json) on
-- loopback, in memory.
--
--   local sqs = require "support.sqs"
--   local q = sqs.start{ queues = { "jobs" } }  -- raises, with the log's tail, on failure
--   -- q.endpoint == "http://127.0.0.1:PORT", q.port, q.region, q.account_id,
--   -- q:queue_url("jobs") == "http://127.0.0.1:PORT/123456789012/jobs"
--   q:stop()                                   -- in teardown()/finally(), see support/proc.lua
--
-- Options (all optional):
--   queues      list of queues created at start: names, or CreateQueue
--               inputs ({ QueueName = "q.fifo", Attributes = { FifoQueue = "true" } })
--   region      shown in queue ARNs (default "us-east-1")
--   account_id  in queue URLs and ARNs (default "123456789012")
--   lifecycle   true: emulate AWS's "wait 60 s before re-creating a deleted
--               queue" (default false, so specs can reuse names)
--   lazy        true: emulate "wait 1 s before using a new queue" (default false)
--   timeout     seconds to wait for it to answer (default 20)
-- The server object is support.node_server's (fields endpoint, port, pid,
-- dir, log, proc; methods url, log_tail, stop) plus the fields above.
--
-- How it runs: local-aws-sqs is a library without a command line:
-- `node -e LAUNCHER node_modules/local-aws-sqs OPTIONS-JSON` calls
-- createSqsServer({ port: 0, hostname: '127.0.0.1', ... }) and prints the port.
-- Everything is in memory.
--
-- Protocols (both checked by spec/npm_servers_spec.lua with Debian's boto3
-- 1.26, once as it is (query) and once with SQS's JSON 1.0 model):
-- * AWS JSON 1.0, what current botocore and AWS SDKs send: POST
--   with `X-Amz-Target: AmazonSQS.<Action>` and `Content-Type:
--   application/x-amz-json-1.0` (exactly: application/json is taken for a
--   query request); answers JSON; errors as {"__type":
--   "com.amazonaws.sqs#QueueDoesNotExist", "message": ...} plus the header
--   `x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender`.
-- * AWS query: form posts `Action=SendMessage&Version=2012-11-05&...`
--   (application/x-www-form-urlencoded); answers XML in the
--   http://queue.amazonaws.com/doc/2012-11-05/ namespace (indented, so
--   whitespace-only text between elements), errors as <ErrorResponse>.
-- * Any credentials work: signatures are not checked.
-- * Works in both: CreateQueue (with attributes), ListQueues, GetQueueUrl,
--   DeleteQueue, GetQueueAttributes, SendMessage (right MD5OfMessageBody,
--   message attributes), SendMessageBatch, ReceiveMessage (attributes,
--   message attributes), DeleteMessage, the NonExistentQueue error.
-- * Gaps (query): Action must be in the POST body (a GET with
--   ?Action=... answers UnsupportedOperation "must include Action
--   parameter"), and the queue is taken only from the QueueUrl parameter:
--   a post to the queue URL's path without it answers NonExistentQueue
--   (SQS accepts both). botocore posts to / with QueueUrl, so it is fine.
-- * A QueueUrl is matched by the queue name alone: its host, port and
--   account id are ignored.
-- * A sent message becomes visible on a timer (setTimeout 0) just after
--   SendMessage answers, so an immediate GetQueueAttributes may count it not
--   yet (ApproximateNumberOfMessages is approximate in SQS too: poll);
--   ReceiveMessage polls, so it does find it.
local cjson = require "cjson"
local node_server = require "support.node_server"

local M = {}

local LAUNCHER = [[
const { createSqsServer } = require(process.argv[1]);
createSqsServer(JSON.parse(process.argv[2])).then((server) => {
  server.on('error', (e) => { console.error(e); process.exit(1); });
  console.log('local-aws-sqs listening on 127.0.0.1:' + server.address().port);
}, (e) => { console.error(e); process.exit(1); });
]]

local function queue_url(self, name)
  return ("%s/%s/%s"):format(self.endpoint, self.account_id, name)
end

function M.start(opts)
  opts = opts or {}
  local module_dir = node_server.package_file("local-aws-sqs", "dist/index.js"):match("^(.*)/dist/")
  local region, account_id = opts.region or "us-east-1", opts.account_id or "123456789012"
  local queues = setmetatable({}, cjson.array_mt)
  for i, q in ipairs(opts.queues or {}) do
    queues[i] = type(q) == "string" and { QueueName = q } or q
  end
  local o = { port = 0, hostname = "127.0.0.1", region = region, accountId = account_id,
    emulateQueueCreationLifecycle = opts.lifecycle == true, emulateLazyQueues = opts.lazy == true,
    queues = queues }
  return node_server.start{
    name = "local-aws-sqs",
    argv = { "-e", LAUNCHER, module_dir, cjson.encode(o) },
    ready = "local%-aws%-sqs listening on 127%.0%.0%.1:(%d+)",
    timeout = opts.timeout,
    fields = { region = region, account_id = account_id, queue_url = queue_url },
  }
end

return M
