"""CloudWatch Logs through aio-aws local with Debian's boto3.

Run by spec/interop_spec.lua with AIO_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION set. Expectations come from the
CloudWatch Logs API reference (CreateLogGroup, DescribeLogStreams,
PutLogEvents, GetLogEvents, FilterLogEvents), not from aio-aws's code.
Prints one `ok <n> <test>` line per passing test; exits 0 when all pass.
"""
import os
import sys
import time
import unittest
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client():
    return boto3.client(
        "logs",
        endpoint_url=os.environ["AIO_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 1}),
    )


def now_ms():
    return int(time.time() * 1000)


class LogsTest(unittest.TestCase):
    def setUp(self):
        self.logs = client()
        self.group = "/interop/" + uuid.uuid4().hex[:12]
        self.logs.create_log_group(logGroupName=self.group)

    def error_code(self, ctx):
        return ctx.exception.response["Error"]["Code"]

    def test_groups(self):
        with self.assertRaises(ClientError) as ctx:
            self.logs.create_log_group(logGroupName=self.group)
        self.assertEqual(self.error_code(ctx), "ResourceAlreadyExistsException")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        for i in range(5):
            self.logs.create_log_group(logGroupName="%s/sub%d" % (self.group, i))
        pages = list(self.logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=self.group + "/", PaginationConfig={"PageSize": 2}))
        self.assertEqual(len(pages), 3)
        names = [g["logGroupName"] for p in pages for g in p["logGroups"]]
        self.assertEqual(names, ["%s/sub%d" % (self.group, i) for i in range(5)])
        g = self.logs.describe_log_groups(logGroupNamePrefix=self.group)["logGroups"][0]
        self.assertEqual(g["logGroupName"], self.group)
        self.assertIsInstance(g["creationTime"], int)
        self.assertTrue(g["arn"].startswith("arn:aws:logs:"))
        self.assertTrue(g["arn"].endswith(":log-group:%s:*" % self.group))
        self.logs.delete_log_group(logGroupName=self.group)
        with self.assertRaises(ClientError) as ctx:
            self.logs.delete_log_group(logGroupName=self.group)
        self.assertEqual(self.error_code(ctx), "ResourceNotFoundException")

    def test_streams(self):
        for name in ("b", "a", "c"):
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=name)
        with self.assertRaises(ClientError) as ctx:
            self.logs.create_log_stream(logGroupName=self.group, logStreamName="a")
        self.assertEqual(self.error_code(ctx), "ResourceAlreadyExistsException")
        with self.assertRaises(ClientError) as ctx:
            self.logs.create_log_stream(logGroupName=self.group + "-missing", logStreamName="a")
        self.assertEqual(self.error_code(ctx), "ResourceNotFoundException")
        t = now_ms()
        self.logs.put_log_events(logGroupName=self.group, logStreamName="b",
                                 logEvents=[{"timestamp": t - 10, "message": "x"}])
        self.logs.put_log_events(logGroupName=self.group, logStreamName="c",
                                 logEvents=[{"timestamp": t - 20, "message": "y"}])
        streams = self.logs.describe_log_streams(logGroupName=self.group)["logStreams"]
        self.assertEqual([s["logStreamName"] for s in streams], ["a", "b", "c"])  # default: by name
        b = streams[1]
        self.assertEqual(b["firstEventTimestamp"], t - 10)
        self.assertEqual(b["lastEventTimestamp"], t - 10)
        self.assertIsInstance(b["lastIngestionTime"], int)
        self.assertEqual(b["storedBytes"], 0)
        self.assertNotIn("lastEventTimestamp", streams[0])
        by_time = self.logs.describe_log_streams(logGroupName=self.group, orderBy="LastEventTime",
                                                 descending=True)["logStreams"]
        self.assertEqual([s["logStreamName"] for s in by_time], ["b", "c", "a"])
        pages = list(self.logs.get_paginator("describe_log_streams").paginate(
            logGroupName=self.group, PaginationConfig={"PageSize": 1}))
        self.assertEqual([s["logStreamName"] for p in pages for s in p["logStreams"]], ["a", "b", "c"])
        # "If orderBy is LastEventTime, you cannot specify [logStreamNamePrefix]"
        with self.assertRaises(ClientError) as ctx:
            self.logs.describe_log_streams(logGroupName=self.group, orderBy="LastEventTime",
                                           logStreamNamePrefix="a")
        self.assertEqual(self.error_code(ctx), "InvalidParameterException")

    def test_put_rules(self):
        self.logs.create_log_stream(logGroupName=self.group, logStreamName="s")
        t = now_ms()
        with self.assertRaises(ClientError) as ctx:
            self.logs.put_log_events(logGroupName=self.group, logStreamName="s", logEvents=[
                {"timestamp": t, "message": "second"}, {"timestamp": t - 1, "message": "first"}])
        self.assertEqual(self.error_code(ctx), "InvalidParameterException")
        with self.assertRaises(ClientError) as ctx:
            self.logs.put_log_events(logGroupName=self.group, logStreamName="nope",
                                     logEvents=[{"timestamp": t, "message": "m"}])
        self.assertEqual(self.error_code(ctx), "ResourceNotFoundException")
        day = 86400000
        out = self.logs.put_log_events(logGroupName=self.group, logStreamName="s", logEvents=[
            {"timestamp": t - 15 * day, "message": "old"}, {"timestamp": t - 15 * day + 1, "message": "old2"}])
        self.assertEqual(out["rejectedLogEventsInfo"]["tooOldLogEventEndIndex"], 1)
        out = self.logs.put_log_events(logGroupName=self.group, logStreamName="s", logEvents=[
            {"timestamp": t, "message": "kept"}, {"timestamp": t + 3 * 3600000, "message": "future"}],
            sequenceToken="49039859-not-checked")
        self.assertEqual(out["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 1)
        got = self.logs.get_log_events(logGroupName=self.group, logStreamName="s", startFromHead=True)
        self.assertEqual([e["message"] for e in got["events"]], ["kept"])

    def test_get_with_tokens(self):
        self.logs.create_log_stream(logGroupName=self.group, logStreamName="s")
        t = now_ms() - 100000
        self.logs.put_log_events(logGroupName=self.group, logStreamName="s", logEvents=[
            {"timestamp": t + i, "message": "event %d" % i} for i in range(25)])
        seen, token = [], None
        kwargs = {"logGroupName": self.group, "logStreamName": "s", "limit": 10, "startFromHead": True}
        for _ in range(10):
            page = self.logs.get_log_events(**kwargs)
            self.assertTrue(page["nextForwardToken"].startswith("f/"))
            self.assertTrue(page["nextBackwardToken"].startswith("b/"))
            seen.extend(e["message"] for e in page["events"])
            # "If you have reached the end of the stream, it returns the same token you passed in."
            if page["nextForwardToken"] == token:
                self.assertEqual(page["events"], [])
                break
            token = page["nextForwardToken"]
            kwargs = {"logGroupName": self.group, "logStreamName": "s", "limit": 10, "nextToken": token}
        self.assertEqual(seen, ["event %d" % i for i in range(25)])
        # startFromHead false (the default): the newest events first page, then backwards
        newest = self.logs.get_log_events(logGroupName=self.group, logStreamName="s", limit=10)
        self.assertEqual([e["message"] for e in newest["events"]], ["event %d" % i for i in range(15, 25)])
        older = self.logs.get_log_events(logGroupName=self.group, logStreamName="s", limit=10,
                                         nextToken=newest["nextBackwardToken"])
        self.assertEqual([e["message"] for e in older["events"]], ["event %d" % i for i in range(5, 15)])
        window = self.logs.get_log_events(logGroupName=self.group, logStreamName="s", startFromHead=True,
                                          startTime=t + 3, endTime=t + 6)
        self.assertEqual([e["message"] for e in window["events"]], ["event 3", "event 4", "event 5"])
        with self.assertRaises(ClientError) as ctx:
            self.logs.get_log_events(logGroupName=self.group, logStreamName="missing")
        self.assertEqual(self.error_code(ctx), "ResourceNotFoundException")

    def test_filter(self):
        t = now_ms() - 100000
        for name, events in (("web", ["ERROR disk full", "INFO ok", "WARN slow"]),
                             ("db", ["ERROR disk almost full", "INFO checkpoint"])):
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=name)
            self.logs.put_log_events(logGroupName=self.group, logStreamName=name, logEvents=[
                {"timestamp": t + 10 * i + (name == "db"), "message": m} for i, m in enumerate(events)])
        out = self.logs.filter_log_events(logGroupName=self.group, filterPattern="ERROR")
        self.assertEqual([(e["logStreamName"], e["message"]) for e in out["events"]],
                         [("web", "ERROR disk full"), ("db", "ERROR disk almost full")])
        self.assertEqual(sorted(s["logStreamName"] for s in out["searchedLogStreams"]), ["db", "web"])
        for e in out["events"]:
            self.assertIn("eventId", e)
            self.assertIn("ingestionTime", e)
        out = self.logs.filter_log_events(logGroupName=self.group, filterPattern='"disk full"')
        self.assertEqual([e["message"] for e in out["events"]], ["ERROR disk full"])
        out = self.logs.filter_log_events(logGroupName=self.group, filterPattern="INFO", logStreamNames=["db"])
        self.assertEqual([e["message"] for e in out["events"]], ["INFO checkpoint"])
        pages = list(self.logs.get_paginator("filter_log_events").paginate(
            logGroupName=self.group, PaginationConfig={"PageSize": 2}))
        messages = [e["message"] for p in pages for e in p["events"]]
        self.assertEqual(messages, ["ERROR disk full", "ERROR disk almost full", "INFO ok", "INFO checkpoint",
                                    "WARN slow"])
        self.assertGreaterEqual(len(pages), 3)


class Result(unittest.TextTestResult):
    count = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.count += 1
        print("ok %d %s" % (Result.count, test.id().split(".")[-1]), flush=True)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(LogsTest)
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=Result, verbosity=0)
    sys.exit(0 if runner.run(suite).wasSuccessful() else 1)
