package s3_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
)

// TestDeleteObjectsThousandSlow: DeleteObjects of 1,000 keys on slow
// drives deletes in parallel (far faster than one at a time), answers
// with its headers and XML declaration within about a second and keeps
// the connection busy with spaces until the result, which lists every key
// deleted; the event records every key.
func TestDeleteObjectsThousandSlow(t *testing.T) {
	topo := &slowTopology{faulty: map[placement.DriveID]*drivertest.Faulty{}}
	rec := &recorder{}
	n := testnode.StartWith(t, func(c *engine.Config) {
		topo.Topology = c.Topology
		c.Topology = topo
	}, func(c *s3.Config) { c.Observer = rec })
	e := &env{endpoint: n.Endpoint, eng: n.Engine}
	ctx := t.Context()
	c := e.client("ALICEKEY", "alicesecret")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("many")}); err != nil {
		t.Fatal(err)
	}
	const keys = 1000
	var body strings.Builder
	body.WriteString("<Delete>")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, keys)
	for i := range keys {
		key := fmt.Sprintf("k/%04d", i)
		fmt.Fprintf(&body, "<Object><Key>%s</Key></Object>", key)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("many"), Key: aws.String(key), Body: strings.NewReader(key)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	body.WriteString("</Delete>")

	const latency = 40 * time.Millisecond
	topo.setLatency(latency)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint+"/many?delete", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body.String()))
	hash := hex.EncodeToString(sum[:])
	md := md5.Sum([]byte(body.String()))
	req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(md[:]))
	req.Header.Set("x-amz-content-sha256", hash)
	creds := aws.Credentials{AccessKeyID: "ALICEKEY", SecretAccessKey: "alicesecret"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	headers := time.Since(start)
	got, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	topo.setLatency(0)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DeleteObjects: status %d, %v\n%.300s", resp.StatusCode, err, got)
	}
	t.Logf("DeleteObjects of %d keys at %v a drive call: headers after %v, done after %v", keys, latency, headers, took)
	// One at a time, each delete waits at least one drive call.
	if serial := keys * latency; took >= serial {
		t.Errorf("DeleteObjects took %v, no faster than %v one at a time", took, serial)
	}
	if took < 2*time.Second {
		t.Fatalf("DeleteObjects took %v: the drives were not slow enough to test the keep-alive", took)
	}
	if headers > took-time.Second/2 {
		t.Errorf("DeleteObjects: headers after %v of %v; want them at about a second", headers, took)
	}
	rest, ok := bytes.CutPrefix(got, []byte(xml.Header))
	if !ok {
		t.Fatalf("answer does not start with the XML declaration: %.100q", got)
	}
	trimmed := bytes.TrimLeft(rest, " ")
	if len(rest)-len(trimmed) < 1 || !bytes.HasPrefix(trimmed, []byte("<DeleteResult")) {
		t.Errorf("want spaces then <DeleteResult, got %.100q", rest)
	}
	var res struct {
		Deleted []struct{ Key string }
		Error   []struct{ Key, Code string }
	}
	if err := xml.Unmarshal(got, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != keys || len(res.Error) != 0 || res.Deleted[0].Key != "k/0000" || res.Deleted[keys-1].Key != "k/0999" {
		t.Fatalf("DeleteResult: %d deleted, errors %v", len(res.Deleted), res.Error)
	}
	list, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("many")})
	if err != nil || len(list.Contents) != 0 {
		t.Fatalf("after DeleteObjects: %v listed, %v", len(list.Contents), err)
	}
	var ev s3.RequestEvent
	rec.mu.Lock()
	for _, x := range rec.evs {
		if x.Operation == "DeleteObjects" {
			ev = x
		}
	}
	rec.mu.Unlock()
	if len(ev.Keys) != keys || ev.BytesOut != int64(len(got)) || !ev.Mutation() {
		t.Errorf("DeleteObjects event: %d keys, %d bytes out (sent %d), mutation %v", len(ev.Keys), ev.BytesOut, len(got), ev.Mutation())
	}

	// A quiet delete lists nothing deleted, but the event still has its keys.
	for _, k := range []string{"q1", "q2"} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("many"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("many"), Delete: &types.Delete{
		Quiet: aws.Bool(true), Objects: []types.ObjectIdentifier{{Key: aws.String("q1")}, {Key: aws.String("q2")}}}})
	if err != nil || len(out.Deleted) != 0 || len(out.Errors) != 0 {
		t.Fatalf("quiet DeleteObjects: %+v, %v", out, err)
	}
	if ev := rec.last(t); ev.Operation != "DeleteObjects" || strings.Join(ev.Keys, ",") != "q1,q2" {
		t.Errorf("quiet DeleteObjects event: %s keys %q, want q1,q2", ev.Operation, ev.Keys)
	}

	// The aws cli's delete-objects reads the slow, space-led answer as
	// AWS's.
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("no aws cli")
	}
	var del struct{ Objects []map[string]string }
	for i := range 300 {
		key := fmt.Sprintf("cli/%03d", i)
		del.Objects = append(del.Objects, map[string]string{"Key": key})
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("many"), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := json.Marshal(del)
	if err != nil {
		t.Fatal(err)
	}
	topo.setLatency(200 * time.Millisecond)
	cmd := exec.CommandContext(ctx, "aws", "--endpoint-url", e.endpoint, "s3api", "delete-objects", "--bucket", "many",
		"--delete", string(spec), "--query", "length(Deleted)", "--output", "text")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=ALICEKEY", "AWS_SECRET_ACCESS_KEY=alicesecret", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	start = time.Now()
	cliOut, err := cmd.CombinedOutput()
	took = time.Since(start)
	topo.setLatency(0)
	if err != nil {
		t.Fatalf("aws s3api delete-objects: %v\n%s", err, cliOut)
	}
	if strings.TrimSpace(string(cliOut)) != "300" {
		t.Errorf("aws s3api delete-objects: deleted %s, want 300", cliOut)
	}
	ev = rec.last(t)
	if ev.Operation != "DeleteObjects" || len(ev.Keys) != 300 || ev.BytesOut <= int64(len(xml.Header)) {
		t.Errorf("aws s3api delete-objects event: %s, %d keys, %d bytes out", ev.Operation, len(ev.Keys), ev.BytesOut)
	}
	t.Logf("aws s3api delete-objects of 300 keys at 200ms a drive call: %v", took)
	list, err = c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("many")})
	if err != nil || len(list.Contents) != 0 {
		t.Fatalf("after aws s3api delete-objects: %v listed, %v", len(list.Contents), err)
	}
}

// TestDeleteObjectsVersionID deletes with DeleteObjects naming a version
// of an object that is not its current one (found by FuzzXMLBody): buckets
// are unversioned, so any version but "null" is refused for that key, as
// DeleteObject refuses it, and the object stays.
func TestDeleteObjectsVersionID(t *testing.T) {
	e := startServer(t)
	c := createBucket(t, e, "dov")
	for _, k := range []string{"keep", "gone"} {
		if _, err := c.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String("dov"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.DeleteObjects(t.Context(), &awss3.DeleteObjectsInput{Bucket: aws.String("dov"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("keep"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")},
		{Key: aws.String("gone"), VersionId: aws.String("null")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "keep" || aws.ToString(out.Errors[0].Code) != "InvalidArgument" {
		t.Fatalf("errors %+v, want InvalidArgument for keep", out.Errors)
	}
	if len(out.Deleted) != 1 || aws.ToString(out.Deleted[0].Key) != "gone" {
		t.Fatalf("deleted %+v, want gone", out.Deleted)
	}
	if headMeta(t, c, "dov", "keep") == nil {
		t.Fatal("keep was deleted by a request for another version")
	}
	if headMeta(t, c, "dov", "gone") != nil {
		t.Fatal("gone (version null) was not deleted")
	}
}
