"""SigV4 checks of aio-aws local with Debian's boto3 (a client nobody here wrote).

Run by spec/interop_spec.lua with AIO_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION set. What is expected comes from
the AWS documentation: a request signed with the wrong secret is refused
with 403 SignatureDoesNotMatch by S3 (ErrorResponses.html) and 403
InvalidSignatureException by the JSON services (CommonErrors); an unknown
access key gets InvalidAccessKeyId / UnrecognizedClientException; requests
signed with the right key pair are served. Prints one `ok <n> <test>` line
per passing test; exits 0 when all pass.
"""
import os
import sys
import unittest

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["AIO_ENDPOINT"]
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
AK = os.environ["AWS_ACCESS_KEY_ID"]
SK = os.environ["AWS_SECRET_ACCESS_KEY"]


def client(service, ak=AK, sk=SK):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=ak, aws_secret_access_key=sk,
                        config=Config(retries={"max_attempts": 1}))


# (service, call) pairs that need no prior state; a service whose module is
# not there yet answers 501 NotImplemented, which still proves routing.
CALLS = [
    ("s3", lambda c: c.list_buckets()),
    ("logs", lambda c: c.describe_log_groups()),
    ("batch", lambda c: c.describe_job_queues()),
    ("lambda", lambda c: c.list_functions()),
]


class AuthTest(unittest.TestCase):
    def status_and_code(self, fn):
        try:
            out = fn()
            return out["ResponseMetadata"]["HTTPStatusCode"], None
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]

    def test_right_key_pair_is_served(self):
        served = 0
        for service, call in CALLS:
            status, code = self.status_and_code(lambda: call(client(service)))
            self.assertNotIn(code, ("SignatureDoesNotMatch", "InvalidSignatureException", "AccessDenied",
                                    "InvalidAccessKeyId", "UnrecognizedClientException"), service)
            if status == 200:
                served += 1
        self.assertGreater(served, 0, "no service answered 200")

    def test_wrong_secret_is_refused(self):
        for service, call in CALLS:
            status, code = self.status_and_code(lambda: call(client(service, sk="not-the-secret")))
            self.assertEqual(403, status, service)
            want = "SignatureDoesNotMatch" if service == "s3" else "InvalidSignatureException"
            self.assertEqual(want, code, service)

    def test_unknown_access_key_is_refused(self):
        for service, call in CALLS:
            status, code = self.status_and_code(lambda: call(client(service, ak="AKIAUNKNOWNKEY000000")))
            self.assertEqual(403, status, service)
            want = "InvalidAccessKeyId" if service == "s3" else "UnrecognizedClientException"
            self.assertEqual(want, code, service)

    def test_presigned_url_with_wrong_secret_is_refused(self):
        import urllib.error
        import urllib.request
        c = client("s3", sk="not-the-secret")
        c2 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id=AK,
                          aws_secret_access_key="not-the-secret", config=Config(signature_version="s3v4"))
        for cl in (c, c2):
            url = cl.generate_presigned_url("get_object", Params={"Bucket": "no-such-bucket-x", "Key": "k"})
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                urllib.request.urlopen(url, timeout=10)
            self.assertEqual(403, ctx.exception.code)
            self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", ctx.exception.read())


class Result(unittest.TextTestResult):
    count = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.count += 1
        print("ok %d %s" % (Result.count, test.id().split(".")[-1]), flush=True)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(AuthTest)
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=Result, verbosity=0)
    sys.exit(0 if runner.run(suite).wasSuccessful() else 1)
