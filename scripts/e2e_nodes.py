"""Feature end-to-end across nodes with boto3: bucket configuration set
through one node is observed and enforced through the others.

Usage: e2e_nodes.py TENANT.json ENDPOINT [ENDPOINT...]
With one endpoint it runs every check against that node (scripts/e2e.sh);
with three (a cluster: scripts/clients.sh), the configuration is written
through the first node and read, and enforced, through the second and the
third. Covers versioning (paging with both markers, emptying), object
lock (COMPLIANCE, GOVERNANCE with bypass, legal hold), tagging,
lifecycle configuration, conditional writes (two nodes racing
If-None-Match: *), POST policy uploads, CORS preflight and bucket policy.
With E2E_VERSIONS_SCALE=1 it also writes 10,000 versions of 100 keys
(through every node in turn), lists them through another node page by page
with both markers, and empties the bucket with boto3's "delete all
versions" loop (a few minutes; not in CI, where s3's TestVersioningScale
covers the listing with aws-sdk-go-v2).
Each check prints a FAIL line when it does not hold; exit status 1 if any
failed.
"""
import concurrent.futures
import os
import datetime
import json
import sys
import threading
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

creds_file, endpoints = sys.argv[1], sys.argv[2:]
if not endpoints:
    sys.exit("usage: e2e_nodes.py TENANT.json ENDPOINT [ENDPOINT...]")
creds = json.load(open(creds_file))
failures = []
run = uuid.uuid4().hex[:8]  # bucket names of this run


def client(endpoint):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"], region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4"),
    )


nodes = [client(e) for e in endpoints]
# a writes configuration; b and c observe it (the same node on one node).
a, b, c = nodes[0], nodes[1 % len(nodes)], nodes[2 % len(nodes)]
ea, eb, ec = endpoints[0], endpoints[1 % len(endpoints)], endpoints[2 % len(endpoints)]


def check(name, cond):
    if not cond:
        failures.append(name)


def code_of(fn, *args, **kwargs):
    """The S3 error code fn fails with, or None when it succeeds."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def expect_code(name, want, fn, *args, **kwargs):
    try:
        got = code_of(fn, *args, **kwargs)
    except Exception as e:  # a lost response is a failure, not the end of the suite
        failures.append(f"{name}: {type(e).__name__}: {str(e)[-160:]}, want {want}")
        return
    if got != want:
        failures.append(f"{name}: got {got or 'success'}, want {want}")


def raw(method, url, body=None, headers=None):
    """An unsigned request: (status, headers, body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def bucket(name):
    return f"{name}-{run}"


# ---- versioning: enabled through a, versions written through b and c,
# listed page by page through c with both markers, emptied through b.
vb = bucket("nv")
a.create_bucket(Bucket=vb)
a.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Enabled"})
check("versioning: Enabled seen through b", b.get_bucket_versioning(Bucket=vb).get("Status") == "Enabled")
written = {}
for i in range(4):
    for k in ("k1", "k2", "k3"):
        n = nodes[(i + len(written)) % len(nodes)]
        written.setdefault(k, []).append(n.put_object(Bucket=vb, Key=k, Body=f"{k} v{i}".encode())["VersionId"])
check("versioning: every PUT has a distinct version id", len({v for vs in written.values() for v in vs}) == 12)
seen, kw, pages = [], {}, 0
while pages < 20:
    page = c.list_object_versions(Bucket=vb, MaxKeys=5, **kw)
    pages += 1
    seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    if not page.get("IsTruncated"):
        break
    kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
want = [(k, v) for k in sorted(written) for v in reversed(written[k])]
check(f"versioning: pages of 5 through c list all 12 versions newest first ({pages} pages)", seen == want)
check("versioning: an old version by id through b", b.get_object(Bucket=vb, Key="k1", VersionId=written["k1"][0])["Body"].read() == b"k1 v0")
check("versioning: DELETE through c adds a marker", c.delete_object(Bucket=vb, Key="k2").get("DeleteMarker") is True)
expect_code("versioning: GET of the deleted key through a", "NoSuchKey", a.get_object, Bucket=vb, Key="k2")
a.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Suspended"})
check("versioning: Suspended seen through c", c.get_bucket_versioning(Bucket=vb).get("Status") == "Suspended")
check("versioning: a PUT through b while suspended is version null",
      b.put_object(Bucket=vb, Key="k3", Body=b"null one").get("VersionId", "null") == "null")
for page in b.get_paginator("list_object_versions").paginate(Bucket=vb):
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    if objs:
        res = b.delete_objects(Bucket=vb, Delete={"Objects": objs})
        check(f"versioning: delete-all-versions page without errors ({res.get('Errors')})", not res.get("Errors"))
left = c.list_object_versions(Bucket=vb)
check("versioning: emptied, seen through c", not left.get("Versions") and not left.get("DeleteMarkers"))
expect_code("versioning: bad status", "IllegalVersioningConfigurationException", a.put_bucket_versioning, Bucket=vb,
            VersioningConfiguration={"Status": "On"})
a.delete_bucket(Bucket=vb)
expect_code("versioning: the deleted bucket through c", "NoSuchBucket", c.list_object_versions, Bucket=vb)

# ---- object lock: the bucket made through a, retention set through b,
# deletes tried through c and a.
lb = bucket("nlock")
a.create_bucket(Bucket=lb, ObjectLockEnabledForBucket=True)
check("lock: configuration Enabled through b",
      b.get_object_lock_configuration(Bucket=lb)["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled")
check("lock: versioning turned on, seen through c", c.get_bucket_versioning(Bucket=lb).get("Status") == "Enabled")
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
comp = b.put_object(Bucket=lb, Key="compliance", Body=b"keep me")["VersionId"]
b.put_object_retention(Bucket=lb, Key="compliance", VersionId=comp, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
check("lock: COMPLIANCE retention seen through c",
      c.get_object_retention(Bucket=lb, Key="compliance", VersionId=comp)["Retention"]["Mode"] == "COMPLIANCE")
expect_code("lock: DELETE of a COMPLIANCE version through c", "AccessDenied", c.delete_object, Bucket=lb, Key="compliance", VersionId=comp)
expect_code("lock: DELETE of a COMPLIANCE version with bypass through a", "AccessDenied", a.delete_object, Bucket=lb,
            Key="compliance", VersionId=comp, BypassGovernanceRetention=True)
res = a.delete_objects(Bucket=lb, Delete={"Objects": [{"Key": "compliance", "VersionId": comp}]})
check("lock: DeleteObjects of a COMPLIANCE version answers AccessDenied for it",
      [e.get("Code") for e in res.get("Errors", [])] == ["AccessDenied"] and not res.get("Deleted"))
expect_code("lock: shortening COMPLIANCE retention through a", "AccessDenied", a.put_object_retention, Bucket=lb, Key="compliance",
            VersionId=comp, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - datetime.timedelta(hours=12)})
b.put_object(Bucket=lb, Key="compliance", Body=b"newer")  # an overwrite is a new version
check("lock: the COMPLIANCE version survives an overwrite, read through c",
      c.get_object(Bucket=lb, Key="compliance", VersionId=comp)["Body"].read() == b"keep me")
gov = c.put_object(Bucket=lb, Key="governance", Body=b"gov", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)["VersionId"]
expect_code("lock: DELETE of a GOVERNANCE version without bypass through a", "AccessDenied", a.delete_object, Bucket=lb,
            Key="governance", VersionId=gov)
check("lock: DELETE of a GOVERNANCE version with bypass through b",
      code_of(b.delete_object, Bucket=lb, Key="governance", VersionId=gov, BypassGovernanceRetention=True) is None)
check("lock: the bypassed version is gone, through c",
      code_of(c.head_object, Bucket=lb, Key="governance", VersionId=gov) in ("404", "NoSuchVersion", "NoSuchKey"))
held = a.put_object(Bucket=lb, Key="held", Body=b"held")["VersionId"]
a.put_object_legal_hold(Bucket=lb, Key="held", VersionId=held, LegalHold={"Status": "ON"})
check("lock: legal hold ON seen through b", b.get_object_legal_hold(Bucket=lb, Key="held", VersionId=held)["LegalHold"]["Status"] == "ON")
expect_code("lock: DELETE of a held version through c", "AccessDenied", c.delete_object, Bucket=lb, Key="held", VersionId=held)
b.put_object_legal_hold(Bucket=lb, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
check("lock: DELETE after the hold is released, through c", code_of(c.delete_object, Bucket=lb, Key="held", VersionId=held) is None)
expect_code("lock: deleting the bucket that holds a locked version", "BucketNotEmpty", c.delete_bucket, Bucket=lb)
pb = bucket("nplain")
a.create_bucket(Bucket=pb)
b.put_object(Bucket=pb, Key="x", Body=b"x")
expect_code("lock: retention in a bucket without object lock, through c", "InvalidRequest", c.put_object_retention, Bucket=pb,
            Key="x", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})

# ---- tagging: set through a, read through b and c.
a.put_object_tagging(Bucket=pb, Key="x", Tagging={"TagSet": [{"Key": "team", "Value": "red"}]})
check("tagging: object tags through b", b.get_object_tagging(Bucket=pb, Key="x")["TagSet"] == [{"Key": "team", "Value": "red"}])
c.put_object(Bucket=pb, Key="y", Body=b"y", Tagging="env=prod&tier=gold")
check("tagging: x-amz-tagging on PUT through c, read through a",
      sorted((t["Key"], t["Value"]) for t in a.get_object_tagging(Bucket=pb, Key="y")["TagSet"]) == [("env", "prod"), ("tier", "gold")])
expect_code("tagging: 11 tags", "InvalidTag", b.put_object_tagging, Bucket=pb, Key="x",
            Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]})
c.delete_object_tagging(Bucket=pb, Key="x")
check("tagging: deleted through c, empty through a", a.get_object_tagging(Bucket=pb, Key="x")["TagSet"] == [])
a.put_bucket_tagging(Bucket=pb, Tagging={"TagSet": [{"Key": "cost", "Value": "42"}]})
check("tagging: bucket tags through c", c.get_bucket_tagging(Bucket=pb)["TagSet"] == [{"Key": "cost", "Value": "42"}])
b.delete_bucket_tagging(Bucket=pb)
expect_code("tagging: bucket tags deleted through b, through a", "NoSuchTagSet", a.get_bucket_tagging, Bucket=pb)

# ---- lifecycle configuration: set through a, read through b, deleted through c.
rules = [{"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 7}},
         {"ID": "abort-uploads", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
a.put_bucket_lifecycle_configuration(Bucket=pb, LifecycleConfiguration={"Rules": rules})
got = b.get_bucket_lifecycle_configuration(Bucket=pb)["Rules"]
check(f"lifecycle: rules through b ({[r.get('ID') for r in got]})", sorted(r["ID"] for r in got) == ["abort-uploads", "expire-logs"])
expect_code("lifecycle: a rule without an action", "InvalidRequest", b.put_bucket_lifecycle_configuration, Bucket=pb,
            LifecycleConfiguration={"Rules": [{"ID": "none", "Status": "Enabled", "Filter": {"Prefix": ""}}]})
c.delete_bucket_lifecycle(Bucket=pb)
expect_code("lifecycle: deleted through c, through a", "NoSuchLifecycleConfiguration", a.get_bucket_lifecycle_configuration, Bucket=pb)

# ---- conditional writes: If-None-Match: * from two nodes at once has one winner.
for i in range(8):
    key, outcomes = f"race/{i}", [None, None]

    def put(j, n):
        try:
            n.put_object(Bucket=pb, Key=key, Body=f"writer {j}".encode(), IfNoneMatch="*")
            outcomes[j] = "ok"
        except ClientError as e:
            outcomes[j] = e.response["Error"]["Code"]
        except Exception as e:
            outcomes[j] = type(e).__name__

    ts = [threading.Thread(target=put, args=(j, n)) for j, n in enumerate((a, b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wins = [j for j in (0, 1) if outcomes[j] == "ok"]
    losers_ok = all(o in ("ok", "PreconditionFailed", "ConditionalRequestConflict") for o in outcomes)
    check(f"conditional: race {i}: exactly one winner ({outcomes})", len(wins) == 1 and losers_ok)
    if len(wins) == 1:
        check(f"conditional: race {i}: the winner's bytes, read through c",
              c.get_object(Bucket=pb, Key=key)["Body"].read() == f"writer {wins[0]}".encode())
etag = a.put_object(Bucket=pb, Key="cond", Body=b"one")["ETag"]
expect_code("conditional: If-None-Match: * on an existing key through b", "PreconditionFailed", b.put_object, Bucket=pb, Key="cond",
            Body=b"two", IfNoneMatch="*")
expect_code("conditional: If-Match with another ETag through c", "PreconditionFailed", c.put_object, Bucket=pb, Key="cond",
            Body=b"two", IfMatch='"0123456789abcdef0123456789abcdef"')
check("conditional: If-Match with the ETag through c", code_of(c.put_object, Bucket=pb, Key="cond", Body=b"two", IfMatch=etag) is None)
expect_code("conditional: DELETE If-Match with the old ETag through a", "PreconditionFailed", a.delete_object, Bucket=pb, Key="cond", IfMatch=etag)
check("conditional: the If-Match PUT's bytes through a", a.get_object(Bucket=pb, Key="cond")["Body"].read() == b"two")

# ---- POST policy upload through b, read through c.
def post(endpoint_client, endpoint, key, data, conditions):
    form = endpoint_client.generate_presigned_post(pb, key, Conditions=conditions, ExpiresIn=300)
    boundary = uuid.uuid4().hex
    body = b""
    for k, v in form["fields"].items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return raw("POST", form["url"], body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


st, _, _ = post(b, eb, "posted.txt", b"from a browser form", [["content-length-range", 1, 1000]])
check(f"post: upload through b answers 204 ({st})", st == 204)
check("post: the posted bytes through c", code_of(c.head_object, Bucket=pb, Key="posted.txt") is None
      and c.get_object(Bucket=pb, Key="posted.txt")["Body"].read() == b"from a browser form")
st, _, body = post(b, eb, "toolarge.txt", b"x" * 2000, [["content-length-range", 1, 1000]])
check(f"post: over content-length-range is 400 EntityTooLarge ({st} {body[:120]!r})", st == 400 and b"EntityTooLarge" in body)

# ---- CORS: set through a, preflight answered by b and c.
a.put_bucket_cors(Bucket=pb, CORSConfiguration={"CORSRules": [
    {"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 60}]})
check("cors: rules through c", c.get_bucket_cors(Bucket=pb)["CORSRules"][0]["AllowedOrigins"] == ["https://app.example"])
st, hdrs, _ = raw("OPTIONS", f"{eb}/{pb}/x", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"})
check(f"cors: preflight through b allowed ({st}, {hdrs.get('Access-Control-Allow-Origin')})",
      st == 200 and hdrs.get("Access-Control-Allow-Origin") == "https://app.example")
st, _, body = raw("OPTIONS", f"{ec}/{pb}/x", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
check(f"cors: preflight of another origin through c is 403 ({st})", st == 403 and b"AccessForbidden" in body)
b.delete_bucket_cors(Bucket=pb)
expect_code("cors: deleted through b, through a", "NoSuchCORSConfiguration", a.get_bucket_cors, Bucket=pb)
st, _, _ = raw("OPTIONS", f"{ec}/{pb}/x", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"})
check(f"cors: preflight through c after the deletion is 403 ({st})", st == 403)

# ---- bucket policy: anonymous GET allowed through b and c once set through a.
policy = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{pb}/*"}]})
st, _, _ = raw("GET", f"{eb}/{pb}/y")
check(f"policy: anonymous GET through b before the policy is 403 ({st})", st == 403)
a.put_bucket_policy(Bucket=pb, Policy=policy)
st, _, body = raw("GET", f"{eb}/{pb}/y")
check(f"policy: anonymous GET through b allowed ({st})", st == 200 and body == b"y")
st, _, _ = raw("PUT", f"{ec}/{pb}/evil", b"x")
check(f"policy: anonymous PUT through c is 403 ({st})", st == 403)
c.delete_bucket_policy(Bucket=pb)
st, _, _ = raw("GET", f"{ea}/{pb}/y")
check(f"policy: anonymous GET through a after the deletion is 403 ({st})", st == 403)
st, _, _ = raw("GET", f"{eb}/{pb}/y")
check(f"policy: anonymous GET through b after the deletion is 403 ({st})", st == 403)

# ---- 10,000 versions of 100 keys, on demand.
if os.environ.get("E2E_VERSIONS_SCALE") == "1":
    sb = bucket("nscale")
    a.create_bucket(Bucket=sb)
    a.put_bucket_versioning(Bucket=sb, VersioningConfiguration={"Status": "Enabled"})
    nkeys, nvers = 100, 100

    def put_versions(k):
        n = nodes[k % len(nodes)]
        return [n.put_object(Bucket=sb, Key=f"key-{k:03d}", Body=f"{k}.{v}".encode())["VersionId"] for v in range(nvers)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(put_versions, range(nkeys)))
    want = [(f"key-{k:03d}", v) for k in range(nkeys) for v in reversed(ids[k])]
    seen, kw, pages = [], {}, 0
    while pages < 200:
        page = b.list_object_versions(Bucket=sb, MaxKeys=1000, **kw)
        pages += 1
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        latest = [v["Key"] for v in page.get("Versions", []) if v["IsLatest"]]
        check(f"scale: page {pages}: one latest version per key", len(latest) == len(set(latest)))
        if not page.get("IsTruncated"):
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    check(f"scale: 10,000 versions listed through b in {pages} pages, in order", seen == want and pages == 10)
    deleted = 0
    for page in c.get_paginator("list_object_versions").paginate(Bucket=sb):
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objs:
            res = c.delete_objects(Bucket=sb, Delete={"Objects": objs, "Quiet": True})
            check(f"scale: delete-all-versions page without errors ({res.get('Errors', [])[:2]})", not res.get("Errors"))
            deleted += len(objs)
    check(f"scale: the loop deleted {deleted} versions", deleted == nkeys * nvers)
    left = a.list_object_versions(Bucket=sb)
    check("scale: emptied, seen through a", not left.get("Versions") and not left.get("DeleteMarkers"))
    check("scale: the emptied bucket deleted through a", code_of(a.delete_bucket, Bucket=sb) is None)

# ---- clean up what can be (the COMPLIANCE-locked bucket stays, as it must).
for page in a.get_paginator("list_object_versions").paginate(Bucket=pb):
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    if objs:
        a.delete_objects(Bucket=pb, Delete={"Objects": objs})
check("cleanup: the plain bucket deleted through c", code_of(c.delete_bucket, Bucket=pb) is None)

for f in failures:
    print("FAIL:", f)
print(f"e2e_nodes: {len(endpoints)} endpoint(s), {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
