package main

import "testing"

// TestReview30eEncryptSoleRemote: with a single remote drive, the remote
// layout (a tier container's) is DefaultPolicy(1) = 1+0: its artifacts
// live on that drive alone. --remote-encrypt deletes the drive's objects
// "for the healer to refill", but the healer has nothing to refill them
// from: the tier container's data is lost. The flag is accepted without a
// check. Fails: no error. (The right check is at run time, against the
// map: refuse Encrypt when the remote layout's parity is 0 and a container
// is tiered, or ask the operator to untier first; this test checks the
// cheapest form of it, one --remote on a single node.)
func TestReview30eEncryptSoleRemote(t *testing.T) {
	f := &serverFlags{remotes: []string{"cold=https://h/b/p"}, encrypt: "cold"}
	if err := f.parseRemotes(); err == nil {
		t.Errorf("--remote-encrypt of the only remote drive accepted: a remote-layout (tier) container is 1+0 there and its data has no other copy to heal from")
	}
}
