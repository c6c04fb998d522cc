package sigv4_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// FuzzBodyChunked feeds arbitrary aws-chunked bodies to PayloadReaders
// made from real minio-go signed requests. The decoder must never panic,
// and in signed modes must never release bytes other than a prefix of the
// payload that was signed, nor succeed with anything but all of it, and
// its errors wrap the package's sentinels.
func FuzzBodyChunked(f *testing.F) {
	type seed struct {
		mode streamMode
		data []byte
		res  *sigv4.Result
	}
	var seeds []seed
	for _, s := range []struct {
		mode streamMode
		size int
	}{
		{signedStream, 0}, {signedStream, 100}, {signedStream, 65537},
		{signedTrailerStream, 100}, {unsignedTrailerStream, 0}, {unsignedTrailerStream, 100},
	} {
		data := payload(s.size)
		r, enc, at := streamRequest(f, s.mode, data, http.Header{"x-amz-checksum-crc32c": {checksumB64(f, "crc32c", data)}})
		res, err := sigv4.Verify(f.Context(), r, creds, at)
		if err != nil {
			f.Fatalf("Verify: %v", err)
		}
		f.Add(uint8(len(seeds)), enc)
		seeds = append(seeds, seed{s.mode, data, res})
	}
	f.Add(uint8(5), []byte("64\r\n"+string(payload(100))+"\r\n0\r\nx-amz-checksum-crc32c:"+checksumB64(f, "crc32c", payload(100))+"\r\n\r\n"))
	f.Fuzz(func(t *testing.T, which uint8, enc []byte) {
		s := seeds[int(which)%len(seeds)]
		got, err := io.ReadAll(s.res.Body(bytes.NewReader(enc)))
		checkSentinel(t, err)
		if s.mode == unsignedTrailerStream {
			if err == nil && len(got) != len(s.data) {
				t.Fatalf("decoded %d bytes without error, want %d", len(got), len(s.data))
			}
			return
		}
		if !bytes.HasPrefix(s.data, got) {
			t.Fatalf("released %d bytes that were not signed", len(got))
		}
		if err == nil && len(got) != len(s.data) {
			t.Fatalf("decoded %d bytes without error, want %d", len(got), len(s.data))
		}
	})
}

// TestBodyAWSUnsignedFormat decodes the unsigned aws-chunked framing the
// AWS SDKs send (CRLF-terminated trailer lines, no extra CRLF).
func TestBodyAWSUnsignedFormat(t *testing.T) {
	data := payload(100)
	r, _, at := streamRequest(t, unsignedTrailerStream, data, crc32Trailer(t, data))
	res, err := sigv4.Verify(t.Context(), r, creds, at)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	enc := "40\r\n" + string(data[:64]) + "\r\n24\r\n" + string(data[64:]) + "\r\n0\r\nx-amz-checksum-crc32:" + checksumB64(t, "crc32", data) + "\r\n\r\n"
	got, err := io.ReadAll(res.Body(bytes.NewReader([]byte(enc))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, %v; want %d, nil", len(got), err, len(data))
	}
}
