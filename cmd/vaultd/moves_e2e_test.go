package main

// Writes while data moves (probe 19): acknowledged writes while data moves between map epochs (a
// drain, a join). Four real vaultd processes on loopback; clients write
// through n1..n3 while the leader's migrator moves every PG. Three kinds of
// write run at once, each with one writer per key so that "the last
// acknowledged value" is well defined:
//
//   A. metadata-only updates of keys written before the move:
//      PutObjectTagging (engine.UpdateMetadata), PutObjectLegalHold and PutObjectRetention on an
//      object-lock bucket (engine.SetRetention's path), and CopyObject in
//      place with REPLACE metadata;
//   B. CompleteMultipartUpload of uploads created (parts written) before
//      the move, and of uploads created during it, over a key that held
//      an older plain version;
//   C. overwrites (PUT of the same key with new content).
//
// Every operation is tried once without retries (a 503 is counted), then,
// after a 503, through an SDK client with its standard retryer (3
// attempts), then by hand every 500 ms for up to 60 s (how long a key stays
// refused). Once the older maps are dropped, every key is read through
// every serving node: the value must be the last acknowledged one or a
// later attempted one, never an earlier one (lost).
//
// It fails when an acknowledged write is lost, when a write stays refused
// 60 s, or when one fails through the SDK's standard retryer. It failed on
// the last before the fix (PROBE19.md W1): a metadata-only update (tagging,
// legal hold, retention) of a key the migrator had not moved yet answered
// 503 until the migrator reached that key, however long the move took; the
// engine now moves such a key first (engine.moveFirst). Nothing
// acknowledged was lost in any run.
//
// About 70 s each: run by make test-long (VAULT_E2E_LONG=1) or with
// VAULT_PROBE=1 (PROBE19_FILLER=N seeds N filler artifacts instead of 90,
// for a longer move):
//
//	cd cmd/vaultd && VAULT_E2E_LONG=1 go test -count=1 -v -timeout 20m -run '^TestWritesDuring(Drain|Join)$' .

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3"
)

func TestWritesDuringDrain(t *testing.T) { probe19(t, "drain") }
func TestWritesDuringJoin(t *testing.T)  { probe19(t, "join") }

// p19Tally counts the outcomes of one kind of write.
type p19Tally struct {
	mu          sync.Mutex // guards the following
	ops         int        // operations tried
	acked       int        // acknowledged (by any attempt)
	first503    int        // first attempt answered 503
	sdkRetryOK  int        // ... then acknowledged through the SDK's retryer
	longRetryOK int        // ... then acknowledged by hand within 60 s
	gaveUp      int        // ... still refused after 60 s
	other       int        // an error other than 503 (ambiguous)
	otherErrs   []string
	refusedFor  []time.Duration // first 503 to acknowledgement, for long retries
	lost        int             // found after the move with an older value than acknowledged
	lostWhat    []string
	timeline    []string // when operations ran, relative to the move's start
}

func (c *p19Tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var longest time.Duration
	for _, d := range c.refusedFor {
		longest = max(longest, d)
	}
	s := fmt.Sprintf("ops %d, acked %d, first attempt 503 %d (then SDK retry ok %d, by hand within 60 s %d, longest refusal %v, gave up %d), other errors %d, lost %d",
		c.ops, c.acked, c.first503, c.sdkRetryOK, c.longRetryOK, longest.Round(100*time.Millisecond), c.gaveUp, c.other, c.lost)
	if len(c.otherErrs) > 0 {
		s += "; other errors e.g. " + strings.Join(c.otherErrs[:min(3, len(c.otherErrs))], " | ")
	}
	return s
}

func (c *p19Tally) lose(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost++
	if len(c.lostWhat) < 10 {
		c.lostWhat = append(c.lostWhat, fmt.Sprintf(format, args...))
	}
}

// p19Clients are node i's clients: one without retries, one with the
// SDK's standard retryer (3 attempts, no client-side retry quota).
type p19Clients struct {
	plain, retrying *awss3.Client
}

func p19NewClients(c *e2eCluster, i int, root s3.NewTenant) p19Clients {
	return p19Clients{
		plain: c.s3Client(i, root),
		retrying: awss3.New(awss3.Options{
			BaseEndpoint: aws.String("http://" + c.nodes[i].s3),
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider(root.AccessKey, root.SecretKey, ""),
			UsePathStyle: true,
			Retryer: awsretry.NewStandard(func(o *awsretry.StandardOptions) {
				o.MaxAttempts = 3
				o.RateLimiter = ratelimit.None
			}),
		}),
	}
}

// do runs op as described in the file comment and reports whether it was
// acknowledged.
func (c *p19Tally) do(ctx context.Context, cl p19Clients, op func(context.Context, *awss3.Client) error) bool {
	attempt := func(cl *awss3.Client) error {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return op(ctx, cl)
	}
	c.mu.Lock()
	c.ops++
	c.mu.Unlock()
	err := attempt(cl.plain)
	if err == nil {
		c.mu.Lock()
		c.acked++
		c.mu.Unlock()
		return true
	}
	other := func(err error) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.other++
		if len(c.otherErrs) < 10 {
			c.otherErrs = append(c.otherErrs, err.Error())
		}
		return false
	}
	if httpStatus(err) != 503 {
		return other(err)
	}
	refused := time.Now()
	c.mu.Lock()
	c.first503++
	c.mu.Unlock()
	if err = attempt(cl.retrying); err == nil {
		c.mu.Lock()
		c.acked++
		c.sdkRetryOK++
		c.mu.Unlock()
		return true
	}
	if httpStatus(err) != 503 {
		return other(err)
	}
	for time.Since(refused) < 60*time.Second && ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		if err = attempt(cl.plain); err == nil {
			c.mu.Lock()
			c.acked++
			c.longRetryOK++
			c.refusedFor = append(c.refusedFor, time.Since(refused))
			c.mu.Unlock()
			return true
		}
		if httpStatus(err) != 503 {
			return other(err)
		}
	}
	c.mu.Lock()
	c.gaveUp++
	c.mu.Unlock()
	return false
}

// p19Gens tracks, per key, the last acknowledged and the last attempted
// generation (one writer per key, generations increasing).
type p19Gens struct {
	mu    sync.Mutex // guards the following
	acked map[string]int
	tried map[string]int
}

func newP19Gens() *p19Gens { return &p19Gens{acked: map[string]int{}, tried: map[string]int{}} }

func (g *p19Gens) try(key string, gen int) {
	g.mu.Lock()
	g.tried[key] = gen
	g.mu.Unlock()
}

func (g *p19Gens) ack(key string, gen int) {
	g.mu.Lock()
	g.acked[key] = gen
	g.mu.Unlock()
}

func (g *p19Gens) get(key string) (acked, tried int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acked[key], g.tried[key]
}

// p19Body is the content of generation gen of key.
func p19Body(key string, gen int) []byte {
	size := []int{1 << 10, 200 << 10, 1536 << 10}[gen%3]
	b := make([]byte, size)
	mrand.NewChaCha8(sha256.Sum256([]byte(key + "#" + strconv.Itoa(gen)))).Read(b)
	return b
}

func probe19(t *testing.T, mode string) {
	if os.Getenv("VAULT_PROBE") == "" && os.Getenv("VAULT_E2E_LONG") == "" {
		t.Skip("long: make test-long (VAULT_E2E_LONG=1) runs it")
	}
	began := time.Now()
	c := prepareCluster(t, 4)
	first := 4
	if mode == "join" {
		first = 3
	}
	c.nodes[0].start(t)
	c.nodes[0].waitHealthy(t, 60*time.Second)
	for _, n := range c.nodes[1:first] {
		n.start(t)
	}
	for _, n := range c.nodes[1:first] {
		n.waitHealthy(t, 60*time.Second)
	}
	drivesIs := func(want int) func(cluster.Status) string {
		return func(st cluster.Status) string {
			if st.Map.Drives != want || st.Leader == "" || len(st.Map.Older) > 0 {
				return fmt.Sprintf("map over %d drives, leader %q, older maps %v; want %d drives, a leader, no older map", st.Map.Drives, st.Leader, st.Map.Older, want)
			}
			return ""
		}
	}
	for i := range first {
		if _, err := waitStatus(t, c, i, 120*time.Second, drivesIs(2*first)); err != nil {
			t.Fatalf("n%d: %v", i+1, err)
		}
	}
	ctx := t.Context()
	root := s3.NewTenant{Name: "root", AccessKey: c.root.AccessKeyID, SecretKey: c.root.SecretAccessKey}
	cls := make([]p19Clients, 3)
	for i := range cls {
		cls[i] = p19NewClients(c, i, root)
	}
	cl0 := cls[0].plain
	// lateBucket sorts after the others: the migrator walks keys in
	// order, so its keys move last.
	const bucket, lockBucket, lateBucket, versBucket = "p19", "p19lock", "zz-late", "p19vers"
	if _, err := cl0.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl0.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(lockBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl0.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(lateBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl0.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(versBucket)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl0.PutBucketVersioning(ctx, &awss3.PutBucketVersioningInput{Bucket: aws.String(versBucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}

	// Seed: filler (so that the move lasts), the keys of A and C, the
	// older versions and open uploads of B.
	const (
		nTag, nHold, nCopy, nOver, nMPU, nMPUNew, nLate, nVers, nRet = 90, 24, 24, 30, 16, 4, 6, 12, 12
	)
	// PROBE19_FILLER artifacts (default 90, about 40 MiB) make the move
	// last longer.
	nFiller := 90
	if v, err := strconv.Atoi(os.Getenv("PROBE19_FILLER")); err == nil {
		nFiller = v
	}
	filler := newArtifacts("filler/", nFiller)
	for i := range filler {
		filler[i] = newArtifact(filler[i].key, []int{256 << 10, 1 << 20, 64 << 10}[i%3])
	}
	putAll(t, cls[1].plain, bucket, filler)
	putAll(t, cls[0].plain, lateBucket, newArtifacts("late/", nLate))
	var seed []e2eArtifact
	for i := range nTag {
		seed = append(seed, newArtifact(fmt.Sprintf("tag/%04d", i), []int{1 << 10, 300 << 10}[i%2]))
	}
	for i := range nCopy {
		seed = append(seed, newArtifact(fmt.Sprintf("copy/%04d", i), []int{1 << 10, 300 << 10}[i%2]))
	}
	for i := range nMPU + nMPUNew {
		seed = append(seed, newArtifact(fmt.Sprintf("mpu/%04d", i), 2<<10))
	}
	putAll(t, cls[2].plain, bucket, seed)
	over := newP19Gens()
	for i := range nOver {
		key := fmt.Sprintf("over/%04d", i)
		if _, err := cl0.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(p19Body(key, 0))}); err != nil {
			t.Fatal(err)
		}
	}
	// C2: versioned keys; every acknowledged version id is remembered.
	type version struct {
		gen int
		id  string
	}
	var versMu sync.Mutex // guards versAcked
	versAcked := map[string][]version{}
	vers := newP19Gens()
	for i := range nVers {
		key := fmt.Sprintf("vers/%04d", i)
		out, err := cl0.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(versBucket), Key: aws.String(key), Body: bytes.NewReader(p19Body(key, 0))})
		if err != nil {
			t.Fatal(err)
		}
		versAcked[key] = []version{{0, aws.ToString(out.VersionId)}}
	}
	// A5: retention (GOVERNANCE), extended by a minute per generation.
	retBase := time.Now().Add(24 * time.Hour).Truncate(time.Second).UTC()
	retUntil := func(gen int) time.Time { return retBase.Add(time.Duration(gen) * time.Minute) }
	rets := newP19Gens()
	for i := range nRet {
		key := fmt.Sprintf("ret/%04d", i)
		if _, err := cl0.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(key), Body: strings.NewReader(key),
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(retUntil(0))}); err != nil {
			t.Fatal(err)
		}
	}
	var holdKeys []string
	for i := range nHold {
		key := fmt.Sprintf("hold/%04d", i)
		if _, err := cl0.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(key), Body: strings.NewReader(key)}); err != nil {
			t.Fatal(err)
		}
		holdKeys = append(holdKeys, key)
	}
	// B: uploads with their parts written before the move.
	type mpu struct {
		key, id string
		parts   [][]byte
		etags   []string
		acked   bool
		tried   bool
	}
	partBody := func(key string, n, size int) []byte {
		b := make([]byte, size)
		mrand.NewChaCha8(sha256.Sum256([]byte(fmt.Sprintf("%s/part%d", key, n)))).Read(b)
		return b
	}
	uploadParts := func(ctx context.Context, cl *awss3.Client, u *mpu) error {
		out, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(u.key)})
		if err != nil {
			return fmt.Errorf("create %s: %w", u.key, err)
		}
		u.id = aws.ToString(out.UploadId)
		u.parts = [][]byte{partBody(u.key, 1, 5<<20), partBody(u.key, 2, 512<<10)}
		u.etags = nil
		for n, p := range u.parts {
			pr, err := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
				PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(p)})
			if err != nil {
				return fmt.Errorf("part %d of %s: %w", n+1, u.key, err)
			}
			u.etags = append(u.etags, aws.ToString(pr.ETag))
		}
		return nil
	}
	complete := func(ctx context.Context, cl *awss3.Client, u *mpu) error {
		var done []types.CompletedPart
		for n, e := range u.etags {
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(n + 1)), ETag: aws.String(e)})
		}
		_, err := cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(u.key),
			UploadId: aws.String(u.id), MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
		return err
	}
	mpus := make([]*mpu, nMPU+nMPUNew)
	for i := range mpus {
		mpus[i] = &mpu{key: fmt.Sprintf("mpu/%04d", i)}
	}
	for i, u := range mpus[:nMPU] {
		if err := uploadParts(ctx, cls[i%3].plain, u); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seeded in %v", time.Since(began).Round(time.Second))

	// The move.
	st0, err := c.status(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli := c.cli(ctx, 0)
	moveStart := time.Now()
	switch mode {
	case "drain":
		out, err := cli("cluster", "drain", "n4")
		if err != nil {
			t.Fatalf("drain n4: %v (%s)", err, out)
		}
		t.Logf("vaultd cluster drain n4: %s", strings.TrimSpace(out))
	case "join":
		c.nodes[3].start(t)
	}
	// done is closed once node 1 sees the move finished (the older maps
	// dropped).
	done := make(chan struct{})
	var moveTook time.Duration
	go func() {
		defer close(done)
		for time.Since(moveStart) < 6*time.Minute && ctx.Err() == nil {
			time.Sleep(time.Second)
			st, err := c.status(ctx, 0)
			if err != nil || st.Map.Epoch == st0.Map.Epoch || len(st.Map.Older) > 0 {
				continue
			}
			if mode == "drain" && (st.Drain == nil || st.Drain.PGsLeft > 0) {
				continue
			}
			moveTook = time.Since(moveStart)
			return
		}
	}()
	// Workers stop 3 s after the move finished, or after 7 minutes.
	stop := make(chan struct{})
	go func() {
		select {
		case <-done:
			time.Sleep(3 * time.Second)
		case <-time.After(7 * time.Minute):
		}
		close(stop)
	}()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var (
		wg                                                         sync.WaitGroup
		tagT, holdT, copyT, overT, mpuT, mpuNT, lateT, versT, retT p19Tally
		tags, holds, copies, lates                                 = newP19Gens(), newP19Gens(), newP19Gens(), newP19Gens()
	)
	pause := func() { time.Sleep(30 * time.Millisecond) }
	// A1: tagging, three workers (one per node), disjoint keys.
	for w := range 3 {
		wg.Go(func() {
			for gen := 1; gen <= 200 && !stopped(); gen++ {
				for i := w; i < nTag && !stopped(); i += 3 {
					key := fmt.Sprintf("tag/%04d", i)
					tags.try(key, gen)
					if tagT.do(ctx, cls[(w+gen)%3], func(ctx context.Context, cl *awss3.Client) error {
						_, err := cl.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key),
							Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("gen"), Value: aws.String(strconv.Itoa(gen))}}}})
						return err
					}) {
						tags.ack(key, gen)
					}
					pause()
				}
			}
		})
	}
	// A4: tagging of the keys the migrator reaches last.
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i := range nLate {
				if stopped() {
					break
				}
				key := fmt.Sprintf("late/%04d", i)
				lates.try(key, gen)
				if lateT.do(ctx, cls[(i+gen)%3], func(ctx context.Context, cl *awss3.Client) error {
					_, err := cl.PutObjectTagging(ctx, &awss3.PutObjectTaggingInput{Bucket: aws.String(lateBucket), Key: aws.String(key),
						Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("gen"), Value: aws.String(strconv.Itoa(gen))}}}})
					return err
				}) {
					lates.ack(key, gen)
				}
				pause()
			}
		}
	})
	// A5: retention extensions.
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i := range nRet {
				if stopped() {
					break
				}
				key := fmt.Sprintf("ret/%04d", i)
				rets.try(key, gen)
				if retT.do(ctx, cls[(i+gen+2)%3], func(ctx context.Context, cl *awss3.Client) error {
					_, err := cl.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(key),
						Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(retUntil(gen))}})
					return err
				}) {
					rets.ack(key, gen)
				}
				pause()
			}
		}
	})
	// A2: legal hold toggles (odd generations ON).
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i, key := range holdKeys {
				if stopped() {
					break
				}
				status := types.ObjectLockLegalHoldStatusOff
				if gen%2 == 1 {
					status = types.ObjectLockLegalHoldStatusOn
				}
				holds.try(key, gen)
				if holdT.do(ctx, cls[(i+gen)%3], func(ctx context.Context, cl *awss3.Client) error {
					_, err := cl.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: aws.String(lockBucket), Key: aws.String(key),
						LegalHold: &types.ObjectLockLegalHold{Status: status}})
					return err
				}) {
					holds.ack(key, gen)
				}
				pause()
			}
		}
	})
	// A3: CopyObject in place with REPLACE metadata.
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i := range nCopy {
				if stopped() {
					break
				}
				key := fmt.Sprintf("copy/%04d", i)
				copies.try(key, gen)
				if copyT.do(ctx, cls[(i+gen)%3], func(ctx context.Context, cl *awss3.Client) error {
					_, err := cl.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
						CopySource: aws.String(bucket + "/" + key), MetadataDirective: types.MetadataDirectiveReplace,
						Metadata: map[string]string{"gen": strconv.Itoa(gen)}})
					return err
				}) {
					copies.ack(key, gen)
				}
				pause()
			}
		}
	})
	// C: overwrites.
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i := range nOver {
				if stopped() {
					break
				}
				key := fmt.Sprintf("over/%04d", i)
				body := p19Body(key, gen)
				over.try(key, gen)
				if overT.do(ctx, cls[(i+gen)%3], func(ctx context.Context, cl *awss3.Client) error {
					_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
					return err
				}) {
					over.ack(key, gen)
				}
				pause()
			}
		}
	})
	// C2: overwrites in a versioned bucket.
	wg.Go(func() {
		for gen := 1; gen <= 400 && !stopped(); gen++ {
			for i := range nVers {
				if stopped() {
					break
				}
				key := fmt.Sprintf("vers/%04d", i)
				body := p19Body(key, gen)
				vers.try(key, gen)
				var id string
				if versT.do(ctx, cls[(i+gen+1)%3], func(ctx context.Context, cl *awss3.Client) error {
					out, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(versBucket), Key: aws.String(key), Body: bytes.NewReader(body)})
					if err == nil {
						id = aws.ToString(out.VersionId)
					}
					return err
				}) {
					vers.ack(key, gen)
					versMu.Lock()
					versAcked[key] = append(versAcked[key], version{gen, id})
					versMu.Unlock()
				}
				pause()
			}
		}
	})
	// B: completions of the uploads made before the move, spread over
	// it; and new uploads made and completed during it.
	wg.Go(func() {
		// Around MapSettle (15 s) after the map change, when the
		// migrator moves the open uploads (MoveUploads).
		// One every 1.5 s from 3 s on (PROBE19_MPU_START overrides), past
		// MapSettle.
		first := 3.0
		if v, err := strconv.ParseFloat(os.Getenv("PROBE19_MPU_START"), 64); err == nil {
			first = v
		}
		for i, u := range mpus[:nMPU/2] {
			d := time.Duration((first + 1.5*float64(i)) * float64(time.Second))
			select {
			case <-stop:
			case <-time.After(time.Until(moveStart.Add(d))):
			}
			began := time.Since(moveStart)
			u.tried = true
			u.acked = mpuT.do(ctx, cls[(i+1)%3], func(ctx context.Context, cl *awss3.Client) error { return complete(ctx, cl, u) })
			mpuT.mu.Lock()
			mpuT.timeline = append(mpuT.timeline, fmt.Sprintf("%s %.1f-%.1fs acked=%v", u.key, began.Seconds(), time.Since(moveStart).Seconds(), u.acked))
			mpuT.mu.Unlock()
		}
	})
	// The other half: held until the migrator's first pass over the keys
	// is done (its leader logs "migrate: pass done") and MapSettle (15 s)
	// has passed, then completed a quarter second apart: the next pass
	// runs MoveUploads, which moves the uploads still open into the
	// current map; each completion races that move or completes an upload
	// it moved.
	marks := make([][2]int, len(c.nodes))
	for i, n := range c.nodes {
		marks[i] = [2]int{n.stdout.Len(), n.stderr.Len()}
	}
	wg.Go(func() {
		held := mpus[nMPU/2 : nMPU]
		for !stopped() {
			passed := false
			for i, n := range c.nodes {
				if strings.Contains(n.stdout.String()[marks[i][0]:]+n.stderr.String()[marks[i][1]:], `msg="migrate: pass done"`) {
					passed = true
				}
			}
			if passed && time.Since(moveStart) >= 15*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		mpuT.mu.Lock()
		mpuT.timeline = append(mpuT.timeline, fmt.Sprintf("first pass done at %.1fs: complete the held ones", time.Since(moveStart).Seconds()))
		mpuT.mu.Unlock()
		var bg sync.WaitGroup
		for i, u := range held {
			if i > 0 {
				time.Sleep(250 * time.Millisecond)
			}
			bg.Go(func() {
				began := time.Since(moveStart)
				u.tried = true
				u.acked = mpuT.do(ctx, cls[i%3], func(ctx context.Context, cl *awss3.Client) error { return complete(ctx, cl, u) })
				mpuT.mu.Lock()
				mpuT.timeline = append(mpuT.timeline, fmt.Sprintf("%s %.1f-%.1fs acked=%v", u.key, began.Seconds(), time.Since(moveStart).Seconds(), u.acked))
				mpuT.mu.Unlock()
			})
		}
		bg.Wait()
	})
	wg.Go(func() {
		for i, u := range mpus[nMPU:] {
			select {
			case <-stop:
			case <-time.After(time.Duration(2+4*i) * time.Second):
			}
			if err := uploadParts(ctx, cls[i%3].plain, u); err != nil {
				mpuNT.mu.Lock()
				mpuNT.other++
				mpuNT.otherErrs = append(mpuNT.otherErrs, "upload parts: "+err.Error())
				mpuNT.mu.Unlock()
				continue
			}
			u.tried = true
			u.acked = mpuNT.do(ctx, cls[(i+2)%3], func(ctx context.Context, cl *awss3.Client) error { return complete(ctx, cl, u) })
		}
	})
	wg.Wait()
	<-done
	if moveTook == 0 {
		t.Errorf("the move did not finish within 6 minutes")
	} else {
		t.Logf("the move took %v", moveTook.Round(time.Second))
	}

	// Every node drops the older maps.
	serving := []int{0, 1, 2}
	if mode == "join" {
		serving = append(serving, 3)
	}
	for _, i := range serving {
		if _, err := waitStatus(t, c, i, 120*time.Second, func(st cluster.Status) string {
			if st.Map.Epoch == st0.Map.Epoch || len(st.Map.Older) > 0 {
				return fmt.Sprintf("map epoch %d, older %v", st.Map.Epoch, st.Map.Older)
			}
			return ""
		}); err != nil {
			t.Errorf("n%d: %v", i+1, err)
		}
	}

	// Read back through every serving node.
	readCtx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 60*time.Second) }
	for _, n := range serving {
		cl := c.s3Client(n, root)
		who := c.nodes[n].name
		checkTags := func(tally *p19Tally, gens *p19Gens, bucket, key string) {
			acked, tried := gens.get(key)
			rc, cancel := readCtx()
			out, err := cl.GetObjectTagging(rc, &awss3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			cancel()
			if err != nil {
				tally.lose("%s: GetObjectTagging %s: %v (acked gen %d)", who, key, err, acked)
				return
			}
			got := 0
			for _, tg := range out.TagSet {
				if aws.ToString(tg.Key) == "gen" {
					got, _ = strconv.Atoi(aws.ToString(tg.Value))
				}
			}
			if got < acked || got > tried {
				tally.lose("%s: %s has tag gen %d, acked %d, last tried %d", who, key, got, acked, tried)
			}
		}
		for i := range nTag {
			checkTags(&tagT, tags, bucket, fmt.Sprintf("tag/%04d", i))
		}
		for i := range nLate {
			checkTags(&lateT, lates, lateBucket, fmt.Sprintf("late/%04d", i))
		}
		for _, key := range holdKeys {
			acked, tried := holds.get(key)
			rc, cancel := readCtx()
			out, err := cl.GetObjectLegalHold(rc, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(lockBucket), Key: aws.String(key)})
			cancel()
			on := false
			if err == nil && out.LegalHold != nil {
				on = out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
			} else if err != nil && errorCode(err) != "NoSuchObjectLockConfiguration" {
				holdT.lose("%s: GetObjectLegalHold %s: %v (acked gen %d)", who, key, err, acked)
				continue
			}
			if acked == tried && on != (acked%2 == 1) {
				holdT.lose("%s: %s legal hold on=%v, acked gen %d (on=%v), nothing tried after", who, key, on, acked, acked%2 == 1)
			}
		}
		for i := range nRet {
			key := fmt.Sprintf("ret/%04d", i)
			acked, tried := rets.get(key)
			rc, cancel := readCtx()
			out, err := cl.GetObjectRetention(rc, &awss3.GetObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(key)})
			cancel()
			if err != nil || out.Retention == nil {
				retT.lose("%s: GetObjectRetention %s: %v (acked gen %d)", who, key, err, acked)
				continue
			}
			got := int(aws.ToTime(out.Retention.RetainUntilDate).Sub(retBase) / time.Minute)
			if got < acked || got > tried {
				retT.lose("%s: %s retained until gen %d (%v), acked %d, last tried %d", who, key, got, aws.ToTime(out.Retention.RetainUntilDate), acked, tried)
			}
		}
		for i := range nCopy {
			key := fmt.Sprintf("copy/%04d", i)
			acked, tried := copies.get(key)
			rc, cancel := readCtx()
			out, err := cl.HeadObject(rc, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			cancel()
			if err != nil {
				copyT.lose("%s: HeadObject %s: %v (acked gen %d)", who, key, err, acked)
				continue
			}
			got, _ := strconv.Atoi(out.Metadata["gen"])
			if got < acked || got > tried {
				copyT.lose("%s: %s has metadata gen %d, acked %d, last tried %d", who, key, got, acked, tried)
			}
		}
		for i := range nOver {
			key := fmt.Sprintf("over/%04d", i)
			acked, tried := over.get(key)
			rc, cancel := readCtx()
			b, err := getAll(rc, cl, bucket, key)
			cancel()
			if err != nil {
				overT.lose("%s: GET %s: %v (acked gen %d)", who, key, err, acked)
				continue
			}
			got := -1
			for g := tried; g >= 0; g-- {
				if bytes.Equal(b, p19Body(key, g)) {
					got = g
					break
				}
			}
			if got < acked {
				overT.lose("%s: %s reads gen %d (-1: none of 0..%d; %d bytes), acked %d, last tried %d", who, key, got, tried, len(b), acked, tried)
			}
		}
		for i := range nVers {
			key := fmt.Sprintf("vers/%04d", i)
			acked, tried := vers.get(key)
			rc, cancel := readCtx()
			b, err := getAll(rc, cl, versBucket, key)
			cancel()
			if err != nil {
				versT.lose("%s: GET %s: %v (acked gen %d)", who, key, err, acked)
				continue
			}
			got := -1
			for g := tried; g >= 0; g-- {
				if bytes.Equal(b, p19Body(key, g)) {
					got = g
					break
				}
			}
			if got < acked {
				versT.lose("%s: %s (versioned) reads gen %d, acked %d, last tried %d", who, key, got, acked, tried)
			}
			if n != 0 {
				continue
			}
			// Through n1 only: every acknowledged version still reads.
			versMu.Lock()
			list := slices.Clone(versAcked[key])
			versMu.Unlock()
			for _, v := range list {
				rc, cancel := readCtx()
				out, err := cl.GetObject(rc, &awss3.GetObjectInput{Bucket: aws.String(versBucket), Key: aws.String(key), VersionId: aws.String(v.id)})
				var b []byte
				if err == nil {
					b, err = io.ReadAll(out.Body)
					out.Body.Close()
				}
				cancel()
				if err != nil || !bytes.Equal(b, p19Body(key, v.gen)) {
					versT.lose("%s: %s version %s (gen %d, acknowledged): %d bytes, %v", who, key, v.id, v.gen, len(b), err)
				}
			}
		}
		for i, u := range mpus {
			tally := &mpuT
			if i >= nMPU {
				tally = &mpuNT
			}
			old := seed[slices.IndexFunc(seed, func(a e2eArtifact) bool { return a.key == u.key })]
			rc, cancel := readCtx()
			b, err := getAll(rc, cl, bucket, u.key)
			cancel()
			if err != nil {
				tally.lose("%s: GET %s: %v (completion acked %v)", who, u.key, err, u.acked)
				continue
			}
			isNew := u.parts != nil && bytes.Equal(b, bytes.Join(u.parts, nil))
			isOld := bytes.Equal(b, old.body())
			switch {
			case u.acked && !isNew:
				sum := md5.Sum(b)
				tally.lose("%s: %s acknowledged completed, reads %d bytes md5 %s (the older plain version: %v)", who, u.key, len(b), hex.EncodeToString(sum[:]), isOld)
			case !u.acked && !isNew && !isOld:
				tally.lose("%s: %s (completion not acknowledged) reads neither version (%d bytes)", who, u.key, len(b))
			}
		}
	}

	// The node logs: fence refusals and warnings.
	for _, n := range c.nodes {
		logs := n.stdout.String() + n.stderr.String()
		var warns []string
		refusals := 0
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "refused a write") {
				refusals++
			}
			if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) && len(warns) < 6 {
				warns = append(warns, l)
			}
		}
		t.Logf("%s log: %d fence refusal lines (rate limited); first warnings:\n  %s", n.name, refusals, strings.Join(warns, "\n  "))
	}
	for _, n := range c.nodes {
		for _, l := range strings.Split(n.stdout.String()+n.stderr.String(), "\n") {
			if strings.Contains(l, "multipart uploads into the current map") || strings.Contains(l, "migrate: move uploads") || strings.Contains(l, "older map emptied") {
				t.Logf("%s: %s", n.name, strings.TrimSpace(l))
			}
		}
	}
	t.Logf("the move began %s; B completions: %s", moveStart.UTC().Format(time.TimeOnly+".000"), strings.Join(mpuT.timeline, ", "))
	t.Logf("A1 PutObjectTagging: %s", &tagT)
	t.Logf("A2 PutObjectLegalHold: %s", &holdT)
	t.Logf("A3 CopyObject in place REPLACE: %s", &copyT)
	t.Logf("A4 PutObjectTagging, keys moved last: %s", &lateT)
	t.Logf("A5 PutObjectRetention: %s", &retT)
	t.Logf("B  Complete (upload made before the move): %s", &mpuT)
	t.Logf("B' Complete (upload made during the move): %s", &mpuNT)
	t.Logf("C  overwrite PUT: %s", &overT)
	t.Logf("C2 overwrite PUT, versioned: %s", &versT)
	for _, x := range []struct {
		name string
		t    *p19Tally
	}{{"A1 tagging", &tagT}, {"A2 legal hold", &holdT}, {"A3 copy in place", &copyT}, {"A4 tagging late keys", &lateT}, {"A5 retention", &retT}, {"B complete", &mpuT}, {"B' complete", &mpuNT}, {"C overwrite", &overT}, {"C2 versioned overwrite", &versT}} {
		x.t.mu.Lock()
		if x.t.lost > 0 {
			t.Errorf("%s: %d acknowledged writes lost or reverted: %s", x.name, x.t.lost, strings.Join(x.t.lostWhat, "; "))
		}
		if x.t.gaveUp > 0 {
			t.Errorf("%s: %d writes still refused (503) 60 s after their first refusal", x.name, x.t.gaveUp)
		}
		if n := x.t.longRetryOK + x.t.gaveUp; n > 0 {
			t.Errorf("%s: %d writes of %d failed with 503 through the SDK's standard retryer (3 attempts): refused until the migrator reached their key", x.name, n, x.t.ops)
		}
		x.t.mu.Unlock()
	}
	t.Logf("probe19 %s took %v", mode, time.Since(began).Round(time.Second))
}
