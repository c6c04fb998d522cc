package remote_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
)

// Review 30e: attacks by the provider on an encrypted remote drive. The
// provider controls every object, format.json included.

func knownDefect(t *testing.T) {
	t.Helper()
	if os.Getenv("VAULT_KNOWN") == "" {
		t.Skip("known defect (review 30e); VAULT_KNOWN=1 runs it")
	}
}

// review30eDrive writes an encrypted drive with a shard and a record and
// closes it.
func review30eDrive(t *testing.T, s server, b, prefix string) remote.Config {
	t.Helper()
	c := encConfig(s, b, prefix)
	d := open(t, c)
	if err := writeShard(t.Context(), d, encShard(1), marked(100<<10, 9)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: encRecKey(1), Version: version(1), Data: []byte(encMarker)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	return c
}

// plainFormat is the format.json of a drive formatted before encryption,
// as the provider can write it (the ids are in the clear in the real one).
func plainFormat(t *testing.T, s server, b, prefix string) []byte {
	t.Helper()
	f := readFormat(t, s, b, prefix)
	delete(f, "enc")
	out, _ := json.Marshal(f)
	return out
}

// downgradedDrive formats an encrypted drive under prefix, then does what
// a hostile provider would: deletes its objects and writes back its
// format.json without the data key. The config returned has
// RequireEncrypted set, as vaultd sets it for every drive it has seen
// encrypted (node.json): only what the node keeps can tell a downgraded
// drive from one formatted before encryption, or a wiped prefix from a
// lagging listing (review 30e2).
func downgradedDrive(t *testing.T, s server, b, prefix string) remote.Config {
	t.Helper()
	c := review30eDrive(t, s, b, prefix)
	c.RequireEncrypted = true
	pf := plainFormat(t, s, b, prefix)
	cl := s.client("")
	for k := range rawObjects(t, s, b, prefix+"/") {
		if _, err := cl.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &b, Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	putRaw(t, s, b, prefix+"/format.json", pf)
	return c
}

// TestReview30eDowngradeWipe: the provider deletes an encrypted drive's
// objects and writes format.json back without "enc" (what it was before
// the drive was converted, or a forgery: the ids are in the clear). A node
// with a KEK must not then store the drive in the clear: it opens it as a
// legacy plaintext drive (a Warn), the healer refills it, and every shard
// and record key it is given goes to the provider in plaintext. With
// plaintext log objects the provider can also forge records (XXH3 is no
// MAC). Refused now (RequireEncrypted): Open fails or, if it opens, nothing
// goes out in plaintext.
func TestReview30eDowngradeWipe(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := downgradedDrive(t, s, b, "down")

	d, err := remote.Open(t.Context(), c)
	if err != nil {
		return // refused: held
	}
	defer d.Close()
	if !d.Encrypted() {
		t.Errorf("an encrypted drive whose format.json the provider rewrote without enc opened in plaintext")
	}
	// What the healer would write back.
	if err := writeShard(t.Context(), d, encShard(2), marked(100<<10, 10)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutRecord(t.Context(), driver.Record{Key: encRecKey(2), Version: version(1), Data: []byte(encMarker)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for k, v := range rawObjects(t, s, b, "down/") {
		if bytes.Contains(v, []byte(encMarker)) || bytes.Contains(v, []byte(encRecKey(2))) {
			t.Errorf("%s: plaintext at the provider after a downgrade", k)
		}
	}
}

// TestReview30eDowngradeKeep: format.json rewritten without "enc", the
// encrypted objects left: Open must fail (the objects do not parse as
// plaintext) and change nothing in the bucket (no orphan sweep of obj/, no
// format.json written). Held when run.
func TestReview30eDowngradeKeep(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := review30eDrive(t, s, b, "keep")
	putRaw(t, s, b, "keep/format.json", plainFormat(t, s, b, "keep"))
	before := hashKeys(t, s, b, "keep/")
	for _, ro := range []bool{false, true} {
		cc := c
		cc.ReadOnly = ro
		if d, err := remote.Open(t.Context(), cc); err == nil {
			_, gerr := d.GetRecord(t.Context(), encRecKey(1))
			d.Close()
			t.Fatalf("read-only %v: a downgraded format.json over encrypted objects opened (GetRecord: %v)", ro, gerr)
		}
	}
	if after := hashKeys(t, s, b, "keep/"); !maps(before, after) {
		t.Fatalf("the bucket changed:\n%v\n%v", before, after)
	}
}

// TestReview30eReformatPlanted: the provider deletes format.json (the
// operator restarts with --remote-reformat, as the error tells them) and
// plants one plaintext object under log/ with the highest sequence.
// recoverKey reads only that header, takes the drive for a plaintext one
// and writes format.json back WITHOUT "enc", although the prefix holds the
// drive's encrypted objects. Open then fails on those objects, but the
// plaintext format.json stays: the next start (no flag) opens it as
// plaintext, and once the provider removes the encrypted objects the
// drive stores everything in the clear (TestReview30eDowngradeWipe).
// Fails: format.json without enc.
func TestReview30eReformatPlanted(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := review30eDrive(t, s, b, "plant")
	cl := s.client("")
	if _, err := cl.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &b, Key: aws.String("plant/format.json")}); err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, b, "plant/log/ffffffffffffff00-evil", []byte(strings.Repeat("not an encrypted header; ", 8)))
	re := c
	re.Reformat = true
	d, err := remote.Open(t.Context(), re)
	if err == nil {
		defer d.Close()
		if !d.Encrypted() {
			t.Errorf("Reformat opened the drive in plaintext")
		}
	}
	objs := rawObjects(t, s, b, "plant/format.json")
	if f, ok := objs["plant/format.json"]; ok && !bytes.Contains(f, []byte(`"enc"`)) {
		t.Errorf("Reformat wrote a plaintext format.json over an encrypted drive's objects (Open: %v): %s", err, f)
	}
}

// TestReview30eReaderAcrossConvert: a read-only reader (a standby on
// another node) follows a plaintext drive; the owner converts it
// (Encrypt: objects deleted, new key, sequence numbers start again at 1)
// and writes. The reader must then serve what the owner wrote or fail: not
// its index of before the conversion (a record replaced since, a record
// written since missing). Its refresh lists log objects after the last
// sequence it applied, and the converted drive's sequences are lower.
func TestReview30eReaderAcrossConvert(t *testing.T) {
	knownDefect(t)
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	plain := s.config("", b, "conv")
	plain.KEK = nil
	plain.CompactInterval = -1
	d := open(t, plain)
	for i := range 5 {
		if _, _, err := d.PutRecord(ctx, driver.Record{Key: encRecKey(i), Version: version(1), Data: []byte("old")}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	rc := encConfig(s, b, "conv")
	rc.ReadOnly = true
	reader := open(t, rc)
	if r, err := reader.GetRecord(ctx, encRecKey(0)); err != nil || string(r.Data) != "old" {
		t.Fatalf("reader before: %q %v", r.Data, err)
	}
	oc := encConfig(s, b, "conv")
	oc.Encrypt = true
	owner := open(t, oc)
	if !owner.Encrypted() {
		t.Fatal("not converted")
	}
	if _, _, err := owner.PutRecord(ctx, driver.Record{Key: encRecKey(0), Version: version(2), Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := owner.PutRecord(ctx, driver.Record{Key: encRecKey(9), Version: version(1), Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if r, err := reader.GetRecord(ctx, encRecKey(0)); err == nil && string(r.Data) == "old" {
		t.Errorf("reader after the conversion serves the replaced record %q", r.Data)
	}
	if _, err := reader.GetRecord(ctx, encRecKey(9)); errors.Is(err, driver.ErrNotFound) {
		t.Errorf("reader after the conversion: a record the owner wrote since is not found")
	}
	if r, err := reader.GetRecord(ctx, encRecKey(3)); err == nil {
		t.Errorf("reader after the conversion serves a record the conversion deleted: %q", r.Data)
	}
}

// TestReview30eMinIO: the encrypted layout against MinIO (ENC30 ran only
// the vaultd backend): every size and edge range reads back, through a
// reopen; a shard object cut at a chunk boundary, or inside its final
// chunk, reads as driver.ErrCorrupt, as does a range starting past the
// cut (MinIO's 416), and ranged reads near the end; a tampered byte too.
// Held when run.
func TestReview30eMinIO(t *testing.T) {
	s := startMinIO(t)
	b := s.bucket(t)
	ctx := t.Context()
	c := encConfig(s, b, "mio")
	d := open(t, c)
	want := writeEncData(t, d)
	checkEncData(t, d, want)
	d.Close()
	d = open(t, c)
	checkEncData(t, d, want)

	large := marked(6*chunk+100, 77)
	sh := driver.Shard{PG: 3, Name: "00000000000000aa"}
	if err := writeShard(ctx, d, sh, large); err != nil {
		t.Fatal(err)
	}
	var obj string
	for k := range rawObjects(t, s, b, "mio/obj/0003/00000000000000aa") {
		obj = k
	}
	orig := rawObjects(t, s, b, obj)[obj]
	const hdr, full = 76, chunk + 28
	for _, tc := range []struct {
		what string
		b    []byte
	}{
		{"cut at a chunk boundary", orig[:hdr+6*full]},
		{"cut inside the final chunk", orig[:len(orig)-1]},
		{"cut at the first boundary", orig[:hdr+full]},
		{"a byte changed", flip(orig, hdr+2*full+100)},
	} {
		putRaw(t, s, b, obj, tc.b)
		if got, err := readAll(ctx, d, sh); !errors.Is(err, driver.ErrCorrupt) {
			t.Errorf("%s: read %d bytes, %v; want driver.ErrCorrupt", tc.what, len(got), err)
		}
		for _, off := range []int64{int64(5 * chunk), int64(6*chunk + 50), int64(6 * chunk)} {
			rc, err := d.ReadShard(ctx, sh, off, 10)
			if err == nil {
				var got []byte
				got, err = io.ReadAll(rc)
				rc.Close()
				if err == nil && !bytes.Equal(got, large[off:off+10]) {
					t.Errorf("%s: range %d+10 served other bytes", tc.what, off)
				}
			}
			if err != nil && !errors.Is(err, driver.ErrCorrupt) {
				t.Errorf("%s: range %d+10: %v; want driver.ErrCorrupt", tc.what, off, err)
			}
		}
	}
	putRaw(t, s, b, obj, orig)
	if got, err := readAll(ctx, d, sh); err != nil || !bytes.Equal(got, large) {
		t.Fatalf("restored: %v", err)
	}
}

// TestReview30eDowngradeForge: the downgrade of TestReview30eDowngradeWipe
// also gives up integrity: the provider writes format.json without enc
// and one plaintext log object of its own making, and the drive serves the
// forged record (newer than any other drive's, the engine would take it).
// Fails: GetRecord returns the forgery.
func TestReview30eDowngradeForge(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	c := downgradedDrive(t, s, b, "forge")
	putRaw(t, s, b, "forge/log/0000000000000001-0badc0de", remote.Review30eForgedLog(encRecKey(1), version(99), []byte("forged by the provider")))
	d, err := remote.Open(t.Context(), c)
	if err != nil {
		return // refused: held
	}
	defer d.Close()
	if r, err := d.GetRecord(t.Context(), encRecKey(1)); err == nil {
		t.Errorf("a drive with a KEK serves a record the provider forged: %q", r.Data)
	}
}

// TestReview30eRestampRewrap: a single node's drive (its own KEK) moving
// into a cluster: one open both re-stamps the cluster id and rewraps the
// data key under the cluster's KEK; the data reads back under the
// cluster's KEK alone; a read-only standby with only the cluster's KEK
// is refused before (untouched) and opens after. Held when run.
func TestReview30eRestampRewrap(t *testing.T) {
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	single := encConfig(s, b, "move")
	single.KEK, single.ClusterID = testKEK(5), "single"
	d := open(t, single)
	data := marked(200<<10, 3)
	if err := writeShard(ctx, d, encShard(1), data); err != nil {
		t.Fatal(err)
	}
	d.Close()
	standby := encConfig(s, b, "move")
	standby.KEK, standby.ClusterID, standby.ReadOnly = testKEK(6), "cluster", true
	before := hashKeys(t, s, b, "move/")
	if _, err := remote.Open(ctx, standby); err == nil {
		t.Fatal("a standby without the single node's key opened the drive")
	}
	if !maps(before, hashKeys(t, s, b, "move/")) {
		t.Fatal("a refused standby changed the bucket")
	}
	owner := encConfig(s, b, "move")
	owner.KEK, owner.OldKEKs, owner.ClusterID, owner.Restamp = testKEK(6), []remote.Key{testKEK(5)}, "cluster", "single"
	d2 := open(t, owner)
	f := readFormat(t, s, b, "move")
	if f["cluster_id"] != "cluster" || encKEKID(f) != testKEKID(testKEK(6)) {
		t.Fatalf("format.json after restamp+rewrap: %v", f)
	}
	if got, err := readAll(ctx, d2, encShard(1)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("owner: %v", err)
	}
	r := open(t, standby)
	if got, err := readAll(ctx, r, encShard(1)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("standby after the rewrap: %v", err)
	}
}

// TestReview30eConvertBlocksAttach: Encrypt converts a plaintext drive
// inside Open (checkFormat), one DELETE per object, and vaultd's single
// node calls Attach before it listens: the node serves nothing until every
// object of the drive is deleted (a drive of a million objects at 20 ms a
// DELETE: 5.5 hours). Fails: one DELETE per object during Attach. Fix:
// batch the deletes (DeleteObjects, 1000 a request) and/or run the
// conversion after Attach returns, with the drive offline meanwhile.
func TestReview30eConvertBlocksAttach(t *testing.T) {
	knownDefect(t)
	s := startVaultd(t)
	b := s.bucket(t)
	ctx := t.Context()
	plain := s.config("", b, "big")
	plain.KEK = nil
	plain.SmallShardMax = 1 << 10
	d := open(t, plain)
	const n = 120
	for i := range n {
		if err := writeShard(ctx, d, driver.Shard{PG: uint32(i % 7), Name: fmt.Sprintf("%016x", i)}, payload(2<<10, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	c := encConfig(s, b, "big")
	c.Encrypt = true
	d2, err := remote.Attach(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if !d2.Encrypted() {
		t.Fatal("not converted")
	}
	if del := d2.Stats().Deletes; del >= n {
		t.Errorf("Attach converting a drive of %d objects sent %d DELETEs before returning", n, del)
	}
}
