package placement

import (
	"errors"
	"fmt"

	"github.com/vaultaire/vaultaire/driver"
)

// NodeID names a node of the cluster.
type NodeID string

// DriveID names a drive; it is unique across the cluster. It is
// driver.DriveID under a second name, so IDs pass between the map and the
// drivers without conversion.
type DriveID = driver.DriveID

// Epoch numbers versions of the cluster map; a newer map has a larger epoch.
type Epoch uint64

// Drive is one storage device in the cluster map.
type Drive struct {
	ID    DriveID
	Node  NodeID
	Zone  string       // optional failure domain above the node ("" = none)
	Class driver.Class // driver.ClassLocal or driver.ClassRemote
}

// MaxSetSize is the largest number of shards per stripe (k+m) a Policy may have.
const MaxSetSize = 256

// Errors returned by this package, wrapped with details; test with errors.Is.
var (
	// ErrInvalidPolicy reports a Policy that fails Policy.Validate.
	ErrInvalidPolicy = errors.New("placement: invalid policy")
	// ErrTooFewDrives reports fewer drives than a policy's set size.
	ErrTooFewDrives = errors.New("placement: too few drives")
	// ErrInvalidMap reports a malformed map or malformed NewMap arguments.
	ErrInvalidMap = errors.New("placement: invalid map")
)

// Policy is an erasure-coding policy: Data (k) data shards + Parity (m)
// parity shards per stripe.
type Policy struct{ Data, Parity int }

// SetSize returns k+m, the number of drives in a PG's drive set.
func (p Policy) SetSize() int { return p.Data + p.Parity }

// WriteQuorum returns the number of shards that must be committed for a
// write to succeed: k, or k+1 when k == m (and m > 0), so that any two write
// quorums share a drive. In general it is max(k, m+1): then a write quorum
// and a read quorum (k) of the same set always overlap, also for policies
// with more parity than data.
func (p Policy) WriteQuorum() int {
	return max(p.Data, p.Parity+1)
}

// ReadQuorum returns the number of shards a read needs: k.
func (p Policy) ReadQuorum() int { return p.Data }

// Validate reports whether 1 <= k, 0 <= m and k+m <= MaxSetSize.
// Errors wrap ErrInvalidPolicy.
func (p Policy) Validate() error {
	switch {
	case p.Data < 1:
		return fmt.Errorf("%w: %s: data shards must be at least 1", ErrInvalidPolicy, p)
	case p.Parity < 0:
		return fmt.Errorf("%w: %s: parity shards must not be negative", ErrInvalidPolicy, p)
	case p.Data > MaxSetSize || p.Parity > MaxSetSize || p.SetSize() > MaxSetSize:
		return fmt.Errorf("%w: %s: more than %d shards", ErrInvalidPolicy, p, MaxSetSize)
	}
	return nil
}

// String returns the policy as "k+m", e.g. "4+2".
func (p Policy) String() string { return fmt.Sprintf("%d+%d", p.Data, p.Parity) }

// DefaultPolicy returns the policy for a cluster with n drives:
// 1 drive: 1+0; 2–3: 1+1; 4–5: 2+2; 6–7: 4+2; 8–16: (n-4)+4 (8 → 4+4,
// 10 → 6+4, 16 → 12+4); more than 16: 12+4. For n < 1 it returns an error
// wrapping ErrTooFewDrives.
func DefaultPolicy(n int) (Policy, error) {
	switch {
	case n < 1:
		return Policy{}, fmt.Errorf("%w: default policy for %d drives: need at least 1", ErrTooFewDrives, n)
	case n == 1:
		return Policy{Data: 1, Parity: 0}, nil
	case n <= 3:
		return Policy{Data: 1, Parity: 1}, nil
	case n <= 5:
		return Policy{Data: 2, Parity: 2}, nil
	case n <= 7:
		return Policy{Data: 4, Parity: 2}, nil
	case n <= 16:
		return Policy{Data: n - 4, Parity: 4}, nil
	default:
		return Policy{Data: 12, Parity: 4}, nil
	}
}

// DefaultWidth is the stripe width of a map of n drives under p when the
// operator chose none: as many PGs as p's sets fit disjointly in the
// drives, up to MaxWidth, so that a large artifact is written and read
// by every drive once there are several sets' worth of them. It is 0 (no
// striping) while one set spans at least half the drives, as under
// DefaultPolicy up to 31 drives.
func DefaultWidth(n int, p Policy) int {
	if p.SetSize() <= 0 || n/p.SetSize() < 2 {
		return 0
	}
	return min(MaxWidth, n/p.SetSize())
}
