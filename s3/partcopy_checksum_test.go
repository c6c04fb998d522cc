package s3_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestUploadPartCopyChecksum: a part copied into an upload created with a
// checksum algorithm gets the checksum of the copied bytes, as S3 gives it
// (in CopyPartResult and stored with the part), so the completed object
// has its composite checksum: boto3's managed copy above its multipart
// threshold (CreateMultipartUpload with CRC32, UploadPartCopy, Complete)
// made an object without one. An upload without an algorithm stays
// without.
func TestUploadPartCopyChecksum(t *testing.T) {
	e := startServer(t)
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	b := aws.String("pcsum")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	src := randBytes(5, 5<<20+1000)
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	ranges := [][2]int{{0, 5 << 20}, {5 << 20, len(src)}}
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, ""} {
		key := aws.String("dst-" + string(alg))
		up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: key, ChecksumAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		var sums []byte
		for i, rg := range ranges {
			out, err := c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
				CopySource: aws.String("pcsum/src"), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]-1))})
			if err != nil {
				t.Fatal(err)
			}
			got := aws.ToString(out.CopyPartResult.ChecksumCRC32)
			want := ""
			if alg != "" {
				want = crc32Base64(src[rg[0]:rg[1]])
				raw, _ := base64.StdEncoding.DecodeString(want)
				sums = append(sums, raw...)
			}
			if got != want {
				t.Fatalf("%q part %d: CopyPartResult ChecksumCRC32 %q, want %q", alg, i+1, got, want)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.CopyPartResult.ETag, ChecksumCRC32: out.CopyPartResult.ChecksumCRC32})
		}
		if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
			t.Fatalf("%q: complete: %v", alg, err)
		}
		head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: key, ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if alg != "" {
			var whole [4]byte
			v := crc32.ChecksumIEEE(sums)
			whole[0], whole[1], whole[2], whole[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
			want = base64.StdEncoding.EncodeToString(whole[:]) + "-2"
		}
		if got := aws.ToString(head.ChecksumCRC32); got != want {
			t.Fatalf("%q: the copy's ChecksumCRC32 %q, want %q", alg, got, want)
		}
		obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: b, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%q: the copy reads back %d bytes, %v", alg, len(got), err)
		}
	}
}
