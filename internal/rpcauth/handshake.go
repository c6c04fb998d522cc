package rpcauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// HandshakeTimeout bounds the client's side of a stream handshake: it
// sets it as the connection's deadline and clears the deadline when done.
const HandshakeTimeout = 5 * time.Second

// ServerHandshakeTimeout bounds the server's side the same way. It is
// shorter: an honest client sends its hello as soon as it is connected,
// so only a slow or hostile one needs long, and a listener's handshake
// slots are held for no longer than this.
const ServerHandshakeTimeout = 2 * time.Second

// Stream handshake wire format (all integers big-endian).
const (
	helloMagic   = "VAH" // "Vault Auth Handshake"
	helloVersion = 1

	nonceSize = 16
	macSize   = sha256.Size

	offTime  = len(helloMagic) + 1 // after magic and version
	offNonce = offTime + 8
	offMAC   = offNonce + nonceSize
	// helloSize is the client's hello: magic, version, time, nonce, MAC.
	helloSize = offMAC + macSize
	// proofSize is the server's answer.
	proofSize = macSize
)

// MAC domain labels, so that no hello MAC is ever a valid proof or a
// request signature.
const (
	labelHello = "rpcauth hello\x00"
	labelProof = "rpcauth ok\x00"
)

// replayPrefix keeps handshake nonces apart from request nonces in a shared
// Verifier (an HTTP header value cannot contain NUL).
const replayPrefix = "\x00hs"

// Handshake refusal reasons.
var (
	errNotHello     = errors.New("rpcauth: not an rpcauth hello (bad magic)")
	errVersion      = errors.New("rpcauth: unsupported handshake version")
	errBadHello     = errors.New("rpcauth: bad hello MAC (wrong secret or purpose?)")
	errImpostor     = errors.New("rpcauth: server did not prove the cluster secret (another secret or purpose?)")
	errClientSecret = errors.New("rpcauth: client secret shorter than MinSecretSize")
)

// ClientHandshake authenticates a freshly opened stream conn, for purpose
// (such as "raft"), to a server running Verifier.ServerHandshake with the
// same secret and purpose, and checks that the server holds the secret too.
// now is the time put in the hello (normally time.Now()); the handshake's
// deadline is HandshakeTimeout on the real clock. On error the caller must
// close conn; nothing must be read or written on it before the handshake.
//
// The client sends a hello of 60 bytes: the magic "VAH", version 1, the
// time as 8-byte unix nanoseconds, a 16-byte random nonce and
//
//	HMAC-SHA256(secret, "rpcauth hello\x00" + uvarint(len(purpose)) + purpose + magic + version + time + nonce)
//
// The server answers 32 bytes, HMAC-SHA256(secret, "rpcauth ok\x00" +
// uvarint(len(purpose)) + purpose + nonce), or closes the connection.
func ClientHandshake(conn net.Conn, secret []byte, purpose string, now time.Time) error {
	if len(secret) < MinSecretSize {
		return errClientSecret
	}
	if err := conn.SetDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return fmt.Errorf("rpcauth: set handshake deadline: %w", err)
	}
	var hello [helloSize]byte
	copy(hello[:], helloMagic)
	hello[len(helloMagic)] = helloVersion
	binary.BigEndian.PutUint64(hello[offTime:], uint64(now.UnixNano()))
	rand.Read(hello[offNonce:offMAC])
	copy(hello[offMAC:], helloMAC(secret, purpose, hello[:offMAC]))
	if _, err := conn.Write(hello[:]); err != nil {
		return fmt.Errorf("rpcauth: send hello: %w", err)
	}
	var proof [proofSize]byte
	if _, err := io.ReadFull(conn, proof[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("rpcauth: server closed the connection instead of answering the hello (it refused us: wrong secret, clock skew or replay?): %w", err)
		}
		return fmt.Errorf("rpcauth: read server proof: %w", err)
	}
	if !hmac.Equal(proof[:], proofMAC(secret, purpose, hello[offNonce:offMAC])) {
		return errImpostor
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("rpcauth: clear handshake deadline: %w", err)
	}
	return nil
}

// ServerHandshake authenticates a freshly accepted stream conn for purpose:
// it reads the client's hello (see ClientHandshake), checks its MAC, time
// and nonce like Check does for requests, and answers with proof that it
// holds the secret too. It waits at most ServerHandshakeTimeout for the
// client.
// On error, a reason fit for logging, the caller must close conn (the
// client then sees its hello refused).
func (v *Verifier) ServerHandshake(conn net.Conn, purpose string) error {
	if len(v.secret) < MinSecretSize {
		return errShortSecret
	}
	if err := conn.SetDeadline(time.Now().Add(ServerHandshakeTimeout)); err != nil {
		return fmt.Errorf("rpcauth: set handshake deadline: %w", err)
	}
	var hello [helloSize]byte
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		return fmt.Errorf("rpcauth: read hello: %w", err)
	}
	if string(hello[:len(helloMagic)]) != helloMagic {
		return errNotHello
	}
	if ver := hello[len(helloMagic)]; ver != helloVersion {
		return fmt.Errorf("%w %d", errVersion, ver)
	}
	if !hmac.Equal(hello[offMAC:], helloMAC(v.secret, purpose, hello[:offMAC])) {
		return errBadHello
	}
	now := v.now()
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(hello[offTime:])))
	if err := v.checkSkew(sent, now); err != nil {
		return err
	}
	nonce := hello[offNonce:offMAC]
	if err := v.remember(replayPrefix+string(nonce), now); err != nil {
		return err
	}
	if _, err := conn.Write(proofMAC(v.secret, purpose, nonce)); err != nil {
		return fmt.Errorf("rpcauth: send proof: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("rpcauth: clear handshake deadline: %w", err)
	}
	return nil
}

// helloMAC is the MAC of a hello whose first bytes (magic to nonce) are
// head.
func helloMAC(secret []byte, purpose string, head []byte) []byte {
	return streamMAC(secret, labelHello, purpose, head)
}

// proofMAC is the server's answer to the hello carrying nonce.
func proofMAC(secret []byte, purpose string, nonce []byte) []byte {
	return streamMAC(secret, labelProof, purpose, nonce)
}

func streamMAC(secret []byte, label, purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(binary.AppendUvarint(nil, uint64(len(purpose))))
	m.Write([]byte(purpose))
	m.Write(data)
	return m.Sum(nil)
}
