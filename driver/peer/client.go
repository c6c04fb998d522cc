package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Addr is the peer's RPC listener, "host:port".
	Addr string
	// Drive is the drive of the peer this Client reaches.
	Drive driver.DriveID
	// Secret is the cluster secret, at least MinSecretSize bytes.
	Secret []byte
	// HTTP carries the requests. Nil means a client with a 5s dial timeout
	// and kept-alive idle connections; it must not set an overall Timeout,
	// which would cut long shard streams (the deadlines below bound every
	// call instead).
	HTTP *http.Client
	// CallTimeout bounds a call with a small answer (Info, records,
	// DeleteShard, a listing page) from sending to the answer's last byte,
	// and the wait for a shard upload's answer in Commit (the peer's fsync
	// and rename). Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// ProgressTimeout bounds each step of a shard stream: the wait for a
	// download's first byte, and every Write of an upload and Read of a
	// download. A stream stays open as long as it keeps moving, however
	// long the shard. Zero means DefaultProgressTimeout.
	ProgressTimeout time.Duration
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger
	// Now is the clock used to sign requests. Nil means time.Now.
	Now func() time.Time
}

// Default deadlines of a Client: a paused or partitioned peer is given up
// within seconds, so the engine's quorum logic can go on without it, while
// a merely busy peer on a loaded machine has ample time.
const (
	DefaultCallTimeout     = 5 * time.Second
	DefaultProgressTimeout = 5 * time.Second
)

// Validate reports a missing address or drive or a short secret.
func (c ClientConfig) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("driver/peer: client config: Addr is empty")
	case c.Drive == "":
		return errors.New("driver/peer: client config: Drive is empty")
	case len(c.Secret) < MinSecretSize:
		return fmt.Errorf("driver/peer: client config: secret shorter than %d bytes", MinSecretSize)
	}
	return nil
}

// Client is a driver.Driver for one drive of a peer node, reached through
// the peer's Server. It is safe for concurrent use. Info reports the peer
// drive's identity and usage with Class "peer".
type Client struct {
	base   string // "http://" + Addr
	prefix string // escaped "/v1/drives/{id}"
	where  string // Addr/Drive, for error messages
	secret []byte
	http   *http.Client
	log    *slog.Logger
	now    func() time.Time

	callTimeout, progressTimeout time.Duration
}

var _ driver.Driver = (*Client)(nil)

// errNoProgress is the cause of a request cancelled by a deadline of the
// Client's (CallTimeout, ProgressTimeout).
var errNoProgress = errors.New("peer did not answer in time")

// NewClient returns a Client for c. It does not contact the peer.
func NewClient(c ClientConfig) (*Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.HTTP == nil {
		c.HTTP = defaultHTTPClient()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.ProgressTimeout <= 0 {
		c.ProgressTimeout = DefaultProgressTimeout
	}
	return &Client{
		callTimeout:     c.CallTimeout,
		progressTimeout: c.ProgressTimeout,
		base:            "http://" + c.Addr,
		prefix:          "/v1/drives/" + url.PathEscape(string(c.Drive)),
		where:           c.Addr + "/" + string(c.Drive),
		secret:          append([]byte(nil), c.Secret...),
		http:            c.HTTP,
		log:             c.Logger.With("peer", c.Addr, "drive", string(c.Drive)),
		now:             c.Now,
	}, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: defaultTransport((&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext)}
}

// defaultTransport is the transport of defaultHTTPClient, dialing with dial.
func defaultTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     TransportBufferSize,
		ReadBufferSize:      TransportBufferSize,
	}
}

// TransportBufferSize is the size of the write and read buffers an
// http.Transport carrying peer calls should have (WriteBufferSize,
// ReadBufferSize). A shard upload is a chunked request body, each chunk
// flushed on its own; with net/http's default 4 KiB buffer a chunk went out
// as a 4 KiB write (the chunk header and the start of the data) plus one
// for the rest, each its own TLS record and system call. Together with
// chunks as large as the shard writer's Writes (bodyPipe hands them to the
// transport whole), a 1 MiB shard upload takes 14 writes instead of 98
// (TestShardUploadWrites).
const TransportBufferSize = 64 << 10

// CloseIdleConnections closes the Client's idle connections to the peer.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// newRequest returns a signed request for path (below the drive's prefix)
// and query.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := c.base + c.prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	setFence(ctx, req.Header)
	rpcauth.Sign(req, c.secret, c.now())
	return req, nil
}

// errorf wraps err with the operation and the drive.
func (c *Client) errorf(op string, err error) error {
	return fmt.Errorf("driver/peer: %s %s: %w", op, c.where, err)
}

// transportError returns the error for a failed round trip: the ctx error
// if ctx is done, otherwise err wrapped with driver.ErrOffline.
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return c.errorf(op, cerr)
	}
	return fmt.Errorf("driver/peer: %s %s: %w: %w", op, c.where, driver.ErrOffline, err)
}

// deadline returns a ctx for one request below ctx, a timer that cancels
// it with errNoProgress when it fires (stopped; Reset arms it), and its
// cancel.
func deadline(ctx context.Context) (context.Context, *time.Timer, context.CancelFunc) {
	rctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(time.Hour, func() { cancel(errNoProgress) })
	t.Stop()
	return rctx, t, func() { t.Stop(); cancel(context.Canceled) }
}

// stalled wraps err when rctx was cancelled by a Client deadline.
func stalled(rctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(rctx), errNoProgress) {
		return fmt.Errorf("%w: %w", errNoProgress, err)
	}
	return err
}

// do sends req and returns a 2xx response, whose body the caller closes.
func (c *Client) do(ctx context.Context, op string, req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, op, err)
	}
	if resp.StatusCode/100 != 2 {
		err := responseError(resp)
		resp.Body.Close()
		return nil, c.errorf(op, err)
	}
	return resp, nil
}

// Response body bounds: a peer answering more than the largest legitimate
// response of a call is broken (or not a peer), and is not allowed to make
// the Client buffer without end. The answer is then driver.ErrCorrupt.
const (
	// smallResponse bounds the responses holding no record: Info's JSON,
	// a delete's or a shard upload's answer.
	smallResponse = 64 << 10
	// recordResponse bounds a record's Data (GetRecord, the record
	// PutRecord replaced): the largest record the Server accepts.
	recordResponse = MaxRecordSize
	// listResponse bounds a ListRecords page: MaxListLimit records, each
	// a JSON object of its key and head of Data (at most MaxKeySize and
	// driver.ListDataMax bytes, base64-encoded) and its version (hex),
	// plus the punctuation.
	listResponse = MaxListLimit*((driver.MaxKeySize+2)/3*4+(driver.ListDataMax+2)/3*4+256) + 64
)

// roundTrip sends a request whose response body is at most limit bytes
// and returns it.
func (c *Client) roundTrip(ctx context.Context, op, method, path string, q url.Values, body []byte, limit int64) (*http.Response, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, c.errorf(op, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	rctx, t, cancel := deadline(ctx)
	defer cancel()
	t.Reset(c.callTimeout)
	req, err := c.newRequest(rctx, method, path, q, rd)
	if err != nil {
		return nil, nil, c.errorf(op, err)
	}
	// The call is given up at the CallTimeout (or ctx's deadline, if
	// sooner): the peer must not apply it after that (late.go).
	timeout := c.callTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), 1)
	}
	req.Header.Set(hdrTimeout, strconv.FormatInt(int64(timeout), 10))
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, b, err := c.finish(ctx, op, req, limit)
	return resp, b, stalled(rctx, err)
}

// finish sends req and reads its response body, failing with
// driver.ErrCorrupt if it is longer than limit bytes.
func (c *Client) finish(ctx context.Context, op string, req *http.Request, limit int64) (*http.Response, []byte, error) {
	resp, err := c.do(ctx, op, req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, nil, c.errorf(op, fmt.Errorf("%w: response of %d bytes, at most %d expected", driver.ErrCorrupt, resp.ContentLength, limit))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, c.transportError(ctx, op, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, c.errorf(op, fmt.Errorf("%w: response longer than %d bytes", driver.ErrCorrupt, limit))
	}
	return resp, b, nil
}

// Info returns the peer drive's Info with Class "peer".
func (c *Client) Info(ctx context.Context) (driver.Info, error) {
	_, body, err := c.roundTrip(ctx, "info", http.MethodGet, "/info", nil, nil, smallResponse)
	if err != nil {
		return driver.Info{}, err
	}
	var info driver.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return driver.Info{}, c.errorf("info", fmt.Errorf("decoding response: %w", err))
	}
	info.Class = driver.ClassPeer
	return info, nil
}

func shardPath(s driver.Shard) string {
	return "/shards/" + strconv.FormatUint(uint64(s.PG), 10) + "/" + s.Name
}

// ReadShard streams a range of shard s from the peer.
func (c *Client) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	op := "read shard"
	if err := s.Validate(); err != nil {
		return nil, c.errorf(op, err)
	}
	op = fmt.Sprintf("read shard %d/%s", s.PG, s.Name)
	if off < 0 || length < -1 {
		return nil, c.errorf(op, fmt.Errorf("invalid range off %d length %d", off, length))
	}
	if err := ctx.Err(); err != nil {
		return nil, c.errorf(op, err)
	}
	q := url.Values{"off": {strconv.FormatInt(off, 10)}, "len": {strconv.FormatInt(length, 10)}}
	rctx, wd, cancel := deadline(ctx)
	wd.Reset(c.progressTimeout) // until the answer's headers
	req, err := c.newRequest(rctx, http.MethodGet, shardPath(s), q, nil)
	if err != nil {
		cancel()
		return nil, c.errorf(op, err)
	}
	resp, err := c.do(ctx, op, req)
	wd.Stop()
	if err != nil {
		cancel()
		return nil, stalled(rctx, err)
	}
	return &shardReader{c: c, ctx: ctx, rctx: rctx, wd: wd, cancel: cancel, op: op, resp: resp}, nil
}

// shardReader reads a shard stream and turns an error trailer into an
// error.
type shardReader struct {
	c      *Client
	ctx    context.Context // ReadShard's
	rctx   context.Context // the request's
	wd     *time.Timer     // cancels the request when a Read waits too long
	cancel func()          // ends the request
	op     string
	resp   *http.Response
}

func (r *shardReader) Read(p []byte) (int, error) {
	r.wd.Reset(r.c.progressTimeout)
	n, err := r.resp.Body.Read(p)
	r.wd.Stop()
	switch {
	case err == nil:
	case err == io.EOF:
		if code := r.resp.Trailer.Get(hdrError); code != "" {
			err = r.c.errorf(r.op, newRemoteError(code, r.resp.Trailer.Get(hdrMessage)))
		}
	case r.ctx.Err() != nil:
		err = r.c.errorf(r.op, r.ctx.Err())
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = r.c.errorf(r.op, fmt.Errorf("%w: %w", driver.ErrOffline, err))
	default:
		err = r.c.transportError(r.ctx, r.op, stalled(r.rctx, err))
	}
	return n, err
}

func (r *shardReader) Close() error {
	err := r.resp.Body.Close()
	r.cancel()
	return err
}

// DeleteShard removes shard s on the peer.
func (c *Client) DeleteShard(ctx context.Context, s driver.Shard) error {
	if err := s.Validate(); err != nil {
		return c.errorf("delete shard", err)
	}
	_, _, err := c.roundTrip(ctx, fmt.Sprintf("delete shard %d/%s", s.PG, s.Name), http.MethodDelete, shardPath(s), nil, nil, smallResponse)
	return err
}

// PutRecord stores r on the peer.
func (c *Client) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	const op = "put record"
	if err := driver.ValidateKey(r.Key); err != nil {
		return driver.Record{}, false, c.errorf(op, err)
	}
	data := r.Data
	if data == nil {
		data = []byte{}
	}
	resp, body, err := c.roundTrip(ctx, op, http.MethodPut, "/records", url.Values{"key": {encodeKey(r.Key)}, "version": {r.Version.String()}}, data, recordResponse)
	if err != nil {
		return driver.Record{}, false, err
	}
	if resp.Header.Get(hdrPrev) != "1" {
		return driver.Record{}, false, nil
	}
	v, err := parseVersion(resp.Header.Get(hdrPrevVersion))
	if err != nil {
		return driver.Record{}, false, c.errorf(op, err)
	}
	return driver.Record{Key: r.Key, Version: v, Data: body}, true, nil
}

// GetRecord returns the record under key from the peer.
func (c *Client) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	const op = "get record"
	if err := driver.ValidateKey(key); err != nil {
		return driver.Record{}, c.errorf(op, err)
	}
	q := url.Values{"key": {encodeKey(key)}}
	if driver.Fills(ctx) {
		// A GET's or HEAD's read: the peer's drive may cache the record
		// (driver.FillKey), as a read on its own node does (review 29q).
		q.Set("fill", "1")
	}
	resp, body, err := c.roundTrip(ctx, op, http.MethodGet, "/records", q, nil, recordResponse)
	if err != nil {
		return driver.Record{}, err
	}
	v, err := parseVersion(resp.Header.Get(hdrVersion))
	if err != nil {
		return driver.Record{}, c.errorf(op, err)
	}
	return driver.Record{Key: key, Version: v, Data: body}, nil
}

// DeleteRecord removes the record under key on the peer if its Version is v
// (any when v is zero).
func (c *Client) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	const op = "delete record"
	if err := driver.ValidateKey(key); err != nil {
		return c.errorf(op, err)
	}
	q := url.Values{"key": {encodeKey(key)}, "version": {v.String()}}
	_, _, err := c.roundTrip(ctx, op, http.MethodDelete, "/records", q, nil, smallResponse)
	return err
}

// ListRecords lists records of the peer drive. A page holds at most
// MaxListLimit records whatever limit says.
func (c *Client) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	const op = "list records"
	if limit < 1 {
		return nil, c.errorf(op, fmt.Errorf("limit %d below 1", limit))
	}
	q := url.Values{
		"prefix": {encodeKey(prefix)},
		"after":  {encodeKey(after)},
		"limit":  {strconv.Itoa(limit)},
	}
	_, body, err := c.roundTrip(ctx, op, http.MethodGet, "/records", q, nil, listResponse)
	if err != nil {
		return nil, err
	}
	var list wireList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, c.errorf(op, fmt.Errorf("decoding response: %w", err))
	}
	recs := make([]driver.Record, len(list.Records))
	for i, wr := range list.Records {
		v, err := parseVersion(wr.Version)
		if err != nil {
			return nil, c.errorf(op, err)
		}
		recs[i] = driver.Record{Key: string(wr.Key), Version: v, Data: wr.Data, Truncated: wr.Truncated}
	}
	return recs, nil
}
