package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// latePut is a ContainerStore whose DeleteContainer first runs hook: a PUT
// that checked the container before the deletion and commits after the
// engine's emptiness check.
type latePut struct {
	ContainerStore
	hook func()
}

func (l *latePut) DeleteContainer(ctx context.Context, tenant, name string) error {
	if l.hook != nil {
		l.hook()
	}
	return l.ContainerStore.DeleteContainer(ctx, tenant, name)
}

// TestDeletedContainerLeavesNothing: a container created again under a
// deleted one's name (or by a new tenant of a deleted tenant's name) is
// empty. Before, an artifact a PUT committed while the container was
// being deleted stayed listed under the name and resurfaced in the new
// container, which then could not be deleted; with tenant names reused,
// a new tenant read a former one's object (found by a hostile probe).
func TestDeletedContainerLeavesNothing(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		// orphan leaves an artifact "late" under t/c while the container
		// is deleted.
		orphan func(t *testing.T, r *rig)
	}{
		{"PUT committed during DeleteContainer", func(t *testing.T, r *rig) {
			r.e.cfg.Containers = &latePut{ContainerStore: r.e.cfg.Containers, hook: func() {
				if _, err := r.e.Put(ctx, "t", "c", "late", strings.NewReader("former bytes"), PutOptions{Size: -1}); err != nil {
					t.Errorf("late put: %v", err)
				}
			}}
			if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
				t.Fatal(err)
			}
		}},
		{"container record gone with an artifact left (crash, node cut off)", func(t *testing.T, r *rig) {
			r.put(t, "late", []byte("former bytes"), -1)
			if err := r.e.cfg.Containers.DeleteContainer(ctx, "t", "c"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{drives: 4})
			tc.orphan(t, r)
			if err := r.e.CreateContainer(ctx, "t", "c"); err != nil {
				t.Fatal(err)
			}
			res, err := r.e.List(ctx, "t", "c", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Artifacts) != 0 {
				t.Fatalf("new container lists %d artifacts of the deleted one (first %q)", len(res.Artifacts), res.Artifacts[0].Key)
			}
			if _, err := r.e.Open(ctx, "t", "c", "late"); !errors.Is(err, ErrNoSuchArtifact) {
				t.Fatalf("new container opens the deleted one's artifact: %v", err)
			}
			if err := r.e.DeleteContainer(ctx, "t", "c"); err != nil {
				t.Fatalf("the new, empty container cannot be deleted: %v", err)
			}
		})
	}
}

// TestCreateContainerSweepSparesLiveContainers: creating a container that
// exists fails without touching its artifacts.
func TestCreateContainerSweepSparesLiveContainers(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	r.put(t, "k", []byte("live"), -1)
	if err := r.e.CreateContainer(t.Context(), "t", "c"); !errors.Is(err, ErrContainerExists) {
		t.Fatalf("CreateContainer over a live one: %v", err)
	}
	if got, err := r.get("k", 0, -1); err != nil || string(got) != "live" {
		t.Fatalf("k = %q, %v after a refused create", got, err)
	}
}

// unknownContainers is a ContainerStore that cannot tell whether a
// container exists, as a cluster node that lags and cannot catch up with
// the leader (it answers meta.ErrUnavailable, never a false absent).
type unknownContainers struct{ ContainerStore }

func (unknownContainers) Container(_ context.Context, tenant, name string) (ContainerInfo, error) {
	return ContainerInfo{}, fmt.Errorf("%w: container %s/%s: cannot catch up", ErrMetadataUnavailable, tenant, name)
}

// TestCreateContainerUnknownExistenceSparesArtifacts: when the container
// store cannot say whether a container exists, CreateContainer fails with
// ErrMetadataUnavailable (503) and sweeps nothing: the container may
// exist (created through another node) and hold artifacts.
func TestCreateContainerUnknownExistenceSparesArtifacts(t *testing.T) {
	r := newRig(t, rigOptions{drives: 4})
	r.put(t, "k", []byte("live"), -1)
	real := r.e.cfg.Containers
	r.e.cfg.Containers = unknownContainers{real}
	err := r.e.CreateContainer(t.Context(), "t", "c")
	r.e.cfg.Containers = real
	if !errors.Is(err, ErrMetadataUnavailable) {
		t.Fatalf("CreateContainer with existence unknown: %v, want ErrMetadataUnavailable", err)
	}
	if got, err := r.get("k", 0, -1); err != nil || string(got) != "live" {
		t.Fatalf("k = %q, %v after a create with existence unknown", got, err)
	}
}
