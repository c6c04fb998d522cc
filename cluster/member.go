package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// This file holds what a member advertises by gossip (Member) and how it
// is encoded in memberlist's node metadata (encodeMeta, decodeMeta);
// membership.go runs the gossip.

// MemberState is a member's state as this node sees it. Values are
// append-only.
type MemberState int

const (
	// MemberAlive means the member answers gossip.
	MemberAlive MemberState = iota + 1
	// MemberSuspect means the member missed probes and may be failing.
	MemberSuspect
	// MemberDead means the member stopped answering without leaving.
	MemberDead
	// MemberLeft means the member left gracefully.
	MemberLeft
)

var memberStateNames = [...]string{
	MemberAlive:   "alive",
	MemberSuspect: "suspect",
	MemberDead:    "dead",
	MemberLeft:    "left",
}

// String returns "alive", "suspect", "dead" or "left".
func (s MemberState) String() string {
	if s > 0 && int(s) < len(memberStateNames) {
		return memberStateNames[s]
	}
	return "MemberState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText returns the String form, so that states print by name in
// JSON.
func (s MemberState) MarshalText() ([]byte, error) {
	if s <= 0 || int(s) >= len(memberStateNames) {
		return nil, fmt.Errorf("cluster: invalid member state %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText parses the String form.
func (s *MemberState) UnmarshalText(b []byte) error {
	for i, n := range memberStateNames {
		if n != "" && n == string(b) {
			*s = MemberState(i)
			return nil
		}
	}
	return fmt.Errorf("cluster: unknown member state %q", b)
}

// MemberDrive is a drive a member advertises.
type MemberDrive struct {
	ID    string // unique in the cluster
	Class string // "local" or "remote", as placement.Drive.Class
	Zone  string // failure domain; may be empty
	// Epoch is a remote drive's owner epoch in the cluster map (0 in
	// gossip, which does not carry it): bumped each time another node
	// adopts the drive (remotedrive.go).
	Epoch uint64 `json:",omitempty"`
}

// Member is what a node advertises by gossip, plus its state as seen by
// this node.
type Member struct {
	Name     string // node name, unique in the cluster
	S3Addr   string
	RaftAddr string
	RPCAddr  string
	Drives   []MemberDrive // sorted by Class, Zone, ID
	State    MemberState   // filled in by Membership
	Addr     string        // gossip host:port, filled in by Membership
}

func (m Member) clone() Member {
	m.Drives = slices.Clone(m.Drives)
	return m
}

// memberMeta is the node metadata a member gossips: its advertised
// fields as compact JSON. Drives are in Drives, or, when that would not
// fit, in Groups.
type memberMeta struct {
	S3      string       `json:"s3,omitempty"`
	Raft    string       `json:"raft,omitempty"`
	RPC     string       `json:"rpc,omitempty"`
	Drives  []metaDrive  `json:"d,omitempty"`
	Groups  []driveGroup `json:"g,omitempty"`
	Leaving bool         `json:"leaving,omitempty"`
}

type metaDrive struct {
	ID    string `json:"i"`
	Class string `json:"c,omitempty"`
	Zone  string `json:"z,omitempty"`
}

// driveGroup is the compact form of the drives sharing a class and zone:
// each ID is Prefix followed by one of IDs.
type driveGroup struct {
	Class  string   `json:"c,omitempty"`
	Zone   string   `json:"z,omitempty"`
	Prefix string   `json:"p,omitempty"`
	IDs    []string `json:"i"`
}

func sortDrives(ds []MemberDrive) {
	slices.SortFunc(ds, func(a, b MemberDrive) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.ID, b.ID))
	})
}

// encodeMeta encodes m's advertised fields, drives sorted. It uses the
// compact drive form only if the plain one might not fit, judging both
// with the leaving flag set so that Leave can always add it.
func encodeMeta(m Member, leaving bool) ([]byte, error) {
	drives := slices.Clone(m.Drives)
	sortDrives(drives)
	seen := map[string]bool{}
	for _, d := range drives {
		if d.ID == "" || !utf8.ValidString(d.ID) || !utf8.ValidString(d.Class) || !utf8.ValidString(d.Zone) {
			return nil, fmt.Errorf("cluster: member drive %q: ID must be non-empty and names valid UTF-8", d.ID)
		}
		if seen[d.ID] {
			return nil, fmt.Errorf("cluster: member drive %q listed twice", d.ID)
		}
		seen[d.ID] = true
	}
	mm := memberMeta{S3: m.S3Addr, Raft: m.RaftAddr, RPC: m.RPCAddr}
	for _, d := range drives {
		mm.Drives = append(mm.Drives, metaDrive{ID: d.ID, Class: d.Class, Zone: d.Zone})
	}
	size := func() int {
		mm.Leaving = true
		b, _ := json.Marshal(mm)
		return len(b)
	}
	if size() > memberlist.MetaMaxSize {
		mm.Drives, mm.Groups = nil, groupDrives(drives)
		if n := size(); n > memberlist.MetaMaxSize {
			return nil, fmt.Errorf("%w: %d bytes with %d drives, limit %d", ErrMetaTooLarge, n, len(drives), memberlist.MetaMaxSize)
		}
	}
	mm.Leaving = leaving
	return json.Marshal(mm)
}

// groupDrives groups sorted drives by class and zone, factoring out the
// IDs' common prefix.
func groupDrives(drives []MemberDrive) []driveGroup {
	var gs []driveGroup
	for i := 0; i < len(drives); {
		j := i + 1
		for j < len(drives) && drives[j].Class == drives[i].Class && drives[j].Zone == drives[i].Zone {
			j++
		}
		g := driveGroup{Class: drives[i].Class, Zone: drives[i].Zone}
		if j-i > 1 {
			g.Prefix = commonPrefix(drives[i].ID, drives[j-1].ID) // sorted: first and last bound it
		}
		for _, d := range drives[i:j] {
			g.IDs = append(g.IDs, d.ID[len(g.Prefix):])
		}
		gs = append(gs, g)
		i = j
	}
	return gs
}

// commonPrefix returns the longest common prefix of a and b that ends on
// a rune boundary.
func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	for n > 0 && n < len(a) && !utf8.RuneStart(a[n]) {
		n--
	}
	return a[:n]
}

// decodeMeta decodes metadata made by encodeMeta.
func decodeMeta(b []byte) (Member, bool, error) {
	var mm memberMeta
	if len(b) == 0 {
		return Member{}, false, errors.New("no metadata")
	}
	if err := json.Unmarshal(b, &mm); err != nil {
		return Member{}, false, err
	}
	m := Member{S3Addr: mm.S3, RaftAddr: mm.Raft, RPCAddr: mm.RPC}
	for _, d := range mm.Drives {
		m.Drives = append(m.Drives, MemberDrive{ID: d.ID, Class: d.Class, Zone: d.Zone})
	}
	for _, g := range mm.Groups {
		for _, id := range g.IDs {
			m.Drives = append(m.Drives, MemberDrive{ID: g.Prefix + id, Class: g.Class, Zone: g.Zone})
		}
	}
	sortDrives(m.Drives)
	return m, mm.Leaving, nil
}
