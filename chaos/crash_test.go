package chaos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// summary accumulates a suite's figures.
type summary struct {
	iterations, faults, checked int
	ops                         map[string]int64
	acked, failed, unknown      int64
	broken, relaxed             int64
	anomalies                   []string
}

func (s *summary) add(w *workload) {
	if s.ops == nil {
		s.ops = map[string]int64{}
	}
	for k, v := range w.ops {
		s.ops[k] += v.Load()
	}
	s.checked += w.h.len()
	s.acked += w.h.acked.Load()
	s.failed += w.h.failed.Load()
	s.unknown += w.h.unknown.Load()
	s.broken += w.broken.Load()
	s.relaxed += w.h.relaxed.Load()
}

func (s *summary) String() string {
	var kinds []string
	for k, v := range s.ops {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d iterations, %d faults injected, %d operations checked (%d acknowledged, %d failed, %d unknown; %s; %d reads broke off; %d metadata answers checked with the staleness allowance), %d anomalies",
		s.iterations, s.faults, s.checked, s.acked, s.failed, s.unknown, strings.Join(kinds, ", "), s.broken, s.relaxed, len(s.anomalies))
}

// setupData creates the data bucket and the immutable copy sources.
func setupData(t *testing.T, cl *awss3.Client, bucket string) []source {
	t.Helper()
	if _, err := cl.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create %s: %v", bucket, err)
	}
	var sources []source
	for j, size := range []int{3, 70 << 10, 200 << 10, 1<<20 + 5} {
		body := bytes.Repeat([]byte{byte('a' + j)}, size)
		sum := sha256.Sum256(body)
		s := source{key: fmt.Sprintf("src/%d", j), value: hex.EncodeToString(sum[:]), size: int64(size)}
		if _, err := cl.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(size))}); err != nil {
			t.Fatalf("put %s: %v", s.key, err)
		}
		sources = append(sources, s)
	}
	return sources
}

// TestCrashConsistency is issue 16.3: nodes of a three-node cluster (two
// drives each, 4+2) are SIGKILLed at random points while three clients
// PUT, overwrite, complete multipart uploads, DeleteObjects, copy, create
// and delete buckets and tenants; a killed node is restarted at once, and
// in a third of the iterations a second node is killed while the first
// heals what it missed (scan and heal every second). Halfway through, a
// fourth node joins under load and a node is killed while the leader
// migrates data into the new map. Each iteration's history, with reads
// through every node once the node is back, must be linearizable per key;
// reads return only bytes that were written to the key, whole; listings
// agree with reads; bucket and tenant answers are linearizable but for
// one allowance (staleMetadata): a node may report a name as existing for
// up to staleGrace after its deletion was acknowledged through another
// node (a follower that has not applied the deletion yet answers from its
// own state; lookups that miss ask the leader, so creations are seen at
// once), and while a killed node was the leader (until it is back) any
// node may answer from its state as of the kill (a new leader applies
// what the old one committed only once it commits in its own term). At
// the end every iteration's keys are read again
// (after all healing), and must still hold what the iteration left.
//
// 12 iterations by default, 300 with VAULT_CHAOS_LONG=1 (make chaos),
// VAULT_CHAOS_ITERS to choose.
func TestCrashConsistency(t *testing.T) {
	iters := iterations(t, 12, 300)
	rng := mrand.New(mrand.NewPCG(seed(t), 16))
	c := newCluster(t, 3, nil, "--scan-interval", "1s", "--heal-interval", "1s")
	c.start(t)
	clientsFor := func() []*awss3.Client {
		var cls []*awss3.Client
		for i := range c.nodes {
			cls = append(cls, c.s3Client(i, 20*time.Second))
		}
		return cls
	}
	clients := clientsFor()
	const bucket = "chaos-crash"
	sources := setupData(t, clients[0], bucket)
	bigPart := make([]byte, 5<<20)
	for j := range bigPart {
		bigPart[j] = byte(rng.Uint32())
	}

	// While a killed node was the Raft leader, until it is back, every
	// node may answer metadata from its own state (see staleMetadata).
	faults := newFaultWindows()
	var sum summary
	var done []*workload
	migrateAt := iters / 2
	began := time.Now()
	final := 0
	// The figures are printed however the test ends (a node that cannot
	// restart ends it early).
	defer func() {
		t.Logf("crash-consistency summary (%v, %d final reads): %s", time.Since(began).Round(time.Second), final, &sum)
	}()
	for it := range iters {
		h := newHistory()
		h.staleSince = staleMetadata(c, faults)
		w := newWorkload(c, h, bucket, it, sources, bigPart)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for k := range 3 {
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
		var faultNames []string
		var leaderDown bool
		kill := func(i int) {
			what := "kill "
			if c.leader(t.Context()) == i {
				what, leaderDown = "kill leader ", true
				for j := range c.nodes {
					faults.begin(j)
				}
			}
			c.nodes[i].kill(t)
			sum.faults++
			faultNames = append(faultNames, what+c.nodes[i].name)
		}
		restart := func(i int) {
			c.nodes[i].start(t)
			c.nodes[i].waitHealthy(t, 90*time.Second)
			if leaderDown {
				for j := range c.nodes {
					faults.end(j)
				}
				leaderDown = false
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(1200)) * time.Millisecond)
		if it == migrateAt && len(c.nodes) == 3 {
			// Migration: a fourth node joins under load; a node dies
			// while the leader moves data into the new map.
			nd := c.addNode(t, vaultdBinary(t))
			clients = clientsFor()
			nd.start(t)
			nd.waitHealthy(t, 90*time.Second)
			faultNames = append(faultNames, "join n4")
			time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		}
		victim := rng.IntN(len(c.nodes))
		kill(victim)
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond) // writes go on without it
		restart(victim)
		if rng.IntN(3) == 0 {
			// Kill another node while the first heals what it missed.
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			second := (victim + 1 + rng.IntN(len(c.nodes)-1)) % len(c.nodes)
			kill(second)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			restart(second)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if it == migrateAt {
			var aerr error
			for try := range 30 {
				if aerr = w.abortUploads(t.Context(), clients[try%len(clients)]); aerr == nil {
					break
				}
				time.Sleep(2 * time.Second)
			}
			if aerr != nil {
				t.Fatalf("iteration %d: abort the uploads left open: %v", it, aerr)
			}
			if err := c.waitFormed(t.Context(), len(c.nodes), 5*time.Minute); err != nil {
				t.Fatalf("iteration %d: after the migration: %v", it, err)
			}
		}
		w.verify(t, clients)
		label := fmt.Sprintf("crash/it%04d", it)
		w.anomalies = append(w.anomalies, h.check(t, label)...)
		for _, a := range w.anomalies {
			t.Errorf("iteration %d (faults: %s): %s", it, strings.Join(faultNames, ", "), a)
		}
		sum.anomalies = append(sum.anomalies, w.anomalies...)
		sum.iterations++
		sum.add(w)
		done = append(done, w)
		if testing.Verbose() {
			t.Logf("iteration %d: %s; %d operations", it, strings.Join(faultNames, ", "), h.len())
		}
	}
	// Everything healed: every iteration's keys read the same through
	// every node (appended to its history, which must stay linearizable).
	if err := c.waitFormed(t.Context(), len(c.nodes), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	for it, w := range done {
		before := w.h.len()
		w.anomalies = nil
		w.verify(t, clients)
		w.anomalies = append(w.anomalies, w.h.check(t, fmt.Sprintf("crash/final/it%04d", it))...)
		for _, a := range w.anomalies {
			t.Errorf("final read of iteration %d: %s", it, a)
		}
		sum.anomalies = append(sum.anomalies, w.anomalies...)
		final += w.h.len() - before
	}
	sum.checked += final
}
