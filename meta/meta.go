// Package meta names what the engine and the replicated metadata store
// say to each other: the record of a Container (ContainerInfo) and the
// errors a store of them returns. The engine declares what it needs of
// such a store (engine.ContainerStore, in these terms, with aliases so
// that engine.ContainerInfo and engine.ErrNoSuchContainer keep working);
// package cluster implements it without importing engine, and s3 maps the
// errors to S3 codes through engine's names.
//
// It imports nothing of this module, and holds nothing but these shared
// names: behaviour belongs to engine (containers' contents) and cluster
// (their replicated records).
package meta

import (
	"errors"
	"time"
)

// ContainerInfo describes a Container: a named collection of artifacts,
// unique per tenant.
type ContainerInfo struct {
	Tenant  string
	Name    string
	Created time.Time
	// Settled is the epoch of the cluster map from which on the older
	// maps a cluster keeps during a migration may hold the container's
	// artifacts: the maps of lower epochs hold none of them (the
	// container was created under the map of that epoch, or a clean
	// migration pass after that map settled moved them all out). 0 means
	// unknown: every older map may. A listing must cover the sets of the
	// older maps from Settled on, as well as the current map's, or it may
	// leave out a key that only such a set holds (engine.List).
	Settled uint64 `json:",omitempty"`
}

// ContainerRef names a container: its tenant and its name.
type ContainerRef struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
}

// Ref returns the name of c.
func (c ContainerInfo) Ref() ContainerRef { return ContainerRef{Tenant: c.Tenant, Name: c.Name} }

// Errors of a metadata store, possibly wrapped; test them with errors.Is.
var (
	ErrNoSuchContainer = errors.New("meta: no such container")
	ErrContainerExists = errors.New("meta: container already exists")
	// ErrTooManyContainers refuses a container beyond the store's cap on
	// containers per tenant.
	ErrTooManyContainers = errors.New("meta: too many containers for one tenant")
	// ErrUnavailable is returned (wrapped) by a store that cannot commit
	// a change now, such as a cluster without a Raft quorum.
	ErrUnavailable = errors.New("meta: metadata store unavailable")
	// ErrPublicNameTaken refuses making a container public (anonymously
	// readable) when another tenant's container of that name already is:
	// public names are one namespace across tenants.
	ErrPublicNameTaken = errors.New("meta: another tenant's public container has this name")
	// ErrConfigChanged refuses a conditional configuration write whose
	// condition (another document of the container, as the writer read
	// it) no longer holds when the write is applied.
	ErrConfigChanged = errors.New("meta: the configuration changed since it was read")
	// ErrConfigTooLarge refuses a configuration document larger than the
	// store keeps.
	ErrConfigTooLarge = errors.New("meta: configuration document too large")
)
