"""moto's server mode with one request handled at a time.

moto's threaded server runs DynamoDB requests concurrently without locking, so a conditional
write is not atomic there: 64 concurrent `UpdateItem`s guarded by a condition admitted 24 where
DynamoDB (which serialises writes to one item) admits 20. Serialising requests restores
DynamoDB's guarantee; connections are still accepted on threads, so a slow client does not block
the others. moto is CPU-bound Python under the GIL, so throughput barely changes.

MOTO_FAST=1 (set by scripts/load.sh and scripts/bench.sh only, not by make test or make dev) turns
on shortcuts for sustained load; what the endpoint answers does not change: make test runs
scripts/moto_fast_check/check.py, which sends the same DynamoDB and Secrets Manager requests
(errors, 500s and index queries included) to this server with and without it and compares.
Gains are per call on this 2-core machine; each shortcut's function says why it is safe.
- TransactWriteItems snapshots just the items it names for its rollback. moto's own rollback
  deep-copies every table the transaction touches, so with a few thousand conversations stored
  each transaction took hundreds of milliseconds, growing with the table. The rollback is moto's.
- Query reads only the candidate items: the partition for a table query, the items whose index
  hash key matches for an index query (looked up by value, not by walking the table). moto itself sorts every item of the table on every Query
  (20 ms a query at 2,000 items, growing), then filters; the filters and the order are still moto's.
  Each result's size (for the 1 MB page) is worked out once, and the results are not deep-copied
  (a 24-item index query's table work: 1.4-1.8 ms -> 0.4-0.6 ms).
- HTTP/1.1 on one thread (serve_in_one_thread): connections stay open, and no thread parses
  HTTP under the GIL while moto works (werkzeug's threaded server closes every connection and
  starves the lock holder under load; its p95 time inside the lock was 4-6x the median).
- No full garbage collection while serving (fast_gc): its pauses of up to 190 ms on moto's
  growing heap stalled every queued request.
- Requests to DynamoDB and Secrets Manager skip Flask's dispatch around moto's handler
  (0.1-0.3 ms), and the backend of a host is resolved once instead of listing moto's package
  directory on every request (0.2-0.5 ms).
- Per-class and per-field lookups moto redoes on every request are kept: a handler's action
  names, the keys tried for a response field, the request id regex skipped where it cannot match
  (about 0.1 ms together).
- DynamoDB attribute values are read and written directly rather than by walking the botocore
  model member by member (0.9 ms of a 10-item Query, 0.1 ms elsewhere).
- Update expressions are parsed once per text, conditions tokenised once per text (0.35 ms of
  an UpdateItem) and parsed once per text, names and placeholders (a quarter of a
  transaction's time under cProfile). Update validation answers its per-node type checks once
  per node type (0.25 ms of an UpdateItem or transaction) and skips the three checks that read
  neither item nor values for an expression, names and table keys that passed them.
Together, over HTTP, calls take 40% of the time they took or less (GetItem 3.1 -> 1.3 ms,
conditional UpdateItem 6.4 -> 2.5 ms, TransactWriteItems 5.0 -> 2.2 ms, Query 7.8 -> 1.8 ms).

Usage: python moto_server.py [-H host] [-p port]   (MOTO_PROFILE=file: cProfile into file on exit;
MOTO_STATS=1 with MOTO_FAST: load and answer times per 10 s into the log)
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def fast_transactions() -> None:
    """TransactWriteItems with a rollback record of the named items only (see the module doc).

    moto keeps a table's items as {hash: item} or {hash: {range: item}}, replaces items on Put,
    pops them on Delete and changes them in place on Update, and touches nothing it is not named.
    moto's transact_write_items takes `copy.deepcopy(table)` as its snapshot and, to roll back,
    puts the snapshot in the table's place. Here that deep copy returns a shallow copy of the
    table (sharing its item map) and the named partitions are saved as they were, with deep
    copies of the named items: when moto puts that copy in place, the live table gets its named
    partitions back and takes its place again. Nothing is copied per item of the table (copying
    the table's map of partitions alone grew to a tenth of a transaction's time through a load run).
    """
    import copy

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    absent = object()

    def saved_partitions(table: Table, keys: list) -> dict:
        saved: dict = {}
        for hash_key, range_key in keys:
            if table.has_range_key:
                if hash_key not in saved:
                    live = table.items.get(hash_key, absent)
                    saved[hash_key] = absent if live is absent else dict(live)
                part = saved[hash_key]
                if part is not absent and range_key in part:
                    part[range_key] = copy.deepcopy(part[range_key])
            elif hash_key not in saved:
                live = table.items.get(hash_key, absent)
                saved[hash_key] = absent if live is absent else copy.deepcopy(live)
        return saved

    def restore(table: Table, saved: dict) -> None:
        for hash_key, part in saved.items():
            if part is absent:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = part

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
        saved = {tid: saved_partitions(table, keys) for tid, (table, keys) in named.items()}
        stand_ins = {tid: copy.copy(table) for tid, (table, _) in named.items()}

        def table_deepcopy(table: Table, memo: dict) -> Table:
            return stand_ins[id(table)]

        Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]
        try:
            return original(self, transact_items)
        except Exception:
            # Rolled back: moto put a stand-in where it found the table. Some errors leave the
            # writes before them in place, as moto does; then the table is still there.
            for tid, (table, _) in named.items():
                if self.tables.get(table.name) is stand_ins[tid]:
                    restore(table, saved[tid])
                    self.tables[table.name] = table
            raise
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

    Two more per-result costs, which were most of a 100-item Query's time: an item's size (for
    the 1 MB page limit) is worked out once per call instead of twice, strings, numbers and
    booleans sized directly, and the results are not deep-copied. That copy only guards the
    stored items against what follows it in the call: index and expression projections build
    new items, filters and the response only read.
    """
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    original = Table.query
    item_size = Item.size

    def value_size(value) -> int:  # type: ignore[no-untyped-def]
        """DynamoType.size of a string, number or boolean, without its chain of type tests;
        other types are sized by moto."""
        kind, inner = value.type, value.value
        if kind == "S" and type(inner) is str:
            return len(inner.encode("utf-8"))
        if kind == "N":
            return len(str(inner))
        if kind in ("BOOL", "NULL") and type(inner) is bool:
            return 1
        return value.size()

    item_deepcopy = Item.__deepcopy__

    def shared(item, memo):  # type: ignore[no-untyped-def]
        return item

    def query(self, hash_key, *args, **kwargs):  # type: ignore[no-untyped-def]
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        ranged = self.range_key_attr is not None
        if index_name:
            if not conditions:
                return original(self, hash_key, *args, **kwargs)
            items = _index_candidates(self, conditions[0])
            if items is None:  # not a string key: every item is a candidate
                items = _items(self)
            candidates = [i for i in items if all(_has(i, n, v) for n, v in conditions)]
        else:
            if hash_key is None:
                return original(self, hash_key, *args, **kwargs)
            part = self.items.get(hash_key)
            candidates = [] if part is None else list(part.values()) if ranged else [part]
        self.all_items = lambda: candidates
        sizes: dict = {}

        def size_once(item):  # type: ignore[no-untyped-def]
            found = sizes.get(id(item))
            if found is None:  # Item.size, summed as moto sums it
                found = sizes[id(item)] = sum(len(k.encode("utf-8")) + value_size(v) for k, v in item.attrs.items())
            return found

        # For the length of the call: the results' deep copy keeps the same items (nothing else
        # in a Query copies an item).
        Item.size = size_once  # type: ignore[method-assign]
        Item.__deepcopy__ = shared  # type: ignore[method-assign]
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items
            Item.size = item_size  # type: ignore[method-assign]
            Item.__deepcopy__ = item_deepcopy  # type: ignore[method-assign]

    Table.query = query  # type: ignore[method-assign]
    _track_index_keys()


# Index queries look their candidates up by the value of the index's hash key instead of
# walking every item of the table (a 10 ms walk per query at some 10,000 items, growing through
# a load run: the sustained phase's p99 rose from 40 to 175 ms). For each attribute an index
# query has named: value -> keys of the items that have held that value. It is a superset
# (nothing is removed on delete, update or a transaction's rollback), so every candidate is
# fetched from the table and checked against the query's conditions as before.
_INDEXED = "_fast_index_keys"


def _value_key(value):  # type: ignore[no-untyped-def]
    return (value.type, value.value) if value.type in ("S", "B") else None


def _item_key(item):  # type: ignore[no-untyped-def]
    return (item.hash_key, item.range_key)


def _items(table):  # type: ignore[no-untyped-def]
    """Every item of a table, in its own order (moto keeps {hash: item} or {hash: {range: item}})."""
    for part in table.items.values():
        yield from part.values() if table.range_key_attr else (part,)


def _note_one(keys: dict, name: str, item) -> None:  # type: ignore[no-untyped-def]
    found = item.attrs.get(name)
    vk = None if found is None else _value_key(found)
    if vk is not None:
        keys.setdefault(vk, {})[_item_key(item)] = None


def _note(table, item) -> None:  # type: ignore[no-untyped-def]
    by_attr = getattr(table, _INDEXED, None)
    if not by_attr or item is None:
        return
    for name, keys in by_attr.items():
        _note_one(keys, name, item)


def _index_candidates(table, condition):  # type: ignore[no-untyped-def]
    name, value = condition
    vk = _value_key(value)
    if vk is None:
        return None
    by_attr = table.__dict__.setdefault(_INDEXED, {})
    if name not in by_attr:  # first query on this attribute: index what the table holds
        keys: dict = {}
        by_attr[name] = keys
        for item in _items(table):
            _note_one(keys, name, item)
    out = []
    for hash_key, range_key in by_attr[name].get(vk, {}):
        part = table.items.get(hash_key)
        item = part if table.range_key_attr is None else None if part is None else part.get(range_key)
        if item is not None:
            out.append(item)
    return out


def _track_index_keys() -> None:
    """Every item written is noted under the indexed attributes' values (see above): puts of any
    kind (PutItem, BatchWriteItem, a transaction's Put, an update creating its item) go through
    Table.put_item; updates change items in place after DynamoDBBackend.update_item finds them."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    put_item, update_item = Table.put_item, DynamoDBBackend.update_item

    def tracked_put(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        item = put_item(self, *args, **kwargs)
        _note(self, item)
        return item

    def tracked_update(self, table_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        item = update_item(self, table_name, *args, **kwargs)
        _note(self.get_table(table_name), item)
        return item

    Table.put_item = tracked_put  # type: ignore[method-assign]
    DynamoDBBackend.update_item = tracked_update  # type: ignore[method-assign]


def fast_routing() -> None:
    """moto's list of its own service modules read once, and each host's backend resolved once.

    moto's server resolves the backend of every request by asking whether the host is one of
    moto's modules, which lists and stats moto's package directory on each request (0.2-0.5 ms,
    a third of a GetItem), and then by matching the host against some 180 URL patterns (40 us for
    a Secrets Manager request). Neither the package nor the patterns change while the server runs.
    """
    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]

    original = DomainDispatcherApplication.get_backend_for_host
    backends: dict = {}

    def get_backend_for_host(self, host):  # type: ignore[no-untyped-def]
        backend = backends.get(host)
        if backend is None:
            backend = original(self, host)
            if backend is not None:  # unknown hosts: moto's own answer (and warning) every time
                backends[host] = backend
        return backend

    DomainDispatcherApplication.get_backend_for_host = (  # type: ignore[method-assign]
        get_backend_for_host
    )


def fast_actions() -> None:
    """The action names of a response class, computed once per class.

    moto's call_action runs inspect.getmembers over the handler class on every request to check
    that the action is one of its methods; the classes do not change once the server is up.
    """
    import functools

    import moto.core.responses

    moto.core.responses.method_names_from_class = functools.cache(  # type: ignore[assignment]
        moto.core.responses.method_names_from_class
    )


def fast_request_ids() -> None:
    """The request id not searched for in response bodies that cannot hold one.

    After each action moto runs a look-behind regex over the whole response body to put the
    request id into an XML <RequestId> element: 30 us on a 3 KB Query answer, for JSON that has
    none. The regex still runs, as moto's own code, on any str body containing "<RequestId>",
    the only bodies it can change. (Drawing the id itself, one `random.choice` per character,
    costs 12 us; a cheaper draw would save 5 us but change the ids a seeded moto gives, so no.)
    """
    import moto.core.responses

    BaseResponse = moto.core.responses.BaseResponse
    enrich = BaseResponse._enrich_response

    def _enrich_response(headers, body):  # type: ignore[no-untyped-def]
        if not isinstance(body, str) or "<RequestId>" in body:
            return enrich(headers, body)
        # moto's _enrich_response less the substitution, which has nothing to match
        if "status" in headers:
            headers["status"] = str(headers["status"])
        moto.core.responses.gen_amzn_requestid_long(headers)
        return headers, body

    BaseResponse._enrich_response = staticmethod(  # type: ignore[method-assign, assignment]
        _enrich_response
    )


def fast_response_keys() -> None:
    """The keys tried for a response field of a dict, worked out once per field.

    moto's serializer finds each output field in the result by trying aliases from six alias
    providers, each instantiated per field per response. For a plain dict the aliases depend only
    on the field's shape, its parent shape and its name (no Meta class, class name "dict"), so
    they are computed by moto once per field; the lookup and transforms are moto's.
    """
    from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS, XFormedAttributePicker
    from moto.core.utils import MISSING, get_value

    original = XFormedAttributePicker.__call__
    possible: dict = {}

    def __call__(self, context):  # type: ignore[no-untyped-def]
        obj = context.obj
        if type(obj) is not dict or self.alias_providers is not DEFAULT_ALIAS_PROVIDERS:
            return original(self, context)
        shape = context.shape
        field = (shape, getattr(shape, "parent", None), context.key)
        keys = possible.get(field)
        if keys is None:
            if len(possible) >= 10000:  # shapes are the model's, a few hundred at most; in case
                possible.clear()
            keys = possible[field] = tuple(self.get_possible_keys(context))
        # moto's AttributePicker.__call__ from here
        for possible_key in keys:
            value = get_value(obj, possible_key, MISSING)
            if value is not MISSING:
                break
        else:
            value = None
        key_path = f"{context.key_path}.{context.key}"
        for transform_path, transform in self.response_transformers.items():
            if key_path.endswith(transform_path):
                value = transform(value)
                break
        return value

    XFormedAttributePicker.__call__ = __call__  # type: ignore[method-assign]


class _Slow(Exception):
    """An attribute value the fast path does not cover: moto's own code handles it."""


# DynamoDB's AttributeValue members in model order, without the binary ones (B, BS), which moto
# base64-converts; values holding those take moto's path.
_AV_MEMBERS = ("S", "N", "SS", "NS", "M", "L", "NULL", "BOOL")
_AV_KEYS = frozenset(_AV_MEMBERS)


def _converted_av(value, map_type, serializing):  # type: ignore[no-untyped-def]
    """What moto's JSON request parser (or, `serializing`, its response serializer) makes of an
    AttributeValue dict, or _Slow where moto's own walk must decide. The serializer drops or
    merges unknown members, empty map keys and null map values: those take moto's path; the
    parser keeps them, and passes a null value through."""
    if value is None and not serializing:
        return None
    if type(value) is not dict:
        raise _Slow
    if serializing and not _AV_KEYS.issuperset(value):
        raise _Slow
    if value.get("B") is not None or value.get("BS") is not None:
        raise _Slow
    out = map_type()
    for key in _AV_MEMBERS:
        v = value.get(key)
        if v is None:
            continue
        if key == "M":
            if type(v) is not dict:
                raise _Slow
            m = map_type()
            for name, sub in v.items():
                if serializing and (not name or sub is None):
                    raise _Slow
                m[name] = _converted_av(sub, map_type, serializing)
            v = m
        elif key == "L":
            if type(v) is not list:
                raise _Slow
            v = [_converted_av(sub, map_type, serializing) for sub in v]
        elif key in ("SS", "NS"):
            if type(v) is not list:
                raise _Slow
            v = list(v)
        out[key] = v
    return out


def fast_attribute_values() -> None:
    """DynamoDB attribute values converted directly instead of by moto's shape walk.

    moto reads requests and writes responses by walking the botocore model, and for each of the
    ten members of every AttributeValue its response side tries up to a dozen key aliases: that
    was a third of a Query's time. An attribute value is a dict of type code to value, which
    converts to itself; the fast path builds exactly what the walk builds (same members, same
    order, unknown request keys dropped), and anything else (binary values, odd shapes) still
    goes through moto's walk.
    """
    from moto.core.parse import JSONParser
    from moto.core.serialize import JSONSerializer

    serialize_structure = JSONSerializer._serialize_type_structure

    def _serialize_type_structure(  # type: ignore[no-untyped-def]
        self, serialized, value, shape, key
    ):
        if key and shape.name == "AttributeValue" and self.service_model.service_name == "dynamodb":
            try:
                wrapper = _converted_av(value, dict, serializing=True)
            except _Slow:
                pass
            else:
                self._default_serialize(serialized, wrapper, shape, key)
                return
        serialize_structure(self, serialized, value, shape, key)

    JSONSerializer._serialize_type_structure = (  # type: ignore[method-assign]
        _serialize_type_structure
    )

    parse_structure = JSONParser._parse_structure

    def _parse_structure(self, shape, value):  # type: ignore[no-untyped-def]
        service = self.operation_model.service_model.service_name
        if shape.name == "AttributeValue" and service == "dynamodb":
            try:
                return _converted_av(value, self.MAP_TYPE, serializing=False)
            except _Slow:
                pass
        return parse_structure(self, shape, value)

    JSONParser._parse_structure = _parse_structure  # type: ignore[method-assign]


def fast_expression_parsing() -> None:
    """Update expressions parsed once per text; condition expressions tokenised once per text.

    An UpdateItem parses its update expression twice (the handler, then the backend) and its
    condition twice, about a quarter of its time. A parsed update expression depends only on its
    text, and moto only reads it: validation works on a deep copy (validators.Validator), so one
    tree is shared by every request with that text. Conditions are parsed with their values, which
    change from call to call, so only their token list is kept, rebuilt as fresh tokens each time.
    Texts that fail to parse are not kept: each such request gets moto's error again.
    """
    import collections
    import functools

    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(  # type: ignore[method-assign, assignment]
        functools.lru_cache(maxsize=1024)(make)
    )

    lex = ConditionExpressionParser._lex_condition_expression
    Token = ConditionExpressionParser.Node
    lexed: dict = {}

    def _lex_condition_expression(self):  # type: ignore[no-untyped-def]
        text = self.condition_expression
        tokens = lexed.get(text)
        if tokens is None:
            nodes = lex(self)
            if any(node.children for node in nodes):  # moto's lexer makes leaves only
                return nodes
            if len(lexed) >= 1024:
                lexed.clear()
            tokens = lexed[text] = tuple(node[:4] for node in nodes)
        return collections.deque(Token(*token, []) for token in tokens)

    ConditionExpressionParser._lex_condition_expression = (  # type: ignore[method-assign]
        _lex_condition_expression
    )


def fast_condition_parsing() -> None:
    """Condition expressions parsed once per text, names and value placeholders.

    A TransactWriteItems of the chat store or the limiter carries a condition per item, and moto
    parses each (paths, functions, comparators, precedence) on every call: about a quarter of a
    transaction's time. The syntax tree depends on the text, the names and which placeholders
    exist, not on the values: a value leaf keeps its placeholder, and the operand moto builds
    from it is made from this request's value. Parse errors are not kept (the request that
    fails to parse gets moto's error each time), and moto's record of the names and values an
    expression used is replayed, so unused-value checks answer as before.
    """
    from moto.dynamodb import comparisons

    Parser = comparisons.ConditionExpressionParser
    parse = Parser.parse
    make_operand = Parser._make_operand
    trees: dict = {}

    def syntax_tree(self):  # type: ignore[no-untyped-def]
        # moto's parse() up to the tree it turns into an Op (moto/dynamodb/comparisons.py).
        nodes = self._lex_condition_expression()
        nodes = self._parse_paths(nodes)
        nodes = self._apply_functions(nodes)
        nodes = self._apply_comparator(nodes)
        nodes = self._apply_in(nodes)
        nodes = self._apply_between(nodes)
        nodes = self._apply_parens_and_booleans(nodes)
        node = nodes[0]
        self._assert_no_redundant_parentheses(node)
        return node, self._find_literals(node), self._find_expr_attr_values(node)

    def cached_parse(self):  # type: ignore[no-untyped-def]
        if not self.condition_expression:
            return parse(self)
        names, values = self.expression_attribute_names, self.expression_attribute_values
        key = (
            self.condition_expression,
            None if names is None else tuple(sorted(names.items())),
            None if values is None else tuple(sorted(values)),
        )
        tree = trees.get(key)
        if tree is None:
            tree = syntax_tree(self)
            if len(trees) >= 1024:
                trees.clear()
            trees[key] = tree
        node, found_names, found_values = tree
        self.expr_attr_names_found.extend(found_names)
        self.expr_attr_values_found.extend(found_values)
        return self._make_op_condition(node)

    def operand(self, node):  # type: ignore[no-untyped-def]
        if node.kind == Parser.Kind.EXPRESSION_ATTRIBUTE_VALUE:
            return comparisons.AttributeValue(self._lookup_expression_attribute_value(node.text))
        return make_operand(self, node)

    Parser.parse = cached_parse  # type: ignore[method-assign]
    Parser._make_operand = operand  # type: ignore[method-assign]


def fast_update_validation() -> None:
    """moto's update-expression validation with its per-node type checks done once per type.

    Validation runs ten tree walks, each asking every node `isinstance` against abstract node
    classes (ABCMeta checks, a third of an UpdateItem) and rebuilding its processing map per
    node. The walk, the processor choice (first match in the map's order), the clause search and
    the tree copy below are moto's code with those answers kept per node type (the maps are
    literal per class, so they are kept per processor class), and the walk skips calling the
    per-child hook where it is moto's no-op.
    """
    import copy

    from moto.dynamodb.parsing import ast_nodes, validators

    Node = ast_nodes.Node
    Expression = ast_nodes.Expression
    Function = ast_nodes.UpdateExpressionFunction
    no_notice = ast_nodes.DepthFirstTraverser.pre_processing_of_child  # moto's is a no-op
    is_node: dict = {}
    descends: dict = {}  # type -> isinstance(x, (Expression, UpdateExpressionFunction))
    processors: dict = {}  # (traverser class, node class) -> processing function or None

    def processor(self, node):  # type: ignore[no-untyped-def]
        key = (type(self), type(node))
        if key not in processors:
            found = None
            for class_key, process in self._processing_map().items():  # moto's process()
                if isinstance(node, class_key):
                    bound = getattr(process, "__self__", None) is self
                    found = process.__func__ if bound else lambda _, n, f=process: f(n)
                    break
            processors[key] = found
        return processors[key]

    def a_node(value) -> bool:  # type: ignore[no-untyped-def]
        value_type = type(value)
        if value_type not in is_node:
            is_node[value_type] = isinstance(value, Node)
        return is_node[value_type]

    def traverse_node_recursively(self, node, child_id=-1):  # type: ignore[no-untyped-def]
        if a_node(node):
            parent_node = node.parent
            if node.children is not None:
                notify = type(self).pre_processing_of_child is not no_notice
                for i, child_node in enumerate(node.children):
                    if notify:
                        self.pre_processing_of_child(node, i)
                    self.traverse_node_recursively(child_node, i)
            process = processor(self, node)
            if process is not None:
                node = process(self, node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    ast_nodes.DepthFirstTraverser.traverse_node_recursively = (  # type: ignore[method-assign]
        traverse_node_recursively
    )

    def find_clauses(self, clause_types):  # type: ignore[no-untyped-def]
        clauses = []
        for child in self.children or []:
            child_type = type(child)
            if child_type in clause_types:
                clauses.append(child)
                continue
            if child_type not in descends:
                descends[child_type] = isinstance(child, (Expression, Function))
            if descends[child_type]:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    Node.find_clauses = find_clauses  # type: ignore[method-assign]

    plain = (str, int, float, bool, type(None))

    def copy_tree(value, memo):  # type: ignore[no-untyped-def]
        """copy.deepcopy for moto's expression trees: nodes are plain objects (no copy hooks or
        slots) holding a type name, a parent and a list of children."""
        value_type = type(value)
        if value_type in plain:
            return value
        found = memo.get(id(value))
        if found is not None:
            return found
        if value_type is list:
            copied = []
            memo[id(value)] = copied
            copied.extend(copy_tree(item, memo) for item in value)
            return copied
        if a_node(value) and set(value.__dict__) == {"type", "children", "parent"}:
            copied = value_type.__new__(value_type)
            memo[id(value)] = copied
            copied.__dict__.update({k: copy_tree(v, memo) for k, v in value.__dict__.items()})
            return copied
        return copy.deepcopy(value, memo)

    def deepcopy(value, memo=None):  # type: ignore[no-untyped-def]
        if memo is None:
            memo = {}
        return copy_tree(value, memo)

    validators.deepcopy = deepcopy  # type: ignore[attr-defined]


def fast_static_update_checks() -> None:
    """The three update-expression checks that read neither the item nor the values, run once
    per expression, names and table keys that passed them.

    Of the ten walks of an update validation (a third of moto's time under the load test), the
    first three (one SET/ADD/REMOVE clause each, no overlapping paths, no key attribute updated)
    look only at the expression's tree, its names and the table's key attributes, and return the
    tree unchanged. The tree is the one parsed per text (fast_expression_parsing), so it names
    the text. A check that fails is not remembered: each such request gets moto's error.
    """
    from moto.dynamodb.parsing import validators

    static = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )
    Validator = validators.UpdateExpressionValidator
    init = Validator.__init__
    passed: set = set()

    def checked_init(self, expression, expression_attribute_names, expression_attribute_values, item, table):  # type: ignore[no-untyped-def]
        init(self, expression, expression_attribute_names, expression_attribute_values, item, table)
        names = expression_attribute_names
        self.static_key = (
            expression,
            None if names is None else tuple(sorted(names.items())),
            tuple(table.table_key_attrs),
        )

    def validate(self):  # type: ignore[no-untyped-def]
        n = self.node_to_validate
        known = self.static_key in passed
        for processor in self.processors:
            if isinstance(processor, static):
                if known:
                    continue
            elif not known:
                if len(passed) >= 1024:
                    passed.clear()
                passed.add(self.static_key)
                known = True
            n = processor.traverse(n)
        return n

    Validator.__init__ = checked_init  # type: ignore[method-assign]
    Validator.validate = validate  # type: ignore[method-assign]


def fast_dispatch(dispatcher):  # type: ignore[no-untyped-def]
    """DynamoDB and Secrets Manager requests handed to moto's handler without Flask's dispatch.

    moto serves each service through a Flask app whose only route sends everything to the
    service's handler, wrapped by moto's convert_to_flask_response; Flask's request and app
    contexts, routing, hooks and signals around it cost about 0.2 ms a request. For the SDK's
    requests (POST / with a JSON body, no query string, gzip or CORS headers), this does what that
    app does: the backend is still chosen by moto's dispatcher, moto's view wrapper is repeated
    line for line (same request class, behind a werkzeug proxy as Flask's `request` is), the
    only hooks the app has are moto's gzip hook (not applicable without gzip) and flask_cors,
    whose answer to a request without an Origin header is `Access-Control-Allow-Origin: *`.
    Anything else, or an app with other routes or hooks, goes through Flask.
    """
    from botocore.exceptions import ClientError
    from moto.core.utils import convert_to_flask_response
    from moto.moto_api import recorder
    from moto.moto_server.utilities import decompress_request_body
    from werkzeug.exceptions import HTTPException
    from werkzeug.local import LocalProxy

    handlers: dict = {}  # Flask app -> moto's handler, or None to use the app

    def handler_of(app):  # type: ignore[no-untyped-def]
        rules = list(app.url_map.iter_rules())
        if app.service not in ("dynamodb", "secretsmanager") or len(rules) != 1:
            return None
        view = app.view_functions.get(rules[0].endpoint)
        after = app.after_request_funcs.get(None, [])
        if (
            rules[0].rule != "/"
            or not isinstance(view, convert_to_flask_response)
            or app.before_request_funcs != {None: [decompress_request_body]}
            or len(after) != 1
            or after[0].__name__ != "cors_after_request"
            or set(app.after_request_funcs) != {None}
        ):
            return None
        return view.callback

    def fast(environ, start_response):  # type: ignore[no-untyped-def]
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") != "/"
            or environ.get("QUERY_STRING")
            or not environ.get("CONTENT_TYPE", "").startswith("application/x-amz-json-1.")
            or "HTTP_CONTENT_ENCODING" in environ
            or "HTTP_ORIGIN" in environ
            or "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" in environ
        ):
            return dispatcher(environ, start_response)
        app = dispatcher.get_application(environ)
        if app not in handlers:
            handlers[app] = handler_of(app)
        handler = handlers[app]
        if handler is None:
            return app(environ, start_response)
        # No app context: the request would read only form-body limits and a debug aid for file
        # uploads from it, and these JSON requests have neither.
        req = app.request_class(environ)
        request = LocalProxy(lambda: req)
        try:
            # moto's convert_to_flask_response.__call__
            try:
                recorder._record_request(request)
                result = handler(request, request.url, dict(request.headers))
            except ClientError as exc:
                result = 400, {}, exc.response["Error"]["Message"]
            if len(result) == 3:
                status, headers, content = result
            else:
                status, headers, content = 200, {}, result
            response = app.response_class(response=content, status=status, headers=headers)
        except HTTPException as e:  # as Flask answers an HTTP error raised by a view
            response = app.response_class.force_type(e, environ)
        if not response.headers.get("Access-Control-Allow-Origin"):  # flask_cors, no Origin
            response.headers.add("Access-Control-Allow-Origin", "*")
        return response(environ, start_response)

    return fast


class Stats:
    """MOTO_STATS=1: one line per 10 s on stderr (the moto log) with the requests served, the
    share of the period spent answering them (busy; near 100 % means requests queue), the median,
    p99 and longest answer and the longest one's action, then the three actions that took most of
    the busy time. Tells a saturated server from one that stalled (a few long answers), which is
    what a load test's tail is made of, and which calls made it busy."""

    PERIOD = 10.0

    def __init__(self) -> None:
        import time

        self.clock = time.perf_counter
        self.start = self.clock()
        self.times: list = []
        self.slowest = (0.0, "")
        self.by_action: dict = {}  # action -> [calls, seconds]

    def record(self, seconds: float, action: str) -> None:
        self.times.append(seconds)
        entry = self.by_action.setdefault(action, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
        if seconds > self.slowest[0]:
            self.slowest = (seconds, action)
        now = self.clock()
        if now - self.start >= self.PERIOD:
            self.flush(now)

    def flush(self, now: float) -> None:
        import sys
        import time

        times = sorted(self.times)
        n = len(times)
        busy = sum(times) / (now - self.start)
        pick = lambda q: times[min(n - 1, int(q * n))] * 1000  # noqa: E731
        # Where the busy time went: the three actions that took most of it, with their calls and
        # mean time (which kind of request to make cheaper or fewer).
        total = sum(times) or 1.0
        top = sorted(self.by_action.items(), key=lambda kv: -kv[1][1])[:3]
        shares = ", ".join(
            f"{a.rsplit('.', 1)[-1]} {c}x {t / c * 1000:.1f} ms {t / total:.0%}" for a, (c, t) in top
        )
        print(
            f"moto-stats {time.strftime('%H:%M:%S')} {n} requests busy {busy:.0%} "
            f"p50 {pick(0.5):.1f} ms p99 {pick(0.99):.1f} ms max {self.slowest[0] * 1000:.1f} ms ({self.slowest[1]})"
            f" | {shares}",
            file=sys.stderr,
            flush=True,
        )
        self.start, self.times, self.slowest, self.by_action = now, [], (0.0, ""), {}


def serve_in_one_thread(app, host: str, port: int, stats: "Stats | None" = None) -> None:  # type: ignore[no-untyped-def]
    """HTTP/1.1 on one asyncio thread, each request answered to the end before the next starts.

    With werkzeug's threaded server every open connection has a thread parsing HTTP under the
    GIL while the one holding the request lock works: timed inside the lock under the load test,
    a TransactWriteItems took 2.9 ms at the median but 12.6 ms at p95 (1.9 ms alone), and the
    queue for the lock reached p95 180-310 ms at 60 req/s. Here nothing else runs while moto
    works, so a call costs what it costs alone, and requests queue in arrival order in the
    kernel's socket buffers. Connections stay open (the SDK's pool); Nagle is off (a response is
    one write anyway); `Expect: 100-continue` and chunked bodies are handled. The per-request
    log line werkzeug prints is not written.
    """
    import asyncio
    import io
    import socket
    import sys
    import traceback
    from email.utils import formatdate
    from urllib.parse import unquote

    from importlib.metadata import version
    from platform import python_version

    from werkzeug.exceptions import InternalServerError

    server_header = f"Werkzeug/{version('werkzeug')} Python/{python_version()}"  # as werkzeug's

    async def read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    def respond(environ: dict) -> tuple:
        try:
            return respond_with(app, environ)
        except Exception:  # as werkzeug: the traceback is logged, the client gets its 500 page
            traceback.print_exc(file=sys.stderr)
            return respond_with(InternalServerError(), environ)

    def respond_with(wsgi, environ: dict) -> tuple:  # type: ignore[no-untyped-def]
        started: list = []

        def start_response(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
            started[:] = [status, headers]

        chunks = wsgi(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return started[0], started[1], body

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:] if line)]
                lower = {n.lower(): v for n, v in headers}
                if lower.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if "chunked" in lower.get("transfer-encoding", "").lower():
                    body = await read_chunked(reader)
                else:
                    body = await reader.readexactly(int(lower.get("content-length") or 0))
                path, _, query = target.partition("?")
                environ = {
                    "REQUEST_METHOD": method,
                    "SCRIPT_NAME": "",
                    "PATH_INFO": unquote(path, "latin-1"),
                    "QUERY_STRING": query,
                    "REQUEST_URI": target,
                    "RAW_URI": target,
                    "SERVER_NAME": host,
                    "SERVER_PORT": str(port),
                    "SERVER_PROTOCOL": version,
                    "REMOTE_ADDR": peer[0],
                    "REMOTE_PORT": str(peer[1]),
                    "CONTENT_TYPE": lower.get("content-type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "wsgi.version": (1, 0),
                    "wsgi.url_scheme": "http",
                    "wsgi.input": io.BytesIO(body),
                    "wsgi.errors": sys.stderr,
                    "wsgi.multithread": False,
                    "wsgi.multiprocess": False,
                    "wsgi.run_once": False,
                }
                for name, value in headers:
                    key = "HTTP_" + name.upper().replace("-", "_")
                    if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                        environ[key] = f"{environ[key]},{value}" if key in environ else value
                if stats is None:
                    status, response_headers, out = respond(environ)
                else:
                    began = stats.clock()
                    status, response_headers, out = respond(environ)
                    stats.record(stats.clock() - began, lower.get("x-amz-target", path))
                close = lower.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                hop = {"content-length", "transfer-encoding", "connection"}
                lines_out = [f"HTTP/1.1 {status}", f"Server: {server_header}", f"Date: {formatdate(usegmt=True)}"]
                lines_out += [f"{n}: {v}" for n, v in response_headers if n.lower() not in hop | {"server", "date"}]
                lines_out.append(f"Content-Length: {len(out)}")
                if close:
                    lines_out.append("Connection: close")
                writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else out))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(connection, host, port, limit=1 << 20, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


def fast_gc() -> None:
    """No full garbage collections while serving (young ones as usual).

    Under the load test moto's heap grows with every item stored, and CPython's full collection
    walks all of it: measured there, 875 collections took 1.03 s in all but the longest five
    took 71-186 ms each, and with one request served at a time every request queued behind such
    a pause waited for it (the load test's p99). Requests' short-lived cycles die in the young
    generations, which still run; the objects moto builds at startup are frozen out of the scan.
    A cycle that outlives two young collections stays until the server exits, which for a load
    run or a bench is bounded and for `make dev` does not apply (no MOTO_FAST there).
    """
    import gc

    gc.freeze()
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, 1 << 30)


def make_app(fast: bool):  # type: ignore[no-untyped-def]
    """moto's WSGI app, serialised, with the MOTO_FAST shortcuts when `fast`."""
    if fast:
        fast_transactions()
        fast_queries()
        fast_routing()
        fast_actions()
        fast_request_ids()
        fast_response_keys()
        fast_attribute_values()
        fast_expression_parsing()
        fast_condition_parsing()
        fast_update_validation()
        fast_static_update_checks()

    app = DomainDispatcherApplication(create_backend_app)
    if fast:
        app = fast_dispatch(app)
    lock = threading.Lock()

    def serialised(environ, start_response):  # type: ignore[no-untyped-def]
        with lock:
            # moto answers with complete bodies: materialise inside the lock.
            return list(app(environ, start_response))

    return serialised


def profile(path: str) -> None:
    """MOTO_PROFILE=file: cProfile the whole server, written to `file` when it is terminated
    (pstats reads it), to see where a load test's DynamoDB time goes."""
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_):  # type: ignore[no-untyped-def]
        profiler.disable()
        profiler.dump_stats(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    signal.signal(signal.SIGINT, dump)
    profiler.enable()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does
    fast = os.environ.get("MOTO_FAST") == "1"
    profile_to = os.environ.get("MOTO_PROFILE")
    if profile_to:
        profile(profile_to)
    app = make_app(fast)
    if fast:
        fast_gc()
        stats = Stats() if os.environ.get("MOTO_STATS") == "1" else None
        serve_in_one_thread(app, args.host, args.port, stats)
    else:
        run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
