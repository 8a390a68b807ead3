"""moto's server mode with one request handled at a time.

moto's threaded server runs DynamoDB requests concurrently without locking, so a conditional
write is not atomic there: 64 concurrent `UpdateItem`s guarded by a condition admitted 24 where
DynamoDB (which serialises writes to one item) admits 20. Serialising requests restores
DynamoDB's guarantee; connections are still accepted on threads, so a slow client does not block
the others. moto is CPU-bound Python under the GIL, so throughput barely changes.

MOTO_FAST=1 (set by scripts/load.sh and scripts/bench.sh only, not by make test or make dev) turns
on two shortcuts for sustained load; what the endpoint answers does not change:
- TransactWriteItems snapshots just the items it names for its rollback. moto's own rollback
  deep-copies every table the transaction touches, so with a few thousand conversations stored
  each transaction took hundreds of milliseconds, growing with the table. The rollback is moto's.
- Query reads only the candidate items: the partition for a table query, the items whose index
  hash key matches for an index query. moto itself sorts every item of the table on every Query
  (20 ms a query at 2,000 items, growing), then filters; the filters and the order are still moto's.
- HTTP/1.1 keep-alive: the SDK's pooled connections are kept instead of a new connection and
  thread per request (about a tenth of moto's time per call).

Usage: python moto_server.py [-H host] [-p port]
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, run_simple


def fast_transactions() -> None:
    """TransactWriteItems with a rollback snapshot of the named items only (see the module doc).

    moto keeps a table's items as {hash: item} or {hash: {range: item}}, replaces items on Put,
    pops them on Delete and changes them in place on Update. The snapshot is a shallow copy of the
    table whose item map is copied one level down for the partitions the transaction names, with
    deep copies of the items it names; everything else is shared, as nothing else changes.
    moto's transact_write_items takes `copy.deepcopy(table)` as its snapshot: for the length of
    the call (requests are serialised) that deep copy returns the prepared one.
    """
    import copy

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items

    def snapshot(table: Table, keys: list) -> Table:
        snap = copy.copy(table)
        items = table.items.copy()
        for hash_key, range_key in keys:
            if table.has_range_key:
                if hash_key in items:
                    part = dict(items[hash_key])
                    if range_key in part:
                        part[range_key] = copy.deepcopy(part[range_key])
                    items[hash_key] = part
            elif hash_key in items:
                items[hash_key] = copy.deepcopy(items[hash_key])
        snap.items = items
        return snap

    def transact_write_items(self, transact_items):  # type: ignore[no-untyped-def]
        named: dict[int, tuple[Table, list]] = {}
        for item in transact_items:
            try:
                _, op = next(iter(item.items()))
                table = self.tables.get(op.get("TableName"))
                if table is None:
                    continue
                key = self.get_keys_value(table, op["Item"] if "Item" in op else op["Key"])
            except Exception:  # malformed: moto's own code answers it
                return original(self, transact_items)
            named.setdefault(id(table), (table, []))[1].append(key)
        snapshots = {tid: snapshot(table, keys) for tid, (table, keys) in named.items()}

        def table_deepcopy(table: Table, memo: dict) -> Table:
            return snapshots[id(table)]

        Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]
        try:
            return original(self, transact_items)
        finally:
            del Table.__deepcopy__  # type: ignore[attr-defined]

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _has(item, name, value) -> bool:  # type: ignore[no-untyped-def]
    found = item.attrs.get(name)
    if found is None:
        return False
    if found.type == "S" and value.type == "S":  # strings: moto's == without its casting
        return found.value == value.value
    return found == value


def fast_queries() -> None:
    """Query with moto's item scan narrowed to the candidates (see the module doc).

    moto's Table.query starts from `self.all_items()` (every item, sorted) and keeps those whose
    keys match; for the length of the call that method returns just the items that can match.
    moto's own matching, sorting, paging and filtering then run on them unchanged.
    """
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self, hash_key, *args, **kwargs):  # type: ignore[no-untyped-def]
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        ranged = self.range_key_attr is not None
        if index_name:
            if not conditions:
                return original(self, hash_key, *args, **kwargs)
            parts = self.items.values()
            items = (i for part in parts for i in part.values()) if ranged else iter(parts)
            candidates = [i for i in items if all(_has(i, n, v) for n, v in conditions)]
        else:
            if hash_key is None:
                return original(self, hash_key, *args, **kwargs)
            part = self.items.get(hash_key)
            candidates = [] if part is None else list(part.values()) if ranged else [part]
        self.all_items = lambda: candidates
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does
    if os.environ.get("MOTO_FAST") == "1":
        fast_transactions()
        fast_queries()
        WSGIRequestHandler.protocol_version = "HTTP/1.1"

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            # moto answers with complete bodies: materialise inside the lock.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, serialised, threaded=True)


if __name__ == "__main__":
    main()
