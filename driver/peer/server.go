package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// MaxListLimit is the most records one ListRecords call returns over the
// RPC; a Client asking for more gets a shorter page (the contract's "up to
// limit") and continues from the last key.
const MaxListLimit = 10_000

// MaxRecordSize is the largest record Data the Server accepts, in bytes.
const MaxRecordSize = 64 << 20

// copyBufSize is the size of the buffers shard bytes stream through.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Drives returns the drive served under id. It is called on every
	// request, so the set of drives may change while the Server runs; it
	// must be safe for concurrent use. DriveMap adapts a fixed map.
	Drives func(id driver.DriveID) (driver.Driver, bool)
	// Secret is the cluster secret (VAULT_CLUSTER_SECRET), at least
	// MinSecretSize bytes. It is never logged.
	Secret []byte
	// Logger receives refused requests (Warn) and failures. Nil discards.
	Logger *slog.Logger
	// MaxSkew is how far a request's time may be from Now. Zero means
	// DefaultMaxSkew.
	MaxSkew time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// AuthenticatedConns says the listener authenticates every connection
	// first (cluster.ListenRPC): requests are then checked for signature
	// and time but their nonces are not remembered, so sustained load
	// cannot fill a replay cache.
	AuthenticatedConns bool
}

// Validate reports a missing Drives or a short Secret.
func (c ServerConfig) Validate() error {
	switch {
	case c.Drives == nil:
		return errors.New("driver/peer: server config: Drives is nil")
	case len(c.Secret) < MinSecretSize:
		return fmt.Errorf("driver/peer: server config: secret shorter than %d bytes", MinSecretSize)
	case c.MaxSkew < 0:
		return errors.New("driver/peer: server config: negative MaxSkew")
	}
	return nil
}

// DriveMap returns a ServerConfig.Drives serving the drives of m, which must
// not be modified afterwards.
func DriveMap(m map[driver.DriveID]driver.Driver) func(driver.DriveID) (driver.Driver, bool) {
	return func(id driver.DriveID) (driver.Driver, bool) {
		d, ok := m[id]
		return d, ok
	}
}

// Server serves the drives of this node to peers. It is an http.Handler, to
// be mounted on the node's RPC listener, and is safe for concurrent use.
type Server struct {
	drives func(driver.DriveID) (driver.Driver, bool)
	auth   *rpcauth.Verifier
	log    *slog.Logger
	mux    *http.ServeMux
	now    func() time.Time
	// arrivals tells calls that arrive after their sender gave them up
	// (late.go).
	arrivals arrivals
}

// NewServer returns a Server for c.
func NewServer(c ServerConfig) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		drives: c.Drives,
		auth:   newVerifier(c),
		log:    c.Logger,
		mux:    http.NewServeMux(),
		now:    c.Now,
	}
	s.mux.HandleFunc("GET /v1/drives/{id}/info", s.withDrive(s.info))
	s.mux.HandleFunc("POST /v1/drives/{id}/shards/{pg}/{name}", s.withDrive(s.putShard))
	s.mux.HandleFunc("GET /v1/drives/{id}/shards/{pg}/{name}", s.withDrive(s.getShard))
	s.mux.HandleFunc("DELETE /v1/drives/{id}/shards/{pg}/{name}", s.withDrive(s.deleteShard))
	s.mux.HandleFunc("PUT /v1/drives/{id}/records", s.withDrive(s.putRecord))
	s.mux.HandleFunc("GET /v1/drives/{id}/records", s.withDrive(s.getRecords))
	s.mux.HandleFunc("DELETE /v1/drives/{id}/records", s.withDrive(s.deleteRecord))
	return s, nil
}

// ServeHTTP authenticates r and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.Check(r); err != nil {
		if errors.Is(err, rpcauth.ErrReplayFull) {
			s.log.Warn("peer: replay cache full, refusing request", "remote", r.RemoteAddr)
			writeError(w, codeOffline, http.StatusServiceUnavailable, "replay cache full")
			return
		}
		s.log.Warn("peer: refused unauthenticated request",
			"remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "reason", err.Error())
		writeError(w, codeUnauthorized, http.StatusUnauthorized, "not authenticated")
		return
	}
	if s.lateRequest(r) {
		writeError(w, codeOffline, http.StatusServiceUnavailable, "call arrived after the sender gave it up")
		return
	}
	switch f, ok, err := fenceOf(r); {
	case err != nil:
		badRequest(w, "%v", err)
		return
	case ok:
		r = r.WithContext(WithFence(r.Context(), f))
	}
	switch l, ok, err := leaseOf(r); {
	case err != nil:
		badRequest(w, "%v", err)
		return
	case ok:
		r = r.WithContext(WithLease(r.Context(), l))
	}
	s.mux.ServeHTTP(w, r)
}

// withDrive resolves the {id} path value to a drive.
func (s *Server) withDrive(h func(http.ResponseWriter, *http.Request, driver.Driver)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := driver.DriveID(r.PathValue("id"))
		d, ok := s.drives(id)
		if !ok {
			writeError(w, codeNoDrive, http.StatusNotFound, fmt.Sprintf("drive %q not served here", id))
			return
		}
		h(w, r, d)
	}
}

// writeError sends an error response.
func writeError(w http.ResponseWriter, code string, status int, msg string) {
	h := w.Header()
	h.Set(hdrError, code)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

// fail sends the error response for err, returned by a drive.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, status := codeOf(err)
	if code == codeInternal {
		s.log.Error("peer: drive operation failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, status, err.Error())
}

// badRequest sends a bad_request response.
func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, codeBadRequest, http.StatusBadRequest, fmt.Sprintf(format, args...))
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	info, err := d.Info(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}

// shardOf parses the {pg} and {name} path values.
func shardOf(r *http.Request) (driver.Shard, error) {
	pg, err := strconv.ParseUint(r.PathValue("pg"), 10, 32)
	if err != nil {
		return driver.Shard{}, fmt.Errorf("malformed placement group %q", r.PathValue("pg"))
	}
	return driver.Shard{PG: uint32(pg), Name: r.PathValue("name")}, nil
}

// putShard streams the body into a local ShardWriter and commits it only
// if the body ended cleanly and its trailers match.
func (s *Server) putShard(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	sh, err := shardOf(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	ctx := r.Context()
	sw, err := d.CreateShard(ctx, sh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done := false
	defer func() {
		if !done {
			sw.Abort()
		}
	}()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	h := xxh3.New()
	var n int64
	for {
		m, rerr := r.Body.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			if _, err := sw.Write(buf[:m]); err != nil {
				s.fail(w, r, err)
				return
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.log.Info("peer: shard upload interrupted", "remote", r.RemoteAddr, "path", r.URL.Path, "bytes", n, "err", rerr)
			badRequest(w, "reading shard body: %v", rerr)
			return
		}
	}
	wantLen, wantSum := r.Trailer.Get(hdrLength), r.Trailer.Get(hdrSum)
	if wantLen == "" || wantSum == "" {
		writeError(w, codeCorrupt, http.StatusUnprocessableEntity, "shard body without length and checksum trailers")
		return
	}
	if gotLen, gotSum := strconv.FormatInt(n, 10), fmt.Sprintf("%016x", h.Sum64()); gotLen != wantLen || gotSum != wantSum {
		writeError(w, codeCorrupt, http.StatusUnprocessableEntity,
			fmt.Sprintf("shard body mismatch: got %s bytes xxh3 %s, trailer says %s bytes xxh3 %s", gotLen, gotSum, wantLen, wantSum))
		return
	}
	done = true // Commit aborts by itself on failure
	if err := sw.Commit(ctx); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getShard streams a range of a shard. Errors after the response started
// go into the X-Vault-Error trailer.
func (s *Server) getShard(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	sh, err := shardOf(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	q := r.URL.Query()
	off, length := int64(0), int64(-1)
	if v := q.Get("off"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil {
			badRequest(w, "malformed off %q", v)
			return
		}
	}
	if v := q.Get("len"); v != "" {
		if length, err = strconv.ParseInt(v, 10, 64); err != nil {
			badRequest(w, "malformed len %q", v)
			return
		}
	}
	if off < 0 || length < -1 {
		badRequest(w, "invalid range off %d len %d", off, length) // a driver's refusal would be a 500
		return
	}
	rc, err := d.ReadShard(r.Context(), sh, off, length)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Trailer", hdrError+", "+hdrMessage)
	h.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return // the client went away
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			code, _ := codeOf(rerr)
			h.Set(hdrError, code)
			h.Set(hdrMessage, rerr.Error())
			return
		}
	}
}

func (s *Server) deleteShard(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	sh, err := shardOf(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if err := d.DeleteShard(r.Context(), sh); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// keyParam decodes the base64url query parameter name; it must be present.
func keyParam(r *http.Request, name string) (string, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return "", fmt.Errorf("missing %s", name)
	}
	k, err := decodeKey(q.Get(name))
	if err != nil {
		return "", fmt.Errorf("malformed %s: %v", name, err)
	}
	return k, nil
}

func (s *Server) putRecord(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	key, err := keyParam(r, "key")
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	v, err := parseVersion(r.URL.Query().Get("version"))
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRecordSize))
	if err != nil {
		badRequest(w, "reading record body: %v", err)
		return
	}
	prev, ok, err := d.PutRecord(r.Context(), driver.Record{Key: key, Version: v, Data: data})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if !ok {
		h.Set(hdrPrev, "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set(hdrPrev, "1")
	h.Set(hdrPrevVersion, prev.Version.String())
	h.Set("Content-Length", strconv.Itoa(len(prev.Data)))
	w.WriteHeader(http.StatusOK)
	w.Write(prev.Data)
}

// getRecords serves GetRecord (with key) and ListRecords (without).
func (s *Server) getRecords(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	if r.URL.Query().Has("key") {
		s.getRecord(w, r, d)
	} else {
		s.listRecords(w, r, d)
	}
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	key, err := keyParam(r, "key")
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	ctx := r.Context()
	if r.URL.Query().Has("fill") {
		ctx = driver.WithFill(ctx) // a client's GET or HEAD on the caller's node
	}
	rec, err := d.GetRecord(ctx, key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(hdrVersion, rec.Version.String())
	h.Set("Content-Length", strconv.Itoa(len(rec.Data)))
	w.WriteHeader(http.StatusOK)
	w.Write(rec.Data)
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	prefix, err := keyParam(r, "prefix")
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	after, err := keyParam(r, "after")
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 {
		badRequest(w, "malformed limit %q", r.URL.Query().Get("limit"))
		return
	}
	recs, err := d.ListRecords(r.Context(), prefix, after, min(limit, MaxListLimit))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := wireList{Records: make([]wireRecord, len(recs))}
	for i, rec := range recs {
		out.Records[i] = wireRecord{
			Key:       []byte(rec.Key),
			Version:   rec.Version.String(),
			Data:      rec.Data,
			Truncated: rec.Truncated,
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request, d driver.Driver) {
	key, err := keyParam(r, "key")
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	v, err := parseVersion(r.URL.Query().Get("version"))
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if err := d.DeleteRecord(r.Context(), key, v); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func newVerifier(c ServerConfig) *rpcauth.Verifier {
	if c.AuthenticatedConns {
		return rpcauth.NewConnVerifier(c.Secret, c.MaxSkew, c.Now)
	}
	return rpcauth.NewVerifier(c.Secret, c.MaxSkew, c.Now)
}
