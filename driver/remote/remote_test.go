package remote_test

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// conformance runs the driver conformance suite on s, each subtest on a
// fresh prefix of one bucket.
func conformance(t *testing.T, s server) {
	b := s.bucket(t)
	var n atomic.Int64
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		return open(t, s.config("", b, fmt.Sprintf("c%d/drive", n.Add(1))))
	})
}

func TestConformanceVaultd(t *testing.T) { conformance(t, startVaultd(t)) }

func TestConformanceMinIO(t *testing.T) { conformance(t, startMinIO(t)) }

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want remote.Config
		bad  bool
	}{
		{in: "https://s3.example.com/bkt", want: remote.Config{Endpoint: "https://s3.example.com", Bucket: "bkt"}},
		{in: "http://127.0.0.1:9000/bkt/a/b/?region=eu-1", want: remote.Config{Endpoint: "http://127.0.0.1:9000", Bucket: "bkt", Prefix: "a/b", Region: "eu-1"}},
		{in: "https://h/b?timeout=5s&concurrency=4", want: remote.Config{Endpoint: "https://h", Bucket: "b", OpTimeout: 5 * time.Second, MaxConcurrent: 4}},
		{in: "https://key:secret@h/b", bad: true},
		{in: "https://key:secret%zz@h/b", bad: true}, // unparsable: url.Error quotes the URL
		{in: "https://key:top secret@h/b", bad: true},
		{in: "ftp://h/b", bad: true},
		{in: "https://h/", bad: true},
		{in: "https://h/b?sig=x", bad: true},
		{in: "https://h/b?timeout=-1s", bad: true},
		{in: "https://h/b?concurrency=0", bad: true},
		{in: "https://h/b?verify=30m", want: remote.Config{Endpoint: "https://h", Bucket: "b", VerifyEvery: 30 * time.Minute}},
		{in: "https://h/b?verify=off", want: remote.Config{Endpoint: "https://h", Bucket: "b", VerifyEvery: -1}},
		{in: "https://h/b?verify=10s", bad: true},
		{in: "https://h/b?verify=never", bad: true},
	}
	for _, tt := range tests {
		got, err := remote.ParseURL(tt.in)
		switch {
		case tt.bad && err == nil:
			t.Errorf("ParseURL(%q) = %+v, want an error", tt.in, got)
		case tt.bad && strings.Contains(err.Error(), "secret"):
			t.Errorf("ParseURL(%q): error %q repeats the secret", tt.in, err)
		case !tt.bad && (err != nil || !reflect.DeepEqual(got, tt.want)):
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
