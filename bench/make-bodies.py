#!/usr/bin/env python3
"""Pre-signed MineOS delete webhooks for bench/intake.lua: one file per wrk thread, one line per
request ("<X-Mine-Signature>\t<body>"), every trace and request id distinct across all files.

    bench/make-bodies.py <count-per-file> <files> <webhook-secret> <out-dir>
"""
import base64
import hashlib
import hmac
import json
import sys

per_file, files, secret, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
for f in range(files):
    with open(f"{out}/bodies-{f}.txt", "w") as w:
        for i in range(per_file):
            n = f * per_file + i
            body = json.dumps({
                "traceId": f"bench-trace-{n:09d}",
                "integrationId": "bench",
                "isTest": False,
                "request": {"id": f"bench-req-{n:09d}", "type": "delete", "source": "Form",
                            "domain": "example.com", "createdAt": "2026-12-01T10:00:00.000Z",
                            "requestType": {"id": "delete", "name": "delete"}},
                "userInfo": {"name": "Bench Subject", "email": f"subject{n}@example.com",
                             "isVerified": True, "customFields": {}},
            }, separators=(",", ":"))
            sig = base64.b64encode(hmac.new(secret, body.encode(), hashlib.sha256).digest())
            w.write(sig.decode() + "\t" + body + "\n")
