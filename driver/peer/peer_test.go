package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/drivertest"
	"github.com/vaultaire/vaultaire/driver/local"
)

var testSecret = []byte("0123456789abcdef-test-secret")

const testDrive driver.DriveID = "d1"

// fixture is a local drive served by a Server on a loopback listener.
type fixture struct {
	dir   string // the local drive's directory
	local *local.Driver
	srv   *httptest.Server
	addr  string
	logs  *syncBuffer // the Server's log
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newFixture starts a local drive behind a Server; cleanup is registered
// with tb.
func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	ld, err := local.Open(tb.Context(), local.Config{Dir: dir, ID: testDrive, ClusterID: "c1", NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ld.Close() })
	logs := &syncBuffer{}
	s, err := NewServer(ServerConfig{
		Drives: DriveMap(map[driver.DriveID]driver.Driver{testDrive: ld}),
		Secret: testSecret,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	return &fixture{dir: dir, local: ld, srv: ts, addr: ts.Listener.Addr().String(), logs: logs}
}

// client returns a Client for the fixture's drive, changed by edit.
func (f *fixture) client(tb testing.TB, edit func(*ClientConfig)) *Client {
	tb.Helper()
	cc := ClientConfig{Addr: f.addr, Drive: testDrive, Secret: testSecret}
	if edit != nil {
		edit(&cc)
	}
	c, err := NewClient(cc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

// tmpFiles returns the names in the local drive's tmp/ directory.
func (f *fixture) tmpFiles(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(f.dir, "tmp"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// waitTmpEmpty waits up to 5s for tmp/ to be empty.
func (f *fixture) waitTmpEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		names := f.tmpFiles(t)
		if len(names) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmp/ still holds %q", names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		f := newFixture(t)
		return f.client(t, nil)
	})
}

func TestConfigValidate(t *testing.T) {
	drives := DriveMap(nil)
	tests := []struct {
		name string
		err  error
	}{
		{"server ok", ServerConfig{Drives: drives, Secret: testSecret}.Validate()},
		{"client ok", ClientConfig{Addr: "x:1", Drive: "d", Secret: testSecret}.Validate()},
	}
	for _, tt := range tests {
		if tt.err != nil {
			t.Errorf("%s: %v", tt.name, tt.err)
		}
	}
	bad := []struct {
		name string
		err  error
	}{
		{"server no drives", ServerConfig{Secret: testSecret}.Validate()},
		{"server short secret", ServerConfig{Drives: drives, Secret: []byte("short")}.Validate()},
		{"client no addr", ClientConfig{Drive: "d", Secret: testSecret}.Validate()},
		{"client no drive", ClientConfig{Addr: "x:1", Secret: testSecret}.Validate()},
		{"client short secret", ClientConfig{Addr: "x:1", Drive: "d", Secret: []byte("short")}.Validate()},
	}
	for _, tt := range bad {
		if tt.err == nil {
			t.Errorf("%s: Validate succeeded", tt.name)
		}
	}
}

func TestUnauthenticatedRequestRefused(t *testing.T) {
	f := newFixture(t)
	good := f.client(t, nil)
	ctx := t.Context()

	// A raw request without any authentication.
	u := f.srv.URL + "/v1/drives/d1/records?key=" + encodeKey("k") + "&version=" + driver.Version{15: 1}.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated PUT: status %d, want 401", resp.StatusCode)
	}

	now := time.Now()
	clients := []struct {
		name string
		edit func(*ClientConfig)
	}{
		{"wrong secret", func(c *ClientConfig) { c.Secret = []byte("another-secret-of-the-cluster") }},
		{"time 10m ahead", func(c *ClientConfig) { c.Now = func() time.Time { return now.Add(10 * time.Minute) } }},
		{"time 10m behind", func(c *ClientConfig) { c.Now = func() time.Time { return now.Add(-10 * time.Minute) } }},
	}
	for _, tt := range clients {
		c := f.client(t, tt.edit)
		_, _, err := c.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{15: 1}, Data: []byte("x")})
		if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, driver.ErrOffline) {
			t.Errorf("%s: PutRecord: got err %v, want ErrUnauthorized and driver.ErrOffline", tt.name, err)
		}
		w, err := c.CreateShard(ctx, driver.Shard{PG: 1, Name: "0123456789abcdef"})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("shard"))
		if err := w.Commit(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Commit: got err %v, want ErrUnauthorized", tt.name, err)
		}
		w.Abort()
		if _, err := c.Info(ctx); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Info: got err %v, want ErrUnauthorized", tt.name, err)
		}
	}

	logs := f.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "remote=127.0.0.1:") {
		t.Errorf("refusals not logged at Warn with the remote address:\n%s", logs)
	}
	if strings.Contains(logs, string(testSecret)) || strings.Contains(logs, "another-secret") {
		t.Errorf("log mentions a secret:\n%s", logs)
	}

	// Nothing changed.
	if _, err := good.GetRecord(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("GetRecord after refused puts: got err %v, want driver.ErrNotFound", err)
	}
	if _, err := good.ReadShard(ctx, driver.Shard{PG: 1, Name: "0123456789abcdef"}, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("ReadShard after refused writes: got err %v, want driver.ErrNotFound", err)
	}
	f.waitTmpEmpty(t)
}

func TestReplayRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	ctx := t.Context()
	if _, _, err := c.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{15: 1}}); err != nil {
		t.Fatal(err)
	}
	req, err := c.newRequest(ctx, http.MethodDelete, "/records", map[string][]string{
		"key": {encodeKey("k")}, "version": {driver.Version{}.String()},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(ctx)
	for i, r := range []*http.Request{req, replay} {
		resp, err := f.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := []int{http.StatusNoContent, http.StatusUnauthorized}[i]
		if resp.StatusCode != want {
			t.Errorf("request #%d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// The record is gone (first request), and a new one survives a replay.
	if _, _, err := c.PutRecord(ctx, driver.Record{Key: "k", Version: driver.Version{15: 2}}); err != nil {
		t.Fatal(err)
	}
	resp, err := f.srv.Client().Do(replay.Clone(ctx))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("third replay: status %d, want 401", resp.StatusCode)
	}
	if _, err := c.GetRecord(ctx, "k"); err != nil {
		t.Errorf("record deleted by a replay: %v", err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	ctx := t.Context()
	s := driver.Shard{PG: 4, Name: "00112233445566778899aabbccddeeff"}
	w, err := c.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 256<<10)
	for range 4 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err == nil {
		t.Errorf("Commit after Abort succeeded")
	}
	f.waitTmpEmpty(t)
	if _, err := c.ReadShard(ctx, s, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("ReadShard after Abort: got err %v, want driver.ErrNotFound", err)
	}
}

// rawUpload sends the head of a signed chunked shard upload on a raw
// connection and returns it.
func rawUpload(t *testing.T, f *fixture, s driver.Shard) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	path := "/v1/drives/d1/shards/" + strconv.FormatUint(uint64(s.PG), 10) + "/" + s.Name
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	nonce := fmt.Sprintf("raw-%d", time.Now().UnixNano())
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nTrailer: %s, %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n",
		path, f.addr, hdrLength, hdrSum, hdrTime, ts, hdrNonce, nonce, hdrAuth, sign(testSecret, "POST", path, "", ts, nonce))
	return conn
}

func TestConnectionDropLeavesNothing(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	ctx := t.Context()
	s := driver.Shard{PG: 5, Name: "ffeeddccbbaa99887766554433221100"}
	conn := rawUpload(t, f, s)
	chunk := bytes.Repeat([]byte("y"), 64<<10)
	for range 8 {
		fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	// Wait until the server is writing the temp file, then die mid-body.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.tmpFiles(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no temp file appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	f.waitTmpEmpty(t)
	if _, err := c.ReadShard(ctx, s, 0, -1); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("ReadShard after dropped upload: got err %v, want driver.ErrNotFound", err)
	}
}

func TestUploadWithoutTrailerNotCommitted(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 1000)
	sum := fmt.Sprintf("%016x", xxh3.Hash(data))
	tests := []struct {
		name    string
		trailer string
	}{
		{"no trailer", ""},
		{"wrong length", fmt.Sprintf("%s: 999\r\n%s: %s\r\n", hdrLength, hdrSum, sum)},
		{"wrong checksum", fmt.Sprintf("%s: 1000\r\n%s: %016x\r\n", hdrLength, hdrSum, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			s := driver.Shard{PG: 6, Name: "0123456789abcdef0123"}
			conn := rawUpload(t, f, s)
			fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\n%s\r\n", len(data), data, tt.trailer)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get(hdrError) != codeCorrupt {
				t.Errorf("status %d code %q, want 422 %q", resp.StatusCode, resp.Header.Get(hdrError), codeCorrupt)
			}
			f.waitTmpEmpty(t)
			if _, err := f.local.ReadShard(t.Context(), s, 0, -1); !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("ReadShard: got err %v, want driver.ErrNotFound", err)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient(ClientConfig{Addr: addr, Drive: testDrive, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, driver.ErrOffline) {
			t.Errorf("%s: got err %v, want driver.ErrOffline", what, err)
		}
	}
	_, err = c.Info(ctx)
	check("Info", err)
	_, err = c.ReadShard(ctx, s, 0, -1)
	check("ReadShard", err)
	check("DeleteShard", c.DeleteShard(ctx, s))
	_, _, err = c.PutRecord(ctx, driver.Record{Key: "k"})
	check("PutRecord", err)
	_, err = c.GetRecord(ctx, "k")
	check("GetRecord", err)
	check("DeleteRecord", c.DeleteRecord(ctx, "k", driver.Version{}))
	_, err = c.ListRecords(ctx, "", "", 1)
	check("ListRecords", err)
	w, err := c.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write([]byte("data"))
	cerr := w.Commit(ctx)
	if werr == nil {
		check("Commit", cerr)
	} else {
		check("Write", werr)
	}
	w.Abort()
}

func TestUnknownDrive(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, func(c *ClientConfig) { c.Drive = "no/such drive" })
	if _, err := c.Info(t.Context()); !errors.Is(err, driver.ErrOffline) {
		t.Errorf("Info of an unknown drive: got err %v, want driver.ErrOffline", err)
	}
	if _, err := c.GetRecord(t.Context(), "k"); !errors.Is(err, driver.ErrOffline) {
		t.Errorf("GetRecord of an unknown drive: got err %v, want driver.ErrOffline", err)
	}
}

// heapPeak samples the live heap until stop is called and returns the
// highest value seen.
func heapPeak() (stop func() uint64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

func TestLargeShardBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB shard")
	}
	const size = 64 << 20
	f := newFixture(t)
	c := f.client(t, nil)
	ctx := t.Context()
	s := driver.Shard{PG: 9, Name: "abcdefabcdefabcdef"}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := heapPeak()

	w, err := c.CreateShard(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	h := xxh3.New()
	for i := range size / len(chunk) {
		chunk[0] = byte(i)
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			w.Abort()
			t.Fatal(err)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := h.Sum64()
	rc, err := c.ReadShard(ctx, s, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.CopyBuffer(h, rc, make([]byte, 256<<10))
	rc.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes, %v; want %d", n, err, size)
	}
	if got := h.Sum64(); got != want {
		t.Errorf("read back xxh3 %016x, want %016x", got, want)
	}
	peak := stop()
	growth := int64(peak) - int64(base.HeapAlloc)
	t.Logf("64 MiB shard written and read back; peak heap growth %.1f MiB (base %.1f MiB)",
		float64(growth)/(1<<20), float64(base.HeapAlloc)/(1<<20))
	if growth > 24<<20 {
		t.Errorf("heap grew by %d MiB streaming a 64 MiB shard; want well under the shard size", growth>>20)
	}
}

func BenchmarkWriteShard1MiB(b *testing.B) {
	f := newFixture(b)
	var writes atomic.Int64
	c := f.client(b, func(cc *ClientConfig) { cc.HTTP = countingClient(&writes) })
	ctx := b.Context()
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := driver.Shard{PG: uint32(i % 256), Name: fmt.Sprintf("%016x", i)}
		i++
		w, err := c.CreateShard(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(writes.Load())/float64(b.N), "writes/op")
}

func BenchmarkReadShard1MiB(b *testing.B) {
	f := newFixture(b)
	c := f.client(b, nil)
	ctx := b.Context()
	s := driver.Shard{PG: 1, Name: "0123456789abcdef"}
	w, err := c.CreateShard(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := c.ReadShard(ctx, s, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
