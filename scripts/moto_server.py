"""moto's server mode, with every API call handled atomically.

DynamoDB applies each request atomically (an UpdateItem is never seen half done; a
TransactWriteItems is serializable). moto's threaded server does not: it writes an updated item
key-first, and a transaction restores whole-table snapshots when it is cancelled, undoing
concurrent writes of other requests. Tests of concurrent conditional writes (duplicate webhook
deliveries, rate-limit buckets) need DynamoDB's guarantee, so each call runs under one lock;
moto runs on one core under the GIL anyway, so this costs next to nothing.
"""
import threading

from moto.core.responses import BaseResponse
from moto.server import main

_lock = threading.RLock()
_call_action = BaseResponse.call_action


def _atomic_call_action(self):  # type: ignore[no-untyped-def]
    with _lock:
        return _call_action(self)


BaseResponse.call_action = _atomic_call_action  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
