package lifecycle

import (
	"testing"
	"time"
)

// TestExpiry: the time and rule an enabled Expiration rule gives a
// current version (x-amz-expiration): Days rounded up to the next
// midnight UTC, a Date as it is, the earliest of the rules selecting the
// version, filters on prefix, size and tags, disabled rules ignored.
func TestExpiry(t *testing.T) {
	cfg, err := Parse([]byte(`<LifecycleConfiguration>
<Rule><ID>off</ID><Filter><Prefix></Prefix></Filter><Status>Disabled</Status><Expiration><Days>1</Days></Expiration></Rule>
<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>
<Rule><ID>big</ID><Filter><ObjectSizeGreaterThan>100</ObjectSizeGreaterThan></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>
<Rule><ID>tagged</ID><Filter><And><Prefix>t/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>
<Rule><ID>markers</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>
</LifecycleConfiguration>`))
	if err != nil {
		t.Fatal(err)
	}
	mod := time.Date(2026, 12, 7, 15, 4, 5, 0, time.UTC)
	midnight := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		key  string
		size int64
		mod  time.Time
		tags map[string]string
		at   time.Time
		id   string
	}{
		{"logs/a", 1, mod, nil, time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC), "logs"},
		{"logs/a", 1, midnight, nil, time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC), "logs"}, // already a midnight
		{"logs/a", 200, mod, nil, time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC), "big"},     // the earlier of two
		{"t/x", 1, mod, map[string]string{"k": "v"}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "tagged"},
		{"t/x", 1, mod, map[string]string{"k": "w"}, time.Time{}, ""},
		{"x/t", 1, mod, map[string]string{"k": "v"}, time.Time{}, ""},
		{"other", 100, mod, nil, time.Time{}, ""},
	} {
		at, id, ok := cfg.Expiry(tc.key, tc.size, tc.mod, tc.tags)
		if ok != (tc.id != "") || !at.Equal(tc.at) || id != tc.id {
			t.Errorf("Expiry(%q, %d, %v, %v) = %v %q %v, want %v %q", tc.key, tc.size, tc.mod, tc.tags, at, id, ok, tc.at, tc.id)
		}
	}
}
