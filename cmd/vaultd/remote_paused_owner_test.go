package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
)

// instOf returns the writer instance of a remote drive object key
// ("P/log/<seq>-<inst>", "P/obj/<pg>/<name>-<seq>-<inst>"), or "".
func instOf(k string) string {
	if !strings.Contains(k, "/log/") && !strings.Contains(k, "/obj/") {
		return ""
	}
	i := strings.LastIndexByte(k, '-')
	if i < 0 {
		return ""
	}
	return k[i+1:]
}

// TestProbePausedOwnerResumed: the owner n1 (also the first Raft leader) is
// SIGSTOPped with PUTs in flight; once gossip shows it dead, n2 is
// restarted and adopts the remote drives; n2 takes writes; then n1 is
// SIGCONTed. n1 must write nothing more to the bucket (its instance's
// objects must not grow), and every acknowledged write must read back.
func TestProbePausedOwnerResumed(t *testing.T) {
	if os.Getenv("VAULT_PROBE") != "1" {
		t.Skip("on demand (VAULT_PROBE=1, about 2 minutes, MinIO): finding F3 of session 10, a paused owner resumed after adoption wrote to the bucket (fixed in session 11: the owner fence's monotonic permit)")
	}
	rc := startRemoteCluster(t)
	ctx := t.Context()
	n1, n2 := rc.nodes[0], rc.nodes[1]
	if os.Getenv("VAULT_PROBE_FOLLOWER") == "1" {
		// The owner as a Raft follower: restarted, n1 keeps its remote
		// drives (registration never moves them) and another node leads.
		p14makeFollower(t, rc)
	}
	c1 := rc.s3Client(0, rc.rootTenant)
	if st, err := rc.status(ctx, 0); err == nil {
		t.Logf("raft leader: %v", st.Leader)
	}
	for i := range 6 {
		k := fmt.Sprintf("base%02d", i)
		if err := p13put(ctx, c1, k, p13body(k, 1, 3000+i*100000)); err != nil {
			t.Fatal(err)
		}
	}
	b0 := rc.bucketObjects(t)
	oldInst := map[string]bool{}
	for k := range b0 {
		if in := instOf(k); in != "" {
			oldInst[in] = true
		}
	}
	t.Logf("bucket before: %d objects, writer instances %v", len(b0), oldInst)

	// In-flight PUTs through n1, then SIGSTOP.
	type res struct {
		key  string
		gen  int
		size int
		err  error
		at   time.Time
	}
	var mu sync.Mutex
	var results []res
	var wg sync.WaitGroup
	pctx, pcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer pcancel()
	loaders := 6
	if os.Getenv("VAULT_PROBE_NOLOAD") != "" {
		loaders = 0
	}
	for w := range loaders {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				k := fmt.Sprintf("z%d", w)
				size := []int{2000, 200 << 10, 2 << 20}[i%3]
				err := p13put(pctx, c1, k, p13body(k, 100+i, size))
				mu.Lock()
				results = append(results, res{k, 100 + i, size, err, time.Now()})
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	stopAt := time.Now()
	fmt.Fprintf(&n1.stderr, "=== %s: SIGSTOP\n", time.Now().Format(time.StampMilli))
	n1.proc.cmd.Process.Signal(syscall.SIGSTOP)
	defer n1.proc.cmd.Process.Signal(syscall.SIGCONT)
	if _, err := waitStatus(t, rc.e2eCluster, 2, 90*time.Second, func(st cluster.Status) string {
		for _, mb := range st.Members {
			if mb.Name == "n1" && mb.State == "dead" {
				return ""
			}
		}
		return "n1 not dead yet in n3's gossip"
	}); err != nil {
		t.Fatal(err)
	}
	bStop := rc.bucketObjects(t)
	// n2 restarted: it adopts the drives.
	n2.kill(t)
	n2.start(t)
	n2.waitHealthy(t, 180*time.Second)
	if !strings.Contains(n2.stderr.String(), "remote drive adopted") {
		t.Logf("n2's log does not say it adopted the drives")
	}
	c2 := rc.s3Client(1, rc.rootTenant)
	for i := range 6 {
		k := fmt.Sprintf("adopt%02d", i)
		if _, err := retry(ctx, 60*time.Second, func(ctx context.Context) error { return p13put(ctx, c2, k, p13body(k, 2, 3000+i*100000)) }); err != nil {
			t.Errorf("PUT %s via the adopter n2: %v", k, err)
		}
	}
	bAdopt := rc.bucketObjects(t)
	newInst := map[string]bool{}
	for k := range bAdopt {
		if in := instOf(k); in != "" && !oldInst[in] {
			newInst[in] = true
		}
	}
	t.Logf("after adoption: %d objects; new writer instances %v", len(bAdopt), newInst)
	for k := range bAdopt {
		if _, ok := bStop[k]; !ok && oldInst[instOf(k)] {
			t.Errorf("HIGH: object %s of the stopped owner's instance appeared while it was stopped", k)
		}
	}

	// Resume the zombie.
	fmt.Fprintf(&n1.stderr, "=== %s: SIGCONT (stopped %v)\n", time.Now().Format(time.StampMilli), time.Since(stopAt))
	n1.proc.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(20 * time.Second)
	pcancel()
	wg.Wait()
	bAfter := rc.bucketObjects(t)
	zombie := 0
	for k, n := range bAfter {
		if _, ok := bAdopt[k]; !ok && oldInst[instOf(k)] {
			zombie++
			if zombie <= 10 {
				t.Errorf("HIGH (split brain): object %s (%d bytes) written by the deposed owner's instance after the adoption", k, n)
			}
		}
	}
	for k := range bAdopt {
		if _, ok := bAfter[k]; !ok {
			t.Logf("object %s removed after SIGCONT", k)
		}
	}
	// The new owner writes on; then the log keys of each drive, in order.
	for i := range 6 {
		k := fmt.Sprintf("post%02d", i)
		if err := p13put(ctx, c2, k, p13body(k, 3, 3000+i*50000)); err != nil {
			t.Errorf("PUT %s via n2 after SIGCONT: %v", k, err)
		}
	}
	bPost := rc.bucketObjects(t)
	var logs []string
	for k := range bPost {
		if strings.Contains(k, "/log/") || strings.Contains(k, "/snap/") {
			logs = append(logs, k)
		}
	}
	slices.Sort(logs)
	seqs := map[string]int{}
	for _, k := range logs {
		if j := strings.LastIndexByte(k, '-'); j > 0 {
			seqs[k[:j]]++
		}
	}
	for _, k := range logs[max(0, len(logs)-60):] {
		mark := ""
		if oldInst[instOf(k)] {
			mark = " (old owner)"
		}
		if j := strings.LastIndexByte(k, '-'); j > 0 && seqs[k[:j]] > 1 {
			mark += " DUPLICATE SEQ"
		}
		t.Logf("bucket log: %s %d%s", k, bPost[k], mark)
	}
	for _, line := range strings.Split(n1.stderr.String(), "\n") {
		if strings.Contains(line, "remote") && (strings.Contains(line, "WARN") || strings.Contains(line, "ERROR")) {
			t.Logf("n1: %s", line[:min(len(line), 300)])
		}
	}
	// Re-open: n1 stopped for good, n2 restarted (replays every log object).
	n1.kill(t)
	n2.kill(t)
	n2.start(t)
	n2.waitHealthy(t, 180*time.Second)
	c2 = rc.s3Client(1, rc.rootTenant)
	for i := range 6 {
		k := fmt.Sprintf("post%02d", i)
		if _, err := retry(ctx, 60*time.Second, func(ctx context.Context) error {
			got, err := p13get(ctx, c2, k)
			if err == nil && string(got) != string(p13body(k, 3, 3000+i*50000)) {
				return fmt.Errorf("wrong bytes %d", len(got))
			}
			return err
		}); err != nil {
			t.Errorf("HIGH: %s via re-opened n2: %v", k, err)
		}
	}
	// Acknowledged writes read back (last acked per key).
	last, failed := map[string]res{}, map[string]res{}
	mu.Lock()
	for _, r := range results {
		if r.err == nil {
			last[r.key] = r
		} else {
			failed[r.key] = r // a loader stops at its first failure
			t.Logf("PUT %s gen %d at %v: status %d %v", r.key, r.gen, r.at.Sub(stopAt).Round(time.Millisecond), httpStatus(r.err), r.err)
		}
	}
	mu.Unlock()
	for _, i := range []int{1, 2} {
		cl := rc.s3Client(i, rc.rootTenant)
		for k, r := range last {
			got, err := p13get(ctx, cl, k)
			if err != nil {
				t.Errorf("via %s: %s: %v", rc.nodes[i].name, k, err)
				shown := 0
				for _, line := range strings.Split(rc.nodes[i].stderr.String(), "\n") {
					if strings.Contains(line, "request failed") && strings.Contains(line, "quorum") && shown < 2 {
						t.Logf("%s: %s", rc.nodes[i].name, line[:min(len(line), 1500)])
						shown++
					}
				}
				continue
			}
			if string(got) != string(p13body(k, r.gen, r.size)) {
				// The write answered with an error after it may have landed.
				if f, ok := failed[k]; ok && string(got) == string(p13body(k, f.gen, f.size)) {
					t.Logf("via %s: %s reads gen %d, written though its PUT failed (%v)", rc.nodes[i].name, k, f.gen, f.err)
					continue
				}
				t.Errorf("HIGH: via %s: %s reads %d bytes, neither the last acknowledged gen %d nor the failed one after it", rc.nodes[i].name, k, len(got), r.gen)
			}
		}
		for j := range 6 {
			k := fmt.Sprintf("adopt%02d", j)
			if got, err := p13get(ctx, cl, k); err != nil || string(got) != string(p13body(k, 2, 3000+j*100000)) {
				t.Errorf("HIGH: %s via %s: %d bytes, %v", k, rc.nodes[i].name, len(got), err)
			}
			k = fmt.Sprintf("base%02d", j)
			if got, err := p13get(ctx, cl, k); err != nil || string(got) != string(p13body(k, 1, 3000+j*100000)) {
				t.Errorf("HIGH: %s via %s: %d bytes, %v", k, rc.nodes[i].name, len(got), err)
			}
		}
	}
	t.Logf("n1 alive after SIGCONT: %v; n1 log tail mentions: fence %v", n1.running(), strings.Count(n1.stderr.String(), "not the owner")+strings.Count(n1.stderr.String(), "NotOwner"))
}
