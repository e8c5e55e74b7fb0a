"""Lambda through aio-aws local with Debian's boto3.

Run by spec/interop_spec.lua with AIO_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and AIO_FUNCTIONS_DIR (the
handlers in spec/interop/functions). Expectations come from the Lambda API
reference (Invoke, GetFunction, ListFunctions) and the Lambda log format.
Prints one `ok <n> <test>` line per passing test; exits 0 when all pass.
"""
import base64
import json
import os
import re
import sys
import unittest

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["AIO_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


class LambdaTest(unittest.TestCase):
    def setUp(self):
        self.lam = client("lambda")
        self.region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

    def error_of(self, ctx):
        r = ctx.exception.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]

    def test_list_and_get(self):
        fdir = os.environ["AIO_FUNCTIONS_DIR"]
        expected = sorted(f[:-4] for f in os.listdir(fdir) if f.endswith(".lua"))
        names = [f["FunctionName"] for p in self.lam.get_paginator("list_functions").paginate()
                 for f in p["Functions"]]
        self.assertEqual(sorted(names), expected)
        conf = self.lam.get_function(FunctionName="echo")["Configuration"]
        self.assertEqual(conf["FunctionName"], "echo")
        self.assertRegex(conf["FunctionArn"], r"^arn:aws:lambda:%s:\d{12}:function:echo$" % self.region)
        self.assertEqual(conf["Timeout"], 3)  # the default timeout
        self.assertEqual(conf["Version"], "$LATEST")
        self.assertEqual(self.lam.get_function(FunctionName="configured")["Configuration"]["Timeout"], 10)
        with self.assertRaises(ClientError) as ctx:
            self.lam.get_function(FunctionName="no-such-function")
        self.assertEqual(self.error_of(ctx), ("ResourceNotFoundException", 404))

    def test_invoke_with_tail_logs(self):
        out = self.lam.invoke(FunctionName="echo", Payload=json.dumps({"n": 1, "list": []}), LogType="Tail")
        self.assertEqual(out["StatusCode"], 200)
        self.assertNotIn("FunctionError", out)
        self.assertEqual(out["ExecutedVersion"], "$LATEST")
        body = json.loads(out["Payload"].read())
        self.assertEqual(body["event"], {"n": 1, "list": []})
        rid = body["request_id"]
        log = base64.b64decode(out["LogResult"]).decode()
        lines = log.splitlines()
        self.assertEqual(lines[0], "START RequestId: %s Version: $LATEST" % rid)
        self.assertIn("echo from echo\t" + rid, lines)
        self.assertIn("END RequestId: %s" % rid, lines)
        self.assertRegex(lines[-1], r"^REPORT RequestId: %s\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                                    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB" % re.escape(rid))
        # LogResult is "the last 4 KB of the execution log"
        out = self.lam.invoke(FunctionName="chatty", Payload=json.dumps({"lines": 200}), LogType="Tail")
        self.assertLessEqual(len(base64.b64decode(out["LogResult"])), 4096)
        self.assertIn(b"line 00200", base64.b64decode(out["LogResult"]))
        # the log also reaches CloudWatch Logs, group /aws/lambda/<name>
        logs = client("logs")
        streams = logs.describe_log_streams(logGroupName="/aws/lambda/echo")["logStreams"]
        messages = [e["message"] for s in streams for e in logs.get_log_events(
            logGroupName="/aws/lambda/echo", logStreamName=s["logStreamName"], startFromHead=True)["events"]]
        self.assertIn("echo from echo\t" + rid, messages)

    def test_function_error(self):
        out = self.lam.invoke(FunctionName="fail", Payload=b'{"why": "no disk"}')
        self.assertEqual(out["StatusCode"], 200)
        self.assertEqual(out["FunctionError"], "Unhandled")
        body = json.loads(out["Payload"].read())
        self.assertEqual(body["errorMessage"], "boom: no disk")
        self.assertIn("errorType", body)
        self.assertIsInstance(body["stackTrace"], list)
        out = self.lam.invoke(FunctionName="slow", Payload=b'{"seconds": 30}')
        self.assertEqual(out["FunctionError"], "Unhandled")
        self.assertIn("Task timed out after 1.00 seconds", json.loads(out["Payload"].read())["errorMessage"])

    def test_unknown_function_and_bad_requests(self):
        with self.assertRaises(ClientError) as ctx:
            self.lam.invoke(FunctionName="no-such-function", Payload=b"{}")
        self.assertEqual(self.error_of(ctx), ("ResourceNotFoundException", 404))
        with self.assertRaises(ClientError) as ctx:
            self.lam.invoke(FunctionName="echo", Qualifier="1", Payload=b"{}")
        self.assertEqual(self.error_of(ctx), ("ResourceNotFoundException", 404))
        with self.assertRaises(ClientError) as ctx:
            self.lam.invoke(FunctionName="echo", Payload=b"{not json")
        self.assertEqual(self.error_of(ctx), ("InvalidRequestContentException", 400))

    def test_invocation_types(self):
        out = self.lam.invoke(FunctionName="echo", InvocationType="DryRun")
        self.assertEqual(out["StatusCode"], 204)
        out = self.lam.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")
        self.assertEqual(out["StatusCode"], 202)
        self.assertEqual(out["Payload"].read(), b"")


class Result(unittest.TextTestResult):
    count = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.count += 1
        print("ok %d %s" % (Result.count, test.id().split(".")[-1]), flush=True)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(LambdaTest)
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=Result, verbosity=0)
    sys.exit(0 if runner.run(suite).wasSuccessful() else 1)
