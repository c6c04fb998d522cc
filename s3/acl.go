package s3

import (
	"encoding/xml"
	"net/http"
	"strings"
)

// Access control lists.
//
// Every bucket and object belongs to its tenant: the ACL grants
// FULL_CONTROL to the owner, and a bucket's may add READ for everyone
// (below). So the canned ACLs that mean just
// that for a single-account owner (private, bucket-owner-full-control,
// bucket-owner-read) are accepted wherever S3 takes x-amz-acl, and an
// AccessControlPolicy that grants the owner FULL_CONTROL and nothing else
// is accepted by PutBucketAcl and PutObjectAcl. Anything granting more
// (other canned ACLs, x-amz-grant-*, grants to others, public-read on an
// object) is NotImplemented rather than silently ignored: the client
// would believe its data shared.
//
// A bucket may also be public-read (canned, or the owner's FULL_CONTROL
// plus READ for the AllUsers group): anonymous GET and HEAD of its objects
// are then served as its owner (anonymous.go). Public bucket names are one
// namespace across tenants, claimed in the cluster's replicated state
// (document kind "acl"), so a second tenant's public-read of the same name
// is refused with 409 OperationAborted. Objects cannot be public-read.

const (
	aclKind       = "acl"
	publicReadACL = "public-read"
	allUsersURI   = "http://acs.amazonaws.com/groups/global/AllUsers"
)

// ownerOnlyACLs are the canned ACLs that grant nothing beyond the owner.
var ownerOnlyACLs = []string{"private", "bucket-owner-full-control", "bucket-owner-read"}

// checkACLHeaders refuses ACL headers that grant more than the owner has;
// bucket is true where public-read is taken too (CreateBucket, PutBucketAcl).
func (op *operation) checkACLHeaders(bucket bool) error {
	h := &op.r.fctx.Request.Header
	if v := string(h.Peek("x-amz-acl")); v != "" && !ownerOnlyACL(v) && !(bucket && publicRead(v)) {
		return errACLNotSupported
	}
	for k := range h.All() {
		if hasPrefixFold(k, "x-amz-grant-") {
			return errACLNotSupported
		}
	}
	return nil
}

func publicRead(v string) bool {
	return strings.EqualFold(strings.TrimSpace(v), publicReadACL)
}

// cannedPublicRead reports whether the request's x-amz-acl is public-read.
func (op *operation) cannedPublicRead() bool {
	return publicRead(string(op.r.fctx.Request.Header.Peek("x-amz-acl")))
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
	p := op.ownerPolicy()
	if op.key == "" && op.s.cfg.Configs != nil {
		if _, ok, err := op.s.cfg.Configs.BucketConfig(op.ctx, op.tenant, op.bucket, aclKind); err != nil {
			return err
		} else if ok {
			p.Grants = append(p.Grants, grant{
				Grantee:    grantee{XMLNSXSI: xsiNamespace, Type: "Group", URI: allUsersURI},
				Permission: "READ",
			})
		}
	}
	writeXML(op.r.fctx, http.StatusOK, p)
	return nil
}

// putACL serves PutBucketAcl (key "") and PutObjectAcl: an owner-only ACL,
// canned or as a policy, is what the target has already.
func (op *operation) putACL() error {
	h := &op.r.fctx.Request.Header
	if err := op.checkACLHeaders(op.key == ""); err != nil {
		return err
	}
	canned := len(h.Peek("x-amz-acl")) > 0
	public := canned && op.cannedPublicRead()
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
			return errACLNotSupported
		}
		owner := false
		for _, g := range req.Grants {
			switch {
			case g.Permission == "FULL_CONTROL" && g.Grantee.Type == "CanonicalUser" && g.Grantee.ID == op.tenant:
				owner = true
			case op.key == "" && g.Permission == "READ" && g.Grantee.Type == "Group" && g.Grantee.URI == allUsersURI:
				public = true
			default:
				return errACLNotSupported
			}
		}
		if !owner {
			return errACLNotSupported
		}
	}
	if err := op.aclTarget(); err != nil {
		return err
	}
	if op.key == "" {
		if err := op.setPublicRead(public); err != nil {
			return err
		}
	}
	op.r.fctx.SetStatusCode(http.StatusOK)
	return nil
}

// setPublicRead makes the bucket public-read (claiming its name across
// tenants, or failing with engine.ErrPublicNameTaken) or private again
// (releasing the claim).
func (op *operation) setPublicRead(public bool) error {
	cs := op.s.cfg.Configs
	if cs == nil {
		if public {
			return errACLNotSupported
		}
		return nil
	}
	if public {
		return cs.PutBucketConfig(op.ctx, op.tenant, op.bucket, aclKind, []byte(publicReadACL))
	}
	if _, ok := cs.LocalBucketConfig(op.tenant, op.bucket, aclKind); !ok {
		if _, ok, err := cs.BucketConfig(op.ctx, op.tenant, op.bucket, aclKind); err != nil || !ok {
			return err
		}
	}
	return cs.DeleteBucketConfig(op.ctx, op.tenant, op.bucket, aclKind)
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
