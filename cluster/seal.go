package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Secret keys are sealed before they enter the Raft log when the store
// has a cluster secret: AES-256-GCM under a key derived from the cluster
// secret with HKDF-SHA256, with the access key as additional data (a
// sealed secret cannot be moved to another key). The log, its snapshots
// and Raft traffic then never carry a secret key in the clear. Records
// written without a cluster secret (a single node) stay plaintext and are
// still read.

const sealInfo = "vaultaire/cluster: tenant key secrets v1"

// errUnseal means a sealed secret could not be opened: another cluster
// secret, or corruption.
var errUnseal = errors.New("cluster: cannot unseal a key secret (another cluster secret?)")

// newSealer returns the AEAD for secret, or nil for no secret.
func newSealer(secret []byte) (cipher.AEAD, error) {
	if secret == nil {
		return nil, nil
	}
	key, err := hkdf.Key(sha256.New, secret, nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns k as it goes into the log: with a sealer, its Secret moved
// into Sealed.
func (s *Store) seal(k keyRecord) keyRecord {
	if s.sealer == nil || k.Secret == "" {
		return k
	}
	nonce := make([]byte, s.sealer.NonceSize())
	rand.Read(nonce)
	ct := s.sealer.Seal(nonce, nonce, []byte(k.Secret), []byte(k.AccessKey))
	k.Sealed, k.Secret = base64.RawStdEncoding.EncodeToString(ct), ""
	return k
}

// unseal returns the plaintext secret of a replicated key record.
func (s *Store) unseal(k keyRecord) (string, error) {
	if k.Sealed == "" {
		return k.Secret, nil
	}
	if s.sealer == nil {
		return "", fmt.Errorf("%w: this node has no cluster secret", errUnseal)
	}
	ct, err := base64.RawStdEncoding.DecodeString(k.Sealed)
	n := s.sealer.NonceSize()
	if err != nil || len(ct) < n {
		return "", errUnseal
	}
	pt, err := s.sealer.Open(nil, ct[:n], ct[n:], []byte(k.AccessKey))
	if err != nil {
		return "", errUnseal
	}
	return string(pt), nil
}
