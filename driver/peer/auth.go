package peer

import (
	"errors"

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
