#!/usr/bin/python3
"""Stand-ins for the services credential providers talk to, on one loopback port.

usage: /usr/bin/python3 creds_server.py [PORT]

Prints the port on a line of its own once it accepts connections, then serves,
one thread per connection, HTTP/1.1:

* EC2 instance metadata (IMDSv2, EC2 User Guide "Use the Instance Metadata
  Service"): PUT /latest/api/token needs x-aws-ec2-metadata-token-ttl-seconds
  (1..21600, else 400, as IMDS answers) and returns a new token;
  GET /latest/meta-data/iam/security-credentials/ the role name;
  GET /latest/meta-data/iam/security-credentials/<role> the credentials JSON;
  GET /latest/meta-data/placement/region the region. With "imds_v2_only" a GET
  without a valid token gets 401 (IMDS with HttpTokens=required).
* The container credentials endpoint (ECS task role / EKS Pod Identity):
  GET <container_path> returns the credentials JSON; when "container_token"
  is set, an Authorization header with another value gets 401.
* IAM Identity Center's GetRoleCredentials (SSO Portal API Reference):
  GET /federation/credentials?role_name=&account_id= with the token
  "sso_token" in x-amz-sso_bearer_token, else 401 UnauthorizedException.
* STS (query protocol, STS API Reference): POST / with Action=AssumeRole or
  Action=AssumeRoleWithWebIdentity answers the documented XML with new
  credentials (access keys numbered, so refreshes can be told apart), and
  Action=GetCallerIdentity (to see how a client signs). Every
  request's SigV4 signature is checked here (an implementation of
  "Create a signed AWS API request" independent of the client) against the
  secret keys given in "secrets" (access key -> secret key).

Control API (never recorded):
  POST /__config   JSON object merged into the settings (see DEFAULTS).
  POST /__script   {"path": p, "method": m?, "steps": [step...]}: the next
                   requests to path p answer the steps first, in order.
                   A step: {"status", "body", "headers", "delay" (seconds
                   before answering), "times"}.
  GET  /__requests the requests so far: method, path, query, headers,
                   body, params (STS form fields), auth (STS signature check:
                   null when unsigned, else {access_key, region, service,
                   valid, token}).
  POST /__reset    forget requests and scripts, settings back to DEFAULTS.
"""
import copy
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

DEFAULTS = {
    "imds_v2_only": False,
    "role": "test-role",
    "region": "eu-central-1",
    "creds": {
        "Code": "Success",
        "LastUpdated": "2030-01-01T00:00:00Z",
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIAIMDS000000000001",
        "SecretAccessKey": "imdsSECRETkey0000000000000000000000000001",
        "Token": "imdsTOKEN0001",
        "Expiration": "2030-01-01T06:00:00Z",
    },
    "container_path": "/v2/credentials/test-uuid",
    "container_token": None,
    "secrets": {},
    "sts_expiration": "2030-01-01T01:00:00Z",
    "sso_token": "SSOACCESSTOKEN",
    "sso_expiration_ms": 1893459600000,
}

LOCK = threading.Lock()
STATE = {}


def reset():
    with LOCK:
        STATE.clear()
        STATE.update(
            settings=copy.deepcopy(DEFAULTS),
            requests=[],
            scripts={},
            tokens=set(),
            counter=0,
        )


reset()


def take_step(method, path):
    with LOCK:
        for key in ((method, path), (None, path)):
            steps = STATE["scripts"].get(key)
            if steps:
                step = steps[0]
                step["times"] = step.get("times", 1) - 1
                if step["times"] <= 0:
                    steps.pop(0)
                return step
    return None


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def check_sigv4(method, raw_path, headers, body, secrets):
    """AWS SigV4 header auth, from the IAM User Guide's algorithm."""
    auth = headers.get("authorization")
    if auth is None:
        return None
    out = {"valid": False, "token": headers.get("x-amz-security-token")}
    try:
        algo, rest = auth.split(" ", 1)
        fields = dict(p.strip().split("=", 1) for p in rest.split(","))
        ak, date, region, service, term = fields["Credential"].split("/")
        out.update(access_key=ak, region=region, service=service)
        signed = fields["SignedHeaders"].split(";")
        parts = urlsplit(raw_path)
        path = quote(parts.path or "/", safe="/-_.~%")
        query = sorted(parse_qsl(parts.query, keep_blank_values=True))
        cq = "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in query)
        ch = "".join(h + ":" + " ".join(headers.get(h, "").split()) + "\n" for h in signed)
        payload = headers.get("x-amz-content-sha256") or sha256_hex(body)
        creq = "\n".join([method, path, cq, ch, ";".join(signed), payload])
        amz_date = headers["x-amz-date"]
        scope = "/".join([date, region, service, term])
        sts = "\n".join([algo, amz_date, scope, sha256_hex(creq.encode())])
        secret = secrets.get(ak)
        if secret is None:
            return out
        key = ("AWS4" + secret).encode()
        for part in (date, region, service, term):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out["valid"] = algo == "AWS4-HMAC-SHA256" and hmac.compare_digest(sig, fields["Signature"])
    except (KeyError, ValueError):
        pass
    return out


STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def sts_answer(action, params, n, expiration):
    creds = (
        "<Credentials>"
        "<SessionToken>stsTOKEN%04d</SessionToken>"
        "<SecretAccessKey>stsSECRETkey00000000000000000000000000%04d</SecretAccessKey>"
        "<Expiration>%s</Expiration>"
        "<AccessKeyId>ASIASTS0000000000%03d</AccessKeyId>"
        "</Credentials>" % (n, n, expiration, n)
    )
    role = params.get("RoleArn", "arn:aws:iam::123456789012:role/x").split("/")[-1]
    user = (
        "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/%s/%s</Arn>"
        "<AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId></AssumedRoleUser>"
        % (role, params.get("RoleSessionName", ""), params.get("RoleSessionName", ""))
    )
    if action == "AssumeRoleWithWebIdentity":
        extra = (
            "<SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>"
            "<Audience>client.5498841531868486423.1548@apps.example.com</Audience>"
            "<Provider>www.amazon.com</Provider>"
        )
    else:
        extra = "<PackedPolicySize>6</PackedPolicySize>"
    return (
        '<%sResponse xmlns="%s"><%sResult>%s%s%s</%sResult>'
        "<ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>"
        "</%sResponse>" % (action, STS_NS, action, extra, user, creds, action, action)
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "creds_server"

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, body=b"", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, path, body):
        if path == "/__config" and self.command == "POST":
            with LOCK:
                STATE["settings"].update(json.loads(body or b"{}"))
            return self.answer(200, "{}")
        if path == "/__script" and self.command == "POST":
            doc = json.loads(body)
            with LOCK:
                key = (doc.get("method"), doc["path"])
                STATE["scripts"].setdefault(key, []).extend(doc["steps"])
            return self.answer(200, "{}")
        if path == "/__requests" and self.command == "GET":
            with LOCK:
                data = json.dumps(STATE["requests"])
            return self.answer(200, data, {"Content-Type": "application/json"})
        if path == "/__reset" and self.command == "POST":
            reset()
            return self.answer(200, "{}")
        return self.answer(404, "no such control call")

    def handle_any(self):
        body = self.read_body()
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/__"):
            return self.control(path, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            settings = copy.deepcopy(STATE["settings"])
        record = {
            "method": self.command, "path": path, "query": parts.query, "headers": headers,
            "body": body.decode("utf-8", "replace"), "time": time.time(),
        }
        params = None
        if self.command == "POST" and path == "/":
            params = dict(parse_qsl(body.decode(), keep_blank_values=True))
            record["params"] = params
            record["auth"] = check_sigv4(self.command, self.path, headers, body, settings["secrets"])
        with LOCK:
            STATE["requests"].append(record)
        step = take_step(self.command, path)
        if step is not None:
            if step.get("delay"):
                time.sleep(step["delay"])
            if step.get("status") is not None:
                return self.answer(step["status"], step.get("body", ""), step.get("headers"))
        return self.serve(path, headers, params, settings)

    def serve(self, path, headers, params, settings):
        if path == "/latest/api/token" and self.command == "PUT":
            ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.answer(400, "")
            with LOCK:
                STATE["counter"] += 1
                token = "IMDSTOKEN-%d" % STATE["counter"]
                STATE["tokens"].add(token)
            return self.answer(200, token, {"x-aws-ec2-metadata-token-ttl-seconds": ttl})
        if path.startswith("/latest/") and self.command == "GET":
            token = headers.get("x-aws-ec2-metadata-token")
            with LOCK:
                known = token in STATE["tokens"]
            if (token is not None and not known) or (token is None and settings["imds_v2_only"]):
                return self.answer(401, "")
            base = "/latest/meta-data/iam/security-credentials/"
            if path == base:
                return self.answer(200, settings["role"])
            if path == base + settings["role"]:
                creds = settings["creds"]
                text = creds if isinstance(creds, str) else json.dumps(creds)
                return self.answer(200, text, {"Content-Type": "text/plain"})
            if path == "/latest/meta-data/placement/region":
                return self.answer(200, settings["region"])
            return self.answer(404, "")
        if path == settings["container_path"] and self.command == "GET":
            want = settings["container_token"]
            if want is not None and headers.get("authorization") != want:
                return self.answer(401, '{"error": "bad token"}')
            creds = settings["creds"]
            text = creds if isinstance(creds, str) else json.dumps(creds)
            return self.answer(200, text, {"Content-Type": "application/json"})
        if path == "/federation/credentials" and self.command == "GET":
            if headers.get("x-amz-sso_bearer_token") != settings["sso_token"]:
                return self.answer(401, '{"message": "Session token not found or invalid"}',
                                   {"x-amzn-ErrorType": "UnauthorizedException:http://internal.amazon.com/"})
            with LOCK:
                STATE["counter"] += 1
                n = STATE["counter"]
            return self.answer(200, json.dumps({"roleCredentials": {
                "accessKeyId": "ASIASSO00000000%04d" % n,
                "secretAccessKey": "ssoSECRETkey00000000000000000000000000%04d" % n,
                "sessionToken": "ssoTOKEN%04d" % n,
                "expiration": settings["sso_expiration_ms"]}}), {"Content-Type": "application/json"})
        if path == "/" and self.command == "POST":
            action = params.get("Action")
            if action == "GetCallerIdentity":
                return self.answer(200, (
                    '<GetCallerIdentityResponse xmlns="%s"><GetCallerIdentityResult>'
                    "<Arn>arn:aws:sts::123456789012:assumed-role/x/y</Arn><UserId>AROAEXAMPLE:y</UserId>"
                    "<Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata>"
                    "<RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>"
                    "</GetCallerIdentityResponse>" % STS_NS), {"Content-Type": "text/xml"})
            if action not in ("AssumeRole", "AssumeRoleWithWebIdentity"):
                return self.answer(400, "unknown action")
            with LOCK:
                STATE["counter"] += 1
                n = STATE["counter"]
            return self.answer(200, sts_answer(action, params, n, settings["sts_expiration"]),
                               {"Content-Type": "text/xml"})
        return self.answer(404, "")

    do_GET = do_PUT = do_POST = do_HEAD = handle_any


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
