--- The `ec2` protocol (aws.protocols#ec2Query): the query protocol with
-- EC2's naming (queryName, capitalised names), lists that are always
-- flattened, no result wrapper and `<Response><Errors>` errors.
-- Spec: https://smithy.io/2.0/aws/protocols/aws-ec2-query-protocol.html
-- The shared code lives in protocol/query.lua (variant "ec2").
local query = require "aio_aws.protocol.query"

local M = {}

function M.build(svc, op, params)
  return query.build(svc, op, params, "ec2")
end

function M.parse(svc, op, response)
  return query.parse(svc, op, response, "ec2")
end

return M
