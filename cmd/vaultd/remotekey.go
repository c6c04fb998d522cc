package main

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vaultaire/vaultaire/driver/remote"
)

// Remote drives encrypt everything they write to a provider (driver/remote:
// remote.Config.KEK). Each drive's data key is random, made when the drive
// is formatted, and kept in its bucket wrapped under a key-encryption key
// (KEK) the provider never sees:
//
//   - in cluster mode, derived from the cluster secret (every node derives
//     the same, so any node can adopt or stand by for the drive);
//   - on a single node, a random key kept in remote-key.json beside
//     node.json (mode 0600), made on the first start with a --remote.
//
// A node that ran alone and joins a cluster keeps its remote-key.json: its
// drives' keys are wrapped under it, and are unwrapped with it (an old KEK)
// and wrapped again under the cluster's at their next open.
//
// The provider holds format.json, which says whether a drive is
// encrypted: node.json keeps the names of the drives this node has seen
// encrypted (encryptedSeen), and a drive among them whose bucket says
// "plaintext" later is refused rather than written in the clear.
//
// Losing remote-key.json (single node) makes the node refuse to start
// until it is restored; changing the cluster secret makes the drives'
// data unreadable: they stay offline, their bytes untouched, until the
// old secret is back. Neither can be rotated yet.

// remoteKeyFile is the name of the single-node KEK's file in the first
// data directory.
const remoteKeyFile = "remote-key.json"

// remoteKeyJSON is remote-key.json.
type remoteKeyJSON struct {
	KEK string `json:"kek"` // 64 hex digits
}

// remoteKEKs returns the KEK remote drives are wrapped under and older
// KEKs they may still be wrapped under. dir is the node's first data
// directory; clusterSecret is nil on a single node, where the key file is
// made if create is set and none exists, unless drives were seen
// encrypted under it (seenEncrypted): a new key would lock them out for
// good once the old one is restored, so its absence is an error.
func remoteKEKs(dir string, clusterSecret []byte, create bool, seenEncrypted []string) (kek remote.Key, old []remote.Key, err error) {
	path := filepath.Join(dir, remoteKeyFile)
	var kf remoteKeyJSON
	ok, err := loadJSON(path, &kf)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var local []byte
	if ok {
		if local, err = hex.DecodeString(kf.KEK); err != nil || len(local) != 32 {
			return nil, nil, fmt.Errorf("%s: kek must be 64 hex digits", path)
		}
	}
	if clusterSecret != nil {
		if kek, err = hkdf.Key(sha256.New, clusterSecret, nil, "vaultaire remote drive kek v1", 32); err != nil {
			return nil, nil, err
		}
		if local != nil {
			old = []remote.Key{local}
		}
		return kek, old, nil
	}
	if local == nil && create && len(seenEncrypted) > 0 {
		return nil, nil, fmt.Errorf("%s is missing, but remote drives %s were encrypted under the key it held: restore it from your backup (without it their data cannot be read)", path, strings.Join(seenEncrypted, ", "))
	}
	if local == nil && create {
		local = make([]byte, 32)
		rand.Read(local)
		b, _ := json.MarshalIndent(remoteKeyJSON{KEK: hex.EncodeToString(local)}, "", "  ")
		if err := writeFileAtomic(path, b, 0o600); err != nil {
			return nil, nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return local, nil, nil
}

// encryptedSeen records in node.json the remote drives this node has
// seen encrypted. Drives report from their own goroutines (OnFormat), so
// it serializes its writes of node.json, as does the node's first write.
type encryptedSeen struct {
	mu    sync.Mutex
	st    *nodeState
	path  string // node.json
	saved bool   // node.json exists: a new node's is first written once it is whole
	dirty bool   // a write of node.json failed: the next OnFormat retries it
	log   *slog.Logger
}

// known reports whether name was seen encrypted.
func (e *encryptedSeen) known(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.st.EncryptedRemotes, name)
}

// onFormat returns the remote.Config.OnFormat of drive name.
func (e *encryptedSeen) onFormat(name string) func(bool) {
	return func(encrypted bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !encrypted || slices.Contains(e.st.EncryptedRemotes, name) && !e.dirty {
			return
		}
		if !slices.Contains(e.st.EncryptedRemotes, name) {
			e.st.EncryptedRemotes = append(e.st.EncryptedRemotes, name)
		}
		if !e.saved {
			return // in the node's first write
		}
		if err := e.saveLocked(); err != nil {
			e.log.Error("cannot record an encrypted remote drive in node.json: a plaintext format.json in its bucket would not be refused at the next start", "remote", name, "err", err)
		}
	}
}

// save writes node.json.
func (e *encryptedSeen) save() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.saveLocked()
}

func (e *encryptedSeen) saveLocked() error {
	b, _ := json.MarshalIndent(e.st, "", "  ")
	if err := writeFileAtomic(e.path, b, 0o644); err != nil {
		e.dirty = true
		return err
	}
	e.saved, e.dirty = true, false
	return nil
}
