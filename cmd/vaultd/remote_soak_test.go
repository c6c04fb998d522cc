package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/internal/faultproxy"
	"github.com/vaultaire/vaultaire/internal/testnode"
)

// TestRemoteFaultWorkload runs a mixed PUT/GET/DELETE workload through a
// single vaultd whose two remote drives (two buckets of a real MinIO, or
// of a second Vaultaire when no MinIO was built) sit behind a fault proxy
// answering 30% of requests 503 and resetting 10% of connections, with a
// hung backend and a full outage in every cycle. The container is hybrid
// (data shards local, parity remote). It checks that
//   - every acknowledged write reads back byte-identical once the faults
//     stop (an unacknowledged one may have landed or not);
//   - client errors in the mix get their 4xx (NoSuchKey, BadDigest,
//     InvalidRange, NoSuchBucket) and nothing is ever answered 500;
//   - GETs are served from the local drives: they all succeed, also while
//     the backend hangs or is down (the GETs the backend sees are heal's,
//     logged, usually none);
//   - the backend saw the faults: each cycle's faults last until the
//     remote drives sent it enough requests to draw resets and errors;
//   - each remote drive's circuit breaker opened and closed again
//     (vaultaire_remote_breaker_opens_total, vaultaire_remote_online).
//
// It runs about 20 seconds (one cycle, longer while the faults wait for
// requests; the race detector slows GETs
// beyond the latency bound, so that is not asserted there);
// VAULT_REMOTE_SOAK=5m (make remote-soak) runs it that long, with
// a cycle a minute, against MinIO only.
func TestRemoteFaultWorkload(t *testing.T) {
	dur, cycle := 20*time.Second, 20*time.Second // 5s of faults (or more: faultsEnough), then the hang and the outage
	soak := os.Getenv("VAULT_REMOTE_SOAK")
	if soak != "" {
		d, err := time.ParseDuration(soak)
		if err != nil || d < time.Minute || d > 2*time.Hour {
			t.Fatalf("VAULT_REMOTE_SOAK=%q: want a duration from 1m to 2h", soak)
		}
		dur, cycle = d, 60*time.Second
	}
	var target, direct, ak, sk string
	if bin := minioBinary(); bin != "" {
		m := startMinIO(t)
		target, direct, ak, sk = m.endpoint, m.endpoint, m.ak, m.sk
	} else {
		if soak != "" {
			t.Skip("no MinIO binary: run `make minio` or set VAULT_MINIO_BIN")
		}
		t.Log("no MinIO binary (make minio): the backend is a second Vaultaire")
		b := testnode.Start(t, nil)
		target, direct, ak, sk = b.Endpoint, b.Endpoint, "ALICEKEY", "alicesecret"
	}
	p, err := faultproxy.Start(target, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	w := startSoakNode(t, p.URL, direct, ak, sk)
	res := w.run(t, p, dur, cycle)
	w.verify(t, p, res)
}

// minioBinary is the MinIO binary startMinIO would run, or "".
func minioBinary() string {
	if b := os.Getenv("VAULT_MINIO_BIN"); b != "" {
		return b
	}
	home, _ := os.UserCacheDir()
	bins, _ := filepath.Glob(filepath.Join(home, "vaultaire", "minio", "minio-*"))
	slices.Sort(bins)
	if len(bins) == 0 {
		return ""
	}
	return bins[len(bins)-1]
}

// soakNode is the node under test and its client.
type soakNode struct {
	n        *remoteNode
	cl       *awss3.Client
	statuses *statusCounter
}

const soakBucket = "soak"

// remoteCallTimeout is the soak node's remote drives' call timeout.
const remoteCallTimeout = 3 * time.Second

func startSoakNode(t *testing.T, url, direct, rak, rsk string) *soakNode {
	t.Helper()
	ctx := t.Context()
	bc := remoteTestClient(direct, rak, rsk)
	for _, b := range []string{"cold1", "cold2"} {
		if _, err := bc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	root := map[string]string{"VAULT_ROOT_ACCESS_KEY": "SOAKROOTKEY", "VAULT_ROOT_SECRET_KEY": "soak-root-secret-1"}
	env := map[string]string{
		"VAULT_REMOTE_COLD1_ACCESS_KEY": rak, "VAULT_REMOTE_COLD1_SECRET_KEY": rsk,
		"VAULT_REMOTE_COLD2_ACCESS_KEY": rak, "VAULT_REMOTE_COLD2_SECRET_KEY": rsk,
	}
	maps.Copy(env, root)
	data := strings.Join([]string{dir + "/a", dir + "/b", dir + "/c", dir + "/d"}, ",")
	// timeout=3s: a call to the hung backend gives up after 3s, so a GET
	// waiting on it would take that long; calls failing for the 10s of an
	// outage open the breaker.
	args := []string{"--data", data,
		"--remote", "cold1=" + url + "/cold1?timeout=" + remoteCallTimeout.String(),
		"--remote", "cold2=" + url + "/cold2?timeout=" + remoteCallTimeout.String()}
	n, err := startRemoteNode(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	sc := &statusCounter{rt: http.DefaultTransport, n: map[int]int{}}
	cl := awss3.New(awss3.Options{
		BaseEndpoint: aws.String("http://" + n.s3Addr), Region: "us-east-1", UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(root["VAULT_ROOT_ACCESS_KEY"], root["VAULT_ROOT_SECRET_KEY"], ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Transport: sc, Timeout: 2 * time.Minute},
		RetryMaxAttempts:           1, // every answer counts: a 503 is an unacknowledged write
	})
	if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(soakBucket)}); err != nil {
		t.Fatal(err)
	}
	ctlEnv := map[string]string{"VAULT_ENDPOINT": "http://" + n.s3Addr}
	maps.Copy(ctlEnv, root)
	if err := run(ctx, []string{"container", "set-policy", soakBucket, "hybrid"}, func(k string) string { return ctlEnv[k] }, io.Discard, io.Discard); err != nil {
		t.Fatalf("container set-policy %s hybrid: %v", soakBucket, err)
	}
	return &soakNode{n: n, cl: cl, statuses: sc}
}

// statusCounter is an http.RoundTripper that counts the statusess of the
// answers.
type statusCounter struct {
	rt http.RoundTripper
	mu sync.Mutex  // guards n
	n  map[int]int // status → answers
}

func (s *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err == nil {
		s.mu.Lock()
		s.n[resp.StatusCode]++
		s.mu.Unlock()
	}
	return resp, err
}

func (s *statusCounter) counts() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}

// keyState is one state a key may be in: absent, or holding data.
type keyState struct {
	exists bool
	data   []byte
}

// keyModel is what a key may hold: one state after an acknowledged write
// or delete, more when writes after it failed (a failed write may have
// landed).
type keyModel struct{ states []keyState }

func (k *keyModel) acked(s keyState)  { k.states = []keyState{s} }
func (k *keyModel) failed(s keyState) { k.states = append(k.states, s) }

// match reports whether a read (exists, data) is one of the states.
func (k *keyModel) match(exists bool, data []byte) bool {
	return slices.ContainsFunc(k.states, func(s keyState) bool {
		return s.exists == exists && (!exists || bytes.Equal(s.data, data))
	})
}

// soakResult is what the workload saw.
type soakResult struct {
	keys                            map[string]*keyModel
	ops, puts, putsAcked, dels      int64
	gets, getFails, badReads        int64
	probes, probeFails              int64
	hangGets, hangGetMax            int64 // GETs while the backend hung, the slowest (ns)
	remoteGetsBefore, remoteGetsEnd float64
	opensBefore                     float64
	proxy                           faultproxy.Counts
	faultDraws, faultResets         int64    // requests the backend saw under soakFaults, the resets among them
	faultErrors                     int64    // and the errors
	faultsShort                     []string // fault phases that ended before faultsEnough
	errs                            []string
}

// The fault phases of a cycle: the faults, then the backend hangs, then
// it is down (connections reset).
const (
	phaseFaults = iota
	phaseHang
	phaseOutage
)

var soakFaults = faultproxy.Faults{ErrorRate: 0.3, ResetRate: 0.1}

// A fault phase lasts until the backend has seen at least
// minFaultDraws requests under soakFaults, at least one of them reset
// and one answered an error, or faultsMax more than its scheduled time.
const (
	minFaultDraws = 20
	faultsMax     = 90 * time.Second
)

// draws is how many requests the proxy answered by the rates of its
// faults (forwarded, or a fault other than the outage's refusal).
func draws(c faultproxy.Counts) int64 {
	return c.Forwarded + c.Resets + c.Errors + c.Throttled
}

// faultsEnough reports whether the backend saw enough faults between the
// counts from and to.
func faultsEnough(from, to faultproxy.Counts) bool {
	return draws(to)-draws(from) >= minFaultDraws && to.Resets > from.Resets && to.Errors > from.Errors
}

func (w *soakNode) metric(t *testing.T, series string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := metricsGet(ctx, "http://"+w.n.s3Addr+"/_vault/metrics", aws.Credentials{AccessKeyID: "SOAKROOTKEY", SecretAccessKey: "soak-root-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: status %d", resp.StatusCode)
	}
	v, ok := metricValue(string(body), series)
	if !ok {
		t.Fatalf("metric %s not exposed", series)
	}
	return v
}

func (w *soakNode) sum(t *testing.T, format string) float64 {
	t.Helper()
	return w.metric(t, fmt.Sprintf(format, "remote-cold1")) + w.metric(t, fmt.Sprintf(format, "remote-cold2"))
}

const (
	remoteGetsSeries  = `vaultaire_remote_requests_total{drive="%s",method="GET"}`
	remoteOpensSeries = `vaultaire_remote_breaker_opens_total{drive="%s"}`
	remoteOnline      = `vaultaire_remote_online{drive="%s"}`
)

// run drives the workload for dur, cycling the proxy's faults every cycle.
func (w *soakNode) run(t *testing.T, p *faultproxy.Proxy, dur, cycle time.Duration) *soakResult {
	t.Helper()
	ctx := t.Context()
	res := &soakResult{keys: map[string]*keyModel{}}
	res.remoteGetsBefore = w.sum(t, remoteGetsSeries)
	res.opensBefore = w.sum(t, remoteOpensSeries)
	// A fixed key for range probes.
	fixed := payload(5000, 1)
	if _, err := w.cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(soakBucket), Key: aws.String("fixed"), Body: bytes.NewReader(fixed)}); err != nil {
		t.Fatal(err)
	}
	res.keys["fixed"] = &keyModel{states: []keyState{{true, fixed}}}

	var mu sync.Mutex // guards res
	var phase atomic.Int32
	start := time.Now()
	stop := make(chan struct{}) // closed when the schedule is over: the workers stop
	var wg sync.WaitGroup
	// The fault schedule, each cycle: the faults for cycle-15s, and then
	// until the backend has seen enough of them (faultsEnough), then 5s
	// of a hung backend and 10s of outage. The remote drives send the
	// backend little: each commits a log object at a time (group commit),
	// shards of up to 1 MiB ride in it, and GETs are served by the local
	// drives (hybrid: data local, parity remote), so 5s of faults can be
	// ten requests or fewer under load, none of them reset.
	wg.Go(func() {
		defer close(stop)
		sleep := func(d time.Duration) bool {
			select {
			case <-time.After(d):
				return true
			case <-ctx.Done():
				return false
			}
		}
		for first := true; first || time.Since(start) < dur; first = false {
			from := p.Counts()
			phase.Store(phaseFaults)
			p.Set(soakFaults)
			if !sleep(cycle - 15*time.Second) {
				return
			}
			for giveUp := time.Now().Add(faultsMax); !faultsEnough(from, p.Counts()); {
				if time.Now().After(giveUp) {
					to := p.Counts()
					mu.Lock()
					res.faultsShort = append(res.faultsShort, fmt.Sprintf("%v of faults from %v: %d requests, %d reset, %d answered an error",
						cycle-15*time.Second+faultsMax, time.Since(start).Round(time.Second), draws(to)-draws(from), to.Resets-from.Resets, to.Errors-from.Errors))
					mu.Unlock()
					break
				}
				if !sleep(100 * time.Millisecond) {
					return
				}
			}
			drew := p.Counts()
			mu.Lock()
			res.faultDraws += draws(drew) - draws(from)
			res.faultResets += drew.Resets - from.Resets
			res.faultErrors += drew.Errors - from.Errors
			mu.Unlock()
			phase.Store(phaseHang)
			p.Set(faultproxy.Faults{Hang: true})
			if !sleep(5 * time.Second) {
				return
			}
			phase.Store(phaseOutage)
			p.Set(faultproxy.Faults{Outage: true})
			if !sleep(10 * time.Second) {
				return
			}
		}
	})

	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(res.errs) < 20 {
			res.errs = append(res.errs, fmt.Sprintf(format, args...))
		}
	}
	const workers, keysPerWorker = 6, 24
	for wk := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(wk), uint64(start.UnixNano())))
			models := map[string]*keyModel{}
			for i := range keysPerWorker {
				models[fmt.Sprintf("w%d/k%02d", wk, i)] = &keyModel{states: []keyState{{}}}
			}
			defer func() {
				mu.Lock()
				maps.Copy(res.keys, models)
				mu.Unlock()
			}()
			for seq := 0; seq < 1_000_000 && ctx.Err() == nil; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				atomic.AddInt64(&res.ops, 1)
				key := fmt.Sprintf("w%d/k%02d", wk, rng.IntN(keysPerWorker))
				m := models[key]
				switch r := rng.IntN(100); {
				case r < 40: // PUT
					size := 1 + rng.IntN(64<<10)
					switch x := rng.IntN(20); {
					case x == 0:
						size = 4<<20 + rng.IntN(4<<20)
					case x < 6:
						size = 64<<10 + rng.IntN(1<<20)
					}
					body := payload(size, rng.Uint64())
					atomic.AddInt64(&res.puts, 1)
					_, err := w.cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(key), Body: bytes.NewReader(body)})
					switch st := httpStatus(err); {
					case err == nil:
						atomic.AddInt64(&res.putsAcked, 1)
						m.acked(keyState{true, body})
					case st == http.StatusServiceUnavailable:
						m.failed(keyState{true, body})
					default:
						m.failed(keyState{true, body})
						fail("PUT %s (%d bytes): status %d: %v", key, size, st, err)
					}
				case r < 50: // DELETE
					atomic.AddInt64(&res.dels, 1)
					_, err := w.cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(key)})
					switch st := httpStatus(err); {
					case err == nil:
						m.acked(keyState{})
					case st == http.StatusServiceUnavailable:
						m.failed(keyState{})
					default:
						m.failed(keyState{})
						fail("DELETE %s: status %d: %v", key, st, err)
					}
				case r < 90: // GET
					ph := phase.Load()
					t0 := time.Now()
					exists, data, err := soakGet(ctx, w.cl, key)
					took := time.Since(t0)
					atomic.AddInt64(&res.gets, 1)
					if ph == phaseHang {
						atomic.AddInt64(&res.hangGets, 1)
						for {
							old := atomic.LoadInt64(&res.hangGetMax)
							if int64(took) <= old || atomic.CompareAndSwapInt64(&res.hangGetMax, old, int64(took)) {
								break
							}
						}
					}
					switch {
					case err != nil:
						atomic.AddInt64(&res.getFails, 1)
						fail("GET %s (phase %d): status %d: %v", key, ph, httpStatus(err), err)
					case !m.match(exists, data):
						atomic.AddInt64(&res.badReads, 1)
						fail("GET %s: exists %v, %d bytes: not what was written", key, exists, len(data))
					}
				default: // a client error: it must get its 4xx
					atomic.AddInt64(&res.probes, 1)
					if err := soakProbe(ctx, w.cl, rng, fmt.Sprintf("w%d/missing-%d", wk, seq)); err != nil {
						atomic.AddInt64(&res.probeFails, 1)
						fail("%v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	p.Set(faultproxy.Faults{})
	res.proxy = p.Counts()
	res.remoteGetsEnd = w.sum(t, remoteGetsSeries)
	return res
}

// soakGet reads key: (false, nil, nil) when it does not exist.
func soakGet(ctx context.Context, cl *awss3.Client, key string) (bool, []byte, error) {
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(key)})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound && errorCode(err) == "NoSuchKey" {
			return false, nil, nil
		}
		return false, nil, err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	return true, data, err
}

// soakProbe sends one of the client errors and checks its answer.
func soakProbe(ctx context.Context, cl *awss3.Client, rng *rand.Rand, missing string) error {
	want := func(op string, err error, status int, code string) error {
		if err == nil || httpStatus(err) != status || errorCode(err) != code {
			return fmt.Errorf("%s: %v (status %d), want %d %s", op, err, httpStatus(err), status, code)
		}
		return nil
	}
	switch rng.IntN(4) {
	case 0:
		_, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(missing)})
		return want("GET of a missing key", err, http.StatusNotFound, "NoSuchKey")
	case 1:
		body := payload(1+rng.IntN(200<<10), rng.Uint64())
		sum := md5.Sum(append([]byte("not the body"), body[:8]...))
		_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(missing), Body: bytes.NewReader(body),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
		if err := want("PUT with a wrong Content-MD5", err, http.StatusBadRequest, "BadDigest"); err != nil {
			return err
		}
		// Nothing of it is visible.
		_, err = cl.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(soakBucket), Key: aws.String(missing)})
		if httpStatus(err) != http.StatusNotFound {
			return fmt.Errorf("HEAD after a refused PUT: %v (status %d), want 404", err, httpStatus(err))
		}
		return nil
	case 2:
		_, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(soakBucket), Key: aws.String("fixed"), Range: aws.String("bytes=999999-")})
		return want("GET of a range past the end", err, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
	default:
		_, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("no-such-bucket-soak"), Key: aws.String("k")})
		return want("GET in a missing bucket", err, http.StatusNotFound, "NoSuchBucket")
	}
}

// verify checks the workload's outcome once the faults stopped.
func (w *soakNode) verify(t *testing.T, p *faultproxy.Proxy, res *soakResult) {
	t.Helper()
	ctx := t.Context()
	for _, e := range res.errs {
		t.Error(e)
	}
	statusess := w.statuses.counts()
	t.Logf("workload: %d operations: %d PUTs (%d acknowledged), %d DELETEs, %d GETs (%d while the backend hung, slowest %v), %d client-error probes; answers by status %v",
		res.ops, res.puts, res.putsAcked, res.dels, res.gets, res.hangGets, time.Duration(res.hangGetMax), res.probes, statusess)
	t.Logf("proxy: %+v; under the faults: %d requests, %d reset, %d answered an error", res.proxy, res.faultDraws, res.faultResets, res.faultErrors)
	for _, c := range res.faultsShort {
		t.Errorf("the faults never drew enough (%d requests, one reset and one error at least): %s", minFaultDraws, c)
	}
	if res.faultResets == 0 || res.faultErrors == 0 || res.proxy.Refused == 0 {
		t.Errorf("the proxy injected too few faults: %d resets and %d errors under the faults, %d refused in the outages", res.faultResets, res.faultErrors, res.proxy.Refused)
	}
	if res.putsAcked < res.puts/2 {
		t.Errorf("only %d of %d PUTs acknowledged: a hybrid write needs the local drives only", res.putsAcked, res.puts)
	}
	for st, n := range statusess {
		if st >= 500 && st != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d", n, st)
		}
	}
	// Reads were served by the local drives.
	if res.getFails > 0 || res.badReads > 0 {
		t.Errorf("%d GETs failed and %d returned the wrong bytes", res.getFails, res.badReads)
	}
	if res.hangGets == 0 {
		t.Errorf("no GET while the backend hung")
	}
	if time.Duration(res.hangGetMax) >= remoteCallTimeout && !raceEnabled {
		t.Errorf("a GET while the backend hung took %v: it waited on the remote (its call timeout is %v)", time.Duration(res.hangGetMax), remoteCallTimeout)
	}
	// The workload's GETs need no remote shard: inline artifacts are
	// decoded from the records (a remote drive answers those from memory)
	// and the data shards of the others are local. What GETs the backend
	// saw are heal verifying the remote shards of artifacts whose remote
	// writes failed; 0 is usual.
	t.Logf("the remote drives sent %v GETs to the backend", res.remoteGetsEnd-res.remoteGetsBefore)

	// The breakers opened, and closed again once the backend is back.
	opens := w.sum(t, remoteOpensSeries) - res.opensBefore
	if opens < 2 {
		t.Errorf("the breakers opened %v times, want each remote drive's at least once", opens)
	}
	stopped := time.Now()
	deadline := stopped.Add(60 * time.Second)
	for w.sum(t, remoteOnline) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("remote drives not online 60s after the faults stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("remote drives: breaker opened %v times; %v retried attempts, %v calls given up; both online %v after the faults stopped",
		opens, w.sum(t, `vaultaire_remote_retries_total{drive="%s"}`), w.sum(t, `vaultaire_remote_failures_total{drive="%s"}`), time.Since(stopped).Round(time.Millisecond))

	// Every acknowledged write reads back; so do the others, as one of
	// the states they may have left.
	check := func(when string) {
		t.Helper()
		exact := 0
		for key, m := range res.keys {
			t0 := time.Now()
			exists, data, err := soakGet(ctx, w.cl, key)
			if took := time.Since(t0); took >= remoteCallTimeout && !raceEnabled {
				t.Errorf("%s: GET %s took %v: it waited on the remote (its call timeout is %v)", when, key, took, remoteCallTimeout)
			}
			switch {
			case err != nil:
				t.Errorf("%s: GET %s: %v", when, key, err)
			case !m.match(exists, data):
				t.Errorf("%s: GET %s: exists %v, %d bytes, want one of %d states (first: exists %v, %d bytes)", when, key, exists, len(data), len(m.states), m.states[0].exists, len(m.states[0].data))
			case len(m.states) == 1:
				exact++
			}
		}
		t.Logf("%s: %d keys read back, %d of them after an acknowledged last write", when, len(res.keys), exact)
	}
	check("faults stopped")
	// And from the local drives alone, without waiting on the backend.
	if !raceEnabled { // (its point is the latency bound)
		p.Set(faultproxy.Faults{Hang: true})
		check("backend hung")
	}
	p.Set(faultproxy.Faults{Outage: true})
	check("backend down")
	p.Set(faultproxy.Faults{})
}

// payload returns n pseudo-random bytes drawn from seed.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
