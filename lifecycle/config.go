package lifecycle

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Configuration is a LifecycleConfiguration document: the rules of one
// container, in the XML form of the S3 API.
type Configuration struct {
	XMLName xml.Name `xml:"LifecycleConfiguration"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	Rules   []Rule   `xml:"Rule"`
}

// Rule is one lifecycle rule.
type Rule struct {
	ID     string  `xml:"ID,omitempty"`
	Prefix *string `xml:"Prefix"` // legacy form of Filter.Prefix
	Filter *Filter `xml:"Filter"`
	Status string  `xml:"Status"`

	Expiration                     *Expiration                     `xml:"Expiration"`
	NoncurrentVersionExpiration    *NoncurrentVersionExpiration    `xml:"NoncurrentVersionExpiration"`
	AbortIncompleteMultipartUpload *AbortIncompleteMultipartUpload `xml:"AbortIncompleteMultipartUpload"`
	Transitions                    []struct{}                      `xml:"Transition"`
	NoncurrentVersionTransitions   []struct{}                      `xml:"NoncurrentVersionTransition"`
}

// Filter selects the keys a rule applies to: at most one of Prefix, Tag,
// the object size bounds or And.
type Filter struct {
	Prefix                *string `xml:"Prefix"`
	Tag                   *Tag    `xml:"Tag"`
	ObjectSizeGreaterThan *int64  `xml:"ObjectSizeGreaterThan"`
	ObjectSizeLessThan    *int64  `xml:"ObjectSizeLessThan"`
	And                   *And    `xml:"And"`
}

// And combines a prefix, tags and size bounds.
type And struct {
	Prefix                *string `xml:"Prefix"`
	Tags                  []Tag   `xml:"Tag"`
	ObjectSizeGreaterThan *int64  `xml:"ObjectSizeGreaterThan"`
	ObjectSizeLessThan    *int64  `xml:"ObjectSizeLessThan"`
}

// Tag is a key and value an artifact's tags must hold.
type Tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// Expiration expires current versions after Days or at Date, or removes
// expired delete markers.
type Expiration struct {
	Days                      *int    `xml:"Days"`
	Date                      *string `xml:"Date"`
	ExpiredObjectDeleteMarker *bool   `xml:"ExpiredObjectDeleteMarker"`
}

// NoncurrentVersionExpiration deletes versions NoncurrentDays after they
// stopped being current, keeping the NewerNoncurrentVersions newest.
type NoncurrentVersionExpiration struct {
	NoncurrentDays          *int `xml:"NoncurrentDays"`
	NewerNoncurrentVersions *int `xml:"NewerNoncurrentVersions"`
}

// AbortIncompleteMultipartUpload aborts uploads DaysAfterInitiation days
// after they started.
type AbortIncompleteMultipartUpload struct {
	DaysAfterInitiation *int `xml:"DaysAfterInitiation"`
}

// Limits of a configuration, as AWS.
const (
	MaxRules     = 1000
	maxIDLen     = 255
	maxNewer     = 100
	maxRuleTags  = 50
	enabledValue = "Enabled"
)

// ErrorKind classifies an invalid configuration as AWS answers it.
type ErrorKind int

// The kinds of invalid configurations.
const (
	Malformed       ErrorKind = iota // MalformedXML
	InvalidArgument                  // InvalidArgument
	InvalidRequest                   // InvalidRequest
	NotImplemented                   // a feature this store lacks (transitions)
)

// ValidationError says why Parse refused a configuration.
type ValidationError struct {
	Kind ErrorKind
	Msg  string
}

func (e *ValidationError) Error() string { return "lifecycle: " + e.Msg }

func invalid(k ErrorKind, format string, args ...any) error {
	return &ValidationError{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// ErrTransitions is the ValidationError of a rule with a transition:
// there is one storage class, so there is nothing to transition to.
var ErrTransitions = &ValidationError{Kind: NotImplemented, Msg: "Lifecycle transitions are not implemented: this store has one storage class"}

// Parse decodes and checks a LifecycleConfiguration document as AWS's
// PutBucketLifecycleConfiguration does. Its errors are *ValidationError
// (a document that does not decode is Malformed).
func Parse(doc []byte) (*Configuration, error) {
	var c Configuration
	if err := xml.Unmarshal(doc, &c); err != nil {
		return nil, invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks a decoded configuration as Parse does.
func (c *Configuration) Validate() error {
	if len(c.Rules) == 0 {
		return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	if len(c.Rules) > MaxRules {
		return invalid(InvalidRequest, "Configuration cannot have more than %d rules", MaxRules)
	}
	ids := make(map[string]bool, len(c.Rules))
	for i := range c.Rules {
		r := &c.Rules[i]
		if err := r.validate(); err != nil {
			return err
		}
		if r.ID != "" {
			if ids[r.ID] {
				return invalid(InvalidArgument, "Rule ID must be unique. Found same ID for more than one rule")
			}
			ids[r.ID] = true
		}
	}
	return nil
}

func positive(p *int, msg string) error {
	if p != nil && *p <= 0 {
		return invalid(InvalidArgument, "%s", msg)
	}
	return nil
}

func (r *Rule) validate() error {
	if len(r.ID) > maxIDLen {
		return invalid(InvalidArgument, "ID length should not exceed allowed limit of %d", maxIDLen)
	}
	if r.Status != enabledValue && r.Status != "Disabled" {
		return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	if (r.Prefix == nil) == (r.Filter == nil) {
		return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	if len(r.Transitions) > 0 || len(r.NoncurrentVersionTransitions) > 0 {
		return ErrTransitions
	}
	if r.Expiration == nil && r.NoncurrentVersionExpiration == nil && r.AbortIncompleteMultipartUpload == nil {
		return invalid(InvalidRequest, "At least one action needs to be specified in a rule")
	}
	if f := r.Filter; f != nil {
		n := 0
		for _, set := range []bool{f.Prefix != nil, f.Tag != nil, f.ObjectSizeGreaterThan != nil || f.ObjectSizeLessThan != nil, f.And != nil} {
			if set {
				n++
			}
		}
		if n > 1 || (f.ObjectSizeGreaterThan != nil && f.ObjectSizeLessThan != nil) {
			return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if a := f.And; a != nil {
			if len(a.Tags) > maxRuleTags {
				return invalid(InvalidRequest, "Filter cannot have more than %d tags", maxRuleTags)
			}
			seen := map[string]bool{}
			for _, t := range a.Tags {
				if seen[t.Key] {
					return invalid(InvalidRequest, "Duplicate Tag Keys are not allowed.")
				}
				seen[t.Key] = true
			}
		}
	}
	gt, lt := r.sizes()
	if (gt != nil && *gt < 0) || (lt != nil && *lt <= 0) {
		return invalid(InvalidRequest, "ObjectSize must be a non-negative number")
	}
	if gt != nil && lt != nil && *gt >= *lt {
		return invalid(InvalidRequest, "ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
	}
	for _, t := range r.tags() {
		if t.Key == "" {
			return invalid(InvalidRequest, "The TagKey you have provided is invalid")
		}
	}
	if e := r.Expiration; e != nil {
		set := 0
		for _, b := range []bool{e.Days != nil, e.Date != nil, e.ExpiredObjectDeleteMarker != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			if e.ExpiredObjectDeleteMarker != nil && set > 1 {
				return invalid(InvalidRequest, "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy")
			}
			return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if err := positive(e.Days, "'Days' for Expiration action must be a positive integer"); err != nil {
			return err
		}
		if e.Date != nil {
			if _, err := parseDate(*e.Date); err != nil {
				return err
			}
		}
		if e.ExpiredObjectDeleteMarker != nil && len(r.tags()) > 0 {
			return invalid(InvalidRequest, "ExpiredObjectDeleteMarker cannot be specified with Tags")
		}
	}
	if n := r.NoncurrentVersionExpiration; n != nil {
		if n.NoncurrentDays == nil {
			return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if err := positive(n.NoncurrentDays, "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"); err != nil {
			return err
		}
		if v := n.NewerNoncurrentVersions; v != nil && (*v <= 0 || *v > maxNewer) {
			return invalid(InvalidArgument, "NewerNoncurrentVersions for NoncurrentVersionExpiration must be between 1 and %d", maxNewer)
		}
	}
	if a := r.AbortIncompleteMultipartUpload; a != nil {
		if a.DaysAfterInitiation == nil {
			return invalid(Malformed, "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if err := positive(a.DaysAfterInitiation, "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer"); err != nil {
			return err
		}
		if len(r.tags()) > 0 {
			return invalid(InvalidRequest, "AbortIncompleteMultipartUpload cannot be specified with Tags.")
		}
		if gt, lt := r.sizes(); gt != nil || lt != nil {
			return invalid(InvalidRequest, "AbortIncompleteMultipartUpload cannot be specified with ObjectSize filters.")
		}
	}
	return nil
}

// parseDate reads an Expiration Date: ISO 8601, midnight UTC.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err = time.Parse(layout, s); err == nil {
			break
		}
	}
	if err != nil {
		return time.Time{}, invalid(InvalidArgument, "'Date' must be at midnight GMT")
	}
	t = t.UTC()
	if !t.Equal(t.Truncate(24 * time.Hour)) {
		return time.Time{}, invalid(InvalidArgument, "'Date' must be at midnight GMT")
	}
	return t, nil
}

// enabled reports whether the rule is in force.
func (r *Rule) enabled() bool { return r.Status == enabledValue }

// prefix is the key prefix the rule selects ("" for every key).
func (r *Rule) prefix() string {
	switch {
	case r.Prefix != nil:
		return *r.Prefix
	case r.Filter == nil:
	case r.Filter.Prefix != nil:
		return *r.Filter.Prefix
	case r.Filter.And != nil && r.Filter.And.Prefix != nil:
		return *r.Filter.And.Prefix
	}
	return ""
}

// tags are the tags the rule's filter requires.
func (r *Rule) tags() []Tag {
	switch {
	case r.Filter == nil:
	case r.Filter.Tag != nil:
		return []Tag{*r.Filter.Tag}
	case r.Filter.And != nil:
		return r.Filter.And.Tags
	}
	return nil
}

// sizes are the rule's size bounds (bytes, exclusive), nil when absent.
func (r *Rule) sizes() (gt, lt *int64) {
	switch {
	case r.Filter == nil:
	case r.Filter.And != nil:
		return r.Filter.And.ObjectSizeGreaterThan, r.Filter.And.ObjectSizeLessThan
	default:
		return r.Filter.ObjectSizeGreaterThan, r.Filter.ObjectSizeLessThan
	}
	return nil, nil
}

// matches reports whether a version of key with size bytes and tags
// (called only when the rule filters on tags) is selected by the rule.
func (r *Rule) matches(key string, size int64, tags func() (map[string]string, error)) (bool, error) {
	if !strings.HasPrefix(key, r.prefix()) {
		return false, nil
	}
	gt, lt := r.sizes()
	if (gt != nil && size <= *gt) || (lt != nil && size >= *lt) {
		return false, nil
	}
	want := r.tags()
	if len(want) == 0 {
		return true, nil
	}
	have, err := tags()
	if err != nil {
		return false, err
	}
	for _, t := range want {
		if v, ok := have[t.Key]; !ok || v != t.Value {
			return false, nil
		}
	}
	return true, nil
}

// errNoDate is never returned by a validated configuration.
var errNoDate = errors.New("lifecycle: no date")

// date is the rule's Expiration Date.
func (e *Expiration) date() (time.Time, error) {
	if e.Date == nil {
		return time.Time{}, errNoDate
	}
	return parseDate(*e.Date)
}

// Expiry returns when the current version of key, of size bytes and last
// modified at modified, expires under c's enabled Expiration rules (Days
// or Date), and the ID of the rule that expires it: of the rules that
// select it, the one that expires it first. tags are the version's tags
// (a rule filtering on tags needs them). Days are whole days of 24 hours
// from modified, rounded up to the next midnight UTC, as S3 reports them
// in x-amz-expiration; the worker acts once that time has come (with its
// Config.Day). ok is false when no rule expires the version.
func (c *Configuration) Expiry(key string, size int64, modified time.Time, tags map[string]string) (at time.Time, ruleID string, ok bool) {
	have := func() (map[string]string, error) { return tags, nil }
	for i := range c.Rules {
		r := &c.Rules[i]
		e := r.Expiration
		if !r.enabled() || e == nil || (e.Days == nil && e.Date == nil) {
			continue
		}
		if sel, _ := r.matches(key, size, have); !sel {
			continue
		}
		var t time.Time
		if e.Days != nil {
			t = modified.UTC().Add(time.Duration(*e.Days) * 24 * time.Hour)
			if mid := t.Truncate(24 * time.Hour); !mid.Equal(t) {
				t = mid.Add(24 * time.Hour)
			}
		} else if d, err := e.date(); err == nil {
			t = d
		} else {
			continue
		}
		if !ok || t.Before(at) {
			at, ruleID, ok = t, r.ID, true
		}
	}
	return at, ruleID, ok
}
