"""boto3 half of the end-to-end test: S3 error codes and tenant isolation.

Usage: e2e_boto3.py ENDPOINT TENANT_A.json TENANT_B.json [CA_BUNDLE]
With CA_BUNDLE (an https ENDPOINT), every client verifies the node's
certificate against that CA only (boto3 verify=, urllib cafile=), and a few
HTTPS checks run too: multipart transfer, presigned URL, untrusted refusal.
Each check prints a FAIL line when it does not hold; exit status 1 if any failed.
"""
import hashlib
import base64
import json
import os
import ssl
import sys
import urllib.request
import urllib.error

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, SSLError

endpoint, a_file, b_file = sys.argv[1:4]
ca = sys.argv[4] if len(sys.argv) > 4 else None
verify = ca if ca else None
urlctx = ssl.create_default_context(cafile=ca) if ca else None
failures = []


def client(creds_file=None, access=None, secret=None, verify=verify):
    if creds_file:
        creds = json.load(open(creds_file))
        access, secret = creds["access_key"], creds["secret_key"]
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
        region_name="us-east-1", verify=verify,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def expect_code(name, code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            failures.append(f"{name}: got {got}, want {code}")
        return
    except Exception as e:  # a lost response (connection reset) is a failure, not the end of the suite
        failures.append(f"{name}: {type(e).__name__}: {str(e)[-160:]}, want {code}")
        return
    failures.append(f"{name}: succeeded, want {code}")


def check(name, cond):
    if not cond:
        failures.append(name)


a, b = client(a_file), client(b_file)
a.create_bucket(Bucket="boto-a")
b.create_bucket(Bucket="boto-a")  # same name, other tenant: allowed
expect_code("create twice", "BucketAlreadyOwnedByYou", a.create_bucket, Bucket="boto-a")
expect_code("bad bucket name", "InvalidBucketName", a.create_bucket, Bucket="Bad_Name")
expect_code("missing bucket", "NoSuchBucket", a.list_objects_v2, Bucket="never-made")
expect_code("missing key", "NoSuchKey", a.get_object, Bucket="boto-a", Key="nope")
a.put_object(Bucket="boto-a", Key="k", Body=b"hello world")
check("put/get round trip", a.get_object(Bucket="boto-a", Key="k")["Body"].read() == b"hello world")
expect_code("bucket not empty", "BucketNotEmpty", a.delete_bucket, Bucket="boto-a")
expect_code("key too long", "KeyTooLongError", a.put_object, Bucket="boto-a", Key="x" * 1025, Body=b"x")
expect_code("range past end", "InvalidRange", a.get_object, Bucket="boto-a", Key="k", Range="bytes=100-200")
wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
expect_code("bad Content-MD5", "BadDigest", a.put_object, Bucket="boto-a", Key="md5", Body=b"data", ContentMD5=wrong_md5)
expect_code("bad versioning status", "IllegalVersioningConfigurationException", a.put_bucket_versioning, Bucket="boto-a",
            VersioningConfiguration={"Status": "On"})

# Versioning: versions, a delete marker, then the "delete all versions" loop empties the bucket.
a.create_bucket(Bucket="boto-v")
a.put_bucket_versioning(Bucket="boto-v", VersioningConfiguration={"Status": "Enabled"})
check("versioning enabled", a.get_bucket_versioning(Bucket="boto-v").get("Status") == "Enabled")
vids = [a.put_object(Bucket="boto-v", Key="doc", Body=b"v%d" % i)["VersionId"] for i in range(3)]
check("first version by id", a.get_object(Bucket="boto-v", Key="doc", VersionId=vids[0])["Body"].read() == b"v0")
check("delete adds a marker", a.delete_object(Bucket="boto-v", Key="doc").get("DeleteMarker") is True)
expect_code("get of a deleted key", "NoSuchKey", a.get_object, Bucket="boto-v", Key="doc")
vers = a.list_object_versions(Bucket="boto-v")
check("three versions and a marker", [v["VersionId"] for v in vers["Versions"]] == vids[::-1] and len(vers["DeleteMarkers"]) == 1)
for page in a.get_paginator("list_object_versions").paginate(Bucket="boto-v"):
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    if objs:
        a.delete_objects(Bucket="boto-v", Delete={"Objects": objs})
a.delete_bucket(Bucket="boto-v")
expect_code("wrong secret", "SignatureDoesNotMatch", client(access=json.load(open(a_file))["access_key"], secret="wrong").list_buckets)
expect_code("unknown key", "InvalidAccessKeyId", client(access="NOSUCHKEY", secret="x").list_buckets)

# Checksums: boto3 sends a CRC32 trailer (or header) by default; ask for it back.
a.put_object(Bucket="boto-a", Key="sum", Body=b"checksummed", ChecksumAlgorithm="SHA256")
head = a.head_object(Bucket="boto-a", Key="sum", ChecksumMode="ENABLED")
want = base64.b64encode(hashlib.sha256(b"checksummed").digest()).decode()
check(f"checksum returned on HEAD ({head.get('ChecksumSHA256')})", head.get("ChecksumSHA256") == want)

# Multipart errors.
up = a.create_multipart_upload(Bucket="boto-a", Key="mp")["UploadId"]
e1 = a.upload_part(Bucket="boto-a", Key="mp", UploadId=up, PartNumber=1, Body=b"a" * 10)["ETag"]
e2 = a.upload_part(Bucket="boto-a", Key="mp", UploadId=up, PartNumber=2, Body=b"b" * 10)["ETag"]
expect_code("parts out of order", "InvalidPartOrder", a.complete_multipart_upload, Bucket="boto-a", Key="mp", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
expect_code("unknown part", "InvalidPart", a.complete_multipart_upload, Bucket="boto-a", Key="mp", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]})
expect_code("small part", "EntityTooSmall", a.complete_multipart_upload, Bucket="boto-a", Key="mp", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
a.abort_multipart_upload(Bucket="boto-a", Key="mp", UploadId=up)
expect_code("no such upload", "NoSuchUpload", a.list_parts, Bucket="boto-a", Key="mp", UploadId=up)

# Multi-delete, quiet.
for i in range(5):
    a.put_object(Bucket="boto-a", Key=f"del/{i}", Body=b"x")
res = a.delete_objects(Bucket="boto-a", Delete={"Objects": [{"Key": f"del/{i}"} for i in range(5)], "Quiet": True})
check("quiet multi-delete lists nothing", not res.get("Deleted") and not res.get("Errors"))
check("multi-delete removed them", a.list_objects_v2(Bucket="boto-a", Prefix="del/")["KeyCount"] == 0)

# Tenant isolation: b sees its own empty boto-a, never a's objects.
check("tenant b sees no objects of a", b.list_objects_v2(Bucket="boto-a")["KeyCount"] == 0)
expect_code("tenant b reads a's key", "NoSuchKey", b.get_object, Bucket="boto-a", Key="k")
b.put_object(Bucket="boto-a", Key="k", Body=b"b's data")
check("tenant b's write does not touch a", a.get_object(Bucket="boto-a", Key="k")["Body"].read() == b"hello world")

# Anonymous access is refused.
try:
    urllib.request.urlopen(f"{endpoint}/boto-a/k", context=urlctx)
    failures.append("anonymous GET succeeded")
except urllib.error.HTTPError as e:
    check("anonymous GET is 403 AccessDenied", e.code == 403 and b"AccessDenied" in e.read())


def anonymous(method, path, body=None):
    """An unsigned request: (status, body)."""
    req = urllib.request.Request(f"{endpoint}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, context=urlctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ACLs: owner-only ones are accepted and returned; grants to others are AccessControlListNotSupported.
grants = lambda acl: [(g["Grantee"].get("Type"), g["Permission"]) for g in acl["Grants"]]
check("bucket ACL is the owner's FULL_CONTROL", grants(a.get_bucket_acl(Bucket="boto-a")) == [("CanonicalUser", "FULL_CONTROL")])
a.put_bucket_acl(Bucket="boto-a", ACL="private")
a.put_object(Bucket="boto-a", Key="acl", Body=b"x", ACL="bucket-owner-full-control")
check("object ACL is the owner's FULL_CONTROL", grants(a.get_object_acl(Bucket="boto-a", Key="acl")) == [("CanonicalUser", "FULL_CONTROL")])
a.put_object_acl(Bucket="boto-a", Key="acl", ACL="private")
expect_code("bucket ACL public-read-write", "AccessControlListNotSupported", a.put_bucket_acl, Bucket="boto-a", ACL="public-read-write")
expect_code("object ACL public-read", "AccessControlListNotSupported", a.put_object_acl, Bucket="boto-a", Key="acl", ACL="public-read")
expect_code("ACL grant to another account", "AccessControlListNotSupported", a.put_bucket_acl, Bucket="boto-a", GrantRead='id="globex"')
expect_code("put with a public-read object ACL", "AccessControlListNotSupported", a.put_object, Bucket="boto-a", Key="acl2", Body=b"x", ACL="public-read")
expect_code("ACL of a missing key", "NoSuchKey", a.get_object_acl, Bucket="boto-a", Key="nope")

# A public-read bucket serves anonymous GETs, nothing else; back to private, it serves none.
a.create_bucket(Bucket="boto-pr", ACL="public-read")
a.put_object(Bucket="boto-pr", Key="p", Body=b"read me")
check("public-read ACL has the AllUsers READ grant", ("Group", "READ") in grants(a.get_bucket_acl(Bucket="boto-pr")))
check("anonymous GET of a public-read bucket", anonymous("GET", "/boto-pr/p") == (200, b"read me"))
check("anonymous PUT into a public-read bucket is 403", anonymous("PUT", "/boto-pr/evil", b"x")[0] == 403)
check("anonymous listing of a public-read bucket is 403", anonymous("GET", "/boto-pr?list-type=2")[0] == 403)
b.create_bucket(Bucket="boto-pr")
expect_code("another tenant's public-read of a public name", "OperationAborted", b.put_bucket_acl, Bucket="boto-pr", ACL="public-read")
b.delete_bucket(Bucket="boto-pr")
a.put_bucket_acl(Bucket="boto-pr", ACL="private")
check("anonymous GET after private is 403", anonymous("GET", "/boto-pr/p")[0] == 403)

# Bucket policy: anonymous s3:GetObject only; a principal naming another tenant is refused.
def policy(bucket, principal, action="s3:GetObject"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": f"arn:aws:s3:::{bucket}/*"}]})
a.create_bucket(Bucket="boto-pol")
a.put_object(Bucket="boto-pol", Key="p", Body=b"by policy")
expect_code("policy naming another tenant", "MalformedPolicy", a.put_bucket_policy, Bucket="boto-pol",
            Policy=policy("boto-pol", {"AWS": "arn:aws:iam::globex:root"}))
expect_code("policy naming an account id", "MalformedPolicy", a.put_bucket_policy, Bucket="boto-pol", Policy=policy("boto-pol", {"AWS": "123456789012"}))
expect_code("policy allowing s3:PutObject", "NotImplemented", a.put_bucket_policy, Bucket="boto-pol", Policy=policy("boto-pol", "*", "s3:PutObject"))
expect_code("policy that is not JSON", "MalformedPolicy", a.put_bucket_policy, Bucket="boto-pol", Policy="{not json")
expect_code("no policy stored after refusals", "NoSuchBucketPolicy", a.get_bucket_policy, Bucket="boto-pol")
check("anonymous GET without a policy is 403", anonymous("GET", "/boto-pol/p")[0] == 403)
a.put_bucket_policy(Bucket="boto-pol", Policy=policy("boto-pol", "*"))
check("policy read back", json.loads(a.get_bucket_policy(Bucket="boto-pol")["Policy"])["Statement"][0]["Principal"] == "*")
check("policy status is public", a.get_bucket_policy_status(Bucket="boto-pol")["PolicyStatus"]["IsPublic"] is True)
check("anonymous GET allowed by the policy", anonymous("GET", "/boto-pol/p") == (200, b"by policy"))
check("anonymous DELETE with the policy is 403", anonymous("DELETE", "/boto-pol/p")[0] == 403)
expect_code("tenant b cannot read a's policy bucket signed", "NoSuchBucket", b.get_object, Bucket="boto-pol", Key="p")
a.delete_bucket_policy(Bucket="boto-pol")
check("anonymous GET after the policy's deletion is 403", anonymous("GET", "/boto-pol/p")[0] == 403)

if ca:
    # HTTPS: a multipart transfer (12 MB > the 8 MiB threshold), listing,
    # a presigned URL read with the CA, and a client without the CA refused.
    import tempfile
    from boto3.s3.transfer import TransferConfig
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
        data = os.urandom(12_000_000)
        with open(src, "wb") as f:
            f.write(data)
        a.upload_file(src, "boto-a", "tls/big", Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20))
        etag = a.head_object(Bucket="boto-a", Key="tls/big")["ETag"]
        check(f"upload_file over https is multipart ({etag})", etag.endswith('-2"'))
        a.download_file("boto-a", "tls/big", dst)
        check("download_file over https returns the bytes", open(dst, "rb").read() == data)
        keys = [o["Key"] for o in a.list_objects_v2(Bucket="boto-a", Prefix="tls/")["Contents"]]
        check(f"list over https ({keys})", keys == ["tls/big"])
        url = a.generate_presigned_url("get_object", Params={"Bucket": "boto-a", "Key": "tls/big"}, ExpiresIn=60)
        check(f"presigned URL is https ({url[:40]})", url.startswith("https://"))
        check("presigned GET with the CA", urllib.request.urlopen(url, context=urlctx).read() == data)
    try:
        client(a_file, verify=True).list_buckets()
        failures.append("a client without the CA accepted the node's certificate")
    except SSLError:
        pass

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
