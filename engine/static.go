package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/meta"
	"github.com/vaultaire/vaultaire/placement"
)

// Static is a Topology that never changes: one map and a Driver for each of
// its drives. It suits a single node with local drives. It has no older
// maps and does not implement MapHistory.
type Static struct {
	m      *placement.Map
	drives map[placement.DriveID]driver.Driver
}

var _ Topology = (*Static)(nil)

// NewStatic returns a Static topology. Every drive in m must have a Driver.
func NewStatic(m *placement.Map, drives map[placement.DriveID]driver.Driver) (*Static, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	for _, d := range m.Drives {
		if drives[d.ID] == nil {
			return nil, fmt.Errorf("%w: %s", ErrUnknownDrive, d.ID)
		}
	}
	return &Static{m: m, drives: drives}, nil
}

// Map returns the map.
func (s *Static) Map() *placement.Map { return s.m }

// Drive returns the Driver of drive id.
func (s *Static) Drive(id placement.DriveID) (driver.Driver, error) {
	d, ok := s.drives[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownDrive, id)
	}
	return d, nil
}

// MemContainers is a ContainerStore in memory, for tests and single-process
// tools. Its zero value is ready to use; it is safe for concurrent use.
type MemContainers struct {
	mu sync.Mutex                  // guards m
	m  map[[2]string]ContainerInfo // keyed by tenant, name
}

var _ ContainerStore = (*MemContainers)(nil)

// CreateContainer records c.
func (s *MemContainers) CreateContainer(ctx context.Context, c ContainerInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[[2]string]ContainerInfo)
	}
	k := [2]string{c.Tenant, c.Name}
	if _, ok := s.m[k]; ok {
		return fmt.Errorf("%w: %s", ErrContainerExists, c.Name)
	}
	s.m[k] = c
	return nil
}

// DeleteContainer forgets a container.
func (s *MemContainers) DeleteContainer(ctx context.Context, tenant, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{tenant, name}
	if _, ok := s.m[k]; !ok {
		return fmt.Errorf("%w: %s", ErrNoSuchContainer, name)
	}
	delete(s.m, k)
	return nil
}

// Container returns one container.
func (s *MemContainers) Container(ctx context.Context, tenant, name string) (ContainerInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[[2]string{tenant, name}]
	if !ok {
		return ContainerInfo{}, fmt.Errorf("%w: %s", ErrNoSuchContainer, name)
	}
	return c, nil
}

// SettleContainers raises every container's Settled but those in except
// to at least epoch (Settler).
func (s *MemContainers) SettleContainers(ctx context.Context, epoch placement.Epoch, except []meta.ContainerRef) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.m {
		if c.Settled < uint64(epoch) && !slices.Contains(except, meta.ContainerRef{Tenant: k[0], Name: k[1]}) {
			c.Settled = uint64(epoch)
			s.m[k] = c
		}
	}
	return nil
}

var _ Settler = (*MemContainers)(nil)

// Containers returns tenant's containers sorted by name.
func (s *MemContainers) Containers(ctx context.Context, tenant string) ([]ContainerInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []ContainerInfo
	for k, c := range s.m {
		if k[0] == tenant {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b ContainerInfo) int { return strings.Compare(a.Name, b.Name) })
	return cs, nil
}
