package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/vaultaire/vaultaire/placement"
)

// Storage policies of a container (Config.StoragePolicy). The names reach
// the Raft log; append only.
const (
	// PolicyLocal keeps every shard on local drives (the default).
	PolicyLocal = "local"
	// PolicyHybrid keeps data shards on local drives and parity shards on
	// remote drives.
	PolicyHybrid = "hybrid"
	// PolicyTier writes like PolicyLocal and moves artifacts past its
	// thresholds to remote drives.
	PolicyTier = "tier"
)

// layoutOf returns the placement layout a container's new writes use.
func (e *Engine) layoutOf(tenant, container string) placement.Layout {
	if e.cfg.StoragePolicy == nil {
		return placement.LayoutLocal
	}
	return layoutOfPolicy(e.cfg.StoragePolicy(tenant, container))
}

// mapFor returns the map every operation on a container's artifacts uses:
// the current cluster map under the container's layout (layoutOf). It is
// the one place where a storage policy becomes drive sets: put, read,
// heal, scan, list, multipart and migration all take their map from it.
func (e *Engine) mapFor(tenant, container string) *placement.Map {
	return e.layoutMap(e.cfg.Topology.Map(), e.layoutOf(tenant, container))
}

// layoutMap returns m under layout l, cached per map. A map lacking the
// drives l needs (ForLayout fails) falls back to the local layout, then to
// m itself.
func (e *Engine) layoutMap(m *placement.Map, l placement.Layout) *placement.Map {
	if m == nil || l == "" || m.Layout == l {
		return m
	}
	k := layoutKey{m, l}
	e.layoutMu.Lock()
	d, ok := e.layouts[k]
	e.layoutMu.Unlock()
	if ok {
		return d
	}
	d, err := m.ForLayout(l)
	if err != nil {
		e.log.Warn("storage policy layout unavailable, using local", "layout", l, "epoch", m.Epoch, "err", err)
		if d, err = m.ForLayout(placement.LayoutLocal); err != nil {
			d = m
		}
	}
	e.layoutMu.Lock()
	defer e.layoutMu.Unlock()
	if len(e.layouts) >= maxLayouts {
		clear(e.layouts) // maps of past epochs; the current ones come back on use
	}
	e.layouts[k] = d
	return d
}

// maxLayouts bounds the layout cache: a few layouts of the current and the
// historic maps.
const maxLayouts = 64

type layoutKey struct {
	m *placement.Map
	l placement.Layout
}

// layoutCache is embedded in Engine.
type layoutCache struct {
	layoutMu sync.Mutex // guards layouts
	layouts  map[layoutKey]*placement.Map
}

// layoutOfPolicy is layoutOf for a policy name.
func layoutOfPolicy(policy string) placement.Layout {
	if policy == PolicyHybrid {
		return placement.LayoutHybrid
	}
	return placement.LayoutLocal
}

// CheckPolicyChange reports whether a container's storage policy may
// become policy. A change that moves where new writes go (to or from
// PolicyHybrid) is allowed on a container holding artifacts: they stay
// readable where they are (reads try the other layout, otherLayouts) and
// RelayoutContainer moves them into the new layout (relayout.go). It is
// refused with ErrContainerNotEmpty while the container has a multipart
// upload in progress: an upload is looked up in the sets of the layout
// its container has now (findUpload), so one begun under the old layout
// would answer NoSuchUpload; complete or abort it first. PolicyLocal and
// PolicyTier write alike, so a change between them is always allowed.
func (e *Engine) CheckPolicyChange(ctx context.Context, tenant, container, policy string) error {
	if err := e.checkContainer(ctx, tenant, container); err != nil {
		return err
	}
	if e.layoutOf(tenant, container) == layoutOfPolicy(policy) {
		return nil
	}
	ups, _, err := e.ListUploads(ctx, tenant, container, "", "", "", 1)
	if err != nil {
		return err
	}
	if len(ups) > 0 {
		return fmt.Errorf("%w: %s: multipart uploads in progress; storage policy %s places shards elsewhere: complete or abort them first", ErrContainerNotEmpty, container, policy)
	}
	return nil
}
