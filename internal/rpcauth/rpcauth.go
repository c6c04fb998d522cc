// Package rpcauth authenticates internode traffic with the cluster secret,
// so that only nodes holding it can call each other's drive RPC or join the
// Raft conversation.
//
// Two forms share one scheme (HMAC-SHA256 under the secret, a timestamp
// within a clock skew window, and a random nonce against replays):
//
//   - HTTP requests (the drive RPC of driver/peer): Sign sets the headers
//     X-Vault-Time (unix nanoseconds), X-Vault-Nonce (random text) and
//     X-Vault-Auth, the hex HMAC-SHA256 of
//
//     method + "\n" + escaped path + "\n" + raw query + "\n" + time + "\n" + nonce
//
//     and Verifier.Check verifies them on the server.
//
//   - Connections (Raft streams and the internode RPC's HTTP connections):
//     ClientHandshake and Verifier.ServerHandshake run a mutual handshake
//     once, right after the connection is established; see ClientHandshake
//     for the wire format.
//
// Only the opening of an exchange is authenticated: request bodies and the
// bytes after a handshake are neither signed nor encrypted by this
// package. cluster runs every handshake inside a TLS 1.3 tunnel
// (internal/clustertls), which gives the data confidentiality and
// integrity and makes replays within a connection impossible.
//
// A Verifier remembers every handshake nonce it accepted for 2×maxSkew, in
// a cache bounded at 100,000 entries; when the cache is full of live nonces
// it refuses with ErrReplayFull rather than forget one early. A Verifier
// from NewVerifier remembers request nonces the same way; one from
// NewConnVerifier, for requests on connections that each passed a
// handshake (as the internode RPC runs), checks their signature and time
// only, so sustained load fills no cache. One Verifier may serve both
// forms: their nonces never collide.
//
// rpcauth imports nothing of this module. driver/peer (the drive RPC) and
// cluster (forwarded writes) sign and check requests with it; cluster runs
// the handshakes.
package rpcauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header names of the HTTP request scheme.
const (
	HeaderTime  = "X-Vault-Time"
	HeaderNonce = "X-Vault-Nonce"
	HeaderAuth  = "X-Vault-Auth"
)

// MinSecretSize is the shortest cluster secret accepted, in bytes. A
// Verifier with a shorter secret refuses everything.
const MinSecretSize = 16

// DefaultMaxSkew is how far a request's or hello's time may be from the
// verifier's clock when NewVerifier is given no maxSkew.
const DefaultMaxSkew = 5 * time.Minute

// replayCap bounds the number of nonces a Verifier remembers.
const replayCap = 100_000

// maxNonceSize is the longest request nonce accepted, in bytes.
const maxNonceSize = 64

// ErrReplayFull is Verifier's refusal when its replay cache is full of live
// nonces. The peer is probably honest: answer it as an overload, not as an
// authentication failure.
var ErrReplayFull = errors.New("rpcauth: replay cache full")

// Refusal reasons. They are fit for logging and never contain the secret.
var (
	errShortSecret = errors.New("rpcauth: verifier secret shorter than MinSecretSize")
	errMissing     = errors.New("rpcauth: missing authentication headers")
	errLongNonce   = errors.New("rpcauth: nonce too long")
	errMalformed   = errors.New("rpcauth: malformed signature")
	errBadMAC      = errors.New("rpcauth: bad signature (wrong secret?)")
	errBadTime     = errors.New("rpcauth: malformed time")
	errSkew        = errors.New("rpcauth: time outside the allowed skew (clocks apart?)")
	errReplayed    = errors.New("rpcauth: replayed nonce")
)

// Sign authenticates r for a Verifier holding secret: it sets the
// X-Vault-Time, X-Vault-Nonce and X-Vault-Auth headers over r's method,
// escaped path and raw query, with time now and a fresh random nonce. The
// body is not covered. Sign r after its URL is final.
func Sign(r *http.Request, secret []byte, now time.Time) {
	ts := strconv.FormatInt(now.UnixNano(), 10)
	nonce := rand.Text()
	r.Header.Set(HeaderTime, ts)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderAuth, Signature(secret, r.Method, r.URL.EscapedPath(), r.URL.RawQuery, ts, nonce))
}

// Signature returns the X-Vault-Auth value for the given request fields:
// the hex HMAC-SHA256 under secret of method, escaped path, raw query, time
// (decimal unix nanoseconds) and nonce, each but the last followed by a
// newline. Sign uses it; it is exported for callers that write requests by
// hand, such as tests on raw connections.
func Signature(secret []byte, method, path, query, ts, nonce string) string {
	m := hmac.New(sha256.New, secret)
	for _, s := range []string{method, path, query, ts} {
		m.Write([]byte(s))
		m.Write([]byte{'\n'})
	}
	m.Write([]byte(nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// Verifier checks signed requests and stream handshakes and refuses
// replays. It is safe for concurrent use.
type Verifier struct {
	secret  []byte
	maxSkew time.Duration
	now     func() time.Time
	maxSeen int // replay cache bound: replayCap, less in tests
	// onConns: requests arrive on connections that passed a handshake, so
	// Check does not remember nonces (see NewConnVerifier).
	onConns bool

	mu    sync.Mutex           // guards the following fields
	seen  map[string]time.Time // accepted nonce -> when it may be forgotten
	order []seenNonce          // seen in order of acceptance, from head
	head  int
}

type seenNonce struct {
	nonce  string
	expiry time.Time
}

// NewVerifier returns a Verifier for secret (copied; it should be at least
// MinSecretSize bytes, or the Verifier refuses everything). maxSkew is how
// far a time may be from now(); zero or less means DefaultMaxSkew. A nil
// now means time.Now.
func NewVerifier(secret []byte, maxSkew time.Duration, now func() time.Time) *Verifier {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{
		secret:  append([]byte(nil), secret...),
		maxSkew: maxSkew,
		now:     now,
		maxSeen: replayCap,
		seen:    make(map[string]time.Time),
	}
}

// NewConnVerifier returns a Verifier for requests served on connections
// that each passed a handshake (a listener that runs ServerHandshake
// first). Check then verifies the signature and time but does not keep
// nonces: a replayed request would need an authenticated connection,
// which capturing a request does not give, and no replay cache fills up
// under sustained load. Handshakes themselves are still checked for
// replay.
func NewConnVerifier(secret []byte, maxSkew time.Duration, now func() time.Time) *Verifier {
	v := NewVerifier(secret, maxSkew, now)
	v.onConns = true
	return v
}

// Check verifies r's signature, time and nonce, and remembers the nonce. On
// failure it returns a reason fit for logging (it never contains the
// secret); ErrReplayFull means r may well be genuine but cannot be checked
// for replay now.
func (v *Verifier) Check(r *http.Request) error {
	if len(v.secret) < MinSecretSize {
		return errShortSecret
	}
	ts, nonce, mac := r.Header.Get(HeaderTime), r.Header.Get(HeaderNonce), r.Header.Get(HeaderAuth)
	if ts == "" || nonce == "" || mac == "" {
		return errMissing
	}
	if len(nonce) > maxNonceSize {
		return errLongNonce
	}
	got, err := hex.DecodeString(mac)
	if err != nil {
		return errMalformed
	}
	want, _ := hex.DecodeString(Signature(v.secret, r.Method, r.URL.EscapedPath(), r.URL.RawQuery, ts, nonce))
	if !hmac.Equal(got, want) {
		return errBadMAC
	}
	nanos, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errBadTime
	}
	now := v.now()
	if err := v.checkSkew(time.Unix(0, nanos), now); err != nil {
		return err
	}
	if v.onConns {
		return nil
	}
	return v.remember(nonce, now)
}

// checkSkew refuses a time more than maxSkew away from now.
func (v *Verifier) checkSkew(t, now time.Time) error {
	if d := now.Sub(t); d > v.maxSkew || d < -v.maxSkew {
		return errSkew
	}
	return nil
}

// remember records nonce as used, or fails if it was used within the
// window. A nonce is kept for 2×maxSkew after acceptance, which covers every
// time its message's timestamp stays within ±maxSkew of the clock.
func (v *Verifier) remember(nonce string, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	// Forget expired nonces. Expiries are in acceptance order (up to clock
	// steps, which only delay forgetting).
	for v.head < len(v.order) && !v.order[v.head].expiry.After(now) {
		e := v.order[v.head]
		if exp, ok := v.seen[e.nonce]; ok && exp.Equal(e.expiry) {
			delete(v.seen, e.nonce)
		}
		v.order[v.head] = seenNonce{}
		v.head++
	}
	if v.head > len(v.order)/2 && v.head > 1024 {
		v.order = append(v.order[:0:0], v.order[v.head:]...)
		v.head = 0
	}
	if exp, ok := v.seen[nonce]; ok && exp.After(now) {
		return errReplayed
	}
	if len(v.seen) >= v.maxSeen {
		return ErrReplayFull
	}
	exp := now.Add(2 * v.maxSkew)
	v.seen[nonce] = exp
	v.order = append(v.order, seenNonce{nonce, exp})
	return nil
}
