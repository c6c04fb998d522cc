package cluster_test

import (
	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/tenant"
)

// cluster implements its consumers' interfaces without importing them;
// the compiler checks here that it still does (tests may import them).
var (
	_ engine.ContainerStore = (*cluster.Store)(nil)
	_ engine.Coordinator    = (*cluster.Store)(nil)
	_ engine.UploadLocker   = (*cluster.Store)(nil)
	_ engine.UploadFencer   = (*cluster.Store)(nil)
	_ engine.UploadLeases   = (*cluster.Store)(nil)
	_ engine.Settler        = (*cluster.Store)(nil)
	_ engine.Topology       = (*cluster.Topology)(nil)
	_ engine.MapHistory     = (*cluster.Topology)(nil)
	_ engine.FencedTopology = (*cluster.Topology)(nil)
	_ s3.Keys               = (*cluster.Store)(nil)
	_ s3.BucketConfigs      = (*cluster.Store)(nil)
	_ tenant.Store          = (*cluster.Store)(nil)
)
