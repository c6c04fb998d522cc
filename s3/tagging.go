package s3

import (
	"encoding/xml"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vaultaire/vaultaire/engine"
)

// Object tags are kept in the object's metadata record, as one reserved
// entry (tagsEntry: a name no header can produce, filtered from
// everything that shows user metadata) holding the tag set in the
// x-amz-tagging form, k1=v1&k2=v2. Changing an object's tags rewrites its
// metadata records only (engine.UpdateMetadata). Bucket tags are a bucket
// configuration document (Raft-replicated, like CORS).

// tagsEntry is the reserved metadata entry holding an object's tags.
const tagsEntry = engine.ReservedMetadataPrefix + "tags"

const taggingKind = "tagging"

// Limits of a tag set, as AWS.
const (
	maxObjectTags = 10
	maxBucketTags = 50
	maxTagKey     = 128 // Unicode characters
	maxTagValue   = 256 // Unicode characters
)

var (
	errTooManyObjectTags = withMessage(errInvalidTag, "Object tags cannot be greater than 10")
	errTooManyBucketTags = withMessage(errInvalidTag, "Bucket tag count cannot be greater than 50")
	errTagKeyTooLong     = withMessage(errInvalidTag, "The TagKey you have provided is too long, max 128")
	errTagValueTooLong   = withMessage(errInvalidTag, "The TagValue you have provided is too long, max 256")
	errTagKeyInvalid     = withMessage(errInvalidTag, "The TagKey you have provided is invalid")
	errTagValueInvalid   = withMessage(errInvalidTag, "The TagValue you have provided is invalid")
	errTagKeyDuplicate   = withMessage(errInvalidTag, "Cannot provide multiple Tags with the same key")
	errTagKeyAWS         = withMessage(errInvalidTag, "Your TagKey cannot be prefixed with aws:")
)

type tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// tagging is the Tagging document of the tagging calls.
type tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	TagSet  struct {
		Tags []tag `xml:"Tag"`
	} `xml:"TagSet"`
}

// tagChar reports a character AWS allows in tag keys and values:
// letters, digits, white space and + - = . _ : / @.
func tagChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsSpace(r) || strings.ContainsRune("+-=._:/@", r)
}

// validateTags checks a tag set against AWS's rules, at most max tags.
func validateTags(tags []tag, max int) error {
	if len(tags) > max {
		if max == maxBucketTags {
			return errTooManyBucketTags
		}
		return errTooManyObjectTags
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		switch {
		case !utf8.ValidString(t.Key) || t.Key == "" || strings.IndexFunc(t.Key, func(r rune) bool { return !tagChar(r) }) >= 0:
			return errTagKeyInvalid
		case utf8.RuneCountInString(t.Key) > maxTagKey:
			return errTagKeyTooLong
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return errTagKeyAWS
		case !utf8.ValidString(t.Value) || strings.IndexFunc(t.Value, func(r rune) bool { return !tagChar(r) }) >= 0:
			return errTagValueInvalid
		case utf8.RuneCountInString(t.Value) > maxTagValue:
			return errTagValueTooLong
		case seen[t.Key]:
			return errTagKeyDuplicate
		}
		seen[t.Key] = true
	}
	return nil
}

// encodeTags returns a tag set in the x-amz-tagging form.
func encodeTags(tags []tag) string {
	var b strings.Builder
	for i, t := range tags {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(t.Key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(t.Value))
	}
	return b.String()
}

// parseTagQuery decodes the x-amz-tagging form, keeping the order.
func parseTagQuery(s string) ([]tag, bool) {
	if s == "" {
		return nil, true
	}
	var tags []tag
	for pair := range strings.SplitSeq(s, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		tags = append(tags, tag{key, val})
	}
	return tags, true
}

// objectTags returns the tags stored in an object's metadata.
func objectTags(meta map[string]string) []tag {
	tags, _ := parseTagQuery(meta[tagsEntry])
	return tags
}

// headerTags returns the reserved metadata of a write's x-amz-tagging
// header: nil if it has none or an empty one.
func (op *operation) headerTags() (map[string]string, error) {
	v := joinedHeader(&op.r.fctx.Request.Header, "x-amz-tagging")
	if v == "" {
		return nil, nil
	}
	tags, ok := parseTagQuery(v)
	if !ok {
		return nil, errTaggingHeader
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if seen[t.Key] {
			return nil, errTaggingHeader
		}
		seen[t.Key] = true
	}
	if err := validateTags(tags, maxObjectTags); err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return map[string]string{tagsEntry: encodeTags(tags)}, nil
}

// withTags returns metadata with the reserved entries of tags added.
func withTags(meta, tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return meta
	}
	out := make(map[string]string, len(meta)+len(tags))
	maps.Copy(out, meta)
	maps.Copy(out, tags)
	return out
}

// setTaggingCount adds x-amz-tagging-count to a GET or HEAD response of an
// object with tags.
func setTaggingCount(rh interface{ Set(k, v string) }, meta map[string]string) {
	if n := len(objectTags(meta)); n > 0 {
		rh.Set("x-amz-tagging-count", strconv.Itoa(n))
	}
}

// readTagging reads and validates a Tagging request body.
func (op *operation) readTagging(max int) ([]tag, error) {
	var t tagging
	if err := op.readXMLBody(&t); err != nil {
		return nil, err
	}
	if err := validateTags(t.TagSet.Tags, max); err != nil {
		return nil, err
	}
	return t.TagSet.Tags, nil
}

func writeTagging(op *operation, tags []tag) {
	var t tagging
	t.Xmlns = s3Namespace
	t.TagSet.Tags = tags
	if t.TagSet.Tags == nil {
		t.TagSet.Tags = []tag{}
	}
	writeXML(op.r.fctx, http.StatusOK, t)
}

// setObjectTags replaces an object's tags (none: removes them).
func (op *operation) setObjectTags(tags []tag) error {
	vid, _ := op.query("versionId")
	info, err := op.s.cfg.Engine.UpdateMetadata(op.ctx, op.tenant, op.bucket, op.key, vid, func(cur engine.ArtifactInfo) (map[string]string, error) {
		meta := maps.Clone(cur.Metadata)
		if meta == nil {
			meta = map[string]string{}
		}
		delete(meta, tagsEntry)
		if len(tags) > 0 {
			meta[tagsEntry] = encodeTags(tags)
		}
		return meta, nil
	})
	if err != nil {
		return err
	}
	op.r.ev.ObjectSize = info.Size
	op.versionHeader(info.VersionID)
	return nil
}

func (op *operation) putObjectTagging() error {
	tags, err := op.readTagging(maxObjectTags)
	if err != nil {
		return err
	}
	if err := op.setObjectTags(tags); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) getObjectTagging() error {
	vid, _ := op.query("versionId")
	a, err := op.s.cfg.Engine.OpenVersion(op.ctx, op.tenant, op.bucket, op.key, vid)
	if err != nil {
		return err
	}
	op.versionHeader(a.Info.VersionID)
	writeTagging(op, objectTags(a.Info.Metadata))
	return nil
}

func (op *operation) deleteObjectTagging() error {
	if err := op.drainBody(0); err != nil {
		return err
	}
	if err := op.setObjectTags(nil); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// bucketConfigs returns the configuration store after checking the bucket
// exists.
func (op *operation) bucketConfigs() (BucketConfigs, error) {
	cs, err := op.configs()
	if err != nil {
		return nil, err
	}
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return nil, err
	}
	return cs, nil
}

func (op *operation) putBucketTagging() error {
	tags, err := op.readTagging(maxBucketTags)
	if err != nil {
		return err
	}
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	if err := cs.PutBucketConfig(op.ctx, op.tenant, op.bucket, taggingKind, []byte(encodeTags(tags))); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func (op *operation) getBucketTagging() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	doc, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, taggingKind)
	if err != nil {
		return err
	}
	tags, valid := parseTagQuery(string(doc))
	if !ok || !valid || len(tags) == 0 {
		return errNoSuchTagSet
	}
	writeTagging(op, tags)
	return nil
}

func (op *operation) deleteBucketTagging() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	if err := cs.DeleteBucketConfig(op.ctx, op.tenant, op.bucket, taggingKind); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}
