from probe import *  # noqa


@case
def c01_basic_put_get(c):
    R = []
    mkbucket(c, "basic")
    R.append(("head missing bucket", c.req("HEAD", "nobucket-x").summary()))
    R.append(("get missing bucket obj", c.req("GET", "nobucket-x", "k").summary()))
    R.append(("head missing key", c.req("HEAD", "basic", "nokey").summary()))
    R.append(("get missing key", c.req("GET", "basic", "nokey").summary()))
    R.append(("head bucket", c.req("HEAD", "basic").summary()))
    R.append(("put", c.req("PUT", "basic", "a.txt", body=b"hello world",
                          headers={"Content-Type": "text/plain", "x-amz-meta-a": "x"}).summary()))
    R.append(("get", c.req("GET", "basic", "a.txt").summary()))
    R.append(("head", c.req("HEAD", "basic", "a.txt").summary()))
    R.append(("put zero", c.req("PUT", "basic", "zero", body=b"").summary()))
    R.append(("get zero", c.req("GET", "basic", "zero").summary()))
    R.append(("get zero range", c.req("GET", "basic", "zero", headers={"Range": "bytes=0-"}).summary()))
    R.append(("get zero suffix", c.req("GET", "basic", "zero", headers={"Range": "bytes=-1"}).summary()))
    R.append(("head zero", c.req("HEAD", "basic", "zero").summary()))
    R.append(("put no content-type", c.req("PUT", "basic", "nct", body=b"x").summary()))
    R.append(("get no content-type", c.req("GET", "basic", "nct").summary()))
    R.append(("bucket location", c.req("GET", "basic", query="location").summary()))
    R.append(("location missing bucket", c.req("GET", "nobucket-x", query="location").summary()))
    R.append(("create existing bucket", c.req("PUT", "basic").summary()))
    R.append(("create bad name", c.req("PUT", raw_path="/ab").summary()))
    R.append(("create bad name upper", c.req("PUT", raw_path="/ABCdef").summary()))
    R.append(("delete nonempty bucket", c.req("DELETE", "basic").summary()))
    R.append(("delete missing key", c.req("DELETE", "basic", "nokey").summary()))
    R.append(("delete missing bucket", c.req("DELETE", "nobucket-x").summary()))
    R.append(("md5 mismatch", c.req("PUT", "basic", "m", body=b"abc",
                                    headers={"Content-MD5": md5b64(b"abd")}).summary()))
    R.append(("md5 invalid", c.req("PUT", "basic", "m", body=b"abc",
                                   headers={"Content-MD5": "notbase64!!"}).summary()))
    R.append(("md5 ok", c.req("PUT", "basic", "m", body=b"abc",
                              headers={"Content-MD5": md5b64(b"abc")}).summary()))
    R.append(("sha256 mismatch", c.req("PUT", "basic", "m2", body=b"abc",
                                       payload_hash=hashlib.sha256(b"abd").hexdigest()).summary()))
    R.append(("get missing m2", c.req("HEAD", "basic", "m2").summary()))
    R.append(("response overrides", c.req("GET", "basic", "a.txt", query=
        "response-content-type=application%2Fjson&response-content-disposition=attachment%3B%20filename%3Dx&"
        "response-cache-control=no-cache&response-content-language=fr&response-content-encoding=gzip&"
        "response-expires=Thu%2C%2001%20Dec%201994%2016%3A00%3A00%20GMT").summary()))
    R.append(("response overrides on HEAD", c.req("HEAD", "basic", "a.txt", query="response-content-type=application%2Fjson").summary()))
    R.append(("put with cache headers", c.req("PUT", "basic", "ch", body=b"x", headers={
        "Cache-Control": "max-age=5", "Content-Disposition": "inline", "Content-Encoding": "identity",
        "Content-Language": "de", "Expires": "Thu, 01 Dec 1994 16:00:00 GMT"}).summary()))
    R.append(("get with cache headers", c.req("GET", "basic", "ch").summary()))
    R.append(("get ?partNumber=1 single", c.req("GET", "basic", "a.txt", query="partNumber=1").summary()))
    R.append(("head ?partNumber=2 single", c.req("HEAD", "basic", "a.txt", query="partNumber=2").summary()))
    return R


@case
def c02_conditional(c):
    R = []
    mkbucket(c, "cond")
    p = c.req("PUT", "cond", "k", body=b"0123456789")
    et = p.headers.get("etag")
    lm = c.req("HEAD", "cond", "k").headers.get("last-modified")
    past, future = httpdate(time.time() - 86400), httpdate(time.time() + 86400)
    for name, h in [
        ("if-match ok", {"If-Match": et}),
        ("if-match bad", {"If-Match": '"deadbeef"'}),
        ("if-match *", {"If-Match": "*"}),
        ("if-match unquoted", {"If-Match": et.strip('"')}),
        ("if-match list", {"If-Match": '"x", ' + et}),
        ("if-none-match ok", {"If-None-Match": et}),
        ("if-none-match other", {"If-None-Match": '"deadbeef"'}),
        ("if-none-match *", {"If-None-Match": "*"}),
        ("ims past", {"If-Modified-Since": past}),
        ("ims future", {"If-Modified-Since": future}),
        ("ims lm", {"If-Modified-Since": lm}),
        ("ius past", {"If-Unmodified-Since": past}),
        ("ius future", {"If-Unmodified-Since": future}),
        ("ims garbage", {"If-Modified-Since": "garbage"}),
        ("ius garbage", {"If-Unmodified-Since": "garbage"}),
        ("if-match ok + ius past", {"If-Match": et, "If-Unmodified-Since": past}),
        ("if-none-match bad + ims future", {"If-None-Match": '"x"', "If-Modified-Since": future}),
        ("if-none-match match + ims past", {"If-None-Match": et, "If-Modified-Since": past}),
        ("if-match bad + inm match", {"If-Match": '"x"', "If-None-Match": et}),
        ("if-match bad + range", {"If-Match": '"x"', "Range": "bytes=0-1"}),
        ("if-none-match match + range", {"If-None-Match": et, "Range": "bytes=0-1"}),
        ("if-none-match match + bad range", {"If-None-Match": et, "Range": "bytes=100-200"}),
    ]:
        R.append(("GET " + name, c.req("GET", "cond", "k", headers=h).summary()))
        R.append(("HEAD " + name, c.req("HEAD", "cond", "k", headers=h).summary()))
    R.append(("cond on missing key if-match", c.req("GET", "cond", "nokey", headers={"If-Match": et}).summary()))
    R.append(("cond on missing key inm", c.req("GET", "cond", "nokey", headers={"If-None-Match": "*"}).summary()))
    # conditional PUT
    R.append(("PUT inm * existing", c.req("PUT", "cond", "k", body=b"new", headers={"If-None-Match": "*"}).summary()))
    R.append(("PUT inm * new", c.req("PUT", "cond", "k2", body=b"new", headers={"If-None-Match": "*"}).summary()))
    R.append(("PUT if-match bad", c.req("PUT", "cond", "k", body=b"new", headers={"If-Match": '"deadbeef"'}).summary()))
    R.append(("PUT if-match missing key", c.req("PUT", "cond", "k3", body=b"new", headers={"If-Match": et}).summary()))
    R.append(("PUT if-match ok", c.req("PUT", "cond", "k", body=b"new", headers={"If-Match": et}).summary()))
    R.append(("PUT inm etag", c.req("PUT", "cond", "k", body=b"new2", headers={"If-None-Match": '"abc"'}).summary()))
    R.append(("GET after", c.req("GET", "cond", "k").summary()))
    # conditional delete
    R.append(("DELETE if-match bad", c.req("DELETE", "cond", "k2", headers={"If-Match": '"deadbeef"'}).summary()))
    R.append(("DELETE if-match missing", c.req("DELETE", "cond", "nokey", headers={"If-Match": '"deadbeef"'}).summary()))
    # conditional on multipart complete
    u = c.req("POST", "cond", "k2", query="uploads")
    uid = uid_of(u)
    pe = c.req("PUT", "cond", "k2", query="partNumber=1&uploadId=" + uid, body=b"p").headers.get("etag")
    R.append(("complete inm * existing", c.req("POST", "cond", "k2", query="uploadId=" + uid, headers={"If-None-Match": "*"},
                                                body=complete_xml([(1, pe)])).summary()))
    R.append(("complete still open", c.req("GET", "cond", "k2", query="uploadId=" + uid).summary(body=False)))
    c.req("DELETE", "cond", "k2", query="uploadId=" + uid)
    return R


@case
def c03_range(c):
    R = []
    mkbucket(c, "range")
    data = bytes(range(256)) * 4  # 1024 bytes
    c.req("PUT", "range", "r", body=data)
    for rg in ["bytes=0-0", "bytes=0-9", "bytes=10-", "bytes=-10", "bytes=-2000", "bytes=1000-2000",
               "bytes=1023-", "bytes=1024-", "bytes=2000-3000", "bytes=-0", "bytes=5-2", "bytes=0-1,5-6",
               "bytes=abc", "bytes 0-5", "items=0-5", "bytes=0-1023", "bytes=0-99999999999999999999",
               "bytes=", "bytes=-", "bytes= 0-5", "bytes=0-5 "]:
        R.append(("GET " + rg, c.req("GET", "range", "r", headers={"Range": rg}).summary()))
    R.append(("HEAD bytes=0-9", c.req("HEAD", "range", "r", headers={"Range": "bytes=0-9"}).summary()))
    R.append(("HEAD bytes=2000-", c.req("HEAD", "range", "r", headers={"Range": "bytes=2000-"}).summary()))
    c.req("PUT", "range", "z", body=b"")
    R.append(("zero bytes=0-0", c.req("GET", "range", "z", headers={"Range": "bytes=0-0"}).summary()))
    R.append(("zero bytes=-5", c.req("GET", "range", "z", headers={"Range": "bytes=-5"}).summary()))
    return R


@case
def c04_copy(c):
    R = []
    mkbucket(c, "copy")
    mkbucket(c, "copy2")
    src = c.bucket("copy")
    c.req("PUT", "copy", "src", body=b"source data", headers={"Content-Type": "text/x-src", "x-amz-meta-a": "1",
                                                              "x-amz-tagging": "t1=v1"})
    et = c.req("HEAD", "copy", "src").headers["etag"]
    cs = {"x-amz-copy-source": "/%s/src" % src}
    R.append(("copy default", c.req("PUT", "copy", "dst1", headers=dict(cs)).summary()))
    R.append(("head dst1", c.req("HEAD", "copy", "dst1").summary()))
    R.append(("tagging dst1", c.req("GET", "copy", "dst1", query="tagging").summary()))
    R.append(("copy replace", c.req("PUT", "copy", "dst2", headers=dict(cs, **{
        "x-amz-metadata-directive": "REPLACE", "x-amz-meta-b": "2", "Content-Type": "text/new"})).summary()))
    R.append(("head dst2", c.req("HEAD", "copy", "dst2").summary()))
    R.append(("copy tagging replace", c.req("PUT", "copy", "dst3", headers=dict(cs, **{
        "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "t2=v2"})).summary()))
    R.append(("tagging dst3", c.req("GET", "copy", "dst3", query="tagging").summary()))
    R.append(("copy bad directive", c.req("PUT", "copy", "dst4", headers=dict(cs, **{
        "x-amz-metadata-directive": "MERGE"})).summary()))
    R.append(("copy onto self no replace", c.req("PUT", "copy", "src", headers=dict(cs)).summary()))
    R.append(("copy onto self replace", c.req("PUT", "copy", "src", headers=dict(cs, **{
        "x-amz-metadata-directive": "REPLACE", "x-amz-meta-a": "changed"})).summary()))
    R.append(("head src after", c.req("HEAD", "copy", "src").summary()))
    R.append(("copy-if-match ok", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-match": et})).summary()))
    R.append(("copy-if-match bad", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-match": '"x"'})).summary()))
    R.append(("copy-if-none-match match", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-none-match": et})).summary()))
    past, future = httpdate(time.time() - 86400), httpdate(time.time() + 86400)
    R.append(("copy-if-modified-since future", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-modified-since": future})).summary()))
    R.append(("copy-if-unmodified-since past", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-unmodified-since": past})).summary()))
    R.append(("copy-if-match ok + ius past", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-match": et, "x-amz-copy-source-if-unmodified-since": past})).summary()))
    R.append(("copy-if-none-match other + ims future", c.req("PUT", "copy", "d5", headers=dict(cs, **{"x-amz-copy-source-if-none-match": '"x"', "x-amz-copy-source-if-modified-since": future})).summary()))
    R.append(("copy missing src", c.req("PUT", "copy", "d6", headers={"x-amz-copy-source": "/%s/nope" % src}).summary()))
    R.append(("copy missing src bucket", c.req("PUT", "copy", "d6", headers={"x-amz-copy-source": "/nobucket-zz/nope"}).summary()))
    R.append(("copy src no leading slash", c.req("PUT", "copy", "d7", headers={"x-amz-copy-source": "%s/src" % src}).summary()))
    R.append(("copy src bad", c.req("PUT", "copy", "d7", headers={"x-amz-copy-source": "justbucket"}).summary()))
    R.append(("copy cross-bucket", c.req("PUT", "copy2", "x", headers=dict(cs)).summary()))
    c.req("PUT", "copy", "sp ace+%", body=b"odd")
    R.append(("copy odd key encoded", c.req("PUT", "copy", "d8", headers={"x-amz-copy-source": "/%s/%s" % (src, urllib.parse.quote("sp ace+%"))}).summary()))
    R.append(("get d8", c.req("GET", "copy", "d8").summary()))
    R.append(("copy with versionId null unversioned", c.req("PUT", "copy", "d9", headers={"x-amz-copy-source": "/%s/src?versionId=null" % src}).summary()))
    R.append(("copy with bogus versionId", c.req("PUT", "copy", "d9", headers={"x-amz-copy-source": "/%s/src?versionId=abc" % src}).summary()))
    R.append(("copy with body", c.req("PUT", "copy", "d10", headers=dict(cs), body=b"xyz").summary()))
    R.append(("copy with content-md5 of empty", c.req("PUT", "copy", "d10", headers=dict(cs, **{"Content-MD5": md5b64(b"")})).summary()))
    # versioned copy
    mkbucket(c, "copyv")
    setver(c, "copyv", "Enabled")
    v1 = c.req("PUT", "copyv", "k", body=b"version one").headers.get("x-amz-version-id")
    c.req("PUT", "copyv", "k", body=b"version two")
    vs = c.bucket("copyv")
    R.append(("copy of version", c.req("PUT", "copyv", "k2", headers={"x-amz-copy-source": "/%s/k?versionId=%s" % (vs, v1)}).summary()))
    R.append(("get copied version", c.req("GET", "copyv", "k2").summary()))
    c.req("DELETE", "copyv", "k")
    R.append(("copy of delete-marker latest", c.req("PUT", "copyv", "k3", headers={"x-amz-copy-source": "/%s/k" % vs}).summary()))
    dm = c.req("GET", "copyv", query="versions&prefix=k").body
    dmv = re.search(rb"<DeleteMarker>.*?<VersionId>(.*?)</VersionId>", dm)
    if dmv:
        R.append(("copy of delete-marker by id", c.req("PUT", "copyv", "k3", headers={"x-amz-copy-source": "/%s/k?versionId=%s" % (vs, dmv.group(1).decode())}).summary()))
    R.append(("copy storage class", c.req("PUT", "copy", "d11", headers=dict(cs, **{"x-amz-storage-class": "STANDARD"})).summary()))
    R.append(("copy storage class bogus", c.req("PUT", "copy", "d11", headers=dict(cs, **{"x-amz-storage-class": "BOGUS"})).summary()))
    return R


@case
def c05_multipart(c):
    R = []
    mkbucket(c, "mpu")
    big = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)
    u = c.req("POST", "mpu", "m1", query="uploads", headers={"Content-Type": "text/mp", "x-amz-meta-a": "m"})
    R.append(("create", u.summary()))
    uid = uid_of(u)
    p1 = c.req("PUT", "mpu", "m1", query="partNumber=1&uploadId=" + uid, body=big)
    R.append(("part1", p1.summary()))
    p2 = c.req("PUT", "mpu", "m1", query="partNumber=2&uploadId=" + uid, body=b"tail")
    R.append(("part2", p2.summary()))
    e1, e2 = p1.headers["etag"], p2.headers["etag"]
    R.append(("part 0", c.req("PUT", "mpu", "m1", query="partNumber=0&uploadId=" + uid, body=b"x").summary()))
    R.append(("part 10001", c.req("PUT", "mpu", "m1", query="partNumber=10001&uploadId=" + uid, body=b"x").summary()))
    R.append(("part bad uploadid", c.req("PUT", "mpu", "m1", query="partNumber=1&uploadId=bogus", body=b"x").summary()))
    R.append(("listparts", c.req("GET", "mpu", "m1", query="uploadId=" + uid).summary()))
    R.append(("listparts max1", c.req("GET", "mpu", "m1", query="max-parts=1&uploadId=" + uid).summary()))
    R.append(("listparts marker1", c.req("GET", "mpu", "m1", query="part-number-marker=1&uploadId=" + uid).summary()))
    R.append(("listparts max0", c.req("GET", "mpu", "m1", query="max-parts=0&uploadId=" + uid).summary()))
    R.append(("listparts bad max", c.req("GET", "mpu", "m1", query="max-parts=-1&uploadId=" + uid).summary()))
    R.append(("list uploads", c.req("GET", "mpu", query="uploads").summary()))
    R.append(("complete empty", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body="<CompleteMultipartUpload></CompleteMultipartUpload>").summary()))
    R.append(("complete wrong etag", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(1, e1), (2, '"00000000000000000000000000000000"')])).summary()))
    R.append(("complete wrong order", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(2, e2), (1, e1)])).summary()))
    R.append(("complete missing part", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(1, e1), (3, e2)])).summary()))
    R.append(("complete dup part", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(1, e1), (1, e1)])).summary()))
    R.append(("complete malformed", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body="<notxml").summary()))
    R.append(("complete unquoted etags", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(1, e1.strip('"')), (2, e2.strip('"'))])).summary()))
    R.append(("head m1", c.req("HEAD", "mpu", "m1").summary()))
    R.append(("get m1 partNumber=1", c.req("HEAD", "mpu", "m1", query="partNumber=1").summary()))
    R.append(("get m1 partNumber=2", c.req("HEAD", "mpu", "m1", query="partNumber=2").summary()))
    R.append(("get m1 partNumber=3", c.req("HEAD", "mpu", "m1", query="partNumber=3").summary()))
    R.append(("complete again", c.req("POST", "mpu", "m1", query="uploadId=" + uid, body=complete_xml([(1, e1), (2, e2)])).summary()))
    R.append(("listparts after complete", c.req("GET", "mpu", "m1", query="uploadId=" + uid).summary()))
    # part too small
    u = c.req("POST", "mpu", "m2", query="uploads"); uid = uid_of(u)
    a = c.req("PUT", "mpu", "m2", query="partNumber=1&uploadId=" + uid, body=b"small").headers["etag"]
    b = c.req("PUT", "mpu", "m2", query="partNumber=2&uploadId=" + uid, body=b"small2").headers["etag"]
    R.append(("complete too small", c.req("POST", "mpu", "m2", query="uploadId=" + uid, body=complete_xml([(1, a), (2, b)])).summary()))
    R.append(("complete subset single small", c.req("POST", "mpu", "m2", query="uploadId=" + uid, body=complete_xml([(2, b)])).summary()))
    R.append(("get m2", c.req("GET", "mpu", "m2").summary()))
    # abort then complete
    u = c.req("POST", "mpu", "m3", query="uploads"); uid = uid_of(u)
    a = c.req("PUT", "mpu", "m3", query="partNumber=1&uploadId=" + uid, body=b"abc").headers["etag"]
    R.append(("abort", c.req("DELETE", "mpu", "m3", query="uploadId=" + uid).summary()))
    R.append(("abort again", c.req("DELETE", "mpu", "m3", query="uploadId=" + uid).summary()))
    R.append(("complete after abort", c.req("POST", "mpu", "m3", query="uploadId=" + uid, body=complete_xml([(1, a)])).summary()))
    R.append(("upload after abort", c.req("PUT", "mpu", "m3", query="partNumber=1&uploadId=" + uid, body=b"x").summary()))
    R.append(("listparts after abort", c.req("GET", "mpu", "m3", query="uploadId=" + uid).summary()))
    # uploadId for other key
    u = c.req("POST", "mpu", "m4", query="uploads"); uid = uid_of(u)
    R.append(("part with other key's uploadid", c.req("PUT", "mpu", "other", query="partNumber=1&uploadId=" + uid, body=b"x").summary()))
    # ListParts pagination with many parts
    for n in range(1, 6):
        c.req("PUT", "mpu", "m4", query="partNumber=%d&uploadId=%s" % (n, uid), body=b"p%d" % n)
    R.append(("listparts page 2", c.req("GET", "mpu", "m4", query="max-parts=2&uploadId=" + uid).summary()))
    R.append(("listparts page 2 after 2", c.req("GET", "mpu", "m4", query="max-parts=2&part-number-marker=2&uploadId=" + uid).summary()))
    R.append(("listparts last page", c.req("GET", "mpu", "m4", query="max-parts=2&part-number-marker=4&uploadId=" + uid).summary()))
    # overwrite part
    R.append(("overwrite part 1", c.req("PUT", "mpu", "m4", query="partNumber=1&uploadId=" + uid, body=b"again").summary()))
    # list uploads with prefix/delimiter/max
    c.req("POST", "mpu", "dir/a", query="uploads")
    c.req("POST", "mpu", "dir/b", query="uploads")
    R.append(("list uploads delim", c.req("GET", "mpu", query="uploads&delimiter=/").summary()))
    R.append(("list uploads max1", c.req("GET", "mpu", query="uploads&max-uploads=1").summary()))
    R.append(("list uploads prefix", c.req("GET", "mpu", query="uploads&prefix=dir/").summary()))
    # content-md5 on part
    R.append(("part md5 mismatch", c.req("PUT", "mpu", "m4", query="partNumber=7&uploadId=" + uid, body=b"abc", headers={"Content-MD5": md5b64(b"x")}).summary()))
    # upload part copy
    c.req("PUT", "mpu", "src", body=bytes(range(256)) * 40)
    sb = c.bucket("mpu")
    for rg in ["bytes=0-99", "bytes=100-", "bytes=0-10239", "bytes=0-10240", "bytes=-10", "bytes=5000-6000", "bytes=10239-10239"]:
        R.append(("upc " + rg, c.req("PUT", "mpu", "m4", query="partNumber=8&uploadId=" + uid,
                                     headers={"x-amz-copy-source": "/%s/src" % sb, "x-amz-copy-source-range": rg}).summary()))
    R.append(("upc no range", c.req("PUT", "mpu", "m4", query="partNumber=9&uploadId=" + uid,
                                    headers={"x-amz-copy-source": "/%s/src" % sb}).summary()))
    R.append(("upc if-match bad", c.req("PUT", "mpu", "m4", query="partNumber=9&uploadId=" + uid,
                                        headers={"x-amz-copy-source": "/%s/src" % sb, "x-amz-copy-source-if-match": '"x"'}).summary()))
    R.append(("upc missing src", c.req("PUT", "mpu", "m4", query="partNumber=9&uploadId=" + uid,
                                       headers={"x-amz-copy-source": "/%s/nope" % sb}).summary()))
    R.append(("listparts after upc", c.req("GET", "mpu", "m4", query="uploadId=" + uid).summary()))
    return R


ODD_KEYS = ["a b", "a+b", "a%b", "a%2Fb", "ü/ñ", "日本語", "tab\tkey", "q?x", "hash#x", "amp&x=y", "semi;x",
            "dir/sub/f1", "dir/sub/f2", "dir/f3", "dir2/x", "tilde~", "back\\slash", "<lt>", "quote\"s"]


@case
def c06_list(c):
    R = []
    mkbucket(c, "list")
    for k in ODD_KEYS:
        r = c.req("PUT", "list", k, body=k.encode()[:10])
        if r.status != 200:
            R.append(("put " + k[:30], r.summary()))
    R.append(("put 1025 key", c.req("PUT", "list", "k" * 1025, body=b"x").summary()))
    mkbucket(c, "ctl")
    R.append(("put key ctrl char", c.req("PUT", "ctl", "ctl\x01x", body=b"x").summary()))
    R.append(("put key newline", c.req("PUT", "ctl", "nl\nx", body=b"x").summary()))
    R.append(("list ctl encoding-type=url", c.req("GET", "ctl", query="list-type=2&encoding-type=url").summary()))
    R.append(("list ctl v1 encoding-type=url", c.req("GET", "ctl", query="encoding-type=url").summary()))
    R.append(("list ctl versions encoding-type=url", c.req("GET", "ctl", query="versions&encoding-type=url").summary()))
    R.append(("list ctl raw xml", c.req("GET", "ctl", query="list-type=2").body[-400:].decode("utf-8", "replace")))
    R.append(("put 1024 key", c.req("PUT", "ctl", "k" * 1024, body=b"x").summary()))
    R.append(("get 1024 key", c.req("GET", "ctl", "k" * 1024).summary()))
    for k in ["a b", "a+b", "a%b", "ü/ñ", "q?x", "hash#x", "a%2Fb"]:
        R.append(("get " + k[:20], c.req("GET", "list", k).summary()))
    R.append(("get a+b via space-encoded", c.req("GET", raw_path="/%s/a%%2Bb" % c.bucket("list")).summary()))
    R.append(("get a b via +", c.req("GET", raw_path="/%s/a+b" % c.bucket("list")).summary()))
    for q in ["list-type=2", "list-type=2&delimiter=/", "list-type=2&prefix=dir/&delimiter=/",
              "list-type=2&start-after=dir", "list-type=2&max-keys=0", "list-type=2&max-keys=2",
              "list-type=2&encoding-type=url", "list-type=2&encoding-type=url&delimiter=/",
              "list-type=2&fetch-owner=true&max-keys=1", "list-type=2&prefix=nomatch",
              "list-type=2&delimiter=/&max-keys=3", "list-type=2&delimiter=sub", "list-type=2&encoding-type=bogus",
              "list-type=2&max-keys=-1", "list-type=2&max-keys=abc", "list-type=2&continuation-token=garbage",
              "list-type=2&prefix=dir/sub/&delimiter=/&start-after=dir/sub/f1",
              "", "delimiter=/", "marker=dir", "max-keys=2", "encoding-type=url", "prefix=dir/&delimiter=/&max-keys=1",
              "max-keys=0", "delimiter=/&marker=dir/", "list-type=3"]:
        R.append(("list " + q, c.req("GET", "list", query=q).summary()))
    # pagination walk v2
    tok, pages, keys = None, 0, []
    while pages < 20:
        q = "list-type=2&max-keys=3&delimiter=/"
        if tok:
            q += "&continuation-token=" + urllib.parse.quote(tok, safe="")
        r = c.req("GET", "list", query=q)
        e = ET.fromstring(r.body)
        keys += [x.text for x in e.findall("{*}Contents/{*}Key")] + [x.text for x in e.findall("{*}CommonPrefixes/{*}Prefix")]
        pages += 1
        t = e.find("{*}NextContinuationToken")
        if t is None:
            break
        tok = t.text
    R.append(("v2 walk", {"pages": pages, "keys": keys}))
    # v1 walk with delimiter
    marker, pages, keys = "", 0, []
    while pages < 20:
        r = c.req("GET", "list", query="max-keys=3&delimiter=/" + ("&marker=" + urllib.parse.quote(marker, safe="") if marker else ""))
        e = ET.fromstring(r.body)
        keys += [x.text for x in e.findall("{*}Contents/{*}Key")] + [x.text for x in e.findall("{*}CommonPrefixes/{*}Prefix")]
        pages += 1
        if e.find("{*}IsTruncated").text != "true":
            break
        nm = e.find("{*}NextMarker")
        R.append(("v1 nextmarker page %d" % pages, nm.text if nm is not None else None))
        marker = nm.text if nm is not None else keys[-1]
    R.append(("v1 walk", {"pages": pages, "keys": keys}))
    R.append(("list buckets", "ok" if c.req("GET").status == 200 else "fail"))
    return R


@case
def c07_versioning(c):
    R = []
    mkbucket(c, "ver")
    R.append(("get versioning new", c.req("GET", "ver", query="versioning").summary()))
    R.append(("put versioning bogus", setver(c, "ver", "Bogus").summary()))
    R.append(("put versioning suspended first", setver(c, "ver", "Suspended").summary()))
    R.append(("get versioning susp", c.req("GET", "ver", query="versioning").summary()))
    c.req("PUT", "ver", "pre", body=b"pre-versioning")
    R.append(("enable", setver(c, "ver", "Enabled").summary()))
    R.append(("get versioning enabled", c.req("GET", "ver", query="versioning").summary()))
    R.append(("put v1", c.req("PUT", "ver", "k", body=b"one").summary()))
    R.append(("put v2", c.req("PUT", "ver", "k", body=b"two").summary()))
    R.append(("head pre (null version)", c.req("HEAD", "ver", "pre").summary()))
    R.append(("get pre versionId=null", c.req("GET", "ver", "pre", query="versionId=null").summary()))
    R.append(("delete k", c.req("DELETE", "ver", "k").summary()))
    R.append(("get k after delete", c.req("GET", "ver", "k").summary()))
    R.append(("head k after delete", c.req("HEAD", "ver", "k").summary()))
    vl = c.req("GET", "ver", query="versions")
    R.append(("list versions", vl.summary()))
    e = ET.fromstring(vl.body)
    dms = [x.find("{*}VersionId").text for x in e.findall("{*}DeleteMarker")]
    vers = [x.find("{*}VersionId").text for x in e.findall("{*}Version") if x.find("{*}Key").text == "k"]
    if dms:
        R.append(("get delete marker by id", c.req("GET", "ver", "k", query="versionId=" + dms[0]).summary()))
        R.append(("head delete marker by id", c.req("HEAD", "ver", "k", query="versionId=" + dms[0]).summary()))
    if vers:
        R.append(("get old version", c.req("GET", "ver", "k", query="versionId=" + vers[-1]).summary()))
        R.append(("get version nonexistent", c.req("GET", "ver", "k", query="versionId=" + vers[-1][:-2] + "zz").summary()))
    R.append(("get bogus version id", c.req("GET", "ver", "k", query="versionId=bogus").summary()))
    R.append(("list versions max1", c.req("GET", "ver", query="versions&max-keys=1").summary()))
    R.append(("list versions max2", c.req("GET", "ver", query="versions&max-keys=2").summary()))
    R.append(("list versions prefix k", c.req("GET", "ver", query="versions&prefix=k").summary()))
    R.append(("list versions key-marker k", c.req("GET", "ver", query="versions&key-marker=k").summary()))
    if vers:
        R.append(("list versions key+vid marker", c.req("GET", "ver", query="versions&key-marker=k&version-id-marker=" + vers[0]).summary()))
    R.append(("list versions vid marker w/o key", c.req("GET", "ver", query="versions&version-id-marker=abc").summary()))
    R.append(("list v2 after delete", c.req("GET", "ver", query="list-type=2").summary()))
    if dms:
        R.append(("delete the delete marker", c.req("DELETE", "ver", "k", query="versionId=" + dms[0]).summary()))
        R.append(("get k restored", c.req("GET", "ver", "k").summary()))
    R.append(("suspend", setver(c, "ver", "Suspended").summary()))
    R.append(("put suspended", c.req("PUT", "ver", "k", body=b"three").summary()))
    R.append(("put suspended again", c.req("PUT", "ver", "k", body=b"four").summary()))
    R.append(("delete suspended", c.req("DELETE", "ver", "k").summary()))
    R.append(("list versions after suspend", c.req("GET", "ver", query="versions&prefix=k").summary()))
    R.append(("delete specific version", c.req("DELETE", "ver", "k", query="versionId=" + (vers[0] if vers else "x")).summary()))
    R.append(("delete version null", c.req("DELETE", "ver", "k", query="versionId=null").summary()))
    R.append(("delete missing version", c.req("DELETE", "ver", "k", query="versionId=" + (vers[0] if vers else "x")).summary()))
    R.append(("list versions end", c.req("GET", "ver", query="versions&prefix=k").summary()))
    R.append(("versions on unversioned bucket", (mkbucket(c, "unv"), c.req("PUT", "unv", "x", body=b"1"), c.req("GET", "unv", query="versions").summary())[2]))
    R.append(("get versionId=null unversioned", c.req("GET", "unv", "x", query="versionId=null").summary()))
    R.append(("delete versionId=null unversioned", c.req("DELETE", "unv", "x", query="versionId=null").summary()))
    R.append(("list versions encoding url", (c.req("PUT", "ver", "a b+c", body=b"1"), c.req("GET", "ver", query="versions&encoding-type=url&prefix=a").summary())[1]))
    return R


@case
def c08_delete_objects(c):
    R = []
    mkbucket(c, "dobj")
    for k in ["a", "b", "c"]:
        c.req("PUT", "dobj", k, body=b"x")

    def dx(keys, quiet=False):
        s = "<Delete>" + ("<Quiet>true</Quiet>" if quiet else "")
        for k in keys:
            if isinstance(k, tuple):
                s += "<Object><Key>%s</Key><VersionId>%s</VersionId></Object>" % k
            else:
                s += "<Object><Key>%s</Key></Object>" % k
        return (s + "</Delete>").encode()
    b = dx(["a", "missing"])
    R.append(("delete a+missing", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    b = dx(["b", "missing2"], True)
    R.append(("quiet", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    b = dx(["c"])
    R.append(("no md5", c.req("POST", "dobj", query="delete", body=b).summary()))
    R.append(("bad md5", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b"x")}).summary()))
    b = b"<Delete></Delete>"
    R.append(("empty", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    b = dx(["k%d" % i for i in range(1001)])
    R.append(("1001 keys", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    b = b"<Delete><Object><Key>x</Key></Object>"
    R.append(("malformed", c.req("POST", "dobj", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    b = dx(["x"])
    R.append(("missing bucket", c.req("POST", "nobucket-x", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    mkbucket(c, "dobjv")
    setver(c, "dobjv", "Enabled")
    v = c.req("PUT", "dobjv", "a", body=b"x").headers.get("x-amz-version-id")
    c.req("PUT", "dobjv", "a", body=b"y")
    b = dx(["a", ("a", v), ("a", "null"), ("b", "bogusvid"), "nope"])
    R.append(("versioned mix", c.req("POST", "dobjv", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    R.append(("versions after", c.req("GET", "dobjv", query="versions").summary()))
    b = dx(["a"], True)
    R.append(("versioned quiet", c.req("POST", "dobjv", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    return R


def tagxml(pairs):
    return ("<Tagging><TagSet>" + "".join("<Tag><Key>%s</Key><Value>%s</Value></Tag>" % p for p in pairs) + "</TagSet></Tagging>").encode()


@case
def c09_tagging(c):
    R = []
    mkbucket(c, "tag")
    c.req("PUT", "tag", "o", body=b"x", headers={"x-amz-tagging": "a=1&b=2"})
    R.append(("get tags", c.req("GET", "tag", "o", query="tagging").summary()))
    R.append(("head tag count", c.req("HEAD", "tag", "o").summary()))
    R.append(("get tag count", c.req("GET", "tag", "o").summary()))
    b = tagxml([("k1", "v1"), ("k2", "")])
    R.append(("put tags", c.req("PUT", "tag", "o", query="tagging", body=b).summary()))
    R.append(("get tags 2", c.req("GET", "tag", "o", query="tagging").summary()))
    R.append(("put 11 tags", c.req("PUT", "tag", "o", query="tagging", body=tagxml([("k%d" % i, "v") for i in range(11)])).summary()))
    R.append(("put dup tag keys", c.req("PUT", "tag", "o", query="tagging", body=tagxml([("k", "1"), ("k", "2")])).summary()))
    R.append(("put long tag key", c.req("PUT", "tag", "o", query="tagging", body=tagxml([("k" * 129, "v")])).summary()))
    R.append(("put long tag value", c.req("PUT", "tag", "o", query="tagging", body=tagxml([("k", "v" * 257)])).summary()))
    R.append(("put aws: tag", c.req("PUT", "tag", "o", query="tagging", body=tagxml([("aws:x", "v")])).summary()))
    R.append(("put tags malformed", c.req("PUT", "tag", "o", query="tagging", body=b"<Tagging>").summary()))
    R.append(("put tags missing key", c.req("PUT", "tag", "nokey", query="tagging", body=tagxml([("a", "b")])).summary()))
    R.append(("get tags missing key", c.req("GET", "tag", "nokey", query="tagging").summary()))
    R.append(("put obj header tag 11", c.req("PUT", "tag", "o2", body=b"x", headers={"x-amz-tagging": "&".join("k%d=v" % i for i in range(11))}).summary()))
    R.append(("put obj header tag bad", c.req("PUT", "tag", "o2", body=b"x", headers={"x-amz-tagging": "a=1&a=2"}).summary()))
    R.append(("put obj header tag encoded", c.req("PUT", "tag", "o3", body=b"x", headers={"x-amz-tagging": "a%20b=c%2Bd"}).summary()))
    R.append(("get tags encoded", c.req("GET", "tag", "o3", query="tagging").summary()))
    R.append(("delete tags", c.req("DELETE", "tag", "o", query="tagging").summary()))
    R.append(("get tags after delete", c.req("GET", "tag", "o", query="tagging").summary()))
    R.append(("head after delete tags", c.req("HEAD", "tag", "o").summary()))
    # bucket tagging
    R.append(("get bucket tags none", c.req("GET", "tag", query="tagging").summary()))
    R.append(("put bucket tags", c.req("PUT", "tag", query="tagging", body=tagxml([("env", "prod")])).summary()))
    R.append(("get bucket tags", c.req("GET", "tag", query="tagging").summary()))
    R.append(("put bucket tags 51", c.req("PUT", "tag", query="tagging", body=tagxml([("k%d" % i, "v") for i in range(51)])).summary()))
    R.append(("delete bucket tags", c.req("DELETE", "tag", query="tagging").summary()))
    R.append(("get bucket tags after delete", c.req("GET", "tag", query="tagging").summary()))
    R.append(("put bucket tags empty set", c.req("PUT", "tag", query="tagging", body=tagxml([])).summary()))
    R.append(("get bucket tags after empty", c.req("GET", "tag", query="tagging").summary()))
    # versioned tagging
    mkbucket(c, "tagv"); setver(c, "tagv", "Enabled")
    v1 = c.req("PUT", "tagv", "o", body=b"1", headers={"x-amz-tagging": "v=1"}).headers.get("x-amz-version-id")
    c.req("PUT", "tagv", "o", body=b"2", headers={"x-amz-tagging": "v=2"})
    R.append(("get tags old version", c.req("GET", "tagv", "o", query="tagging&versionId=" + v1).summary()))
    R.append(("put tags old version", c.req("PUT", "tagv", "o", query="tagging&versionId=" + v1, body=tagxml([("x", "y")])).summary()))
    R.append(("get tags latest", c.req("GET", "tagv", "o", query="tagging").summary()))
    c.req("DELETE", "tagv", "o")
    R.append(("get tags on delete marker", c.req("GET", "tagv", "o", query="tagging").summary()))
    return R


@case
def c10_objectlock(c):
    R = []
    mkbucket(c, "lock", lock=True)
    mkbucket(c, "nolock")
    R.append(("get lock config", c.req("GET", "lock", query="object-lock").summary()))
    R.append(("get lock config nolock", c.req("GET", "nolock", query="object-lock").summary()))
    R.append(("versioning of lock bucket", c.req("GET", "lock", query="versioning").summary()))
    R.append(("suspend lock bucket", setver(c, "lock", "Suspended").summary()))
    cfg = b'<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>'
    R.append(("put lock config", c.req("PUT", "lock", query="object-lock", body=cfg, headers={"Content-MD5": md5b64(cfg)}).summary()))
    R.append(("get lock config 2", c.req("GET", "lock", query="object-lock").summary()))
    bad = b'<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule></ObjectLockConfiguration>'
    R.append(("put lock config days+years", c.req("PUT", "lock", query="object-lock", body=bad, headers={"Content-MD5": md5b64(bad)}).summary()))
    R.append(("put lock config nolock", c.req("PUT", "nolock", query="object-lock", body=cfg, headers={"Content-MD5": md5b64(cfg)}).summary()))
    r = c.req("PUT", "lock", "o", body=b"x")
    R.append(("put in lock bucket (default retention)", r.summary()))
    vid = r.headers.get("x-amz-version-id")
    R.append(("head default retention", c.req("HEAD", "lock", "o").summary()))
    R.append(("get retention", c.req("GET", "lock", "o", query="retention").summary()))
    R.append(("get legal hold none", c.req("GET", "lock", "o", query="legal-hold").summary()))
    R.append(("delete version locked", c.req("DELETE", "lock", "o", query="versionId=%s" % vid).summary()))
    R.append(("delete version locked bypass", c.req("DELETE", "lock", "o", query="versionId=%s" % vid, headers={"x-amz-bypass-governance-retention": "true"}).summary()))
    future = (datetime.datetime.utcnow() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    past = (datetime.datetime.utcnow() - datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    r = c.req("PUT", "lock", "c", body=b"x", headers={"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": future})
    R.append(("put compliance", r.summary()))
    cv = r.headers.get("x-amz-version-id")
    R.append(("put mode without date", c.req("PUT", "lock", "c2", body=b"x", headers={"x-amz-object-lock-mode": "GOVERNANCE"}).summary()))
    R.append(("put date in past", c.req("PUT", "lock", "c3", body=b"x", headers={"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": past}).summary()))
    R.append(("put bad mode", c.req("PUT", "lock", "c4", body=b"x", headers={"x-amz-object-lock-mode": "BOGUS", "x-amz-object-lock-retain-until-date": future}).summary()))
    R.append(("put lock headers nolock bucket", c.req("PUT", "nolock", "c5", body=b"x", headers={"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": future}).summary()))
    R.append(("delete compliance bypass", c.req("DELETE", "lock", "c", query="versionId=%s" % cv, headers={"x-amz-bypass-governance-retention": "true"}).summary()))
    ret = ('<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>%s</RetainUntilDate></Retention>' % future).encode()
    R.append(("shorten compliance to governance", c.req("PUT", "lock", "c", query="retention&versionId=" + cv, body=ret, headers={"Content-MD5": md5b64(ret)}).summary()))
    R.append(("put retention nolock bucket", (c.req("PUT", "nolock", "n", body=b"x"), c.req("PUT", "nolock", "n", query="retention", body=ret, headers={"Content-MD5": md5b64(ret)}).summary())[1]))
    R.append(("get retention nolock bucket", c.req("GET", "nolock", "n", query="retention").summary()))
    lh = b'<LegalHold><Status>ON</Status></LegalHold>'
    r = c.req("PUT", "lock", "h", body=b"x")
    hv = r.headers.get("x-amz-version-id")
    R.append(("put legal hold", c.req("PUT", "lock", "h", query="legal-hold", body=lh, headers={"Content-MD5": md5b64(lh)}).summary()))
    R.append(("get legal hold", c.req("GET", "lock", "h", query="legal-hold").summary()))
    R.append(("head legal hold", c.req("HEAD", "lock", "h").summary()))
    R.append(("delete held bypass", c.req("DELETE", "lock", "h", query="versionId=%s" % hv, headers={"x-amz-bypass-governance-retention": "true"}).summary()))
    lhb = b'<LegalHold><Status>MAYBE</Status></LegalHold>'
    R.append(("put legal hold bad", c.req("PUT", "lock", "h", query="legal-hold", body=lhb, headers={"Content-MD5": md5b64(lhb)}).summary()))
    R.append(("put legal hold nolock", c.req("PUT", "nolock", "n", query="legal-hold", body=lh, headers={"Content-MD5": md5b64(lh)}).summary()))
    R.append(("get legal hold nolock", c.req("GET", "nolock", "n", query="legal-hold").summary()))
    R.append(("put retention no md5", c.req("PUT", "lock", "h", query="retention", body=ret).summary()))
    R.append(("delete without version on lock bucket", c.req("DELETE", "lock", "h").summary()))
    R.append(("delete lock bucket nonempty", c.req("DELETE", "lock").summary()))
    return R


@case
def c11_attributes_checksums(c):
    R = []
    mkbucket(c, "ck")
    data = b"checksum me please"
    for alg, f in [("crc32", crc32b64), ("crc32c", crc32cb64), ("sha256", sha256b64)]:
        R.append(("put " + alg, c.req("PUT", "ck", alg, body=data, headers={"x-amz-checksum-" + alg: f(data)}).summary()))
        R.append(("put bad " + alg, c.req("PUT", "ck", alg + "bad", body=data, headers={"x-amz-checksum-" + alg: f(b"other")}).summary()))
        R.append(("get mode " + alg, c.req("GET", "ck", alg, headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
        R.append(("head mode " + alg, c.req("HEAD", "ck", alg, headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
        R.append(("get no mode " + alg, c.req("GET", "ck", alg).summary()))
        R.append(("get range mode " + alg, c.req("GET", "ck", alg, headers={"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-3"}).summary()))
    R.append(("put sdk alg header only", c.req("PUT", "ck", "algonly", body=data, headers={"x-amz-sdk-checksum-algorithm": "CRC32"}).summary()))
    R.append(("put two checksums", c.req("PUT", "ck", "two", body=data, headers={"x-amz-checksum-crc32": crc32b64(data), "x-amz-checksum-sha256": sha256b64(data)}).summary()))
    R.append(("put bad b64 checksum", c.req("PUT", "ck", "bad64", body=data, headers={"x-amz-checksum-crc32": "!!!"}).summary()))
    R.append(("put plain", c.req("PUT", "ck", "plain", body=data).summary()))
    R.append(("get mode plain", c.req("GET", "ck", "plain", headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
    for attrs in ["ETag,Checksum,ObjectParts,StorageClass,ObjectSize", "ETag", "ObjectSize", "Bogus", ""]:
        R.append(("attrs crc32 " + attrs, c.req("GET", "ck", "crc32", query="attributes", headers={"x-amz-object-attributes": attrs} if attrs else {}).summary()))
    R.append(("attrs missing key", c.req("GET", "ck", "nokey", query="attributes", headers={"x-amz-object-attributes": "ETag"}).summary()))
    # multipart with checksums
    big = hashlib.sha256(b"x").digest() * (5 * 1024 * 1024 // 32)
    u = c.req("POST", "ck", "mp", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32"})
    R.append(("create mp crc32", u.summary()))
    uid = uid_of(u)
    p1 = c.req("PUT", "ck", "mp", query="partNumber=1&uploadId=" + uid, body=big, headers={"x-amz-checksum-crc32": crc32b64(big)})
    p2 = c.req("PUT", "ck", "mp", query="partNumber=2&uploadId=" + uid, body=b"end", headers={"x-amz-checksum-crc32": crc32b64(b"end")})
    R.append(("part1 crc", p1.summary()))
    R.append(("part bad crc", c.req("PUT", "ck", "mp", query="partNumber=3&uploadId=" + uid, body=b"end", headers={"x-amz-checksum-crc32": crc32b64(b"xx")}).summary()))
    R.append(("part no crc on crc upload", c.req("PUT", "ck", "mp", query="partNumber=4&uploadId=" + uid, body=b"end").summary()))
    R.append(("part sha256 on crc upload", c.req("PUT", "ck", "mp", query="partNumber=5&uploadId=" + uid, body=b"end", headers={"x-amz-checksum-sha256": sha256b64(b"end")}).summary()))
    R.append(("listparts crc", c.req("GET", "ck", "mp", query="uploadId=" + uid).summary()))
    body = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part></CompleteMultipartUpload>") % (
        p1.headers["etag"], crc32b64(big), p2.headers["etag"], crc32b64(b"end"))
    R.append(("complete crc", c.req("POST", "ck", "mp", query="uploadId=" + uid, body=body).summary()))
    R.append(("head mp mode", c.req("HEAD", "ck", "mp", headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
    R.append(("head mp part1 mode", c.req("HEAD", "ck", "mp", query="partNumber=1", headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
    R.append(("attrs mp", c.req("GET", "ck", "mp", query="attributes", headers={"x-amz-object-attributes": "ETag,Checksum,ObjectParts,ObjectSize"}).summary()))
    R.append(("attrs mp parts max1", c.req("GET", "ck", "mp", query="attributes", headers={"x-amz-object-attributes": "ObjectParts", "x-amz-max-parts": "1"}).summary()))
    # complete with wrong part checksum
    u = c.req("POST", "ck", "mp2", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32"}); uid = uid_of(u)
    p1 = c.req("PUT", "ck", "mp2", query="partNumber=1&uploadId=" + uid, body=b"abc", headers={"x-amz-checksum-crc32": crc32b64(b"abc")})
    body = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part></CompleteMultipartUpload>" % (p1.headers["etag"], crc32b64(b"zzz"))
    R.append(("complete wrong part crc", c.req("POST", "ck", "mp2", query="uploadId=" + uid, body=body).summary()))
    body = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>" % (p1.headers["etag"])
    R.append(("complete missing part crc", c.req("POST", "ck", "mp2", query="uploadId=" + uid, body=body).summary()))
    # full object checksum header on complete
    u = c.req("POST", "ck", "mp3", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "FULL_OBJECT"})
    R.append(("create full object crc32", u.summary()))
    if u.status == 200:
        uid = uid_of(u)
        p1 = c.req("PUT", "ck", "mp3", query="partNumber=1&uploadId=" + uid, body=b"abc", headers={"x-amz-checksum-crc32": crc32b64(b"abc")})
        body = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part></CompleteMultipartUpload>" % (p1.headers["etag"], crc32b64(b"abc"))
        R.append(("complete full object crc32", c.req("POST", "ck", "mp3", query="uploadId=" + uid, body=body, headers={"x-amz-checksum-crc32": crc32b64(b"abc")}).summary()))
        R.append(("head full object", c.req("HEAD", "ck", "mp3", headers={"x-amz-checksum-mode": "ENABLED"}).summary()))
    return R


@case
def c12_presign_policy_acl_cors(c):
    R = []
    mkbucket(c, "pre")
    c.req("PUT", "pre", "o", body=b"presigned")
    R.append(("presign get", c.presign("GET", "pre", "o", 60).summary()))
    R.append(("presign expired", c.presign("GET", "pre", "o", 1, when=datetime.datetime.utcnow() - datetime.timedelta(seconds=60)).summary()))
    R.append(("presign future date", c.presign("GET", "pre", "o", 60, when=datetime.datetime.utcnow() + datetime.timedelta(minutes=30)).summary()))
    R.append(("presign expires > 7d", c.presign("GET", "pre", "o", 604801).summary()))
    R.append(("presign head", c.presign("HEAD", "pre", "o", 60).summary()))
    R.append(("presign with response override", c.presign("GET", "pre", "o", 60, query="response-content-type=text%2Fplain").summary()))
    R.append(("anon get", c.req("GET", "pre", "o", sign=False).summary()))
    R.append(("anon list", c.req("GET", "pre", sign=False).summary()))
    R.append(("anon list buckets", c.req("GET", sign=False).summary()))
    # ACL
    R.append(("get bucket acl", c.req("GET", "pre", query="acl").summary()))
    R.append(("get object acl", c.req("GET", "pre", "o", query="acl").summary()))
    R.append(("get object acl missing", c.req("GET", "pre", "nokey", query="acl").summary()))
    R.append(("put bucket acl private", c.req("PUT", "pre", query="acl", headers={"x-amz-acl": "private"}).summary()))
    R.append(("put bucket acl public-read", c.req("PUT", "pre", query="acl", headers={"x-amz-acl": "public-read"}).summary()))
    R.append(("put object acl private", c.req("PUT", "pre", "o", query="acl", headers={"x-amz-acl": "private"}).summary()))
    R.append(("put object with acl private", c.req("PUT", "pre", "o2", body=b"x", headers={"x-amz-acl": "private"}).summary()))
    R.append(("put object with acl public-read", c.req("PUT", "pre", "o3", body=b"x", headers={"x-amz-acl": "public-read"}).summary()))
    R.append(("put object with grant", c.req("PUT", "pre", "o4", body=b"x", headers={"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}).summary()))
    R.append(("create bucket acl private", c.req("PUT", "pre2", headers={"x-amz-acl": "private"}).summary()))
    R.append(("get ownership controls", c.req("GET", "pre", query="ownershipControls").summary()))
    R.append(("get public access block", c.req("GET", "pre", query="publicAccessBlock").summary()))
    # policy
    R.append(("get policy none", c.req("GET", "pre", query="policy").summary()))
    R.append(("get policy status none", c.req("GET", "pre", query="policyStatus").summary()))
    pol = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                                                             "Resource": ["arn:aws:s3:::%s/*" % c.bucket("pre")]}]})
    R.append(("put policy public read", c.req("PUT", "pre", query="policy", body=pol).summary()))
    R.append(("get policy", c.req("GET", "pre", query="policy").summary(body=False)))
    R.append(("anon get after policy", c.req("GET", "pre", "o", sign=False).summary()))
    R.append(("anon head after policy", c.req("HEAD", "pre", "o", sign=False).summary()))
    R.append(("anon get missing after policy", c.req("GET", "pre", "nokey", sign=False).summary()))
    R.append(("anon list after policy", c.req("GET", "pre", sign=False).summary()))
    R.append(("anon put after policy", c.req("PUT", "pre", "anon", body=b"x", sign=False).summary()))
    R.append(("put policy bad json", c.req("PUT", "pre", query="policy", body="{not json").summary()))
    pol2 = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                                                              "Resource": ["arn:aws:s3:::otherbucket/*"]}]})
    R.append(("put policy wrong resource", c.req("PUT", "pre", query="policy", body=pol2).summary()))
    R.append(("delete policy", c.req("DELETE", "pre", query="policy").summary()))
    R.append(("delete policy again", c.req("DELETE", "pre", query="policy").summary()))
    R.append(("anon get after delete policy", c.req("GET", "pre", "o", sign=False).summary()))
    # CORS
    R.append(("get cors none", c.req("GET", "pre", query="cors").summary()))
    R.append(("preflight no cors", c.req("OPTIONS", "pre", "o", sign=False, headers={"Origin": "http://example.com", "Access-Control-Request-Method": "GET"}).summary()))
    cors = b'<CORSConfiguration><CORSRule><AllowedOrigin>http://example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>300</MaxAgeSeconds></CORSRule></CORSConfiguration>'
    R.append(("put cors", c.req("PUT", "pre", query="cors", body=cors, headers={"Content-MD5": md5b64(cors)}).summary()))
    R.append(("get cors", c.req("GET", "pre", query="cors").summary()))
    R.append(("preflight ok", c.req("OPTIONS", "pre", "o", sign=False, headers={"Origin": "http://example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type,x-amz-meta-a"}).summary()))
    R.append(("preflight bad origin", c.req("OPTIONS", "pre", "o", sign=False, headers={"Origin": "http://evil.com", "Access-Control-Request-Method": "GET"}).summary()))
    R.append(("preflight bad method", c.req("OPTIONS", "pre", "o", sign=False, headers={"Origin": "http://example.com", "Access-Control-Request-Method": "DELETE"}).summary()))
    R.append(("preflight no method", c.req("OPTIONS", "pre", "o", sign=False, headers={"Origin": "http://example.com"}).summary()))
    R.append(("get with origin", c.req("GET", "pre", "o", headers={"Origin": "http://example.com"}).summary()))
    R.append(("get with bad origin", c.req("GET", "pre", "o", headers={"Origin": "http://evil.com"}).summary()))
    R.append(("preflight missing bucket", c.req("OPTIONS", "nobucket-q", "o", sign=False, headers={"Origin": "http://example.com", "Access-Control-Request-Method": "GET"}).summary()))
    bad = b'<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>'
    R.append(("put cors bad method", c.req("PUT", "pre", query="cors", body=bad, headers={"Content-MD5": md5b64(bad)}).summary()))
    R.append(("delete cors", c.req("DELETE", "pre", query="cors").summary()))
    R.append(("get cors after delete", c.req("GET", "pre", query="cors").summary()))
    # misc bucket subresources
    for sub in ["lifecycle", "encryption", "website", "logging", "notification", "replication", "accelerate", "requestPayment", "analytics", "metrics", "inventory", "intelligent-tiering"]:
        R.append(("get " + sub, c.req("GET", "pre", query=sub).summary()))
    R.append(("storage class bogus put", c.req("PUT", "pre", "sc", body=b"x", headers={"x-amz-storage-class": "BOGUS"}).summary()))
    R.append(("storage class glacier put", c.req("PUT", "pre", "sc2", body=b"x", headers={"x-amz-storage-class": "GLACIER"}).summary()))
    R.append(("storage class RRS put", c.req("PUT", "pre", "sc3", body=b"x", headers={"x-amz-storage-class": "REDUCED_REDUNDANCY"}).summary()))
    R.append(("head sc3", c.req("HEAD", "pre", "sc3").summary()))
    R.append(("sse-s3 put", c.req("PUT", "pre", "sse", body=b"x", headers={"x-amz-server-side-encryption": "AES256"}).summary()))
    R.append(("sse bogus put", c.req("PUT", "pre", "sse2", body=b"x", headers={"x-amz-server-side-encryption": "BOGUS"}).summary()))
    R.append(("website redirect put", c.req("PUT", "pre", "wr", body=b"x", headers={"x-amz-website-redirect-location": "/other"}).summary()))
    R.append(("head wr", c.req("HEAD", "pre", "wr").summary()))
    R.append(("put metadata too big", c.req("PUT", "pre", "meta", body=b"x", headers={"x-amz-meta-a": "v" * 2100}).summary()))
    R.append(("put meta unicode", c.req("PUT", "pre", "meta2", body=b"x", headers={"x-amz-meta-a": "=?UTF-8?B?w6k=?="}).summary()))
    R.append(("head meta2", c.req("HEAD", "pre", "meta2").summary()))
    R.append(("put expect 100", c.req("PUT", "pre", "exp", body=b"x", headers={"Expect": "100-continue"}).summary()))
    R.append(("put no content-length", c.req("PUT", "pre", "ncl", body=b"", headers={"Content-Length": "0"}).summary()))
    R.append(("put content-length mismatch", c.req("PUT", "pre", "ncl2", body=b"", headers={"Content-Length": "0", "x-amz-decoded-content-length": "5"}).summary()))
    R.append(("post object without form", c.req("POST", "pre", "o", body=b"x").summary()))
    R.append(("unknown subresource", c.req("GET", "pre", query="bogussub").summary()))
    R.append(("put trailing slash key", c.req("PUT", "pre", "dir/", body=b"").summary()))
    R.append(("get trailing slash key", c.req("GET", "pre", "dir/").summary()))
    R.append(("put key with //", c.req("PUT", "pre", "a//b", body=b"x").summary()))
    R.append(("get key with //", c.req("GET", "pre", "a//b").summary()))
    R.append(("put key ./", c.req("PUT", "pre", "./x", body=b"x").summary()))
    R.append(("put key ../", c.req("PUT", "pre", "../x", body=b"x").summary()))
    R.append(("put key .", c.req("PUT", "pre", ".", body=b"x").summary()))
    R.append(("list after odd", c.req("GET", "pre", query="list-type=2&prefix=").summary()))
    return R


@case
def c13_misc(c):
    R = []
    mkbucket(c, "misc")
    mkbucket(c, "miscv"); setver(c, "miscv", "Enabled")
    c.req("PUT", "miscv", "k", body=b"1")
    c.req("DELETE", "miscv", "k")
    R.append(("put inm * over delete marker", c.req("PUT", "miscv", "k", body=b"2", headers={"If-None-Match": "*"}).summary()))
    c.req("DELETE", "miscv", "k")
    R.append(("put if-match over delete marker", c.req("PUT", "miscv", "k", body=b"3", headers={"If-Match": '"c81e728d9d4c2f636f067f89cc14862c"'}).summary()))
    R.append(("get if-match on delete marker", c.req("GET", "miscv", "k", headers={"If-Match": "*"}).summary()))
    c.req("PUT", "misc", "o", body=b"0123456789")
    R.append(("get partNumber + range", c.req("GET", "misc", "o", query="partNumber=1", headers={"Range": "bytes=0-1"}).summary()))
    R.append(("get partNumber=0", c.req("GET", "misc", "o", query="partNumber=0").summary()))
    R.append(("get partNumber=abc", c.req("GET", "misc", "o", query="partNumber=abc").summary()))
    R.append(("get retention none", c.req("GET", "misc", "o", query="retention").summary()))
    mkbucket(c, "misclock", lock=True)
    c.req("PUT", "misclock", "o", body=b"x")
    R.append(("get retention none lock bucket", c.req("GET", "misclock", "o", query="retention").summary()))
    R.append(("get legal hold none lock bucket", c.req("GET", "misclock", "o", query="legal-hold").summary()))
    R.append(("list buckets max-buckets=1", c.req("GET", query="max-buckets=1").summary(body=False)))
    r = c.req("GET", query="max-buckets=1")
    R.append(("list buckets max-buckets=1 has token", b"ContinuationToken" in r.body))
    R.append(("list buckets prefix", c.req("GET", query="prefix=" + c.bucket("misc")).summary()))
    # multipart object size check
    u = c.req("POST", "misc", "mp", query="uploads"); uid = uid_of(u)
    e1 = c.req("PUT", "misc", "mp", query="partNumber=1&uploadId=" + uid, body=b"abc").headers["etag"]
    R.append(("complete wrong mp-object-size", c.req("POST", "misc", "mp", query="uploadId=" + uid, body=complete_xml([(1, e1)]), headers={"x-amz-mp-object-size": "999"}).summary()))
    # copy: metadata directive REPLACE without content-type
    c.req("PUT", "misc", "ct", body=b"x", headers={"Content-Type": "text/special", "Cache-Control": "max-age=1"})
    R.append(("copy replace no ct", c.req("PUT", "misc", "ct2", headers={"x-amz-copy-source": "/%s/ct" % c.bucket("misc"), "x-amz-metadata-directive": "REPLACE"}).summary()))
    R.append(("head ct2", c.req("HEAD", "misc", "ct2").summary()))
    R.append(("copy copy keeps cache-control", (c.req("PUT", "misc", "ct3", headers={"x-amz-copy-source": "/%s/ct" % c.bucket("misc")}), c.req("HEAD", "misc", "ct3").summary())[1]))
    R.append(("copy COPY with new content-type ignored", (c.req("PUT", "misc", "ct4", headers={"x-amz-copy-source": "/%s/ct" % c.bucket("misc"), "Content-Type": "text/ignored"}), c.req("HEAD", "misc", "ct4").summary())[1]))
    # metadata case
    R.append(("put meta uppercase", (c.req("PUT", "misc", "mc", body=b"x", headers={"X-Amz-Meta-MiXeD": "Val"}), c.req("HEAD", "misc", "mc").summary(extra_headers=("x-amz-meta-mixed",)))[1]))
    # list with v2 max-keys > 1000
    R.append(("list v2 max-keys 5000", c.req("GET", "misc", query="list-type=2&max-keys=5000").summary()))
    # delimiter multi-char and prefix equal to key
    R.append(("list prefix = key", c.req("GET", "misc", query="list-type=2&prefix=o&delimiter=o").summary()))
    # HEAD on bucket list with query
    R.append(("head object with versionId on unversioned", c.req("HEAD", "misc", "o", query="versionId=abc").summary()))
    # x-amz-expected-bucket-owner wrong
    R.append(("expected owner wrong", c.req("GET", "misc", "o", headers={"x-amz-expected-bucket-owner": "111111111111"}).summary()))
    # put object with checksum algorithm header + trailer-less
    R.append(("put sdk alg crc32 w/o value", c.req("PUT", "misc", "alg", body=b"abc", headers={"x-amz-sdk-checksum-algorithm": "CRC32"}).summary()))
    R.append(("put content-type empty", (c.req("PUT", "misc", "cte", body=b"x", headers={"Content-Type": ""}), c.req("HEAD", "misc", "cte").summary())[1]))
    # GET object with If-Match on multipart etag
    return R


@case
def c14_upc_ranges_and_checksum_parts(c):
    R = []
    mkbucket(c, "upc")
    c.req("PUT", "upc", "src", body=b"01234")
    u = c.req("POST", "upc", "dst", query="uploads"); uid = uid_of(u)
    sb = c.bucket("upc")
    for rg in ["0-2", "bytes=0", "bytes=hello-world", "bytes=0-bar", "bytes=hello-", "bytes=0-2,3-5", "bytes=0-21", "bytes=-2", "bytes=2-", "bytes=3-1", "bytes=5-5", "bytes=0-4"]:
        R.append(("upc " + rg, c.req("PUT", "upc", "dst", query="partNumber=1&uploadId=" + uid,
                                     headers={"x-amz-copy-source": "/%s/src" % sb, "x-amz-copy-source-range": rg}).summary()))
    # checksum upload with non-consecutive parts
    u = c.req("POST", "upc", "ck", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32"}); uid = uid_of(u)
    big = hashlib.sha256(b"y").digest() * (5 * 1024 * 1024 // 32)
    p1 = c.req("PUT", "upc", "ck", query="partNumber=1&uploadId=" + uid, body=big, headers={"x-amz-checksum-crc32": crc32b64(big)})
    p3 = c.req("PUT", "upc", "ck", query="partNumber=3&uploadId=" + uid, body=b"end", headers={"x-amz-checksum-crc32": crc32b64(b"end")})
    body = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part>"
            "<Part><PartNumber>3</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part></CompleteMultipartUpload>") % (
        p1.headers["etag"], crc32b64(big), p3.headers["etag"], crc32b64(b"end"))
    R.append(("complete non-consecutive crc parts", c.req("POST", "upc", "ck", query="uploadId=" + uid, body=body).summary()))
    # sha256 part on crc32 upload, then complete listing it
    u = c.req("POST", "upc", "ck2", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32"}); uid = uid_of(u)
    p1 = c.req("PUT", "upc", "ck2", query="partNumber=1&uploadId=" + uid, body=b"abc", headers={"x-amz-checksum-sha256": sha256b64(b"abc")})
    R.append(("part sha256 on crc32 upload", p1.summary()))
    R.append(("complete with that part", c.req("POST", "upc", "ck2", query="uploadId=" + uid, body=complete_xml([(1, p1.headers.get("etag", '"x"'))])).summary()))
    # no-checksum part on crc32 upload, complete
    u = c.req("POST", "upc", "ck3", query="uploads", headers={"x-amz-checksum-algorithm": "CRC32"}); uid = uid_of(u)
    p1 = c.req("PUT", "upc", "ck3", query="partNumber=1&uploadId=" + uid, body=b"abc")
    R.append(("complete with no-checksum part", c.req("POST", "upc", "ck3", query="uploadId=" + uid, body=complete_xml([(1, p1.headers.get("etag", '"x"'))])).summary()))
    # GetObjectAttributes on multipart without checksum
    u = c.req("POST", "upc", "nock", query="uploads"); uid = uid_of(u)
    p1 = c.req("PUT", "upc", "nock", query="partNumber=1&uploadId=" + uid, body=b"abc")
    c.req("POST", "upc", "nock", query="uploadId=" + uid, body=complete_xml([(1, p1.headers["etag"])]))
    R.append(("attrs multipart no checksum", c.req("GET", "upc", "nock", query="attributes", headers={"x-amz-object-attributes": "ObjectParts"}).summary()))
    return R


@case
def c15_more(c):
    R = []
    mkbucket(c, "more")
    mkbucket(c, "morev"); setver(c, "morev", "Enabled")
    # multipart on versioned bucket: version id on complete
    u = c.req("POST", "morev", "mp", query="uploads"); uid = uid_of(u)
    e1 = c.req("PUT", "morev", "mp", query="partNumber=1&uploadId=" + uid, body=b"abc").headers["etag"]
    R.append(("complete versioned", c.req("POST", "morev", "mp", query="uploadId=" + uid, body=complete_xml([(1, e1)])).summary()))
    # DeleteObjects deleting a delete marker by version id
    c.req("PUT", "morev", "dm", body=b"x")
    d = c.req("DELETE", "morev", "dm")
    dmv = d.headers.get("x-amz-version-id")
    b = ("<Delete><Object><Key>dm</Key><VersionId>%s</VersionId></Object></Delete>" % dmv).encode()
    R.append(("delete objects: delete marker by id", c.req("POST", "morev", query="delete", body=b, headers={"Content-MD5": md5b64(b)}).summary()))
    # versioning with MfaDelete Disabled
    body = b'<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>'
    R.append(("versioning + MfaDelete Disabled", c.req("PUT", "morev", query="versioning", body=body).summary()))
    body = b'<VersioningConfiguration></VersioningConfiguration>'
    R.append(("versioning empty config", c.req("PUT", "morev", query="versioning", body=body).summary()))
    # key with leading slash
    R.append(("put leading slash key", c.req("PUT", raw_path="/%s//lead" % c.bucket("more"), body=b"x").summary()))
    R.append(("list leading slash", c.req("GET", "more", query="list-type=2&prefix=/").summary()))
    R.append(("list leading slash encoded", c.req("GET", "more", query="list-type=2&prefix=%2F").summary()))
    R.append(("list prefix with unencoded space-ish chars", c.req("GET", "more", query="list-type=2&prefix=a:b@c").summary()))
    # transfer-encoding chunked without content-length
    # get versionId + partNumber
    R.append(("get mp versioned partNumber=1", c.req("HEAD", "morev", "mp", query="partNumber=1").summary()))
    # lifecycle roundtrip
    lc = (b'<LifecycleConfiguration><Rule><ID>r1</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>'
          b'<Expiration><Days>30</Days></Expiration></Rule>'
          b'<Rule><ID>r2</ID><Filter></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>'
          b'<Rule><ID>r3</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>a</Key><Value>b</Value></Tag></And></Filter><Status>Disabled</Status>'
          b'<NoncurrentVersionExpiration><NoncurrentDays>5</NoncurrentDays></NoncurrentVersionExpiration></Rule></LifecycleConfiguration>')
    R.append(("get lifecycle none", c.req("GET", "more", query="lifecycle").summary()))
    R.append(("put lifecycle", c.req("PUT", "more", query="lifecycle", body=lc, headers={"Content-MD5": md5b64(lc)}).summary()))
    R.append(("get lifecycle", c.req("GET", "more", query="lifecycle").summary()))
    lc2 = b'<LifecycleConfiguration><Rule><ID>legacy</ID><Prefix>old/</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>'
    R.append(("put lifecycle legacy prefix", c.req("PUT", "more", query="lifecycle", body=lc2, headers={"Content-MD5": md5b64(lc2)}).summary()))
    R.append(("get lifecycle legacy", c.req("GET", "more", query="lifecycle").summary()))
    lc3 = b'<LifecycleConfiguration><Rule><ID>dm</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule></LifecycleConfiguration>'
    R.append(("put lifecycle expired dm", c.req("PUT", "more", query="lifecycle", body=lc3, headers={"Content-MD5": md5b64(lc3)}).summary()))
    lc4 = b'<LifecycleConfiguration><Rule><ID>tr</ID><Filter/><Status>Enabled</Status><Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition></Rule></LifecycleConfiguration>'
    R.append(("put lifecycle transition", c.req("PUT", "more", query="lifecycle", body=lc4, headers={"Content-MD5": md5b64(lc4)}).summary()))
    lc5 = b'<LifecycleConfiguration><Rule><ID>date</ID><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule></LifecycleConfiguration>'
    R.append(("put lifecycle date", c.req("PUT", "more", query="lifecycle", body=lc5, headers={"Content-MD5": md5b64(lc5)}).summary()))
    R.append(("get lifecycle date", c.req("GET", "more", query="lifecycle").summary()))
    c.req("PUT", "more", "exp", body=b"x")
    R.append(("head with lifecycle (x-amz-expiration?)", c.req("HEAD", "more", "exp").summary(extra_headers=("x-amz-expiration",))))
    R.append(("delete lifecycle", c.req("DELETE", "more", query="lifecycle").summary()))
    R.append(("get lifecycle after delete", c.req("GET", "more", query="lifecycle").summary()))
    # list multipart uploads pagination
    for k in ["u1", "u1", "u2", "u3"]:
        c.req("POST", "more", k, query="uploads")
    r = c.req("GET", "more", query="uploads&max-uploads=1")
    R.append(("uploads max1", r.summary()))
    e = ET.fromstring(r.body)
    nk = e.find("{*}NextKeyMarker"); nu = e.find("{*}NextUploadIdMarker")
    if nk is not None and nu is not None:
        R.append(("uploads page 2", c.req("GET", "more", query="uploads&max-uploads=2&key-marker=%s&upload-id-marker=%s" % (nk.text, nu.text)).summary()))
    R.append(("uploads key-marker only", c.req("GET", "more", query="uploads&key-marker=u1").summary()))
    return R


@case
def c16_data_ranges(c):
    R = []
    import random
    mkbucket(c, "data")
    rnd = random.Random(26)
    p1 = bytes(rnd.getrandbits(8) for _ in range(5 * 1024 * 1024 + 7))
    p2 = bytes(rnd.getrandbits(8) for _ in range(300001))
    u = c.req("POST", "data", "mp", query="uploads"); uid = uid_of(u)
    e1 = c.req("PUT", "data", "mp", query="partNumber=1&uploadId=" + uid, body=p1).headers["etag"]
    e2 = c.req("PUT", "data", "mp", query="partNumber=2&uploadId=" + uid, body=p2).headers["etag"]
    c.req("POST", "data", "mp", query="uploadId=" + uid, body=complete_xml([(1, e1), (2, e2)]))
    whole = p1 + p2
    n = len(whole)
    bad = []
    for rg in [(0, 0), (len(p1) - 3, len(p1) + 3), (len(p1) - 1, len(p1)), (n - 1, n - 1), (12345, 4000000), (len(p1), n - 1)] + [tuple(sorted((rnd.randrange(n), rnd.randrange(n)))) for _ in range(10)]:
        r = c.req("GET", "data", "mp", headers={"Range": "bytes=%d-%d" % rg})
        if r.status != 206 or r.body != whole[rg[0]:rg[1] + 1] or r.headers.get("content-range") != "bytes %d-%d/%d" % (rg[0], rg[1], n):
            bad.append((rg, r.status, len(r.body), r.headers.get("content-range")))
    r = c.req("GET", "data", "mp", headers={"Range": "bytes=-1000"})
    if r.body != whole[-1000:]:
        bad.append(("suffix", r.status))
    R.append(("range data mismatches", bad))
    # upload part copy from multipart source across boundary
    u = c.req("POST", "data", "cp", query="uploads"); uid = uid_of(u)
    s0, s1 = len(p1) - 100, len(p1) + 5 * 1024 * 1024 // 20
    r1 = c.req("PUT", "data", "cp", query="partNumber=1&uploadId=" + uid, headers={"x-amz-copy-source": "/%s/mp" % c.bucket("data"), "x-amz-copy-source-range": "bytes=0-%d" % (5 * 1024 * 1024 - 1)})
    r2 = c.req("PUT", "data", "cp", query="partNumber=2&uploadId=" + uid, headers={"x-amz-copy-source": "/%s/mp" % c.bucket("data"), "x-amz-copy-source-range": "bytes=%d-%d" % (s0, s1)})
    pe1 = re.search(rb"<ETag>(.*?)</ETag>", r1.body).group(1).decode().replace("&#34;", '"').replace("&quot;", '"')
    pe2 = re.search(rb"<ETag>(.*?)</ETag>", r2.body).group(1).decode().replace("&#34;", '"').replace("&quot;", '"')
    R.append(("upc part etags", (pe1, pe2)))
    rc = c.req("POST", "data", "cp", query="uploadId=" + uid, body=complete_xml([(1, pe1), (2, pe2)]))
    R.append(("upc complete", rc.status))
    g = c.req("GET", "data", "cp")
    R.append(("upc content ok", g.body == whole[:5 * 1024 * 1024] + whole[s0:s1 + 1]))
    R.append(("copy object of multipart", c.req("PUT", "data", "cpo", headers={"x-amz-copy-source": "/%s/mp" % c.bucket("data")}).summary()))
    R.append(("head copy of multipart", c.req("HEAD", "data", "cpo").summary()))
    R.append(("copy of multipart content ok", c.req("GET", "data", "cpo").body == whole))
    return R


@case
def c17_conditional_copy_dest(c):
    R = []
    mkbucket(c, "ccd")
    c.req("PUT", "ccd", "src", body=b"s")
    c.req("PUT", "ccd", "dst", body=b"d")
    cs = {"x-amz-copy-source": "/%s/src" % c.bucket("ccd")}
    R.append(("copy inm * onto existing", c.req("PUT", "ccd", "dst", headers=dict(cs, **{"If-None-Match": "*"})).summary()))
    R.append(("copy inm * onto new", c.req("PUT", "ccd", "dst2", headers=dict(cs, **{"If-None-Match": "*"})).summary()))
    R.append(("copy if-match bad onto existing", c.req("PUT", "ccd", "dst", headers=dict(cs, **{"If-Match": '"x"'})).summary()))
    R.append(("get dst", c.req("GET", "ccd", "dst").summary()))
    u = c.req("POST", "ccd", "dst", query="uploads"); uid = uid_of(u)
    e1 = c.req("PUT", "ccd", "dst", query="partNumber=1&uploadId=" + uid, body=b"mp").headers["etag"]
    R.append(("complete if-match bad", c.req("POST", "ccd", "dst", query="uploadId=" + uid, body=complete_xml([(1, e1)]), headers={"If-Match": '"x"'}).summary()))
    R.append(("complete if-match ok", c.req("POST", "ccd", "dst", query="uploadId=" + uid, body=complete_xml([(1, e1)]), headers={"If-Match": '"8277e0910d750195b448797616e091ad"'}).summary()))
    R.append(("delete if-match ok", c.req("DELETE", "ccd", "dst2", headers={"If-Match": '"03c7c0ace395d80182db07ae2c30f034"'}).summary()))
    return R


@case
def c18_walks(c):
    R = []
    import random
    rnd = random.Random(7)
    mkbucket(c, "walk")
    setver(c, "walk", "Enabled")
    keys = sorted({"/".join(rnd.choice(["a", "b", "c", "a b", "é"]) for _ in range(rnd.randint(1, 3))) + str(rnd.randint(0, 3)) for _ in range(60)})
    for k in keys:
        for _ in range(rnd.randint(1, 3)):
            c.req("PUT", "walk", k, body=b"v")
        if rnd.random() < 0.3:
            c.req("DELETE", "walk", k)
    # full versions list (single page)
    def versions(q):
        r = c.req("GET", "walk", query="versions&" + q)
        e = ET.fromstring(r.body)
        items = [(strip_ns(x.tag), x.find("{*}Key").text, c.tok(x.find("{*}VersionId").text, "V"), x.find("{*}IsLatest").text)
                 for x in e if strip_ns(x.tag) in ("Version", "DeleteMarker")]
        cps = [x.find("{*}Prefix").text for x in e.findall("{*}CommonPrefixes")]
        g = lambda t: (e.find("{*}" + t).text if e.find("{*}" + t) is not None else None)
        return items, cps, g("IsTruncated"), g("NextKeyMarker"), g("NextVersionIdMarker")
    full, _, _, _, _ = versions("max-keys=1000")
    R.append(("versions full", full))
    for mk in (1, 2, 5):
        walk, km, vm, pages = [], None, None, 0
        while pages < 500:
            q = "max-keys=%d" % mk
            if km is not None:
                q += "&key-marker=" + urllib.parse.quote(km, safe="")
                if vm:
                    q += "&version-id-marker=" + urllib.parse.quote(vm, safe="")
            items, _, trunc, km2, vm2 = versions(q)
            walk += items
            pages += 1
            if trunc != "true":
                break
            km = km2
            vm = vm2
        R.append(("versions walk max %d equals full" % mk, walk == full))
    # delimiter walk of versions
    items, cps, _, _, _ = versions("delimiter=/")
    R.append(("versions delimiter", (len(items), cps)))
    # v2 walks
    def v2(q):
        r = c.req("GET", "walk", query="list-type=2&" + q)
        e = ET.fromstring(r.body)
        ks = [x.text for x in e.findall("{*}Contents/{*}Key")] + ["P:" + x.text for x in e.findall("{*}CommonPrefixes/{*}Prefix")]
        t = e.find("{*}NextContinuationToken")
        return ks, (t.text if t is not None else None), e.find("{*}IsTruncated").text
    for q in ["", "delimiter=/", "prefix=a/&delimiter=/", "prefix=a", "delimiter=b", "start-after=b&delimiter=/"]:
        full, _, _ = v2(q + "&max-keys=1000")
        walk, tok, pages = [], None, 0
        while pages < 200:
            ks, tok, tr = v2(q + "&max-keys=3" + ("&continuation-token=" + urllib.parse.quote(tok, safe="") if tok else ""))
            walk += ks
            pages += 1
            if tr != "true":
                break
        R.append(("v2 [%s] full" % q, full))
        R.append(("v2 [%s] walk==full" % q, sorted(walk) == sorted(full) and len(walk) == len(full)))
    return R


@case
def c19_bucket_create(c):
    R = []
    lc = lambda r: ('<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>' % r).encode()
    R.append(("create with us-east-1 constraint", c.req("PUT", "bc1", body=lc("us-east-1")).summary()))
    R.append(("create with eu-west-1 constraint", c.req("PUT", "bc2", body=lc("eu-west-1")).summary()))
    R.append(("create with empty constraint", c.req("PUT", "bc3", body=lc("")).summary()))
    R.append(("create with malformed body", c.req("PUT", "bc4", body=b"<notxml").summary()))
    R.append(("location bc3", c.req("GET", "bc3", query="location").summary()))
    R.append(("create name with underscore", c.req("PUT", raw_path="/d26_bad_name").summary()))
    R.append(("create name 64 chars", c.req("PUT", raw_path="/" + "a" * 64).summary()))
    R.append(("create name ip", c.req("PUT", raw_path="/192.168.5.4").summary()))
    R.append(("create name xn--", c.req("PUT", raw_path="/xn--d26abc").summary()))
    R.append(("create name -s3alias", c.req("PUT", raw_path="/d26abc-s3alias").summary()))
    R.append(("create name double dot", c.req("PUT", raw_path="/d26..abc").summary()))
    R.append(("versioning on missing bucket", setver(c, "nobucket-v", "Enabled").summary()))
    R.append(("list missing bucket", c.req("GET", "nobucket-v", query="list-type=2").summary()))
    R.append(("uploads missing bucket", c.req("GET", "nobucket-v", query="uploads").summary()))
    R.append(("create bucket object ownership", c.req("PUT", "bc5", headers={"x-amz-object-ownership": "BucketOwnerEnforced"}).summary()))
    R.append(("create bucket object ownership writer", c.req("PUT", "bc6", headers={"x-amz-object-ownership": "ObjectWriter"}).summary()))
    R.append(("delete empty bucket", c.req("DELETE", "bc5").summary()))
    return R


@case
def c20_path_encoding(c):
    R = []
    mkbucket(c, "enc")
    b = c.bucket("enc")
    odd = ["sub!*'()", "d$,;=:@x", "sp ace", "plus+sign", "pct%25x", "uni-ü", "tilde~x", "brk[x]", "caret^x", "bq`x", "pipe|x", "brace{x}"]
    for k in odd:
        R.append(("put quoted " + k, c.req("PUT", "enc", k, body=k.encode()).summary()))
    for raw in ["sub!*'()", "d$,;=:@x", "brk[x]", "plus+sign"]:
        R.append(("get raw-path " + raw, c.req("GET", raw_path="/%s/%s" % (b, raw)).summary()))
    for k in ["sp ace", "plus+sign", "uni-ü", "sub!*'()", "pct%25x"]:
        R.append(("presign get " + k, c.presign("GET", "enc", k, 60).summary()))
    R.append(("presign get disposition unicode", c.presign("GET", "enc", "sp ace", 60, query="response-content-disposition=" + urllib.parse.quote('attachment; filename="ü x.txt"', safe="")).summary()))
    R.append(("list enc", c.req("GET", "enc", query="list-type=2&encoding-type=url").summary()))
    return R
