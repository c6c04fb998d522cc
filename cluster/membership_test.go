package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

var testSecret = []byte("test-cluster-secret-0123456789")

// advertised returns what node name advertises in these tests; gen
// changes the RPC address and drives, as after a restart or an update.
func advertised(name string, gen int) Member {
	m := Member{
		S3Addr:   "127.0.0.1:9000",
		RaftAddr: "127.0.0.1:9001",
		RPCAddr:  fmt.Sprintf("127.0.0.1:%d", 9100+gen),
	}
	for i := range 2 + gen {
		m.Drives = append(m.Drives, MemberDrive{ID: fmt.Sprintf("%s-d%d", name, i), Class: "local", Zone: "z-" + name})
	}
	return m
}

// startMember starts a member with DefaultLocalConfig timings and closes
// it when the test ends.
func startMember(t *testing.T, name, bind string, secret []byte, self Member, events func(Member)) *Membership {
	t.Helper()
	m, err := StartMembership(t.Context(), MembershipConfig{
		Name: name, BindAddr: bind, Self: self, Secret: secret, Events: events, Local: true,
	})
	if err != nil {
		t.Fatalf("StartMembership(%s): %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startCluster starts n members named n1.., each joining through the one
// before it.
func startCluster(t *testing.T, n int) []*Membership {
	t.Helper()
	var ms []*Membership
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		m := startMember(t, name, "127.0.0.1:0", testSecret, advertised(name, 0), nil)
		if i > 0 {
			if got, err := m.Join(t.Context(), []string{ms[i-1].Addr()}); err != nil || got != 1 {
				t.Fatalf("%s: Join(%s) = %d, %v; want 1, nil", name, ms[i-1].Addr(), got, err)
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// waitFor polls cond until it returns "" or timeout passes, then fails
// with cond's last complaint.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sees returns a waitFor condition: observer lists name with want's
// advertised fields, state and gossip address (if want.Addr is set).
func sees(observer *Membership, name string, want Member) func() string {
	return func() string {
		want.Name = name
		for _, got := range observer.Members() {
			if got.Name != name {
				continue
			}
			if want.Addr == "" {
				got.Addr = ""
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Sprintf("%s sees %+v, want %+v", observer.name, got, want)
			}
			return ""
		}
		return fmt.Sprintf("%s does not see %s; members %v", observer.name, name, names(observer.Members()))
	}
}

func names(ms []Member) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name+"="+m.State.String())
	}
	return s
}

func withState(m Member, s MemberState, addr string) Member {
	m.State, m.Addr = s, addr
	return m
}

func TestMembershipForms(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		inflight atomic.Int32
		overlap  bool
		seen     = map[string]Member{}
	)
	events := func(m Member) {
		if inflight.Add(1) > 1 {
			overlap = true
		}
		time.Sleep(5 * time.Millisecond) // widen the window for overlapping calls
		mu.Lock()
		seen[m.Name] = m
		mu.Unlock()
		inflight.Add(-1)
	}
	n1 := startMember(t, "n1", "127.0.0.1:0", testSecret, advertised("n1", 0), events)
	n2 := startMember(t, "n2", "127.0.0.1:0", testSecret, advertised("n2", 0), nil)
	n3 := startMember(t, "n3", "127.0.0.1:0", testSecret, advertised("n3", 0), nil)
	// n3 joins through n2, which knows only itself until it joins n1.
	if _, err := n2.Join(t.Context(), []string{n1.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Join(t.Context(), []string{"127.0.0.1:1", n2.Addr()}); err != nil {
		t.Fatalf("Join with one dead address: %v", err)
	}
	all := []*Membership{n1, n2, n3}
	took := waitFor(t, 5*time.Second, func() string {
		for _, o := range all {
			for _, m := range all {
				if why := sees(o, m.name, withState(advertised(m.name, 0), MemberAlive, m.Addr()))(); why != "" {
					return why
				}
			}
		}
		return ""
	})
	t.Logf("3 members converged in %v", took)
	if got := n1.Members(); len(got) != 3 || got[0].Name != "n1" || got[1].Name != "n2" || got[2].Name != "n3" {
		t.Errorf("Members() = %v, want n1, n2, n3 in order", names(got))
	}

	if err := n3.Update(advertised("n3", 1)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	took = waitFor(t, 5*time.Second, func() string {
		for _, o := range all {
			if why := sees(o, "n3", withState(advertised("n3", 1), MemberAlive, n3.Addr()))(); why != "" {
				return why
			}
		}
		return ""
	})
	t.Logf("update propagated in %v", took)

	waitFor(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range all {
			want := advertised(m.name, 0)
			if m == n3 {
				want = advertised("n3", 1)
			}
			want = withState(want, MemberAlive, m.Addr())
			want.Name = m.name
			if got := seen[m.name]; !reflect.DeepEqual(got, want) {
				return fmt.Sprintf("last event for %s = %+v, want %+v", m.name, got, want)
			}
		}
		return ""
	})
	if err := n1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-n1.done:
	default:
		t.Error("events goroutine still running after Close")
	}
	if overlap {
		t.Error("Events was called concurrently")
	}
	if err := n1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n1.Join(t.Context(), []string{n2.Addr()}); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Join after Close: %v, want ErrMembershipClosed", err)
	}
	if err := n1.Update(advertised("n1", 0)); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Update after Close: %v, want ErrMembershipClosed", err)
	}
	if err := n1.Leave(t.Context()); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Leave after Close: %v, want ErrMembershipClosed", err)
	}
}

// A member that stops without leaving is seen Dead, stays listed, and is
// Alive again with its new metadata when it restarts on the same address.
func TestMembershipFailureAndRestart(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	n1, n2, n3 := ms[0], ms[1], ms[2]
	addr := n3.Addr()
	waitFor(t, 5*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 0), MemberAlive, addr))(),
			sees(n2, "n3", withState(advertised("n3", 0), MemberAlive, addr))())
	})
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 15*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 0), MemberDead, addr))(),
			sees(n2, "n3", withState(advertised("n3", 0), MemberDead, addr))())
	})
	t.Logf("closed member seen dead in %v", took)

	n3 = startMember(t, "n3", addr, testSecret, advertised("n3", 1), nil)
	if _, err := n3.Join(t.Context(), []string{n1.Addr()}); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, 5*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 1), MemberAlive, addr))(),
			sees(n2, "n3", withState(advertised("n3", 1), MemberAlive, addr))(),
			sees(n3, "n2", withState(advertised("n2", 0), MemberAlive, n2.Addr()))())
	})
	t.Logf("restarted member alive again in %v", took)
}

// A member that leaves is seen Left, and may come back on another port.
func TestMembershipLeave(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	n1, n2, n3 := ms[0], ms[1], ms[2]
	addr := n3.Addr()
	waitFor(t, 5*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 0), MemberAlive, addr))(),
			sees(n2, "n3", withState(advertised("n3", 0), MemberAlive, addr))())
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := n3.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	t.Logf("Leave took %v", time.Since(start))
	if why := sees(n3, "n3", withState(advertised("n3", 0), MemberLeft, addr))(); why != "" {
		t.Errorf("leaver's own view: %s", why)
	}
	took := waitFor(t, 5*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 0), MemberLeft, addr))(),
			sees(n2, "n3", withState(advertised("n3", 0), MemberLeft, addr))())
	})
	t.Logf("leaving member seen left in %v", took)
	if err := n3.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}

	n3 = startMember(t, "n3", "127.0.0.1:0", testSecret, advertised("n3", 2), nil)
	if _, err := n3.Join(t.Context(), []string{n2.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() string {
		return cmpJoin(sees(n1, "n3", withState(advertised("n3", 2), MemberAlive, n3.Addr()))(),
			sees(n2, "n3", withState(advertised("n3", 2), MemberAlive, n3.Addr()))())
	})
}

func cmpJoin(whys ...string) string {
	var s []string
	for _, w := range whys {
		if w != "" {
			s = append(s, w)
		}
	}
	return strings.Join(s, "; ")
}

func TestMembershipWrongSecret(t *testing.T) {
	t.Parallel()
	n1 := startMember(t, "n1", "127.0.0.1:0", testSecret, advertised("n1", 0), nil)
	other := []byte("another-cluster-secret-987654321")
	n2 := startMember(t, "n2", "127.0.0.1:0", other, advertised("n2", 0), nil)
	// Every address under another secret: ErrSecretMismatch, so that
	// vaultd can say what is wrong (probe F7 of session 17: only
	// memberlist's "no installed keys could decrypt the message").
	if got, err := n2.Join(t.Context(), []string{n1.Addr()}); !errors.Is(err, ErrSecretMismatch) || !strings.Contains(err.Error(), "cluster secret") {
		t.Errorf("Join with another secret = %d, %v; want ErrSecretMismatch", got, err)
	}
	// One under another secret, one down: not every peer differs, but
	// the one that does is named.
	down := testnet.Addr(t)
	if got, err := n2.Join(t.Context(), []string{n1.Addr(), down}); err == nil || errors.Is(err, ErrSecretMismatch) ||
		!strings.Contains(err.Error(), "does "+n1.Addr()+" run under another cluster secret?") {
		t.Errorf("Join of another secret's node and a down one = %d, %v; want an error naming the other secret, not ErrSecretMismatch", got, err)
	}
	if _, err := n2.Join(t.Context(), nil); err == nil {
		t.Error("Join with no addresses succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := n2.Join(ctx, []string{n1.Addr()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Join with a canceled context: %v, want context.Canceled", err)
	}
	if got, err := n1.Join(t.Context(), []string{n2.Addr()}); err == nil {
		t.Errorf("reverse Join with another secret = %d, nil; want an error", got)
	}
	time.Sleep(300 * time.Millisecond) // let any stray gossip arrive
	for _, m := range []*Membership{n1, n2} {
		if got := m.Members(); len(got) != 1 || got[0].Name != m.name {
			t.Errorf("%s sees %v, want only itself", m.name, names(got))
		}
	}
}

// manyDrives returns n drives whose IDs start with prefix.
func manyDrives(prefix string, n int) []MemberDrive {
	var ds []MemberDrive
	for i := range n {
		ds = append(ds, MemberDrive{ID: fmt.Sprintf("%s%03d", prefix, i), Class: "local", Zone: "rack-1"})
	}
	return ds
}

func TestMembershipMetaTooLarge(t *testing.T) {
	t.Parallel()
	big := advertised("n1", 0)
	big.Drives = manyDrives("n1-drive-", 200)
	c := MembershipConfig{Name: "n1", BindAddr: "127.0.0.1:0", Secret: testSecret, Self: big, Local: true}
	if err := c.Validate(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("Validate with 200 drives: %v, want ErrMetaTooLarge", err)
	}
	if _, err := StartMembership(t.Context(), c); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("StartMembership with 200 drives: %v, want ErrMetaTooLarge", err)
	}

	n1 := startMember(t, "n1", "127.0.0.1:0", testSecret, advertised("n1", 0), nil)
	if err := n1.Update(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("Update with 200 drives: %v, want ErrMetaTooLarge", err)
	}
	if why := sees(n1, "n1", withState(advertised("n1", 0), MemberAlive, n1.Addr()))(); why != "" {
		t.Errorf("after failed Update: %s", why)
	}
	// 40 drives fit only in the compact form.
	mid := advertised("n1", 0)
	mid.Drives = manyDrives("n1-drive-", 40)
	if err := n1.Update(mid); err != nil {
		t.Fatalf("Update with 40 drives: %v", err)
	}
	if why := sees(n1, "n1", withState(mid, MemberAlive, n1.Addr()))(); why != "" {
		t.Error(why)
	}
}

var metaTests = []struct {
	name    string
	m       Member
	compact bool // needs the compact drive form
}{
	{"empty", Member{}, false},
	{"addrs only", Member{S3Addr: "10.0.0.1:9000", RaftAddr: "10.0.0.1:9001", RPCAddr: "10.0.0.1:9002"}, false},
	{"drives", advertised("node-1", 3), false},
	{"mixed classes and zones", Member{Drives: []MemberDrive{
		{ID: "r1", Class: "remote"}, {ID: "b", Class: "local", Zone: "z2"}, {ID: "a", Class: "local", Zone: "z1"}, {ID: "c", Class: "local", Zone: "z1"},
	}}, false},
	{"40 drives", Member{S3Addr: "10.0.0.1:9000", Drives: manyDrives("node-0001-d", 40)}, true},
	{"two zones of 30", Member{Drives: append(manyDrives("node-0001-a", 30), func() []MemberDrive {
		ds := manyDrives("node-0001-b", 30)
		for i := range ds {
			ds[i].Zone = "rack-2"
		}
		return ds
	}()...)}, true},
	{"unicode prefix", Member{Drives: func() []MemberDrive {
		var ds []MemberDrive
		for i := range 30 {
			ds = append(ds, MemberDrive{ID: fmt.Sprintf("disque-%c-%d", 'é'+rune(i%3), i), Class: "local"})
		}
		return ds
	}()}, true},
}

func TestMemberMetaRoundTrip(t *testing.T) {
	for _, tt := range metaTests {
		for _, leaving := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/leaving=%v", tt.name, leaving), func(t *testing.T) {
				b, err := encodeMeta(tt.m, leaving)
				if err != nil {
					t.Fatalf("encodeMeta: %v", err)
				}
				if len(b) > memberlist.MetaMaxSize {
					t.Errorf("encoded %d bytes, over %d", len(b), memberlist.MetaMaxSize)
				}
				if got := bytes.Contains(b, []byte(`"g":`)); got != tt.compact {
					t.Errorf("compact form used = %v, want %v: %s", got, tt.compact, b)
				}
				got, gotLeaving, err := decodeMeta(b)
				if err != nil {
					t.Fatalf("decodeMeta(%s): %v", b, err)
				}
				want := tt.m.clone()
				sortDrives(want.Drives)
				if !reflect.DeepEqual(got, want) || gotLeaving != leaving {
					t.Errorf("decodeMeta(encodeMeta(m)) = %+v, %v; want %+v, %v", got, gotLeaving, want, leaving)
				}
			})
		}
	}
}

func TestMemberMetaInvalid(t *testing.T) {
	for _, ds := range [][]MemberDrive{
		{{ID: ""}},
		{{ID: "a"}, {ID: "a", Zone: "z"}},
		{{ID: "bad\xff"}},
	} {
		if _, err := encodeMeta(Member{Drives: ds}, false); err == nil {
			t.Errorf("encodeMeta(%+v) succeeded, want an error", ds)
		}
	}
	if _, _, err := decodeMeta(nil); err == nil {
		t.Error("decodeMeta(nil) succeeded")
	}
	if _, _, err := decodeMeta([]byte("{")); err == nil {
		t.Error("decodeMeta({) succeeded")
	}
}

func FuzzMemberMeta(f *testing.F) {
	for _, tt := range metaTests {
		b, err := encodeMeta(tt.m, false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, leaving, err := decodeMeta(b)
		if err != nil {
			return
		}
		b2, err := encodeMeta(m, leaving)
		if err != nil {
			return // duplicate or empty IDs, too large
		}
		m2, leaving2, err := decodeMeta(b2)
		if err != nil || !reflect.DeepEqual(m, m2) || leaving != leaving2 {
			t.Errorf("round trip of %+v: got %+v, %v, %v", m, m2, leaving2, err)
		}
	})
}

func TestMemberCommonPrefix(t *testing.T) {
	for _, tt := range []struct{ a, b, want string }{
		{"", "", ""},
		{"abc", "abd", "ab"},
		{"abc", "abc", "abc"},
		{"ab", "abc", "ab"},
		{"dé1", "dê2", "d"}, // é and ê share their first byte
		{"dé1", "dé2", "dé"},
	} {
		if got := commonPrefix(tt.a, tt.b); got != tt.want {
			t.Errorf("commonPrefix(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMemberStateText(t *testing.T) {
	for _, s := range []MemberState{MemberAlive, MemberSuspect, MemberDead, MemberLeft} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatalf("%d.MarshalText: %v", int(s), err)
		}
		var got MemberState
		if err := got.UnmarshalText(b); err != nil || got != s {
			t.Errorf("UnmarshalText(%s) = %v, %v; want %v", b, got, err, s)
		}
	}
	if got, want := MemberState(0).String(), "MemberState(0)"; got != want {
		t.Errorf("MemberState(0).String() = %q, want %q", got, want)
	}
	if _, err := MemberState(9).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid state succeeded")
	}
}

func TestMembershipConfigValidate(t *testing.T) {
	ok := MembershipConfig{Name: "n1", BindAddr: "127.0.0.1:7946", Secret: testSecret}
	for _, tt := range []struct {
		name string
		edit func(*MembershipConfig)
	}{
		{"no name", func(c *MembershipConfig) { c.Name = "" }},
		{"no port", func(c *MembershipConfig) { c.BindAddr = "127.0.0.1" }},
		{"host name", func(c *MembershipConfig) { c.BindAddr = "localhost:7946" }},
		{"bad port", func(c *MembershipConfig) { c.BindAddr = "127.0.0.1:70000" }},
		{"advertise without port", func(c *MembershipConfig) { c.AdvertiseAddr = "10.0.0.1:0" }},
		{"no secret", func(c *MembershipConfig) { c.Secret = nil }},
		{"short secret", func(c *MembershipConfig) { c.Secret = []byte("0123456789abcde") }},
		{"other self name", func(c *MembershipConfig) { c.Self.Name = "n2" }},
		{"duplicate drive", func(c *MembershipConfig) { c.Self.Drives = []MemberDrive{{ID: "d"}, {ID: "d"}} }},
	} {
		c := ok
		tt.edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate succeeded, want an error", tt.name)
		}
	}
	c := MembershipConfig{Name: "n1", Secret: testSecret}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.BindAddr != "0.0.0.0:7946" || c.Logger == nil {
		t.Errorf("defaults: BindAddr %q, Logger %v; want 0.0.0.0:7946 and a logger", c.BindAddr, c.Logger)
	}
}

func TestMembershipGossipLog(t *testing.T) {
	var buf bytes.Buffer
	l := newGossipLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	l.Printf("[DEBUG] memberlist: Stream connection from=%s", "127.0.0.1:1")
	l.Printf("[WARN] memberlist: Refuting a suspect message")
	l.Printf("[ERR] memberlist: Failed to decrypt")
	l.Printf("[ERROR] other")
	l.Printf("no tag")
	l.Printf("[ODD] memberlist: tag")
	want := `level=DEBUG msg="Stream connection from=127.0.0.1:1" component=memberlist
level=WARN msg="Refuting a suspect message" component=memberlist
level=ERROR msg="Failed to decrypt" component=memberlist
level=ERROR msg=other component=memberlist
level=INFO msg="no tag" component=memberlist
level=INFO msg="[ODD] memberlist: tag" component=memberlist
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
