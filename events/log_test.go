package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// accessFields and txnFields are the documented schemas, in order.
var (
	accessFields = []string{"time", "node", "request_id", "tenant", "operation", "bucket", "key",
		"bytes_in", "bytes_out", "object_size", "status", "error_code", "latency_ms", "client", "user_agent", "anonymous"}
	txnFields = []string{"time", "node", "request_id", "tenant", "operation", "bucket", "key",
		"version_id", "etag", "object_size"}
)

// accessLine is an access-log line as a reader decodes it.
type accessLine struct {
	Time       time.Time `json:"time"`
	Node       string    `json:"node"`
	RequestID  string    `json:"request_id"`
	Tenant     string    `json:"tenant"`
	Operation  string    `json:"operation"`
	Bucket     string    `json:"bucket"`
	Key        string    `json:"key"`
	KeyBase64  []byte    `json:"key_base64"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	ObjectSize int64     `json:"object_size"`
	Status     int       `json:"status"`
	ErrorCode  string    `json:"error_code"`
	LatencyMS  float64   `json:"latency_ms"`
	Client     string    `json:"client"`
	UserAgent  string    `json:"user_agent"`
	Anonymous  bool      `json:"anonymous"`
}

// txnLine is a transaction-log line as a reader decodes it.
type txnLine struct {
	Time       time.Time `json:"time"`
	Node       string    `json:"node"`
	RequestID  string    `json:"request_id"`
	Tenant     string    `json:"tenant"`
	Operation  string    `json:"operation"`
	Bucket     string    `json:"bucket"`
	Key        string    `json:"key"`
	KeyBase64  []byte    `json:"key_base64"`
	VersionID  string    `json:"version_id"`
	ETag       string    `json:"etag"`
	ObjectSize int64     `json:"object_size"`
	Dropped    uint64    `json:"dropped"`
}

// rawLines returns the lines of a file, newlines removed, checking that
// the file ends with a newline.
func rawLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// decodeLines decodes every line of path strictly: unknown fields and
// trailing data are errors.
func decodeLines[T any](t *testing.T, path string) []T {
	t.Helper()
	var out []T
	for i, line := range rawLines(t, path) {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var v T
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("%s line %d: %v: %q", path, i+1, err, line)
		}
		out = append(out, v)
	}
	return out
}

// fieldNames returns a JSON object's keys in order.
func fieldNames(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	var names []string
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q", line)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func sampleEvent(i int) s3.RequestEvent {
	return s3.RequestEvent{
		Time:       time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		Node:       "n1",
		RequestID:  fmt.Sprintf("REQ%06d", i),
		Tenant:     "alice",
		Operation:  "GetObject",
		Bucket:     "b",
		Key:        fmt.Sprintf("k/%d", i),
		BytesOut:   int64(i),
		ObjectSize: int64(i),
		Status:     200,
		Latency:    1500 * time.Microsecond,
		RemoteAddr: "127.0.0.1:1234",
		UserAgent:  "test",
	}
}

func mutationEvent(i int) s3.RequestEvent {
	ev := sampleEvent(i)
	ev.Operation, ev.BytesIn, ev.BytesOut = "PutObject", int64(i), 0
	ev.ETag, ev.VersionID = fmt.Sprintf(`"etag%d"`, i), fmt.Sprintf("%032x", i)
	return ev
}

func openTest(t *testing.T, cfg Config, h hooks) *Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	l, err := open(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// hostileKeys are keys a client may send that must not break a line.
var hostileKeys = []struct {
	name, key string
}{
	{"plain", "photos/2026/cat.jpg"},
	{"empty", ""},
	{"nul", "a\x00b"},
	{"newline", "line1\nline2\r\n"},
	{"quote and backslash", `a"b\c`},
	{"controls", "\x01\x07\x1b[31mred\x7f\t"},
	{"invalid utf-8", "bad\xff\xfe\xc3(end"},
	{"truncated rune", "caf\xc3"},
	{"surrogate half", "\xed\xa0\x80"},
	{"C1 CSI", "x\u009b2Jy"},
	{"line separators", "a\u2028b\u2029c"},
	{"multibyte", "日本語/ключ/🙂"},
	{"2 KB", strings.Repeat("k\x00\xff\n", 512)},
}

// wantKey is what a JSON reader gets back for key: each byte that is not
// part of valid UTF-8 becomes U+FFFD.
func wantKey(key string) string { return string([]rune(key)) }

// checkLine checks that line is one JSON object on one line, without raw
// control bytes, whose key decodes to what the key should.
func checkLine(t *testing.T, line []byte, key string) {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte{'\n'}) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	for _, c := range line[:len(line)-1] {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("raw control byte %#x in %q", c, line)
		}
	}
	if !json.Valid(line) {
		t.Fatalf("invalid JSON: %q", line)
	}
	var got struct {
		Key       string  `json:"key"`
		KeyBase64 *[]byte `json:"key_base64"`
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	if got.Key != wantKey(key) {
		t.Errorf("key = %q, want %q", got.Key, wantKey(key))
	}
	switch valid := got.Key == key; {
	case valid && got.KeyBase64 != nil:
		t.Errorf("key_base64 for a valid key %q", key)
	case !valid && (got.KeyBase64 == nil || string(*got.KeyBase64) != key):
		t.Errorf("key_base64 does not give back %q", key)
	}
}

func TestEncodeHostileKeys(t *testing.T) {
	for _, tc := range hostileKeys {
		t.Run(tc.name, func(t *testing.T) {
			ev := sampleEvent(1)
			ev.Key, ev.UserAgent = tc.key, tc.key
			checkLine(t, appendAccess(nil, &ev), tc.key)
			checkLine(t, appendTxn(nil, newTxnRecord(&ev)), tc.key)
		})
	}
}

func FuzzEncodeKey(f *testing.F) {
	for _, tc := range hostileKeys {
		f.Add(tc.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ev := sampleEvent(1)
		ev.Key, ev.UserAgent, ev.Bucket = key, key, key
		checkLine(t, appendAccess(nil, &ev), key)
		checkLine(t, appendTxn(nil, newTxnRecord(&ev)), key)
	})
}

func TestEncodeSchema(t *testing.T) {
	ev := mutationEvent(7)
	ev.ErrorCode = ""
	acc := appendAccess(nil, &ev)
	if got := fieldNames(t, string(acc)); !slices.Equal(got, accessFields) {
		t.Errorf("access fields %v, want %v", got, accessFields)
	}
	txn := appendTxn(nil, newTxnRecord(&ev))
	if got := fieldNames(t, string(txn)); !slices.Equal(got, txnFields) {
		t.Errorf("txn fields %v, want %v", got, txnFields)
	}
	var a accessLine
	if err := json.Unmarshal(acc, &a); err != nil {
		t.Fatal(err)
	}
	want := accessLine{Time: ev.Time, Node: "n1", RequestID: "REQ000007", Tenant: "alice", Operation: "PutObject",
		Bucket: "b", Key: "k/7", BytesIn: 7, ObjectSize: 7, Status: 200, LatencyMS: 1.5, Client: "127.0.0.1:1234", UserAgent: "test"}
	if !a.Time.Equal(want.Time) || a.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", a.Time, want.Time)
	}
	a.Time = want.Time
	if !equalJSON(a, want) {
		t.Errorf("access line %+v, want %+v", a, want)
	}
	if !bytes.Contains(acc, []byte(`"time":"2026-01-02T03:04:05.123456789Z"`)) {
		t.Errorf("time not RFC 3339 with nanoseconds in UTC: %s", acc)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, false},
		{"dir", Config{Dir: "x"}, true},
		{"negative size", Config{Dir: "x", MaxFileBytes: -1}, false},
		{"negative buffer", Config{Dir: "x", Buffer: -1}, false},
		{"negative files", Config{Dir: "x", MaxTxnFiles: -1}, false},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	d := Config{Dir: "x"}.withDefaults()
	if d.MaxFileBytes != 64<<20 || d.MaxFiles != 10 || d.MaxTxnFiles != 100 || d.Buffer != 8192 || d.TxnBuffer != 65536 || d.FlushInterval != time.Second {
		t.Errorf("defaults %+v", d)
	}
}

// TestFullQueueDrops stalls both writers and shows that ObserveRequest
// still returns at once, dropping and counting what does not fit.
func TestFullQueueDrops(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	stall := func() { <-release }
	l := openTest(t, Config{Buffer: 8, TxnBuffer: 4}, hooks{beforeAccess: stall, beforeTxn: stall})

	const calls, mutations = 10000, 100
	var slowest time.Duration
	start := time.Now()
	for i := range calls {
		ev := sampleEvent(i)
		if i < mutations {
			ev = mutationEvent(i)
		}
		t0 := time.Now()
		l.ObserveRequest(&ev)
		slowest = max(slowest, time.Since(t0))
	}
	took := time.Since(start)
	if took > 2*time.Second {
		t.Errorf("%d calls with stalled writers took %v", calls, took)
	}
	w, d := l.Stats()
	tw, td := l.TxnStats()
	t.Logf("%d calls in %v (slowest %v); access written %d dropped %d; txn written %d dropped %d", calls, took, slowest, w, d, tw, td)
	if d < calls-8-1 || td == 0 {
		t.Errorf("dropped %d access events and %d mutations with stalled writers", d, td)
	}

	unblock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w, d = l.Stats()
	if w+d != calls || d == 0 {
		t.Errorf("access: written %d + dropped %d != %d calls", w, d, calls)
	}
	if got := len(rawLines(t, filepath.Join(l.cfg.Dir, "access.log"))); uint64(got) != w {
		t.Errorf("access.log has %d lines, written %d", got, w)
	}
	tw, td = l.TxnStats()
	if tw+td != mutations || td == 0 {
		t.Errorf("txn: written %d + dropped %d != %d mutations", tw, td, mutations)
	}
	// The loss is recorded in the transaction log itself.
	var recs, dropped uint64
	for _, line := range decodeLines[txnLine](t, filepath.Join(l.cfg.Dir, "txn.log")) {
		if line.Operation == "Dropped" {
			dropped += line.Dropped
		} else {
			recs++
		}
	}
	if recs != tw || dropped != td {
		t.Errorf("txn.log: %d mutations and %d marked dropped, want %d and %d", recs, dropped, tw, td)
	}

	// After Close events are counted as dropped, never written.
	ev := mutationEvent(1)
	l.ObserveRequest(&ev)
	if w2, d2 := l.Stats(); w2 != w || d2 != d+1 {
		t.Errorf("after Close: written %d dropped %d, want %d and %d", w2, d2, w, d+1)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentObserve has many goroutines observe while the writers
// run and Close is called midway; with -race it checks the queues'
// locking. Every event is written or counted as dropped, never both.
func TestConcurrentObserve(t *testing.T) {
	l := openTest(t, Config{FlushInterval: time.Millisecond}, hooks{})
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	var observed sync.WaitGroup // half of each goroutine's events observed
	observed.Add(goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i == each/2 {
					observed.Done()
				}
				ev := mutationEvent(g*each + i)
				l.ObserveRequest(&ev)
			}
		})
	}
	observed.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	w, d := l.Stats()
	tw, td := l.TxnStats()
	if w+d != goroutines*each || tw+td != goroutines*each {
		t.Fatalf("access %d+%d, txn %d+%d, want %d each", w, d, tw, td, goroutines*each)
	}
	if w < goroutines*each/2 || tw < goroutines*each/2 {
		t.Errorf("written %d and %d: events observed before Close were lost", w, tw)
	}
	for _, kind := range []string{"access", "txn"} {
		seen := map[string]int{}
		for _, id := range requestIDs(t, kind, filepath.Join(l.cfg.Dir, kind+".log")) {
			if seen[id]++; seen[id] > 1 {
				t.Errorf("%s: %s written twice", kind, id)
			}
		}
		if want := map[string]uint64{"access": w, "txn": tw}[kind]; uint64(len(seen)) != want {
			t.Errorf("%s: %d lines, written %d", kind, len(seen), want)
		}
	}
}

// TestFlushInterval shows a line reaches the file within the flush
// interval, without Close.
func TestFlushInterval(t *testing.T) {
	l := openTest(t, Config{FlushInterval: 50 * time.Millisecond}, hooks{})
	ev := sampleEvent(1)
	l.ObserveRequest(&ev)
	path := filepath.Join(l.cfg.Dir, "access.log")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("REQ000001")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("line not flushed")
		}
	}
}

func TestHostileKeysInFile(t *testing.T) {
	l := openTest(t, Config{}, hooks{})
	for i, tc := range hostileKeys {
		ev := mutationEvent(i)
		ev.Key, ev.UserAgent = tc.key, tc.key
		l.ObserveRequest(&ev)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"access", "txn"} {
		f, err := os.Open(filepath.Join(l.cfg.Dir, kind+".log"))
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(f)
		for i, tc := range hostileKeys {
			line, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatalf("%s: line %d (%s): %v", kind, i+1, tc.name, err)
			}
			checkLine(t, line, tc.key)
		}
		if rest, _ := r.ReadBytes('\n'); len(rest) > 0 {
			t.Errorf("%s: extra data %q", kind, rest)
		}
		f.Close()
	}
}

// TestRotation writes numbered events and checks what rotation by size
// and retention by count leave.
func TestRotation(t *testing.T) {
	lineSize := len(appendAccess(nil, ptr(sampleEvent(100))))
	txnSize := len(appendTxn(nil, newTxnRecord(ptr(mutationEvent(100)))))
	tests := []struct {
		name        string
		maxBytes    int64
		maxFiles    int
		maxTxnFiles int
		events      int
		pruned      bool // older access files must have been deleted
	}{
		{"no rotation", 1 << 20, 3, 3, 50, false},
		{"some rotated, all kept", int64(10 * lineSize), 20, 20, 50, false},
		{"retention", int64(5 * lineSize), 2, 3, 100, true},
		{"line larger than a file", int64(lineSize / 2), 4, 4, 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, Config{Dir: dir, MaxFileBytes: tc.maxBytes, MaxFiles: tc.maxFiles, MaxTxnFiles: tc.maxTxnFiles}, hooks{})
			for i := range tc.events {
				ev := sampleEvent(100 + i)
				if i%2 == 0 {
					ev = mutationEvent(100 + i)
				}
				l.ObserveRequest(&ev)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// check compares what kind's files hold with a naive model: every
			// file but the current one holds perFile lines; the newest keep
			// rotated files are kept.
			check := func(kind string, keep, lineSize, total, every int) (files, kept int) {
				t.Helper()
				rotated, err := listRotated(dir, kind)
				if err != nil {
					t.Fatal(err)
				}
				perFile := max(1, int(tc.maxBytes)/lineSize)
				files = (total + perFile - 1) / perFile
				kept = min(keep, files-1)
				if len(rotated) != kept {
					t.Errorf("%s: %d rotated files %v, want %d", kind, len(rotated), rotated, kept)
				}
				// The files kept hold the newest lines, in order, none lost between them.
				var ids []string
				for _, name := range append(rotated, kind+".log") {
					path := filepath.Join(dir, name)
					st, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					if st.Size() > max(tc.maxBytes, int64(lineSize)) {
						t.Errorf("%s is %d bytes, over %d", name, st.Size(), tc.maxBytes)
					}
					ids = append(ids, requestIDs(t, kind, path)...)
				}
				var want []string
				for i := 0; i < tc.events; i += every {
					want = append(want, fmt.Sprintf("REQ%06d", 100+i))
				}
				want = want[len(want)-(kept*perFile+total-(files-1)*perFile):]
				if !slices.Equal(ids, want) {
					t.Errorf("%s: kept ids %v\nwant %v", kind, ids, want)
				}
				return files, kept
			}
			if files, kept := check("access", tc.maxFiles, lineSize, tc.events, 1); tc.pruned != (files-1 > kept) {
				t.Errorf("access: %d files written, %d kept: pruned %v, want %v", files, kept, files-1 > kept, tc.pruned)
			}
			check("txn", tc.maxTxnFiles, txnSize, (tc.events+1)/2, 2)
		})
	}
}

// requestIDs returns the request ids of a log file's lines, decoded
// strictly, leaving out "Dropped" lines.
func requestIDs(t *testing.T, kind, path string) []string {
	t.Helper()
	var ids []string
	if kind == "txn" {
		for _, line := range decodeLines[txnLine](t, path) {
			if line.Operation != "Dropped" {
				ids = append(ids, line.RequestID)
			}
		}
		return ids
	}
	for _, line := range decodeLines[accessLine](t, path) {
		ids = append(ids, line.RequestID)
	}
	return ids
}

func ptr[T any](v T) *T { return &v }

// TestRotatedNames checks that names sort in time order even when the
// clock does not move or steps back, and that foreign files survive.
func TestRotatedNames(t *testing.T) {
	dir := t.TempDir()
	foreign := []string{"access-notes.log", "access.log.bak", "txn-2026.log"}
	for _, name := range foreign {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	clock := []time.Time{
		time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), // same
		time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), // back
		time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	f := &rotFile{dir: dir, kind: "access", maxBytes: 10, keep: 3, log: discardLogger()}
	i := 0
	f.now = func() time.Time { t := clock[i]; i++; return t }
	for n := range 5 {
		if err := f.write(fmt.Appendf(nil, "line %d\n", n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := listRotated(dir, "access")
	want := []string{
		"access-20260501T000000.000000001Z.log",
		"access-20260501T000000.000000002Z.log",
		"access-20260601T000000.000000000Z.log",
	}
	if !slices.Equal(rotated, want) {
		t.Errorf("rotated %v, want %v", rotated, want)
	}
	for j, name := range want {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if wantLine := fmt.Sprintf("line %d\n", j+1); string(b) != wantLine {
			t.Errorf("%s holds %q, want %q", name, b, wantLine)
		}
	}
	for _, name := range foreign {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("foreign file %s: %v", name, err)
		}
	}
}

// TestReopenAfterCrash: a partial last line left by a crash is ended
// before new lines are appended, and earlier lines are kept.
func TestReopenAfterCrash(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "access.log"), []byte(`{"time":"x"}`+"\n"+`{"time":"2026-01-0`), 0o600)
	l := openTest(t, Config{Dir: dir}, hooks{})
	ev := sampleEvent(1)
	l.ObserveRequest(&ev)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := rawLines(t, filepath.Join(dir, "access.log"))
	if len(lines) != 3 || lines[1] != `{"time":"2026-01-0` || !json.Valid([]byte(lines[2])) {
		t.Errorf("lines after reopen: %q", lines)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func BenchmarkAppendAccess(b *testing.B) {
	ev := sampleEvent(100)
	line := appendAccess(nil, &ev)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		line = appendAccess(line[:0], &ev)
	}
}

// BenchmarkObserveRequest is the cost on the request path, with the
// writers keeping up or not.
func BenchmarkObserveRequest(b *testing.B) {
	l, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ev := sampleEvent(100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.ObserveRequest(&ev)
		}
	})
	b.StopTimer()
	w, d := l.Stats()
	b.ReportMetric(float64(d)/float64(w+d), "dropped/op")
}
