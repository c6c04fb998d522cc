package s3

import (
	"encoding/xml"
	"net/http"
	"strings"
)

// Access control lists.
//
// Every bucket and object belongs to its tenant alone: the only ACL there
// is grants FULL_CONTROL to the owner. So the canned ACLs that mean just
// that for a single-account owner (private, bucket-owner-full-control,
// bucket-owner-read) are accepted wherever S3 takes x-amz-acl, and an
// AccessControlPolicy that grants the owner FULL_CONTROL and nothing else
// is accepted by PutBucketAcl and PutObjectAcl. Anything granting more
// (public-read, x-amz-grant-*, grants to others) is NotImplemented rather
// than silently ignored: the client would believe its data shared.

// ownerOnlyACLs are the canned ACLs that grant nothing beyond the owner.
var ownerOnlyACLs = []string{"private", "bucket-owner-full-control", "bucket-owner-read"}

// checkACLHeaders refuses ACL headers that grant more than the owner has.
func (op *operation) checkACLHeaders() error {
	h := &op.r.fctx.Request.Header
	if v := string(h.Peek("x-amz-acl")); v != "" && !ownerOnlyACL(v) {
		return errACLNotImplemented
	}
	for k := range h.All() {
		if strings.HasPrefix(strings.ToLower(string(k)), "x-amz-grant-") {
			return errACLNotImplemented
		}
	}
	return nil
}

func ownerOnlyACL(v string) bool {
	for _, a := range ownerOnlyACLs {
		if strings.EqualFold(strings.TrimSpace(v), a) {
			return true
		}
	}
	return false
}

const xsiNamespace = "http://www.w3.org/2001/XMLSchema-instance"

type accessControlPolicy struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	Owner   *owner   `xml:"Owner"`
	Grants  []grant  `xml:"AccessControlList>Grant"`
}

type grant struct {
	Grantee    grantee `xml:"Grantee"`
	Permission string  `xml:"Permission"`
}

type grantee struct {
	XMLNSXSI     string `xml:"xmlns:xsi,attr,omitempty"`
	Type         string `xml:"xsi:type,attr,omitempty"`
	ID           string `xml:"ID,omitempty"`
	DisplayName  string `xml:"DisplayName,omitempty"`
	URI          string `xml:"URI,omitempty"`
	EmailAddress string `xml:"EmailAddress,omitempty"`
}

// aclRequest is an AccessControlPolicy as a client sends it: the grantee
// type is the xsi:type attribute, matched by its local name.
type aclRequest struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Owner   *owner   `xml:"Owner"`
	Grants  []struct {
		Grantee struct {
			Type         string `xml:"type,attr"`
			ID           string `xml:"ID"`
			URI          string `xml:"URI"`
			EmailAddress string `xml:"EmailAddress"`
		} `xml:"Grantee"`
		Permission string `xml:"Permission"`
	} `xml:"AccessControlList>Grant"`
}

// ownerPolicy is the ACL of everything a tenant owns.
func (op *operation) ownerPolicy() accessControlPolicy {
	o := op.owner()
	return accessControlPolicy{Xmlns: s3Namespace, Owner: &o, Grants: []grant{{
		Grantee:    grantee{XMLNSXSI: xsiNamespace, Type: "CanonicalUser", ID: o.ID, DisplayName: o.DisplayName},
		Permission: "FULL_CONTROL",
	}}}
}

// getACL serves GetBucketAcl (key "") and GetObjectAcl.
func (op *operation) getACL() error {
	if err := op.aclTarget(); err != nil {
		return err
	}
	writeXML(op.r.fctx, http.StatusOK, op.ownerPolicy())
	return nil
}

// putACL serves PutBucketAcl (key "") and PutObjectAcl: an owner-only ACL,
// canned or as a policy, is what the target has already.
func (op *operation) putACL() error {
	h := &op.r.fctx.Request.Header
	if err := op.checkACLHeaders(); err != nil {
		return err
	}
	canned := len(h.Peek("x-amz-acl")) > 0
	if canned {
		if err := op.drainBody(0); err != nil {
			return errUnexpectedContent
		}
	} else {
		var req aclRequest
		if err := op.readXMLBody(&req); err != nil {
			return err
		}
		if req.Owner != nil && req.Owner.ID != "" && req.Owner.ID != op.tenant {
			return ErrAccessDenied
		}
		if len(req.Grants) == 0 {
			return errACLNotImplemented
		}
		for _, g := range req.Grants {
			if g.Permission != "FULL_CONTROL" || g.Grantee.Type != "CanonicalUser" || g.Grantee.ID != op.tenant {
				return errACLNotImplemented
			}
		}
	}
	if err := op.aclTarget(); err != nil {
		return err
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

// aclTarget checks that the bucket, or the object, of an ACL request exists.
func (op *operation) aclTarget() error {
	if op.key == "" {
		_, err := op.s.cfg.Engine.Container(op.ctx, op.tenant, op.bucket)
		return err
	}
	_, err := op.s.cfg.Engine.Open(op.ctx, op.tenant, op.bucket, op.key)
	return err
}
