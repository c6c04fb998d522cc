package peer

import (
	"errors"
	"time"

	"github.com/vaultaire/vaultaire/internal/rpcauth"
)

// Header names of the authentication scheme (see rpcauth).
const (
	hdrTime  = rpcauth.HeaderTime
	hdrNonce = rpcauth.HeaderNonce
	hdrAuth  = rpcauth.HeaderAuth
)

// MinSecretSize is the shortest cluster secret accepted, in bytes.
const MinSecretSize = rpcauth.MinSecretSize

// DefaultMaxSkew is the default ServerConfig.MaxSkew.
const DefaultMaxSkew = rpcauth.DefaultMaxSkew

// ErrUnauthorized means the peer refused a request's authentication (wrong
// secret, clock skew or a replayed nonce). Clients return it wrapped together
// with driver.ErrOffline.
var ErrUnauthorized = errors.New("driver/peer: request not authenticated")

// sign returns the X-Vault-Auth value of a request's signed fields.
func sign(secret []byte, method, path, query, ts, nonce string) string {
	return rpcauth.Signature(secret, method, path, query, ts, nonce)
}

// verifier is the replay check from before rpcauth, kept only because
// peer_test.go (TestReplayCacheExpiry) still builds one; the Server uses
// rpcauth.Verifier, whose tests cover the same behaviour. Delete it when
// that test goes.
type verifier struct {
	secret  []byte
	maxSkew time.Duration
	now     func() time.Time
	seen    map[string]time.Time // accepted nonce -> when it may be forgotten
}

// remember records nonce as used, or fails if it was used within the
// 2×maxSkew window.
func (v *verifier) remember(nonce string, now time.Time) error {
	for n, exp := range v.seen {
		if !exp.After(now) {
			delete(v.seen, n)
		}
	}
	if _, ok := v.seen[nonce]; ok {
		return errors.New("replayed nonce")
	}
	v.seen[nonce] = now.Add(2 * v.maxSkew)
	return nil
}
