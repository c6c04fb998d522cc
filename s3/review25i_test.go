package s3_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/internal/testnode"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// startConfigServerEngineTweak is startConfigServer with a hook on the
// engine's config.
func startConfigServerEngineTweak(t *testing.T, etweak func(*engine.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := cluster.Open(ctx, cluster.Config{Dir: t.TempDir(), NodeID: "n1", RaftAddr: "127.0.0.1:7", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, name := range []string{"root", "alice", "bob"} {
		if _, _, err := st.CreateTenant(ctx, name); err != nil && !errors.Is(err, tenant.ErrTenantExists) {
			t.Fatal(err)
		}
	}
	n := testnode.StartWith(t, func(c *engine.Config) { c.Containers = st; etweak(c) }, func(c *s3.Config) { c.Configs = st })
	return &env{endpoint: n.Endpoint, eng: n.Engine, dirs: n.Dirs}
}

// Review 25i: 1454ba8 (a retry applies the lock to a version that has none).

// holdFailTopo hands out drivers that fail every record write putting a
// legal hold on while armed.
type holdFailTopo struct {
	engine.Topology
	armed *atomic.Bool
}

func (h holdFailTopo) Drive(id placement.DriveID) (driver.Driver, error) {
	d, err := h.Topology.Drive(id)
	if err != nil {
		return d, err
	}
	return holdFailDriver{d, h.armed}, nil
}

type holdFailDriver struct {
	driver.Driver
	armed *atomic.Bool
}

func (d holdFailDriver) PutRecord(ctx context.Context, rec driver.Record) (driver.Record, bool, error) {
	if d.armed.Load() && bytes.Contains(rec.Data, []byte("\x00legal-hold")) {
		return driver.Record{}, false, errors.New("spy: legal hold write failed")
	}
	return d.Driver.PutRecord(ctx, rec)
}

// TestReview25iRetryAfterPartialLockSkipsHold (I1): completedRetention
// applies the upload's lock in two steps (SetRetention, then
// SetLegalHold). A first Complete that fails between them answers an
// error with the version carrying the retention but not the hold; the
// client's retry gets Retried=true and a version that carries a
// retention mode, so S3 skips completedRetention: the legal hold the
// upload asked for is never set, and the client was told success.
func TestReview25iRetryAfterPartialLockSkipsHold(t *testing.T) {
	armed := &atomic.Bool{}
	e2 := startConfigServerEngineTweak(t, func(c *engine.Config) { c.Topology = holdFailTopo{c.Topology, armed} })
	ctx := t.Context()
	c := e2.client("ALICEKEY", "alicesecret")
	b, k := aws.String("i1locked"), aws.String("big")
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	up, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: b, Key: k,
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: &until, ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: b, Key: k, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("locked parts")})
	if err != nil {
		t.Fatal(err)
	}
	in := &awss3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag}}}}
	armed.Store(true)
	_, err = c.CompleteMultipartUpload(ctx, in)
	armed.Store(false)
	if err == nil {
		t.Fatal("first Complete succeeded with the legal hold write failing")
	}
	t.Logf("first Complete: %v", err)
	done, err := c.CompleteMultipartUpload(ctx, in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	r, rerr := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: b, Key: k, VersionId: done.VersionId})
	lh, lerr := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: b, Key: k, VersionId: done.VersionId})
	if rerr != nil || r.Retention == nil || r.Retention.Mode != types.ObjectLockRetentionModeGovernance {
		t.Fatalf("after the retry: retention %+v, %v; want the upload's Governance", r, rerr)
	}
	if lerr == nil && lh.LegalHold != nil {
		t.Logf("after the retry: retention %s until %v; legal hold %s", r.Retention.Mode, aws.ToTime(r.Retention.RetainUntilDate), lh.LegalHold.Status)
	}
	if lerr != nil || lh.LegalHold == nil || lh.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
		t.Fatalf("the retry answered success but the version has no legal hold (asked for ON)")
	}
}
