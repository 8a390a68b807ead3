"""Index (GSI) requests for check.py: python requests_index.py PORT OUTFILE.

Items move between index values, lose them, are deleted, upserted, written by a rolled-back and a
committed transaction and by a batch; every value is queried whole, paged, reversed, filtered."""
import http.client, json, sys, random
port=int(sys.argv[1]); out=sys.argv[2]
c=http.client.HTTPConnection("127.0.0.1",port)
H={"Content-Type":"application/x-amz-json-1.0","Authorization":"AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=abc"}
res=[]
def call(op,body):
    h=dict(H); h["X-Amz-Target"]="DynamoDB_20120810."+op
    c.request("POST","/",json.dumps(body),h); r=c.getresponse(); d=r.read()
    try: d=json.loads(d)
    except Exception: d=d.decode()
    res.append([op,r.status,d]); return d
call("CreateTable",{"TableName":"g","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],
 "AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"S"},{"AttributeName":"gpk","AttributeType":"S"},{"AttributeName":"gsk","AttributeType":"S"}],
 "GlobalSecondaryIndexes":[{"IndexName":"gsi1","KeySchema":[{"AttributeName":"gpk","KeyType":"HASH"},{"AttributeName":"gsk","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}],
 "BillingMode":"PAY_PER_REQUEST"})
rnd=random.Random(7)
def q(u, **kw):
    b={"TableName":"g","IndexName":"gsi1","KeyConditionExpression":"gpk = :u","ExpressionAttributeValues":{":u":{"S":u}}}; b.update(kw); return call("Query",b)
for i in range(60):
    u="user%d"%(i%5)
    call("PutItem",{"TableName":"g","Item":{"pk":{"S":"c%d"%i},"sk":{"S":"meta"},"gpk":{"S":u},"gsk":{"S":"t%03d"%rnd.randint(0,50)},"n":{"N":str(i)}}})
    if i%7==0: q(u)
for i in range(0,60,4):  # move to another user
    call("UpdateItem",{"TableName":"g","Key":{"pk":{"S":"c%d"%i},"sk":{"S":"meta"}},"UpdateExpression":"SET gpk = :u","ExpressionAttributeValues":{":u":{"S":"mover"}}})
for i in range(1,60,6):  # remove from index
    call("UpdateItem",{"TableName":"g","Key":{"pk":{"S":"c%d"%i},"sk":{"S":"meta"}},"UpdateExpression":"REMOVE gpk, gsk"})
for i in range(2,60,9): call("DeleteItem",{"TableName":"g","Key":{"pk":{"S":"c%d"%i},"sk":{"S":"meta"}}})
# upsert by update creating new item with index value
call("UpdateItem",{"TableName":"g","Key":{"pk":{"S":"new1"},"sk":{"S":"meta"}},"UpdateExpression":"SET gpk = :u, gsk = :s","ExpressionAttributeValues":{":u":{"S":"user1"},":s":{"S":"t999"}}})
# transaction rolled back: new item for user2 + failing condition
call("TransactWriteItems",{"TransactItems":[{"Put":{"TableName":"g","Item":{"pk":{"S":"rb"},"sk":{"S":"meta"},"gpk":{"S":"user2"},"gsk":{"S":"t000"}}}},
  {"ConditionCheck":{"TableName":"g","Key":{"pk":{"S":"c3"},"sk":{"S":"meta"}},"ConditionExpression":"attribute_not_exists(pk)"}}]})
call("TransactWriteItems",{"TransactItems":[{"Put":{"TableName":"g","Item":{"pk":{"S":"tx"},"sk":{"S":"meta"},"gpk":{"S":"user3"},"gsk":{"S":"t001"}}}},
  {"Update":{"TableName":"g","Key":{"pk":{"S":"c5"},"sk":{"S":"meta"}},"UpdateExpression":"SET gpk = :u","ExpressionAttributeValues":{":u":{"S":"user4"}}}}]})
call("BatchWriteItem",{"RequestItems":{"g":[{"PutRequest":{"Item":{"pk":{"S":"b%d"%i},"sk":{"S":"meta"},"gpk":{"S":"user0"},"gsk":{"S":"t%03d"%i}}}} for i in range(5)]}})
for u in ["user0","user1","user2","user3","user4","mover","nobody"]:
    q(u); q(u, ScanIndexForward=False, Limit=3)
    d=q(u, Limit=4)
    while isinstance(d,dict) and "LastEvaluatedKey" in d: d=q(u, Limit=4, ExclusiveStartKey=d["LastEvaluatedKey"])
    q(u, KeyConditionExpression="gpk = :u AND begins_with(gsk, :p)", ExpressionAttributeValues={":u":{"S":u},":p":{"S":"t0"}})
    q(u, FilterExpression="n > :z", ExpressionAttributeValues={":u":{"S":u},":z":{"N":"20"}})
json.dump(res,open(out,"w"),indent=0,sort_keys=True)
print(len(res),"requests")
