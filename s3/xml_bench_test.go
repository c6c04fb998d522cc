package s3

import (
	"encoding/xml"
	"fmt"
	"testing"
)

// BenchmarkListXML measures encoding a full ListObjectsV2 page (1,000
// keys), which every listing request pays.
func BenchmarkListXML(b *testing.B) {
	n := 1000
	res := listBucketResult{Xmlns: s3Namespace, Name: "bench", MaxKeys: n, KeyCount: &n, IsTruncated: true,
		NextContinuationToken: "a2V5LTAwMDk5OQ"}
	for i := range n {
		res.Contents = append(res.Contents, objectEntry{
			Key: xmlKey(fmt.Sprintf("photos/2026/11/%06d.jpg", i)), LastModified: "2026-11-29T12:00:00.000Z",
			ETag: `"0123456789abcdef0123456789abcdef"`, Size: int64(i) * 1000, StorageClass: "STANDARD",
		})
	}
	out, _ := xml.Marshal(res)
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := xml.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}
