--- A throwaway DynamoDB server: dynalite (npm, pinned in package.json) on
-- loopback, in memory.
--
--   local dynalite = require "support.dynalite"
--   local ddb = dynalite.start{ create_table_ms = 0 }  -- raises, with the log's tail, on failure
--   -- ddb.endpoint == "http://127.0.0.1:PORT", ddb.port, ddb.region
--   ddb:stop()                                        -- in teardown()/finally(), see support/proc.lua
--
-- Options (all optional):
--   create_table_ms, delete_table_ms, update_table_ms
--             how long tables stay CREATING / DELETING / UPDATING
--             (dynalite's default 500; 0 makes them ACTIVE/gone at once)
--   max_item_size_kb  (default 400)
--   persist   true: store in LevelDB under the temp dir instead of memory
--   timeout   seconds to wait for it to answer (default 20)
-- The server object is support.node_server's (fields endpoint, port, pid,
-- dir, log, proc; methods url, log_tail, stop) plus `region`.
--
-- How it runs: `node -e LAUNCHER node_modules/dynalite OPTIONS-JSON`, which
-- calls require('dynalite')(options).listen(0, '127.0.0.1') and prints the
-- port (dynalite's CLI cannot listen on port 0: `--port 0` means 4567). Its
-- store is memory-level unless `persist`. dynalite loads its LevelDB binding
-- (classic-level) even in memory; the package ships prebuilt binaries for
-- linux x64/arm/arm64, so nothing is compiled (make deps runs npm with
-- --ignore-scripts).
--
-- Things a client spec must know (checked by spec/npm_servers_spec.lua with
-- Debian's boto3 1.26, dynalite 4.0.0 on Node 20 and Debian's Node 18):
-- * Any credentials and region work: signatures are not checked (a missing
--   or malformed Authorization header is refused, like DynamoDB does).
-- * JSON protocol 1.0 (`X-Amz-Target: DynamoDB_20120810.<Op>`,
--   application/x-amz-json-1.0); responses carry `x-amz-crc32`, as DynamoDB.
-- * Operations: BatchGetItem, BatchWriteItem, CreateTable, DeleteItem,
--   DeleteTable, DescribeTable, DescribeTimeToLive, GetItem, ListTables,
--   PutItem, Query, Scan, TagResource, UntagResource, ListTagsOfResource,
--   UpdateItem, UpdateTable. Anything else (TransactWriteItems,
--   TransactGetItems, ExecuteStatement/PartiQL, UpdateTimeToLive,
--   DescribeEndpoints, backups, streams...) answers 400
--   UnknownOperationException.
-- * Works: CreateTable (CREATING, then ACTIVE: wait with DescribeTable /
--   the table_exists waiter), ListTables, DescribeTable, DeleteTable,
--   Put/Get/UpdateItem with every attribute type and expressions,
--   ConditionalCheckFailedException, BatchWriteItem of 25 (26: 400
--   ValidationException), Query with Limit / ScanIndexForward /
--   LastEvaluatedKey, Scan with Select COUNT, ResourceNotFoundException.
-- * DescribeTable's ItemCount stays 0 (DynamoDB itself refreshes it only
--   about every six hours); table ARNs use account 000000000000.
local cjson = require "cjson"
local node_server = require "support.node_server"

local M = {}

local LAUNCHER = [[
const dynalite = require(process.argv[1]);
const server = dynalite(JSON.parse(process.argv[2]));
server.on('error', (e) => { console.error(e); process.exit(1); });
server.listen(0, '127.0.0.1', () => {
  console.log('dynalite listening on 127.0.0.1:' + server.address().port);
});
]]

function M.start(opts)
  opts = opts or {}
  local module_dir = node_server.package_file("dynalite", "index.js"):match("^(.*)/")
  return node_server.start{
    name = "dynalite",
    argv = function(dir)
      local o = { createTableMs = opts.create_table_ms, deleteTableMs = opts.delete_table_ms,
        updateTableMs = opts.update_table_ms, maxItemSizeKb = opts.max_item_size_kb,
        path = opts.persist and (dir .. "/db") or nil }
      return { "-e", LAUNCHER, module_dir, next(o) and cjson.encode(o) or "{}" }
    end,
    ready = "dynalite listening on 127%.0%.0%.1:(%d+)",
    timeout = opts.timeout,
    fields = { region = "us-east-1" },
  }
end

return M
