package sigv4

import (
	"testing"
	"time"
)

// TestReview30pTimeParse: parseTime accepts or refuses hostile dates
// exactly as time.Parse does, and gives the same time.
func TestReview30pTimeParse(t *testing.T) {
	in := []string{"20240230T000000Z", "20240229T235959Z", "20230229T000000Z", "00000101T000000Z", "99991231T235959Z",
		"20240101T240000Z", "20240101T236000Z", "20240101T235960Z", "20241301T000000Z", "20240001T000000Z", "20240100T000000Z",
		"2024010T000000Z", "20240101T0000000Z", "20240101T000000", "2024０101T000000Z", "+2024101T000000Z", "2024-101T000000Z",
		"20240101t000000Z", "20240101T000000z", "", "20240230", "20240229", "00000101", "99991231", "2024013", "202401011", "2024013a", "20241232", "-0240101"}
	for _, layout := range []string{"20060102T150405Z", "20060102"} {
		for _, v := range in {
			w, werr := time.Parse(layout, v)
			g, gerr := parseTime(layout, v)
			if (werr == nil) != (gerr == nil) || !w.Equal(g) {
				t.Errorf("%q %q: time.Parse %v %v, parseTime %v %v", layout, v, w, werr, g, gerr)
			}
		}
	}
}
