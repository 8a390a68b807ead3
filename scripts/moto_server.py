"""moto's server mode with one request handled at a time.

moto's threaded server runs DynamoDB requests concurrently without locking, so a conditional
write is not atomic there: 64 concurrent `UpdateItem`s guarded by a condition admitted 24 where
DynamoDB (which serialises writes to one item) admits 20. Serialising requests restores
DynamoDB's guarantee; connections are still accepted on threads, so a slow client does not block
the others. moto is CPU-bound Python under the GIL, so throughput barely changes.

Usage: python moto_server.py [-H host] [-p port]
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            # moto answers with complete bodies: materialise inside the lock.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, serialised, threaded=True)


if __name__ == "__main__":
    main()
