package peer

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vaultaire/vaultaire/driver"
)

// Header and trailer names of the protocol (see the package documentation).
const (
	hdrError       = "X-Vault-Error"
	hdrMessage     = "X-Vault-Message"
	hdrVersion     = "X-Vault-Version"
	hdrPrev        = "X-Vault-Prev"
	hdrPrevVersion = "X-Vault-Prev-Version"
	hdrLength      = "X-Vault-Length"
	hdrSum         = "X-Vault-Xxh3"
	hdrEpoch       = "X-Vault-Epoch" // the writer's map epoch (fence.go)
	hdrPG          = "X-Vault-PG"    // the placement group it writes into
	hdrLease       = "X-Vault-Lease" // "index token upload": the upload lease it writes under
	// hdrTimeout is how long after sending it (X-Vault-Time) the sender
	// gives the call up, in nanoseconds: a write arriving later is
	// refused, not applied (late.go).
	hdrTimeout = "X-Vault-Timeout"
)

// Error codes carried in X-Vault-Error. They reach the wire: append only.
const (
	codeNotFound      = "not_found"
	codeStale         = "stale"
	codeInvalidName   = "invalid_name"
	codeOffline       = "offline"
	codeCorrupt       = "corrupt"
	codeForeignDrive  = "foreign_drive"
	codeUnexpectedEOF = "unexpected_eof"
	codeNoDrive       = "no_drive"
	codeUnauthorized  = "unauthorized"
	codeBadRequest    = "bad_request"
	codeInternal      = "internal"
	codeNoSpace       = "no_space"
	codeStaleEpoch    = "stale_epoch"
)

// errorCodes maps sentinel errors to codes and statuses, in the order they
// are tried by codeOf.
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{ErrStaleEpoch, codeStaleEpoch, http.StatusConflict},
	{driver.ErrNotFound, codeNotFound, http.StatusNotFound},
	{driver.ErrStale, codeStale, http.StatusConflict},
	{driver.ErrInvalidName, codeInvalidName, http.StatusBadRequest},
	{driver.ErrOffline, codeOffline, http.StatusServiceUnavailable},
	{driver.ErrCorrupt, codeCorrupt, http.StatusUnprocessableEntity},
	{driver.ErrForeignDrive, codeForeignDrive, http.StatusInternalServerError},
	{io.ErrUnexpectedEOF, codeUnexpectedEOF, http.StatusBadGateway},
	{driver.ErrNoSpace, codeNoSpace, http.StatusInsufficientStorage},
	{context.Canceled, codeOffline, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, codeOffline, http.StatusServiceUnavailable},
}

// codeOf returns the wire code and status for err.
func codeOf(err error) (code string, status int) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code, e.status
		}
	}
	return codeInternal, http.StatusInternalServerError
}

// remoteError is an error reported by a peer.
type remoteError struct {
	code string
	msg  string
	is   []error // what it unwraps to
}

func (e *remoteError) Error() string {
	if e.msg == "" {
		return "peer: " + e.code
	}
	return "peer: " + e.msg
}

func (e *remoteError) Unwrap() []error { return e.is }

// newRemoteError returns the error for a code and message received from a
// peer. An empty or unknown code is driver.ErrOffline: the peer cannot
// serve us.
func newRemoteError(code, msg string) error {
	e := &remoteError{code: code, msg: msg}
	switch code {
	case codeUnauthorized:
		e.is = []error{ErrUnauthorized, driver.ErrOffline}
	case codeNoDrive:
		e.is = []error{driver.ErrOffline}
	case codeStaleEpoch:
		e.is = []error{ErrStaleEpoch, driver.ErrOffline}
	case codeBadRequest, codeInternal:
	default:
		for _, c := range errorCodes {
			if c.code == code {
				e.is = []error{c.err}
				break
			}
		}
		if e.is == nil {
			e.is = []error{driver.ErrOffline}
		}
	}
	return e
}

// responseError reads the error of a non-2xx response.
func responseError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	code := resp.Header.Get(hdrError)
	if code == "" && resp.StatusCode == http.StatusUnauthorized {
		code = codeUnauthorized
	}
	m := strings.TrimSpace(string(msg))
	if code == "" {
		m = fmt.Sprintf("unexpected status %s: %s", resp.Status, m)
	}
	return newRemoteError(code, m)
}

// encodeKey and decodeKey carry arbitrary bytes in a query parameter.
func encodeKey(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeKey(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

// parseVersion parses 32 hex digits.
func parseVersion(s string) (driver.Version, error) {
	var v driver.Version
	if len(s) != 2*driver.VersionSize {
		return v, fmt.Errorf("malformed version %q", s)
	}
	if _, err := hex.Decode(v[:], []byte(s)); err != nil {
		return v, fmt.Errorf("malformed version %q", s)
	}
	return v, nil
}

// wireRecord is a listed record in a ListRecords response.
type wireRecord struct {
	Key       []byte `json:"key"`
	Version   string `json:"version"`
	Data      []byte `json:"data"`
	Truncated bool   `json:"truncated,omitempty"`
}

// wireList is the body of a ListRecords response.
type wireList struct {
	Records []wireRecord `json:"records"`
}
