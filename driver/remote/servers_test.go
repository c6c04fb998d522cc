package remote_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/internal/testnode"
)

// server is an S3 server the tests run the driver against.
type server struct {
	endpoint, ak, sk string
}

// startVaultd runs a second Vaultaire node in-process.
func startVaultd(t *testing.T) server {
	t.Helper()
	n := testnode.Start(t, nil)
	return server{endpoint: n.Endpoint, ak: "ALICEKEY", sk: testnode.Keys["ALICEKEY"][1]}
}

// minioBin returns the MinIO binary built by scripts/minio.sh (or
// VAULT_MINIO_BIN), or "" if there is none.
func minioBin() string {
	if b := os.Getenv("VAULT_MINIO_BIN"); b != "" {
		return b
	}
	home, _ := os.UserCacheDir()
	bins, _ := filepath.Glob(filepath.Join(home, "vaultaire", "minio", "minio-*"))
	if len(bins) == 0 {
		return ""
	}
	slices.Sort(bins)
	return bins[len(bins)-1]
}

// startMinIO runs a real MinIO server on loopback until the test ends, or
// skips the test when no binary was built.
func startMinIO(t *testing.T) server {
	t.Helper()
	bin := minioBin()
	if bin == "" {
		t.Skip("no MinIO binary: run `make minio` (scripts/minio.sh builds it into ~/.cache/vaultaire/minio, several minutes) or set VAULT_MINIO_BIN")
	}
	_, port, _ := net.SplitHostPort(testnet.Addr(t))
	s := server{endpoint: "http://127.0.0.1:" + port, ak: "minioadmin-test", sk: "minioadmin-secret-test"}
	cmd := exec.Command(bin, "server", "--quiet", "--address", "127.0.0.1:"+port, t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.ak, "MINIO_ROOT_PASSWORD="+s.sk, "MINIO_BROWSER=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio at %s not live after 60s: %v", s.endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client returns a plain S3 client of s (endpoint overrides s.endpoint).
func (s server) client(endpoint string) *s3.Client {
	if endpoint == "" {
		endpoint = s.endpoint
	}
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.ak, s.sk, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

var bucketSeq atomic.Int64

// bucket creates a new bucket on s.
func (s server) bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("remote-test-%d-%d", os.Getpid()%10000, bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client("").CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// config returns a driver config for bucket/prefix on s through endpoint
// ("" = directly).
func (s server) config(endpoint, bucket, prefix string) remote.Config {
	if endpoint == "" {
		endpoint = s.endpoint
	}
	c := remote.Config{Endpoint: endpoint, Bucket: bucket, Prefix: prefix, AccessKey: s.ak, SecretKey: s.sk,
		ID: "remote-test", ClusterID: "cluster-test"}
	if os.Getenv("VAULT_REMOTE_TEST_KEK") != "" {
		// Every test's drive encrypted: the package's tests run once so
		// to find the paths encryption missed.
		c.KEK = testKEK(0)
	}
	return c
}

// testKEK returns KEK number i of the tests.
func testKEK(i byte) []byte {
	k := make([]byte, 32)
	for j := range k {
		k[j] = i*31 + byte(j)
	}
	return k
}

// open opens a driver and closes it when the test ends.
func open(t *testing.T, c remote.Config) *remote.Driver {
	t.Helper()
	d, err := remote.Open(t.Context(), c)
	if err != nil {
		t.Fatalf("remote.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var _ driver.Driver = (*remote.Driver)(nil)
