"""Prepare requests with Debian's botocore, for the client spec.

Reads a JSON list of {service, region, operation, params, endpoint_url} on
stdin and prints a JSON list of {method, url, headers, body} as botocore
would send them (captured at before-send, nothing goes on the wire). This is
the independent expectation for the client's dry runs.
Run with /usr/bin/python3 (Debian's botocore).
"""
import base64
import json
import sys

import botocore.session
from botocore.awsrequest import AWSResponse


def main():
    cases = json.load(sys.stdin)
    session = botocore.session.get_session()
    out = []
    for case in cases:
        captured = {}

        def before_send(request, **kwargs):
            captured["method"] = request.method
            captured["url"] = request.url
            captured["headers"] = {k.lower(): (v.decode() if isinstance(v, bytes) else v)
                                   for k, v in request.headers.items()}
            body = request.body
            if hasattr(body, "read"):
                body = body.read()
            if isinstance(body, str):
                body = body.encode()
            captured["body_b64"] = base64.b64encode(body or b"").decode()
            raise StopIteration  # nothing is sent

        client = session.create_client(
            case["service"], region_name=case["region"],
            endpoint_url=case.get("endpoint_url"),
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
        client.meta.events.register("before-send", before_send)
        try:
            getattr(client, case["method"])(**case["params"])
        except StopIteration:
            pass
        out.append(captured)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
