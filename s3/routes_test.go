package s3

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// routeCases are requests with the route each must take and whether that
// route changes stored state (what the transaction log records): a
// committed object, bucket or tenant change.
var routeCases = []struct {
	method, path, query string
	copySource          bool
	want                string
	mutation            bool
}{
	{"GET", "/", "", false, "ListBuckets", false},
	{"GET", "/", "acl", false, "ListBuckets", false},
	{"PUT", "/", "", false, "Unknown", false},
	{"GET", "/b", "acl", false, "GetBucketAcl", false},
	{"PUT", "/b", "acl", false, "PutBucketAcl", false},
	{"DELETE", "/b", "acl", false, "Unknown", false},
	{"GET", "/b/k", "acl", false, "GetObjectAcl", false},
	{"PUT", "/b/k", "acl", false, "PutObjectAcl", false},
	{"DELETE", "/b/k", "acl", false, "Unknown", false},
	{"DELETE", "/b/k", "acl&uploadId=u", false, "Unknown", false},
	{"PUT", "/b", "", false, "CreateBucket", true},
	{"HEAD", "/b", "", false, "HeadBucket", false},
	{"DELETE", "/b", "", false, "DeleteBucket", true},
	{"GET", "/b", "location", false, "GetBucketLocation", false},
	{"GET", "/b", "uploads", false, "ListMultipartUploads", false},
	{"GET", "/b", "versions", false, "ListObjectVersions", false},
	{"GET", "/b", "list-type=2", false, "ListObjectsV2", false},
	{"GET", "/b", "", false, "ListObjects", false},
	{"GET", "/b", "list-type=1", false, "ListObjects", false},
	{"POST", "/b", "delete", false, "DeleteObjects", true},
	{"PUT", "/b", "cors", false, "PutBucketCors", true},
	{"GET", "/b", "cors", false, "GetBucketCors", false},
	{"DELETE", "/b", "cors", false, "DeleteBucketCors", true},
	{"PUT", "/b", "policy", false, "PutBucketPolicy", true},
	{"GET", "/b", "policy", false, "GetBucketPolicy", false},
	{"DELETE", "/b", "policy", false, "DeleteBucketPolicy", true},
	{"GET", "/b", "policyStatus", false, "GetBucketPolicyStatus", false},
	{"GET", "/b/k", "policy", false, "Unknown", false},
	{"PUT", "/b", "lifecycle", false, "PutBucketLifecycleConfiguration", true},
	{"GET", "/b", "lifecycle", false, "GetBucketLifecycleConfiguration", false},
	{"DELETE", "/b", "lifecycle", false, "DeleteBucketLifecycle", true},
	{"GET", "/b/k", "lifecycle", false, "Unknown", false},
	{"PUT", "/b", "versioning", false, "PutBucketVersioning", true},
	{"PUT", "/b", "object-lock", false, "PutObjectLockConfiguration", true},
	{"GET", "/b", "object-lock", false, "GetObjectLockConfiguration", false},
	{"PUT", "/b/k", "retention", false, "PutObjectRetention", true},
	{"GET", "/b/k", "retention", false, "GetObjectRetention", false},
	{"PUT", "/b/k", "legal-hold", false, "PutObjectLegalHold", true},
	{"GET", "/b/k", "legal-hold", false, "GetObjectLegalHold", false},
	{"GET", "/b", "retention", false, "Unknown", false},
	{"DELETE", "/b/k", "legal-hold", false, "Unknown", false},
	{"GET", "/b", "versioning", false, "GetBucketVersioning", false},
	{"DELETE", "/b", "versioning", false, "Unknown", false},
	{"GET", "/b/k", "versioning", false, "Unknown", false},
	{"PUT", "/b/k", "cors", false, "Unknown", false},
	{"POST", "/b", "cors", false, "Unknown", false},
	{"OPTIONS", "/b", "", false, "PreflightCors", false},
	{"OPTIONS", "/b/k", "cors", false, "PreflightCors", false},
	{"OPTIONS", "/", "", false, "Unknown", false},
	{"POST", "/b", "", false, "PostObject", true},
	{"POST", "/b", "tagging", false, "Unknown", false},
	{"PUT", "/b", "tagging", false, "PutBucketTagging", true},
	{"GET", "/b", "tagging", false, "GetBucketTagging", false},
	{"DELETE", "/b", "tagging", false, "DeleteBucketTagging", true},
	{"PUT", "/b/k", "tagging", false, "PutObjectTagging", true},
	{"PUT", "/b/k", "tagging", true, "PutObjectTagging", true},
	{"GET", "/b/k", "tagging", false, "GetObjectTagging", false},
	{"DELETE", "/b/k", "tagging", false, "DeleteObjectTagging", true},
	{"HEAD", "/b/k", "tagging", false, "Unknown", false},
	{"GET", "/b/k", "attributes", false, "GetObjectAttributes", false},
	{"HEAD", "/b/k", "attributes", false, "Unknown", false},
	{"PUT", "/b/k", "attributes", false, "Unknown", false},
	{"PUT", "/b/k", "uploadId=u&partNumber=1", true, "UploadPartCopy", false},
	{"PUT", "/b/k", "uploadId=u&partNumber=1", false, "UploadPart", false},
	{"POST", "/b/k", "uploadId=u", false, "CompleteMultipartUpload", true},
	{"DELETE", "/b/k", "uploadId=u", false, "AbortMultipartUpload", false},
	{"GET", "/b/k", "uploadId=u", false, "ListParts", false},
	{"POST", "/b/k", "uploads", false, "CreateMultipartUpload", false},
	{"POST", "/b/k", "", false, "Unknown", false},
	{"GET", "/b/k", "partNumber=1", false, "GetObject", false},
	{"HEAD", "/b/k", "partNumber=1", false, "HeadObject", false},
	{"HEAD", "/b/k", "uploadId=u", false, "Unknown", false},
	{"PUT", "/b/k", "partNumber=1", false, "Unknown", false},
	{"PUT", "/b/k", "uploads", false, "Unknown", false},
	{"DELETE", "/b/k", "uploads", false, "Unknown", false},
	{"PUT", "/b/k", "", true, "CopyObject", true},
	{"PUT", "/b/k", "", false, "PutObject", true},
	{"GET", "/b/k", "", false, "GetObject", false},
	{"GET", "/b/k", "versions", false, "Unknown", false},
	{"HEAD", "/b/k", "", false, "HeadObject", false},
	{"DELETE", "/b/k", "", false, "DeleteObject", true},
	{"DELETE", "/b/k", "versionId=null", false, "DeleteObject", true},

	{"GET", "/_vault/health", "", false, "Health", false},
	{"GET", "/_vault/metrics", "", false, "Metrics", false},
	{"GET", "/_vault/console/", "", false, "Console", false},
	{"GET", "/_vault/console", "", false, "Console", false},
	{"GET", "/_vault/console/app.js", "", false, "Console", false},
	{"GET", "/_vault/consolex", "", false, "Admin", false},
	{"GET", "/_vault/admin/tenants", "", false, "Admin", false},
	{"POST", "/_vault/admin/tenants/t/keys", "", false, "AdminAddKey", true},
	{"PUT", "/_vault/admin/tenants/t/rate", "", false, "AdminSetRate", true},
	{"PUT", "/_vault/admin/tenants/t/quota", "", false, "AdminSetQuota", true},
	{"PUT", "/_vault/admin/tenants/t", "", false, "AdminCreateTenant", true},
	{"DELETE", "/_vault/admin/tenants/t", "", false, "AdminDeleteTenant", true},
	{"POST", "/_vault/admin/tenants/t", "", false, "Admin", false},
	{"GET", "/_vault/admin/cluster", "", false, "Admin", false},
	{"POST", "/_vault/admin/cluster/erasure", "", false, "AdminCluster", true},
	{"GET", "/_vault/admin/containers", "", false, "Admin", false},
	{"PUT", "/_vault/admin/containers/t/b/policy", "", false, "AdminSetStoragePolicy", true},
	{"PUT", "/_vault/admin/containers/t/policy", "", false, "Admin", false},
	{"GET", "/_vault/admin/containers/t/b/policy", "", false, "Admin", false},
	{"GET", "/_vault/nothing", "", false, "Admin", false},
}

// TestRouteTable routes every case, and checks that every route is taken
// by some case, is an operation label, and is a mutation exactly when the
// cases say it changes state.
func TestRouteTable(t *testing.T) {
	taken := map[*route]bool{}
	ops := Operations()
	for _, c := range routeCases {
		args := fasthttp.AcquireArgs()
		args.Parse(c.query)
		tg := target{method: c.method, path: c.path, query: args, copySource: c.copySource}
		var rt *route
		if strings.HasPrefix(c.path, "/_vault/") {
			rt = first(vaultRoutes, &tg)
		} else {
			tg.bucket, tg.key, _ = strings.Cut(c.path[1:], "/")
			rt = resolve(&tg)
		}
		fasthttp.ReleaseArgs(args)
		taken[rt] = true
		if rt.name != c.want {
			t.Errorf("%s %s?%s: routed to %s, want %s", c.method, c.path, c.query, rt.name, c.want)
		}
		ev := RequestEvent{Operation: rt.name, Status: http.StatusOK}
		if got := ev.Mutation(); got != c.mutation {
			t.Errorf("%s %s?%s (%s): Mutation() = %v, want %v", c.method, c.path, c.query, rt.name, got, c.mutation)
		}
		if ev.Status = http.StatusForbidden; ev.Mutation() {
			t.Errorf("%s: a failed request is a mutation", rt.name)
		}
		if !slices.Contains(ops, rt.name) {
			t.Errorf("route %s is not in Operations()", rt.name)
		}
	}
	for _, rs := range [][]route{routes, vaultRoutes} {
		for i := range rs {
			if !taken[&rs[i]] {
				t.Errorf("route %d (%s) is taken by no case: add one", i, rs[i].name)
			}
			if rs[i].name == "" || rs[i].match == nil || rs[i].serve == nil {
				t.Errorf("route %d (%q) lacks a name, match or handler", i, rs[i].name)
			}
		}
	}
	if !slices.Contains(ops, unknownOperation) {
		t.Errorf("Operations() = %q lacks %q", ops, unknownOperation)
	}
}

// awsCodes are the S3 error codes AWS documents, with their statuses, and
// the admin API's own codes.
var awsCodes = map[string][]int{
	"AccessDenied": {403}, "AccessControlListNotSupported": {400}, "InvalidBucketName": {400}, "KeyTooLongError": {400}, "InvalidArgument": {400},
	"InvalidRequest": {400}, "InvalidDigest": {400}, "MalformedXML": {400}, "MethodNotAllowed": {405},
	"NotImplemented": {501}, "EntityTooLarge": {400}, "MissingContentLength": {411}, "PreconditionFailed": {412},
	"InvalidRange": {416}, "InternalError": {500}, "ServiceUnavailable": {503}, "SlowDown": {503},
	"RequestTimeout": {400}, "IncompleteBody": {400}, "NoSuchBucket": {404}, "NoSuchKey": {404},
	"BucketAlreadyOwnedByYou": {409}, "BucketNotEmpty": {409}, "BadDigest": {400}, "MetadataTooLarge": {400}, "TooManyBuckets": {400},
	"SignatureDoesNotMatch": {403}, "InvalidAccessKeyId": {403}, "RequestTimeTooSkewed": {403},
	"AuthorizationHeaderMalformed": {400}, "AuthorizationQueryParametersError": {400},
	"XAmzContentSHA256Mismatch": {400}, "NoSuchUpload": {404}, "InvalidPart": {400}, "InvalidPartOrder": {400},
	"EntityTooSmall": {400}, "RequestHeaderSectionTooLarge": {400}, "InvalidPartNumber": {416},
	"UnexpectedContent": {400}, "QuotaExceeded": {403},
	"InvalidTag": {400}, "NoSuchTagSet": {404}, "ConditionalRequestConflict": {409}, "InvalidPolicyDocument": {400},
	"MaxPostPreDataLengthExceededError": {400}, "MalformedPOSTRequest": {400},
	"NoSuchVersion": {404}, "IllegalVersioningConfigurationException": {400}, "InvalidBucketState": {409},
	"ObjectLockConfigurationNotFoundError": {404}, "NoSuchObjectLockConfiguration": {404}, "InvalidStorageClass": {400},
	// Not AWS's: drives too full to take the write (HTTP's 507, as MinIO).
	"InsufficientStorage":          {507},
	"NoSuchCORSConfiguration":      {404},
	"NoSuchLifecycleConfiguration": {404},
	"OperationAborted":             {409}, "MalformedPolicy": {400}, "NoSuchBucketPolicy": {404},
	// What AWS answers a CORS preflight it refuses (not in the error list).
	"AccessForbidden": {403}, "BadRequest": {400},
	// The admin API.
	"TenantAlreadyExists": {409}, "NoSuchTenant": {404}, "TenantNotEmpty": {409}, "InvalidTenantName": {400},
	"NotFound": {404},
}

// TestErrorTable checks that every S3 error is declared in errors.go, with
// a known code and its status, and that every error the table maps
// becomes one of them.
func TestErrorTable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	declared := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if id, ok := lit.Type.(*ast.Ident); !ok || id.Name != "Error" {
				return true
			}
			if name != "errors.go" {
				t.Errorf("%s: an S3 error declared outside errors.go", fset.Position(lit.Pos()))
				return true
			}
			if len(lit.Elts) != 3 {
				t.Errorf("%s: want Error{status, code, message}", fset.Position(lit.Pos()))
				return true
			}
			codeLit, ok := lit.Elts[1].(*ast.BasicLit)
			if !ok {
				return true // withMessage: a declared error's code
			}
			declared++
			code, err := strconv.Unquote(codeLit.Value)
			if err != nil {
				t.Fatal(err)
			}
			status := strings.TrimPrefix(types(lit.Elts[0]), "http.")
			want, known := awsCodes[code]
			if !known {
				t.Errorf("%s: code %q is no S3 code", fset.Position(lit.Pos()), code)
				return true
			}
			if statusOf(status) == 0 || !slices.Contains(want, statusOf(status)) {
				t.Errorf("%s: code %s with status %s, want %v", fset.Position(lit.Pos()), code, status, want)
			}
			return true
		})
	}
	if declared < len(awsCodes) {
		t.Errorf("errors.go declares %d errors, fewer than the %d codes known", declared, len(awsCodes))
	}
	for _, m := range errorTable {
		e := toS3(m.err)
		if e == ErrInternal || e != m.s3 {
			t.Errorf("toS3(%v) = %v, want %v", m.err, e, m.s3)
		}
		if want, ok := awsCodes[e.Code]; !ok || !slices.Contains(want, e.Status) {
			t.Errorf("%v maps to %s %d: no S3 code and status", m.err, e.Code, e.Status)
		}
	}
}

// types returns the source of a status expression such as
// http.StatusForbidden.
func types(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := s.X.(*ast.Ident); ok {
			return x.Name + "." + s.Sel.Name
		}
	}
	return ""
}

// statusOf returns the value of an http.Status* constant name.
func statusOf(name string) int {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" && "Status"+strings.NewReplacer(" ", "", "-", "", "'", "").Replace(text) == name {
			return code
		}
	}
	return 0
}

// internalErrors are the sentinels of the packages below s3 that are
// meant to answer InternalError: a fault of the server, not the request.
var internalErrors = []string{"engine.ErrUnknownDrive", "engine.ErrHealIncomplete", // the healer's, never a request's
	"engine.ErrNotTiered"} // the tier pass's, never a request's

// TestErrorTableCoversSentinels checks that every exported error sentinel
// of engine and sigv4 has a row in errorTable, or is listed in
// internalErrors: a new engine or sigv4 error cannot reach a client as
// an unexplained InternalError.
func TestErrorTableCoversSentinels(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	mapped := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if v, ok := n.(*ast.ValueSpec); ok && len(v.Names) == 1 && v.Names[0].Name == "errorTable" {
			ast.Inspect(v, func(n ast.Node) bool {
				if s := types(nodeExpr(n)); s != "" {
					mapped[s] = true
				}
				return true
			})
			return false
		}
		return true
	})
	if len(mapped) < len(errorTable) {
		t.Fatalf("found %d sentinels in errorTable's source, want at least %d", len(mapped), len(errorTable))
	}
	for pkg, dir := range map[string]string{"engine": "../engine", "sigv4": "sigv4"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, s := range g.Specs {
					for _, id := range s.(*ast.ValueSpec).Names {
						if !strings.HasPrefix(id.Name, "Err") || !id.IsExported() {
							continue
						}
						found++
						if full := pkg + "." + id.Name; !mapped[full] && !slices.Contains(internalErrors, full) {
							t.Errorf("%s (%s) has no row in errorTable: map it, or list it in internalErrors", full, fset.Position(id.Pos()))
						}
					}
				}
			}
		}
		if found == 0 {
			t.Errorf("no Err* sentinels found in %s", dir)
		}
	}
}

func nodeExpr(n ast.Node) ast.Expr {
	e, _ := n.(ast.Expr)
	return e
}

// TestHeaderRulesNameRoutes: every operation a header rule names is a
// route, so a misspelt name cannot silently switch a rule off.
func TestHeaderRulesNameRoutes(t *testing.T) {
	names := map[string]bool{}
	for _, rt := range routes {
		names[rt.name] = true
	}
	for _, r := range headerRules {
		for _, op := range r.ops {
			if !names[op] {
				t.Errorf("header rule %q names %q, which is no route", r.header, op)
			}
		}
		if r.err == nil {
			t.Errorf("header rule %q has no error", r.header)
		}
	}
}
