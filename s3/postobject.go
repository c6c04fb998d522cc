package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaultaire/vaultaire/engine"
	"github.com/vaultaire/vaultaire/s3/sigv4"
)

// POST Object: browser uploads with an HTML form (multipart/form-data)
// authenticated by a SigV4-signed policy document instead of headers.
//
// The request is routed from its headers but authenticated from its form:
// the fields before the file part (at most maxPostFields bytes of them,
// each at most maxPostField) are read first, then the policy's signature
// (x-amz-signature over the base64 policy, with the key of
// x-amz-credential's scope), its expiration and every condition are
// checked, and only then is the file part streamed into the engine,
// never buffered whole. Every form field but policy, x-amz-signature,
// file and x-ignore-* must be allowed by a condition, as AWS requires.
// content-length-range is enforced while the file streams (EntityTooLarge)
// and before the object becomes visible (EntityTooSmall). Fields after
// the file are ignored. Anonymous forms (no policy) are refused: there are
// no public-write buckets.

const postObjectRoute = "PostObject"

// Limits of a form's fields.
const (
	maxPostFields = 64 << 10 // bytes of every field before the file
	maxPostField  = 20 << 10 // bytes of one field
	maxPostTrail  = 64 << 10 // bytes read after the file to reuse the connection
	// maxPostHead bounds the bytes read before the file part, part
	// headers and boundaries included (a part's header could otherwise
	// be megabytes).
	maxPostHead = 2 * maxPostFields
)

// headLimit fails the read of a form's body with errPostFields once more
// than maxPostHead bytes were read before the file part (file unset), and
// with ErrRequestTimeout once it is still reading them at until: the
// fields come before the form is authenticated, so they get no more time
// than a request's headers (Config.HeaderTimeout), however steadily they
// trickle in (ATTACK24 F6: 64 KiB at the minimum body rate held a
// connection for a minute).
type headLimit struct {
	r     io.Reader
	left  int64
	until time.Time
	file  bool // the file part was reached: no limit
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.file {
		return l.r.Read(p)
	}
	if l.left <= 0 {
		return 0, errPostFields
	}
	if time.Now().After(l.until) {
		return 0, fmt.Errorf("s3: form fields not read within the header timeout: %w", ErrRequestTimeout)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// postForm matches browser form uploads: a POST on a bucket without a
// query (a subresource).
func postForm(t *target) bool { return t.query.Len() == 0 }

func policyDenied(msg string) error {
	return withMessage(ErrAccessDenied, "Invalid according to Policy: "+msg)
}

// postPolicy is a decoded policy document.
type postPolicy struct {
	Expiration string            `json:"expiration"`
	Conditions []json.RawMessage `json:"conditions"`
}

// policyCondition is one condition: a field (lower case, without "$")
// compared by op ("eq", "starts-with"), or content-length-range.
type policyCondition struct {
	op, field, value string
	min, max         int64
}

func parsePolicy(b64 string, now time.Time) ([]policyCondition, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid Base64.")
	}
	var p postPolicy
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&p); err != nil {
		return nil, errPostPolicy
	}
	exp, err := time.Parse(time.RFC3339Nano, p.Expiration)
	if err != nil {
		return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid 'expiration' value.")
	}
	if !now.Before(exp) {
		return nil, errPostExpired
	}
	var out []policyCondition
	for _, c := range p.Conditions {
		var obj map[string]any
		if json.Unmarshal(c, &obj) == nil {
			if len(obj) != 1 {
				return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.")
			}
			for k, v := range obj {
				s, ok := v.(string)
				if !ok {
					return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid Simple-Condition: value must be a string.")
				}
				out = append(out, policyCondition{op: "eq", field: strings.ToLower(strings.TrimPrefix(k, "$")), value: s})
			}
			continue
		}
		var arr []any
		if json.Unmarshal(c, &arr) != nil || len(arr) != 3 {
			return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid condition: want an object or a three-element array.")
		}
		op, _ := arr[0].(string)
		switch op = strings.ToLower(op); op {
		case "eq", "starts-with":
			f, ok1 := arr[1].(string)
			v, ok2 := arr[2].(string)
			if !ok1 || !ok2 || !strings.HasPrefix(f, "$") {
				return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid "+op+" condition.")
			}
			out = append(out, policyCondition{op: op, field: strings.ToLower(f[1:]), value: v})
		case "content-length-range":
			lo, ok1 := arr[1].(float64)
			hi, ok2 := arr[2].(float64)
			if !ok1 || !ok2 || lo < 0 || hi < lo {
				return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid content-length-range condition.")
			}
			out = append(out, policyCondition{op: op, min: int64(lo), max: int64(hi)})
		default:
			return nil, withMessage(errPostPolicy, "Invalid Policy: Invalid condition type "+strconv.Quote(op)+".")
		}
	}
	return out, nil
}

// refusedField returns the error of a form field asking for what this
// server does not do, as headerRules and checkACLHeaders refuse the same
// as headers: silently ignoring it would mislead the uploader.
func refusedField(fields map[string]string) error {
	for name, v := range fields {
		switch {
		case strings.HasPrefix(name, "x-amz-server-side-encryption"):
			return errSSENotImplemented
		case strings.HasPrefix(name, "x-amz-object-lock-"):
			return errObjectLockNotImplemented
		case name == "x-amz-website-redirect-location" && v != "":
			return ErrNotImplemented
		case name == "x-amz-storage-class" && !knownStorageClass(v):
			return errInvalidStorageClass
		case name == "acl" && !ownerOnlyACL(v), strings.HasPrefix(name, "x-amz-grant-"):
			return errACLNotSupported
		}
	}
	return nil
}

// headerFields refuses form fields that are stored as response headers
// (Content-Type, the other stored headers, x-amz-meta-*) unless each is a
// valid header: a token for a name, no control character but HTAB in a
// value. A client's own headers are held to that by the HTTP parser;
// form fields are not, and a NUL in a stored Content-Type would make
// every later GET and HEAD of the object a response clients refuse.
func headerFields(fields map[string]string) error {
	for name, v := range fields {
		if name != "content-type" && !slices.Contains(storedHeaders, name) && !strings.HasPrefix(name, metaPrefix) {
			continue
		}
		if !validHeaderName(name) || !validHeaderValue(v) {
			return withMessage(ErrInvalidArgument, "Form field "+strconv.Quote(name)+" is not a valid HTTP header.")
		}
	}
	return nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has no control character but HTAB
// (RFC 9110 5.5: field-vchar, obs-text, SP and HTAB).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// postChecksum returns the flexible checksum a form declares (its
// x-amz-checksum-ALG field, the algorithm possibly named by
// x-amz-checksum-algorithm): the metadata name, the value and a hash to
// compute over the file. name is "" if the form declares none.
func postChecksum(fields map[string]string) (name, want string, h hash.Hash, err error) {
	alg := strings.ToLower(fields[checksumAlgorithmHeader])
	for f, v := range fields {
		if a, ok := strings.CutPrefix(f, checksumPrefix); ok && f != checksumAlgorithmHeader && f != checksumTypeHeader {
			if name != "" || alg != "" && a != alg {
				return "", "", nil, ErrInvalidRequest
			}
			name, want = f, v
		}
	}
	if name == "" {
		if alg != "" {
			return "", "", nil, withMessage(ErrInvalidRequest, "x-amz-checksum-algorithm names no x-amz-checksum-"+alg+" field.")
		}
		return "", "", nil, nil
	}
	if h, err = sigv4.NewChecksum(name); err != nil {
		return "", "", nil, ErrInvalidRequest
	}
	return name, want, h, nil
}

// exempt reports form fields no condition needs to name.
func exempt(field string) bool {
	switch field {
	case "policy", "x-amz-signature", "file":
		return true
	}
	return strings.HasPrefix(field, "x-ignore-")
}

// checkConditions checks the form's fields (lower-case names; bucket is
// the request's) against the policy, and returns the content length range.
func checkConditions(conds []policyCondition, fields map[string]string) (lo, hi int64, err error) {
	lo, hi = 0, MaxPutSize
	covered := map[string]bool{}
	for _, c := range conds {
		if c.op == "content-length-range" {
			lo, hi = max(lo, c.min), min(hi, c.max)
			continue
		}
		v, ok := fields[c.field]
		match := ok || c.op == "starts-with" && c.value == ""
		switch c.op {
		case "eq":
			match = match && v == c.value
		case "starts-with":
			if c.field == "content-type" && match {
				// Each of a comma-separated list must start with the value.
				for t := range strings.SplitSeq(v, ",") {
					match = match && strings.HasPrefix(strings.TrimSpace(t), c.value)
				}
			} else {
				match = match && strings.HasPrefix(v, c.value)
			}
		}
		if !match {
			return 0, 0, policyDenied(fmt.Sprintf("Policy Condition failed: [%q, \"$%s\", %q]", c.op, c.field, c.value))
		}
		covered[c.field] = true
	}
	for f := range fields {
		if !covered[f] && !exempt(f) && f != "bucket" {
			return 0, 0, policyDenied("Extra input fields: " + f)
		}
	}
	return lo, hi, nil
}

// readPostFields reads the form's fields up to the file part, which it
// returns with its filename.
// fieldsErr is the error of a failed read of a form's fields: too many
// fields, a client too slow (RequestTimeout) or gone (IncompleteBody) as
// such, anything else a malformed form.
func fieldsErr(err error) error {
	switch {
	case errors.Is(err, errPostFields):
		return errPostFields
	case errors.Is(err, ErrRequestTimeout), errors.Is(err, ErrIncompleteBody):
		return err
	}
	return fmt.Errorf("%w: %w", errMalformedPOST, err)
}

func readPostFields(mr *multipart.Reader) (map[string]string, *multipart.Part, error) {
	fields := map[string]string{}
	total := 0
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return nil, nil, errPostNoFile
		}
		if err != nil {
			return nil, nil, fieldsErr(err)
		}
		name := strings.ToLower(p.FormName())
		if name == "file" {
			return fields, p, nil
		}
		v, err := io.ReadAll(io.LimitReader(p, maxPostField+1))
		if err != nil {
			return nil, nil, fieldsErr(err)
		}
		if total += len(name) + len(v); len(v) > maxPostField || total > maxPostFields {
			return nil, nil, errPostFields
		}
		if _, dup := fields[name]; dup || name == "" {
			return nil, nil, withMessage(ErrInvalidArgument, "Form field "+strconv.Quote(name)+" is empty or repeated.")
		}
		fields[name] = string(v)
	}
}

// authenticatePost checks the form's signature and returns the tenant.
func (op *operation) authenticatePost(fields map[string]string) (string, error) {
	policy, sig := fields["policy"], fields["x-amz-signature"]
	if policy == "" && sig == "" {
		return "", errPostAnonymous
	}
	if fields["awsaccesskeyid"] != "" {
		return "", withMessage(ErrNotImplemented, "POST policies signed with Signature Version 2 are not supported: sign with AWS4-HMAC-SHA256.")
	}
	cred, date := fields["x-amz-credential"], fields["x-amz-date"]
	if policy == "" || sig == "" || cred == "" || date == "" || fields["x-amz-algorithm"] == "" {
		return "", errPostFieldAbsent
	}
	if fields["x-amz-algorithm"] != sigv4.PostAlgorithm {
		return "", errPostAlgorithm
	}
	if !strings.HasPrefix(date, sigv4.CredentialDate(cred)) || sigv4.CredentialDate(cred) == "" {
		return "", withMessage(ErrAuthQueryMalformed, "x-amz-date must be of the credential's date.")
	}
	var tenant string
	s := op.s
	creds := credentials(func(ctx context.Context, accessKey string) (string, error) {
		if accessKey == s.cfg.Root.AccessKey {
			tenant = s.cfg.RootTenant
			return s.cfg.Root.Secret, nil
		}
		t, secret, err := s.cfg.Keys.LookupKey(ctx, accessKey)
		tenant = t
		return secret, err
	})
	if _, err := sigv4.VerifyPolicy(op.ctx, cred, policy, sig, creds); err != nil {
		return "", err
	}
	return tenant, nil
}

type postResponse struct {
	XMLName  xml.Name `xml:"PostResponse"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (op *operation) postObject() error {
	h := &op.r.fctx.Request.Header
	mt, params, err := mime.ParseMediaType(string(h.ContentType()))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return errPostNotForm
	}
	body := op.r.bodyStream(op.s)
	head := &headLimit{r: body, left: maxPostHead, until: time.Now().Add(op.s.cfg.HeaderTimeout)}
	rr, _ := body.(*rateReader)
	if rr != nil {
		rr.until = head.until // a read that stalls ends then too (REVIEW24 R1)
	}
	mr := multipart.NewReader(head, params["boundary"])
	fields, file, err := readPostFields(mr)
	if err != nil {
		return err
	}
	head.file = true
	if rr != nil {
		rr.until = time.Time{}
	}
	tenant, err := op.authenticatePost(fields)
	if err != nil {
		return err
	}
	op.tenant = tenant
	op.r.ev.Tenant = tenant
	if s := op.s.cfg.Limiter; s != nil {
		if wait, ok := s.Allow(op.ctx, tenant); !ok {
			return slowDown(op.r, max(wait, time.Nanosecond))
		}
	}
	op.corsResponse()
	if err := refusedField(fields); err != nil {
		return err
	}
	conds, err := parsePolicy(fields["policy"], op.s.cfg.Now())
	if err != nil {
		return err
	}
	key, ok := fields["key"]
	if !ok || key == "" {
		return errPostNoKey
	}
	key = strings.ReplaceAll(key, "${filename}", file.FileName())
	checked := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		checked[k] = v
	}
	checked["bucket"], checked["key"] = op.bucket, key
	lo, hi, err := checkConditions(conds, checked)
	if err != nil {
		return err
	}
	if len(key) > engine.MaxKeyLen {
		return ErrKeyTooLong
	}
	op.key = key
	op.r.ev.Key = key
	status, redirect := http.StatusNoContent, fields["success_action_redirect"]
	if redirect == "" {
		redirect = fields["redirect"]
	}
	if redirect != "" {
		if u, err := url.Parse(redirect); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errPostRedirect
		}
	} else if v := fields["success_action_status"]; v != "" {
		switch v {
		case "200", "201", "204":
			status, _ = strconv.Atoi(v)
		default:
			return errPostStatus
		}
	}
	if err := headerFields(fields); err != nil {
		return err
	}
	opts := engine.PutOptions{Size: -1, ContentType: fields["content-type"], MaxSize: hi}
	if opts.ContentType == "" {
		opts.ContentType = "binary/octet-stream"
	}
	meta := map[string]string{}
	for k, v := range fields {
		if strings.HasPrefix(k, metaPrefix) {
			meta[k] = v
		}
	}
	for _, name := range storedHeaders {
		if v := fields[name]; v != "" {
			meta[name] = v
		}
	}
	if v := fields["tagging"]; v != "" {
		var t tagging
		if xml.Unmarshal([]byte(v), &t) != nil {
			return ErrMalformedXML
		}
		if err := validateTags(t.TagSet.Tags, maxObjectTags); err != nil {
			return err
		}
		if len(t.TagSet.Tags) > 0 {
			meta[tagsEntry] = encodeTags(t.TagSet.Tags)
		}
	}
	if len(meta) > 0 {
		opts.Metadata = meta
	}
	// As a PutObject: a version in a versioned bucket, the bucket's default
	// retention in a locked one (probe H2: a POST wrote an unversioned,
	// unlocked object over a locked null version).
	if opts.Retention, err = op.writeRetention(); err != nil {
		return err
	}
	if opts.Versioning, err = op.versioning(); err != nil {
		return err
	}
	limit, err := op.admitUpload(-1, 1)
	if err != nil {
		return err
	}
	quotaCap := false
	if limit >= 0 && limit < opts.MaxSize {
		opts.MaxSize, quotaCap = limit, true
	}
	if opts.MaxSize == 0 {
		if quotaCap {
			return (&upload{quotaCap: true}).quotaErr(engine.ErrTooLarge)
		}
		opts.MaxSize = 1 // the engine takes 0 as no limit; AfterBody refuses the byte
	}
	sumName, sumWant, sum, err := postChecksum(fields)
	if err != nil {
		return err
	}
	in := &countingReader{r: file}
	var src io.Reader = in
	if sum != nil {
		src = io.TeeReader(in, sum)
	}
	opts.AfterBody = func() (map[string]string, error) {
		if in.n > hi {
			return nil, ErrEntityTooLarge
		}
		if in.n < lo {
			return nil, withMessage(ErrEntityTooSmall, fmt.Sprintf("Your proposed upload is smaller than the minimum allowed size: %d bytes, the policy's minimum is %d.", in.n, lo))
		}
		if sum == nil {
			return nil, nil
		}
		if err := sigv4.CheckChecksum(sum, sumWant); err != nil {
			return nil, err
		}
		return map[string]string{sumName: sumWant}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), op.s.cfg.BodyTimeout)
	defer cancel()
	info, err := op.s.cfg.Engine.Put(ctx, op.tenant, op.bucket, key, src, opts)
	if err != nil {
		if quotaCap && errors.Is(err, engine.ErrTooLarge) {
			return (&upload{quotaCap: true}).quotaErr(err)
		}
		return err
	}
	op.wrote(info)
	// The rest of the form is ignored; read a little of it to keep the
	// connection, else it closes after the answer.
	if n, err := io.Copy(io.Discard, io.LimitReader(body, maxPostTrail+1)); err == nil && n <= maxPostTrail {
		op.r.bodyDone = true
	}
	etag := `"` + info.ETag + `"`
	rh := &op.r.fctx.Response.Header
	rh.Set("ETag", etag)
	location := op.objectURL(key)
	rh.Set("Location", location)
	switch {
	case redirect != "":
		u, _ := url.Parse(redirect)
		q := u.Query()
		q.Set("bucket", op.bucket)
		q.Set("key", key)
		q.Set("etag", etag)
		u.RawQuery = q.Encode()
		rh.Set("Location", u.String())
		op.r.fctx.SetStatusCode(http.StatusSeeOther)
	case status == http.StatusCreated:
		writeXML(op.r.fctx, status, postResponse{Location: location, Bucket: op.bucket, Key: key, ETag: etag})
	default:
		op.r.fctx.SetStatusCode(status)
	}
	return nil
}

// objectURL is the URL of an object of the request's bucket.
func (op *operation) objectURL(key string) string {
	scheme := "http"
	if op.r.fctx.IsTLS() {
		scheme = "https"
	}
	return scheme + "://" + string(op.r.fctx.Host()) + "/" + op.bucket + "/" + (&url.URL{Path: key}).EscapedPath()
}
