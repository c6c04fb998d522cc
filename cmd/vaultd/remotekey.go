package main

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"

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
// Losing remote-key.json (single node) or changing the cluster secret
// makes the drives' data unreadable: they stay offline, their bytes
// untouched, until the key is back (or they are reformatted and refilled
// from the other drives).

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
// made if create is set and none exists.
func remoteKEKs(dir string, clusterSecret []byte, create bool) (kek remote.Key, old []remote.Key, err error) {
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
