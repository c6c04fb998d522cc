#!/usr/bin/env python3
"""Differential S3 probe: sends the same raw SigV4-signed requests to Vaultaire
and MinIO and prints every difference in status, error code, significant
headers and normalised XML body.

usage: probe.py [case-substring ...]
"""
import base64, datetime, hashlib, http.client, json, os, re, sys, time, urllib.parse, zlib
import xml.etree.ElementTree as ET
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AK = os.environ.get("S3DIFF_AK", "rootkey123")
SK = os.environ.get("S3DIFF_SK", "rootsecret12345678")
SERVERS = {"vault": os.environ.get("S3DIFF_VAULT", "127.0.0.1:19300"),
           "minio": os.environ.get("S3DIFF_MINIO", "127.0.0.1:19400")}
RUN = os.environ.get("RUN", str(int(time.time()) % 100000))

SIG_HEADERS = ["etag", "content-length", "content-range", "content-type", "accept-ranges",
               "x-amz-version-id", "x-amz-delete-marker", "x-amz-checksum-crc32",
               "x-amz-checksum-crc32c", "x-amz-checksum-sha256", "x-amz-checksum-sha1",
               "x-amz-checksum-crc64nvme", "x-amz-checksum-type",
               "x-amz-copy-source-version-id", "x-amz-mp-parts-count", "x-amz-tagging-count",
               "cache-control", "content-disposition", "content-encoding", "content-language",
               "expires", "x-amz-meta-a", "x-amz-meta-b", "x-amz-object-lock-mode",
               "x-amz-object-lock-legal-hold", "x-amz-object-lock-retain-until-date",
               "access-control-allow-origin", "access-control-allow-methods",
               "access-control-allow-headers", "access-control-expose-headers",
               "access-control-max-age", "x-amz-bucket-region", "location",
               "x-amz-storage-class", "x-amz-website-redirect-location",
               "x-amz-server-side-encryption"]
PRESENCE_ONLY = {"last-modified"}
NOISE_TAGS = {"RequestId", "HostId", "Message", "Resource", "Key_", "ID", "DisplayName",
              "BucketName_", "Region_"}


class Ctx:
    def __init__(self, name):
        self.name = name
        self.host = SERVERS[name]
        self.ids = {}
        self.creds = Credentials(AK, SK)
        self.state = {}

    def tok(self, v, kind="ID"):
        if v is None:
            return None
        if v == "null":
            return "null"
        if v not in self.ids:
            self.ids[v] = "%s%d" % (kind, len([k for k in self.ids.values() if k.startswith(kind)]) + 1)
        return self.ids[v]

    def bucket(self, b):
        return "d26-%s-%s" % (RUN, b)

    def url(self, bucket=None, key=None, query=None):
        p = "/"
        if bucket:
            p += self.bucket(bucket)
            if key is not None:
                p += "/" + urllib.parse.quote(key, safe="/~")
        if query:
            parts = []
            for seg in query.split("&"):
                if not seg:
                    continue
                if "=" in seg:
                    k, v = seg.split("=", 1)
                    parts.append(k + "=" + urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~"))
                else:
                    parts.append(seg)
            p += "?" + "&".join(parts)
        return p

    def req(self, method, bucket=None, key=None, query=None, headers=None, body=b"",
            sign=True, payload_hash=None, raw_path=None):
        path = raw_path if raw_path is not None else self.url(bucket, key, query)
        h = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if sign:
            url = "http://%s%s" % (self.host, path)
            r = AWSRequest(method=method, url=url, headers=h, data=body)
            r.context["payload_signing_enabled"] = True
            auth = S3SigV4Auth(self.creds, "s3", "us-east-1")
            if payload_hash:
                auth.payload = lambda request: payload_hash
            auth.add_auth(r)
            h = dict(r.headers.items())
        conn = http.client.HTTPConnection(self.host, timeout=30)
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if body or method in ("PUT", "POST"):
            if not any(k.lower() == "content-length" for k in h):
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        return Resp(self, resp.status, hdrs, data)

    def presign(self, method, bucket, key, expires=60, query=None, when=None):
        url = "http://%s%s" % (self.host, self.url(bucket, key, query))
        r = AWSRequest(method=method, url=url)
        a = S3SigV4QueryAuth(self.creds, "s3", "us-east-1", expires=expires)
        import botocore.auth as _ba
        orig = _ba.get_current_datetime
        if when is not None:
            _ba.get_current_datetime = lambda *a, **k: when
        try:
            a.add_auth(r)
        finally:
            _ba.get_current_datetime = orig
        u = urllib.parse.urlsplit(r.url)
        path = u.path + ("?" + u.query if u.query else "")
        conn = http.client.HTTPConnection(self.host, timeout=30)
        conn.request(method, path)
        resp = conn.getresponse()
        data = resp.read()
        return Resp(self, resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)


class Resp:
    def __init__(self, ctx, status, headers, body):
        self.ctx, self.status, self.headers, self.body = ctx, status, headers, body

    @property
    def code(self):
        if self.status >= 300 and self.body.startswith(b"<"):
            try:
                e = ET.fromstring(self.body)
                c = e.find("Code")
                return c.text if c is not None else None
            except Exception:
                return "BADXML"
        return None

    def summary(self, body=True, extra_headers=()):
        s = {"status": self.status}
        if self.code:
            s["code"] = self.code
        for h in list(SIG_HEADERS) + list(extra_headers):
            if self.status >= 400 and h not in ("content-range", "x-amz-version-id", "x-amz-delete-marker", "access-control-allow-origin"):
                continue
            if h == "accept-ranges":
                continue
            if h == "content-length" and self.body[:1] == b"<":
                continue
            if h in self.headers:
                v = self.headers[h]
                if h == "x-amz-version-id" or h == "x-amz-copy-source-version-id":
                    v = self.ctx.tok(v, "V")
                elif h == "x-amz-object-lock-retain-until-date":
                    v = "<date>"
                elif h == "expires" and v:
                    v = "<set>"
                elif h == "content-type" and self.status >= 300:
                    continue
                s[h] = v
        for h in PRESENCE_ONLY:
            if self.status < 400:
                s[h + "?"] = h in self.headers
        if body and self.body:
            if self.status < 300 or not self.code:
                s["body"] = norm_body(self.ctx, self.body)
        return s


def strip_ns(t):
    return t.split("}", 1)[1] if t.startswith("{") else t


VID_TAGS = {"VersionId", "NextVersionIdMarker", "VersionIdMarker", "DeleteMarkerVersionId"}
UID_TAGS = {"UploadId", "NextUploadIdMarker", "UploadIdMarker"}
DATE_TAGS = {"LastModified", "Initiated", "CreationDate", "RetainUntilDate"}


def norm_el(ctx, e):
    tag = strip_ns(e.tag)
    kids = list(e)
    if not kids:
        t = (e.text or "").strip()
        if tag in VID_TAGS:
            t = ctx.tok(t, "V")
        elif tag in UID_TAGS:
            t = ctx.tok(t, "U")
        elif tag in DATE_TAGS:
            t = "<date>" if t else ""
        elif tag in ("NextContinuationToken", "ContinuationToken"):
            t = "<tok>" if t else ""
        elif tag in ("ID", "DisplayName", "RequestId", "HostId"):
            t = "<id>"
        return "%s=%s" % (tag, t)
    kids = sorted(kids, key=lambda k: strip_ns(k.tag))
    out = [norm_el(ctx, k) for k in kids]
    out = [o for o in out if not (isinstance(o, str) and o.endswith("="))]
    return {tag: out}


def norm_body(ctx, b):
    if b.startswith(b"<?xml") or b.startswith(b"<"):
        try:
            e = ET.fromstring(b)
        except Exception:
            return "RAW:" + b[:200].decode("latin1")
        ns = e.tag.split("}")[0][1:] if e.tag.startswith("{") else ""
        return {"ns": ns, "xml": norm_el(ctx, e)}
    if len(b) > 200:
        return "BYTES(%d,md5=%s)" % (len(b), hashlib.md5(b).hexdigest())
    return "RAW:" + b.decode("latin1")


# ---------------------------------------------------------------------------
CASES = []


def case(f):
    CASES.append(f)
    return f


def md5b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def crc32b64(b):
    return base64.b64encode(zlib.crc32(b).to_bytes(4, "big")).decode()


def sha256b64(b):
    return base64.b64encode(hashlib.sha256(b).digest()).decode()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def crc32cb64(b):
    return base64.b64encode(crc32c(b).to_bytes(4, "big")).decode()


def httpdate(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def mkbucket(c, b, lock=False):
    h = {"x-amz-bucket-object-lock-enabled": "true"} if lock else {}
    r = c.req("PUT", b, headers=h)
    assert r.status == 200, (c.name, b, r.status, r.body)


def setver(c, b, st):
    body = '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>%s</Status></VersioningConfiguration>' % st
    return c.req("PUT", b, query="versioning", body=body)


def complete_xml(parts):
    s = "<CompleteMultipartUpload>"
    for n, et in parts:
        s += "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (n, et)
    return s + "</CompleteMultipartUpload>"


def uid_of(r):
    return ET.fromstring(r.body).find("{*}UploadId").text


def run(filters):
    ctxs = {n: Ctx(n) for n in SERVERS}
    ndiff = 0
    for f in CASES:
        if filters and not any(x in f.__name__ for x in filters):
            continue
        out = {}
        for n, c in ctxs.items():
            try:
                out[n] = f(c)
            except Exception as e:
                import traceback
                out[n] = [("EXC", {"exc": repr(e)[:300]})]
                print("!!! %s on %s: %s" % (f.__name__, n, traceback.format_exc().splitlines()[-3:]))
        a, b = out["vault"], out["minio"]
        for n in out:
            for l, v in out[n]:
                if isinstance(v, dict) and v.get("code") in ("SignatureDoesNotMatch", "AuthorizationQueryParametersError"):
                    print("!!! signature refused: %s on %s: %s" % (f.__name__, n, l))
        da, db = dict(a), dict(b)
        labels = [l for l, _ in a] + [l for l, _ in b if l not in da]
        for l in labels:
            va, vb = da.get(l), db.get(l)
            if va != vb:
                ndiff += 1
                print("=== %s :: %s" % (f.__name__, l))
                if isinstance(va, dict) and isinstance(vb, dict):
                    for k in sorted(set(va) | set(vb), key=lambda k: (k != "status", k)):
                        if va.get(k) != vb.get(k):
                            print("   %-30s vault=%s" % (k, json.dumps(va.get(k))[:1500]))
                            print("   %-30s minio=%s" % ("", json.dumps(vb.get(k))[:1500]))
                else:
                    print("   vault=%s\n   minio=%s" % (va, vb))
        if "-v" in sys.argv:
            print("--- %s vault: %s" % (f.__name__, json.dumps(a)[:3000]))
    print("differences:", ndiff)


