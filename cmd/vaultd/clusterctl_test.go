package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// testStatus is a three-node cluster seen from n1, with n3 down.
var testStatus = cluster.Status{
	Node:         "n1",
	Leader:       "n2",
	Term:         4,
	CommitIndex:  120,
	AppliedIndex: 118,
	Servers: []cluster.RaftServer{
		{ID: "n1", Address: "127.0.0.1:9101", Suffrage: "voter"},
		{ID: "n2", Address: "127.0.0.1:9201", Suffrage: "voter", Leader: true},
		{ID: "n3", Address: "127.0.0.1:9301", Suffrage: "nonvoter"},
	},
	Members: []cluster.MemberStatus{
		{Name: "n1", State: "alive", Gossip: "127.0.0.1:9103", S3Addr: "127.0.0.1:9100", RaftAddr: "127.0.0.1:9101", RPCAddr: "127.0.0.1:9102", Drives: 2},
		{Name: "n2", State: "alive", Gossip: "127.0.0.1:9203", S3Addr: "127.0.0.1:9200", RaftAddr: "127.0.0.1:9201", RPCAddr: "127.0.0.1:9202", Drives: 2},
		{Name: "n3", State: "dead", Gossip: "127.0.0.1:9303", Drives: 2},
	},
	Map: cluster.MapStatus{Epoch: 3, Policy: "4+2", PolicySet: true, Width: 8, WidthSet: true, PGs: 256, Drives: 6, Older: []uint64{2, 1}},
	Drives: []cluster.DriveStatus{
		{ID: "n1-d0", Node: "n1", Class: "hdd", State: "ok", Used: 1536, Free: 3 << 30, Total: 3<<30 + 1536},
		{ID: "n3-d1", Node: "n3", Zone: "z2", Class: "ssd", State: "offline", Error: "dial tcp 127.0.0.1:9302: connection refused", Used: 512, Free: 5 << 40},
	},
	Scrub: []cluster.ScrubStatus{
		{Drive: "n1-d0", Passes: 2, Progress: 0.375, LastPass: time.Date(2026, 11, 3, 4, 5, 6, 0, time.UTC), Bytes: 3 << 30, Shards: 4000, Corrupt: 3, Repaired: 2},
		{Drive: "n1-d1", Error: "driver: offline"},
	},
}

const testStatusText = `node:    n1
leader:  n2
raft:    term 4, commit index 120, applied index 118

MEMBERS (3, 2 alive)
NAME  STATE  S3              RAFT            RPC             DRIVES
n1    alive  127.0.0.1:9100  127.0.0.1:9101  127.0.0.1:9102  2
n2    alive  127.0.0.1:9200  127.0.0.1:9201  127.0.0.1:9202  2
n3    dead   -               -               -               2

RAFT SERVERS (3)
ID  ADDRESS         SUFFRAGE  LEADER
n1  127.0.0.1:9101  voter
n2  127.0.0.1:9201  voter     *
n3  127.0.0.1:9301  nonvoter

MAP
epoch:         3
policy:        4+2 (set by the operator)
stripe width:  8 (set by the operator; large artifacts written now are striped over this many PGs)
PGs:           256 over 6 drives
older epochs:  2, 1 (still read, not yet migrated)

DRIVES (2)
ID     NODE  ZONE  CLASS  STATE    USED     FREE     ERROR
n1-d0  n1    -     hdd    ok       1.5 KiB  3.0 GiB
n3-d1  n3    z2    ssd    offline  512 B    5.0 TiB  dial tcp 127.0.0.1:9302: connection refused

SCRUB (drives of n1)
DRIVE  PASSES  PROGRESS  VERIFIED  SHARDS  CORRUPT  REPAIRED  LAST PASS             ERROR
n1-d0  2       37.5%     3.0 GiB   4000    3        2         2026-11-03T04:05:06Z
n1-d1  0       0.0%      0 B       0       0        0         -                     driver: offline
`

const emptyStatusText = `node:    n1
leader:  (none known)
raft:    term 0, commit index 0, applied index 0

MEMBERS (0, 0 alive)
NAME  STATE  S3  RAFT  RPC  DRIVES

RAFT SERVERS (0)
ID  ADDRESS  SUFFRAGE  LEADER

MAP
epoch:         0
policy:        - (follows the drive count)
stripe width:  1 (follows the drive count; large artifacts written now are striped over this many PGs)
PGs:           0 over 0 drives
older epochs:  none

DRIVES (0)
ID  NODE  ZONE  CLASS  STATE  USED  FREE  ERROR
`

// drainingStatus is testStatus with drive n3-d1 draining, its last PGs
// held by two multipart uploads in progress.
func drainingStatus() cluster.Status {
	st := testStatus
	st.Map.UploadsHolding = 2
	st.Drain = &cluster.DrainStatus{Drives: []string{"n3-d1"}, PGsLeft: 12, MapsLeft: 2, BytesLeft: 300 << 20, BytesPerSecond: 1 << 20, ETASeconds: 300}
	st.Drives = slices.Clone(st.Drives)
	st.Drives[1].Draining = true
	return st
}

func TestWriteClusterStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   cluster.Status
		want string
	}{
		{"three nodes, one dead", testStatus, testStatusText},
		{"nothing known", cluster.Status{Node: "n1"}, emptyStatusText},
		{"a drain waiting for uploads", drainingStatus(), strings.NewReplacer(
			"older epochs:  2, 1 (still read, not yet migrated)\n",
			"older epochs:  2, 1 (still read, not yet migrated); 2 multipart upload(s) in progress hold them until moved, completed, aborted, or idle for the upload hold (--upload-hold)\n"+
				"draining:      n3-d1: 300.0 MiB left in 2 kept map epoch(s), in progress, waiting for 2 multipart upload(s) in progress (see older epochs)\n"+
				"drain rate:    1.0 MiB/s, about 5m0s left\n",
			// The draining drive is listed, marked (probe F5: it was left out).
			"ID     NODE  ZONE  CLASS  STATE    USED     FREE     ERROR\n"+
				"n1-d0  n1    -     hdd    ok       1.5 KiB  3.0 GiB\n"+
				"n3-d1  n3    z2    ssd    offline  512 B",
			"ID     NODE  ZONE  CLASS  STATE              USED     FREE     ERROR\n"+
				"n1-d0  n1    -     hdd    ok                 1.5 KiB  3.0 GiB\n"+
				"n3-d1  n3    z2    ssd    offline, draining  512 B").Replace(testStatusText)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeClusterStatus(&b, &tc.st); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"}, {10 << 30, "10.0 GiB"}, {1 << 62, "4.0 EiB"}, {^uint64(0), "16.0 EiB"},
	} {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// credTable is sigv4.Credentials over one key pair.
type credTable map[string]string

func (c credTable) Secret(ctx context.Context, accessKey string) (string, error) {
	if s, ok := c[accessKey]; ok {
		return s, nil
	}
	return "", sigv4.ErrUnknownAccessKey
}

// TestDrainText: what status says of a drain in each state (probe F5 of
// session 17: "512 PG slots left" for the whole drain, "about 0s left"
// while not done, "0 B left, rate unknown yet" for ever for a dead node).
func TestDrainText(t *testing.T) {
	drives := []string{"n4-d0", "n4-d1"}
	for _, tc := range []struct {
		name       string
		d          cluster.DrainStatus
		want, rate string
	}{
		{"moving", cluster.DrainStatus{Drives: drives, PGsLeft: 512, MapsLeft: 1, BytesLeft: 150 << 20, BytesPerSecond: 5 << 20, ETASeconds: 30},
			"150.0 MiB left in 1 kept map epoch(s), in progress", "5.0 MiB/s, about 30s left"},
		{"rate unknown yet", cluster.DrainStatus{Drives: drives, PGsLeft: 512, MapsLeft: 3, BytesLeft: 150 << 20, BytesPerSecond: -1, ETASeconds: -1},
			"150.0 MiB left in 3 kept map epoch(s), in progress", "unknown yet (measured over the next seconds; ask again)"},
		{"finishing", cluster.DrainStatus{Drives: drives, PGsLeft: 512, MapsLeft: 1, BytesLeft: 647 << 10, BytesPerSecond: 5 << 20, ETASeconds: 0.1, Finishing: true},
			"647.0 KiB left in 1 kept map epoch(s), in progress", "5.0 MiB/s; finishing: the last artifacts move, then the older map epochs are released"},
		{"node dead", cluster.DrainStatus{Drives: drives, PGsLeft: 512, MapsLeft: 1, Unreachable: drives, UnreachableNodes: []string{"n4"}, BytesPerSecond: -1, ETASeconds: -1},
			"what they hold is unknown (unreachable) in 1 kept map epoch(s), in progress",
			"none: n4-d0, n4-d1 of node n4 unreachable (down?); the drain waits for them, and if n4 is gone for good only `vaultd cluster remove --force n4` ends it (its data is rebuilt from the other shards)"},
		{"one drive unreachable", cluster.DrainStatus{Drives: drives, PGsLeft: 512, MapsLeft: 1, BytesLeft: 1 << 20, Unreachable: drives[1:], UnreachableNodes: []string{"n4"}, BytesPerSecond: -1, ETASeconds: -1},
			"at least 1.0 MiB left (n4-d1 unreachable) in 1 kept map epoch(s), in progress", "none: n4-d1 of node n4 unreachable"},
		{"done", cluster.DrainStatus{Drives: drives}, "done: the drained nodes can be removed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := drainText(&tc.d, 0); got != tc.want {
				t.Errorf("drainText = %q, want %q", got, tc.want)
			}
			if tc.rate == "" {
				return
			}
			if got := drainRateText(&tc.d); !strings.HasPrefix(got, tc.rate) {
				t.Errorf("drainRateText = %q, want it to start %q", got, tc.rate)
			}
			if got := drainRateText(&tc.d); strings.Contains(got, "about 0s") {
				t.Errorf("drainRateText = %q: a 0 s ETA for a drain not done", got)
			}
		})
	}
}

// fakeClusterNode serves GET /_vault/admin/cluster as a node would, but
// only to requests that SigV4 verifies with root's key; anything else
// gets the S3 error XML the real node sends.
func fakeClusterNode(t *testing.T, st any, code int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		req := sigv4.Request{
			Method:      r.Method,
			RawPath:     r.URL.EscapedPath(),
			RawQuery:    r.URL.RawQuery,
			Host:        r.Host,
			Header:      func(name string) string { return strings.Join(r.Header.Values(name), ",") },
			HeaderNames: names,
		}
		res, err := sigv4.Verify(r.Context(), &req, credTable{"ROOTKEY": "rootsecret1"}, time.Now())
		switch {
		case err != nil || res.AccessKey != "ROOTKEY":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>"))
		case r.Method != http.MethodGet || r.URL.Path != "/_vault/admin/cluster":
			w.WriteHeader(http.StatusMethodNotAllowed)
			w.Write([]byte("<Error><Code>MethodNotAllowed</Code><Message>no</Message></Error>"))
		case code != http.StatusOK:
			w.WriteHeader(code)
			w.Write([]byte("<Error><Code>NotFound</Code><Message>This node is not in cluster mode.</Message></Error>"))
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(st)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClusterStatusCommand(t *testing.T) {
	node := fakeClusterNode(t, testStatus, http.StatusOK)
	single := fakeClusterNode(t, nil, http.StatusNotFound)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	rootEnv := env(map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "rootsecret1"})

	t.Run("text", func(t *testing.T) {
		var out, errb bytes.Buffer
		if err := run(t.Context(), []string{"cluster", "status", "--endpoint", node.URL}, rootEnv, &out, &errb); err != nil {
			t.Fatalf("cluster status: %v (%s)", err, errb.String())
		}
		if got := out.String(); got != testStatusText {
			t.Errorf("got:\n%s\nwant:\n%s", got, testStatusText)
		}
	})
	t.Run("json", func(t *testing.T) {
		var out, errb bytes.Buffer
		// The endpoint may also come from VAULT_ENDPOINT.
		getenv := env(map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "rootsecret1", "VAULT_ENDPOINT": node.URL})
		if err := run(t.Context(), []string{"cluster", "status", "--json"}, getenv, &out, &errb); err != nil {
			t.Fatalf("cluster status --json: %v (%s)", err, errb.String())
		}
		var got cluster.Status
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("output %q: %v", out.String(), err)
		}
		if !reflect.DeepEqual(got, testStatus) {
			t.Errorf("got %+v, want %+v", got, testStatus)
		}
		if !strings.Contains(out.String(), "\n  \"leader\": \"n2\",\n") {
			t.Errorf("JSON not indented:\n%s", out.String())
		}
	})
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string
	}{
		{"wrong secret", []string{"cluster", "status", "--endpoint", node.URL},
			env(map[string]string{"VAULT_ROOT_ACCESS_KEY": "ROOTKEY", "VAULT_ROOT_SECRET_KEY": "not-the-secret"}), "AccessDenied"},
		{"single node", []string{"cluster", "status", "--endpoint", single.URL}, rootEnv, "not in cluster mode"},
		{"no credentials", []string{"cluster", "status", "--endpoint", node.URL, "--data", t.TempDir()}, env(nil), "no root credentials"},
		{"no subcommand", []string{"cluster"}, rootEnv, "want status, set-erasure, drain or remove"},
		{"drain without a node or drive", []string{"cluster", "drain", "--endpoint", "http://127.0.0.1:1"}, rootEnv, "missing argument"},
		{"remove without a node", []string{"cluster", "remove", "--force", "--endpoint", "http://127.0.0.1:1"}, rootEnv, "missing argument"},
		{"set-erasure without a policy", []string{"cluster", "set-erasure", "--endpoint", node.URL}, rootEnv, "missing argument"},
		{"set-erasure two policies", []string{"cluster", "set-erasure", "4+2", "2+1", "--endpoint", node.URL}, rootEnv, `unexpected argument "2+1"`},
		{"set-erasure bad policy", []string{"cluster", "set-erasure", "four+2", "--endpoint", node.URL}, rootEnv, "want K+M"},
		{"unknown subcommand", []string{"cluster", "join"}, rootEnv, `unknown subcommand "join"`},
		{"stray argument", []string{"cluster", "status", "n1"}, rootEnv, `unexpected argument "n1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tc.args, tc.getenv, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}
