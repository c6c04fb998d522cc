package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// p14StartRemote is startRemoteCluster with extra flags on every node and
// without the hybrid container.
func p14StartRemote(t *testing.T, extra ...string) *remoteCluster {
	t.Helper()
	return startRemoteNodes(t, extra...)
}

// p14state is what a key may read as: gen 0 = absent.
type p14key struct {
	key   string
	size  int
	mu    sync.Mutex
	ok    map[int]bool // acceptable gens (0 = absent)
	acked int          // gen of the last acknowledged op (0 = delete), -1 none
	gen   int
}

func p14body(k string, gen, size int) []byte { return p13body(k, gen, size+gen%7) }

const p14bucket = "flip"

func p14get(ctx context.Context, cl *awss3.Client, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(p14bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func p14notFound(err error) bool {
	var nk *types.NoSuchKey
	return errors.As(err, &nk) || httpStatus(err) == http.StatusNotFound
}

// p14classify returns the gen the bytes are (0 absent), or -1.
func (k *p14key) classify(got []byte, err error) int {
	if err != nil {
		if p14notFound(err) {
			return 0
		}
		return -1
	}
	for g := range k.ok {
		if g > 0 && bytes.Equal(got, p14body(k.key, g, k.size)) {
			return g
		}
	}
	return -2
}

func TestProbe14RelayoutCLI(t *testing.T) {
	if os.Getenv("VAULT_PROBE14") != "1" {
		t.Skip("on demand: VAULT_PROBE14=1 (MinIO, about 4 minutes)")
	}
	began := time.Now()
	rc := p14StartRemote(t, "--relayout-interval", "200ms")
	ctx := t.Context()
	if _, err := rc.s3Client(0, rc.rootTenant).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(p14bucket)}); err != nil {
		t.Fatal(err)
	}
	setPolicy := func(node int, pol string) error {
		env := map[string]string{"VAULT_ENDPOINT": "http://" + rc.nodes[node].s3, "VAULT_ROOT_ACCESS_KEY": rc.root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": rc.root.SecretAccessKey}
		var out bytes.Buffer
		err := run(ctx, []string{"container", "set-policy", p14bucket, pol}, func(k string) string { return env[k] }, &out, &out)
		if err != nil {
			return fmt.Errorf("%w (%s)", err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	if err := setPolicy(1, "hybrid"); err != nil {
		t.Fatal(err)
	}
	workers := 9
	perWorker := 10
	var keys [][]*p14key
	sizes := []int{0, 7, 150, 4 << 10, 96 << 10, 1<<20 + 3, 3<<20 + 11, 5<<20 + 1}
	for w := range workers {
		var ks []*p14key
		for i := range perWorker {
			size := sizes[(w*perWorker+i)%len(sizes)]
			ks = append(ks, &p14key{key: fmt.Sprintf("w%d/k%02d-%d", w, i, size), size: size, ok: map[int]bool{0: true}, acked: -1})
		}
		keys = append(keys, ks)
	}
	// Seed half the keys before the flips.
	for w := range workers {
		cl := rc.s3Client(w%3, rc.rootTenant)
		for i, k := range keys[w] {
			if i%2 == 0 {
				k.gen = 1
				if err := p14put2(ctx, cl, k.key, p14body(k.key, 1, k.size)); err != nil {
					t.Fatalf("seed %s: %v", k.key, err)
				}
				k.ok = map[int]bool{1: true}
				k.acked = 1
			}
		}
	}
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(s string) {
		mu.Lock()
		counts[s]++
		mu.Unlock()
	}
	var findings []string
	finding := func(f string, a ...any) {
		s := fmt.Sprintf(f, a...)
		mu.Lock()
		findings = append(findings, s)
		mu.Unlock()
		t.Error(s)
	}
	lctx, lcancel := context.WithTimeout(ctx, 100*time.Second)
	defer lcancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), 14))
			for op := 0; op < 70 && lctx.Err() == nil; op++ {
				node := r.IntN(3)
				cl := rc.s3Client(node, rc.rootTenant)
				k := keys[w][r.IntN(perWorker)]
				switch x := r.IntN(10); {
				case x < 4: // PUT
					k.gen++
					g := k.gen
					err := p14put2(lctx, cl, k.key, p14body(k.key, g, k.size))
					if err != nil {
						count(fmt.Sprintf("PUT err %d %s", httpStatus(err), errorCode(err)))
						k.ok[g] = true
					} else {
						count("PUT ok")
						k.ok = map[int]bool{g: true}
						k.acked = g
					}
				case x < 6: // DELETE
					dctx, cancel := context.WithTimeout(lctx, 30*time.Second)
					_, err := cl.DeleteObject(dctx, &awss3.DeleteObjectInput{Bucket: aws.String(p14bucket), Key: aws.String(k.key)})
					cancel()
					if err != nil {
						count(fmt.Sprintf("DEL err %d %s", httpStatus(err), errorCode(err)))
						k.ok[0] = true
					} else {
						count("DEL ok")
						k.ok = map[int]bool{0: true}
						k.acked = 0
					}
				default: // GET: nobody else writes this key
					got, err := p14get(lctx, cl, k.key)
					if lctx.Err() != nil {
						return
					}
					g := k.classify(got, err)
					switch {
					case g == -1:
						count(fmt.Sprintf("GET err %d %s", httpStatus(err), errorCode(err)))
						if len(k.ok) == 1 {
							finding("MEDIUM: GET %s via n%d (quiet key, state %v) failed: %v", k.key, node+1, k.ok, err)
						}
					case g == -2:
						finding("HIGH: GET %s via n%d returned %d bytes matching no acceptable gen %v", k.key, node+1, len(got), k.ok)
					case !k.ok[g]:
						finding("HIGH: GET %s via n%d reads gen %d (0=absent), acceptable %v, acked %d", k.key, node+1, g, k.ok, k.acked)
					default:
						count("GET ok")
					}
				}
			}
		})
	}
	// Flip the policy through the CLI of rotating nodes.
	flips := 0
	fmin, fmax, nflips := 800, 3300, 14
	if v := os.Getenv("P14_FLIP_MS"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d", &fmin, &fmax, &nflips)
	}
	for pol := "local"; lctx.Err() == nil && flips < nflips; flips++ {
		time.Sleep(time.Duration(fmin+mrand.IntN(fmax-fmin+1)) * time.Millisecond)
		node := flips % 3
		if err := setPolicy(node, pol); err != nil {
			count("set-policy err")
			t.Logf("set-policy %s via n%d: %v", pol, node+1, err)
		} else {
			count("set-policy " + pol)
		}
		if pol == "local" {
			pol = "hybrid"
		} else {
			pol = "local"
		}
	}
	wg.Wait()
	lcancel()
	t.Logf("load done after %v: %v", time.Since(began).Round(time.Second), counts)

	verify := func(phase string) {
		for i := range rc.nodes {
			cl := rc.s3Client(i, rc.rootTenant)
			want := map[string]bool{}
			maybe := map[string]bool{}
			for w := range workers {
				for _, k := range keys[w] {
					got, err := p14get(ctx, cl, k.key)
					g := k.classify(got, err)
					switch {
					case g == -1:
						finding("HIGH?: %s: GET %s via n%d failed (state %v): %v", phase, k.key, i+1, k.ok, err)
					case g == -2:
						finding("HIGH: %s: GET %s via n%d: %d bytes, no acceptable gen %v", phase, k.key, i+1, len(got), k.ok)
					case !k.ok[g]:
						finding("HIGH: %s: GET %s via n%d reads gen %d (0=absent), acceptable %v acked %d", phase, k.key, i+1, g, k.ok, k.acked)
					}
					if g > 0 {
						want[k.key] = true
					}
					if len(k.ok) > 1 {
						maybe[k.key] = true
					}
				}
			}
			l, err := listAll(ctx, cl, p14bucket)
			if err != nil {
				finding("MEDIUM: %s: list via n%d: %v", phase, i+1, err)
				continue
			}
			listed := map[string]bool{}
			for _, e := range l {
				listed[e.Key] = true
				if !want[e.Key] {
					finding("HIGH?: %s: listing via n%d shows %s which GET says absent (uncertain %v)", phase, i+1, e.Key, maybe[e.Key])
				}
			}
			for k := range want {
				if !listed[k] {
					finding("HIGH?: %s: listing via n%d misses %s which GET reads (uncertain %v)", phase, i+1, k, maybe[k])
				}
			}
			t.Logf("%s via n%d: %d keys present, listing %d", phase, i+1, len(want), len(l))
		}
	}
	verify("right after load")
	// Wait for the re-layout to finish.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var cs []s3.ContainerStatus
		err := rc.admin(0).do(ctx, http.MethodGet, "/_vault/admin/containers", &cs)
		i := slices.IndexFunc(cs, func(c s3.ContainerStatus) bool { return c.Name == p14bucket })
		if err == nil && i >= 0 && cs[i].Relayout != nil && cs[i].Relayout.Done {
			t.Logf("re-layout done: %+v (policy %s)", *cs[i].Relayout, cs[i].Policy)
			break
		}
		if time.Now().After(deadline) {
			finding("MEDIUM: re-layout not done 3 min after the last flip: %v %+v", err, cs)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	verify("after re-layout")
	// Quiet flips: every present key must be moved each time.
	present := 0
	for w := range workers {
		for _, k := range keys[w] {
			if !k.ok[0] || len(k.ok) > 1 {
				present++
			}
		}
	}
	for _, pol := range []string{"local", "hybrid"} {
		var cur string
		var cs0 []s3.ContainerStatus
		if err := rc.admin(0).do(ctx, http.MethodGet, "/_vault/admin/containers", &cs0); err == nil {
			if i := slices.IndexFunc(cs0, func(c s3.ContainerStatus) bool { return c.Name == p14bucket }); i >= 0 {
				cur = cs0[i].Policy
			}
		}
		if cur == pol {
			continue
		}
		if err := setPolicy(2, pol); err != nil {
			t.Fatalf("quiet set-policy %s: %v", pol, err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var cs []s3.ContainerStatus
			err := rc.admin(0).do(ctx, http.MethodGet, "/_vault/admin/containers", &cs)
			i := slices.IndexFunc(cs, func(c s3.ContainerStatus) bool { return c.Name == p14bucket })
			if err == nil && i >= 0 && cs[i].Relayout != nil && cs[i].Relayout.Done && cs[i].Relayout.Layout == pol {
				r := cs[i].Relayout
				t.Logf("quiet re-layout to %s: %+v (about %d keys present)", pol, *r, present)
				if r.Moved < present-2 {
					finding("LOW: quiet re-layout to %s reports %d artifacts moved, about %d present", pol, r.Moved, present)
				}
				break
			}
			if time.Now().After(deadline) {
				finding("MEDIUM: quiet re-layout to %s not done in 2 min", pol)
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		verify("after quiet re-layout to " + pol)
	}
	// Restart the leader: its walk state and reads survive.
	st, _ := rc.status(ctx, 0)
	for i, n := range rc.nodes {
		if n.name == st.Leader {
			n.kill(t)
			n.start(t)
			n.waitHealthy(t, 180*time.Second)
			_ = i
		}
	}
	time.Sleep(3 * time.Second)
	verify("after leader restart")
	t.Logf("took %v; %d findings", time.Since(began).Round(time.Second), len(findings))
}

func p14put2(ctx context.Context, cl *awss3.Client, key string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(p14bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	return err
}
