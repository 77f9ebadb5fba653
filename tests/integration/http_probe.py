#!/usr/bin/env python3
"""HTTP requests the metrics tests make, run inside a test's namespace.

  http_probe.py get URL [--accept A] [--gzip]   status, headers, then the body (gunzipped)
  http_probe.py storm URL N                     N scrapes at once; prints "ok K refused R"
  http_probe.py slow HOST PORT SECONDS          a request sent a byte at a time, then never read
  http_probe.py header HOST PORT BYTES          a request with one header of BYTES; prints the status line
  http_probe.py query URL PROMQL                a Prometheus instant query; prints "value" or "none"
"""
import gzip
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def get(url, accept=None, gz=False):
    req = urllib.request.Request(url)
    if accept:
        req.add_header("Accept", accept)
    if gz:
        req.add_header("Accept-Encoding", "gzip")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            body = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return r.status, dict(r.headers), body
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main():
    cmd = sys.argv[1]
    if cmd == "get":
        url = sys.argv[2]
        accept = sys.argv[sys.argv.index("--accept") + 1] if "--accept" in sys.argv else None
        status, headers, body = get(url, accept, "--gzip" in sys.argv)
        print(status)
        for k, v in sorted(headers.items()):
            print(f"{k.lower()}: {v}")
        print()
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
    elif cmd == "storm":
        url, n = sys.argv[2], int(sys.argv[3])
        ok, refused = [0], [0]
        lock = threading.Lock()

        def one():
            try:
                status, _, body = get(url)
                good = status == 200 and body.endswith(b"\n")
            except Exception:
                good = False
            with lock:
                if good:
                    ok[0] += 1
                else:
                    refused[0] += 1

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"ok {ok[0]} refused {refused[0]}")
    elif cmd == "slow":
        host, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        s = socket.create_connection((host, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        end = time.time() + seconds
        for b in request:
            if time.time() > end:
                break
            s.send(bytes([b]))
            time.sleep(seconds / len(request))
        time.sleep(max(0, end - time.time()))  # the answer is never read
        print("done")
    elif cmd == "header":
        host, port, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        print(data.split(b"\r\n")[0].decode() if data else "closed")
    elif cmd == "query":
        url = sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[3]})
        _, _, body = get(url)
        result = json.loads(body)["data"]["result"]
        print(result[0]["value"][1] if result else "none")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
