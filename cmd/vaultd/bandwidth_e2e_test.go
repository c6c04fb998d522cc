package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/s3"
)

// TestTenantBandwidth: a tenant's bandwidth, set with `vaultd tenant
// set-rate --bytes-in/--bytes-out`, shapes its uploads and downloads
// (slowed, never refused, the bytes intact) while another tenant on the
// same node is not slowed. Margins are generous: the machine is shared.
func TestTenantBandwidth(t *testing.T) {
	s3Addr, _, root := startSingleNode(t)
	ctx := t.Context()
	admin := &adminClient{endpoint: "http://" + s3Addr, creds: root, http: &http.Client{Timeout: 30 * time.Second}}
	getenv := func(k string) string {
		return map[string]string{"VAULT_ENDPOINT": "http://" + s3Addr, "VAULT_ROOT_ACCESS_KEY": root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": root.SecretAccessKey}[k]
	}
	client := func(tn s3.NewTenant) *awss3.Client {
		return awss3.New(awss3.Options{
			BaseEndpoint: aws.String("http://" + s3Addr), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(tn.AccessKey, tn.SecretKey, ""),
		})
	}
	tenants := map[string]s3.NewTenant{}
	for _, name := range []string{"slow", "fast"} {
		var tn s3.NewTenant
		if err := admin.do(ctx, http.MethodPut, "/_vault/admin/tenants/"+name, &tn); err != nil {
			t.Fatal(err)
		}
		tenants[name] = tn
		if _, err := client(tn).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name + "-bucket")}); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"tenant", "set-rate", "slow", "--bytes-in", "1MiB", "--bytes-out", "2MiB"}, getenv, &out, &errb); err != nil {
		t.Fatalf("vaultd tenant set-rate: %v\n%s", err, errb.String())
	}
	out.Reset()
	if err := run(ctx, []string{"tenant", "list", "--json"}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var listed []s3.TenantInfo
	if err := json.Unmarshal(out.Bytes(), &listed); err != nil {
		t.Fatal(err)
	}
	for _, tn := range listed {
		if tn.Name == "slow" && (tn.Limits.BytesIn != 1<<20 || tn.Limits.BytesOut != 2<<20) {
			t.Fatalf("slow's limits %+v, want 1 MiB/s in and 2 MiB/s out", tn.Limits)
		}
	}

	const size = 4 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	transfer := func(name string) (up, down time.Duration) {
		t.Helper()
		cl := client(tenants[name])
		start := time.Now()
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(name + "-bucket"), Key: aws.String("big"), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("%s: put: %v", name, err)
		}
		up = time.Since(start)
		start = time.Now()
		got, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(name + "-bucket"), Key: aws.String("big")})
		if err != nil {
			t.Fatalf("%s: get: %v", name, err)
		}
		data, err := io.ReadAll(got.Body)
		got.Body.Close()
		down = time.Since(start)
		if err != nil || !bytes.Equal(data, body) {
			t.Fatalf("%s: got %d bytes (%v), want the %d put", name, len(data), err, size)
		}
		t.Logf("%s: 4 MiB up in %v, down in %v", name, up.Round(time.Millisecond), down.Round(time.Millisecond))
		return up, down
	}
	up, down := transfer("slow")
	// 4 MiB at 1 MiB/s after a burst of 256 KiB: 3.75 s; at 2 MiB/s
	// after 512 KiB: 1.75 s.
	if up < 2500*time.Millisecond || up > 30*time.Second {
		t.Errorf("shaped upload took %v, want about 3.75 s", up)
	}
	if down < 1200*time.Millisecond || down > 30*time.Second {
		t.Errorf("shaped download took %v, want about 1.75 s", down)
	}
	// Unshaped transfers are timed against the shaped ones' floors; under
	// the race detector (the short suite's second run, beside other
	// packages) 4 MiB through the handlers alone took 1.4 s: the full run
	// without it keeps the tight bounds.
	slack := time.Duration(1)
	if raceEnabled {
		slack = 4
	}
	if up, down := transfer("fast"); up > 2*time.Second*slack || down > time.Second*slack {
		t.Errorf("unshaped tenant: up %v, down %v; want well under the shaped times", up, down)
	}

	// The admin API takes the bandwidth as strict JSON, like the rest.
	for _, body := range []string{`{"bytes_in":-1}`, `{"bytes_out":-5}`, `{"bytes_inn":5}`, `{"bytes_in":"1MiB"}`} {
		err := admin.send(ctx, http.MethodPut, "/_vault/admin/tenants/slow/rate", []byte(body), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "InvalidArgument:") {
			t.Errorf("PUT rate %s: %v, want InvalidArgument", body, err)
		}
	}
	// A PUT of the rate sets the pairs it names: the request rate alone
	// leaves the bandwidth as it was; zero bandwidth lifts it.
	if err := admin.send(ctx, http.MethodPut, "/_vault/admin/tenants/slow/rate", []byte(`{"rps":1000}`), nil); err != nil {
		t.Fatal(err)
	}
	var ts []s3.TenantInfo
	if err := admin.do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts {
		if l := tn.Limits; tn.Name == "slow" && (l.RPS != 1000 || l.BytesIn != 1<<20 || l.BytesOut != 2<<20) {
			t.Errorf("after setting the request rate alone: limits %+v, want rps 1000 and the bandwidth kept", l)
		}
	}
	if err := admin.send(ctx, http.MethodPut, "/_vault/admin/tenants/slow/rate", []byte(`{"bytes_in":0,"bytes_out":0}`), nil); err != nil {
		t.Fatal(err)
	}
	if up, down := transfer("slow"); up > 2*time.Second*slack || down > time.Second*slack {
		t.Errorf("bandwidth lifted: up %v, down %v; want unshaped", up, down)
	}
}
