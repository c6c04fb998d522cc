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
//	PUT /_vault/admin/containers/TENANT/NAME/policy  {"policy":"local"|"hybrid"|"tier"}, answers 204
//
// Both are root only. SetStoragePolicy must fail with ErrNoSuchBucket (or
// an error the error table maps to it) for a container that does not
// exist, with ErrNoRemoteDrives for hybrid or tier when the cluster has
// no remote drive, and with engine.ErrContainerNotEmpty for a change of
// layout (to or from hybrid) of a container that holds anything. Implementations must be safe for concurrent use.
type ContainerAdmin interface {
	ContainerList(ctx context.Context) ([]ContainerStatus, error)
	SetStoragePolicy(ctx context.Context, tenant, container, policy string) error
}

// ContainerStatus describes one container for the admin API.
type ContainerStatus struct {
	Tenant  string    `json:"tenant"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Policy is the storage policy: "local" (the default), "hybrid" or
	// "tier".
	Policy string `json:"policy"`
}

// StoragePolicies are the storage policies SetStoragePolicy accepts.
var StoragePolicies = []string{"local", "hybrid", "tier"}

// Errors of the containers admin API.
var (
	errInvalidStoragePolicy = &Error{http.StatusBadRequest, "InvalidArgument", `Want {"policy": "local", "hybrid" or "tier"}.`}
	// ErrNoRemoteDrives refuses a storage policy that needs remote drives
	// on a cluster without any.
	ErrNoRemoteDrives = &Error{http.StatusConflict, "InvalidRequest", "Storage policies hybrid and tier need remote drives, and the cluster has none: start a node with --remote NAME=URL first."}
)

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
	var req struct {
		Policy string `json:"policy"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !validStoragePolicy(req.Policy) {
		return errInvalidStoragePolicy
	}
	if err := ca.SetStoragePolicy(op.ctx, tenant, name, req.Policy); err != nil {
		if errors.Is(err, engine.ErrContainerNotEmpty) {
			return withMessage(ErrBucketNotEmpty, "The bucket holds artifacts or multipart uploads: a storage policy that places shards elsewhere (to or from hybrid) must be set before the first write.")
		}
		return err
	}
	r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func validStoragePolicy(p string) bool { return slices.Contains(StoragePolicies, p) }
