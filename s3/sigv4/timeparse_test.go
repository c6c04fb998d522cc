package sigv4

import (
	"math/rand/v2"
	"testing"
	"time"
)

var parseTimeSeeds = []struct{ layout, v string }{
	{timeFormat, "20130524T000000Z"},
	{timeFormat, "20261208T015959Z"},
	{timeFormat, "00010101T000000Z"},
	{timeFormat, "00000101T000000Z"},
	{timeFormat, "99991228T235959Z"},
	{timeFormat, "20240229T120000Z"}, // leap day: time.Parse's
	{timeFormat, "20230229T120000Z"}, // not a leap year
	{timeFormat, "20240431T120000Z"},
	{timeFormat, "20241301T120000Z"},
	{timeFormat, "20240001T120000Z"},
	{timeFormat, "20240100T120000Z"},
	{timeFormat, "20240101T240000Z"},
	{timeFormat, "20240101T236000Z"},
	{timeFormat, "20240101T235960Z"},
	{timeFormat, "20240101t120000Z"},
	{timeFormat, "20240101T120000z"},
	{timeFormat, "2024010 T120000Z"},
	{timeFormat, "+0240101T120000Z"},
	{timeFormat, "-0240101T120000Z"},
	{timeFormat, "20240101T12000.Z"},
	{timeFormat, "20240101T1200.5Z"},
	{timeFormat, "20240101T120000.5Z"},
	{timeFormat, "20240101T120000"},
	{timeFormat, ""},
	{dateFormat, "20130524"},
	{dateFormat, "20240229"},
	{dateFormat, "20230229"},
	{dateFormat, "20231231"},
	{dateFormat, "2023123"},
	{dateFormat, "2023123a"},
	{dateFormat, "20231200"},
	{dateFormat, "+0231201"},
}

// checkParseTime compares parseTime with time.Parse, the oracle: the same
// time (and location) or both an error.
func checkParseTime(t *testing.T, layout, v string) {
	t.Helper()
	got, gerr := parseTime(layout, v)
	want, werr := time.Parse(layout, v)
	if (gerr == nil) != (werr == nil) || !got.Equal(want) || got.Location() != want.Location() {
		t.Errorf("parseTime(%q, %q) = %v, %v; time.Parse: %v, %v", layout, v, got, gerr, want, werr)
	}
}

// TestParseTimeOracle checks parseTime against time.Parse on the table
// and on random strings of the layouts' length over the bytes that
// matter (digits, T, Z, signs, a dot).
func TestParseTimeOracle(t *testing.T) {
	for _, tc := range parseTimeSeeds {
		checkParseTime(t, tc.layout, tc.v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789012345678901234567890123456789TZ+-. "
	for range 200000 {
		layout := timeFormat
		if rng.IntN(4) == 0 {
			layout = dateFormat
		}
		b := []byte(layout)
		for i := range b {
			if rng.IntN(3) == 0 || b[i] >= '0' && b[i] <= '9' {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		checkParseTime(t, layout, string(b))
	}
}

func FuzzParseTime(f *testing.F) {
	for _, tc := range parseTimeSeeds {
		f.Add(tc.layout == dateFormat, tc.v)
	}
	f.Fuzz(func(t *testing.T, date bool, v string) {
		layout := timeFormat
		if date {
			layout = dateFormat
		}
		checkParseTime(t, layout, v)
	})
}

// BenchmarkParseTime: a request parses X-Amz-Date and its scope's date.
func BenchmarkParseTime(b *testing.B) {
	for _, p := range []struct {
		name  string
		parse func(layout, v string) (time.Time, error)
	}{{"time.Parse", time.Parse}, {"parseTime", parseTime}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.parse(timeFormat, "20261208T015959Z"); err != nil {
					b.Fatal(err)
				}
				if _, err := p.parse(dateFormat, "20261208"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
