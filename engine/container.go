package engine

import (
	"context"
	"errors"
	"fmt"
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
	return e.cfg.Containers.CreateContainer(ctx, ContainerInfo{Tenant: tenant, Name: name, Created: e.cfg.Now()})
}

// DeleteContainer deletes an empty container. It fails with
// ErrContainerNotEmpty if any artifact is visible in it.
func (e *Engine) DeleteContainer(ctx context.Context, tenant, name string) error {
	res, err := e.List(ctx, tenant, name, ListOptions{Limit: 1})
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
	return e.cfg.Containers.DeleteContainer(ctx, tenant, name)
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
