"""Latency through the API as AWS runs it (make bench): the release gateway in front of the release
function binaries under a Lambda Runtime API. Prints markdown rows.

usage: bench_stack.py BASE_URL TOKEN N

- /live, sequential, warm: the whole hop (client -> REST API emulation -> Runtime API ->
  health process -> back), p50 / p99 over N requests after one warm-up;
- chat completions, sequential, warm, the fake provider answering at once: time to the first
  `event: delta` byte (first-token overhead: all of it is the stack's and the function's, the
  provider adds none) and to the end of the stream, p50 / p99 over N.
"""

import http.client
import statistics
import sys
import time
import urllib.parse


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main(base, token, n):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def get(path):
        conn.request("GET", u.path + path)
        r = conn.getresponse()
        r.read()
        return r.status

    assert get("/live") == 200
    live = []
    for _ in range(n):
        t = time.perf_counter()
        assert get("/live") == 200
        live.append((time.perf_counter() - t) * 1000)

    first, total = [], []
    body = '{"message":"Salaam! aap kaise hain?"}'
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    for i in range(n + 1):
        t = time.perf_counter()
        conn.request("POST", u.path + "/api/v1/chat/completions", body=body, headers=headers)
        r = conn.getresponse()
        assert r.status == 200, r.status
        seen, got_first = b"", None
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            seen += chunk
            if got_first is None and b"event: delta" in seen:
                got_first = time.perf_counter()
        end = time.perf_counter()
        assert b"event: done" in seen, seen[-300:]
        if i == 0:
            continue  # the chat instance's cold start
        first.append((got_first - t) * 1000)
        total.append((end - t) * 1000)

    row = lambda name, v: print(f"| {name} | {statistics.median(v):.2f} ms | {pct(v, 99):.2f} ms |")
    print(f"| through the Lambda-shaped stack, sequential, warm (n={n}) | p50 | p99 |")
    print("|---|---|---|")
    row("GET /live", live)
    row("completion: first delta (first-token overhead; provider answers at once)", first)
    row("completion: whole stream (fake provider, 20 chunks, no delay)", total)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
