package main

// Remote drives (--remote NAME=URL): an S3-compatible bucket as a drive of
// class "remote" (driver/remote), in a failure domain of its own.
//
// On a single node the drive is opened with the others. In a cluster it is
// advertised by gossip and registered in the cluster map attached to this
// node (cluster/remotedrive.go), and the other nodes reach it through this
// node's RPC like any peer drive. Its driver is opened only once this node
// owns it in the map (claimRemotes, which runs while the node serves and
// claims every drive at once; until then the drive refuses writes here
// and reads through its standby): at once if the map attaches it here
// since its first declaration, else by adoption from the node it is
// attached to, refused while gossip shows that node alive unless
// --remote-adopt-force, and followed by a wait of cluster.OwnerLease plus
// the drive's call timeout, so that the deposed owner has stopped writing
// before this node writes the bucket (see driver/remote, "Ownership and
// fencing"). An adopter restarted waits again (the adoption may be
// recent), and never formats the bucket (remote.Config.Existing), so a
// mistyped URL cannot become an empty drive. Every write of the driver
// passes cluster.Store.OwnerFence.
//
// A node started with the --remote of a drive the map attaches to another
// node that gossip shows alive does not adopt it: it becomes a standby
// (standbyDrive) and the cluster topology reads the drive's bucket
// through it, read-only (remote.Config.ReadOnly), whenever gossip reports
// the owner's node down, so the shards in the bucket stay readable when
// the owner is lost. Adoption, to write to the drive again, is a restart
// of a node with the --remote (or a new one) once the owner is gone.
// The drive's format.json names the cluster by an id derived from the
// cluster secret (clusterDriveID), the same on every node. A drive the
// node formatted while it ran alone (format.json naming the node's own
// cluster id from node.json) is re-stamped with the cluster's when the
// node, its owner, opens it in cluster mode (remote.Config.Restamp): a
// single node's remote drive moves with the node into a cluster. A drive
// stamped by another cluster or another single node stays refused: no
// fence stops that one's writer.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/remote"
	"github.com/vaultaire/vaultaire/metrics"
	"github.com/vaultaire/vaultaire/placement"
)

// remoteSpec is one --remote flag, its credentials filled in by
// loadRemoteCredentials.
type remoteSpec struct {
	name string // lowercase
	cfg  remote.Config
}

// remoteName is a --remote NAME: it becomes part of a drive id and of
// environment variable names.
var remoteName = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)

// parseRemotes parses the --remote flags into f.remoteSpecs.
func (f *serverFlags) parseRemotes() error {
	specs, err := parseRemoteFlags(f.remotes)
	f.remoteSpecs = specs
	if err != nil {
		return err
	}
	for name := range strings.SplitSeq(f.reformat, ",") {
		if name = strings.ToLower(strings.TrimSpace(name)); name == "" {
			continue
		}
		i := slices.IndexFunc(specs, func(s remoteSpec) bool { return s.name == name })
		if i < 0 {
			return fmt.Errorf("--remote-reformat %s: no --remote of that name", name)
		}
		specs[i].cfg.Reformat = true
	}
	if name := strings.ToLower(strings.TrimSpace(f.encrypt)); name != "" {
		// One at a time: a drive converted is empty until the healer has
		// refilled it, and two at once may be more than the erasure sets
		// can lose (a tier container's data lives on remote drives only).
		i := slices.IndexFunc(specs, func(s remoteSpec) bool { return s.name == name })
		if i < 0 {
			return fmt.Errorf("--remote-encrypt %s: no --remote of that name (one name: drives are converted one at a time)", name)
		}
		if !f.clustered() {
			if err := encryptAllowed(len(specs)); err != nil {
				return fmt.Errorf("--remote-encrypt %s: %w", name, err)
			}
		}
		specs[i].cfg.Encrypt = true // in a cluster, checked against the map at claim
	}
	return nil
}

// encryptAllowed refuses --remote-encrypt where remote drives number
// fewer than two: the remote layout (tier containers' artifacts) is then
// 1+0, the drive holds their only copy, and the conversion's deletions
// could not be refilled (review 30e).
func encryptAllowed(remotes int) error {
	if remotes < 2 {
		return fmt.Errorf("refused: %d remote drive(s): a tier container's artifacts have no other copy than this drive's, and converting it deletes its objects; add a remote drive first (or move tier containers back to local)", remotes)
	}
	return nil
}

// remoteDriveCount counts the remote drives of m (none without a map).
func remoteDriveCount(m *placement.Map) int {
	n := 0
	if m == nil {
		return 0
	}
	for _, d := range m.Drives {
		if d.Class == driver.ClassRemote {
			n++
		}
	}
	return n
}

// parseRemoteFlags parses --remote values: NAME=https://host[:port]/bucket[/prefix]?region=R.
func parseRemoteFlags(flags []string) ([]remoteSpec, error) {
	var out []remoteSpec
	for _, v := range flags {
		name, raw, ok := strings.Cut(v, "=")
		name = strings.ToLower(name)
		if !ok || !remoteName.MatchString(name) {
			return nil, fmt.Errorf("--remote %q: want NAME=https://host[:port]/bucket[/prefix]?region=R, NAME of letters, digits and _ (at most 32)", redactRemote(v))
		}
		cfg, err := remote.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("--remote %s: %w", name, err)
		}
		if slices.ContainsFunc(out, func(s remoteSpec) bool { return s.name == name }) {
			return nil, fmt.Errorf("--remote %s given twice", name)
		}
		for _, o := range out {
			if overlaps(o.cfg, cfg) {
				// One drive's objects would be inside the other's: its
				// format.json refuses the second (offline for good), or the
				// first's orphan sweep deletes the second's (attack 27 F2, F3).
				return nil, fmt.Errorf("--remote %s: its bucket and prefix overlap --remote %s's: each remote drive needs a prefix of its own", name, o.name)
			}
		}
		out = append(out, remoteSpec{name: name, cfg: cfg})
	}
	return out, nil
}

// overlaps reports whether two remote drives' bucket prefixes overlap:
// the same endpoint and bucket, and one prefix within the other (or the
// same).
func overlaps(a, b remote.Config) bool {
	if !strings.EqualFold(a.Endpoint, b.Endpoint) || a.Bucket != b.Bucket {
		return false
	}
	dir := func(p string) string {
		if p = strings.Trim(p, "/"); p != "" {
			p += "/"
		}
		return p
	}
	pa, pb := dir(a.Prefix), dir(b.Prefix)
	return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
}

// redactRemote hides anything that looks like user information in a
// --remote value before it is echoed in an error.
func redactRemote(v string) string {
	if i := strings.Index(v, "@"); i >= 0 {
		if j := strings.Index(v, "://"); j >= 0 && j < i {
			return v[:j+3] + "REDACTED" + v[i:]
		}
		return "REDACTED"
	}
	return v
}

// remoteCredFile is the JSON of a credentials file.
type remoteCredFile struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// loadRemoteCredentials fills in each remote's keys: from
// VAULT_REMOTE_<NAME>_ACCESS_KEY and _SECRET_KEY, or from the JSON file
// named by VAULT_REMOTE_<NAME>_CREDENTIALS ({"access_key":..,"secret_key":..}),
// which must not be readable by group or others.
func loadRemoteCredentials(specs []remoteSpec, getenv func(string) string) error {
	for i := range specs {
		s := &specs[i]
		env := "VAULT_REMOTE_" + strings.ToUpper(s.name)
		ak, sk, file := getenv(env+"_ACCESS_KEY"), getenv(env+"_SECRET_KEY"), getenv(env+"_CREDENTIALS")
		switch {
		case ak != "" && sk != "":
		case ak != "" || sk != "":
			return fmt.Errorf("--remote %s: set both %s_ACCESS_KEY and %s_SECRET_KEY", s.name, env, env)
		case file != "":
			fi, err := os.Stat(file)
			if err != nil {
				return fmt.Errorf("--remote %s: %s_CREDENTIALS: %w", s.name, env, err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				return fmt.Errorf("--remote %s: credentials file %s has mode %04o: it must be readable by its owner only (chmod 600)", s.name, file, fi.Mode().Perm())
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--remote %s: %w", s.name, err)
			}
			var cf remoteCredFile
			if err := json.Unmarshal(b, &cf); err != nil || cf.AccessKey == "" || cf.SecretKey == "" {
				return fmt.Errorf("--remote %s: credentials file %s: want {\"access_key\":...,\"secret_key\":...}", s.name, file)
			}
			ak, sk = cf.AccessKey, cf.SecretKey
		default:
			return fmt.Errorf("--remote %s: no credentials: set %s_ACCESS_KEY and %s_SECRET_KEY, or %s_CREDENTIALS to a mode-0600 JSON file", s.name, env, env, env)
		}
		s.cfg.AccessKey, s.cfg.SecretKey = ak, sk
	}
	return nil
}

// remoteNames returns the names of specs, in flag order, as node.json
// records them.
func remoteNames(specs []remoteSpec) []string {
	out := []string{}
	for _, s := range specs {
		out = append(out, s.name)
	}
	return out
}

// remoteDriveID is the drive id of remote NAME. It does not name the node,
// so that another node can adopt the drive.
func remoteDriveID(name string) placement.DriveID { return placement.DriveID("remote-" + name) }

// checkRemotes compares the --remote names with those node.json recorded
// when the node was created: adding or removing a remote drive would
// re-place every artifact.
func checkRemotes(st *nodeState, specs []remoteSpec) error {
	if names := remoteNames(specs); !slices.Equal(st.Remotes, names) && !(len(st.Remotes) == 0 && len(names) == 0) {
		return fmt.Errorf("this node was created with --remote drives %q; start it with the same names in the same order (got %q)", st.Remotes, names)
	}
	return nil
}

// remoteZone is the failure domain of remote drive name: its own.
func remoteZone(name string) string { return "remote:" + name }

// attachRemotes opens each remote drive (offline if its backend cannot be
// reached now: the driver loads it in the background) and adds it to
// drives and pdrives, as a drive of class remote in a failure domain (zone)
// of its own, attached to this node. In cluster mode (clusterSecret set)
// it adds a lateDrive instead, opened by claimRemotes once this node owns
// the drive. Each drive encrypts what it writes under the node's remote
// KEK (remotekey.go).
func attachRemotes(ctx context.Context, specs []remoteSpec, seen *encryptedSeen, clusterSecret []byte, drives map[placement.DriveID]driver.Driver, pdrives []placement.Drive, closers *[]func() error, log *slog.Logger) ([]placement.Drive, error) {
	st := seen.st
	if len(specs) == 0 {
		return pdrives, nil
	}
	kek, oldKEKs, err := remoteKEKs(st.Dirs[0], clusterSecret, true, st.EncryptedRemotes)
	if err != nil {
		return nil, fmt.Errorf("remote drives' key: %w", err)
	}
	for _, s := range specs {
		id := remoteDriveID(s.name)
		cfg := s.cfg
		cfg.ID, cfg.ClusterID = driver.DriveID(id), st.ClusterID
		cfg.KEK, cfg.OldKEKs = kek, oldKEKs
		cfg.RequireEncrypted, cfg.OnFormat = seen.known(s.name), seen.onFormat(s.name)
		cfg.Logger = log.With("component", "remote", "remote", s.name)
		pdrives = append(pdrives, placement.Drive{ID: id, Node: placement.NodeID(st.Node), Zone: remoteZone(s.name), Class: driver.ClassRemote})
		if clusterSecret != nil {
			// A drive this node formatted while it ran alone moves
			// with it into the cluster (remote.Config.Restamp).
			cfg.ClusterID, cfg.Restamp = clusterDriveID(clusterSecret), st.ClusterID
			ld := &lateDrive{id: id, cfg: cfg}
			*closers = append(*closers, ld.Close)
			drives[id] = ld
			continue
		}
		d, err := remote.Attach(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("--remote %s: %w", s.name, err)
		}
		if err := d.Err(); err != nil {
			log.Error("starting with a remote drive offline", "drive", id, "endpoint", cfg.Endpoint, "bucket", cfg.Bucket, "err", err)
		}
		*closers = append(*closers, d.Close)
		drives[id] = d
	}
	return pdrives, nil
}

// clusterDriveID is the cluster id a cluster's remote drives record in
// their format.json: the same on every node, so that any node can adopt
// them. It is derived from the cluster secret, one way (HMAC-SHA256,
// 128 bits shown), so the bucket learns nothing of the secret.
func clusterDriveID(secret []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("vaultaire remote drive cluster id"))
	return "c" + hex.EncodeToString(h.Sum(nil)[:16])
}

// remoteMembers returns the gossip advertisement of the remote drives.
func remoteMembers(specs []remoteSpec) []cluster.MemberDrive {
	var out []cluster.MemberDrive
	for _, s := range specs {
		out = append(out, cluster.MemberDrive{ID: string(remoteDriveID(s.name)), Class: string(driver.ClassRemote), Zone: remoteZone(s.name)})
	}
	return out
}

// lateDrive is a remote drive in cluster mode until claimRemotes opened
// its driver: every call fails with driver.ErrOffline until then. It lets
// the RPC server, the fence and the topology hold the drive from the
// start.
type lateDrive struct {
	id  placement.DriveID
	cfg remote.Config // without Fence
	d   atomic.Pointer[remote.Driver]
	// sb, if set, serves reads until d is open (a fence wait after an
	// adoption): the map names this node, so no other node's standby
	// reads the bucket for it meanwhile.
	sb *standbyDrive
}

var _ driver.Driver = (*lateDrive)(nil)

// errNotClaimed is the cause of calls to a lateDrive not opened yet.
var errNotClaimed = errors.New("remote drive not claimed by this node yet")

func (l *lateDrive) get() (*remote.Driver, error) {
	if d := l.d.Load(); d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("remote drive %s: %w: %w", l.id, driver.ErrOffline, errNotClaimed)
}

// reader returns the driver reads go to: the open driver, else the
// standby if l has one.
func (l *lateDrive) reader(ctx context.Context) (driver.Driver, error) {
	d, err := l.get()
	if err == nil {
		return d, nil
	}
	if l.sb == nil {
		return nil, err
	}
	return l.sb.get(ctx)
}

// open opens the driver with fence, once; existing: the drive must be
// formatted already (adoption).
func (l *lateDrive) open(ctx context.Context, fence remote.Fencer, existing bool) error {
	cfg := l.cfg
	cfg.Fence, cfg.Existing = fence, existing
	d, err := remote.Attach(ctx, cfg)
	if err != nil {
		return fmt.Errorf("--remote %s: %w", l.id, err)
	}
	if err := d.Err(); err != nil {
		cfg.Logger.Error("starting with a remote drive offline", "drive", l.id, "endpoint", cfg.Endpoint, "bucket", cfg.Bucket, "err", err)
	}
	if !l.d.CompareAndSwap(nil, d) {
		d.Close()
	}
	return nil
}

// Close closes the driver if it was opened.
func (l *lateDrive) Close() error {
	if d := l.d.Load(); d != nil {
		return d.Close()
	}
	return nil
}

// Probe probes the driver (runProbes).
func (l *lateDrive) Probe(ctx context.Context) error {
	d, err := l.get()
	if err != nil {
		return err
	}
	return d.Probe(ctx)
}

func (l *lateDrive) Info(ctx context.Context) (driver.Info, error) {
	d, err := l.get()
	if err != nil {
		return driver.Info{}, err
	}
	return d.Info(ctx)
}

func (l *lateDrive) CreateShard(ctx context.Context, s driver.Shard) (driver.ShardWriter, error) {
	d, err := l.get()
	if err != nil {
		return nil, err
	}
	return d.CreateShard(ctx, s)
}

func (l *lateDrive) ReadShard(ctx context.Context, s driver.Shard, off, length int64) (io.ReadCloser, error) {
	d, err := l.reader(ctx)
	if err != nil {
		return nil, err
	}
	return d.ReadShard(ctx, s, off, length)
}

func (l *lateDrive) DeleteShard(ctx context.Context, s driver.Shard) error {
	d, err := l.get()
	if err != nil {
		return err
	}
	return d.DeleteShard(ctx, s)
}

func (l *lateDrive) PutRecord(ctx context.Context, r driver.Record) (driver.Record, bool, error) {
	d, err := l.get()
	if err != nil {
		return driver.Record{}, false, err
	}
	return d.PutRecord(ctx, r)
}

func (l *lateDrive) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	d, err := l.reader(ctx)
	if err != nil {
		return driver.Record{}, err
	}
	return d.GetRecord(ctx, key)
}

func (l *lateDrive) DeleteRecord(ctx context.Context, key string, v driver.Version) error {
	d, err := l.get()
	if err != nil {
		return err
	}
	return d.DeleteRecord(ctx, key, v)
}

func (l *lateDrive) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	d, err := l.reader(ctx)
	if err != nil {
		return nil, err
	}
	return d.ListRecords(ctx, prefix, after, limit)
}

// claimPoll is how often claimRemotes looks at the map and gossip again.
const claimPoll = 250 * time.Millisecond

// lateDrives returns the lateDrives among drives, by id.
func lateDrives(drives map[placement.DriveID]driver.Driver) []*lateDrive {
	var lates []*lateDrive
	for _, d := range drives {
		if l, ok := d.(*lateDrive); ok {
			lates = append(lates, l)
		}
	}
	slices.SortFunc(lates, func(a, b *lateDrive) int { return strings.Compare(string(a.id), string(b.id)) })
	return lates
}

// claimRemotes opens this node's remote drives (lates) once it owns each
// in the cluster map; see the file comment. It runs while the node serves:
// the drives are claimed concurrently, so the fence waits of several
// adoptions overlap, and until a drive is open its lateDrive answers
// driver.ErrOffline (the engine reads around it, and the topology reads
// the bucket through the drive's standby while the map still attaches it
// to a node gossip reports down). A drive whose owner gossip shows alive
// is not claimed (unless force): this node stays its standby. It returns
// when every drive is open or left to its owner, or ctx ends; a drive not
// opened for another reason is logged and left offline.
func claimRemotes(ctx context.Context, store *cluster.Store, members func() []cluster.Member, node string, lates []*lateDrive, force bool, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, l := range lates {
		wg.Go(func() {
			if err := claimRemote(ctx, store, members, node, l, force, log); err != nil && ctx.Err() == nil {
				log.Error("remote drive not opened; it stays offline on this node until a restart", "drive", l.id, "err", err)
			}
		})
	}
	wg.Wait()
}

// standbysOf returns a standby (a read-only view, opened on first use) of
// each remote drive in lates, by drive id. The topology uses one only
// while the map attaches its drive to another node that gossip reports
// down (cluster.Topology.UseStandbys); the drive's lateDrive reads
// through it until it is open (lateDrive.sb).
func standbysOf(lates []*lateDrive) []*standbyDrive {
	out := make([]*standbyDrive, 0, len(lates))
	for _, l := range lates {
		l.sb = newStandby(l)
		out = append(out, l.sb)
	}
	return out
}

// adoptCheckPause spaces an adopter's checks of a bucket that did not hold
// its drive (holdsDrive): each costs the provider a request or two.
const adoptCheckPause = 10 * time.Second

// claimUnknownWait is how long claimRemote waits for gossip to learn of
// a drive's owner, once it knows other nodes, before taking it as gone.
const claimUnknownWait = 10 * time.Second

// claimRemote opens l once this node owns it (adopting it if its owner is
// gone or force), or returns nil without opening it when a live node owns
// it. It fails if opening fails or ctx ends.
func claimRemote(ctx context.Context, store *cluster.Store, members func() []cluster.Member, node string, l *lateDrive, force bool, log *slog.Logger) error {
	id := string(l.id)
	if l.cfg.Encrypt {
		if err := encryptAllowed(remoteDriveCount(store.Map())); err != nil {
			log.Error("remote drive: --remote-encrypt "+err.Error(), "drive", id)
			l.cfg.Encrypt = false
		}
	}
	waiting := ""
	var unknownSince time.Time
	note := func(why string) {
		if why != waiting {
			log.Info("remote drive: waiting to claim it", "drive", id, "why", why)
			waiting = why
		}
	}
	for {
		owner, epoch, ok := store.DriveOwner(id)
		switch {
		case ok && owner == node && epoch <= 1:
			// Declared here first: formatted here if its prefix is empty.
			log.Info("remote drive: attached to this node", "drive", id, "owner_epoch", epoch)
			return l.open(ctx, ownerFence(store, id, epoch), false)
		case ok && owner == node:
			// Adopted by this node before a restart: formatted already
			// (an empty prefix is a mistyped URL, never a new drive), and
			// the adoption may be recent, so the previous owner's fence
			// gets its whole wait again.
			return openAdopted(ctx, store, id, epoch, l, "remote drive: attached to this node by an adoption; waiting for the previous owner's fence to expire before opening it", log)
		case ok:
			state, known, joined := gossipState(members(), node, owner)
			if known || !joined {
				unknownSince = time.Time{}
			} else if unknownSince.IsZero() {
				unknownSince = time.Now()
			}
			switch {
			case known && state == cluster.MemberAlive && !force:
				log.Info("remote drive: attached to another node, alive; this node is a standby: it reads the bucket directly while that node is down and never writes it (restart it with --remote-adopt-force to take the drive over)", "drive", id, "owner", owner, "owner_epoch", epoch)
				return nil
			case known && state == cluster.MemberSuspect && !force:
				note("owner " + owner + " is suspect in gossip")
			case !known && !joined && !force:
				note("gossip has not joined the cluster yet")
			case !known && !force && time.Since(unknownSince) < claimUnknownWait:
				note("gossip does not know owner " + owner + " yet")
			default:
				if err := l.holdsDrive(ctx); err != nil {
					// A mistyped URL or keys (or the backend down): adopting
					// would take the drive from the standbys, which read it,
					// to a node that cannot. Looked at again in a while.
					if why := err.Error(); why != waiting {
						log.Error("remote drive: its bucket does not answer as this drive, so it is not adopted (check --remote and its keys)", "drive", id, "owner", owner, "err", err)
						waiting = why
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("--remote %s: %w", id, ctx.Err())
					case <-time.After(adoptCheckPause):
					}
					continue
				}
				newEpoch, err := store.AdoptDrive(ctx, id, owner, node, epoch)
				switch {
				case errors.Is(err, cluster.ErrDriveMoved):
					continue // another adoption won; look again
				case err != nil:
					note(err.Error()) // not registered yet, no leader: retry
				default:
					return openAdopted(ctx, store, id, newEpoch, l, "remote drive adopted; waiting for the previous owner's fence to expire before opening it", log.With("from", owner))
				}
			}
		default:
			note("not registered in the cluster map yet")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("--remote %s: %w", id, ctx.Err())
		case <-time.After(claimPoll):
		}
	}
}

// holdsDrive checks, read-only, that l's bucket and prefix hold the drive
// (its format.json names it) and answer: what an adopter checks before it
// takes the drive in the map.
func (l *lateDrive) holdsDrive(ctx context.Context) error {
	if l.sb == nil {
		return nil // no standby view (not in cluster mode)
	}
	d, err := l.sb.get(ctx)
	if err != nil {
		return err
	}
	return d.Probe(ctx)
}

// openAdopted opens l, a drive this node adopted at owner epoch epoch,
// once the previous owner's fence has expired (OwnerLease plus the
// driver's call timeout after the adoption): it must be formatted already.
// Until then l reads through its standby and refuses writes.
func openAdopted(ctx context.Context, store *cluster.Store, id string, epoch uint64, l *lateDrive, why string, log *slog.Logger) error {
	wait := cluster.OwnerLease + l.cfg.OpTimeout
	if l.cfg.OpTimeout == 0 {
		wait = cluster.OwnerLease + remote.DefaultOpTimeout
	}
	log.Warn(why, "drive", id, "owner_epoch", epoch, "wait", wait)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	if err := l.open(ctx, ownerFence(store, id, epoch), true); err != nil {
		return err
	}
	log.Info("remote drive: opened after its adoption", "drive", id, "owner_epoch", epoch)
	return nil
}

// gossipState returns node owner's state in members, whether it is known,
// and whether this node's gossip has joined others (one other member
// alive): only then is an unknown owner taken as gone.
func gossipState(members []cluster.Member, self, owner string) (state cluster.MemberState, known, joined bool) {
	for _, m := range members {
		if m.Name == owner {
			state, known = m.State, true
		}
		if m.Name != self && m.State == cluster.MemberAlive {
			joined = true
		}
	}
	return state, known, joined
}

// ownerFence is the fence of remote drive id claimed at owner epoch epoch.
func ownerFence(store *cluster.Store, id string, epoch uint64) remote.Fencer {
	return remote.FenceFunc(func(ctx context.Context) error { return store.OwnerFence(ctx, id, epoch) })
}

// scrubbed returns the drives the node's scrubber reads: its local ones. A
// remote drive is not scrubbed: a pass would read (and pay for) every byte
// it holds.
func scrubbed(drives map[placement.DriveID]driver.Driver, m *placement.Map) map[placement.DriveID]driver.Driver {
	out := map[placement.DriveID]driver.Driver{}
	for id, d := range drives {
		if dr, ok := m.Drive(id); ok && dr.Class == driver.ClassRemote {
			continue
		}
		out[id] = d
	}
	return out
}

// remoteSamples returns the metrics provider of the remote drives among
// drives (nil when there are none, which leaves the series out). A drive
// this node is a standby of reports its standby's driver once opened.
func remoteSamples(drives map[placement.DriveID]driver.Driver, standbys []*standbyDrive) func() []metrics.RemoteSample {
	type named struct {
		id string
		d  func() *remote.Driver // nil while a lateDrive is not open
	}
	var rs []named
	for id, d := range drives {
		switch r := d.(type) {
		case *remote.Driver:
			rs = append(rs, named{string(id), func() *remote.Driver { return r }})
		case *lateDrive:
			sb := standbyDrives(standbys)[id]
			rs = append(rs, named{string(id), func() *remote.Driver {
				if d := r.d.Load(); d != nil {
					return d
				}
				if s, ok := sb.(*standbyDrive); ok {
					return s.opened()
				}
				return nil
			}})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b named) int { return strings.Compare(a.id, b.id) })
	return func() []metrics.RemoteSample {
		out := make([]metrics.RemoteSample, 0, len(rs))
		for _, r := range rs {
			d := r.d()
			if d == nil {
				out = append(out, metrics.RemoteSample{Drive: r.id})
				continue
			}
			s := d.Stats()
			_, lost := d.Verifications()
			out = append(out, metrics.RemoteSample{
				Drive: r.id, Online: d.Err() == nil, Encrypted: d.Encrypted(),
				Requests: map[string]uint64{"PUT": s.Puts, "POST": s.Posts, "GET": s.Gets, "LIST": s.Lists, "HEAD": s.Heads, "DELETE": s.Deletes},
				Sent:     s.BytesSent, Received: s.BytesRecv, Retries: s.Retries, Failures: s.Failures, Opens: s.Opens,
				Losses: d.Losses(), LostObjects: lost,
			})
		}
		return out
	}
}

// standbyDrive is a read-only view of a remote drive another node owns
// (remote.Config.ReadOnly), opened on its first read: a standby costs no
// request and no memory while the owner serves the drive. Writes fail with
// driver.ErrOffline without opening it.
type standbyDrive struct {
	id  placement.DriveID
	cfg remote.Config

	mu sync.Mutex // serialises opening d
	d  atomic.Pointer[remote.Driver]
}

var _ driver.Driver = (*standbyDrive)(nil)

func newStandby(l *lateDrive) *standbyDrive {
	cfg := l.cfg
	cfg.ReadOnly, cfg.Fence, cfg.Restamp = true, nil, ""
	cfg.Logger = cfg.Logger.With("standby", true)
	return &standbyDrive{id: l.id, cfg: cfg}
}

// standbyDrives returns sbs by drive id.
func standbyDrives(sbs []*standbyDrive) map[placement.DriveID]driver.Driver {
	out := map[placement.DriveID]driver.Driver{}
	for _, s := range sbs {
		out[s.id] = s
	}
	return out
}

// get opens the driver on first use (offline until the bucket answers:
// it loads in the background then).
func (s *standbyDrive) get(ctx context.Context) (*remote.Driver, error) {
	if d := s.d.Load(); d != nil {
		return d, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.d.Load(); d != nil {
		return d, nil
	}
	s.cfg.Logger.Warn("remote drive: its owner is down; reading its bucket directly (read-only)", "drive", s.id)
	d, err := remote.Attach(ctx, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("remote drive %s standby: %w", s.id, err)
	}
	s.d.Store(d)
	return d, nil
}

// opened returns the driver if it was opened, else nil.
func (s *standbyDrive) opened() *remote.Driver { return s.d.Load() }

// Close closes the driver if it was opened.
func (s *standbyDrive) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.d.Load(); d != nil {
		return d.Close()
	}
	return nil
}

// errStandby is the cause of writes refused by a standbyDrive.
var errStandby = errors.New("remote drive standby: read-only while its owner's node is down")

func (s *standbyDrive) refuse() error {
	return fmt.Errorf("remote drive %s: %w: %w", s.id, driver.ErrOffline, errStandby)
}

func (s *standbyDrive) Info(context.Context) (driver.Info, error) { return driver.Info{}, s.refuse() }

func (s *standbyDrive) CreateShard(context.Context, driver.Shard) (driver.ShardWriter, error) {
	return nil, s.refuse()
}

func (s *standbyDrive) DeleteShard(context.Context, driver.Shard) error { return s.refuse() }

func (s *standbyDrive) PutRecord(context.Context, driver.Record) (driver.Record, bool, error) {
	return driver.Record{}, false, s.refuse()
}

func (s *standbyDrive) DeleteRecord(context.Context, string, driver.Version) error {
	return s.refuse()
}

func (s *standbyDrive) ReadShard(ctx context.Context, sh driver.Shard, off, length int64) (io.ReadCloser, error) {
	d, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return d.ReadShard(ctx, sh, off, length)
}

func (s *standbyDrive) GetRecord(ctx context.Context, key string) (driver.Record, error) {
	d, err := s.get(ctx)
	if err != nil {
		return driver.Record{}, err
	}
	return d.GetRecord(ctx, key)
}

func (s *standbyDrive) ListRecords(ctx context.Context, prefix, after string, limit int) ([]driver.Record, error) {
	d, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return d.ListRecords(ctx, prefix, after, limit)
}
