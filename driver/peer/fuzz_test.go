package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// wireOps are the endpoints the fuzz targets address, by selector byte.
var wireOps = []struct{ method, path string }{
	{"GET", "/info"},
	{"POST", "/shards/%s/%s"},
	{"GET", "/shards/%s/%s"},
	{"DELETE", "/shards/%s/%s"},
	{"PUT", "/records"},
	{"GET", "/records"},
	{"DELETE", "/records"},
}

// FuzzServerRequest sends authenticated requests with fuzzed path values,
// queries, bodies and trailers to a Server over a local drive. No request
// may panic the server or get a 5xx (the drive is healthy: every failure
// is the request's), and what the server reports stored is stored.
func FuzzServerRequest(f *testing.F) {
	fx := newFixture(f)
	// As vaultd runs it: behind a listener that authenticates each
	// connection, so nonces are not remembered (with a per-request replay
	// cache, a fuzzer's thousands of requests a second fill it in a
	// minute and every later one is refused, 503).
	s, err := NewServer(ServerConfig{Drives: DriveMap(map[driver.DriveID]driver.Driver{testDrive: fx.local}), Secret: testSecret, AuthenticatedConns: true})
	if err != nil {
		f.Fatal(err)
	}
	const name = "0123456789abcdef0123456789abcdef"
	key, ver := encodeKey("t\x00c\x00k"), "0000000000000000000000000000000a"
	for _, s := range []struct {
		op              uint8
		pg, name, query string
		body            string
		tLen, tSum      string
	}{
		{0, "", "", "", "", "", ""},
		{1, "7", name, "", "shard", "5", fmt.Sprintf("%016x", xxh3.HashString("shard"))},
		{1, "7", name, "", "shard", "6", "0000000000000000"},
		{1, "7", "../../../../etc/passwd", "", "x", "1", fmt.Sprintf("%016x", xxh3.HashString("x"))},
		{1, "4294967296", name, "", "", "0", fmt.Sprintf("%016x", xxh3.HashString(""))},
		{1, "-1", "ABCDEF0123456789", "", "", "", ""},
		{2, "7", name, "off=1&len=3", "", "", ""},
		{2, "7", name, "off=-1&len=99999999999999999999", "", "", ""},
		{2, "7", name, "off=9223372036854775807&len=9223372036854775807", "", "", ""},
		{3, "7", name, "", "", "", ""},
		{4, "", "", "key=" + key + "&version=" + ver, "record", "", ""},
		{4, "", "", "key=" + key + "&version=zz", "record", "", ""},
		{4, "", "", "key=%%%&version=" + ver, "", "", ""},
		{4, "", "", "key=&version=" + ver, "", "", ""},
		{4, "", "", "key=" + encodeKey(strings.Repeat("k", driver.MaxKeySize+1)) + "&version=" + ver, "", "", ""},
		{5, "", "", "key=" + key, "", "", ""},
		{5, "", "", "key=!!!", "", "", ""},
		{5, "", "", "prefix=&after=&limit=10", "", "", ""},
		{5, "", "", "prefix=" + encodeKey("t") + "&after=&limit=-1", "", "", ""},
		{5, "", "", "prefix=&after=&limit=99999999999999999999", "", "", ""},
		{6, "", "", "key=" + key + "&version=" + ver, "", "", ""},
		{6, "", "", "key=" + key + "&version=" + ver + ver, "", "", ""},
	} {
		f.Add(s.op, s.pg, s.name, s.query, []byte(s.body), s.tLen, s.tSum)
	}
	f.Fuzz(func(t *testing.T, op uint8, pg, name, query string, body []byte, tLen, tSum string) {
		o := wireOps[int(op)%len(wireOps)]
		path := "/v1/drives/" + string(testDrive) + o.path
		if strings.Contains(o.path, "%s") {
			path = fmt.Sprintf(path, url.PathEscape(pg), url.PathEscape(name))
		}
		u, err := url.Parse(path + "?" + query)
		if err != nil {
			return // no client can send it
		}
		req, err := http.NewRequestWithContext(t.Context(), o.method, "http://peer/", bytes.NewReader(body))
		if err != nil {
			return // not a method
		}
		req.URL = u
		if o.method == "POST" {
			req.Trailer = http.Header{}
			if tLen != "" {
				req.Trailer.Set(hdrLength, tLen)
			}
			if tSum != "" {
				req.Trailer.Set(hdrSum, tSum)
			}
		}
		rpcauth.Sign(req, testSecret, time.Now())
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		status := w.Code
		if status >= 500 {
			t.Fatalf("%s %s: %d %s %s", o.method, u, status, w.Header().Get(hdrError), w.Body.String())
		}
		if status >= 300 {
			// The mux itself redirects unclean paths and answers unknown
			// routes; every answer of the server's own has a code.
			if status >= 400 && w.Header().Get(hdrError) == "" && status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d without an error code", o.method, u, status)
			}
			return
		}
		switch o.method + " " + o.path {
		case "POST /shards/%s/%s": // committed: it reads back as sent
			sh, err := shardOf(req)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := fx.local.ReadShard(t.Context(), sh, 0, -1)
			if err != nil {
				t.Fatalf("shard %v answered %d but does not read: %v", sh, status, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("shard %v holds %q, %v; want %q", sh, got, err, body)
			}
			fx.local.DeleteShard(t.Context(), sh)
		case "PUT /records":
			k, _ := keyParam(req, "key")
			rec, err := fx.local.GetRecord(t.Context(), k)
			if err != nil || rec.Version.String() < req.URL.Query().Get("version") {
				t.Fatalf("record %q answered %d but reads %+v, %v", k, status, rec, err)
			}
			fx.local.DeleteRecord(t.Context(), k, rec.Version)
		}
	})
}

// fakePeer is a peer answering every request with the response set last.
type fakePeer struct {
	mu      sync.Mutex // guards the following fields
	status  int
	header  http.Header
	trailer http.Header
	body    []byte
}

func (p *fakePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	status, header, trailer, body := p.status, p.header, p.trailer, p.body
	p.mu.Unlock()
	for k, vs := range header {
		w.Header()[k] = vs
	}
	if len(trailer) > 0 {
		w.Header().Set("Trailer", strings.Join(sortedKeys(trailer), ", "))
	}
	w.WriteHeader(status)
	w.Write(body)
	for k, vs := range trailer {
		w.Header()[k] = vs
	}
}

func sortedKeys(h http.Header) []string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	return ks
}

// FuzzClientResponse answers a Client's calls with fuzzed responses, as a
// broken or hostile peer could: no call may panic, allocate much more
// than the response holds, or succeed with anything but what the response
// says; every failure is an error (wrapping a driver sentinel when the
// response carried a known code).
func FuzzClientResponse(f *testing.F) {
	peer := &fakePeer{}
	ts := httptest.NewServer(peer)
	f.Cleanup(ts.Close)
	c, err := NewClient(ClientConfig{Addr: ts.Listener.Addr().String(), Drive: testDrive, Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.CloseIdleConnections)
	ver := "0000000000000000000000000000000a"
	list, _ := json.Marshal(wireList{Records: []wireRecord{{Key: []byte("k"), Version: ver, Data: []byte("d")}}})
	for _, s := range []struct {
		op                  uint8
		status              uint16
		code, version, prev string
		body                string
		trailerCode         string
	}{
		{0, 200, "", "", "", `{"ID":"d1","Capacity":10}`, ""},
		{0, 200, "", "", "", `{"ID":`, ""},
		{2, 200, "", "", "", "shard bytes", ""},
		{2, 200, "", "", "", "cut", codeUnexpectedEOF},
		{2, 404, codeNotFound, "", "", "no such shard", ""},
		{3, 204, "", "", "", "", ""},
		{4, 200, "", "", "1", "prev", ""},
		{4, 200, "", ver, "1", "prev", ""},
		{4, 200, "", "", "0", "", ""},
		{4, 409, codeStale, "", "", "stale", ""},
		{5, 200, "", ver, "", "data", ""},
		{5, 200, "", "xyz", "", "data", ""},
		{5, 401, "", "", "", "", ""},
		{5, 999, "weird", "", "", "", ""},
		{6, 204, "", "", "", "", ""},
		{7, 200, "", "", "", string(list), ""},
		{7, 200, "", "", "", `{"records":[{"key":"!!","version":"` + ver + `"}]}`, ""},
		{7, 200, "", "", "", `{"records":[{"version":"short"}]}`, ""},
		{7, 200, "", "", "", `{"records":null}`, ""},
		{7, 200, "", "", "", strings.Repeat("[", 10000), ""},
	} {
		f.Add(s.op, s.status, s.code, s.version, s.prev, []byte(s.body), s.trailerCode)
	}
	sh := driver.Shard{PG: 7, Name: "0123456789abcdef0123456789abcdef"}
	f.Fuzz(func(t *testing.T, op uint8, status uint16, code, version, prev string, body []byte, trailerCode string) {
		if status < 200 || status > 599 {
			status = 200 + status%400
		}
		h := http.Header{}
		for k, v := range map[string]string{hdrError: code, hdrVersion: version, hdrPrevVersion: version, hdrPrev: prev} {
			if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
				h.Set(k, v)
			}
		}
		tr := http.Header{}
		if trailerCode != "" && !strings.ContainsAny(trailerCode, "\r\n\x00") {
			tr.Set(hdrError, trailerCode)
		}
		if status == http.StatusNoContent || status == http.StatusNotModified {
			body = nil // such a response has no body
		}
		peer.mu.Lock()
		peer.status, peer.header, peer.trailer, peer.body = int(status), h, tr, body
		peer.mu.Unlock()

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var got []byte
		var callErr error
		switch op % 8 {
		case 0:
			_, callErr = c.Info(t.Context())
		case 1:
			w, err := c.CreateShard(t.Context(), sh)
			if err == nil {
				if _, err = w.Write([]byte("data")); err == nil {
					err = w.Commit(t.Context())
				} else {
					w.Abort()
				}
			}
			callErr = err
		case 2:
			rc, err := c.ReadShard(t.Context(), sh, 0, -1)
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
				if err == nil && !bytes.Equal(got, body) {
					t.Fatalf("ReadShard returned %q, the peer sent %q", got, body)
				}
			}
			callErr = err
		case 3:
			callErr = c.DeleteShard(t.Context(), sh)
		case 4:
			var p driver.Record
			var ok bool
			p, ok, callErr = c.PutRecord(t.Context(), driver.Record{Key: "k", Version: driver.Version{1}, Data: []byte("d")})
			if callErr == nil && ok && (!bytes.Equal(p.Data, body) || p.Version.String() != strings.ToLower(version)) {
				t.Fatalf("PutRecord's previous record %+v, the peer sent %q version %q", p, body, version)
			}
		case 5:
			var r driver.Record
			r, callErr = c.GetRecord(t.Context(), "k")
			if callErr == nil && (!bytes.Equal(r.Data, body) || r.Version.String() != strings.ToLower(version)) {
				t.Fatalf("GetRecord = %+v, the peer sent %q version %q", r, body, version)
			}
		case 6:
			callErr = c.DeleteRecord(t.Context(), "k", driver.Version{1})
		case 7:
			_, callErr = c.ListRecords(t.Context(), "", "", 10)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20+32*uint64(len(body)) {
			t.Fatalf("op %d on a %d-byte response allocated %d bytes", op%8, len(body), n)
		}
		if callErr == nil && status >= 300 {
			t.Fatalf("op %d succeeded on a %d response", op%8, status)
		}
		if callErr != nil && code != "" && status >= 300 {
			known := false
			for _, e := range errorCodes {
				known = known || e.code == code
			}
			if known && !errors.Is(callErr, driver.ErrOffline) && !errors.Is(callErr, driver.ErrNotFound) && !errors.Is(callErr, driver.ErrStale) &&
				!errors.Is(callErr, driver.ErrInvalidName) && !errors.Is(callErr, driver.ErrCorrupt) && !errors.Is(callErr, driver.ErrForeignDrive) &&
				!errors.Is(callErr, io.ErrUnexpectedEOF) {
				t.Fatalf("op %d: code %q gave %v, which wraps no sentinel", op%8, code, callErr)
			}
		}
	})
}
