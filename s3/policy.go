package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
)

// Bucket policies.
//
// The one policy served is the one that makes a bucket's objects
// anonymously readable: Version, and Statements with Effect Allow,
// Principal "*" (or {"AWS": "*"}), Action s3:GetObject and Resource
// arn:aws:s3:::BUCKET/* (each a string or a list of them; Sid allowed).
// Anything else (Deny, Condition, NotAction, NotPrincipal, other actions,
// principals or resources) is NotImplemented rather than stored and not
// enforced; a body that is not a JSON policy (or has elements the policy
// grammar does not) is MalformedPolicy.
//
// A Principal naming anyone (another tenant, an account ARN, a canonical
// user, a service) is refused with MalformedPolicy "Invalid principal",
// as AWS refuses a principal it cannot resolve. A tenant's signed
// requests reach only its own buckets: bucket names are per tenant (two
// tenants may each have "photos"), so a grant to tenant B on tenant A's
// bucket would need a cross-tenant way of addressing it, which does not
// exist; storing the grant would accept a policy nothing enforces.
// Sharing across tenants is anonymous read (this policy or public-read),
// or a key of the owning tenant. A stored
// policy (document kind "policy") claims the bucket's name across tenants
// as public-read does (acl.go, anonymous.go).

const (
	policyKind    = "policy"
	maxPolicySize = 20 << 10 // as AWS
)

type policyStatus struct {
	XMLName  xml.Name `xml:"PolicyStatus"`
	Xmlns    string   `xml:"xmlns,attr"`
	IsPublic bool     `xml:"IsPublic"`
}

// stringOrList decodes a JSON string or list of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, errMalformedPolicy
	}
	if len(l) == 0 {
		return nil, errMalformedPolicy
	}
	return l, nil
}

// checkPolicy validates a policy document for bucket against the served
// subset.
func checkPolicy(doc []byte, bucket string) error {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(doc, &p); err != nil || p == nil {
		return errMalformedPolicy
	}
	for k := range p {
		if k != "Version" && k != "Statement" && k != "Id" {
			return errMalformedPolicy // the policy grammar has no other element
		}
	}
	if v, ok := p["Version"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil || (s != "2012-10-17" && s != "2008-10-17") {
			return errMalformedPolicy
		}
	}
	raw, ok := p["Statement"]
	if !ok {
		return errMalformedPolicy
	}
	var stmts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &stmts); err != nil {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil || one == nil {
			return errMalformedPolicy
		}
		stmts = append(stmts, one)
	}
	if len(stmts) == 0 {
		return errMalformedPolicy
	}
	for _, st := range stmts {
		if err := checkStatement(st, bucket); err != nil {
			return err
		}
	}
	return nil
}

func checkStatement(st map[string]json.RawMessage, bucket string) error {
	for k := range st {
		switch k {
		case "Sid", "Effect", "Principal", "Action", "Resource":
		case "Condition", "NotAction", "NotPrincipal", "NotResource":
			return errPolicyNotImplemented
		default:
			return errMalformedPolicy // the policy grammar has no other element
		}
	}
	for _, k := range []string{"Effect", "Principal", "Action", "Resource"} {
		if _, ok := st[k]; !ok {
			return errMalformedPolicy
		}
	}
	var effect string
	if json.Unmarshal(st["Effect"], &effect) != nil {
		return errMalformedPolicy
	}
	if effect != "Allow" {
		if effect == "Deny" {
			return errPolicyNotImplemented
		}
		return errMalformedPolicy
	}
	var star string
	if json.Unmarshal(st["Principal"], &star) == nil {
		if star != "*" {
			return errPolicyPrincipal
		}
	} else {
		var pr map[string]json.RawMessage
		if json.Unmarshal(st["Principal"], &pr) != nil || pr == nil {
			return errMalformedPolicy
		}
		for k, v := range pr {
			l, err := stringOrList(v)
			if err != nil {
				return err
			}
			if k != "AWS" || len(l) != 1 || l[0] != "*" {
				return errPolicyPrincipal // another tenant, an account, a service
			}
		}
		if len(pr) == 0 {
			return errMalformedPolicy
		}
	}
	actions, err := stringOrList(st["Action"])
	if err != nil {
		return err
	}
	for _, a := range actions {
		if a != "s3:GetObject" {
			return errPolicyNotImplemented
		}
	}
	resources, err := stringOrList(st["Resource"])
	if err != nil {
		return err
	}
	for _, r := range resources {
		if r != "arn:aws:s3:::"+bucket+"/*" {
			return errPolicyNotImplemented
		}
	}
	return nil
}

// readPolicyBody reads a small request body, verified as readXMLBody does.
func (op *operation) readPolicyBody() ([]byte, error) {
	want, err := contentMD5(&op.r.fctx.Request.Header)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(op.auth.Body(op.r.bodyStream(op.s)), maxPolicySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPolicySize {
		return nil, errPolicyTooLarge // the rest is unread: the connection closes
	}
	op.r.bodyDone = true
	if sum := md5.Sum(data); want != nil && !bytes.Equal(sum[:], want) {
		return nil, ErrBadDigest
	}
	return data, nil
}

func (op *operation) putBucketPolicy() error {
	cs, err := op.configs()
	if err != nil {
		return err
	}
	doc, err := op.readPolicyBody()
	if err != nil {
		return err
	}
	if err := checkPolicy(doc, op.bucket); err != nil {
		return err
	}
	if _, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket); err != nil {
		return err
	}
	if err := cs.PutBucketConfig(op.ctx, op.tenant, op.bucket, policyKind, doc); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func (op *operation) getBucketPolicy() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	doc, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, policyKind)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSuchBucketPolicy
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	op.r.fctx.SetContentType("application/json")
	op.r.fctx.Response.SetBody(doc)
	return nil
}

func (op *operation) deleteBucketPolicy() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	if err := cs.DeleteBucketConfig(op.ctx, op.tenant, op.bucket, policyKind); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func (op *operation) getBucketPolicyStatus() error {
	cs, err := op.bucketConfigs()
	if err != nil {
		return err
	}
	_, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, policyKind)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSuchBucketPolicy
	}
	writeXML(op.r.fctx, http.StatusOK, policyStatus{Xmlns: s3Namespace, IsPublic: true})
	return nil
}
