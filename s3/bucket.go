package s3

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// operation is one authenticated S3 request being served.
type operation struct {
	s      *Server
	r      *request
	ctx    context.Context
	cancel context.CancelFunc
	auth   *sigv4.Result
	tenant string
	bucket string
	key    string
	path   string // the raw path

	release []func() // of the Quota's admissions, called when dispatch returns
}

func (op *operation) query(name string) (string, bool) {
	args := op.r.fctx.QueryArgs()
	if !args.Has(name) {
		return "", false
	}
	return string(args.Peek(name)), true
}

// ipFormatted reports whether name is formatted as an IPv4 address, which
// S3 refuses as a bucket name: four groups of one to three digits joined
// by dots, as AWS and MinIO match it (so 192.168.05.4 too, which
// net.ParseIP refuses for its leading zero). An IPv6 address has a colon,
// refused anyway.
func ipFormatted(name string) bool {
	groups, digits := 1, 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case '0' <= c && c <= '9':
			digits++
			if digits > 3 {
				return false
			}
		case c == '.' && digits > 0:
			groups, digits = groups+1, 0
		default:
			return false
		}
	}
	return groups == 4 && digits > 0
}

// validBucketName applies S3's bucket naming rules.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 || strings.Contains(name, "..") ||
		strings.HasPrefix(name, "xn--") || strings.HasSuffix(name, "-s3alias") || ipFormatted(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' || (i == 0 || i == len(name)-1) && !alnum {
			return false
		}
	}
	return true
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

func (op *operation) owner() owner { return owner{ID: op.tenant, DisplayName: op.tenant} }

const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

type listAllMyBucketsResult struct {
	XMLName xml.Name `xml:"ListAllMyBucketsResult"`
	Xmlns   string   `xml:"xmlns,attr"`
	Owner   owner    `xml:"Owner"`
	Buckets []bucket `xml:"Buckets>Bucket"`
}

type bucket struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

// isoTime formats a time for an XML body in whole seconds, as AWS does
// (".000Z") and as HEAD and GET report Last-Modified: a client comparing
// a listing with a download (aws s3 sync --exact-timestamps) sees the same
// time.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") + ".000Z" }

func (op *operation) listBuckets() error {
	cs, err := op.s.cfg.Engine.Containers(op.ctx, op.tenant)
	if err != nil {
		return err
	}
	res := listAllMyBucketsResult{Xmlns: s3Namespace, Owner: op.owner(), Buckets: []bucket{}}
	for _, c := range cs {
		res.Buckets = append(res.Buckets, bucket{Name: c.Name, CreationDate: isoTime(c.Created)})
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

func (op *operation) createBucket() error {
	if !validBucketName(op.bucket) {
		return ErrInvalidBucketName
	}
	// The optional CreateBucketConfiguration names a region; any is fine
	// (a signature's scope may name any region too), but it must parse.
	if op.r.fctx.Request.Header.ContentLength() != 0 {
		var conf struct {
			XMLName            xml.Name `xml:"CreateBucketConfiguration"`
			LocationConstraint string   `xml:"LocationConstraint"`
		}
		if err := op.readXMLBody(&conf); err != nil {
			return err
		}
	}
	locked, err := op.lockOnCreate()
	if err != nil {
		return err
	}
	public := op.cannedPublicRead()
	if public {
		if op.s.cfg.Configs == nil {
			return errACLNotSupported
		}
		if pb, ok := op.s.cfg.Configs.(PublicBuckets); ok {
			if t, ok := pb.PublicBucketOwner(op.bucket); ok && t != op.tenant {
				return errPublicNameTaken
			}
		}
	}
	if err := op.s.cfg.Engine.CreateContainer(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	if err := locked(); err != nil {
		return err
	}
	if public {
		if err := op.setPublicRead(true); err != nil {
			// Claimed by another tenant meanwhile: no half-made bucket.
			if derr := op.s.cfg.Engine.DeleteContainer(context.WithoutCancel(op.ctx), op.tenant, op.bucket); derr != nil {
				slog.Warn("s3: removing a bucket whose public-read failed", "bucket", op.bucket, "err", derr)
			}
			return err
		}
	}
	op.r.fctx.Response.Header.Set("Location", "/"+op.bucket)
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) headBucket() error {
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	op.r.fctx.Response.Header.Set("x-amz-bucket-region", op.s.cfg.Region)
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

func (op *operation) deleteBucket() error {
	if err := op.s.cfg.Engine.DeleteContainer(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

type locationConstraint struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	Xmlns   string   `xml:"xmlns,attr"`
	Region  string   `xml:",chardata"`
}

func (op *operation) bucketLocation() error {
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	region := op.s.cfg.Region
	if region == "us-east-1" {
		region = "" // as S3 reports its default region
	}
	writeXML(op.r.fctx, http.StatusOK, locationConstraint{Xmlns: s3Namespace, Region: region})
	return nil
}

type listBucketResult struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	Xmlns                 string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                xmlKey         `xml:"Prefix"`
	Marker                *xmlKey        `xml:"Marker,omitempty"`
	NextMarker            xmlKey         `xml:"NextMarker,omitempty"`
	StartAfter            xmlKey         `xml:"StartAfter,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	KeyCount              *int           `xml:"KeyCount,omitempty"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             xmlKey         `xml:"Delimiter,omitempty"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	Contents              []objectEntry  `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

type objectEntry struct {
	Key          xmlKey `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
	Owner        *owner `xml:"Owner,omitempty"`
}

type commonPrefix struct {
	Prefix xmlKey `xml:"Prefix"`
}

// encodeKey applies encoding-type=url as S3 does, the same for every
// listing: url.QueryEscape (a space becomes '+', '+' becomes %2B) but for
// '/' and '*', which stay as they are, and '~', which is escaped.
// Clients decode it with a query unescape.
func encodeKey(s string, enabled bool) xmlKey {
	if !enabled {
		return xmlKey(s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '/', c == '*':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return xmlKey(b.String())
}

// xmlKey is a key (or prefix, marker, delimiter) in a listing's XML.
// encoding/xml writes a character that XML 1.0 cannot hold (U+0000 to
// U+001F but tab, line feed and carriage return; U+FFFE, U+FFFF) as
// U+FFFD, which silently renamed the key: a GET of the listed name was a
// 404 (DIFF26 D14). S3 and MinIO write it as a character reference
// (&#x1;): not well-formed XML 1.0 either, but the key's own name. A
// client reading it back either gets the key (a lenient parser) or fails
// the listing (Go's encoding/xml, so aws-sdk-go-v2, which sends no
// encoding type: "illegal character code U+0001"), never another key;
// encoding-type=url (boto3, the AWS CLI and minio-go always send it)
// lists any key.
type xmlKey string

// MarshalXML writes k as encoding/xml does, but for the characters above.
func (k xmlKey) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	s := string(k)
	if xmlText(s) {
		return e.EncodeElement(s, start)
	}
	var b strings.Builder
	for _, r := range s { // an invalid byte is U+FFFD, as encoding/xml writes it
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&#34;")
		case r == '\'':
			b.WriteString("&#39;")
		case r < 0x20 || r == 0xFFFE || r == 0xFFFF:
			fmt.Fprintf(&b, "&#x%X;", r) // tab, LF and CR too, as encoding/xml
		default:
			b.WriteRune(r)
		}
	}
	return e.EncodeElement(struct {
		Text string `xml:",innerxml"`
	}{b.String()}, start)
}

// xmlText reports whether encoding/xml writes s as it is: valid UTF-8
// holding only characters XML 1.0 allows.
func xmlText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				return false
			}
			i += n - 1
			continue
		}
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// listParams are the parameters common to the object listings.
type listParams struct {
	maxKeys   int
	urlEnc    bool
	enc       string
	prefix    string
	delimiter string
}

func (op *operation) listParams() (listParams, error) {
	p := listParams{maxKeys: 1000}
	if v, ok := op.query("max-keys"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, ErrInvalidArgument
		}
		p.maxKeys = min(n, 1000)
	}
	p.enc, _ = op.query("encoding-type")
	if p.enc != "" && p.enc != "url" {
		return p, ErrInvalidArgument
	}
	p.urlEnc = p.enc == "url"
	p.prefix, _ = op.query("prefix")
	p.delimiter, _ = op.query("delimiter")
	return p, nil
}

// list returns a page of the listing after after, or an empty page of an
// existing container for max-keys=0.
func (op *operation) list(p listParams, after string) (engine.ListResult, error) {
	if p.maxKeys == 0 {
		_, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket)
		return engine.ListResult{}, err
	}
	return op.s.cfg.Engine.List(op.ctx, op.tenant, op.bucket, engine.ListOptions{Prefix: p.prefix, Delimiter: p.delimiter, After: after, Limit: p.maxKeys})
}

func (op *operation) listObjects(v2 bool) error {
	q := func(name string) string { v, _ := op.query(name); return v }
	p, err := op.listParams()
	if err != nil {
		return err
	}
	urlEnc := p.urlEnc
	res := listBucketResult{Xmlns: s3Namespace, Name: op.bucket, MaxKeys: p.maxKeys, EncodingType: p.enc,
		Prefix: encodeKey(p.prefix, urlEnc), Delimiter: encodeKey(p.delimiter, urlEnc)}
	fetchOwner := !v2
	var after string
	if v2 {
		res.StartAfter = encodeKey(q("start-after"), urlEnc)
		after = q("start-after")
		if tok, ok := op.query("continuation-token"); ok {
			a, err := decodeContinuation(tok)
			if err != nil {
				return err
			}
			res.ContinuationToken = tok
			after = max(after, string(a))
		}
		fetchOwner = q("fetch-owner") == "true"
	} else {
		m := q("marker")
		em := encodeKey(m, urlEnc)
		res.Marker = &em
		after = m
	}
	page, err := op.list(p, after)
	if err != nil {
		return err
	}
	for _, a := range page.Artifacts {
		e := objectEntry{Key: encodeKey(a.Key, urlEnc), LastModified: isoTime(a.Modified), ETag: `"` + a.ETag + `"`, Size: a.Size, StorageClass: "STANDARD"}
		if fetchOwner {
			o := op.owner()
			e.Owner = &o
		}
		res.Contents = append(res.Contents, e)
	}
	for _, p := range page.Prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(p, urlEnc)})
	}
	res.IsTruncated = page.Truncated
	if page.Truncated {
		if v2 {
			res.NextContinuationToken = encodeContinuation(page.Next)
		} else {
			res.NextMarker = encodeKey(page.Next, urlEnc)
		}
	}
	if v2 {
		n := len(res.Contents) + len(res.CommonPrefixes)
		res.KeyCount = &n
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

// A ListObjectsV2 continuation token is the key to list after and a
// CRC-32C of it, each base64url-encoded, joined by a dot: a token this
// server did not issue (garbage, or cut short) is refused with
// InvalidArgument, as S3 refuses it, rather than list from wherever its
// bytes happen to point. A node from before this format refuses such a
// token (the dot is no base64) rather than misread it mid-listing during
// a rolling upgrade (review 26s R6). It is no secret: start-after lists
// from any key too.
var continuationTable = crc32.MakeTable(crc32.Castagnoli)

func encodeContinuation(after string) string {
	sum := binary.BigEndian.AppendUint32(nil, crc32.Checksum([]byte(after), continuationTable))
	return base64.RawURLEncoding.EncodeToString([]byte(after)) + "." + base64.RawURLEncoding.EncodeToString(sum)
}

func decodeContinuation(tok string) (string, error) {
	bad := withMessage(ErrInvalidArgument, "The continuation token provided is incorrect.")
	k, s, ok := strings.Cut(tok, ".")
	if !ok {
		return "", bad
	}
	key, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return "", bad
	}
	sum, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(sum) != 4 || binary.BigEndian.Uint32(sum) != crc32.Checksum(key, continuationTable) {
		return "", bad
	}
	return string(key), nil
}
