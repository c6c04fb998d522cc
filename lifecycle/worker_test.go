package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store over versions kept in memory: the worker's
// decisions (which version, when, resuming) are what these tests check;
// the real Store (s3.LifecycleStore) is tested end to end in cmd/vaultd.
type memStore struct {
	mu       sync.Mutex
	doc      []byte
	versions []Version // keys ascending, each key's versions newest first
	locked   map[string]bool
	progress []byte
	afters   []string // afterKey of every Versions call
	actions  []string
	uploads  []Upload
}

var box = Container{Tenant: "t", Name: "b"}

func (m *memStore) Containers(context.Context) ([]Container, error) { return []Container{box}, nil }
func (m *memStore) Configuration(context.Context, Container) ([]byte, bool, error) {
	return m.doc, m.doc != nil, nil
}
func (m *memStore) Progress(context.Context, Container) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.progress, m.progress != nil, nil
}
func (m *memStore) SaveProgress(_ context.Context, _ Container, d []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress = d
	return nil
}
func (m *memStore) Versions(_ context.Context, _ Container, afterKey, afterVersion string, limit int) ([]Version, string, string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.afters = append(m.afters, afterKey)
	i := 0
	if afterKey != "" {
		i = sort.Search(len(m.versions), func(i int) bool { return m.versions[i].Key > afterKey })
		if afterVersion != "" {
			i = slices.IndexFunc(m.versions, func(v Version) bool { return v.Key == afterKey && v.VersionID == afterVersion }) + 1
		}
	}
	end := min(i+limit, len(m.versions))
	out := slices.Clone(m.versions[i:end])
	if end == len(m.versions) {
		return out, "", "", false, nil
	}
	return out, out[len(out)-1].Key, out[len(out)-1].VersionID, true, nil
}
func (m *memStore) Tags(context.Context, Container, string, string) (map[string]string, error) {
	return nil, nil
}
func (m *memStore) act(what, key, vid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked[key+"#"+vid] {
		return ErrProtected
	}
	m.actions = append(m.actions, what+" "+key+"#"+vid)
	return nil
}
func (m *memStore) ExpireCurrent(_ context.Context, _ Container, v Version) error {
	return m.act("expire", v.Key, v.VersionID)
}
func (m *memStore) DeleteVersion(_ context.Context, _ Container, key, vid string) error {
	return m.act("delete", key, vid)
}
func (m *memStore) Uploads(context.Context, Container, string, string, int) ([]Upload, bool, error) {
	return m.uploads, false, nil
}
func (m *memStore) AbortUpload(_ context.Context, _ Container, key, id string) error {
	return m.act("abort", key, id)
}

func TestDueRoundsUpToTheDay(t *testing.T) {
	w, _ := New(Config{Store: &memStore{}})
	written := time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now  time.Time
		days int
		due  bool
	}{
		{time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC), 1, false}, // 24h later, but not yet the next midnight
		{time.Date(2026, 3, 2, 23, 59, 59, 0, time.UTC), 1, false},
		{time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), 1, true},
		{time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), 2, false},
		{time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), 2, true},
	} {
		if got := w.due(written, tc.days, tc.now); got != tc.due {
			t.Errorf("written %v, %d days, at %v: due %v, want %v", written, tc.days, tc.now, got, tc.due)
		}
	}
}

func TestNoncurrentKeepsNewerAndSkipsProtected(t *testing.T) {
	old := time.Now().Add(-10 * time.Second)
	m := &memStore{locked: map[string]bool{"k#v1": true}, doc: []byte(`<LifecycleConfiguration><Rule><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>
<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule></LifecycleConfiguration>`)}
	for i := 6; i >= 0; i-- {
		m.versions = append(m.versions, Version{Key: "k", VersionID: fmt.Sprintf("v%d", i), Modified: old.Add(time.Duration(i) * time.Millisecond), IsLatest: i == 6})
	}
	w, err := New(Config{Store: m, Day: time.Second, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	// v6 current, v5 and v4 the two newest noncurrent kept, v1 locked.
	want := []string{"delete k#v3", "delete k#v2", "delete k#v0"}
	if !slices.Equal(m.actions, want) {
		t.Fatalf("actions %q, want %q", m.actions, want)
	}
	if s := w.Stats(); s.Protected != 1 || s.NoncurrentDeleted != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// TestPassResumes stops a pass part way (the node stops being active) and
// checks that the next pass, by a new worker, starts after the last key
// saved, then starts over once it has finished.
func TestPassResumes(t *testing.T) {
	m := &memStore{doc: []byte(`<LifecycleConfiguration><Rule><Prefix>k</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>`)}
	old := time.Now().Add(-time.Minute)
	for i := range 700 {
		m.versions = append(m.versions, Version{Key: fmt.Sprintf("k%04d", i), VersionID: "null", Modified: old, IsLatest: true})
	}
	var acted int
	stopAt := 300
	w, _ := New(Config{Store: m, Day: time.Second, Rate: 1e6, Active: func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		acted = len(m.actions)
		return acted < stopAt
	}})
	if err := w.Pass(t.Context()); !errors.Is(err, errInactive) {
		t.Fatalf("first pass: %v", err)
	}
	if !strings.Contains(string(m.progress), `"k0255"`) {
		t.Fatalf("progress saved %s, want after k0255", m.progress)
	}
	m.afters, m.actions = nil, nil
	w2, _ := New(Config{Store: m, Day: time.Second, Rate: 1e6})
	if err := w2.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m.afters[0] != "k0255" || m.actions[0] != "expire k0256#null" || len(m.actions) != 700-256 {
		t.Fatalf("second pass listed after %q first, acted %d times from %q", m.afters[0], len(m.actions), m.actions[0])
	}
	if string(m.progress) != `{"after":""}` {
		t.Fatalf("progress after a full pass: %s", m.progress)
	}
	m.afters = nil
	if err := w2.Pass(t.Context()); err != nil || m.afters[0] != "" {
		t.Fatalf("third pass started after %q: %v", m.afters[0], err)
	}
}

func TestParse(t *testing.T) {
	rule := func(body string) string {
		return `<LifecycleConfiguration><Rule>` + body + `</Rule></LifecycleConfiguration>`
	}
	for _, tc := range []struct {
		doc  string
		kind ErrorKind
		ok   bool
	}{
		{rule(`<Filter><Prefix>a/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>3</Days></Expiration>`), 0, true},
		{rule(`<Prefix>a/</Prefix><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>`), 0, true},
		{rule(`<Status>Enabled</Status><Expiration><Days>3</Days></Expiration>`), Malformed, false},
		{rule(`<Prefix></Prefix><Filter></Filter><Status>Enabled</Status><Expiration><Days>3</Days></Expiration>`), Malformed, false},
		{rule(`<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>3</Days></Expiration>`), Malformed, false},
		{rule(`<Prefix></Prefix><Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>`), InvalidArgument, false},
		{rule(`<Prefix></Prefix><Status>Enabled</Status><Expiration></Expiration>`), Malformed, false},
		{rule(`<Prefix></Prefix><Status>Enabled</Status><Expiration><Date>2030-01-01T05:00:00Z</Date></Expiration>`), InvalidArgument, false},
		{rule(`<Prefix></Prefix><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>`), NotImplemented, false},
		{rule(`<Filter><And><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k</Key><Value>2</Value></Tag></And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>`), InvalidRequest, false},
		{rule(`<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>`), InvalidRequest, false},
		{`<LifecycleConfiguration></LifecycleConfiguration>`, Malformed, false},
		{`<Lifecycle`, Malformed, false},
	} {
		_, err := Parse([]byte(tc.doc))
		var ve *ValidationError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case !tc.ok && (!errors.As(err, &ve) || ve.Kind != tc.kind):
			t.Errorf("%s: got %v, want kind %d", tc.doc, err, tc.kind)
		}
	}
}
