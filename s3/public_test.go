package s3_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultaire/vaultaire/s3"
)

// anonymous sends an unsigned request and returns its status and body.
func anonymous(t *testing.T, method, url string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestPublicReadBucket: a public-read bucket (canned on create, canned or
// as an AllUsers READ grant on PutBucketAcl) serves anonymous GET and HEAD
// of its objects and nothing else; private again, or deleted, it does
// not. Its name is claimed across tenants: another tenant cannot make its
// own bucket of that name public, and that bucket is never reached
// anonymously.
func TestPublicReadBucket(t *testing.T) {
	e, _ := startConfigServerWith(t, func(c *s3.Config) { c.Domain = "s3.test" })
	ctx := t.Context()
	alice := e.client("ALICEKEY", "alicesecret")
	bob := e.client("BOBKEY", "bobsecret")
	b := aws.String("pub")
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*awss3.Client{alice, bob} {
		who := "alice"
		if c == bob {
			who = "bob"
		}
		for _, k := range []string{"k", "private/x"} {
			if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(who + "'s " + k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	obj := e.endpoint + "/pub/k"
	get := func(want int, wantBody string) {
		t.Helper()
		st, body := anonymous(t, http.MethodGet, obj, nil, "")
		if st != want || (want == 200 && body != wantBody) {
			t.Fatalf("anonymous GET: %d %q, want %d %q", st, body, want, wantBody)
		}
		if want != 200 && !strings.Contains(body, "AccessDenied") {
			t.Fatalf("anonymous GET: %d %q, want AccessDenied", st, body)
		}
	}
	get(403, "")

	// Private → public-read by canned PutBucketAcl.
	if _, err := alice.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatalf("PutBucketAcl public-read: %v", err)
	}
	get(200, "alice's k")
	acl, err := alice.GetBucketAcl(ctx, &awss3.GetBucketAclInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	public := false
	for _, g := range acl.Grants {
		if g.Grantee != nil && g.Grantee.Type == types.TypeGroup && aws.ToString(g.Grantee.URI) == "http://acs.amazonaws.com/groups/global/AllUsers" && g.Permission == types.PermissionRead {
			public = true
		}
	}
	if !public || len(acl.Grants) != 2 {
		t.Fatalf("GetBucketAcl of a public-read bucket: %+v", acl.Grants)
	}
	// Bob's bucket of the same name stays private and cannot be made public.
	_, err = bob.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead})
	wantCode(t, "bob's public-read of a claimed name", err, "OperationAborted")
	_, err = bob.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("pub2")})
	if err != nil {
		t.Fatal(err)
	}

	// Ranges and HEAD are served; nothing else is.
	if st, body := anonymous(t, http.MethodGet, obj, map[string]string{"Range": "bytes=0-4"}, ""); st != 206 || body != "alice" {
		t.Fatalf("anonymous ranged GET: %d %q", st, body)
	}
	if st, _ := anonymous(t, http.MethodHead, obj, nil, ""); st != 200 {
		t.Fatalf("anonymous HEAD: %d", st)
	}
	// A missing key is not told apart from a forbidden one (no listing).
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if st, _ := anonymous(t, m, e.endpoint+"/pub/nosuch", nil, ""); st != 403 {
			t.Fatalf("anonymous %s of a missing key: %d, want 403", m, st)
		}
	}
	if st, body := anonymous(t, http.MethodGet, obj+"?x-id=GetObject", nil, ""); st != 200 || body != "alice's k" {
		t.Fatalf("anonymous GET ?x-id=GetObject: %d %q", st, body)
	}
	// Virtual-host style finds the same bucket, and only it.
	if st, body := anonymous(t, http.MethodGet, e.endpoint+"/k", map[string]string{"Host": "pub.s3.test"}, ""); st != 200 || body != "alice's k" {
		t.Fatalf("anonymous virtual-host GET: %d %q", st, body)
	}
	if st, _ := anonymous(t, http.MethodGet, e.endpoint+"/k", map[string]string{"Host": "pub2.s3.test"}, ""); st != 403 {
		t.Fatalf("anonymous virtual-host GET of bob's private bucket: %d", st)
	}
	if st, _ := anonymous(t, http.MethodGet, e.endpoint+"/", map[string]string{"Host": "pub.s3.test"}, ""); st != 403 {
		t.Fatalf("anonymous virtual-host listing: %d", st)
	}
	denied := []struct{ method, url, body string }{
		{http.MethodPut, obj, "evil"},
		{http.MethodPut, e.endpoint + "/pub/new", "evil"},
		{http.MethodDelete, obj, ""},
		{http.MethodGet, e.endpoint + "/pub", ""},
		{http.MethodGet, e.endpoint + "/pub/", ""},
		{http.MethodGet, e.endpoint + "/pub?list-type=2", ""},
		{http.MethodHead, e.endpoint + "/pub", ""},
		{http.MethodGet, e.endpoint + "/", ""},
		{http.MethodGet, obj + "?acl", ""},
		{http.MethodGet, obj + "?tagging", ""},
		{http.MethodGet, obj + "?attributes", ""},
		{http.MethodGet, obj + "?versionId=null", ""},
		{http.MethodGet, obj + "?response-content-type=text/html", ""},
		{http.MethodGet, obj + "?X-Amz-Algorithm=AWS4-HMAC-SHA256", ""},
		{http.MethodGet, obj + "?AWSAccessKeyId=ALICEKEY&Signature=x&Expires=9999999999", ""},
		{http.MethodGet, e.endpoint + "/pub?acl", ""},
		{http.MethodPut, e.endpoint + "/pub?acl", ""},
		{http.MethodGet, e.endpoint + "/pub?policy", ""},
		{http.MethodPost, e.endpoint + "/pub/k?uploads", ""},
		{http.MethodGet, e.endpoint + "/pub2/k", ""},
		{http.MethodGet, e.endpoint + "/pub/k", "with a body"},
	}
	for _, d := range denied {
		if st, body := anonymous(t, d.method, d.url, nil, d.body); st < 400 || st == 404 || strings.Contains(body, "alice's") {
			t.Errorf("anonymous %s %s: %d %q, want refused", d.method, d.url, st, body)
		}
	}
	// Bad or partial credentials never fall back to anonymous.
	for _, h := range []map[string]string{
		{"Authorization": "AWS4-HMAC-SHA256 Credential=ALICEKEY/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"},
		{"Authorization": "garbage"},
		{"Authorization": ""},
		{"x-amz-security-token": ""},
		{"x-amz-security-token": "tok"},
	} {
		if st, _ := anonymous(t, http.MethodGet, obj, h, ""); st != 403 && st != 400 {
			t.Errorf("GET with %v: %d, want refused", h, st)
		}
	}
	// The object written by PUT attempts is unchanged.
	if got := getString(t, alice, "pub", "k"); got != "alice's k" {
		t.Fatalf("alice's object after anonymous writes: %q", got)
	}
	if _, err := alice.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: b, Key: aws.String("new")}); apiCode(err) != "NotFound" {
		t.Fatalf("an anonymous PUT stored an object: %v", err)
	}

	// Back to private (an owner-only grant body) releases the name.
	if _, err := alice.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Fatal(err)
	}
	get(403, "")
	// Now bob may claim it, with an AllUsers READ grant body.
	own, err := bob.GetBucketAcl(ctx, &awss3.GetBucketAclInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	grants := append(own.Grants, types.Grant{Grantee: &types.Grantee{Type: types.TypeGroup, URI: aws.String("http://acs.amazonaws.com/groups/global/AllUsers")}, Permission: types.PermissionRead})
	if _, err := bob.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, AccessControlPolicy: &types.AccessControlPolicy{Owner: own.Owner, Grants: grants}}); err != nil {
		t.Fatalf("bob's PutBucketAcl with an AllUsers READ grant: %v", err)
	}
	get(200, "bob's k")
	_, err = alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("pub"), ACL: types.BucketCannedACLPublicRead})
	if apiCode(err) != "BucketAlreadyOwnedByYou" && apiCode(err) != "OperationAborted" {
		t.Fatalf("alice's public-read CreateBucket of bob's public name: %v", err)
	}
	// Deleting the bucket releases the claim.
	for _, k := range []string{"k", "private/x"} {
		if _, err := bob.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: b, Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	get(403, "")
	if _, err := alice.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatalf("alice's public-read after bob's bucket was deleted: %v", err)
	}
	get(200, "alice's k")

	// CreateBucket with public-read; a second tenant's is refused with
	// nothing created.
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("site"), ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatalf("CreateBucket public-read: %v", err)
	}
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("site"), Key: aws.String("index.html"), Body: strings.NewReader("hi")}); err != nil {
		t.Fatal(err)
	}
	if st, body := anonymous(t, http.MethodGet, e.endpoint+"/site/index.html", nil, ""); st != 200 || body != "hi" {
		t.Fatalf("anonymous GET from a bucket created public-read: %d %q", st, body)
	}
	_, err = bob.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("site"), ACL: types.BucketCannedACLPublicRead})
	wantCode(t, "bob's public-read CreateBucket of a claimed name", err, "OperationAborted")
	if _, err := bob.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("site")}); err == nil {
		t.Fatal("a refused public-read CreateBucket left a bucket")
	}
	// Objects cannot be public-read.
	_, err = alice.PutObjectAcl(ctx, &awss3.PutObjectAclInput{Bucket: aws.String("site"), Key: aws.String("index.html"), ACL: types.ObjectCannedACLPublicRead})
	wantCode(t, "PutObjectAcl public-read", err, "AccessControlListNotSupported")
}

// TestBucketPolicy: the supported policy (anonymous s3:GetObject) is
// stored, read back and deleted; it makes anonymous GETs work and claims
// the name across tenants as public-read does; anything beyond the subset
// is NotImplemented, bad JSON MalformedPolicy, with nothing stored.
func TestBucketPolicy(t *testing.T) {
	e, _ := startConfigServerWith(t, nil)
	ctx := t.Context()
	alice := e.client("ALICEKEY", "alicesecret")
	bob := e.client("BOBKEY", "bobsecret")
	b := aws.String("pol")
	for _, c := range []*awss3.Client{alice, bob} {
		if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("a/k"), Body: strings.NewReader("data")}); err != nil {
		t.Fatal(err)
	}
	obj := e.endpoint + "/pol/a/k"
	_, err := alice.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: b})
	wantCode(t, "GetBucketPolicy unset", err, "NoSuchBucketPolicy")
	_, err = alice.GetBucketPolicyStatus(ctx, &awss3.GetBucketPolicyStatusInput{Bucket: b})
	wantCode(t, "GetBucketPolicyStatus unset", err, "NoSuchBucketPolicy")

	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	good := stmt(`{"Sid":"pub","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`)
	for _, c := range []struct{ doc, code string }{
		{`not json`, "MalformedPolicy"},
		{`{"Version":"2012-10-17"}`, "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::pol/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":"arn:aws:s3:::pol/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::pol/*"}`), "NotImplemented"},
		// A principal naming another tenant (or anyone) cannot be
		// enforced: bucket names are per tenant (policy.go).
		{stmt(`{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::bob:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":{"AWS":["*","arn:aws:iam::bob:root"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":{"CanonicalUser":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":"bob","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*"}`), "MalformedPolicy"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/a/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","NotAction":"s3:PutObject","Resource":"arn:aws:s3:::pol/*"}`), "NotImplemented"},
		{stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}`), "NotImplemented"},
	} {
		_, err := alice.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(c.doc)})
		wantCode(t, "PutBucketPolicy "+c.doc, err, c.code)
	}
	_, err = alice.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: b})
	wantCode(t, "GetBucketPolicy after refused puts", err, "NoSuchBucketPolicy")
	if st, _ := anonymous(t, http.MethodGet, obj, nil, ""); st != 403 {
		t.Fatalf("anonymous GET before the policy: %d", st)
	}

	if _, err := alice.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(good)}); err != nil {
		t.Fatalf("PutBucketPolicy: %v", err)
	}
	got, err := alice.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: b})
	if err != nil || aws.ToString(got.Policy) != good {
		t.Fatalf("GetBucketPolicy: %v %q", err, aws.ToString(got.Policy))
	}
	ps, err := alice.GetBucketPolicyStatus(ctx, &awss3.GetBucketPolicyStatusInput{Bucket: b})
	if err != nil || !aws.ToBool(ps.PolicyStatus.IsPublic) {
		t.Fatalf("GetBucketPolicyStatus: %v", err)
	}
	if st, body := anonymous(t, http.MethodGet, obj, nil, ""); st != 200 || body != "data" {
		t.Fatalf("anonymous GET with the policy: %d %q", st, body)
	}
	for _, d := range []struct{ method, url, body string }{
		{http.MethodPut, obj, "evil"}, {http.MethodDelete, obj, ""}, {http.MethodGet, e.endpoint + "/pol?list-type=2", ""},
		{http.MethodGet, e.endpoint + "/pol?policy", ""}, {http.MethodDelete, e.endpoint + "/pol?policy", ""},
	} {
		if st, _ := anonymous(t, d.method, d.url, nil, d.body); st != 403 {
			t.Errorf("anonymous %s %s with the policy: %d, want 403", d.method, d.url, st)
		}
	}
	// Bob's bucket of the name can claim neither way.
	bobPolicy := strings.ReplaceAll(good, "pol/", "pol/")
	_, err = bob.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(bobPolicy)})
	wantCode(t, "bob's policy on alice's public name", err, "OperationAborted")
	_, err = bob.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead})
	wantCode(t, "bob's public-read on alice's public name", err, "OperationAborted")
	// Both public-read and the policy: public until both are gone.
	if _, err := alice.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DeleteBucketPolicy(ctx, &awss3.DeleteBucketPolicyInput{Bucket: b}); err != nil {
		t.Fatalf("DeleteBucketPolicy: %v", err)
	}
	if st, _ := anonymous(t, http.MethodGet, obj, nil, ""); st != 200 {
		t.Fatalf("anonymous GET, public-read without the policy: %d", st)
	}
	if _, err := alice.PutBucketAcl(ctx, &awss3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPrivate}); err != nil {
		t.Fatal(err)
	}
	if st, _ := anonymous(t, http.MethodGet, obj, nil, ""); st != 403 {
		t.Fatalf("anonymous GET after the policy's delete and private: %d", st)
	}
	_, err = alice.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: b})
	wantCode(t, "GetBucketPolicy after delete", err, "NoSuchBucketPolicy")
	// Released: bob's policy now claims the name.
	if _, err := bob.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(good)}); err != nil {
		t.Fatalf("bob's policy after alice released the name: %v", err)
	}
	if st, _ := anonymous(t, http.MethodGet, obj, nil, ""); st != 403 {
		t.Fatalf("anonymous GET of a key bob's bucket lacks: %d, want 403", st)
	}
	if _, err := bob.PutObject(ctx, &awss3.PutObjectInput{Bucket: b, Key: aws.String("a/k"), Body: strings.NewReader("bob's")}); err != nil {
		t.Fatal(err)
	}
	if st, body := anonymous(t, http.MethodGet, obj, nil, ""); st != 200 || body != "bob's" {
		t.Fatalf("anonymous GET from bob's public bucket: %d %q", st, body)
	}
}

// refuseTenant is a Limiter that counts every tenant's requests and
// refuses one tenant's.
type refuseTenant struct {
	mu     sync.Mutex
	refuse string
	seen   map[string]int
}

func (l *refuseTenant) Allow(_ context.Context, tenant string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[tenant]++
	return time.Second, tenant != l.refuse
}

// TestAnonymousReadsLimitedAsOwner: anonymous reads of a public bucket
// are counted and rate-limited as its owner's requests.
func TestAnonymousReadsLimitedAsOwner(t *testing.T) {
	lim := &refuseTenant{seen: map[string]int{}}
	e, _ := startConfigServerWith(t, func(c *s3.Config) { c.Limiter = lim })
	ctx := t.Context()
	alice := e.client("ALICEKEY", "alicesecret")
	if _, err := alice.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("lim"), ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("lim"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	lim.mu.Lock()
	before := lim.seen["alice"]
	lim.mu.Unlock()
	if st, _ := anonymous(t, http.MethodGet, e.endpoint+"/lim/k", nil, ""); st != 200 {
		t.Fatalf("anonymous GET: %d", st)
	}
	lim.mu.Lock()
	counted := lim.seen["alice"] - before
	lim.refuse = "alice"
	lim.mu.Unlock()
	if counted != 1 {
		t.Fatalf("the anonymous GET counted %d times against its owner, want 1", counted)
	}
	if st, body := anonymous(t, http.MethodGet, e.endpoint+"/lim/k", nil, ""); st != 503 || !strings.Contains(body, "SlowDown") {
		t.Fatalf("anonymous GET while the owner is limited: %d %q, want 503 SlowDown", st, body)
	}
}
