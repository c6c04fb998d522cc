package sigv4

import (
	"slices"
	"strings"
)

// HeaderList holds a request's header lines in the order received,
// repeated names included. Its Get and Names methods are what
// Request.Header and Request.HeaderNames need, so a front end that can list
// the header lines as received adapts them without applying the SigV4 rules
// itself:
//
//	var hl sigv4.HeaderList
//	for k, v := range header.AllInOrder() {
//		hl.Add(string(k), string(v))
//	}
//	req := sigv4.Request{Header: hl.Get, HeaderNames: hl.Names(), ...}
//
// Lookups take constant time however many lines a client sends. A front
// end that keeps only one value of a repeated header must not be adapted
// this way: the signature would cover values that are not stored, or store
// values that are not signed. The zero value is an empty list; a HeaderList
// is not safe for concurrent use.
type HeaderList struct {
	lines []headerLine
	index map[string][]string // lowercase name → trimmed values; for long lists, built by Get
}

type headerLine struct{ name, value string }

// smallHeaderList is the most lines a HeaderList searches linearly.
const smallHeaderList = 16

// Add appends a header line.
func (hl *HeaderList) Add(name, value string) {
	hl.lines = append(hl.lines, headerLine{name, value})
	hl.index = nil
}

// Grow makes room for n more lines, for a front end that knows how many
// it will add.
func (hl *HeaderList) Grow(n int) {
	hl.lines = slices.Grow(hl.lines, n)
}

// trimValue trims a header value as SigV4 and HTTP do.
func trimValue(v string) string { return strings.Trim(v, " \t") }

// Get returns the values of the named header (case-insensitively), each
// trimmed of spaces and tabs, joined with "," in the order received, as the
// SigV4 canonical request takes them; "" if it is absent or empty.
func (hl *HeaderList) Get(name string) string {
	if len(hl.lines) > smallHeaderList {
		if hl.index == nil {
			hl.index = make(map[string][]string, len(hl.lines))
			for _, l := range hl.lines {
				k := strings.ToLower(l.name)
				hl.index[k] = append(hl.index[k], trimValue(l.value))
			}
		}
		return strings.Join(hl.index[strings.ToLower(name)], ",")
	}
	var first string
	var joined []byte
	n := 0
	for _, l := range hl.lines {
		if !strings.EqualFold(l.name, name) {
			continue
		}
		v := trimValue(l.value)
		switch n {
		case 0:
			first = v
		case 1:
			joined = append(append(append(joined, first...), ','), v...)
		default:
			joined = append(append(joined, ','), v...)
		}
		n++
	}
	if n > 1 {
		return string(joined)
	}
	return first
}

// Names returns the header names present, each once (in the spelling and
// order of its first line), including headers present with an empty value.
func (hl *HeaderList) Names() []string {
	names := make([]string, 0, len(hl.lines))
	if len(hl.lines) > smallHeaderList {
		seen := make(map[string]bool, len(hl.lines))
		for _, l := range hl.lines {
			if k := strings.ToLower(l.name); !seen[k] {
				seen[k] = true
				names = append(names, l.name)
			}
		}
		return names
	}
	for i, l := range hl.lines {
		if !slices.ContainsFunc(hl.lines[:i], func(m headerLine) bool { return strings.EqualFold(l.name, m.name) }) {
			names = append(names, l.name)
		}
	}
	return names
}
