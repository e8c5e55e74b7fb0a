"""AWS Batch through aio-aws local with Debian's boto3.

Run by spec/interop_spec.lua with AIO_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION set. Expectations come from the
AWS Batch API reference (CreateComputeEnvironment, CreateJobQueue,
RegisterJobDefinition, SubmitJob, DescribeJobs, ListJobs, CancelJob,
TerminateJob) and the user guide ("Job states", "Array jobs", "Job
dependencies"), not from aio-aws's code. Jobs run as local processes on
this host, so a job can wait for a file the test creates.
Prints one `ok <n> <test>` line per passing test; exits 0 when all pass.
"""
import os
import shutil
import sys
import tempfile
import time
import unittest
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

DONE = ("SUCCEEDED", "FAILED")


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["AIO_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 1}),
    )


class BatchTest(unittest.TestCase):
    def setUp(self):
        self.batch = client("batch")
        self.tag = uuid.uuid4().hex[:10]
        self.tmp = tempfile.mkdtemp(prefix="aio-batch-interop-")
        self.ce = "ce-" + self.tag
        out = self.batch.create_compute_environment(
            computeEnvironmentName=self.ce, type="MANAGED",
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 1, "instanceTypes": ["optimal"],
                              "subnets": ["subnet-1"], "instanceRole": "ecsInstanceRole"})
        self.ce_arn = out["computeEnvironmentArn"]
        self.queue = "q-" + self.tag
        self.batch.create_job_queue(jobQueueName=self.queue, priority=1,
                                    computeEnvironmentOrder=[{"order": 1, "computeEnvironment": self.ce}])

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def error(self, ctx):
        return ctx.exception.response["Error"]["Code"], ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"]

    def jobdef(self, command, **extra):
        name = "d-" + uuid.uuid4().hex[:10]
        props = {"image": "busybox", "vcpus": 1, "memory": 128, "command": command}
        props.update(extra.pop("props", {}))
        out = self.batch.register_job_definition(jobDefinitionName=name, type="container",
                                                 containerProperties=props, **extra)
        return name, out

    def submit(self, jobdef, name="job", **extra):
        return self.batch.submit_job(jobName=name, jobQueue=self.queue, jobDefinition=jobdef, **extra)["jobId"]

    def describe(self, job_id):
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        self.assertEqual(len(jobs), 1)
        return jobs[0]

    def wait(self, job_id, statuses=DONE, limit=60):
        deadline = time.time() + limit
        while True:
            job = self.describe(job_id)
            if job["status"] in statuses:
                return job
            if time.time() > deadline:
                self.fail("job %s still %s" % (job_id, job["status"]))
            time.sleep(0.05)

    def gate(self, name):
        """A command that waits until the test creates tmp/name."""
        return ["sh", "-c", "while [ ! -e %s/%s ]; do sleep 0.05; done" % (self.tmp, name)]

    def open_gate(self, name):
        open(os.path.join(self.tmp, name), "w").close()

    def test_compute_environment_and_queue(self):
        ces = self.batch.describe_compute_environments(computeEnvironments=[self.ce])["computeEnvironments"]
        self.assertEqual(len(ces), 1)
        ce = ces[0]
        self.assertEqual(ce["computeEnvironmentName"], self.ce)
        self.assertEqual(ce["computeEnvironmentArn"], self.ce_arn)
        self.assertTrue(self.ce_arn.startswith("arn:aws:batch:"))
        self.assertTrue(self.ce_arn.endswith(":compute-environment/" + self.ce))
        self.assertEqual(ce["type"], "MANAGED")
        self.assertEqual(ce["state"], "ENABLED")
        self.assertEqual(ce["computeResources"]["maxvCpus"], 1)
        with self.assertRaises(ClientError) as ctx:
            self.batch.create_compute_environment(
                computeEnvironmentName=self.ce, type="MANAGED",
                computeResources={"type": "EC2", "maxvCpus": 1, "subnets": ["s"]})
        self.assertEqual(self.error(ctx), ("ClientException", 400))
        qs = self.batch.describe_job_queues(jobQueues=[self.queue])["jobQueues"]
        self.assertEqual(len(qs), 1)
        q = qs[0]
        self.assertEqual(q["jobQueueName"], self.queue)
        self.assertEqual(q["priority"], 1)
        self.assertEqual(q["state"], "ENABLED")
        self.assertEqual(q["computeEnvironmentOrder"], [{"order": 1, "computeEnvironment": self.ce_arn}])
        self.assertEqual(self.batch.describe_job_queues(jobQueues=["no-such-queue"])["jobQueues"], [])

    def test_job_definition_revisions(self):
        name, r1 = self.jobdef(["true"])
        self.assertEqual(r1["revision"], 1)
        self.assertTrue(r1["jobDefinitionArn"].endswith(":job-definition/%s:1" % name))
        r2 = self.batch.register_job_definition(jobDefinitionName=name, type="container",
                                                containerProperties={"image": "busybox", "vcpus": 1,
                                                                     "memory": 128, "command": ["false"]},
                                                retryStrategy={"attempts": 2}, timeout={"attemptDurationSeconds": 120})
        self.assertEqual(r2["revision"], 2)
        defs = self.batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
        self.assertEqual(sorted(d["revision"] for d in defs), [1, 2])
        d2 = self.batch.describe_job_definitions(jobDefinitions=["%s:2" % name])["jobDefinitions"][0]
        self.assertEqual(d2["containerProperties"]["command"], ["false"])
        self.assertEqual(d2["retryStrategy"]["attempts"], 2)
        self.assertEqual(d2["timeout"]["attemptDurationSeconds"], 120)
        self.assertEqual(d2["status"], "ACTIVE")
        self.batch.deregister_job_definition(jobDefinition=r1["jobDefinitionArn"])
        active = self.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
        self.assertEqual([d["revision"] for d in active], [2])

    def test_submit_with_overrides_and_logs(self):
        name, _ = self.jobdef(["sh", "-c", "echo $GREETING Ref::who from $AWS_BATCH_JQ_NAME"],
                              parameters={"who": "nobody"},
                              props={"environment": [{"name": "GREETING", "value": "hi"}]})
        out = self.batch.submit_job(jobName="hello", jobQueue=self.queue, jobDefinition=name,
                                    parameters={"who": "world"},
                                    containerOverrides={"environment": [{"name": "GREETING", "value": "hello"}]},
                                    tags={"k": "v"})
        self.assertEqual(out["jobName"], "hello")
        self.assertTrue(out["jobArn"].endswith(":job/" + out["jobId"]))
        job = self.wait(out["jobId"])
        self.assertEqual(job["status"], "SUCCEEDED")
        self.assertEqual(job["statusReason"], "Essential container in task exited")
        self.assertEqual(job["container"]["exitCode"], 0)
        self.assertEqual(job["parameters"], {"who": "world"})
        self.assertEqual(job["tags"], {"k": "v"})
        self.assertTrue(job["jobQueue"].endswith(":job-queue/" + self.queue))
        self.assertTrue(job["jobDefinition"].endswith(":job-definition/%s:1" % name))
        for k in ("createdAt", "startedAt", "stoppedAt"):
            self.assertIsInstance(job[k], int)
        self.assertLessEqual(job["createdAt"], job["startedAt"])
        self.assertLessEqual(job["startedAt"], job["stoppedAt"])
        self.assertGreater(job["createdAt"], 1600000000000)  # milliseconds
        self.assertEqual(len(job["attempts"]), 1)
        stream = job["container"]["logStreamName"]
        self.assertTrue(stream.startswith(name + "/default/"))
        self.assertEqual(job["attempts"][0]["container"]["logStreamName"], stream)
        events = client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream,
                                               startFromHead=True)["events"]
        self.assertEqual([e["message"] for e in events], ["hello world from " + self.queue])

    def test_failure_and_depends_on(self):
        gate, _ = self.jobdef(self.gate("go"))
        after, _ = self.jobdef(["true"])
        a = self.submit(gate, "a")
        b = self.submit(after, "b", dependsOn=[{"jobId": a}])
        self.wait(a, ("RUNNING",))
        self.assertEqual(self.describe(b)["status"], "PENDING")
        self.open_gate("go")
        jb = self.wait(b)
        ja = self.wait(a)
        self.assertEqual(jb["status"], "SUCCEEDED")
        self.assertGreaterEqual(jb["startedAt"], ja["stoppedAt"])
        self.assertEqual(jb["dependsOn"], [{"jobId": a}])
        failing, _ = self.jobdef(["sh", "-c", "exit 3"])
        f = self.submit(failing, "f")
        g = self.submit(after, "g", dependsOn=[{"jobId": f}])
        jf = self.wait(f)
        self.assertEqual(jf["status"], "FAILED")
        self.assertEqual(jf["container"]["exitCode"], 3)
        jg = self.wait(g)
        self.assertEqual(jg["status"], "FAILED")
        self.assertEqual(jg["statusReason"], "Dependent Job failed")

    def test_list_jobs_with_filters(self):
        quick, _ = self.jobdef(["true"])
        ids = [self.submit(quick, n) for n in ("alpha-1", "Alpha-2", "beta-1")]
        for i in ids:
            self.assertEqual(self.wait(i)["status"], "SUCCEEDED")
        listed = self.batch.list_jobs(jobQueue=self.queue, jobStatus="SUCCEEDED")["jobSummaryList"]
        self.assertEqual(sorted(s["jobId"] for s in listed), sorted(ids))
        # jobStatus defaults to RUNNING
        self.assertEqual(self.batch.list_jobs(jobQueue=self.queue)["jobSummaryList"], [])
        # a filter makes ListJobs ignore jobStatus; JOB_NAME is case-insensitive, "*" a prefix match
        alpha = self.batch.list_jobs(jobQueue=self.queue, jobStatus="RUNNING",
                                     filters=[{"name": "JOB_NAME", "values": ["alpha*"]}])["jobSummaryList"]
        self.assertEqual(sorted(s["jobName"] for s in alpha), ["Alpha-2", "alpha-1"])
        for s in alpha:
            self.assertEqual(s["status"], "SUCCEEDED")
            self.assertEqual(s["container"]["exitCode"], 0)
        pages = list(self.batch.get_paginator("list_jobs").paginate(
            jobQueue=self.queue, jobStatus="SUCCEEDED", PaginationConfig={"PageSize": 1}))
        self.assertEqual(sum(len(p["jobSummaryList"]) for p in pages), 3)
        self.assertGreaterEqual(len(pages), 3)
        # DescribeJobs leaves unknown ids out
        jobs = self.batch.describe_jobs(jobs=[ids[0], "00000000-0000-0000-0000-000000000000"])["jobs"]
        self.assertEqual([j["jobId"] for j in jobs], [ids[0]])

    def test_cancel(self):
        gate, _ = self.jobdef(self.gate("go"))
        running = self.submit(gate, "running")
        self.wait(running, ("RUNNING",))
        waiting = self.submit(gate, "waiting")  # maxvCpus 1: no room
        self.wait(waiting, ("RUNNABLE",))
        self.batch.cancel_job(jobId=waiting, reason="no longer needed")
        j = self.wait(waiting)
        self.assertEqual(j["status"], "FAILED")
        self.assertEqual(j["statusReason"], "no longer needed")
        # "Jobs that progressed to the STARTING or RUNNING state aren't canceled"
        self.batch.cancel_job(jobId=running, reason="too late")
        self.assertEqual(self.describe(running)["status"], "RUNNING")
        self.open_gate("go")
        self.assertEqual(self.wait(running)["status"], "SUCCEEDED")

    def test_terminate(self):
        sleeper, _ = self.jobdef(["sleep", "60"])
        job_id = self.submit(sleeper, "sleeper")
        self.wait(job_id, ("RUNNING",))
        self.batch.terminate_job(jobId=job_id, reason="stopped by the test")
        j = self.wait(job_id)
        self.assertEqual(j["status"], "FAILED")
        self.assertEqual(j["statusReason"], "stopped by the test")
        self.assertIn("stoppedAt", j)

    def test_array_job(self):
        name, _ = self.jobdef(["sh", "-c", "echo $AWS_BATCH_JOB_ARRAY_INDEX > %s/child-$AWS_BATCH_JOB_ARRAY_INDEX"
                               % self.tmp])
        out = self.batch.submit_job(jobName="arr", jobQueue=self.queue, jobDefinition=name,
                                    arrayProperties={"size": 3})
        parent = self.wait(out["jobId"])
        self.assertEqual(parent["status"], "SUCCEEDED")
        self.assertEqual(parent["arrayProperties"]["size"], 3)
        self.assertEqual(parent["arrayProperties"]["statusSummary"]["SUCCEEDED"], 3)
        children = self.batch.list_jobs(arrayJobId=out["jobId"], jobStatus="SUCCEEDED")["jobSummaryList"]
        self.assertEqual(sorted(c["jobId"] for c in children), ["%s:%d" % (out["jobId"], i) for i in range(3)])
        self.assertEqual(sorted(c["arrayProperties"]["index"] for c in children), [0, 1, 2])
        for i in range(3):
            with open(os.path.join(self.tmp, "child-%d" % i)) as f:
                self.assertEqual(f.read().strip(), str(i))

    def test_errors(self):
        name, _ = self.jobdef(["true"])
        with self.assertRaises(ClientError) as ctx:
            self.batch.submit_job(jobName="x", jobQueue="no-such-queue-" + self.tag, jobDefinition=name)
        self.assertEqual(self.error(ctx), ("ClientException", 400))
        with self.assertRaises(ClientError) as ctx:
            self.batch.submit_job(jobName="x", jobQueue=self.queue, jobDefinition="no-such-def-" + self.tag)
        self.assertEqual(self.error(ctx), ("ClientException", 400))
        with self.assertRaises(ClientError) as ctx:
            self.batch.cancel_job(jobId="no-such-job", reason="x")
        self.assertEqual(self.error(ctx), ("ClientException", 400))


class Result(unittest.TextTestResult):
    count = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.count += 1
        print("ok %d %s" % (Result.count, test.id().split(".")[-1]), flush=True)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(BatchTest)
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=Result, verbosity=0)
    sys.exit(0 if runner.run(suite).wasSuccessful() else 1)
