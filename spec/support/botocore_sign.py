#!/usr/bin/python3
"""Sign requests with botocore, an independent SigV4 implementation.

Used by spec/sigv4_spec.lua to check the project's C signer on random
requests, and to compute the expected values of the project's own cases in
spec/sigv4/. Run it with Debian's interpreter (/usr/bin/python3, which has
python3-botocore), not whatever python3 is first on PATH.

Input (stdin): a JSON list of requests in the request format of
../shared/testdata/sigv4/generated/*.json:
    {method, host, path, query, headers, body, region, service,
     credentials: {accessKeyId, secretAccessKey, sessionToken?},
     date ("20150830T123600Z") or epoch (seconds),
     mode ("header" | "presign"), expires, s3, signBody, unsignedPayload,
     scheme (extension: default "https")}
  query:   a list of decoded [name, value] pairs (a wire-form string is
           passed through untouched: botocore does not re-encode it);
  headers: a list of [name, value] pairs (repeats kept in order) or an object;
  body:    a string, {"hex": ...}, {"base64": ...} or {"repeat": s, "count": n}.
Output (stdout): a JSON list, one object per request:
    {canonical_request, string_to_sign, signature,
     authorization (header mode) | url (presign mode)}

With --fill FILE...: read each case file ({request, ...}), compute
"expected" with botocore and write the file back (for spec/sigv4/).

The clock is frozen by setting request.context['timestamp'] and running
botocore's own signing steps (the ones SigV4Auth.add_auth runs after
reading the clock) one by one, so that the canonical request and string to
sign can be reported too.
"""
import base64
import datetime
import hashlib
import json
import sys

from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def body_bytes(body):
    if body is None:
        return b''
    if isinstance(body, str):
        return body.encode('utf-8')
    if 'hex' in body:
        return bytes.fromhex(body['hex'])
    if 'base64' in body:
        return base64.b64decode(body['base64'])
    if 'repeat' in body:
        return (body['repeat'] * body['count']).encode('utf-8')
    raise ValueError('unknown body form')


def pairs(value):
    if not value:
        return []
    if isinstance(value, dict):
        return list(value.items())
    return [(p[0], p[1] if len(p) > 1 and p[1] is not None else '') for p in value]


def sign(case):
    if 'date' in case:
        timestamp = case['date']
    else:
        timestamp = datetime.datetime.fromtimestamp(
            case['epoch'], datetime.timezone.utc).strftime(auth.SIGV4_TIMESTAMP)
    cred = case['credentials']
    credentials = Credentials(cred['accessKeyId'], cred['secretAccessKey'],
                              cred.get('sessionToken'))
    s3 = bool(case.get('s3'))
    presign = case.get('mode') == 'presign'
    service, region = case['service'], case['region']
    if presign:
        cls = auth.S3SigV4QueryAuth if s3 else auth.SigV4QueryAuth
        signer = cls(credentials, service, region, case.get('expires', 3600))
    else:
        cls = auth.S3SigV4Auth if s3 else auth.SigV4Auth
        signer = cls(credentials, service, region)

    body = body_bytes(case.get('body'))
    url = '%s://%s%s' % (case.get('scheme', 'https'), case['host'], case.get('path') or '/')
    query = case.get('query')
    if isinstance(query, str) and query:
        url += '?' + query
    request = AWSRequest(method=case.get('method', 'GET'), url=url, data=body or None)
    if not isinstance(query, str):
        request.params = pairs(query)
    for name, value in pairs(case.get('headers')):
        request.headers[name] = value  # HTTPHeaders: appends, keeps repeats
    if case.get('unsignedPayload'):
        if s3:
            request.context['client_config'] = Config(s3={'payload_signing_enabled': False})
        else:
            request.context['payload_signing_enabled'] = False
    if case.get('signBody') and not s3:
        request.headers['X-Amz-Content-SHA256'] = hashlib.sha256(body).hexdigest()

    request.context['timestamp'] = timestamp
    signer._modify_request_before_signing(request)
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    signature = signer.signature(string_to_sign, request)
    signer._inject_signature_to_request(request, signature)
    out = {
        'canonical_request': canonical_request,
        'string_to_sign': string_to_sign,
        'signature': signature,
    }
    if presign:
        out['url'] = request.url
    else:
        out['authorization'] = request.headers['Authorization']
    return out


def main(argv):
    if len(argv) > 1 and argv[1] == '--fill':
        import botocore
        for path in argv[2:]:
            with open(path, encoding='utf-8') as f:
                case = json.load(f)
            case['expected'] = sign(case['request'])
            case['verified_by'] = ['botocore %s' % botocore.__version__]
            with open(path, 'w', encoding='utf-8') as f:
                json.dump(case, f, indent=2, ensure_ascii=False)
                f.write('\n')
        return 0
    cases = json.load(sys.stdin)
    json.dump([sign(c) for c in cases], sys.stdout, ensure_ascii=False)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
