package chaos

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// staleGrace is how long after a node is reconnected or resumed its
// metadata reads may still be stale.
const staleGrace = 5 * time.Second

// TestPartitions is issue 16.4: three nodes, each in its own network
// namespace on a bridge, under the crash suite's workload (six
// clients, without multipart uploads, 4 s per request). Each iteration injects one fault, in turn: a random
// node cut off from the others both ways; the leader cut off; a one-way
// cut (a node's packets to one peer are dropped, the peer's still
// arrive); flapping (a random node cut off and reconnected five times,
// a few hundred milliseconds each); the leader paused with SIGSTOP and
// resumed. The clients reach every node throughout. After healing, the
// cluster must re-form, every key read back through every node, listings
// agree with reads, and each iteration's history be linearizable per key
// (objects, buckets, tenants).
//
// 10 iterations by default, 150 with VAULT_CHAOS_LONG=1 (make chaos),
// VAULT_CHAOS_ITERS to choose. It needs root for the namespaces and skips
// without.
func TestPartitions(t *testing.T) {
	iters := iterations(t, 10, 150)
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
	for it := range iters {
		h := newHistory()
		h.staleSince = func(name string, call, ret time.Time) (time.Time, bool) {
			i := slices.IndexFunc(c.nodes, func(n *node) bool { return n.name == name })
			return nn.faults.since(i, call, ret, staleGrace)
		}
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
		switch it % 5 {
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
		if err := c.waitFormed(t.Context(), 3, 2*time.Minute); err != nil {
			t.Fatalf("iteration %d (%s): after healing: %v", it, fault, err)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
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
	t.Logf("partition summary (%v): %s", time.Since(began).Round(time.Second), &sum)
}
