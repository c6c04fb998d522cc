package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestReview30e2SeenRetry: a drive whose record in node.json failed to be
// written (a full or read-only disk) is recorded by its next OnFormat
// (the next Open, reconnect or reformat): before the fix the name was
// already in the in-memory list, so no later call wrote it, and the next
// start did not require the drive encrypted (a downgrade went unrefused).
func TestReview30e2SeenRetry(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "node.json")
	st := &nodeState{Node: "n1"}
	seen := &encryptedSeen{st: st, path: path, saved: true, log: slog.New(slog.DiscardHandler)}
	// node.json cannot be replaced (a non-empty directory in its place:
	// a rename fails even for root)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	seen.onFormat("r1")(true) // write fails: logged
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	seen.onFormat("r1")(true) // the drive's next Open
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the drive's next OnFormat did not retry the failed write of node.json: %v", err)
	}
	seen.onFormat("r1")(true) // the drive's next Open
	var got nodeState
	if _, err := loadJSON(path, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got.EncryptedRemotes, "r1") {
		t.Fatalf("node.json encrypted_remotes %q after a failed then a good OnFormat: r1 never recorded", got.EncryptedRemotes)
	}
}
