package chaos

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver/peer"
)

// TestPartitions is issue 16.4: three nodes, each in its own network
// namespace on a bridge, under the crash suite's workload (six clients,
// without multipart uploads, 4 s per request). Each iteration injects
// one fault, in turn: a random
// node cut off from the others both ways; the leader cut off; a one-way
// cut (a node's packets to one peer are dropped, the peer's still
// arrive); flapping (a random node cut off and reconnected five times,
// a few hundred milliseconds each); the leader paused with SIGSTOP and
// resumed. The clients reach every node throughout. After healing, the
// cluster must re-form, every key read back through every node, listings
// agree with reads, and each iteration's history be linearizable per key
// (objects, buckets, tenants), with the allowance for metadata answers
// the suites found necessary (staleMetadata): a node cut off from the
// others or paused, and for staleGrace after it is reconnected or
// resumed, answers metadata reads (HeadBucket, the tenant listing, and
// the "already exists" or "does not exist" answers of create and delete)
// from its own state as of when it was cut off; such answers are checked
// as if called at that moment (TestStaleMetadataOnCutOffNode shows it
// alone). Object reads and writes get no allowance.
//
// 5 iterations by default (one of each fault kind, about a minute: what
// CI runs in make test), 150 with VAULT_CHAOS_LONG=1 (make chaos),
// VAULT_CHAOS_ITERS to choose. It needs root for the namespaces and skips
// with a message without.
//
// It found one anomaly in the engine (before the fix: 1 in 120
// iterations, in iteration 13 of a run of 80, a flapping link: a GET
// answered "absent" after an acknowledged PUT had been read back): object
// writes were not linearizable under partitions. Two causes, each with its
// engine test: a read served a version held by fewer than a write quorum
// of drives (the remains of a write in flight) that the failing write
// then rolled back (engine.TestReadServesOnlyWhatStays); and a write
// counted drives that refused it as stale towards its quorum, after which
// the newer version there was rolled back, bringing back the version
// before both (engine.TestStaleRefusalStays). A read now writes the
// version it serves back to a write quorum first, and a new version's
// records are never rolled back. A third (1 in 5 iterations on the merged
// tree, the leader cut off: a Copy acknowledged, then read as absent):
// Heal deleted a record newer than the version it repaired as the remains
// of a failed write while that write was still in flight, and it was then
// acknowledged (engine.TestHealKeepsWriteInFlight); Heal now leaves young
// ones alone. A fourth (seed 729666808, "isolate n3"; verify, after the
// cut: GET through n3 answered NoSuchKey, and the listing through n3 right
// after showed the key, 1 MiB): a PUT through n3 as the cut began
// committed its shards, but its record writes to n1 and n2 were held by
// the cut; the PUT failed (the client timed out: outcome unknown), reads
// answered NoSuchKey from the tombstone on four drives, and TCP delivered
// the held record writes once the cut healed, between verify's GETs and
// its listing: the failed version appeared. Linearizable for the key
// (porcupine allows an unknown write to take effect late) but not the
// quiescent state verify expects. A peer now refuses a call that arrives
// after its sender gave it up (driver/peer late.go;
// engine.TestLateRecordWriteStaysFailed), and verify waits until every
// call the cut held has landed or expired.
func TestPartitions(t *testing.T) {
	// In make test: 5 iterations (about a minute). It was on demand until
	// a long run was clean, since each anomaly it found came after a run
	// of clean iterations; session 8's 150 iterations (270 faults, 37,748
	// operations) found none. It needs root for the namespaces.
	if testing.Short() && os.Getenv("VAULT_CHAOS_PARTITIONS") != "1" {
		t.Skip("partition suite: not with -short (VAULT_CHAOS_PARTITIONS=1 to run it)")
	}
	iters := iterations(t, 5, 150)
	rng := mrand.New(mrand.NewPCG(seed(t), 4))
	nn := newNetns(t, 3)
	nn.faults = newFaultWindows()
	c := newCluster(t, 3, nn, "--scan-interval", "1s", "--heal-interval", "1s")
	c.start(t)
	var clients []*awss3.Client
	for i := range c.nodes {
		clients = append(clients, c.s3Client(i, 4*time.Second))
	}
	const bucket = "chaos-part"
	sources := setupData(t, clients[0], bucket)

	var sum summary
	began := time.Now()
	defer func() { t.Logf("partition summary (%v): %s", time.Since(began).Round(time.Second), &sum) }()
	for it := range iters {
		h := newHistory()
		h.staleSince = staleMetadata(c, nn.faults)
		w := newWorkload(c, h, bucket, it, sources, nil)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for k := range 6 {
			wrng := mrand.New(mrand.NewPCG(rng.Uint64(), uint64(k)))
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := w.node(wrng)
					if i < 0 {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					w.one(wrng, i, clients[i])
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		hold := func() time.Duration { return time.Duration(1500+rng.IntN(3000)) * time.Millisecond }
		leader := c.leader(t.Context())
		if leader < 0 {
			leader = rng.IntN(3)
		}
		var fault string
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("iteration %d: %s: %v", it, fault, err)
			}
		}
		kind := it % 5
		if v := os.Getenv("VAULT_CHAOS_FAULT"); v != "" { // one kind only, to chase a finding
			kind = int(v[0]-'0') % 5
		}
		switch kind {
		case 0:
			i := rng.IntN(3)
			fault = fmt.Sprintf("isolate %s", c.nodes[i].name)
			must(nn.isolate(i))
			time.Sleep(hold())
			sum.faults++
		case 1:
			fault = fmt.Sprintf("isolate leader %s", c.nodes[leader].name)
			must(nn.isolate(leader))
			time.Sleep(hold())
			sum.faults++
		case 2:
			a := rng.IntN(3)
			b := (a + 1 + rng.IntN(2)) % 3
			fault = fmt.Sprintf("one-way: %s's packets to %s dropped", c.nodes[a].name, c.nodes[b].name)
			nn.faults.begin(a)
			nn.faults.begin(b)
			must(nn.drop(a, b))
			time.Sleep(hold())
			sum.faults++
		case 3:
			var cuts []string
			for range 5 {
				i := rng.IntN(3)
				cuts = append(cuts, c.nodes[i].name)
				must(nn.isolate(i))
				time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
				must(nn.heal())
				time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
				sum.faults++
			}
			fault = "flapping: " + strings.Join(cuts, ", ")
		case 4:
			fault = fmt.Sprintf("SIGSTOP leader %s", c.nodes[leader].name)
			nn.faults.begin(leader)
			c.nodes[leader].signal(t, syscall.SIGSTOP)
			time.Sleep(hold())
			c.nodes[leader].signal(t, syscall.SIGCONT)
			nn.faults.end(leader)
			sum.faults++
		}
		must(nn.heal())
		healed := time.Now()
		if err := c.waitFormed(t.Context(), 3, 2*time.Minute); err != nil {
			t.Fatalf("iteration %d (%s): after healing: %v", it, fault, err)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		// Quiescence: a node-to-node call held by the cut is delivered
		// once it heals (TCP retransmits it) and applied unless its
		// sender gave it up (peer.DefaultCallTimeout after sending it). A
		// write whose outcome the client never learnt may so still land
		// after the cut; verify reads and lists once none can.
		time.Sleep(time.Until(healed.Add(peer.DefaultCallTimeout + time.Second)))
		w.verify(t, clients)
		w.anomalies = append(w.anomalies, h.check(t, fmt.Sprintf("partition/it%04d", it))...)
		for _, a := range w.anomalies {
			t.Errorf("iteration %d (%s): %s", it, fault, a)
		}
		sum.anomalies = append(sum.anomalies, w.anomalies...)
		sum.iterations++
		sum.add(w)
		if testing.Verbose() {
			t.Logf("iteration %d: %s; %d operations", it, fault, h.len())
		}
	}
}

// TestStaleMetadataOnCutOffNode is the partition suite's metadata finding
// alone: a follower is cut off from the other two nodes; through the
// leader a bucket is deleted and a tenant (with its access key) deleted,
// both acknowledged. The cut-off follower may go on answering from its
// own state: HeadBucket 200 for the deleted bucket, and requests signed
// with the deleted tenant's key accepted. Once the cut heals it must
// answer from the current state within staleGrace.
//
// With VAULT_CHAOS_STRICT_METADATA=1 a stale answer during the cut fails
// the test (the README's "a call that returned is visible on every node"
// taken literally).
func TestStaleMetadataOnCutOffNode(t *testing.T) {
	nn := newNetns(t, 3)
	c := newCluster(t, 3, nn)
	c.start(t)
	ctx := t.Context()
	leader := c.leader(ctx)
	if leader < 0 {
		t.Fatal("no leader")
	}
	f := (leader + 1) % 3
	lcl, fcl := c.s3Client(leader, 10*time.Second), c.s3Client(f, 10*time.Second)
	const bucket = "stale-bucket"
	if _, err := lcl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	var tenant struct {
		AccessKey string `json:"access_key"`
		SecretKey string `json:"secret_key"`
	}
	if _, err := c.admin(ctx, leader, http.MethodPut, "/_vault/admin/tenants/stale-tenant", nil, &tenant); err != nil {
		t.Fatal(err)
	}
	tcl := awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://" + c.nodes[f].s3), Region: "us-east-1", UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(tenant.AccessKey, tenant.SecretKey, ""),
		HTTPClient:  &http.Client{Timeout: 10 * time.Second},
	})
	// Both visible on the follower before the cut.
	if _, err := fcl.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("HeadBucket through %s before the cut: %v", c.nodes[f].name, err)
	}
	if _, err := tcl.ListBuckets(ctx, &awss3.ListBucketsInput{}); err != nil {
		t.Fatalf("the tenant's key through %s before the cut: %v", c.nodes[f].name, err)
	}

	if err := nn.isolate(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nn.heal() })
	// The majority goes on: delete both through the leader (or the one
	// the other two elect, if the leader changed).
	if err := retryFor(ctx, 30*time.Second, func() error {
		_, err := lcl.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String(bucket)})
		if errorCode(err) == "NoSuchBucket" {
			return nil // an earlier try that timed out went through
		}
		return err
	}); err != nil {
		t.Fatalf("DeleteBucket through %s with %s cut off: %v", c.nodes[leader].name, c.nodes[f].name, err)
	}
	if err := retryFor(ctx, 30*time.Second, func() error {
		_, err := c.admin(ctx, leader, http.MethodDelete, "/_vault/admin/tenants/stale-tenant", nil, nil)
		if errorCode(err) == "NoSuchTenant" {
			return nil
		}
		return err
	}); err != nil {
		t.Fatalf("delete the tenant through %s with %s cut off: %v", c.nodes[leader].name, c.nodes[f].name, err)
	}
	answer := func(err error) string {
		switch s := httpStatus(err); {
		case err == nil:
			return "200 (stale)"
		case s != 0:
			return fmt.Sprintf("%d %s", s, errorCode(err))
		}
		return "no answer: " + err.Error()
	}
	_, err := fcl.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)})
	headCut := answer(err)
	_, err = tcl.ListBuckets(ctx, &awss3.ListBucketsInput{})
	keyCut := answer(err)
	t.Logf("cut off, %s answers HeadBucket of the deleted bucket: %s; a request with the deleted tenant's key: %s", c.nodes[f].name, headCut, keyCut)
	if os.Getenv("VAULT_CHAOS_STRICT_METADATA") == "1" {
		if strings.HasPrefix(headCut, "200") {
			t.Errorf("stale read: %s answered HeadBucket 200 for a bucket whose deletion was acknowledged", c.nodes[f].name)
		}
		if strings.HasPrefix(keyCut, "200") {
			t.Errorf("stale read: %s accepted the key of a tenant whose deletion was acknowledged", c.nodes[f].name)
		}
	}

	// Healed: current within staleGrace.
	if err := nn.heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	for {
		_, herr := fcl.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)})
		_, kerr := tcl.ListBuckets(ctx, &awss3.ListBucketsInput{})
		if httpStatus(herr) == http.StatusNotFound && httpStatus(kerr) == http.StatusForbidden {
			t.Logf("%s current %v after the cut healed", c.nodes[f].name, time.Since(healed).Round(time.Millisecond))
			break
		}
		if time.Since(healed) > staleGrace {
			t.Fatalf("%s %v after the cut healed: HeadBucket of the deleted bucket %s, the deleted tenant's key %s; want 404 and 403",
				c.nodes[f].name, staleGrace, answer(herr), answer(kerr))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retryFor calls f until it succeeds or timeout passes.
func retryFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
