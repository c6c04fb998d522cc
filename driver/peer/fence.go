package peer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrStaleEpoch means the peer refused a write because it was planned under
// a cluster map older than one the peer knows, in which the placement group
// it writes to has moved (fenced map epochs). The writer's map is out of
// date: it must refresh it and retry, or fail. A Client's error for it
// also matches driver.ErrOffline, so quorum logic treats that drive as
// unavailable for this write.
var ErrStaleEpoch = errors.New("driver/peer: write under a stale map epoch")

// Fence is what a write carries for the receiver to fence it: the epoch
// of the cluster map it was planned under and the placement group it
// writes into. The peer package only carries it (X-Vault-Epoch and
// X-Vault-PG headers on every request of a ctx that has one); the
// receiving node's drives judge it (cluster.Fence).
type Fence struct {
	Epoch uint64
	PG    uint32
}

type fenceKey struct{}

// WithFence returns ctx carrying f: a Client's requests within it send f,
// and a Server's drives see the Fence of the request that reached them.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the Fence ctx carries, if any. A write without one is
// not fenced.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Lease is what a write made under a multipart upload's cluster-wide
// lease carries, for the receiver to refuse it once the lease has passed
// to another node or ended: the upload, the holder's token and the Raft
// index at which the lease was granted (the receiver judges it only after
// applying that index). Like Fence, peer only carries it (X-Vault-Lease).
type Lease struct {
	Upload string
	Token  string
	Index  uint64
}

type leaseKey struct{}

// WithLease returns ctx carrying l (see WithFence).
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the Lease ctx carries, if any.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}

// setFence puts the Fence and Lease of ctx, if any, into h.
func setFence(ctx context.Context, h http.Header) {
	if f, ok := FenceFrom(ctx); ok {
		h.Set(hdrEpoch, strconv.FormatUint(f.Epoch, 10))
		h.Set(hdrPG, strconv.FormatUint(uint64(f.PG), 10))
	}
	if l, ok := LeaseFrom(ctx); ok {
		h.Set(hdrLease, strconv.FormatUint(l.Index, 10)+" "+url.QueryEscape(l.Token)+" "+url.QueryEscape(l.Upload))
	}
}

// leaseOf parses the Lease header of r.
func leaseOf(r *http.Request) (l Lease, ok bool, err error) {
	v := r.Header.Get(hdrLease)
	if v == "" {
		return Lease{}, false, nil
	}
	f := strings.Split(v, " ")
	if len(f) != 3 {
		return Lease{}, false, errors.New("malformed " + hdrLease)
	}
	idx, err1 := strconv.ParseUint(f[0], 10, 64)
	tok, err2 := url.QueryUnescape(f[1])
	up, err3 := url.QueryUnescape(f[2])
	if err1 != nil || err2 != nil || err3 != nil || up == "" {
		return Lease{}, false, errors.New("malformed " + hdrLease)
	}
	return Lease{Upload: up, Token: tok, Index: idx}, true, nil
}

// fenceOf parses the Fence headers of r: ok false without them, an error
// if they are malformed or only one is present.
func fenceOf(r *http.Request) (f Fence, ok bool, err error) {
	e, p := r.Header.Get(hdrEpoch), r.Header.Get(hdrPG)
	if e == "" && p == "" {
		return Fence{}, false, nil
	}
	epoch, err1 := strconv.ParseUint(e, 10, 64)
	pg, err2 := strconv.ParseUint(p, 10, 32)
	if err1 != nil || err2 != nil {
		return Fence{}, false, errors.New("malformed " + hdrEpoch + " or " + hdrPG)
	}
	return Fence{Epoch: epoch, PG: uint32(pg)}, true, nil
}
