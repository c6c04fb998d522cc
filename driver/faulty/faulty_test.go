package faulty

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"syscall"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/local"
)

func openLocal(t *testing.T) *local.Driver {
	t.Helper()
	d, err := local.Open(t.Context(), local.Config{Dir: t.TempDir(), ID: "d0", ClusterID: "c", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// With no rules the wrapper is a conforming Driver.
func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver { return New(openLocal(t), 1) })
}

var shard = driver.Shard{PG: 1, Name: "0123456789abcdef0123"}

func writeShard(t *testing.T, d driver.Driver, s driver.Shard, chunks ...[]byte) error {
	t.Helper()
	w, err := d.CreateShard(t.Context(), s)
	if err != nil {
		return err
	}
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit(t.Context())
}

func readShard(t *testing.T, d driver.Driver, s driver.Shard) ([]byte, error) {
	t.Helper()
	rc, err := d.ReadShard(t.Context(), s, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// Each fault fails the calls it is given with the error a disk would give,
// and changes nothing on the drive underneath.
func TestFaultErrors(t *testing.T) {
	for _, tc := range []struct {
		fault Fault
		want  error
	}{
		{EIO, syscall.EIO},
		{NoSpace, driver.ErrNoSpace},
		{NoSpace, syscall.ENOSPC},
		{Offline, driver.ErrOffline},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			ctx := t.Context()
			under := openLocal(t)
			f := New(under, 1)
			if _, _, err := f.PutRecord(ctx, driver.Record{Key: "old", Version: driver.Version{1}, Data: []byte("v1")}); err != nil {
				t.Fatal(err)
			}
			if err := writeShard(t, f, shard, []byte("old shard")); err != nil {
				t.Fatal(err)
			}
			f.SetRules(Rule{Op: OpAll, Fault: tc.fault})
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, tc.want) || !errors.Is(err, ErrInjected) {
					t.Errorf("%s: err = %v, want %v and ErrInjected", what, err, tc.want)
				}
			}
			_, err := f.Info(ctx)
			check("Info", err)
			_, _, err = f.PutRecord(ctx, driver.Record{Key: "old", Version: driver.Version{2}, Data: []byte("v2")})
			check("PutRecord", err)
			_, err = f.GetRecord(ctx, "old")
			check("GetRecord", err)
			check("DeleteRecord", f.DeleteRecord(ctx, "old", driver.Version{}))
			_, err = f.ListRecords(ctx, "", "", 10)
			check("ListRecords", err)
			check("write shard", writeShard(t, f, shard, []byte("new shard")))
			_, err = readShard(t, f, shard)
			check("ReadShard", err)
			check("DeleteShard", f.DeleteShard(ctx, shard))

			// Nothing reached the drive underneath.
			if r, err := under.GetRecord(ctx, "old"); err != nil || string(r.Data) != "v1" {
				t.Errorf("record under the faults: %q, %v; want v1", r.Data, err)
			}
			if got, err := readShard(t, under, shard); err != nil || string(got) != "old shard" {
				t.Errorf("shard under the faults: %q, %v; want the old shard", got, err)
			}
			// The drive comes back when the rules go.
			f.SetRules()
			if got, err := readShard(t, f, shard); err != nil || string(got) != "old shard" {
				t.Errorf("after the faults: %q, %v", got, err)
			}
			if got := f.Injected()[tc.fault]; got != 8 {
				t.Errorf("Injected()[%s] = %d, want 8", tc.fault, got)
			}
		})
	}
}

// Prob, Count, After, MinSize and the op set select exactly the calls the
// test says, and the same seed picks the same calls.
func TestRuleSelection(t *testing.T) {
	ctx := t.Context()
	pattern := func(seed uint64, rules ...Rule) string {
		f := New(openLocal(t), seed)
		f.SetRules(rules...)
		var b []byte
		for i := range 40 {
			data := []byte("x")
			if i%2 == 1 {
				data = make([]byte, 100)
			}
			if _, _, err := f.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{byte(i)}, Data: data}); err != nil {
				b = append(b, 'F')
			} else {
				b = append(b, '.')
			}
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		rule Rule
		want string
	}{
		{"after and count", Rule{Op: OpPutRecord, Fault: EIO, After: 3, Count: 2}, "...FF..................................."},
		{"min size", Rule{Op: OpPutRecord, Fault: NoSpace, MinSize: 50, Count: 3}, ".F.F.F.................................."},
		{"other op", Rule{Op: OpShardWrite | OpGetRecord, Fault: EIO}, "........................................"},
	} {
		if got := pattern(1, tc.rule); got != tc.want {
			t.Errorf("%s: failed calls\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	half := Rule{Op: OpPutRecord, Fault: EIO, Prob: 0.5}
	a, b, c := pattern(7, half), pattern(7, half), pattern(8, half)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 7 and 8 picked the same calls: %s", a)
	}
	if n := bytes.Count([]byte(a), []byte("F")); n < 8 || n > 32 {
		t.Errorf("prob 0.5 failed %d of 40 calls: %s", n, a)
	}
}

// A torn commit leaves a partial file visible and fails; a lost one leaves
// it and succeeds.
func TestTornAndLost(t *testing.T) {
	first, last := payload(1000), payload(400)
	for _, tc := range []struct {
		fault   Fault
		keep    float64
		wantErr bool
		wantLen int
	}{
		{Torn, 0, true, 1000 + 200},
		{Lost, 0.25, false, 1000 + 100},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			f := New(openLocal(t), 1)
			f.SetRules(Rule{Op: OpCommit, Fault: tc.fault, Keep: tc.keep, Count: 1})
			err := writeShard(t, f, shard, first, last)
			if tc.wantErr != (err != nil) || tc.wantErr && !errors.Is(err, syscall.EIO) {
				t.Fatalf("Commit: err = %v, want error %v (EIO)", err, tc.wantErr)
			}
			got, err := readShard(t, f, shard)
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte(nil), first...), last...)[:tc.wantLen]
			if !bytes.Equal(got, want) {
				t.Fatalf("stored %d bytes, want the first %d written", len(got), tc.wantLen)
			}
			// Count 1: the next write is whole.
			if err := writeShard(t, f, shard, first, last); err != nil {
				t.Fatal(err)
			}
			if got, _ := readShard(t, f, shard); len(got) != 1400 {
				t.Fatalf("second write stored %d bytes, want 1400", len(got))
			}
		})
	}
}

func bitDiff(a, b []byte) int {
	n := 0
	for i := range a {
		n += bits.OnesCount8(a[i] ^ b[i])
	}
	return n
}

// Flip changes exactly one bit of what is read, or of what is stored.
func TestFlip(t *testing.T) {
	ctx := t.Context()
	data := payload(64 << 10)
	f := New(openLocal(t), 3)
	if err := writeShard(t, f, shard, data); err != nil {
		t.Fatal(err)
	}
	f.SetRules(Rule{Op: OpRead, Fault: Flip, Count: 1})
	got, err := readShard(t, f, shard)
	if err != nil || len(got) != len(data) || bitDiff(got, data) != 1 {
		t.Fatalf("read with a flip: %d bytes, %d bits differ, err %v; want 1 bit", len(got), bitDiff(got, data), err)
	}
	if got, _ := readShard(t, f, shard); !bytes.Equal(got, data) {
		t.Fatal("a read flip changed the stored data")
	}

	f.SetRules(Rule{Op: OpWrite, Fault: Flip, Count: 1})
	keep := bytes.Clone(data)
	if err := writeShard(t, f, shard, data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, keep) {
		t.Fatal("a write flip changed the caller's buffer")
	}
	if got, _ := readShard(t, f, shard); bitDiff(got, data) != 1 {
		t.Fatalf("stored with a write flip: %d bits differ, want 1", bitDiff(got, data))
	}

	if _, _, err := f.PutRecord(ctx, driver.Record{Key: "r", Version: driver.Version{1}, Data: data[:100]}); err != nil {
		t.Fatal(err)
	}
	f.SetRules(Rule{Op: OpGetRecord, Fault: Flip})
	if r, err := f.GetRecord(ctx, "r"); err != nil || bitDiff(r.Data, data[:100]) != 1 {
		t.Fatalf("GetRecord with a flip: %d bits differ, err %v", bitDiff(r.Data, data[:100]), err)
	}
}

// The bandwidth cap holds writes and reads, together, to the rate asked
// for, and Slow delays each call.
func TestBandwidthAndSlow(t *testing.T) {
	const rate = 16 << 20 // bytes per second
	const size = 4 << 20
	f := New(openLocal(t), 1)
	f.SetBandwidth(rate)
	data := payload(size)
	began := time.Now()
	if err := writeShard(t, f, shard, data[:size/2], data[size/2:]); err != nil {
		t.Fatal(err)
	}
	got, err := readShard(t, f, shard)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	took := time.Since(began)
	want := time.Duration(2 * size * float64(time.Second) / rate) // 500ms
	// The cap may never be exceeded; the upper margin is for a loaded
	// machine and the race detector.
	if took < want-want/50 || took > want*10 {
		t.Errorf("8 MiB through a 16 MiB/s cap took %v, want %v", took, want)
	}

	// Four writers at once share the cap.
	began = time.Now()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			errs <- writeShard(t, f, driver.Shard{PG: 2, Name: fmt.Sprintf("%020x", i)}, data[:size/4], data[size/4:size/2])
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if took, want := time.Since(began), time.Duration(2*size*float64(time.Second)/rate); took < want-want/50 || took > want*10 {
		t.Errorf("4 concurrent writers of 2 MiB through a 16 MiB/s cap took %v, want %v", took, want)
	}

	f.SetBandwidth(0)
	f.SetRules(Rule{Op: OpGetRecord, Fault: Slow, Delay: 200 * time.Millisecond})
	began = time.Now()
	if _, err := f.GetRecord(t.Context(), "none"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("slow call took %v, want at least 200ms", took)
	}
}

// Plans read from JSON as the vaultd hook writes them.
func TestPlanJSON(t *testing.T) {
	in := `{"rules":[{"op":"write,commit","fault":"enospc","prob":0.5,"count":3},
		{"op":"reads","fault":"slow","delay":"20ms"}],"bandwidth":41943040}`
	var p Plan
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := Plan{Rules: []Rule{
		{Op: OpWrite | OpCommit, Fault: NoSpace, Prob: 0.5, Count: 3},
		{Op: OpReads, Fault: Slow, Delay: 20 * time.Millisecond},
	}, Bandwidth: 40 << 20}
	if got, _ := json.Marshal(p); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("got %s, want %s", got, must(json.Marshal(want)))
	}
	for _, bad := range []string{
		`{"rules":[{"op":"nope","fault":"eio"}]}`,
		`{"rules":[{"op":"write","fault":"torn"}]}`,
		`{"rules":[{"op":"read","fault":"slow"}]}`,
		`{"rules":[{"op":"read","fault":"eio","prob":2}]}`,
		`{"rules":[{"op":"read","fault":"melt"}]}`,
	} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
