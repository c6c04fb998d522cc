package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

// TestConcurrentPutsLastCompletedWins runs a node in-process and races
// two PUTs of one key whose bodies arrive slowly: whichever completes last
// is what a GET returns afterwards, as on AWS, whichever started first.
func TestConcurrentPutsLastCompletedWins(t *testing.T) {
	dir := t.TempDir()
	s3addr, raftaddr := testnet.Addr(t), testnet.Addr(t)
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "rootsecret1"}[k]
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"server", "--data", dir + "/a," + dir + "/b", "--s3", s3addr, "--raft", raftaddr, "--log-level", "error"}, getenv, &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + s3addr + "/_vault/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			t.Fatalf("server not up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl := awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://" + s3addr), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("ROOTKEY", "rootsecret1", ""),
	})
	ps := awss3.NewPresignClient(cl)
	const bucket = "race"
	if _, err := cl.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}

	// slowPut starts a presigned PUT of body and sends its first half;
	// finish sends the rest and returns the status.
	type slowPut struct {
		pw   *io.PipeWriter
		body []byte
		resp chan error
	}
	start := func(key string, body []byte) *slowPut {
		t.Helper()
		req, err := ps.PresignPutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		hreq, err := http.NewRequestWithContext(t.Context(), http.MethodPut, req.URL, pr)
		if err != nil {
			t.Fatal(err)
		}
		hreq.ContentLength = int64(len(body))
		p := &slowPut{pw: pw, body: body, resp: make(chan error, 1)}
		go func() {
			resp, err := http.DefaultClient.Do(hreq)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("PUT: %s %s", resp.Status, b)
				}
			}
			pr.CloseWithError(err)
			p.resp <- err
		}()
		if _, err := pw.Write(body[:len(body)/2]); err != nil {
			t.Fatal(err)
		}
		return p
	}
	finish := func(p *slowPut) {
		t.Helper()
		if _, err := p.pw.Write(p.body[len(p.body)/2:]); err != nil {
			t.Fatal(err)
		}
		p.pw.Close()
		if err := <-p.resp; err != nil {
			t.Fatal(err)
		}
	}
	get := func(key string) []byte {
		t.Helper()
		o, err := cl.GetObject(t.Context(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Body.Close()
		b, err := io.ReadAll(o.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, size := range []int{1000, 600 << 10} {
		a, b := bytes.Repeat([]byte("A"), size), bytes.Repeat([]byte("B"), size)
		t.Run(fmt.Sprintf("%d bytes/slow B then full A", size), func(t *testing.T) {
			key := fmt.Sprintf("k1-%d", size)
			pb := start(key, b)
			time.Sleep(20 * time.Millisecond)
			if _, err := cl.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(a)}); err != nil {
				t.Fatal(err)
			}
			finish(pb)
			if got := get(key); !bytes.Equal(got, b) {
				t.Errorf("GET after B completed last: %q..., want B", got[:1])
			}
		})
		t.Run(fmt.Sprintf("%d bytes/slow B then slow A, A completes last", size), func(t *testing.T) {
			key := fmt.Sprintf("k2-%d", size)
			pb := start(key, b)
			time.Sleep(20 * time.Millisecond)
			pa := start(key, a)
			finish(pb)
			finish(pa)
			if got := get(key); !bytes.Equal(got, a) {
				t.Errorf("GET after A completed last: %q..., want A", got[:1])
			}
		})
	}
}
