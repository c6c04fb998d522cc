package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CreateContainer creates a container owned by tenant. It fails with
// ErrContainerExists if tenant already owns one of that name; other tenants'
// containers never collide.
func (e *Engine) CreateContainer(ctx context.Context, tenant, name string) error {
	if err := validTenant(tenant); err != nil {
		return err
	}
	if err := validContainer(name); err != nil {
		return err
	}
	start := e.cfg.Now()
	if _, err := e.cfg.Containers.Container(ctx, tenant, name); err == nil {
		return fmt.Errorf("%w: %s", ErrContainerExists, name)
	} else if !errors.Is(err, ErrNoSuchContainer) {
		return err // unknown whether it exists: never sweep then
	}
	// A new container starts empty, whatever an earlier one of the same
	// name (of this tenant, or of a deleted tenant of the same name) left.
	if err := e.sweepContainer(ctx, tenant, name, start); err != nil {
		return err
	}
	c := ContainerInfo{Tenant: tenant, Name: name, Created: e.cfg.Now()}
	if m := e.cfg.Topology.Map(); m != nil {
		// Its keys are written with this map or a later one (a store
		// may record the epoch of its own current map instead: cluster).
		c.Settled = uint64(m.Epoch)
	}
	return e.cfg.Containers.CreateContainer(ctx, c)
}

// sweepContainer deletes the artifacts modified before cutoff that are
// listed under a container that does not exist (any more, or yet). A
// deleted container can leave some: a PUT that had checked the container
// before its deletion and committed after the emptiness check, on any
// node. DeleteContainer sweeps once the deletion has reached every node
// (so no later PUT can pass that check), and CreateContainer sweeps before
// it creates, for what a crash or a node cut off during the deletion
// left. The sweep stops as soon as the container exists again (a create
// elsewhere won; it swept for itself), and the cutoff spares what was
// written into such a new container meanwhile.
func (e *Engine) sweepContainer(ctx context.Context, tenant, name string, cutoff time.Time) error {
	if e.cfg.Topology.Map() == nil {
		return nil // no map yet: nothing can have been stored
	}
	after := ""
	for {
		if _, err := e.cfg.Containers.Container(ctx, tenant, name); err == nil {
			return nil
		} else if !errors.Is(err, ErrNoSuchContainer) {
			return fmt.Errorf("engine: sweep container %s: %w", name, err)
		}
		res, err := e.list(ctx, tenant, name, ListOptions{After: after, Limit: 1000, all: true, sweep: true})
		if err != nil {
			return fmt.Errorf("engine: sweep container %s: %w", name, err)
		}
		for _, a := range res.Artifacts {
			if !a.Modified.Before(cutoff) {
				continue
			}
			if err := e.tombstone(ctx, tenant, name, a.Key); err != nil {
				return fmt.Errorf("engine: sweep container %s: %w", name, err)
			}
		}
		if len(res.Artifacts) == 0 || !res.Truncated {
			return nil
		}
		after = res.Artifacts[len(res.Artifacts)-1].Key
	}
}

// DeleteContainer deletes an empty container. It fails with
// ErrContainerNotEmpty if any artifact is visible in it.
func (e *Engine) DeleteContainer(ctx context.Context, tenant, name string) error {
	res, err := e.List(ctx, tenant, name, ListOptions{Limit: 1, all: true})
	if err != nil {
		return err
	}
	if len(res.Artifacts) > 0 {
		return fmt.Errorf("%w: %s", ErrContainerNotEmpty, name)
	}
	// Uploads in progress die with the container: a container later made
	// with the same name must not inherit them.
	for {
		ups, _, err := e.ListUploads(ctx, tenant, name, "", "", "", 1000)
		if err != nil {
			return err
		}
		if len(ups) == 0 {
			break
		}
		progress := false
		for _, u := range ups {
			err := e.AbortUpload(ctx, tenant, name, u.Key, u.ID)
			if err != nil && !errors.Is(err, ErrNoSuchUpload) {
				return fmt.Errorf("engine: delete container %s: abort upload: %w", name, err)
			}
			progress = progress || err == nil
		}
		if !progress {
			return fmt.Errorf("%w: delete container %s: uploads listed but not readable", ErrReadQuorum, name)
		}
	}
	if err := e.cfg.Containers.DeleteContainer(ctx, tenant, name); err != nil {
		return err
	}
	// Best effort: a failure leaves the rest to the next CreateContainer of
	// the name.
	if err := e.sweepContainer(ctx, tenant, name, e.cfg.Now()); err != nil {
		e.log.Warn("engine: sweep a deleted container", "tenant", tenant, "container", name, "err", err)
	}
	return nil
}

// Container returns a container of tenant, or ErrNoSuchContainer.
func (e *Engine) Container(ctx context.Context, tenant, name string) (ContainerInfo, error) {
	if err := validTenant(tenant); err != nil {
		return ContainerInfo{}, err
	}
	if err := validContainer(name); err != nil {
		return ContainerInfo{}, err
	}
	return e.cfg.Containers.Container(ctx, tenant, name)
}

// Containers returns tenant's containers sorted by name.
func (e *Engine) Containers(ctx context.Context, tenant string) ([]ContainerInfo, error) {
	if err := validTenant(tenant); err != nil {
		return nil, err
	}
	return e.cfg.Containers.Containers(ctx, tenant)
}
