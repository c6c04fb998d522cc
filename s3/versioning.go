package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/vaultaire/vaultaire/engine"
)

// Bucket versioning. The state (Enabled or Suspended; never set means
// unversioned) is a bucket configuration document of kind "versioning",
// replicated through Raft like CORS. Object requests read this node's
// copy (LocalBucketConfig, no round trip), which a change that returned
// has reached on every node that answered; a node that was cut off
// catches up when it rejoins. The engine stores the versions
// (engine/version.go), told the state with each write.

const versioningKind = "versioning"

// versioningConfiguration is the VersioningConfiguration document.
type versioningConfiguration struct {
	XMLName   xml.Name `xml:"VersioningConfiguration"`
	Xmlns     string   `xml:"xmlns,attr,omitempty"`
	Status    string   `xml:"Status,omitempty"`
	MFADelete string   `xml:"MfaDelete,omitempty"`
}

func (op *operation) putBucketVersioning() error {
	cs, err := op.configs()
	if err != nil {
		return err
	}
	var c versioningConfiguration
	if err := op.readXMLBody(&c); err != nil {
		return err
	}
	switch {
	case c.Status != "Enabled" && c.Status != "Suspended":
		return errIllegalVersioning
	case c.MFADelete == "Enabled":
		return errMFADeleteNotImplemented
	case c.MFADelete != "" && c.MFADelete != "Disabled":
		return errIllegalVersioning
	}
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	doc, err := xml.Marshal(versioningConfiguration{Xmlns: s3Namespace, Status: c.Status})
	if err != nil {
		return err
	}
	// Object lock needs versioning Enabled: checked against the lock
	// document as the write finds it in Raft, not as this node saw it.
	err = op.putConfigChecked(cs, versioningKind, doc, objectLockKind, func(_ []byte, locked bool) error {
		if locked && c.Status != "Enabled" {
			return errInvalidBucketState
		}
		return nil
	})
	if err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) getBucketVersioning() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	doc, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, versioningKind)
	if err != nil {
		return err
	}
	if !ok {
		doc, _ = xml.Marshal(versioningConfiguration{Xmlns: s3Namespace})
	}
	writeDoc(op, doc)
	return nil
}

// versioningOf returns a bucket's versioning state for a write, which
// acts on it: as of every change that returned through any node, also on
// a node that was paused or cut off meanwhile (FreshBucketConfig; probe
// H5: a resumed node wrote unversioned over a versioned key and a
// version was lost).
func (s *Server) versioningOf(ctx context.Context, tenant, bucket string) (engine.Versioning, error) {
	if s.cfg.Configs == nil {
		return engine.Unversioned, nil
	}
	doc, ok, err := s.cfg.Configs.FreshBucketConfig(ctx, tenant, bucket, versioningKind)
	if err != nil {
		return engine.Unversioned, fmt.Errorf("s3: versioning of %s: %w", bucket, err)
	}
	return versioningState(doc, ok), nil
}

// localVersioning is a bucket's versioning state from this node's copy,
// for what does not act on it (response headers of reads).
func (s *Server) localVersioning(tenant, bucket string) engine.Versioning {
	if s.cfg.Configs == nil {
		return engine.Unversioned
	}
	return versioningState(s.cfg.Configs.LocalBucketConfig(tenant, bucket, versioningKind))
}

// versioningState is the state a versioning document (ok: present) says.
func versioningState(doc []byte, ok bool) engine.Versioning {
	switch {
	case !ok:
		return engine.Unversioned
	case bytes.Contains(doc, []byte("<Status>Enabled</Status>")):
		return engine.VersioningEnabled
	case bytes.Contains(doc, []byte("<Status>Suspended</Status>")):
		return engine.VersioningSuspended
	}
	return engine.Unversioned
}

// versioning is the request bucket's versioning state.
// putConfigChecked writes the bucket's document of kind, allowed by check
// given the bucket's document of kind dep (and whether it has one), with
// the condition that dep is still that document when the write is
// applied. A write racing a change of dep (through another node) is
// checked again against the new dep, up to three times, then answered
// 409 OperationAborted.
func (op *operation) putConfigChecked(cs BucketConfigs, kind string, doc []byte, dep string, check func(depDoc []byte, ok bool) error) error {
	for range 3 {
		cur, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, dep)
		if err != nil {
			return err
		}
		if err := check(cur, ok); err != nil {
			return err
		}
		var ifDoc []byte
		if ok {
			ifDoc = append([]byte{}, cur...)
		}
		err = cs.PutBucketConfigIf(op.ctx, op.tenant, op.bucket, kind, doc, dep, ifDoc)
		if !errors.Is(err, engine.ErrConfigChanged) {
			return err
		}
	}
	return errConfigConflict
}

func (op *operation) versioning() (engine.Versioning, error) {
	return op.s.versioningOf(op.ctx, op.tenant, op.bucket)
}

// versionHeader sets x-amz-version-id for a version written or read; an
// object of a versioned bucket stored before versioning is "null".
func (op *operation) versionHeader(vid string) {
	if vid == "" && op.s.localVersioning(op.tenant, op.bucket) != engine.Unversioned {
		vid = engine.NullVersion
	}
	if vid != "" {
		op.r.fctx.Response.Header.Set("x-amz-version-id", vid)
	}
}

// openObject opens the object a GET or HEAD names: its versionId, or the
// newest. A delete marker answers as S3: 404 NoSuchKey for the newest,
// 405 MethodNotAllowed by version id, with x-amz-delete-marker.
func (op *operation) openObject() (*engine.Artifact, error) {
	vid, _ := op.query("versionId")
	a, err := op.s.cfg.Engine.OpenVersion(op.ctx, op.tenant, op.bucket, op.key, vid)
	var dm *engine.DeleteMarkerError
	if errors.As(err, &dm) {
		rh := &op.r.fctx.Response.Header
		rh.Set("x-amz-delete-marker", "true")
		rh.Set("x-amz-version-id", dm.VersionID)
		if dm.ByVersion {
			rh.Set("Last-Modified", dm.Modified.UTC().Format(http.TimeFormat))
			return nil, ErrMethodNotAllowed
		}
		return nil, ErrNoSuchKey
	}
	if err != nil {
		return nil, err
	}
	op.versionHeader(a.Info.VersionID)
	op.retentionHeaders(a)
	return a, nil
}

// deleteVersioned serves DeleteObject: with versionId, or on a versioned
// bucket.
func (op *operation) deleteVersioned() error {
	vid, _ := op.query("versionId")
	cond, err := op.writeCondition(true)
	if err != nil {
		return err
	}
	state, err := op.versioning()
	if err != nil {
		return err
	}
	res, err := op.s.cfg.Engine.DeleteVersion(op.ctx, op.tenant, op.bucket, op.key, engine.DeleteOptions{Versioning: state, VersionID: vid, BypassGovernance: op.bypassGovernance(), Condition: cond})
	if err != nil {
		return err
	}
	rh := &op.r.fctx.Response.Header
	if res.DeleteMarker {
		rh.Set("x-amz-delete-marker", "true")
	}
	if res.VersionID != "" {
		rh.Set("x-amz-version-id", res.VersionID)
	}
	return nil
}

// copySourceVersion returns the versionId of x-amz-copy-source, if any
// (copySource has checked it).
func (op *operation) copySourceVersion() string {
	src := string(op.r.fctx.Request.Header.Peek("x-amz-copy-source"))
	_, query, _ := strings.Cut(src, "?")
	for p := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(p, "versionId="); ok {
			return v
		}
	}
	return ""
}

type listVersionsResult struct {
	XMLName             xml.Name       `xml:"ListVersionsResult"`
	Xmlns               string         `xml:"xmlns,attr"`
	Name                string         `xml:"Name"`
	Prefix              xmlKey         `xml:"Prefix"`
	KeyMarker           xmlKey         `xml:"KeyMarker"`
	VersionIDMarker     string         `xml:"VersionIdMarker"`
	NextKeyMarker       xmlKey         `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string         `xml:"NextVersionIdMarker,omitempty"`
	MaxKeys             int            `xml:"MaxKeys"`
	Delimiter           xmlKey         `xml:"Delimiter,omitempty"`
	EncodingType        string         `xml:"EncodingType,omitempty"`
	IsTruncated         bool           `xml:"IsTruncated"`
	Entries             []versionEntry // Version and DeleteMarker elements, in listing order
	CommonPrefixes      []commonPrefix `xml:"CommonPrefixes"`
}

// versionEntry is a Version, or a DeleteMarker (no ETag, Size or
// StorageClass).
type versionEntry struct {
	XMLName      xml.Name
	Key          xmlKey  `xml:"Key"`
	VersionID    string  `xml:"VersionId"`
	IsLatest     bool    `xml:"IsLatest"`
	LastModified string  `xml:"LastModified"`
	ETag         *string `xml:"ETag,omitempty"`
	Size         *int64  `xml:"Size,omitempty"`
	Owner        owner   `xml:"Owner"`
	StorageClass string  `xml:"StorageClass,omitempty"`
}

// listVersions serves ListObjectVersions. An object of an unversioned
// bucket is its one version, "null".
func (op *operation) listVersions() error {
	p, err := op.listParams()
	if err != nil {
		return err
	}
	keyMarker, _ := op.query("key-marker")
	idMarker, _ := op.query("version-id-marker")
	switch {
	case idMarker != "" && keyMarker == "":
		return errVersionIDMarker
	case idMarker != "" && !engine.ValidVersionID(idMarker):
		return ErrInvalidVersion
	}
	page, err := op.s.cfg.Engine.ListVersions(op.ctx, op.tenant, op.bucket, engine.VersionListOptions{
		Prefix: p.prefix, Delimiter: p.delimiter, KeyMarker: keyMarker, VersionIDMarker: idMarker, Limit: p.maxKeys,
	})
	if err != nil {
		return err
	}
	res := listVersionsResult{Xmlns: s3Namespace, Name: op.bucket, MaxKeys: p.maxKeys, EncodingType: p.enc,
		Prefix: encodeKey(p.prefix, p.urlEnc), Delimiter: encodeKey(p.delimiter, p.urlEnc),
		KeyMarker: encodeKey(keyMarker, p.urlEnc), VersionIDMarker: idMarker, IsTruncated: page.Truncated}
	for _, v := range page.Versions {
		e := versionEntry{XMLName: xml.Name{Local: "Version"}, Key: encodeKey(v.Key, p.urlEnc), VersionID: v.VersionID,
			IsLatest: v.IsLatest, LastModified: isoTime(v.Modified), Owner: op.owner()}
		if v.DeleteMarker {
			e.XMLName.Local = "DeleteMarker"
		} else {
			etag, size := `"`+v.ETag+`"`, v.Size
			e.ETag, e.Size, e.StorageClass = &etag, &size, "STANDARD"
		}
		res.Entries = append(res.Entries, e)
	}
	for _, pre := range page.Prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(pre, p.urlEnc)})
	}
	if page.Truncated {
		res.NextKeyMarker = encodeKey(page.NextKey, p.urlEnc)
		res.NextVersionIDMarker = page.NextVersion
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}
