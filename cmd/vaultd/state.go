package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vaultaire/vaultaire/s3"
)

// nodeState is what a node remembers about itself in its first data
// directory, so that a restart with other flags cannot silently re-place
// data.
type nodeState struct {
	ClusterID string   `json:"cluster_id"`
	Node      string   `json:"node"`
	Drives    []string `json:"drives"` // drive ids in --data order
	Dirs      []string `json:"dirs"`   // absolute data directories
	Policy    string   `json:"policy"`
	PGs       int      `json:"pgs"`

	Remotes []string `json:"remotes,omitempty"` // --remote names, in flag order (remote.go)
	// EncryptedRemotes are the --remote names this node has seen
	// encrypted: a bucket that says otherwise later is refused
	// (remote.Config.RequireEncrypted, remotekey.go).
	EncryptedRemotes []string `json:"encrypted_remotes,omitempty"`
}

// rootFile holds generated root credentials when none come from the
// environment. It is readable by the owner only.
type rootFile struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretSet  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// writeFileAtomic writes data to path via a temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadJSON reads path into v; ok is false if it does not exist.
func loadJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// rootCredentials returns the root credentials from the environment, or
// those kept in dir, generating them there if create is set.
func rootCredentials(getenv func(string) string, dir string, create bool) (cred s3.Credential, generated bool, err error) {
	ak, sk := getenv("VAULT_ROOT_ACCESS_KEY"), getenv("VAULT_ROOT_SECRET_KEY")
	switch {
	case ak != "" && sk != "":
		if len(sk) < 8 {
			return cred, false, errors.New("VAULT_ROOT_SECRET_KEY must be at least 8 characters")
		}
		return s3.Credential{AccessKey: ak, Secret: sk}, false, nil
	case ak != "" || sk != "":
		return cred, false, errors.New("set both VAULT_ROOT_ACCESS_KEY and VAULT_ROOT_SECRET_KEY, or neither")
	}
	path := filepath.Join(dir, "root.json")
	var rf rootFile
	ok, err := loadJSON(path, &rf)
	if err != nil {
		return cred, false, fmt.Errorf("read %s: %w", path, err)
	}
	if !ok && !create {
		return cred, false, fmt.Errorf("no root credentials: set VAULT_ROOT_ACCESS_KEY and VAULT_ROOT_SECRET_KEY (or run where %s exists)", path)
	}
	if !ok {
		rf = rootFile{AccessKey: randomString(20, upperAlnum), SecretKey: randomString(40, secretSet)}
		b, _ := json.MarshalIndent(rf, "", "  ")
		if err := writeFileAtomic(path, b, 0o600); err != nil {
			return cred, false, fmt.Errorf("write %s: %w", path, err)
		}
		generated = true
	}
	return s3.Credential{AccessKey: rf.AccessKey, Secret: rf.SecretKey}, generated, nil
}
