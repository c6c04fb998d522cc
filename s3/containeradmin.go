package s3

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/engine"
)

// ContainerAdmin is an optional interface of an Admin that keeps
// containers' storage policies:
//
//	GET /_vault/admin/containers                     every tenant's containers, as []ContainerStatus
//	PUT /_vault/admin/containers/TENANT/NAME/policy  a StoragePolicy, answers 204
//
// Both are root only. SetStoragePolicy must fail with ErrNoSuchBucket (or
// an error the error table maps to it) for a container that does not
// exist, with ErrNoRemoteDrives for hybrid or tier when the cluster has
// no remote drive, and with engine.ErrContainerNotEmpty for a change of
// layout (to or from hybrid) of a container with a multipart upload in
// progress. A change of layout of a container holding artifacts is
// committed at once and its artifacts are moved into the new layout in
// the background; ContainerList shows how far (ContainerStatus.Relayout).
// Implementations must be safe for concurrent use.
type ContainerAdmin interface {
	ContainerList(ctx context.Context) ([]ContainerStatus, error)
	SetStoragePolicy(ctx context.Context, tenant, container string, p StoragePolicy) error
}

// StoragePolicy is a container's storage policy as the admin API takes
// and shows it. A tier policy with neither threshold set moves artifacts
// after DefaultTierAfterDays.
type StoragePolicy struct {
	Policy string `json:"policy"` // "local" (the default), "hybrid" or "tier"
	// TierAfterDays and TierMinBytes are tier's thresholds: artifacts
	// last modified at least this many days ago, or of at least this many
	// bytes, move to the remote drives (0: not this threshold).
	TierAfterDays int   `json:"tier_after_days,omitempty"`
	TierMinBytes  int64 `json:"tier_min_bytes,omitempty"`
}

// DefaultTierAfterDays is the age threshold of a tier policy that names
// no threshold.
const DefaultTierAfterDays = 30

// TierOperation is the operation name of the events (metrics, access and
// transaction logs) of an artifact the tier policy moved to remote drives:
// a background mutation, not a request.
const TierOperation = "TierArtifact"

// RelayoutOperation is the operation name of the events of an artifact
// version moved into its container's layout after a storage policy
// change (to or from hybrid): a background mutation, not a request.
const RelayoutOperation = "RelayoutArtifact"

// RelayoutStatus is how far the move of a container's artifacts into the
// layout of its storage policy got, after a change of layout.
type RelayoutStatus struct {
	Layout string `json:"layout"` // the layout moved into: "local" or "hybrid"
	Done   bool   `json:"done"`   // every artifact is in it
	// Counted reports that a pass counted what is left; ArtifactsLeft
	// and BytesLeft are then the artifact versions (and their bytes)
	// still to move.
	Counted       bool  `json:"counted"`
	ArtifactsLeft int   `json:"artifacts_left"`
	BytesLeft     int64 `json:"bytes_left"`
	// Moved and MovedBytes sum what the walk moved since the change;
	// Failed counts the versions the current pass could not move (tried
	// again next pass).
	Moved      int   `json:"moved"`
	MovedBytes int64 `json:"moved_bytes"`
	Failed     int   `json:"failed,omitempty"`
}

// ContainerStatus describes one container for the admin API.
type ContainerStatus struct {
	Tenant  string    `json:"tenant"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	StoragePolicy
	// Relayout, after a change of the policy's layout, says how far the
	// move of the container's artifacts into the new layout got.
	Relayout *RelayoutStatus `json:"relayout,omitempty"`
}

// StoragePolicies are the storage policies SetStoragePolicy accepts.
var StoragePolicies = []string{"local", "hybrid", "tier"}

const containersPath = "/_vault/admin/containers"

// containerPolicyPath splits /_vault/admin/containers/TENANT/NAME/policy.
func containerPolicyPath(p string) (tenant, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, containersPath+"/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/policy")
	if !ok {
		return "", "", false
	}
	tenant, name, ok = strings.Cut(rest, "/")
	return tenant, name, ok && tenant != "" && oneName(name)
}

// containerAdmin runs serve with the Admin's ContainerAdmin side, for root.
func containerAdmin(serve func(op *operation, ca ContainerAdmin) error) func(*operation) error {
	return func(op *operation) error {
		if err := op.s.authorizeRoot(op.ctx, op.r); err != nil {
			return err
		}
		ca, ok := op.s.cfg.Admin.(ContainerAdmin)
		if !ok {
			return ErrNotImplemented
		}
		return serve(op, ca)
	}
}

func listContainers(op *operation, ca ContainerAdmin) error {
	cs, err := ca.ContainerList(op.ctx)
	if err != nil {
		return err
	}
	return writeJSON(op.r, http.StatusOK, append([]ContainerStatus{}, cs...))
}

func setStoragePolicy(op *operation, ca ContainerAdmin) error {
	tenant, name, _ := containerPolicyPath(op.path)
	op.r.ev.Key = tenant
	r := op.r
	const maxBody = 4 << 10
	body, err := io.ReadAll(io.LimitReader(r.auth.Body(r.bodyStream(op.s)), maxBody+1))
	r.bodyDone = err == nil && len(body) <= maxBody
	if !r.bodyDone {
		return errInvalidStoragePolicy
	}
	var req StoragePolicy
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !validStoragePolicy(req.Policy) || req.TierAfterDays < 0 || req.TierMinBytes < 0 ||
		req.Policy != "tier" && (req.TierAfterDays != 0 || req.TierMinBytes != 0) {
		return errInvalidStoragePolicy
	}
	if req.Policy == "tier" && req.TierAfterDays == 0 && req.TierMinBytes == 0 {
		req.TierAfterDays = DefaultTierAfterDays
	}
	if err := ca.SetStoragePolicy(op.ctx, tenant, name, req); err != nil {
		if errors.Is(err, engine.ErrContainerNotEmpty) {
			return withMessage(ErrBucketNotEmpty, "The bucket has multipart uploads in progress: complete or abort them before setting a storage policy that places shards elsewhere (to or from hybrid).")
		}
		return err
	}
	r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func validStoragePolicy(p string) bool { return slices.Contains(StoragePolicies, p) }
