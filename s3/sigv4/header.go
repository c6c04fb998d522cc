package sigv4

import (
	"slices"
	"strings"
)

// HeaderField is one header line of a request as received.
type HeaderField struct {
	Name, Value string
}

// HeaderList is a request's header lines in the order received, repeated
// names included. Its Get and Names methods are what Request.Header and
// Request.HeaderNames need, so a front end that can list the header lines
// as received adapts them without applying the SigV4 rules itself:
//
//	var hl sigv4.HeaderList
//	for k, v := range header.AllInOrder() {
//		hl = append(hl, sigv4.HeaderField{Name: string(k), Value: string(v)})
//	}
//	req := sigv4.Request{Header: hl.Get, HeaderNames: hl.Names(), ...}
//
// A front end that keeps only one value of a repeated header must not be
// adapted this way: the signature would cover values that are not stored,
// or store values that are not signed.
type HeaderList []HeaderField

// Get returns the values of the named header (case-insensitively), each
// trimmed of spaces and tabs, joined with "," in the order received, as the
// SigV4 canonical request takes them; "" if it is absent or empty.
func (hl HeaderList) Get(name string) string {
	var first string
	var joined []byte
	n := 0
	for _, f := range hl {
		if !strings.EqualFold(f.Name, name) {
			continue
		}
		v := strings.Trim(f.Value, " \t")
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
func (hl HeaderList) Names() []string {
	names := make([]string, 0, len(hl))
	if len(hl) > 16 {
		// Many lines (a hostile client can send thousands): no quadratic scan.
		seen := make(map[string]bool, len(hl))
		for _, f := range hl {
			if k := strings.ToLower(f.Name); !seen[k] {
				seen[k] = true
				names = append(names, f.Name)
			}
		}
		return names
	}
	for i, f := range hl {
		if !slices.ContainsFunc(hl[:i], func(g HeaderField) bool { return strings.EqualFold(f.Name, g.Name) }) {
			names = append(names, f.Name)
		}
	}
	return names
}
