#!/usr/bin/python3
"""boto3 in the client benchmark (see bench/README.md, "Client").

N calls of one operation against the nginx of bench/client_nginx.lua, with
Debian's boto3 (/usr/bin/python3, python3-boto3):

  /usr/bin/python3 bench/client_boto3.py OP URL N THREADS
      OP: head put get list invoke; URL: the endpoint (http://127.0.0.1:PORT).
      THREADS 1: one loop in the main thread. THREADS > 1: that many threads
      sharing one client (max_pool_connections = THREADS), each taking the
      next call number until N are done. Exit 0 when every call succeeded and
      its output checked out.
  /usr/bin/python3 bench/client_boto3.py --parse URL ITERS
      CPU (time.process_time) per 1,000-key ListObjectsV2 page: botocore's
      parser, then a whole client call with the page stubbed in.

Last line on stdout: "setup_cpu_s=S calls_wall_s=W": the CPU spent before
the first call (imports, session, clients) and the wall time of the calls. The calls and checks are those of
bench/client.lua.
"""
import itertools
import sys
import threading
import time

import boto3
import botocore.config

BUCKET, KEY, FUNCTION = "bench-bucket", "obj-1k", "bench-fn"
OBJECT_SIZE, LIST_KEYS = 1024, 1000
PUT_BODY = b"0123456789abcdef" * 64
INVOKE_PAYLOAD = b'{"id":12345,"action":"bench"}'
EXPECTED_PAYLOAD = b'{"statusCode":200,"body":"ok","items":[1,2,3]}'  # bench/client_nginx.lua


def clients(url, pool):
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=url, config=botocore.config.Config(
        max_pool_connections=pool, s3={"addressing_style": "path"}))
    lam = session.client("lambda", endpoint_url=url, config=botocore.config.Config(
        max_pool_connections=pool))
    return s3, lam


def op_head(s3, _):
    out = s3.head_object(Bucket=BUCKET, Key=KEY)
    return None if out["ContentLength"] == OBJECT_SIZE and out["ETag"] else "HeadObject: unexpected output"


def op_put(s3, _):
    out = s3.put_object(Bucket=BUCKET, Key=KEY, Body=PUT_BODY)
    return None if out["ETag"] else "PutObject: no ETag"


def op_get(s3, _):
    out = s3.get_object(Bucket=BUCKET, Key=KEY)
    body = out["Body"].read()
    out["Body"].close()
    return None if len(body) == OBJECT_SIZE else f"GetObject: body of {len(body)} bytes"


def op_list(s3, _):
    out = s3.list_objects_v2(Bucket=BUCKET)
    ok = len(out["Contents"]) == LIST_KEYS and out["IsTruncated"] is False and "dt=" in out["Contents"][0]["Key"]
    return None if ok else "ListObjectsV2: unexpected output"


def op_invoke(_, lam):
    out = lam.invoke(FunctionName=FUNCTION, Payload=INVOKE_PAYLOAD)
    payload = out["Payload"].read()
    return None if out["StatusCode"] == 200 and payload == EXPECTED_PAYLOAD else "Invoke: unexpected output"


OPS = {"head": op_head, "put": op_put, "get": op_get, "list": op_list, "invoke": op_invoke}


def usage():
    sys.exit("usage: client_boto3.py OP URL N THREADS | --parse URL ITERS")


def per_page(iters, fn):
    for _ in range(min(iters, 3)):
        fn()
    t0 = time.process_time()
    for _ in range(iters):
        fn()
    return (time.process_time() - t0) / iters


def parse_bench(url, iters):
    """botocore's RestXMLParser on the page, then s3.list_objects_v2 with the
    HTTP send replaced by the page (everything else of a call runs)."""
    import urllib.request
    from botocore import parsers
    from botocore.awsrequest import AWSResponse

    with urllib.request.urlopen(f"{url}/{BUCKET}?list-type=2&encoding-type=url") as r:
        body, headers = r.read(), dict(r.headers.items())
    s3, _ = clients(url, 1)
    op_model = s3.meta.service_model.operation_model("ListObjectsV2")
    parser = parsers.create_parser("rest-xml")

    def parse():
        parser.parse({"status_code": 200, "headers": headers, "body": body}, op_model.output_shape)

    class Raw:
        def stream(self, *_a, **_k):
            yield body

    def send(**_kwargs):
        return AWSResponse(f"{url}/{BUCKET}", 200, headers, Raw())

    s3.meta.events.register_first("before-send.s3.ListObjectsV2", lambda **kw: send(**kw))

    def call():
        out = s3.list_objects_v2(Bucket=BUCKET)
        assert len(out["Contents"]) == LIST_KEYS and "dt=" in out["Contents"][0]["Key"]

    print(f"page_bytes={len(body)} keys={LIST_KEYS} iters={iters}")
    print(f"parse botocore_parser {per_page(iters, parse) * 1e6:.1f} us  # RestXMLParser: bytes -> dict")
    print(f"parse client_call {per_page(iters, call) * 1e6:.1f} us  "
          "# s3.list_objects_v2 with the page stubbed at before-send")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--parse":
        try:
            iters = int(sys.argv[3])
        except ValueError:
            usage()
        parse_bench(sys.argv[2], iters)
        return 0
    if len(sys.argv) != 5 or sys.argv[1] not in OPS:
        usage()
    op, url = OPS[sys.argv[1]], sys.argv[2]
    try:
        n, threads = int(sys.argv[3]), int(sys.argv[4])
    except ValueError:
        usage()
    if n < 1 or threads < 1:
        usage()

    s3, lam = clients(url, max(threads, 1))
    setup_cpu, t0 = time.process_time(), time.perf_counter()
    counter = itertools.count()  # next() is atomic under the GIL
    failures = []

    def worker():
        while next(counter) < n:
            try:
                bad = op(s3, lam)
            except Exception as e:  # noqa: BLE001 - any failure is reported
                bad = f"{type(e).__name__}: {e}"
            if bad:
                failures.append(bad)

    if threads == 1:
        worker()
    else:
        pool = [threading.Thread(target=worker) for _ in range(min(threads, n))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    print(f"setup_cpu_s={setup_cpu:.6f} calls_wall_s={time.perf_counter() - t0:.6f}")
    if failures:
        print(f"client_boto3.py: {len(failures)} of {n} calls failed; first: {failures[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
