package tenant

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Errors of tenant operations, returned (possibly wrapped) by the Store
// behind them (cluster.Store); test them with errors.Is.
var (
	ErrNoSuchTenant   = errors.New("tenant: no such tenant")
	ErrTenantExists   = errors.New("tenant: tenant already exists")
	ErrTenantNotEmpty = errors.New("tenant: tenant still owns containers")
	ErrInvalidName    = errors.New("tenant: invalid tenant name")
	// ErrInvalidLimits reports negative limits.
	ErrInvalidLimits = errors.New("tenant: invalid limits")
	// ErrUnknownAccessKey means no tenant has the access key.
	ErrUnknownAccessKey = errors.New("tenant: unknown access key")
	// ErrQuotaExceeded refuses an upload that does not fit in the
	// tenant's quota (Meter.Admit).
	ErrQuotaExceeded = errors.New("quota exceeded")
)

// Tenant is a tenant as listed. It never carries secrets.
type Tenant struct {
	Name    string
	Created time.Time
	// AccessKeys are the tenant's access keys in creation order.
	AccessKeys []string
	Limits     Limits
	Usage      Usage // as committed; see Usage
}

// Limits are a tenant's rate limit, bandwidth and quota, replicated with
// the tenant. Zero values mean "the default" for the rate (DefaultRPS,
// DefaultBurst) and "unlimited" for the bandwidth and the quota.
type Limits struct {
	RPS          float64 `json:"rps,omitempty"`           // requests per second
	Burst        int     `json:"burst,omitempty"`         // token bucket size
	BytesIn      int64   `json:"bytes_in,omitempty"`      // request body bytes per second, per node
	BytesOut     int64   `json:"bytes_out,omitempty"`     // response body bytes per second, per node
	MaxBytes     int64   `json:"max_bytes,omitempty"`     // stored bytes (before erasure coding)
	MaxArtifacts int64   `json:"max_artifacts,omitempty"` // stored artifacts
}

// Validate reports negative limits (ErrInvalidLimits).
func (l Limits) Validate() error {
	if l.RPS < 0 || l.Burst < 0 || l.BytesIn < 0 || l.BytesOut < 0 || l.MaxBytes < 0 || l.MaxArtifacts < 0 {
		return fmt.Errorf("%w: rps %v, burst %d, bytes in %d/s, out %d/s, bytes %d, artifacts %d", ErrInvalidLimits, l.RPS, l.Burst, l.BytesIn, l.BytesOut, l.MaxBytes, l.MaxArtifacts)
	}
	return nil
}

// Usage is what a tenant stores, as committed to the Store. Each node
// batches its changes and commits them every FlushInterval, so the
// committed totals lag the truth by about that much.
type Usage struct {
	Bytes     int64 `json:"bytes"`
	Artifacts int64 `json:"artifacts"`
}

// UsageDelta is one tenant's change of usage.
type UsageDelta struct {
	Tenant    string `json:"tenant"`
	Bytes     int64  `json:"bytes"`
	Artifacts int64  `json:"artifacts"`
}

// Key is an access key pair. Its Secret redacts itself when printed or
// logged; string(k.Secret) is the value.
type Key struct {
	AccessKey string
	Secret    Secret
	Created   time.Time
}

// LogValue logs a Key as its access key and creation time only.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key", k.AccessKey), slog.Time("created", k.Created))
}

// Secret is a secret access key. It prints, logs and marshals as
// "REDACTED" whatever the verb or encoder; convert it with string(s) where
// the value is really meant to leave the process (for example the admin
// API's answer to tenant creation).
type Secret string

const redacted = "REDACTED"

// String returns "REDACTED".
func (Secret) String() string { return redacted }

// GoString returns "REDACTED", for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "REDACTED" for every fmt verb, so that not even %x or a
// bad verb such as %d shows the value.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue returns "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "REDACTED", so that encoding/json (including slog's
// JSONHandler on a struct holding a Secret) never writes the value.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Lengths of generated keys.
const (
	AccessKeyLen = 20 // characters of [A-Z0-9]
	SecretLen    = 40 // characters of base64url (30 random bytes)
)

// AccessKeyAlphabet is the characters of generated access keys.
const AccessKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewKey draws a key pair from crypto/rand, created at now.
func NewKey(now time.Time) Key {
	ak := make([]byte, 0, AccessKeyLen)
	var buf [32]byte
	for len(ak) < AccessKeyLen {
		rand.Read(buf[:]) // never fails (crypto/rand, Go ≥ 1.24)
		for _, b := range buf {
			// 252 = 7*36: rejecting larger bytes keeps the draw uniform.
			if b < 252 && len(ak) < AccessKeyLen {
				ak = append(ak, AccessKeyAlphabet[b%36])
			}
		}
	}
	var sec [SecretLen * 3 / 4]byte
	rand.Read(sec[:])
	return Key{
		AccessKey: string(ak),
		Secret:    Secret(base64.RawURLEncoding.EncodeToString(sec[:])),
		Created:   now,
	}
}

// ValidName reports whether name is a valid tenant name: 3 to 63
// characters of lower-case letters, digits and '-', starting and ending
// with a letter or digit (as S3 bucket names, so a tenant name can appear
// in a host name).
func ValidName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return false
		}
	}
	return true
}
