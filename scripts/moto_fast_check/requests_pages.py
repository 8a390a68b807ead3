"""Query pages cut by DynamoDB's 1 MB result limit, for check.py: python requests_pages.py PORT OUTFILE.

MOTO_FAST sizes a Query's items itself, and around the limit one byte counted wrong moves the
cut. Each partition holds two large items and a third with an attribute of every type
(multibyte strings and names, long numbers, booleans, null, lists, maps, sets, binary), padded
so that the three come to the limit plus a delta of -3 to +3 bytes as moto sizes items; every
partition is queried on the table and on the index, whole and counted only."""
import base64
import http.client
import json
import sys

port, out = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
H = {"Content-Type": "application/x-amz-json-1.0",
     "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc"}
res = []
LIMIT = 1_000_000


def call(op, body):  # type: ignore[no-untyped-def]
    h = dict(H)
    h["X-Amz-Target"] = "DynamoDB_20120810." + op
    c.request("POST", "/", json.dumps(body), h)
    r = c.getresponse()
    d = r.read()
    try:
        d = json.loads(d)
    except Exception:
        d = d.decode()
    res.append([op, r.status, d])
    return d


def size(value) -> int:  # type: ignore[no-untyped-def]
    """moto's DynamoType.size of a wire value."""
    (kind, inner), = value.items()
    if kind == "N":
        return len(inner)
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "BS":
        return sum(len(base64.b64decode(v)) for v in inner)
    if kind == "B":  # moto holds the bytes a request's base64 text decodes to
        return len(base64.b64decode(inner))
    if kind == "NS":
        return sum(len(v) for v in inner)
    if kind == "L":
        return sum(size(v) for v in inner)
    if kind == "M":
        return sum(len(k.encode()) + size(v) for k, v in inner.items())
    if kind in ("BOOL", "NULL"):
        return 1
    return len(inner.encode())  # S


def item_size(item) -> int:  # type: ignore[no-untyped-def]
    return sum(len(k.encode()) + size(v) for k, v in item.items())


call("CreateTable", {"TableName": "pages", "BillingMode": "PAY_PER_REQUEST",
     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gpk", "gsk")],
     "GlobalSecondaryIndexes": [{"IndexName": "by-g", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}]}]})

for delta in range(-3, 4):
    p = f"part{delta}"
    items = [{"pk": {"S": p}, "sk": {"S": f"{i}"}, "gpk": {"S": f"g{delta}"}, "gsk": {"S": f"{i}"},
              "body": {"S": "ü" * 150_000 + "x" * 30_000}} for i in range(2)]
    third = {"pk": {"S": p}, "sk": {"S": "2"}, "gpk": {"S": f"g{delta}"}, "gsk": {"S": "2"},
             "naïve name": {"S": "Ürdü اردو 漢字 🙂"}, "num": {"N": "-12345678901234567890.123456789012345678"},
             "small": {"N": "7"}, "yes": {"BOOL": True}, "no": {"BOOL": False}, "nothing": {"NULL": True},
             "list": {"L": [{"S": "ä"}, {"N": "1.5"}, {"BOOL": False}, {"NULL": True}, {"L": [{"S": "deep"}]}]},
             "map": {"M": {"ключ": {"S": "значение"}, "n": {"N": "42"}, "inner": {"M": {"b": {"BOOL": True}}}}},
             "ss": {"SS": ["a", "bé", "ç"]}, "ns": {"NS": ["1", "22.5", "-3"]},
             "bin": {"B": base64.b64encode(b"\x00\x01\xfe\xff" * 5).decode()},
             "bs": {"BS": [base64.b64encode(b"one").decode(), base64.b64encode(b"\xff").decode()]},
             "pad": {"S": ""}}
    third["pad"]["S"] = "y" * (LIMIT + delta - item_size(items[0]) - item_size(items[1]) - item_size(third))
    for item in items + [third]:
        call("PutItem", {"TableName": "pages", "Item": item})

for delta in range(-3, 4):
    for by_index in (False, True):
        body = {"TableName": "pages", "Select": "COUNT"}
        if by_index:
            body.update({"IndexName": "by-g", "KeyConditionExpression": "gpk = :v", "ExpressionAttributeValues": {":v": {"S": f"g{delta}"}}})
        else:
            body.update({"KeyConditionExpression": "pk = :v", "ExpressionAttributeValues": {":v": {"S": f"part{delta}"}}})
        call("Query", body)
        if delta in (0, 1):
            whole = dict(body)
            del whole["Select"]
            whole["ProjectionExpression"] = "sk, #n, num, #l, #m, ss, ns, bin, bs"
            whole["ExpressionAttributeNames"] = {"#n": "naïve name", "#l": "list", "#m": "map"}
            call("Query", whole)

json.dump(res, open(out, "w"))
