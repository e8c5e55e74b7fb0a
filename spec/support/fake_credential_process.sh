#!/bin/sh
# A stand-in `credential_process` program for spec/credentials_chain_spec.lua
# (the output format is the AWS SDKs reference guide's "Process credential
# provider"). usage: fake_credential_process.sh MODE [ARG...]
#   ok [ACCESS_KEY]      Version 1 with a session token, no expiration
#   expiring EXPIRATION COUNTER_FILE
#                        numbered keys (the counter file counts the runs)
#   args A B ...         the access key is the arguments joined with "|"
#   fail                 prints credentials on stdout, a message on stderr, exit 3
#   badjson | version2 | noversion | missing | wrongtype | badexp | empty
set -u
secret=procSECRETkey000000000000000000000000001
case "$1" in
ok) printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s", "SessionToken": "procTOKEN01"}\n' \
      "${2:-AKIAPROCESS00000001}" "$secret" ;;
expiring)
  n=$(cat "$3" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$3"
  printf '{"Version": 1, "AccessKeyId": "AKIAPROCESS0000000%02d", "SecretAccessKey": "%s", "SessionToken": "procTOKEN%02d", "Expiration": "%s"}\n' \
    "$n" "$secret" "$n" "$2" ;;
args) shift; IFS='|'; printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s"}\n' "$*" "$secret" ;;
fail) printf '{"Version": 1, "AccessKeyId": "AKIAPROCESS00000001", "SecretAccessKey": "%s"}\n' "$secret"
      echo "token expired: run the login command again" >&2; exit 3 ;;
badjson) printf '{"Version": 1, "AccessKeyId": "AKIAPROCESS00000001", "SecretAccessKey": "%s"\n' "$secret" ;;
version2) printf '{"Version": 2, "AccessKeyId": "AKIAPROCESS00000001", "SecretAccessKey": "%s"}\n' "$secret" ;;
noversion) printf '{"AccessKeyId": "AKIAPROCESS00000001", "SecretAccessKey": "%s"}\n' "$secret" ;;
missing) printf '{"Version": 1, "AccessKeyId": "AKIAPROCESS00000001", "SessionToken": "%s"}\n' "$secret" ;;
wrongtype) printf '{"Version": 1, "AccessKeyId": 12345, "SecretAccessKey": "%s"}\n' "$secret" ;;
badexp) printf '{"Version": 1, "AccessKeyId": "AKIAPROCESS00000001", "SecretAccessKey": "%s", "Expiration": "tomorrow"}\n' "$secret" ;;
empty) ;;
*) echo "unknown mode $1" >&2; exit 64 ;;
esac
