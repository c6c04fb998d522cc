// Package testnode runs a Vaultaire node in-process on a loopback port for
// tests: four durable local drives (2+2) in temporary directories, an
// in-memory container store and a fixed key table. It is for tests only.
//
// It imports what a node is built of (driver, driver/local, placement,
// engine, s3, s3/sigv4) and nothing that imports it back: only _test.go
// files of other packages import testnode.
package testnode

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/driver"
	"github.com/vaultaire/vaultaire/driver/local"
	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/placement"
	"github.com/vaultaire/vaultaire/s3"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// Root is the node's root credential.
var Root = s3.Credential{AccessKey: "ROOTACCESSKEY", Secret: "rootsecretrootsecretrootsecret"}

// Keys are the tenants' credentials: access key → tenant and secret.
var Keys = map[string][2]string{
	"ALICEKEY": {"alice", "alicesecret"},
	"BOBKEY":   {"bob", "bobsecret"},
}

// keyTable is an s3.Keys over Keys.
type keyTable struct{ mu sync.Mutex }

func (k *keyTable) LookupKey(ctx context.Context, accessKey string) (string, string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := Keys[accessKey]
	if !ok {
		return "", "", sigv4.ErrUnknownAccessKey
	}
	return v[0], v[1], nil
}

// Node is a running test node.
type Node struct {
	Endpoint string // http://127.0.0.1:port
	Engine   *engine.Engine
	Dirs     []string // drive directories
	Server   *s3.Server
}

// Start runs a node until the test ends. tweak, if set, adjusts the S3
// server's configuration first.
func Start(t testing.TB, tweak func(*s3.Config)) *Node {
	t.Helper()
	return StartWith(t, nil, tweak)
}

// StartWith is Start with a hook that adjusts the engine's configuration
// too.
func StartWith(t testing.TB, engineTweak func(*engine.Config), tweak func(*s3.Config)) *Node {
	t.Helper()
	ctx := context.Background()
	n := &Node{}
	var pdrives []placement.Drive
	drives := map[placement.DriveID]driver.Driver{}
	for i := range 4 {
		id := placement.DriveID(fmt.Sprintf("d%d", i))
		dir := t.TempDir()
		n.Dirs = append(n.Dirs, dir)
		d, err := local.Open(ctx, local.Config{Dir: dir, ID: id, ClusterID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		drives[id] = d
		pdrives = append(pdrives, placement.Drive{ID: id, Node: "n1"})
	}
	pol, _ := placement.DefaultPolicy(4)
	m, err := placement.NewMap(pdrives, pol, placement.DefaultPGCount, 1)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := engine.NewStatic(m, drives)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := engine.Config{Topology: topo, Containers: &engine.MemContainers{}}
	if engineTweak != nil {
		engineTweak(&ecfg)
	}
	if n.Engine, err = engine.New(ecfg); err != nil {
		t.Fatal(err)
	}
	cfg := s3.Config{Engine: n.Engine, Keys: &keyTable{}, Root: Root}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Server = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	n.Endpoint = "http://" + ln.Addr().String()
	return n
}
