package cluster

import (
	"time"

	"github.com/vaultaire/vaultaire/placement"
)

// Status is one node's view of the cluster, as `vaultd cluster status`
// prints it and the admin API (GET /_vault/admin/cluster) returns it.
type Status struct {
	Node         string         `json:"node"`   // the node that answered
	Leader       string         `json:"leader"` // Raft leader's node name, "" if none known
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Servers      []RaftServer   `json:"raft_servers"` // sorted by ID
	Members      []MemberStatus `json:"members"`      // sorted by name
	Map          MapStatus      `json:"map"`
	Drives       []DriveStatus  `json:"drives"` // sorted by ID
	// Drain is the progress of the drains in progress, if any.
	Drain *DrainStatus `json:"drain,omitempty"`
	// Scrub is the scrubber's progress on the answering node's own
	// drives (each node scrubs its local drives), sorted by drive.
	Scrub []ScrubStatus `json:"scrub,omitempty"`
}

// ScrubStatus is the scrubber's progress and findings on one drive.
type ScrubStatus struct {
	Drive       string    `json:"drive"`
	Passes      uint64    `json:"passes"`                // full passes completed
	Progress    float64   `json:"progress"`              // of the pass in progress (or the last one), 0 to 1
	PassStarted time.Time `json:"pass_started,omitzero"` // zero before the first pass
	LastPass    time.Time `json:"last_pass,omitzero"`    // end of the last full pass; zero before
	Bytes       uint64    `json:"bytes"`                 // verified since the node started
	Shards      uint64    `json:"shards"`                // verified since the node started
	Corrupt     uint64    `json:"corrupt"`               // shards found corrupt or missing
	Repaired    uint64    `json:"repaired"`              // of those, repaired at once (the rest wait in the heal queue)
	Error       string    `json:"error,omitempty"`
}

// RaftServer is one server of the Raft configuration.
type RaftServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // "voter", "nonvoter" or "staging"
	Leader   bool   `json:"leader"`
}

// MemberStatus is a gossip member as the answering node sees it.
type MemberStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"` // "alive", "suspect", "dead" or "left"
	Gossip   string `json:"gossip"`
	S3Addr   string `json:"s3"`
	RaftAddr string `json:"raft"`
	RPCAddr  string `json:"rpc"`
	Drives   int    `json:"drives"`
}

// MapStatus summarises the cluster map.
type MapStatus struct {
	Epoch  uint64 `json:"epoch"`
	Policy string `json:"policy"` // "k+m"
	// PolicySet says an operator chose Policy (set-erasure); otherwise
	// it follows the drive count (placement.DefaultPolicy).
	PolicySet bool `json:"policy_set,omitempty"`
	// Width is the stripe width for new writes (1: unstriped): the
	// number of PGs a large artifact's parts are spread over (engine).
	Width int `json:"width"`
	// WidthSet says an operator chose Width (set-erasure --width);
	// otherwise it follows the drive count (placement.DefaultWidth).
	WidthSet bool `json:"width_set,omitempty"`
	PGs      int  `json:"pgs"`
	Drives   int  `json:"drives"`
	// Older lists the epochs of earlier maps still consulted by reads,
	// newest first (their data has not been migrated).
	Older []uint64 `json:"older_epochs,omitempty"`
	// UploadsHolding counts the multipart uploads in progress that keep
	// the older maps (engine.UploadsHolding): a join or drain is not done
	// before they complete, abort, or go idle for the upload hold. -1:
	// not known (a drive could not be listed).
	UploadsHolding int `json:"uploads_holding,omitempty"`
}

// DriveStatus is a drive of the map with its health as probed by the
// answering node.
type DriveStatus struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	Zone  string `json:"zone,omitempty"`
	Class string `json:"class"`
	State string `json:"state"` // "ok" or "offline"
	// Draining says the drive is being drained (it is in no map planned
	// since, and listed until its node is removed).
	Draining bool   `json:"draining,omitempty"`
	Error    string `json:"error,omitempty"`
	Used     uint64 `json:"used_bytes"`
	Free     uint64 `json:"free_bytes"`
	Total    uint64 `json:"total_bytes"`
}

// MapStatusOf summarises m.
func MapStatusOf(m *placement.Map) MapStatus {
	return MapStatus{Epoch: uint64(m.Epoch), Policy: m.Policy.String(), PolicySet: m.Chosen, Width: max(m.Width, 1), WidthSet: m.WidthSet(), PGs: m.PGCount(), Drives: len(m.Drives)}
}
