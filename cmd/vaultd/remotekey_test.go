package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemoteKEKs(t *testing.T) {
	dir := t.TempDir()
	if kek, old, err := remoteKEKs(dir, nil, false, nil); err != nil || kek != nil || old != nil {
		t.Fatalf("single node, no file, create unset: %x, %x, %v; want nothing", kek, old, err)
	}
	if _, err := os.Stat(filepath.Join(dir, remoteKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key file was made without create: %v", err)
	}
	local, old, err := remoteKEKs(dir, nil, true, nil)
	if err != nil || len(local) != 32 || old != nil {
		t.Fatalf("single node, create: %x, %x, %v; want a 32-byte key", local, old, err)
	}
	fi, err := os.Stat(filepath.Join(dir, remoteKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	again, _, err := remoteKEKs(dir, nil, true, nil)
	if err != nil || !bytes.Equal(again, local) {
		t.Fatalf("second start: %x, %v; want the same key %x", again, err, local)
	}

	secret := []byte("a cluster secret of some length..")
	kek, old, err := remoteKEKs(dir, secret, true, nil)
	if err != nil || len(kek) != 32 || bytes.Equal(kek, local) || len(old) != 1 || !bytes.Equal(old[0], local) {
		t.Fatalf("cluster mode beside a single node's key: %x, %x, %v; want a key from the secret, the local one old", kek, old, err)
	}
	other, old2, err := remoteKEKs(t.TempDir(), secret, true, nil)
	if err != nil || !bytes.Equal(other, kek) || old2 != nil {
		t.Fatalf("another node of the cluster: %x, %x, %v; want the same key %x and no old one", other, old2, err, kek)
	}
	if k3, _, _ := remoteKEKs(t.TempDir(), []byte("another cluster secret, as long.."), true, nil); bytes.Equal(k3, kek) {
		t.Fatal("two cluster secrets derive the same key")
	}
	if err := os.WriteFile(filepath.Join(dir, remoteKeyFile), []byte(`{"kek":"abcd"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := remoteKEKs(dir, nil, true, nil); err == nil {
		t.Fatal("a short key in the file was accepted")
	}
	// A lost key file is not replaced while drives were encrypted under it.
	lost := t.TempDir()
	if _, _, err := remoteKEKs(lost, nil, true, []string{"cold"}); err == nil || !strings.Contains(err.Error(), "restore it") {
		t.Fatalf("a lost key with drives encrypted under it: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(lost, remoteKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a new key file was made over a lost one: %v", err)
	}
}

func TestRemoteEncryptFlag(t *testing.T) {
	remotes := []string{"a=https://h/b/p", "c=https://h/b/q"}
	for _, tt := range []struct {
		encrypt string
		want    []bool // Encrypt of a, c
		wantErr string
	}{
		{"", []bool{false, false}, ""},
		{"C", []bool{false, true}, ""},
		{"a,c", nil, "one at a time"},
		{"z", nil, "no --remote of that name"},
	} {
		f := &serverFlags{remotes: remotes, encrypt: tt.encrypt}
		err := f.parseRemotes()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("--remote-encrypt %q: %v, want an error containing %q", tt.encrypt, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--remote-encrypt %q: %v", tt.encrypt, err)
		}
		for i, s := range f.remoteSpecs {
			if s.cfg.Encrypt != tt.want[i] || s.cfg.Reformat {
				t.Errorf("--remote-encrypt %q: %s Encrypt %v Reformat %v, want Encrypt %v, no Reformat", tt.encrypt, s.name, s.cfg.Encrypt, s.cfg.Reformat, tt.want[i])
			}
		}
	}
}
