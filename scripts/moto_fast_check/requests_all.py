"""DynamoDB and Secrets Manager requests for check.py: python requests_all.py PORT OUTFILE.

A fixed sequence (conditions passing and failing with ALL_OLD, every ReturnValues, validation
errors, queries with paging, filters and projections, transactions committed and cancelled,
batches, malformed bodies, secrets); writes the answers, ids and timestamps normalised."""
import http.client, json, re, sys
port, out = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
results = []
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

def norm(v, key=None):
    if isinstance(v, dict):
        return {k: norm(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 1e9 < v < 2e10:
        return "<ts>"
    if isinstance(v, str):
        v = UUID.sub("<uuid>", v)
        v = re.sub(r"(secret:[A-Za-z0-9/_+=.@-]+)-[A-Za-z0-9]{6}\b", r"\1-<rnd>", v)
        v = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", "<time>", v)
    return v

VOLATILE = {"x-amzn-requestid", "x-amz-crc32", "date", "server", "connection", "keep-alive"}

def raw(method, path, body, headers, label):
    c.request(method, path, body, headers)
    r = c.getresponse()
    data = r.read()
    hdrs = sorted((k.lower(), v) for k, v in r.getheaders() if k.lower() not in VOLATILE and k.lower() != "content-length")
    try:
        parsed = norm(json.loads(data)) if data else None
    except ValueError:
        parsed = "<non-json %d bytes> %s" % (len(data), data[:80])
    # server header kept separately (moto always sends amazon.com in its own headers)
    results.append({"label": label, "status": r.status, "headers": hdrs,
                    "server": [v for k, v in r.getheaders() if k.lower() == "server"][:1] and "has",
                    "body": parsed})
    return r.status, (json.loads(data) if data and parsed and not isinstance(parsed, str) else None)

def ddb(op, body, label=None, raw_body=None, extra=None):
    h = {"X-Amz-Target": "DynamoDB_20120810." + op, "Content-Type": "application/x-amz-json-1.0",
         "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc"}
    h.update(extra or {})
    return raw("POST", "/", raw_body if raw_body is not None else json.dumps(body), h, label or op)

def sm(op, body, label=None):
    h = {"X-Amz-Target": "secretsmanager." + op, "Content-Type": "application/x-amz-json-1.1",
         "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261203/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=abc"}
    return raw("POST", "/", json.dumps(body), h, label or ("sm " + op))

S = lambda s: {"S": s}
N = lambda n: {"N": str(n)}

# --- tables
ddb("CreateTable", {"TableName": "conv", "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
                             {"AttributeName": "gpk", "AttributeType": "S"}, {"AttributeName": "gsk", "AttributeType": "N"}],
    "GlobalSecondaryIndexes": [{"IndexName": "gsi1", "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "ALL"}}]})
ddb("CreateTable", {"TableName": "lim", "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
ddb("CreateTable", {"TableName": "lim", "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}, "CreateTable dup")
ddb("DescribeTable", {"TableName": "conv"})
ddb("ListTables", {})

# --- puts, all types
for i in range(12):
    ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("u%d" % (i % 3)), "sk": S("m%03d" % i), "gpk": S("g%d" % (i % 2)), "gsk": N(i),
        "body": S("hello %d" % i), "n": N(i * 1.5), "flag": {"BOOL": i % 2 == 0}, "nul": {"NULL": True},
        "m": {"M": {"a": {"M": {"b": N(i)}}, "l": {"L": [S("x"), N(1), {"BOOL": False}, {"NULL": True}, {"SS": ["p", "q"]}]}}},
        "ss": {"SS": ["a", "b%d" % i]}, "ns": {"NS": ["1", "2.5", str(i)]}, "l": {"L": [{"M": {"k": S("v")}}, {"L": []}]},
        "em": {"M": {}}, "es": S("")}}, "PutItem all types %d" % i)
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("bin"), "sk": S("b1"), "b": {"B": "aGVsbG8="}, "bs": {"BS": ["AQI=", "AwQ="]},
    "m": {"M": {"bb": {"B": "AAEC"}}}}}, "PutItem binary")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("odd"), "sk": S("o1"), "m": {"M": {"": S("empty name")}}}}, "PutItem empty map key")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("u0"), "sk": S("m000"), "body": S("new")}, "ReturnValues": "ALL_OLD"}, "PutItem ALL_OLD")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("c"), "sk": S("c")}, "ConditionExpression": "attribute_not_exists(pk)"}, "PutItem cond pass")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("c"), "sk": S("c"), "x": N(1)}, "ConditionExpression": "attribute_not_exists(pk)"}, "PutItem cond fail")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("c"), "sk": S("c"), "x": N(1)}, "ConditionExpression": "attribute_not_exists(pk)",
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}, "PutItem cond fail ALL_OLD")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S(""), "sk": S("x")}}, "PutItem empty key")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": N(1), "sk": S("x")}}, "PutItem wrong key type")
ddb("PutItem", {"TableName": "nope", "Item": {"pk": S("a")}}, "PutItem no table")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("a"), "sk": S("x"), "s": {"SS": []}}}, "PutItem empty set")

# --- gets
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}}, "GetItem all types")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("bin"), "sk": S("b1")}}, "GetItem binary")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("odd"), "sk": S("o1")}}, "GetItem empty map key")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("zz"), "sk": S("zz")}}, "GetItem missing")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}, "ProjectionExpression": "#b, m.a, l[0]",
    "ExpressionAttributeNames": {"#b": "body"}, "ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL"}, "GetItem projection")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("u1")}}, "GetItem partial key")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}, "ReturnConsumedCapacity": "BOGUS"}, "GetItem bad capacity")
ddb("GetItem", {"Key": {"pk": S("u1")}}, "GetItem no table name")

# --- updates
upd = "SET #t = :t, #v = if_not_exists(#v, :z) + :one"
for i, t in enumerate([5, 6, 6, 4, 7]):
    ddb("UpdateItem", {"TableName": "lim", "Key": {"pk": S("bucket")}, "UpdateExpression": upd,
        "ConditionExpression": "attribute_not_exists(#t) OR #t < :t", "ExpressionAttributeNames": {"#t": "tat", "#v": "ver"},
        "ExpressionAttributeValues": {":t": N(t), ":z": N(0), ":one": N(1)}, "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}, "UpdateItem limiter %d t=%d" % (i, t))
for rv in ["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"]:
    ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")},
        "UpdateExpression": "SET m.a.b = m.a.b + :one, body = :b, l = list_append(l, :l) REMOVE nul ADD ss :s, cnt :one DELETE ns :d",
        "ExpressionAttributeValues": {":one": N(1), ":b": S("upd " + rv), ":l": {"L": [S("z")]}, ":s": {"SS": ["zz"]}, ":d": {"NS": ["1"]}},
        "ReturnValues": rv}, "UpdateItem complex " + rv)
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("new"), "sk": S("n1")}, "UpdateExpression": "SET a = :a",
    "ExpressionAttributeValues": {":a": {"M": {"x": {"L": [N(1)]}}}}, "ReturnValues": "ALL_NEW"}, "UpdateItem creates")
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")}, "UpdateExpression": "SET a = :a",
    "ConditionExpression": "body = :x", "ExpressionAttributeValues": {":a": N(1), ":x": S("nope")},
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}, "UpdateItem cond fail ALL_OLD")
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("zz9"), "sk": S("zz9")}, "UpdateExpression": "SET a = :a",
    "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":a": N(1)},
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}, "UpdateItem cond fail missing item")
# UpdateItems on one item that moto refuses (or accepts) for what their expressions say; the syntax
# error twice, as expressions are parsed once per text with MOTO_FAST.
for expression, values, label in [
    ("SET pk = :a", {":a": S("x")}, "UpdateItem key attr"),
    ("SET a = = :a", {":a": S("x")}, "UpdateItem syntax error"),
    ("SET a = = :a", {":a": S("x")}, "UpdateItem syntax error again"),
    ("SET a = :a", {":a": S("x"), ":unused": S("y")}, "UpdateItem unused value"),
    ("SET a = :missing", {":a": S("x")}, "UpdateItem missing value"),
    ("SET a = :a SET b = :a", {":a": S("x")}, "UpdateItem two SET"),
    ("SET a = :a, a = :a", {":a": S("x")}, "UpdateItem overlapping"),
    ("SET body = body + :a", {":a": N(1)}, "UpdateItem type mismatch"),
    ("SET q.r.s = :a", {":a": N(1)}, "UpdateItem bad path"),
]:
    ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")}, "UpdateExpression": expression,
        "ExpressionAttributeValues": values}, label)
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")}, "UpdateExpression": "REMOVE l[1], l[0] SET gsk = :g",
    "ExpressionAttributeValues": {":g": N(99)}, "ReturnValues": "ALL_NEW"}, "UpdateItem remove index")
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")}, "UpdateExpression": "",
    }, "UpdateItem empty expr")
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")},
    "AttributeUpdates": {"legacy": {"Action": "PUT", "Value": S("v")}}, "ReturnValues": "ALL_NEW"}, "UpdateItem AttributeUpdates")
ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("u2"), "sk": S("m002")}, "UpdateExpression": "SET gpk = :e",
    "ExpressionAttributeValues": {":e": S("")}}, "UpdateItem empty gsi key")

# --- queries
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u0")}}, "Query table")
st, r = ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)", "ExpressionAttributeValues": {":p": S("u1"), ":s": S("m0")},
    "Limit": 2, "ScanIndexForward": False}, "Query limit desc")
while r and "LastEvaluatedKey" in r:
    st, r = ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)", "ExpressionAttributeValues": {":p": S("u1"), ":s": S("m0")},
        "Limit": 2, "ScanIndexForward": False, "ExclusiveStartKey": r["LastEvaluatedKey"]}, "Query limit desc page")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b", "FilterExpression": "flag = :t AND contains(ss, :x) OR size(body) > :n",
    "ExpressionAttributeValues": {":p": S("u0"), ":a": S("m000"), ":b": S("m009"), ":t": {"BOOL": True}, ":x": S("a"), ":n": N(100)},
    "ProjectionExpression": "pk, sk, #b", "ExpressionAttributeNames": {"#b": "body"}}, "Query filter projection")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u0")}, "Select": "COUNT"}, "Query count")
st, r = ddb("Query", {"TableName": "conv", "IndexName": "gsi1", "KeyConditionExpression": "gpk = :g AND gsk > :n", "ExpressionAttributeValues": {":g": S("g0"), ":n": N(1)},
    "Limit": 2}, "Query gsi")
while r and "LastEvaluatedKey" in r:
    st, r = ddb("Query", {"TableName": "conv", "IndexName": "gsi1", "KeyConditionExpression": "gpk = :g AND gsk > :n", "ExpressionAttributeValues": {":g": S("g0"), ":n": N(1)},
        "Limit": 2, "ExclusiveStartKey": r["LastEvaluatedKey"]}, "Query gsi page")
ddb("Query", {"TableName": "conv", "IndexName": "gsi1", "KeyConditionExpression": "gpk = :g", "ExpressionAttributeValues": {":g": S("g1")},
    "ScanIndexForward": False, "FilterExpression": "attribute_exists(ss)"}, "Query gsi desc filter")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("bin")}}, "Query binary")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "sk = :p", "ExpressionAttributeValues": {":p": S("u0")}}, "Query bad key cond")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":q": S("u0")}}, "Query missing value")
ddb("Query", {"TableName": "nope", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u0")}}, "Query no table")
ddb("Query", {"TableName": "conv", "IndexName": "nope", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u0")}}, "Query no index")
ddb("Scan", {"TableName": "conv", "FilterExpression": "attribute_exists(gsk) AND gsk < :n", "ExpressionAttributeValues": {":n": N(5)}}, "Scan filter")

# --- transactions
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "conv", "Item": {"pk": S("t"), "sk": S("1"), "v": N(1)}, "ConditionExpression": "attribute_not_exists(pk)"}},
    {"Update": {"TableName": "lim", "Key": {"pk": S("cnt")}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N(1)}}},
    {"Delete": {"TableName": "conv", "Key": {"pk": S("u0"), "sk": S("m003")}}},
    {"ConditionCheck": {"TableName": "conv", "Key": {"pk": S("c"), "sk": S("c")}, "ConditionExpression": "attribute_exists(pk)"}}]}, "Transact ok")
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "conv", "Item": {"pk": S("t"), "sk": S("2")}, "ConditionExpression": "attribute_not_exists(pk)"}},
    {"Update": {"TableName": "lim", "Key": {"pk": S("cnt")}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N(1)}}},
    {"Put": {"TableName": "conv", "Item": {"pk": S("t"), "sk": S("1"), "v": N(2)}, "ConditionExpression": "attribute_not_exists(pk)",
             "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]}, "Transact cancelled")
ddb("GetItem", {"TableName": "lim", "Key": {"pk": S("cnt")}}, "GetItem after cancelled")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("t"), "sk": S("2")}}, "GetItem rolled back put")
ddb("TransactWriteItems", {"TransactItems": [
    {"Update": {"TableName": "lim", "Key": {"pk": S("cnt")}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N(1)}}},
    {"Update": {"TableName": "lim", "Key": {"pk": S("cnt")}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N(1)}}}]}, "Transact duplicate")
ddb("TransactWriteItems", {"TransactItems": [
    {"Update": {"TableName": "lim", "Key": {"pk": S("cnt")}, "UpdateExpression": "SET n = = :one", "ExpressionAttributeValues": {":one": N(1)}}}]}, "Transact bad expr")
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "nope", "Item": {"pk": S("x")}}}]}, "Transact no table")
ddb("TransactWriteItems", {"TransactItems": [
    {"ConditionCheck": {"TableName": "conv", "Key": {"pk": S("c"), "sk": S("c")}, "ConditionExpression": "x = :v", "ExpressionAttributeValues": {":v": N(3)},
     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
    {"Update": {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}, "UpdateExpression": "SET body = :b", "ExpressionAttributeValues": {":b": S("changed")}}}]}, "Transact cond check fail")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}}, "GetItem after cond check fail")
# A rollback puts back what each write changed: a new partition, a deleted item, an update in place.
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "conv", "Item": {"pk": S("rb-new"), "sk": S("1"), "v": N(1)}}},
    {"Delete": {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m002")}}},
    {"Update": {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}, "UpdateExpression": "SET body = :b REMOVE gsk",
                "ExpressionAttributeValues": {":b": S("rolled back")}}},
    {"Update": {"TableName": "lim", "Key": {"pk": S("rb-lim")}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": N(1)}}},
    {"ConditionCheck": {"TableName": "lim", "Key": {"pk": S("cnt")}, "ConditionExpression": "attribute_not_exists(pk)"}}]}, "Transact rollback of every kind")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u1")}}, "Query u1 after rollback")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("rb-new")}}, "Query new partition after rollback")
ddb("GetItem", {"TableName": "lim", "Key": {"pk": S("rb-lim")}}, "GetItem lim after rollback")
ddb("Scan", {"TableName": "conv"}, "Scan after rollback")
ddb("DescribeTable", {"TableName": "conv"}, "DescribeTable after rollback")
# An item naming two operations fails outside moto's rollback: the writes before it stay.
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "conv", "Item": {"pk": S("kept"), "sk": S("1")}}},
    {"Put": {"TableName": "conv", "Item": {"pk": S("kept"), "sk": S("2")}},
     "Delete": {"TableName": "conv", "Key": {"pk": S("kept"), "sk": S("1")}}}]}, "Transact two ops in one item")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("kept")}}, "Query after two ops in one item")
# Two writes in one partition, one new item and one changed, then a failed condition.
ddb("TransactWriteItems", {"TransactItems": [
    {"Put": {"TableName": "conv", "Item": {"pk": S("u1"), "sk": S("m900"), "body": S("new")}}},
    {"Update": {"TableName": "conv", "Key": {"pk": S("u1"), "sk": S("m001")}, "UpdateExpression": "SET body = :b",
                "ExpressionAttributeValues": {":b": S("changed twice")}}},
    {"ConditionCheck": {"TableName": "conv", "Key": {"pk": S("c"), "sk": S("c")}, "ConditionExpression": "attribute_not_exists(pk)"}}]}, "Transact one partition rolled back")
ddb("Query", {"TableName": "conv", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("u1")}}, "Query u1 after second rollback")
ddb("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "conv", "Key": {"pk": S("t"), "sk": S("1")}}},
                                           {"Get": {"TableName": "lim", "Key": {"pk": S("cnt")}}}]}, "TransactGet")

# --- batch, delete
ddb("BatchWriteItem", {"RequestItems": {"conv": [{"PutRequest": {"Item": {"pk": S("bw"), "sk": S(str(i)), "v": N(i)}}} for i in range(5)]
    + [{"DeleteRequest": {"Key": {"pk": S("u0"), "sk": S("m006")}}}]}}, "BatchWrite")
ddb("BatchGetItem", {"RequestItems": {"conv": {"Keys": [{"pk": S("bw"), "sk": S(str(i))} for i in range(3)]}}}, "BatchGet")
ddb("BatchWriteItem", {"RequestItems": {"conv": [{"PutRequest": {"Item": {"pk": S("bw"), "sk": S("0")}}}, {"PutRequest": {"Item": {"pk": S("bw"), "sk": S("0")}}}]}}, "BatchWrite dup")
ddb("DeleteItem", {"TableName": "conv", "Key": {"pk": S("bw"), "sk": S("1")}, "ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": N(1)},
    "ReturnValues": "ALL_OLD"}, "DeleteItem cond pass")
ddb("DeleteItem", {"TableName": "conv", "Key": {"pk": S("bw"), "sk": S("2")}, "ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": N(1)},
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}, "DeleteItem cond fail ALL_OLD")
ddb("DeleteItem", {"TableName": "conv", "Key": {"pk": S("bw"), "sk": S("404")}}, "DeleteItem missing")

# --- one condition text with other values, names and placeholders (parsed trees are reused)
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("cc"), "sk": S("cc"), "n": N(3), "s": S("abc")}}, "cc put")
def cc(cond, names, values, label, update="SET #n = #n + :one"):
    body = {"TableName": "conv", "Key": {"pk": S("cc"), "sk": S("cc")}, "UpdateExpression": update,
            "ConditionExpression": cond, "ReturnValues": "ALL_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if names is not None:
        body["ExpressionAttributeNames"] = names
    if values is not None:
        body["ExpressionAttributeValues"] = values
    ddb("UpdateItem", body, label)
for lim in (5, 4, 10):
    cc("#n < :lim", {"#n": "n"}, {":one": N(1), ":lim": N(lim)}, "cc lim %d" % lim)
cc("#n < :lim", {"#n": "m"}, {":one": N(1), ":lim": N(99)}, "cc other name")
cc("#n < :lim", {"#n": "n"}, {":one": N(1), ":lim": S("zzz")}, "cc value of another type")
for i in range(2):
    cc("#n < :lim", {"#n": "n"}, {":one": N(1)}, "cc missing placeholder %d" % i)
    cc("#n < :lim", None, {":one": N(1), ":lim": N(99)}, "cc no names %d" % i)
    cc("((attribute_exists(#n)))", {"#n": "n"}, {":one": N(1)}, "cc redundant parentheses %d" % i)
    cc("#n < :lim", {"#n": "n"}, {":one": N(1), ":lim": N(99), ":unused": N(0)}, "cc unused value %d" % i)
for a, b in ((6, 7), (1, 2), (8, 9)):
    cc("#n IN (:a, :b) AND #n BETWEEN :a AND :b", {"#n": "n"}, {":one": N(1), ":a": N(a), ":b": N(b)}, "cc in between %d" % a)
for t in ("N", "S"):
    cc("attribute_type(#n, :t) AND begins_with(#s, :p) AND size(#s) > :z", {"#n": "n", "#s": "s"},
       {":one": N(1), ":t": S(t), ":p": S("ab"), ":z": N(1)}, "cc attribute_type %s" % t)
for v in (1, 100):
    ddb("Scan", {"TableName": "conv", "FilterExpression": "n > :v AND NOT contains(#b, :w)", "ExpressionAttributeNames": {"#b": "body"},
        "ExpressionAttributeValues": {":v": N(v), ":w": S("7")}}, "Scan same filter %d" % v)

# --- one update text with other names and tables (its key-independent checks are remembered)
conv_cc, lim_cc = {"pk": S("cc"), "sk": S("cc")}, {"pk": S("cc")}
for i, (table, key, target) in enumerate((("conv", conv_cc, "x"), ("conv", conv_cc, "pk"), ("lim", lim_cc, "sk"),
                                          ("conv", conv_cc, "sk"), ("lim", lim_cc, "pk"), ("conv", conv_cc, "x"))):
    ddb("UpdateItem", {"TableName": table, "Key": key, "UpdateExpression": "SET #a = :v", "ExpressionAttributeNames": {"#a": target},
        "ExpressionAttributeValues": {":v": N(i)}, "ReturnValues": "ALL_NEW"}, "static %s %s" % (table, target))
for i in range(2):
    for label, expr in (("two SET", "SET a = :v SET b = :v"), ("overlap", "SET a = :v, a.b = :v"), ("overlap names", "SET #a = :v, #b = :v")):
        body = {"TableName": "conv", "Key": {"pk": S("cc"), "sk": S("cc")}, "UpdateExpression": expr, "ExpressionAttributeValues": {":v": N(i)}}
        if "#" in expr:
            body["ExpressionAttributeNames"] = {"#a": "z", "#b": "z"}
        ddb("UpdateItem", body, "static %s %d" % (label, i))
    ddb("UpdateItem", {"TableName": "conv", "Key": {"pk": S("cc"), "sk": S("cc")}, "UpdateExpression": "SET #a = :v, #b = :v",
        "ExpressionAttributeNames": {"#a": "z", "#b": "y"}, "ExpressionAttributeValues": {":v": N(i)}, "ReturnValues": "UPDATED_NEW"},
        "static distinct names %d" % i)

# --- malformed
ddb("GetItem", None, "bad json", raw_body="{not json")
ddb("GetItem", None, "empty body", raw_body="")
ddb("GetItem", None, "json list body", raw_body="[1,2]")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": {"S": 5}, "sk": S("x")}}, "wrong value type")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("w"), "sk": S("x"), "a": {"Q": "1"}}}, "unknown attr type")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("w"), "sk": S("x"), "a": {"S": "1", "N": "2"}}}, "two attr types")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("w"), "sk": S("x"), "a": {"L": [None]}}}, "null in list")
ddb("PutItem", {"TableName": "conv", "Item": {"pk": S("w"), "sk": S("x"), "a": {"M": {"k": None}}}}, "null in map")
ddb("GetItem", {"TableName": "conv", "Key": {"pk": S("w"), "sk": S("x")}}, "GetItem after odd puts")
ddb("NoSuchAction", {}, "unknown action")
ddb("ListTables", {}, "ListTables with Origin", extra={"Origin": "http://example.com"})
ddb("ListTables", {}, "ListTables gzip-less encoding header", extra={"Content-Encoding": "identity"})
ddb("DescribeTable", {"TableName": "conv"}, "DescribeTable v1.1 content type", extra={"Content-Type": "application/x-amz-json-1.1"})

# --- secrets manager
sm("CreateSecret", {"Name": "app/jwt", "SecretString": "s3cret", "ClientRequestToken": "11111111-2222-3333-4444-555555555555"})
sm("CreateSecret", {"Name": "app/jwt", "SecretString": "again"}, "sm CreateSecret dup")
sm("GetSecretValue", {"SecretId": "app/jwt"})
sm("DescribeSecret", {"SecretId": "app/jwt"})
sm("PutSecretValue", {"SecretId": "app/jwt", "SecretString": "v2", "ClientRequestToken": "22222222-2222-3333-4444-555555555555"})
sm("GetSecretValue", {"SecretId": "app/jwt"}, "sm GetSecretValue v2")
sm("GetSecretValue", {"SecretId": "app/jwt", "VersionStage": "AWSPREVIOUS"}, "sm GetSecretValue previous")
sm("GetSecretValue", {"SecretId": "missing"}, "sm GetSecretValue missing")
sm("ListSecrets", {})
sm("GetSecretValue", {}, "sm GetSecretValue no id")
sm("DeleteSecret", {"SecretId": "app/jwt", "ForceDeleteWithoutRecovery": True})
sm("GetSecretValue", {"SecretId": "app/jwt"}, "sm GetSecretValue deleted")

ddb("Scan", {"TableName": "conv"}, "final Scan")
ddb("Scan", {"TableName": "lim"}, "final Scan lim")
ddb("DeleteTable", {"TableName": "lim"})
ddb("ListTables", {}, "final ListTables")
raw("GET", "/moto-api/", None, {}, "moto-api page")
json.dump(results, open(out, "w"), indent=1, sort_keys=True)
print(len(results), "requests")
