package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vaultaire/vaultaire/s3"
)

// TestAdminErrors checks the S3 error codes the admin API answers for the
// cluster store's tenant errors, on a real node.
func TestAdminErrors(t *testing.T) {
	s3Addr, _, root := startSingleNode(t)
	ctx := t.Context()
	admin := &adminClient{endpoint: "http://" + s3Addr, creds: root, http: &http.Client{Timeout: 30 * time.Second}}
	var created s3.NewTenant
	if err := admin.do(ctx, http.MethodPut, "/_vault/admin/tenants/errs", &created); err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]string{"quota": `{"max_bytes":1000,"max_artifacts":10}`, "rate": `{"rps":50,"burst":60}`} {
		if err := admin.send(ctx, http.MethodPut, "/_vault/admin/tenants/errs/"+path, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		method, path, body string
		want               string // error code
	}{
		{http.MethodPut, "/_vault/admin/tenants/errs", "", "TenantAlreadyExists"},
		{http.MethodPut, "/_vault/admin/tenants/root", "", "TenantAlreadyExists"},
		{http.MethodPut, "/_vault/admin/tenants/No_Such-Name", "", "InvalidTenantName"},
		{http.MethodDelete, "/_vault/admin/tenants/nobody", "", "NoSuchTenant"},
		{http.MethodDelete, "/_vault/admin/tenants/root", "", "AccessDenied"},
		{http.MethodPost, "/_vault/admin/tenants/nobody/keys", "", "NoSuchTenant"},
		{http.MethodPut, "/_vault/admin/tenants/nobody/rate", `{"rps":1}`, "NoSuchTenant"},
		{http.MethodPut, "/_vault/admin/tenants/nobody/quota", `{"max_bytes":1}`, "NoSuchTenant"},
		{http.MethodPut, "/_vault/admin/tenants/errs/rate", `{"rps":-1}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"max_bytes":-1}`, "InvalidArgument"},
		// Misspelt fields are refused, not read as "no limit" (found by a
		// hostile probe).
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"bytes":-1,"artifacts":-5}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/rate", `{"rps":5,"bursts":10}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"max_bytes":1}{"max_bytes":2}`, "InvalidArgument"},
		// Each route takes its own fields, at least one, each once, none
		// null: nothing else may clear a limit (hostile probe A1).
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"rps":5}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"burst":7}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `null`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"max_bytes":null}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/quota", `{"max_bytes":1,"max_artifacts":1,"max_bytes":0}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/rate", `{"max_bytes":5}`, "InvalidArgument"},
		{http.MethodPut, "/_vault/admin/tenants/errs/rate", `[]`, "InvalidArgument"},
		{http.MethodGet, "/_vault/admin/nothing", "", "NotFound"},
		// Root is never rate-limited: a rate for it is refused, not
		// stored and ignored (issue 17.3).
		{http.MethodPut, "/_vault/admin/tenants/root/rate", `{"rps":5,"burst":5}`, "InvalidArgument"},
	} {
		err := admin.send(ctx, c.method, c.path, []byte(c.body), nil)
		if err == nil || !strings.HasPrefix(err.Error(), c.want+":") {
			t.Errorf("%s %s: %v, want %s", c.method, c.path, err, c.want)
		}
	}
	var ts []s3.TenantInfo
	if err := admin.do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts {
		if tn.Name == "errs" && len(tn.AccessKeys) != 1 {
			t.Errorf("tenant errs has keys %q, want only its first", tn.AccessKeys)
		}
		if l := tn.Limits; tn.Name == "errs" && (l.MaxBytes != 1000 || l.MaxArtifacts != 10 || l.RPS != 50 || l.Burst != 60) {
			t.Errorf("tenant errs has limits %+v after refused changes, want its first", l)
		}
		if tn.Name == "root" && (tn.Limits.RPS != 0 || tn.Limits.Burst != 0) {
			t.Errorf("root's rate %v burst %d stored, want none", tn.Limits.RPS, tn.Limits.Burst)
		}
	}
}
