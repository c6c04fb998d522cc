package s3

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (op *operation) createUpload() error {
	h := &op.r.fctx.Request.Header
	if err := op.drainBody(0); err != nil {
		return err
	}
	tags, err := op.headerTags()
	if err != nil {
		return err
	}
	opts := engine.PutOptions{ContentType: string(h.ContentType()), Metadata: withTags(op.objectMetadata(), tags)}
	if opts.Metadata, err = op.uploadLock(opts.Metadata); err != nil {
		return err
	}
	if opts.ContentType == "" {
		opts.ContentType = "binary/octet-stream"
	}
	decl, err := checksumDeclaration(func(name string) string { return string(h.Peek(name)) })
	if err != nil {
		return err
	}
	if decl != nil {
		if opts.Metadata == nil {
			opts.Metadata = map[string]string{}
		}
		for k, v := range decl {
			opts.Metadata[k] = v
			op.r.fctx.Response.Header.Set(k, strings.ToUpper(v))
		}
	}
	// An upload in progress counts as an artifact (engine.CreateUpload).
	if _, err := op.admit(0, 1); err != nil {
		return err
	}
	id, err := op.s.cfg.Engine.CreateUpload(op.ctx, op.tenant, op.bucket, op.key, opts)
	if err != nil {
		return err
	}
	writeXML(op.r.fctx, http.StatusOK, initiateResult{Xmlns: s3Namespace, Bucket: op.bucket, Key: op.key, UploadID: id})
	return nil
}

func (op *operation) partNumber() (int, error) {
	v, _ := op.query("partNumber")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > engine.MaxPartNum {
		return 0, errPartNumberRange
	}
	return n, nil
}

type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	Xmlns        string   `xml:"xmlns,attr"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag"`
	checksumValues
}

// partCopyChecksum computes, as an UploadPartCopy streams, the checksum
// of the copied bytes with the upload's algorithm, as S3 does: the part
// is stored with it, as an UploadPart's is, so the completed object has
// its checksum (boto3's managed copy above its multipart threshold made
// one without). The algorithm is known once PutPart has looked the
// upload up (CheckUpload), before the first byte is read.
type partCopyChecksum struct {
	name string    // metadata entry, x-amz-checksum-<alg>; "" none
	h    hash.Hash // nil: the upload has no checksum
}

func (c *partCopyChecksum) Write(p []byte) (int, error) {
	if c.h != nil {
		c.h.Write(p)
	}
	return len(p), nil
}

// wire sets opts to compute the checksum of the part PutPart stores.
func (c *partCopyChecksum) wire(opts *engine.PutOptions, res *copyPartResult) {
	opts.CheckUpload = func(meta map[string]string) error {
		alg := strings.ToLower(meta[checksumAlgorithmHeader])
		if alg == "" {
			return nil
		}
		h, err := sigv4.NewChecksum(alg)
		if err != nil {
			return fmt.Errorf("s3: upload checksum algorithm %q: %w", alg, err)
		}
		c.name, c.h = checksumPrefix+alg, h
		return nil
	}
	opts.AfterBody = func() (map[string]string, error) {
		if c.h == nil {
			return nil, nil
		}
		v := base64.StdEncoding.EncodeToString(c.h.Sum(nil))
		res.set(c.name, v)
		return map[string]string{c.name: v}, nil
	}
}

func (op *operation) uploadPart(uploadID string, copySource bool) error {
	n, err := op.partNumber()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), op.s.cfg.BodyTimeout)
	defer cancel()
	if copySource {
		return op.uploadPartCopy(ctx, uploadID, n)
	}
	u, err := op.uploadBody(engine.MaxPartSize, 0)
	if err != nil {
		return err
	}
	u.opts.CheckUpload = func(meta map[string]string) error {
		return partChecksumAllowed(meta[checksumAlgorithmHeader], op.auth.Checksum)
	}
	info, err := op.s.cfg.Engine.PutPart(ctx, op.tenant, op.bucket, op.key, uploadID, n, u.body, u.opts)
	if err != nil {
		return u.quotaErr(err)
	}
	op.uploaded(info.ETag, u)
	return nil
}

// copySource parses x-amz-copy-source into a bucket and key.
func (op *operation) copySource() (bucket, key string, err error) {
	src := string(op.r.fctx.Request.Header.Peek("x-amz-copy-source"))
	src, query, _ := strings.Cut(src, "?")
	for _, p := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(p, "versionId="); ok && !engine.ValidVersionID(v) {
			return "", "", ErrInvalidVersion // wherever it is in the query
		}
	}
	src, err = unescapePath(strings.TrimPrefix(src, "/"))
	if err != nil {
		return "", "", err
	}
	bucket, key, ok := strings.Cut(src, "/")
	if !ok || key == "" || bucket == "" {
		return "", "", ErrInvalidArgument
	}
	return bucket, key, nil
}

func (op *operation) uploadPartCopy(ctx context.Context, uploadID string, n int) error {
	srcBucket, srcKey, err := op.copySource()
	if err != nil {
		return err
	}
	if err := op.drainBody(0); err != nil {
		return err
	}
	src, err := op.s.cfg.Engine.OpenVersion(ctx, op.tenant, srcBucket, srcKey, op.copySourceVersion())
	if err != nil {
		return err
	}
	get := func(name string) string { return string(op.r.fctx.Request.Header.Peek("x-amz-copy-source-" + name)) }
	if preconditions(get, src.Info.ETag, src.Info.Modified) != 0 {
		return ErrPreconditionFailed
	}
	off, length := int64(0), src.Info.Size
	if v := string(op.r.fctx.Request.Header.Peek("x-amz-copy-source-range")); v != "" {
		// "bytes=first-last" within the source, no clamping; anything
		// else is a bad argument (400 InvalidArgument, as S3 answers),
		// not a range the object cannot satisfy (416).
		bad := withMessage(ErrInvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, within the source object.")
		var ok bool
		off, length, ok, err = parseRange(v, src.Info.Size)
		if err != nil || !ok || strings.HasPrefix(v, "bytes=-") || strings.HasSuffix(v, "-") {
			return bad
		}
		if _, last, _ := strings.Cut(strings.TrimPrefix(v, "bytes="), "-"); last != "" {
			if b, perr := strconv.ParseInt(last, 10, 64); perr != nil || b >= src.Info.Size {
				return bad
			}
		}
	}
	// The copied bytes are new bytes of the tenant's, as an upload's are.
	if _, err := op.admit(length, 0); err != nil {
		return err
	}
	r := src.Reader(ctx, off, length)
	defer r.Close()
	res := copyPartResult{Xmlns: s3Namespace}
	var sum partCopyChecksum
	opts := engine.PutOptions{Size: length}
	sum.wire(&opts, &res)
	info, err := op.s.cfg.Engine.PutPart(ctx, op.tenant, op.bucket, op.key, uploadID, n, io.TeeReader(r, &sum), opts)
	if err != nil {
		return err
	}
	res.LastModified, res.ETag = isoTime(info.Modified), `"`+info.ETag+`"`
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

// mpObjectSize returns CompleteMultipartUpload's x-amz-mp-object-size,
// the size the client expects the object to have, or -1 without one.
func mpObjectSize(h *fasthttp.RequestHeader) (int64, error) {
	v := h.Peek("x-amz-mp-object-size")
	if v == nil {
		return -1, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return 0, withMessage(ErrInvalidArgument, "x-amz-mp-object-size must be a non-negative integer.")
	}
	return n, nil
}

type completeRequest struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber        int    `xml:"PartNumber"`
		ETag              string `xml:"ETag"`
		ChecksumCRC32     string `xml:"ChecksumCRC32"`
		ChecksumCRC32C    string `xml:"ChecksumCRC32C"`
		ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME"`
		ChecksumSHA1      string `xml:"ChecksumSHA1"`
		ChecksumSHA256    string `xml:"ChecksumSHA256"`
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
	checksumValues
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

func (op *operation) completeUpload(uploadID string) error {
	// An x-amz-checksum-* header of CompleteMultipartUpload is the whole
	// object's checksum (checked against the one the parts give), not the
	// XML body's: the body is read without it.
	var whole map[string]string
	if op.auth.Checksum != "" && op.auth.ChecksumValue != "" {
		whole = map[string]string{checksumPrefix + strings.ToLower(op.auth.Checksum): op.auth.ChecksumValue}
		op.auth.Checksum, op.auth.ChecksumValue = "", ""
	}
	var req completeRequest
	if err := op.readXMLBody(&req); err != nil {
		return err
	}
	if len(req.Parts) == 0 {
		return withMessage(ErrMalformedXML, "The XML you provided was not well-formed or did not validate against our published schema: CompleteMultipartUpload lists no Part.")
	}
	size, err := mpObjectSize(&op.r.fctx.Request.Header)
	if err != nil {
		return err
	}
	// The parts' bytes were admitted as they were uploaded, and the
	// artifact they become when the upload began.
	parts := make([]engine.CompletePart, len(req.Parts))
	listed := make([]map[string]string, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = engine.CompletePart{Number: p.PartNumber, ETag: p.ETag}
		listed[i] = map[string]string{
			checksumPrefix + "crc32": p.ChecksumCRC32, checksumPrefix + "crc32c": p.ChecksumCRC32C,
			checksumPrefix + "crc64nvme": p.ChecksumCRC64NVME, checksumPrefix + "sha1": p.ChecksumSHA1,
			checksumPrefix + "sha256": p.ChecksumSHA256,
		}
	}
	var sum map[string]string
	finish := func(up engine.Upload, chosen []engine.PartInfo) (map[string]string, error) {
		var err error
		if size >= 0 {
			var total int64
			for _, p := range chosen {
				total += p.Size
			}
			if total != size {
				return nil, withMessage(ErrInvalidRequest, fmt.Sprintf("The declared object size (x-amz-mp-object-size %d) does not match the size of the parts (%d).", size, total))
			}
		}
		if sum, err = completeChecksum(up, chosen, listed); err != nil {
			return nil, err
		}
		return sum, checkWholeChecksum(up, sum, whole, string(op.r.fctx.Request.Header.Peek(checksumTypeHeader)))
	}
	cond, err := op.writeCondition(false)
	if err != nil {
		return err
	}
	state, err := op.versioning()
	if err != nil {
		return err
	}
	var info engine.ArtifactInfo
	if cond != nil {
		info, err = op.s.cfg.Engine.CompleteUploadIf(op.ctx, op.tenant, op.bucket, op.key, uploadID, parts, finish, cond, state)
	} else {
		info, err = op.s.cfg.Engine.CompleteUploadVersion(op.ctx, op.tenant, op.bucket, op.key, uploadID, parts, finish, state)
	}
	if err != nil {
		return err
	}
	if sum == nil {
		// A retried Complete (the upload was completed before) did not
		// compute the checksum again: answer the stored one, and hold
		// what this request declares to it as the first call's finish
		// did (review 26s R2).
		sum = map[string]string{}
		for k, v := range info.Metadata {
			if strings.HasPrefix(k, checksumPrefix) {
				sum[k] = v
			}
		}
		if info.Retried {
			if size >= 0 && size != info.Size {
				return withMessage(ErrInvalidRequest, fmt.Sprintf("The declared object size (x-amz-mp-object-size %d) does not match the object's (%d).", size, info.Size))
			}
			if err := checkWholeChecksum(engine.Upload{Metadata: info.Metadata}, sum, whole, string(op.r.fctx.Request.Header.Peek(checksumTypeHeader))); err != nil {
				return err
			}
		}
	}
	op.wrote(info)
	op.versionHeader(info.VersionID)
	op.expirationHeader(info)
	if err := op.completedRetention(info); err != nil {
		return err
	}
	res := completeResult{
		Xmlns: s3Namespace, Location: fmt.Sprintf("/%s/%s", op.bucket, op.key),
		Bucket: op.bucket, Key: op.key, ETag: `"` + info.ETag + `"`,
	}
	for k, v := range sum {
		if engine.IsReservedMetadata(k) {
			continue
		}
		res.set(k, v)
		res.ChecksumType = info.Metadata[checksumTypeHeader]
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

func (op *operation) abortUpload(uploadID string) error {
	if err := op.s.cfg.Engine.AbortUpload(op.ctx, op.tenant, op.bucket, op.key, uploadID); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

type listPartsResult struct {
	XMLName              xml.Name    `xml:"ListPartsResult"`
	Xmlns                string      `xml:"xmlns,attr"`
	Bucket               string      `xml:"Bucket"`
	Key                  string      `xml:"Key"`
	UploadID             string      `xml:"UploadId"`
	Initiator            owner       `xml:"Initiator"`
	Owner                owner       `xml:"Owner"`
	StorageClass         string      `xml:"StorageClass"`
	PartNumberMarker     int         `xml:"PartNumberMarker"`
	NextPartNumberMarker int         `xml:"NextPartNumberMarker"`
	MaxParts             int         `xml:"MaxParts"`
	IsTruncated          bool        `xml:"IsTruncated"`
	ChecksumAlgorithm    string      `xml:"ChecksumAlgorithm,omitempty"`
	ChecksumType         string      `xml:"ChecksumType,omitempty"`
	Parts                []partEntry `xml:"Part"`
}

type partEntry struct {
	PartNumber        int    `xml:"PartNumber"`
	LastModified      string `xml:"LastModified"`
	ETag              string `xml:"ETag"`
	Size              int64  `xml:"Size"`
	ChecksumCRC32     string `xml:"ChecksumCRC32,omitempty"`
	ChecksumCRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	ChecksumSHA1      string `xml:"ChecksumSHA1,omitempty"`
	ChecksumSHA256    string `xml:"ChecksumSHA256,omitempty"`
}

func (op *operation) intQuery(name string, def, maxVal int) (int, error) {
	v, ok := op.query(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, ErrInvalidArgument
	}
	return min(n, maxVal), nil
}

func (op *operation) listParts(uploadID string) error {
	maxParts, err := op.intQuery("max-parts", 1000, 1000)
	if err != nil {
		return err
	}
	marker, err := op.intQuery("part-number-marker", 0, engine.MaxPartNum)
	if err != nil {
		return err
	}
	up, parts, truncated, err := op.s.cfg.Engine.ListUploadParts(op.ctx, op.tenant, op.bucket, op.key, uploadID, marker, max(maxParts, 1))
	if err != nil {
		return err
	}
	if maxParts == 0 {
		parts, truncated = nil, len(parts) > 0
	}
	// The upload's checksum algorithm and type, as S3 answers them
	// (DIFF26 D9).
	res := listPartsResult{Xmlns: s3Namespace, Bucket: op.bucket, Key: op.key, UploadID: uploadID,
		Initiator: op.owner(), Owner: op.owner(), StorageClass: "STANDARD",
		PartNumberMarker: marker, MaxParts: maxParts, IsTruncated: truncated,
		ChecksumAlgorithm: strings.ToUpper(up.Metadata[checksumAlgorithmHeader]), ChecksumType: up.Metadata[checksumTypeHeader]}
	for _, p := range parts {
		// The part's checksum, as stored from its upload: a transfer
		// manager resuming an upload rebuilds Complete's list from these
		// (DIFF26 D9).
		m := p.Metadata
		res.Parts = append(res.Parts, partEntry{PartNumber: p.Number, LastModified: isoTime(p.Modified), ETag: `"` + p.ETag + `"`, Size: p.Size,
			ChecksumCRC32: m[checksumPrefix+"crc32"], ChecksumCRC32C: m[checksumPrefix+"crc32c"], ChecksumCRC64NVME: m[checksumPrefix+"crc64nvme"],
			ChecksumSHA1: m[checksumPrefix+"sha1"], ChecksumSHA256: m[checksumPrefix+"sha256"]})
		res.NextPartNumberMarker = p.Number
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	Xmlns              string         `xml:"xmlns,attr"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          xmlKey         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      xmlKey         `xml:"NextKeyMarker,omitempty"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker,omitempty"`
	EncodingType       string         `xml:"EncodingType,omitempty"`
	Delimiter          xmlKey         `xml:"Delimiter,omitempty"`
	Prefix             xmlKey         `xml:"Prefix"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Uploads            []uploadEntry  `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

type uploadEntry struct {
	Key          xmlKey `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	Initiator    owner  `xml:"Initiator"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
	Initiated    string `xml:"Initiated"`
}

func (op *operation) listUploads() error {
	maxUploads, err := op.intQuery("max-uploads", 1000, 1000)
	if err != nil {
		return err
	}
	p, err := op.listParams()
	if err != nil {
		return err
	}
	keyMarker, _ := op.query("key-marker")
	idMarker, _ := op.query("upload-id-marker")
	page, err := op.uploadPage(p.prefix, p.delimiter, keyMarker, idMarker, maxUploads)
	if err != nil {
		return err
	}
	res := listUploadsResult{Xmlns: s3Namespace, Bucket: op.bucket, KeyMarker: encodeKey(keyMarker, p.urlEnc), UploadIDMarker: idMarker,
		EncodingType: p.enc, Delimiter: encodeKey(p.delimiter, p.urlEnc), Prefix: encodeKey(p.prefix, p.urlEnc),
		MaxUploads: maxUploads, IsTruncated: page.truncated}
	for _, u := range page.uploads {
		res.Uploads = append(res.Uploads, uploadEntry{Key: encodeKey(u.Key, p.urlEnc), UploadID: u.ID, Initiator: op.owner(), Owner: op.owner(), StorageClass: "STANDARD", Initiated: isoTime(u.Initiated)})
	}
	for _, pre := range page.prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(pre, p.urlEnc)})
	}
	if page.truncated {
		res.NextKeyMarker, res.NextUploadIDMarker = encodeKey(page.nextKey, p.urlEnc), page.nextID
	}
	writeXML(op.r.fctx, http.StatusOK, res)
	return nil
}

// uploadPage is one page of ListMultipartUploads: up to max entries, each
// an upload or a common prefix (the key up to and including the first
// delimiter after prefix), in key order. A key marker that is itself a
// common prefix (it ends with the delimiter) skips every upload under it,
// which is how the next page after a common prefix starts.
type uploadPage struct {
	uploads   []engine.Upload
	prefixes  []string
	truncated bool
	nextKey   string
	nextID    string
}

// maxUploadScan bounds the engine pages one ListMultipartUploads request
// reads while folding uploads into common prefixes; a page cut there is
// truncated and resumes at its markers.
const maxUploadScan = 20

func (op *operation) uploadPage(prefix, delim, keyMarker, idMarker string, max int) (uploadPage, error) {
	var page uploadPage
	skip := ""
	if delim != "" && strings.HasPrefix(keyMarker, prefix) && strings.HasSuffix(keyMarker, delim) && idMarker == "" {
		skip = keyMarker
	}
	after, afterID := keyMarker, idMarker
	for range maxUploadScan {
		ups, more, err := op.s.cfg.Engine.ListUploads(op.ctx, op.tenant, op.bucket, prefix, after, afterID, 1000)
		if err != nil {
			return page, err
		}
		for _, u := range ups {
			after, afterID = u.Key, u.ID
			if skip != "" && strings.HasPrefix(u.Key, skip) {
				continue
			}
			if len(page.uploads)+len(page.prefixes) == max {
				page.truncated = true
				return page, nil
			}
			if i := strings.Index(u.Key[len(prefix):], delim); delim != "" && i >= 0 {
				skip = u.Key[:len(prefix)+i+len(delim)]
				page.prefixes = append(page.prefixes, skip)
				page.nextKey, page.nextID = skip, ""
				continue
			}
			page.uploads = append(page.uploads, u)
			page.nextKey, page.nextID = u.Key, u.ID
		}
		if !more {
			return page, nil
		}
	}
	// Scanned the bound: resume where the scan stopped.
	page.truncated = true
	if skip != "" && strings.HasPrefix(after, skip) {
		page.nextKey, page.nextID = skip, ""
	} else {
		page.nextKey, page.nextID = after, afterID
	}
	return page, nil
}
