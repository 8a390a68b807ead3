"""MOTO_FAST answers as stock moto does (scripts/moto_server.py's shortcuts change speed only).

Starts scripts/moto_server.py twice, without and with MOTO_FAST=1, sends each the same request
sequences (requests_all.py, requests_index.py, requests_pages.py) and compares every status,
header and body, with request ids, timestamps and random suffixes normalised. Exits 1 on any
difference.
Run by scripts/test.sh (make test) with the project's moto virtualenv:

    .local/venv/bin/python scripts/moto_fast_check/check.py
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "moto_server.py")
SEQUENCES = ("requests_all.py", "requests_index.py", "requests_pages.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timestamps_out(value):  # type: ignore[no-untyped-def]
    """Epoch seconds (CreationDateTime and the like) differ between two servers."""
    if isinstance(value, dict):
        return {k: timestamps_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [timestamps_out(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1e9 < value < 2e10:
        return "<ts>"
    return value


def answers(fast: bool, workdir: str) -> dict:
    port = free_port()
    env = dict(os.environ)
    env.pop("MOTO_FAST", None)
    env["PYTHONHASHSEED"] = "0"  # moto keeps sets as Python sets: the same member order in both
    if fast:
        env["MOTO_FAST"] = "1"
    log = open(os.path.join(workdir, f"moto-{'fast' if fast else 'stock'}.log"), "w")
    server = subprocess.Popen([sys.executable, SERVER, "-p", str(port)], env=env, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"moto_server.py did not start (log: {log.name})")
        out = {}
        for seq in SEQUENCES:
            path = os.path.join(workdir, f"{seq}-{fast}.json")
            subprocess.run([sys.executable, os.path.join(HERE, seq), str(port), path], check=True, stdout=subprocess.DEVNULL)
            with open(path) as f:
                out[seq] = timestamps_out(json.load(f))
        return out
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        stock, fast = answers(False, workdir), answers(True, workdir)
    failed = 0
    for seq in SEQUENCES:
        pairs = list(zip(stock[seq], fast[seq]))
        differing = [i for i, (a, b) in enumerate(pairs) if a != b]
        if len(stock[seq]) != len(fast[seq]):
            differing.append(len(pairs))
        for i in differing[:5]:
            print(f"{seq} request {i} differs:\n  stock: {json.dumps(stock[seq][i:i+1])[:600]}\n  fast:  {json.dumps(fast[seq][i:i+1])[:600]}")
        print(f"{seq}: {len(pairs)} requests, {len(differing)} answered differently with MOTO_FAST=1")
        failed += len(differing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
