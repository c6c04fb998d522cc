import boto3, botocore, io, hashlib, json, os, sys
from botocore.config import Config
RUN = sys.argv[1]
def client(addr, **kw):
    return boto3.client("s3", endpoint_url="http://%s" % addr, aws_access_key_id=os.environ.get("S3DIFF_AK", "rootkey123"),
                        aws_secret_access_key=os.environ.get("S3DIFF_SK", "rootsecret12345678"), region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **kw))
def run(port):
    out = {}
    s3 = client(port)
    b = "d26-%s-boto" % RUN
    s3.create_bucket(Bucket=b)
    def t(name, f):
        try:
            r = f()
            if isinstance(r, dict):
                r.pop("ResponseMetadata", None)
                for k in list(r):
                    if k in ("LastModified", "VersionId", "Body", "Expiration", "ServerSideEncryption"):
                        r[k] = "<x>"
            out[name] = r
        except botocore.exceptions.ClientError as e:
            out[name] = ("ERR", e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])
        except Exception as e:
            out[name] = ("EXC", type(e).__name__, str(e)[:200])
    for alg in ["CRC32", "CRC32C", "SHA256", "SHA1", "CRC64NVME"]:
        t("put trailer " + alg, lambda: s3.put_object(Bucket=b, Key="t" + alg, Body=b"hello trailer", ChecksumAlgorithm=alg))
        t("get checksum " + alg, lambda: {k: v for k, v in s3.get_object(Bucket=b, Key="t" + alg, ChecksumMode="ENABLED").items() if "Checksum" in k or k == "ContentLength"})
    t("put gzip encoding trailer", lambda: s3.put_object(Bucket=b, Key="gz", Body=b"x", ContentEncoding="gzip", ChecksumAlgorithm="CRC32"))
    t("head gz", lambda: {k: v for k, v in s3.head_object(Bucket=b, Key="gz").items() if k in ("ContentEncoding", "ContentLength")})
    t("put no encoding trailer", lambda: s3.put_object(Bucket=b, Key="ngz", Body=b"x", ChecksumAlgorithm="CRC32"))
    t("head ngz", lambda: {k: v for k, v in s3.head_object(Bucket=b, Key="ngz").items() if k in ("ContentEncoding", "ContentLength")})
    t("upload_fileobj 20MB", lambda: s3.upload_fileobj(io.BytesIO(b"z" * (20 << 20)), b, "big"))
    t("head big", lambda: {k: v for k, v in s3.head_object(Bucket=b, Key="big", ChecksumMode="ENABLED").items() if k in ("ETag", "ContentLength", "ChecksumCRC32", "ChecksumType")})
    t("download big", lambda: hashlib.md5(s3.get_object(Bucket=b, Key="big")["Body"].read()).hexdigest())
    t("copy big (multipart copy)", lambda: s3.copy({"Bucket": b, "Key": "big"}, b, "big2", Config=boto3.s3.transfer.TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)))
    t("head big2", lambda: {k: v for k, v in s3.head_object(Bucket=b, Key="big2", ChecksumMode="ENABLED").items() if k in ("ETag", "ContentLength", "ChecksumCRC32", "ChecksumType")})
    t("get_object_attributes big", lambda: s3.get_object_attributes(Bucket=b, Key="big", ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"], MaxParts=1))
    t("list_objects_v2 paginator", lambda: [len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={"PageSize": 3})])
    t("list_object_versions paginator", lambda: [len(p.get("Versions", [])) for p in s3.get_paginator("list_object_versions").paginate(Bucket=b, PaginationConfig={"PageSize": 3})])
    t("delete_objects", lambda: s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "gz"}, {"Key": "ngz"}, {"Key": "nope"}]}))
    t("get_bucket_location", lambda: s3.get_bucket_location(Bucket=b))
    t("head_bucket", lambda: s3.head_bucket(Bucket=b))
    t("get_bucket_versioning", lambda: s3.get_bucket_versioning(Bucket=b))
    t("put_object_tagging", lambda: s3.put_object_tagging(Bucket=b, Key="big", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}))
    t("get_object_tagging", lambda: s3.get_object_tagging(Bucket=b, Key="big"))
    t("presigned put", lambda: __import__("urllib.request").request.urlopen(__import__("urllib.request").request.Request(s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "pp"}, ExpiresIn=60), data=b"presigned put", method="PUT")).status)
    t("get pp", lambda: s3.get_object(Bucket=b, Key="pp")["Body"].read())
    t("presigned post", lambda: __import__("requests").post(**(lambda p: {"url": p["url"], "data": p["fields"], "files": {"file": ("f", b"posted")}})(s3.generate_presigned_post(b, "posted", ExpiresIn=60))).status_code)
    t("get posted", lambda: s3.get_object(Bucket=b, Key="posted")["Body"].read())
    import zlib, base64
    fo = bytes(range(256)) * (20 * 4096)
    fcrc = base64.b64encode(zlib.crc32(fo).to_bytes(4, "big")).decode()
    t("upload_fileobj 20MiB with full-object ChecksumCRC32", lambda: s3.upload_fileobj(io.BytesIO(fo), b, "fullcrc", ExtraArgs={"ChecksumCRC32": fcrc}))
    t("head fullcrc", lambda: {k: v for k, v in s3.head_object(Bucket=b, Key="fullcrc", ChecksumMode="ENABLED").items() if k in ("ChecksumCRC32", "ChecksumType", "ContentLength")})
    # when_required checksum config (older behaviour)
    s3o = client(port, request_checksum_calculation="when_required", response_checksum_validation="when_required")
    t("put when_required", lambda: s3o.put_object(Bucket=b, Key="wr", Body=b"abc"))
    t("delete_objects when_required", lambda: s3o.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "wr"}]}))
    return out
a = run(os.environ.get("S3DIFF_VAULT", "127.0.0.1:19300")); m = run(os.environ.get("S3DIFF_MINIO", "127.0.0.1:19400"))
for k in a:
    if a[k] != m.get(k):
        print("===", k); print("   vault:", a[k]); print("   minio:", m.get(k))
print("keys", len(a))
