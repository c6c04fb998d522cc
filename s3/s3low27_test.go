package s3_test

// Session 27: the LOW S3-compatibility findings of DIFF26 (D3, D9, D11,
// D14) and review 26c (C3, C5).

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vaultaire/vaultaire/engine"
)

// TestS3Low27AttributesPartsWithoutChecksum (DIFF26 D3): a multipart
// object without an additional checksum answers GetObjectAttributes'
// ObjectParts with its part count and no Part element: "if an additional
// checksum ... isn't applied to the object specified in the request, the
// response doesn't return the Part element" (GetObjectAttributesParts,
// general purpose buckets).
func TestS3Low27AttributesPartsWithoutChecksum(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "attrplain")
	b, key := aws.String("attrplain"), aws.String("mp")
	up, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: b, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for n, data := range [][]byte{randBytes(1, 5<<20), randBytes(2, 10)} {
		out, err := c.UploadPart(t.Context(), &awss3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: out.ETag})
	}
	if _, err := c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObjectAttributes(t.Context(), &awss3.GetObjectAttributesInput{Bucket: b, Key: key,
		ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectParts}})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.ObjectParts; p == nil || aws.ToInt32(p.TotalPartsCount) != 2 || len(p.Parts) != 0 || aws.ToBool(p.IsTruncated) {
		t.Fatalf("ObjectParts of a multipart object without checksum: %+v; want PartsCount 2 and no Part", p)
	}
}

// TestS3Low27AttributesPartsCompletedBefore: a checksum upload completed
// before part checksums were kept with the object (here through the
// engine, without the s3 layer's finish) still lists its parts, without
// their checksums, as before.
func TestS3Low27AttributesPartsCompletedBefore(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "attrold")
	id, err := e.eng.CreateUpload(t.Context(), "alice", "attrold", "mp", engine.PutOptions{ContentType: "binary/octet-stream",
		Metadata: map[string]string{"x-amz-checksum-algorithm": "crc32", "x-amz-checksum-type": "COMPOSITE"}})
	if err != nil {
		t.Fatal(err)
	}
	var parts []engine.CompletePart
	for n, data := range [][]byte{randBytes(1, 5<<20), randBytes(2, 10)} {
		p, err := e.eng.PutPart(t.Context(), "alice", "attrold", "mp", id, n+1, bytes.NewReader(data), engine.PutOptions{Size: int64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, engine.CompletePart{Number: n + 1, ETag: p.ETag})
	}
	if _, err := e.eng.CompleteUpload(t.Context(), "alice", "attrold", "mp", id, parts, func(engine.Upload, []engine.PartInfo) (map[string]string, error) {
		return map[string]string{"x-amz-checksum-crc32": "AAAAAA==-2"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObjectAttributes(t.Context(), &awss3.GetObjectAttributesInput{Bucket: aws.String("attrold"), Key: aws.String("mp"),
		ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectParts}})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.ObjectParts; p == nil || aws.ToInt32(p.TotalPartsCount) != 2 || len(p.Parts) != 2 || p.Parts[0].ChecksumCRC32 != nil || aws.ToInt64(p.Parts[1].Size) != 10 {
		t.Fatalf("ObjectParts of a checksum object completed without its parts' checksums: %+v; want its 2 parts, without checksums", p)
	}
}

// TestS3Low27ListPartsChecksumAlgorithm (DIFF26 D9): ListParts of an
// upload created with a checksum algorithm answers the algorithm and the
// checksum type (ListPartsOutput.ChecksumAlgorithm, ChecksumType), as S3
// and MinIO do; without one, neither.
func TestS3Low27ListPartsChecksumAlgorithm(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "lpalg")
	for _, tc := range []struct {
		alg      types.ChecksumAlgorithm
		typ      types.ChecksumType
		wantType types.ChecksumType
	}{
		{types.ChecksumAlgorithmCrc32, "", types.ChecksumTypeComposite},
		{types.ChecksumAlgorithmCrc32c, types.ChecksumTypeFullObject, types.ChecksumTypeFullObject},
		{types.ChecksumAlgorithmSha256, "", types.ChecksumTypeComposite},
		{types.ChecksumAlgorithmCrc64nvme, "", types.ChecksumTypeFullObject},
		{"", "", ""},
	} {
		key := aws.String("k-" + string(tc.alg))
		up, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String("lpalg"), Key: key, ChecksumAlgorithm: tc.alg, ChecksumType: tc.typ})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.alg, tc.typ, err)
		}
		lp, err := c.ListParts(t.Context(), &awss3.ListPartsInput{Bucket: aws.String("lpalg"), Key: key, UploadId: up.UploadId})
		if err != nil {
			t.Fatal(err)
		}
		if lp.ChecksumAlgorithm != tc.alg || lp.ChecksumType != tc.wantType {
			t.Errorf("ListParts of a %q %q upload: ChecksumAlgorithm %q ChecksumType %q, want %q %q", tc.alg, tc.typ, lp.ChecksumAlgorithm, lp.ChecksumType, tc.alg, tc.wantType)
		}
	}
}

// TestS3Low27CompleteChecksumTypeValue (review 26c C5): a
// CompleteMultipartUpload x-amz-checksum-type that is no checksum type is
// a malformed request (InvalidRequest), not a checksum mismatch. On an
// upload created without a checksum the object's type is FULL_OBJECT as
// on S3 (which gives every such object a full-object CRC64NVME since its
// December 2024 default integrity protections): FULL_OBJECT completes,
// COMPOSITE is the mismatch the API reference answers with BadDigest.
func TestS3Low27CompleteChecksumTypeValue(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ctypev")
	for i, tc := range []struct {
		alg  types.ChecksumAlgorithm
		typ  types.ChecksumType
		code string // "" for success
	}{
		{types.ChecksumAlgorithmCrc32, "BOGUS", "InvalidRequest"},
		{"", "BOGUS", "InvalidRequest"},
		{"", types.ChecksumTypeComposite, "BadDigest"},
		{"", types.ChecksumTypeFullObject, ""},
		{types.ChecksumAlgorithmCrc32, types.ChecksumTypeComposite, ""},
	} {
		key := aws.String(fmt.Sprintf("k%d", i))
		up, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: aws.String("ctypev"), Key: key, ChecksumAlgorithm: tc.alg})
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("part")
		in := &awss3.UploadPartInput{Bucket: aws.String("ctypev"), Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(data)}
		if tc.alg != "" {
			in.ChecksumCRC32 = aws.String(crc32Base64(data))
		}
		p, err := c.UploadPart(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: aws.String("ctypev"), Key: key, UploadId: up.UploadId, ChecksumType: tc.typ,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32}}}})
		what := fmt.Sprintf("Complete of a %q upload with x-amz-checksum-type %q", tc.alg, tc.typ)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
			continue
		}
		if got := apiCode(err); got != tc.code {
			t.Errorf("%s: error %v (code %q), want %s", what, err, got, tc.code)
		}
	}
}

func crc32cBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

// TestS3Low27CopyComputesChecksum (review 26c C3): a copy's checksum is
// computed from the copied bytes, a FULL_OBJECT one, with the algorithm
// the CopyObject asks for (x-amz-checksum-algorithm), else the source's;
// a source without a checksum gives a copy without one unless one is
// asked for. MetadataDirective REPLACE keeps the rule. The copy answers
// it in CopyObjectResult too.
func TestS3Low27CopyComputesChecksum(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "copysum")
	b := aws.String("copysum")
	id, parts, whole := review26sUpload(t, c, "copysum", "m", "")
	if _, err := c.CompleteMultipartUpload(t.Context(), &awss3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("m"),
		UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	data := append(randBytes(11, 5<<20), randBytes(12, 777)...) // review26sUpload's parts
	plain := []byte("plain object")
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: b, Key: aws.String("p"), Body: bytes.NewReader(plain)}); err != nil {
		t.Fatal(err)
	}
	sha := sha256.Sum256(plain)
	for _, tc := range []struct {
		name, src string
		alg       types.ChecksumAlgorithm
		replace   bool
		want      map[string]string // algorithm: value; empty: no checksum
	}{
		{"multipart source", "m", "", false, map[string]string{"CRC32": whole}},
		{"multipart source, CRC32C asked", "m", types.ChecksumAlgorithmCrc32c, false, map[string]string{"CRC32C": crc32cBase64(data)}},
		{"multipart source, REPLACE", "m", "", true, map[string]string{"CRC32": whole}},
		{"source without checksum", "p", "", false, map[string]string{}},
		{"source without checksum, SHA256 asked", "p", types.ChecksumAlgorithmSha256, false, map[string]string{"SHA256": base64.StdEncoding.EncodeToString(sha[:])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &awss3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("copysum/" + tc.src), ChecksumAlgorithm: tc.alg}
			if tc.replace {
				in.MetadataDirective = types.MetadataDirectiveReplace
			}
			out, err := c.CopyObject(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			h, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: b, Key: aws.String("copy"), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for alg, v := range map[string]*string{"CRC32": h.ChecksumCRC32, "CRC32C": h.ChecksumCRC32C, "CRC64NVME": h.ChecksumCRC64NVME, "SHA1": h.ChecksumSHA1, "SHA256": h.ChecksumSHA256} {
				if v != nil {
					got[alg] = *v
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("HEAD of the copy: checksums %v, want %v", got, tc.want)
			}
			if len(tc.want) > 0 && h.ChecksumType != types.ChecksumTypeFullObject {
				t.Errorf("HEAD of the copy: checksum type %q, want FULL_OBJECT", h.ChecksumType)
			}
			r := out.CopyObjectResult
			res := map[string]string{}
			for alg, v := range map[string]*string{"CRC32": r.ChecksumCRC32, "CRC32C": r.ChecksumCRC32C, "SHA256": r.ChecksumSHA256} {
				if v != nil {
					res[alg] = *v
				}
			}
			if fmt.Sprint(res) != fmt.Sprint(tc.want) {
				t.Errorf("CopyObjectResult: checksums %v, want %v", res, tc.want)
			}
		})
	}
}

// TestS3Low27ExpirationHeader (DIFF26 D11): PUT, HEAD and GET of an
// object that an enabled lifecycle Expiration rule selects answer
// x-amz-expiration: expiry-date="<midnight GMT>", rule-id="<id>", as S3
// does; with Days the date is the object's creation plus the days,
// rounded up to the next midnight UTC. A disabled rule, or one that does
// not select the object (prefix, tag, size), gives none.
func TestS3Low27ExpirationHeader(t *testing.T) {
	e := startConfigServer(t)
	c := createBucket(t, e, "expiry")
	b := aws.String("expiry")
	if _, err := c.PutBucketLifecycleConfiguration(t.Context(), &awss3.PutBucketLifecycleConfigurationInput{Bucket: b,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{
			{ID: aws.String("off"), Status: types.ExpirationStatusDisabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
				Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}},
			{ID: aws.String("logs-rule"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("logs/")},
				Expiration: &types.LifecycleExpiration{Days: aws.Int32(3)}},
			{ID: aws.String("tagged"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Tag: &types.Tag{Key: aws.String("k"), Value: aws.String("v")}},
				Expiration: &types.LifecycleExpiration{Date: aws.Time(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}},
			{ID: aws.String("big"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{ObjectSizeGreaterThan: aws.Int64(100)},
				Expiration: &types.LifecycleExpiration{Days: aws.Int32(10)}},
		}}}); err != nil {
		t.Fatal(err)
	}
	days := func(n int) string {
		at := time.Now().UTC().Add(time.Duration(n) * 24 * time.Hour)
		return at.Truncate(24 * time.Hour).Add(24 * time.Hour).Format(http.TimeFormat)
	}
	for _, tc := range []struct {
		key, tagging string
		size         int
		want         string
	}{
		{"logs/a", "", 1, `expiry-date="` + days(3) + `", rule-id="logs-rule"`},
		{"t", "k=v", 1, `expiry-date="Tue, 01 Jan 2030 00:00:00 GMT", rule-id="tagged"`},
		{"t2", "k=other", 1, ""},
		{"large", "", 200, `expiry-date="` + days(10) + `", rule-id="big"`},
		{"logs/large", "", 200, `expiry-date="` + days(3) + `", rule-id="logs-rule"`}, // the earlier of two
		{"other", "", 1, ""},
	} {
		in := &awss3.PutObjectInput{Bucket: b, Key: aws.String(tc.key), Body: bytes.NewReader(make([]byte, tc.size))}
		if tc.tagging != "" {
			in.Tagging = aws.String(tc.tagging)
		}
		put, err := c.PutObject(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		head, err := c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: b, Key: aws.String(tc.key)})
		if err != nil {
			t.Fatal(err)
		}
		get, err := c.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: b, Key: aws.String(tc.key)})
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		for op, got := range map[string]*string{"PUT": put.Expiration, "HEAD": head.Expiration, "GET": get.Expiration} {
			if aws.ToString(got) != tc.want {
				t.Errorf("%s %s: x-amz-expiration %q, want %q", op, tc.key, aws.ToString(got), tc.want)
			}
		}
	}
}

// TestS3Low27ListControlCharacterKey (DIFF26 D14): a key holding a
// character XML 1.0 cannot carry (U+0001) is listed without
// encoding-type=url as a character reference, &#x1;, as S3 and MinIO do,
// not silently renamed to U+FFFD (whose GET is a 404). In every listing:
// V1, V2, versions, multipart uploads. minio-go always lists with
// encoding-type=url and gets the key back; aws-sdk-go-v2 sends no
// encoding type and its XML decoder (encoding/xml) refuses &#x1;, so it
// fails the listing rather than returning another name; with
// EncodingType url it gets the key, escaped.
func TestS3Low27ListControlCharacterKey(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "ctlkey")
	b := aws.String("ctlkey")
	const key = "ctl\x01x<&\"'\t"
	if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMultipartUpload(t.Context(), &awss3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	const want = "ctl&#x1;x&lt;&amp;&#34;&#39;&#x9;"
	for _, q := range []string{"", "?list-type=2", "?versions", "?uploads", "?prefix=ctl%01&delimiter=x", "?list-type=2&start-after=ctl%01", "?marker=ctl%01"} {
		status, body := signed(t, "GET", e.endpoint+"/ctlkey"+q, "", time.Now())
		if status != 200 {
			t.Fatalf("GET /ctlkey%s: %d %s", q, status, body)
		}
		if strings.Contains(body, "\uFFFD") || !strings.Contains(body, "ctl&#x1;") {
			t.Errorf("GET /ctlkey%s lists %s; want the key as %s", q, body, want)
		}
		if !strings.Contains(q, "delimiter") && !strings.Contains(body, want) {
			t.Errorf("GET /ctlkey%s lists %s; want the key as %s", q, body, want)
		}
	}
	// minio-go: encoding-type=url, always.
	mc, err := minio.New(strings.TrimPrefix(e.endpoint, "http://"), &minio.Options{Creds: miniocreds.NewStaticV4("ALICEKEY", "alicesecret", ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for o := range mc.ListObjects(t.Context(), "ctlkey", minio.ListObjectsOptions{}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != key {
		t.Fatalf("minio-go lists %q, want [%q]", keys, key)
	}
	obj, err := mc.GetObject(t.Context(), "ctlkey", keys[0], minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(obj); err != nil || string(got) != "x" {
		t.Fatalf("minio-go GET of the listed key: %q %v", got, err)
	}
	// aws-sdk-go-v2 without an encoding type: its decoder's error (Go's
	// encoding/xml refuses the reference), never a renamed key.
	out, err := c.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: b})
	switch {
	case err == nil:
		if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != key {
			t.Fatalf("aws-sdk-go-v2 ListObjectsV2 without an encoding type: %+v, want the key %q", out.Contents, key)
		}
	case !strings.Contains(err.Error(), "illegal character code U+0001"):
		t.Fatalf("aws-sdk-go-v2 ListObjectsV2 without an encoding type: %v, want the key or encoding/xml's refusal of U+0001", err)
	}
	out, err = c.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: b, EncodingType: types.EncodingTypeUrl})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "ctl%01x%3C%26%22%27%09" {
		t.Fatalf("aws-sdk-go-v2 ListObjectsV2 with EncodingType url: %+v %v", out, err)
	}
}
