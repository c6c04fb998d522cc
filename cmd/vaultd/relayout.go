package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/s3"
)

// relayoutState is a container's re-layout as its storage policy
// document keeps it (policyDoc.Relayout): the status the admin API shows
// and the walk's cursor, so a new leader or a restarted node goes on
// where the walk stopped.
type relayoutState struct {
	s3.RelayoutStatus
	Next string `json:"next,omitempty"` // the key the walk continues after (engine.RelayoutOptions.After)
	// Found counts the keys the pass in progress found to move: a pass
	// that found none (and failed none) ends the re-layout.
	Found int `json:"found,omitempty"`
}

// relayoutBatch is how many index keys one step of the walk looks at
// before its progress is committed (one Raft entry); a step also ends
// once it moved relayoutBatchSeconds' worth of bytes at the rate limit.
const (
	relayoutBatch        = 100
	relayoutBatchSeconds = 2
)

// runRelayout moves the artifacts of containers whose storage policy
// changed layout (to or from hybrid) into the new layout, every interval
// until ctx ends: for each container whose policy document has a
// re-layout not done, a pass counts what is left, then walks the
// container (engine.RelayoutContainer) a batch at a time at most
// bytesPerSec, committing its cursor and counts to the policy document
// after each batch (relayoutBatch keys, or relayoutBatchSeconds of moves), conditionally (PutBucketConfigIf): a policy change
// meanwhile wins, and the next round starts the walk it asks for. A pass
// that found nothing to move (after one that moved everything, normally)
// marks the re-layout done; one that moved or failed anything is
// followed by another. Each version moved is an event
// (s3.RelayoutOperation) for the metrics and the transaction log. In a
// cluster only the Raft leader (lead) walks.
func runRelayout(ctx context.Context, eng *engine.Engine, store *cluster.Store, interval time.Duration, bytesPerSec int64, lead func() bool, obs s3.Observer, node string, log *slog.Logger) {
	burst := int(min(bytesPerSec, 1<<30))
	lim := rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	wait := func(ctx context.Context, n int64) error {
		for n > 0 {
			c := min(n, int64(burst))
			if err := lim.WaitN(ctx, int(c)); err != nil {
				return err
			}
			n -= c
		}
		return nil
	}
	everyContainer(ctx, store, interval, lead, "relayout", log, func(c meta.ContainerInfo) {
		if err := relayoutContainer(ctx, eng, store, c.Tenant, c.Name, relayoutBatchSeconds*bytesPerSec, wait, lead, obs, node, log); err != nil && ctx.Err() == nil {
			log.Warn("relayout: pass", "tenant", c.Tenant, "container", c.Name, "err", err)
		}
	})
}

// relayoutContainer runs one pass (or what is left of it) of a
// container's re-layout, if it has one not done.
func relayoutContainer(ctx context.Context, eng *engine.Engine, store *cluster.Store, tenant, container string, batchBytes int64, wait func(context.Context, int64) error, lead func() bool, obs s3.Observer, node string, log *slog.Logger) error {
	raw, ok := store.LocalBucketConfig(tenant, container, storagePolicyKind)
	if !ok {
		return nil
	}
	var doc policyDoc
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Relayout == nil || doc.Relayout.Done {
		return nil
	}
	// save commits doc if the stored document is still raw; it returns
	// false when it changed (a policy change: the walk it asks for starts
	// next round).
	save := func() (bool, error) {
		b, err := json.Marshal(doc)
		if err != nil {
			return false, err
		}
		err = store.PutBucketConfigIf(ctx, tenant, container, storagePolicyKind, b, storagePolicyKind, raw)
		if errors.Is(err, engine.ErrConfigChanged) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("relayout %s/%s: save progress: %w", tenant, container, err)
		}
		raw = b
		return true, nil
	}
	rs := doc.Relayout
	if string(engine.PolicyLayout(doc.Policy)) != rs.Layout {
		return nil // a change being committed: the next round sees it whole
	}
	if !rs.Counted {
		var left engine.RelayoutStats
		opts := engine.RelayoutOptions{Count: true, Limit: 10000}
		for {
			st, err := eng.RelayoutContainer(ctx, tenant, container, opts)
			if err != nil {
				return fmt.Errorf("relayout %s/%s: count: %w", tenant, container, err)
			}
			left.Misplaced += st.Misplaced
			left.MisplacedBytes += st.MisplacedBytes
			if opts.After = st.Next; st.Next == "" {
				break
			}
		}
		rs.Counted, rs.ArtifactsLeft, rs.BytesLeft, rs.Next, rs.Failed, rs.Found = true, left.Misplaced, left.MisplacedBytes, "", 0, 0
		if ok, err := save(); !ok {
			return err
		}
		log.Info("relayout: moving artifacts into the container's new layout", "tenant", tenant, "container", container, "layout", rs.Layout, "artifacts", rs.ArtifactsLeft, "bytes", rs.BytesLeft)
	}
	for ctx.Err() == nil && (lead == nil || lead()) {
		st, err := eng.RelayoutContainer(ctx, tenant, container, engine.RelayoutOptions{
			After: rs.Next, Limit: relayoutBatch, MaxBytes: batchBytes, Wait: wait,
			Moved: func(a engine.ArtifactInfo) {
				obs.ObserveRequest(&s3.RequestEvent{Time: time.Now(), Node: node, Tenant: tenant, Operation: s3.RelayoutOperation,
					Bucket: container, Key: a.Key, VersionID: a.VersionID, ObjectSize: a.Size, Status: http.StatusOK})
			},
		})
		if ctx.Err() != nil {
			return nil
		}
		rs.Next = st.Next
		rs.Moved += st.Moved
		rs.MovedBytes += st.Bytes
		rs.ArtifactsLeft = max(0, rs.ArtifactsLeft-st.Misplaced+st.Failed)
		rs.BytesLeft = max(0, rs.BytesLeft-st.MisplacedBytes)
		rs.Failed += st.Failed
		rs.Found += st.Misplaced
		if err != nil && st.Failed == 0 {
			rs.Failed++ // a drive not listed: its keys wait for another pass
		}
		if st.Next == "" {
			// A pass that moved something is followed by one that must
			// find nothing: it also moves what writes that picked the old
			// layout before the change committed after the first pass
			// went by.
			if rs.Failed == 0 && rs.Found == 0 {
				rs.Done, rs.ArtifactsLeft, rs.BytesLeft = true, 0, 0
				log.Info("relayout: done", "tenant", tenant, "container", container, "layout", rs.Layout, "moved", rs.Moved, "bytes", rs.MovedBytes)
			} else {
				rs.Counted = false // another pass, counted afresh
			}
		}
		if ok, serr := save(); !ok {
			return errors.Join(err, serr)
		}
		if err != nil || st.Next == "" {
			return err
		}
	}
	return nil
}

// relayoutText is the RELAYOUT column of `vaultd container list`.
func relayoutText(r *s3.RelayoutStatus) string {
	switch {
	case r == nil:
		return "-"
	case r.Done:
		return fmt.Sprintf("%s: done, %d moved (%s)", r.Layout, r.Moved, humanBytes(uint64(r.MovedBytes)))
	case !r.Counted:
		return fmt.Sprintf("%s: counting, %d moved (%s)", r.Layout, r.Moved, humanBytes(uint64(r.MovedBytes)))
	}
	s := fmt.Sprintf("%s: %d artifacts (%s) left, %d moved (%s)", r.Layout, r.ArtifactsLeft, humanBytes(uint64(r.BytesLeft)), r.Moved, humanBytes(uint64(r.MovedBytes)))
	if r.Failed > 0 {
		s += fmt.Sprintf(", %d failed (retried)", r.Failed)
	}
	return s
}
