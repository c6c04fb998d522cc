package sigv4

import "time"

// parseTime is time.Parse(layout, v) for layout timeFormat or dateFormat:
// the plain spelling every client sends (digits, with T and Z where the
// layout has them, a day of month up to 28) is read directly, anything
// else by time.Parse, so that what is accepted and what it means are
// time.Parse's (TestParseTimeOracle). Each request parsed X-Amz-Date and
// its scope's date with time.Parse: 8% of a presigned URL's
// verification (BenchmarkVerifyPresigned, pprof, session 30).
func parseTime(layout, v string) (time.Time, error) {
	if t, ok := parseTimeFast(layout, v); ok {
		return t, nil
	}
	return time.Parse(layout, v)
}

func parseTimeFast(layout, v string) (time.Time, bool) {
	if len(v) != len(layout) {
		return time.Time{}, false
	}
	switch layout {
	case timeFormat:
		if v[8] != 'T' || v[15] != 'Z' {
			return time.Time{}, false
		}
	case dateFormat:
	default:
		return time.Time{}, false
	}
	ok := true
	num := func(s string) int {
		n := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				ok = false
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(v[0:4]), num(v[4:6]), num(v[6:8])
	hour, minute, sec := 0, 0, 0
	if layout == timeFormat {
		hour, minute, sec = num(v[9:11]), num(v[11:13]), num(v[13:15])
	}
	// Days 29 to 31 depend on the month and year: time.Parse decides.
	if !ok || month < 1 || month > 12 || day < 1 || day > 28 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}
