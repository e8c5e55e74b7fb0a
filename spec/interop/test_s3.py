"""S3 through aio-aws local with Debian's boto3.

Run by spec/interop_spec.lua with AIO_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION set. Expectations come from the
Amazon S3 API Reference (PutObject, GetObject, HeadObject, CopyObject,
DeleteObjects, ListObjectsV2, ListObjects, the multipart operations,
ErrorResponses) and RFC 7232/7233, computed here with hashlib, not taken
from aio-aws's code. Prints one `ok <n> <test>` line per passing test;
exits 0 when all pass.
"""
import datetime
import hashlib
import io
import os
import sys
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def client(**cfg):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AIO_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4", **cfg),
    )


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


class S3Test(unittest.TestCase):
    def setUp(self):
        self.s3 = client()
        self.bucket = "interop-" + uuid.uuid4().hex[:16]
        self.s3.create_bucket(Bucket=self.bucket)

    def code(self, ctx):
        return ctx.exception.response["Error"]["Code"]

    def status(self, ctx):
        return ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"]

    def assertClientError(self, code, status, fn, **kw):
        with self.assertRaises(ClientError) as ctx:
            fn(**kw)
        self.assertEqual(self.code(ctx), code)
        self.assertEqual(self.status(ctx), status)
        return ctx.exception.response

    # -------------------------------------------------------- buckets

    def test_buckets(self):
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        self.assertIn(self.bucket, names)
        self.s3.head_bucket(Bucket=self.bucket)
        self.assertIsNone(self.s3.get_bucket_location(Bucket=self.bucket)["LocationConstraint"])
        eu = "interop-eu-" + uuid.uuid4().hex[:12]
        self.s3.create_bucket(Bucket=eu, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.assertEqual(self.s3.get_bucket_location(Bucket=eu)["LocationConstraint"], "eu-west-1")
        r = self.assertClientError("BucketAlreadyOwnedByYou", 409, self.s3.create_bucket, Bucket=eu,
                                   CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.assertEqual(r["Error"]["BucketName"], eu)
        self.assertClientError("InvalidBucketName", 400, self.s3.create_bucket, Bucket="Not_Valid")
        self.assertClientError("NoSuchBucket", 404, self.s3.list_objects_v2, Bucket="no-such-" + eu)
        self.assertClientError("404", 404, self.s3.head_bucket, Bucket="no-such-" + eu)
        self.s3.put_object(Bucket=eu, Key="k", Body=b"x")
        self.assertClientError("BucketNotEmpty", 409, self.s3.delete_bucket, Bucket=eu)
        self.s3.delete_object(Bucket=eu, Key="k")
        r = self.s3.delete_bucket(Bucket=eu)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)

    # -------------------------------------------------------- objects

    def test_put_get_head(self):
        data = b"interop data \x00\xff"
        key = "dir/sub dir/ключ+plus?.bin"
        r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/x-test",
                               Metadata={"color": "blue"}, ContentDisposition="inline")
        self.assertEqual(r["ETag"], md5_etag(data))
        r = self.s3.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(r["Body"].read(), data)
        self.assertEqual(r["ContentType"], "application/x-test")
        self.assertEqual(r["ContentLength"], len(data))
        self.assertEqual(r["Metadata"], {"color": "blue"})
        self.assertEqual(r["ContentDisposition"], "inline")
        self.assertEqual(r["ETag"], md5_etag(data))
        self.assertIsInstance(r["LastModified"], datetime.datetime)
        self.assertTrue(r["ResponseMetadata"]["RequestId"])
        h = self.s3.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual(h["ContentLength"], len(data))
        self.assertEqual(h["ETag"], md5_etag(data))
        self.assertEqual(h["AcceptRanges"], "bytes")
        # default content type of an object stored without one
        self.s3.put_object(Bucket=self.bucket, Key="plain", Body=b"")
        self.assertEqual(self.s3.head_object(Bucket=self.bucket, Key="plain")["ContentType"],
                         "binary/octet-stream")
        r = self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=self.bucket, Key="missing")
        self.assertEqual(r["Error"]["Key"], "missing")
        self.assertClientError("404", 404, self.s3.head_object, Bucket=self.bucket, Key="missing")
        self.assertClientError("NoSuchBucket", 404, self.s3.put_object, Bucket="no-such-" + self.bucket,
                               Key="k", Body=b"x")

    def test_bad_digest(self):
        self.assertClientError("BadDigest", 400, self.s3.put_object, Bucket=self.bucket, Key="d", Body=b"abc",
                               ContentMD5="XUFAKrxLKna5cZ2REBfFkg==")  # MD5 of "hello"
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=self.bucket, Key="d")

    def test_ranges(self):
        self.s3.put_object(Bucket=self.bucket, Key="r", Body=b"0123456789")
        r = self.s3.get_object(Bucket=self.bucket, Key="r", Range="bytes=2-5")
        self.assertEqual(r["Body"].read(), b"2345")
        self.assertEqual(r["ContentRange"], "bytes 2-5/10")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="r", Range="bytes=-3")["Body"].read(), b"789")
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="r", Range="bytes=8-")["Body"].read(), b"89")
        r = self.assertClientError("InvalidRange", 416, self.s3.get_object, Bucket=self.bucket, Key="r",
                                   Range="bytes=10-")
        self.assertEqual(r["Error"]["ActualObjectSize"], "10")

    def test_conditional_get(self):
        r = self.s3.put_object(Bucket=self.bucket, Key="c", Body=b"cond")
        etag = r["ETag"]
        mtime = self.s3.head_object(Bucket=self.bucket, Key="c")["LastModified"]
        later, earlier = mtime + datetime.timedelta(hours=1), mtime - datetime.timedelta(hours=1)
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="c", IfMatch=etag)["Body"].read(), b"cond")
        self.assertClientError("PreconditionFailed", 412, self.s3.get_object, Bucket=self.bucket, Key="c",
                               IfMatch='"0000"')
        self.assertClientError("304", 304, self.s3.get_object, Bucket=self.bucket, Key="c", IfNoneMatch=etag)
        self.assertClientError("304", 304, self.s3.get_object, Bucket=self.bucket, Key="c", IfModifiedSince=later)
        self.s3.get_object(Bucket=self.bucket, Key="c", IfModifiedSince=earlier)
        self.assertClientError("PreconditionFailed", 412, self.s3.get_object, Bucket=self.bucket, Key="c",
                               IfUnmodifiedSince=earlier)
        self.s3.get_object(Bucket=self.bucket, Key="c", IfUnmodifiedSince=later)
        self.assertClientError("412", 412, self.s3.head_object, Bucket=self.bucket, Key="c", IfMatch='"0000"')

    def test_copy(self):
        self.s3.put_object(Bucket=self.bucket, Key="src key", Body=b"copy me", ContentType="text/a",
                           Metadata={"a": "1"})
        r = self.s3.copy_object(Bucket=self.bucket, Key="dst", CopySource={"Bucket": self.bucket, "Key": "src key"})
        self.assertEqual(r["CopyObjectResult"]["ETag"], md5_etag(b"copy me"))
        h = self.s3.head_object(Bucket=self.bucket, Key="dst")
        self.assertEqual((h["ContentType"], h["Metadata"]), ("text/a", {"a": "1"}))
        self.s3.copy_object(Bucket=self.bucket, Key="dst2", CopySource=self.bucket + "/src key",
                            MetadataDirective="REPLACE", ContentType="text/b", Metadata={"b": "2"})
        h = self.s3.head_object(Bucket=self.bucket, Key="dst2")
        self.assertEqual((h["ContentType"], h["Metadata"]), ("text/b", {"b": "2"}))
        self.assertClientError("InvalidRequest", 400, self.s3.copy_object, Bucket=self.bucket, Key="src key",
                               CopySource={"Bucket": self.bucket, "Key": "src key"})
        self.assertClientError("NoSuchKey", 404, self.s3.copy_object, Bucket=self.bucket, Key="x",
                               CopySource={"Bucket": self.bucket, "Key": "none"})
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="dst2")["Body"].read(), b"copy me")

    def test_delete_objects(self):
        for k in ("a", "b", "c"):
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=k.encode())
        r = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "c"},
                                                                          {"Key": "never"}]})
        self.assertEqual(sorted(d["Key"] for d in r["Deleted"]), ["a", "c", "never"])
        self.assertNotIn("Errors", r)
        r = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": "b"}], "Quiet": True})
        self.assertNotIn("Deleted", r)
        self.assertEqual(self.s3.list_objects_v2(Bucket=self.bucket)["KeyCount"], 0)
        r = self.s3.delete_object(Bucket=self.bucket, Key="never")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)

    # -------------------------------------------------------- listings

    def test_list_objects_v2_paginator(self):
        keys = ["f/%02d & <x> é" % i for i in range(23)] + ["g/1", "g/2", "top"]
        for k in keys:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=b"x")
        pages = list(self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, PaginationConfig={"PageSize": 4}))
        self.assertEqual(len(pages), 7)  # 26 keys, 4 a page
        got = [c["Key"] for p in pages for c in p.get("Contents", [])]
        self.assertEqual(got, sorted(keys, key=lambda k: k.encode()))
        for p in pages[:-1]:
            self.assertTrue(p["IsTruncated"])
            self.assertEqual(p["KeyCount"], 4)
        self.assertFalse(pages[-1]["IsTruncated"])
        # delimiter: common prefixes, counted once across pages
        pages = list(self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Delimiter="/", PaginationConfig={"PageSize": 1}))
        prefixes = [cp["Prefix"] for p in pages for cp in p.get("CommonPrefixes", [])]
        contents = [c["Key"] for p in pages for c in p.get("Contents", [])]
        self.assertEqual(prefixes, ["f/", "g/"])
        self.assertEqual(contents, ["top"])
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="g/", Delimiter="/")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["g/1", "g/2"])
        self.assertEqual(r["Prefix"], "g/")
        r = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter="g/1")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["g/2", "top"])
        c = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="top")["Contents"][0]
        self.assertEqual((c["Size"], c["ETag"], c["StorageClass"]), (1, md5_etag(b"x"), "STANDARD"))
        self.assertClientError("InvalidArgument", 400, self.s3.list_objects_v2, Bucket=self.bucket,
                               ContinuationToken="bogus")

    def test_list_objects_v1(self):
        for k in ("a", "b/1", "b/2", "c"):
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=b"x")
        r = self.s3.list_objects(Bucket=self.bucket, Marker="a", MaxKeys=2)
        self.assertEqual([c["Key"] for c in r["Contents"]], ["b/1", "b/2"])
        self.assertTrue(r["IsTruncated"])
        r = self.s3.list_objects(Bucket=self.bucket, Delimiter="/", MaxKeys=2)
        self.assertEqual(r["NextMarker"], "b/")
        self.assertEqual([cp["Prefix"] for cp in r["CommonPrefixes"]], ["b/"])
        pages = list(self.s3.get_paginator("list_objects").paginate(
            Bucket=self.bucket, PaginationConfig={"PageSize": 1}))
        self.assertEqual([c["Key"] for p in pages for c in p.get("Contents", [])], ["a", "b/1", "b/2", "c"])

    # -------------------------------------------------------- multipart

    def test_multipart(self):
        p1, p2 = os.urandom(5 * MiB), b"the end"
        key = "multi part"
        up = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType="video/x",
                                             Metadata={"m": "v"})
        uid = up["UploadId"]
        e1 = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        self.assertEqual((e1, e2), (md5_etag(p1), md5_etag(p2)))
        parts = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)["Parts"]
        self.assertEqual([(p["PartNumber"], p["Size"], p["ETag"]) for p in parts],
                         [(1, len(p1), e1), (2, len(p2), e2)])
        ups = self.s3.list_multipart_uploads(Bucket=self.bucket)["Uploads"]
        self.assertEqual([(u["Key"], u["UploadId"]) for u in ups], [(key, uid)])
        self.assertClientError("InvalidPart", 400, self.s3.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": e2}]})
        self.assertClientError("InvalidPartOrder", 400, self.s3.complete_multipart_upload, Bucket=self.bucket,
                               Key=key, UploadId=uid, MultipartUpload={"Parts": [
                                   {"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
        r = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        # the multipart ETag: MD5 of the concatenated binary part MD5s, "-", the part count
        want = '"%s-2"' % hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
        self.assertEqual(r["ETag"], want)
        self.assertEqual(r["Key"], key)
        g = self.s3.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(g["Body"].read(), p1 + p2)
        self.assertEqual((g["ETag"], g["ContentType"], g["Metadata"]), (want, "video/x", {"m": "v"}))
        self.assertClientError("NoSuchUpload", 404, self.s3.list_parts, Bucket=self.bucket, Key=key, UploadId=uid)
        # EntityTooSmall: every part but the last must be at least 5 MiB
        uid = self.s3.create_multipart_upload(Bucket=self.bucket, Key="small")["UploadId"]
        s1 = self.s3.upload_part(Bucket=self.bucket, Key="small", UploadId=uid, PartNumber=1, Body=b"a")["ETag"]
        s2 = self.s3.upload_part(Bucket=self.bucket, Key="small", UploadId=uid, PartNumber=2, Body=b"b")["ETag"]
        self.assertClientError("EntityTooSmall", 400, self.s3.complete_multipart_upload, Bucket=self.bucket,
                               Key="small", UploadId=uid, MultipartUpload={"Parts": [
                                   {"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]})
        r = self.s3.abort_multipart_upload(Bucket=self.bucket, Key="small", UploadId=uid)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertClientError("NoSuchUpload", 404, self.s3.abort_multipart_upload, Bucket=self.bucket,
                               Key="small", UploadId=uid)

    def test_transfer_manager(self):
        # boto3's managed transfer: concurrent multipart upload and ranged download
        data = os.urandom(11 * MiB)
        cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
        self.s3.upload_fileobj(io.BytesIO(data), self.bucket, "managed", Config=cfg)
        self.assertTrue(self.s3.head_object(Bucket=self.bucket, Key="managed")["ETag"].endswith('-3"'))
        out = io.BytesIO()
        self.s3.download_fileobj(self.bucket, "managed", out, Config=cfg)
        self.assertEqual(hashlib.sha256(out.getvalue()).hexdigest(), hashlib.sha256(data).hexdigest())

    # -------------------------------------------------------- presigned URLs, addressing

    def test_presigned_get(self):
        self.s3.put_object(Bucket=self.bucket, Key="pre signed.txt", Body=b"presigned body")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": "pre signed.txt"},
                                             ExpiresIn=300)
        self.assertIn("X-Amz-Signature=", url)
        with urllib.request.urlopen(url, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"presigned body")
            self.assertEqual(resp.headers["ETag"], md5_etag(b"presigned body"))
        # a range through the presigned URL
        req = urllib.request.Request(url, headers={"Range": "bytes=0-8"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.assertEqual(resp.status, 206)
            self.assertEqual(resp.read(), b"presigned")
        bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(bad, timeout=10)
        self.assertEqual(ctx.exception.code, 403)
        self.assertIn(b"<Code>", ctx.exception.read())

    def test_path_style_client(self):
        s3 = client(s3={"addressing_style": "path"})
        s3.put_object(Bucket=self.bucket, Key="p/s", Body=b"path")
        self.assertEqual(s3.get_object(Bucket=self.bucket, Key="p/s")["Body"].read(), b"path")


class Result(unittest.TextTestResult):
    n = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        Result.n += 1
        print("ok %d %s" % (Result.n, test.id().split(".")[-1]), flush=True)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(S3Test)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=Result).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
