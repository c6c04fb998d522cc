package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/cluster"
)

// Session-14 probes of the remote drive owner fence (commit 0ab078b).
// Run with VAULT_PROBE14=1 (MinIO cached in ~/.cache/vaultaire/minio):
//
//	P14_FOLLOWER=1  make the owner n1 a Raft follower first
//	P14_PAUSE=4.5s  SIGSTOP n1 for this long under load, no adoption
//	P14_ADOPT=1     SIGSTOP n1 until gossip says dead, adopt through n2,
//	                SIGCONT with many PUTs queued on n1, restart n2
//	P14_WRITERS=N   concurrent writers through n1 (default 16)

// p14op is one PUT of a probe writer.
type p14op struct {
	node      int
	key       string
	gen, size int
	err       error
	start     time.Time
	end       time.Time
}

func p14put(ctx context.Context, cl *awss3.Client, key string, body []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("hot"), Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	return err
}

// p14makeFollower restarts n1 until another node leads and the remote
// drives are back on n1 (registration never moves them).
func p14makeFollower(t *testing.T, rc *remoteCluster) {
	n1 := rc.nodes[0]
	for attempt := 0; ; attempt++ {
		n1.kill(t)
		n1.start(t)
		n1.waitHealthy(t, 120*time.Second)
		st, err := waitStatus(t, rc.e2eCluster, 0, 30*time.Second, func(st cluster.Status) string {
			if st.Leader == "" {
				return "no leader"
			}
			return ""
		})
		if err == nil && st.Leader != "n1" {
			if _, err := rc.waitView(t, 60*time.Second, remotesOn("n1")); err != nil {
				t.Fatalf("remote drives not back on n1: %v", err)
			}
			return
		}
		if attempt == 4 {
			t.Fatalf("n1 still leads after %d restarts (%v)", attempt+1, err)
		}
	}
}

// p14verify reads back every acknowledged PUT through node i: a unique
// key ("u-") must read exactly; an overwritten key ("o-") must read its
// last acknowledged gen or a failed gen after it (the documented gap).
func p14verify(t *testing.T, rc *remoteCluster, i int, ops []p14op, phase string) (bad int) {
	t.Helper()
	cl := rc.s3Client(i, rc.rootTenant)
	ctx := t.Context()
	last := map[string]p14op{}
	later := map[string][]p14op{}
	for _, o := range ops {
		if o.err == nil {
			if l, ok := last[o.key]; !ok || o.gen > l.gen {
				last[o.key] = o
			}
		}
	}
	for _, o := range ops {
		if o.err != nil {
			if l, ok := last[o.key]; !ok || o.gen > l.gen {
				later[o.key] = append(later[o.key], o)
			}
		}
	}
	for k, o := range last {
		var got []byte
		_, err := retry(ctx, 20*time.Second, func(ctx context.Context) error {
			var err error
			got, err = p13get(ctx, cl, k)
			return err
		})
		if err != nil {
			bad++
			t.Errorf("HIGH? %s via %s: acked PUT (gen %d, %d B, acked %s) unreadable: %v", phase, rc.nodes[i].name, o.gen, o.size, o.end.Format("15:04:05.000"), err)
			continue
		}
		if bytes.Equal(got, p13body(k, o.gen, o.size)) {
			continue
		}
		ok := false
		for _, f := range later[k] {
			if bytes.Equal(got, p13body(k, f.gen, f.size)) {
				t.Logf("%s via %s: %s reads failed gen %d (after acked gen %d): %v", phase, rc.nodes[i].name, k, f.gen, o.gen, f.err)
				ok = true
			}
		}
		if !ok {
			bad++
			t.Errorf("HIGH: %s via %s: %s reads %d bytes, not acked gen %d (%d B) nor a later failed gen", phase, rc.nodes[i].name, k, len(got), o.gen, o.size)
		}
	}
	t.Logf("%s via %s: %d acked keys checked, %d bad", phase, rc.nodes[i].name, len(last), bad)
	return bad
}

func TestProbe14OwnerPause(t *testing.T) {
	if os.Getenv("VAULT_PROBE14") != "1" {
		t.Skip("on demand: VAULT_PROBE14=1 (MinIO, 2-4 minutes)")
	}
	began := time.Now()
	rc := startRemoteCluster(t)
	ctx := t.Context()
	n1, n2 := rc.nodes[0], rc.nodes[1]
	if os.Getenv("P14_FOLLOWER") == "1" {
		p14makeFollower(t, rc)
	}
	st, _ := rc.status(ctx, 1)
	t.Logf("raft leader: %v (setup %v)", st.Leader, time.Since(began).Round(time.Second))
	writers := 16
	if s := os.Getenv("P14_WRITERS"); s != "" {
		fmt.Sscan(s, &writers)
	}
	b0 := rc.bucketObjects(t)
	oldInst := map[string]bool{}
	for k := range b0 {
		if in := instOf(k); in != "" {
			oldInst[in] = true
		}
	}
	t.Logf("bucket before: %d objects, writer instances %v", len(b0), oldInst)

	var mu sync.Mutex
	var ops []p14op
	var wg sync.WaitGroup
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer lcancel()
	sizes := []int{100, 3000, 64 << 10, 700 << 10, 2<<20 + 17}
	// Writers through node `node`: unique keys plus one overwritten key
	// each; bounded in count; a writer keeps going after a failure.
	startWriters := func(node, n, count int, timeout time.Duration, stop <-chan struct{}) {
		cl := rc.s3Client(node, rc.rootTenant)
		for w := range n {
			wg.Go(func() {
				for i := range count {
					select {
					case <-stop:
						return
					case <-lctx.Done():
						return
					default:
					}
					k := fmt.Sprintf("u-%s-%02d-%03d", rc.nodes[node].name, w, i)
					gen := 1
					if i%4 == 3 {
						k = fmt.Sprintf("o-%s-%02d", rc.nodes[node].name, w)
						gen = 1000 + i
					}
					size := sizes[(w+i)%len(sizes)]
					o := p14op{node: node, key: k, gen: gen, size: size, start: time.Now()}
					o.err = p14put(lctx, cl, k, p13body(k, gen, size), timeout)
					o.end = time.Now()
					mu.Lock()
					ops = append(ops, o)
					mu.Unlock()
					if o.err != nil {
						time.Sleep(200 * time.Millisecond)
					}
				}
			})
		}
	}
	snapshot := func() []p14op {
		mu.Lock()
		defer mu.Unlock()
		return append([]p14op(nil), ops...)
	}
	stop1 := make(chan struct{})
	startWriters(0, writers, 60, 150*time.Second, stop1)
	time.Sleep(2 * time.Second)

	pause := os.Getenv("P14_PAUSE")
	adopt := os.Getenv("P14_ADOPT") == "1"
	stopAt := time.Now()
	fmt.Fprintf(&n1.stderr, "=== %s: SIGSTOP\n", time.Now().Format(time.StampMilli))
	n1.proc.cmd.Process.Signal(syscall.SIGSTOP)
	defer n1.proc.cmd.Process.Signal(syscall.SIGCONT)
	stop2 := make(chan struct{})
	var bAdopt map[string]int64
	switch {
	case pause != "":
		d, err := time.ParseDuration(pause)
		if err != nil {
			t.Fatal(err)
		}
		// Writers through n2 meanwhile (remote parity owned by stopped n1).
		startWriters(1, 4, 15, 60*time.Second, stop2)
		time.Sleep(d - time.Since(stopAt))
	case adopt:
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
		t.Logf("n1 dead in gossip %v after SIGSTOP", time.Since(stopAt).Round(time.Millisecond))
		bStop := rc.bucketObjects(t)
		// Every writer instance in the bucket now is n1's (the only owner so far).
		for k := range bStop {
			if in := instOf(k); in != "" {
				oldInst[in] = true
			}
		}
		t.Logf("bucket at n1's death: %d objects, n1's instances %v", len(bStop), oldInst)
		n2.kill(t)
		n2.start(t)
		n2.waitHealthy(t, 180*time.Second)
		if !strings.Contains(n2.stderr.String(), "remote drive adopted") {
			t.Logf("n2's log does not say it adopted the drives")
		}
		t.Logf("n2 adopted and healthy %v after SIGSTOP", time.Since(stopAt).Round(time.Millisecond))
		c2 := rc.s3Client(1, rc.rootTenant)
		for i := range 4 {
			k := fmt.Sprintf("adopt%02d", i)
			if _, err := retry(ctx, 60*time.Second, func(ctx context.Context) error { return p13put(ctx, c2, k, p13body(k, 2, 3000+i*300000)) }); err != nil {
				t.Errorf("PUT %s via the adopter n2: %v", k, err)
			}
		}
		// Writers through n2 and n3 run on across the SIGCONT.
		startWriters(1, 3, 40, 60*time.Second, stop2)
		startWriters(2, 3, 40, 60*time.Second, stop2)
		time.Sleep(3 * time.Second)
		bAdopt = rc.bucketObjects(t)
		for k := range bAdopt {
			if _, ok := bStop[k]; !ok && oldInst[instOf(k)] {
				t.Errorf("HIGH: object %s of the stopped owner's instance appeared while it was stopped", k)
			}
		}
	default:
		t.Fatal("set P14_PAUSE=<duration> or P14_ADOPT=1")
	}
	t.Logf("SIGCONT after %v; n1 writers (%d) blocked", time.Since(stopAt).Round(time.Millisecond), writers)
	fmt.Fprintf(&n1.stderr, "=== %s: SIGCONT (stopped %v)\n", time.Now().Format(time.StampMilli), time.Since(stopAt))
	n1.proc.cmd.Process.Signal(syscall.SIGCONT)
	contAt := time.Now()
	time.Sleep(15 * time.Second)
	close(stop1)
	close(stop2)
	wg.Wait()
	all := snapshot()
	var acked, failed, ackedAfterCont int
	codes := map[string]int{}
	for _, o := range all {
		if o.err == nil {
			acked++
			if o.node == 0 && o.end.After(contAt) {
				ackedAfterCont++
			}
		} else {
			failed++
			codes[fmt.Sprintf("%s %d %s", rc.nodes[o.node].name, httpStatus(o.err), errorCode(o.err))]++
		}
	}
	t.Logf("PUTs: %d acked (%d via n1 after SIGCONT), %d failed %v", acked, ackedAfterCont, failed, codes)
	if adopt {
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
		t.Logf("zombie objects after SIGCONT: %d", zombie)
	}
	// n1 keeps writing after the pause (not stuck).
	if n1.running() {
		k := "after-cont-n1"
		if _, err := retry(ctx, 60*time.Second, func(ctx context.Context) error {
			return p13put(ctx, rc.s3Client(0, rc.rootTenant), k, p13body(k, 1, 300000))
		}); err != nil {
			t.Errorf("MEDIUM: PUT through resumed n1 still failing after 60 s: %v", err)
		} else {
			all = append(all, p14op{node: 0, key: k, gen: 1, size: 300000})
		}
	}
	for i := range rc.nodes {
		if rc.nodes[i].running() {
			p14verify(t, rc, i, all, "after SIGCONT")
		}
	}
	if adopt {
		// Restart the adopter: it replays the bucket's log.
		n2.kill(t)
		n2.start(t)
		n2.waitHealthy(t, 180*time.Second)
		for i := range rc.nodes {
			if rc.nodes[i].running() {
				p14verify(t, rc, i, all, "after adopter restart")
			}
		}
		bEnd := rc.bucketObjects(t)
		for k := range bEnd {
			if _, ok := bAdopt[k]; !ok && oldInst[instOf(k)] {
				t.Errorf("HIGH: old instance object %s appeared by the end", k)
			}
		}
	}
	for _, line := range strings.Split(n1.stderr.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Logf("n1: %s", line[:min(len(line), 300)])
		}
	}
	t.Logf("took %v", time.Since(began).Round(time.Second))
}
