package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header names of the authentication scheme.
const (
	hdrTime  = "X-Vault-Time"
	hdrNonce = "X-Vault-Nonce"
	hdrAuth  = "X-Vault-Auth"
)

// MinSecretSize is the shortest cluster secret accepted, in bytes.
const MinSecretSize = 16

// DefaultMaxSkew is the default ServerConfig.MaxSkew.
const DefaultMaxSkew = 5 * time.Minute

// replayCap bounds the number of nonces the server remembers.
const replayCap = 100_000

// maxNonceSize is the longest nonce accepted, in bytes.
const maxNonceSize = 64

// ErrUnauthorized means the peer refused a request's authentication (wrong
// secret, clock skew or a replayed nonce). Clients return it wrapped together
// with driver.ErrOffline.
var ErrUnauthorized = errors.New("driver/peer: request not authenticated")

// errReplayFull is the verifier's answer when the replay cache is full.
var errReplayFull = errors.New("replay cache full")

// sign returns the hex HMAC-SHA256 of a request's signed fields.
func sign(secret []byte, method, path, query, ts, nonce string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(method))
	m.Write([]byte{'\n'})
	m.Write([]byte(path))
	m.Write([]byte{'\n'})
	m.Write([]byte(query))
	m.Write([]byte{'\n'})
	m.Write([]byte(ts))
	m.Write([]byte{'\n'})
	m.Write([]byte(nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// verifier checks request signatures and refuses replays.
type verifier struct {
	secret  []byte
	maxSkew time.Duration
	now     func() time.Time

	mu    sync.Mutex           // guards the following fields
	seen  map[string]time.Time // accepted nonce -> when it may be forgotten
	order []seenNonce          // seen in order of acceptance, from head
	head  int
}

type seenNonce struct {
	nonce  string
	expiry time.Time
}

// check verifies r's signature, time and nonce. On failure it returns a
// reason fit for logging (it never contains the secret).
func (v *verifier) check(r *http.Request) error {
	ts, nonce, mac := r.Header.Get(hdrTime), r.Header.Get(hdrNonce), r.Header.Get(hdrAuth)
	if ts == "" || nonce == "" || mac == "" {
		return errors.New("missing authentication headers")
	}
	if len(nonce) > maxNonceSize {
		return errors.New("nonce too long")
	}
	got, err := hex.DecodeString(mac)
	if err != nil {
		return errors.New("malformed signature")
	}
	want, _ := hex.DecodeString(sign(v.secret, r.Method, r.URL.EscapedPath(), r.URL.RawQuery, ts, nonce))
	if !hmac.Equal(got, want) {
		return errors.New("bad signature")
	}
	nanos, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed time")
	}
	now := v.now()
	if d := now.Sub(time.Unix(0, nanos)); d > v.maxSkew || d < -v.maxSkew {
		return errors.New("time outside the allowed skew")
	}
	return v.remember(nonce, now)
}

// remember records nonce as used, or fails if it was used within the
// window. A nonce is kept for 2×maxSkew after acceptance, which covers every
// time its request's timestamp stays within ±maxSkew of the clock.
func (v *verifier) remember(nonce string, now time.Time) error {
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
		return errors.New("replayed nonce")
	}
	if len(v.seen) >= replayCap {
		return errReplayFull
	}
	exp := now.Add(2 * v.maxSkew)
	v.seen[nonce] = exp
	v.order = append(v.order, seenNonce{nonce, exp})
	return nil
}
