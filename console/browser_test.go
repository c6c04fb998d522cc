package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/vaultaire/vaultaire/internal/testnet"
)

// chromium finds the headless browser: $CHROMIUM, else chromium or
// google-chrome on PATH. Without one the test skips, except in CI
// (CI=true), where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must install Debian's chromium (.ci/run)")
	}
	t.Skip("chromium not found (apt-get install chromium, or set CHROMIUM): skipping the console browser test")
	return ""
}

// startVaultd builds cmd/vaultd and runs it as a single node with the
// given root keys; it is stopped when the test ends.
func startVaultd(t *testing.T, rootAK, rootSK string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "vaultd")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/vaultaire/vaultaire/cmd/vaultd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vaultd: %v\n%s", err, out)
	}
	addr, raft := testnet.Addr(t), testnet.Addr(t)
	cmd := exec.Command(bin, "server", "--name", "console", "--data", dir+"/a,"+dir+"/b",
		"--s3", addr, "--raft", raft, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "VAULT_ROOT_ACCESS_KEY="+rootAK, "VAULT_ROOT_SECRET_KEY="+rootSK)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vaultd output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/_vault/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("vaultd exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("vaultd not healthy after 60s")
		}
	}
}

// TestConsoleBrowser drives the console in headless Chromium against a
// real vaultd: a wrong secret is refused; root creates a tenant, its keys
// and limits; the tenant creates a bucket, uploads a small file and a
// multipart one, browses a folder, downloads byte-identically, reads
// metadata and a presigned link, sees the charts and deletes. With
// CONSOLE_SCREENSHOTS=DIR each page is saved as DIR/console-*.png (make
// console-test writes docs/).
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short")
	}
	exe := chromium(t)
	const rootAK, rootSK = "CONSOLEROOTKEY", "console-root-secret-1"
	addr := startVaultd(t, rootAK, rootSK)
	base := "http://" + addr + "/_vault/console/"

	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	downloads := t.TempDir()
	files := t.TempDir()
	small := []byte("hello from the console\n" + strings.Repeat("0123456789", 100))
	big := make([]byte, 12<<20+12345)
	rand.Read(big)
	for name, b := range map[string][]byte{"small.txt": small, "big.bin": big} {
		if err := os.WriteFile(filepath.Join(files, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1200, 820))
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 110*time.Second)
	defer cancelT()

	// Each step gets 60 s (the multipart upload is the longest); the page's
	// error line is reported when one fails.
	consoleError := func() string {
		ectx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		msg, _ := chromedp.Run(ectx, chromedp.Evaluate[string](`document.getElementById("error").textContent + `+
			`((n) => n ? " | note: " + n.textContent : "")(document.querySelector("main .note"))`))
		return msg
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v (console error: %q)", name, err, consoleError())
		}
	}
	get := func(name string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, a)
		if err != nil {
			t.Fatalf("%s: %v (console error: %q)", name, err, consoleError())
		}
		return v
	}
	truthy := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))(ctx, tg)
			return err
		})
	}
	shot := func(name string) {
		t.Helper()
		step("settle "+name, chromedp.Sleep(200*time.Millisecond))
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, "console-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	login := func(ak, sk string) {
		t.Helper()
		step("login "+ak, chromedp.Navigate(base), chromedp.WaitVisible(css("#login")),
			chromedp.SendKeys(css("#ak"), ak), chromedp.SendKeys(css("#sk"), sk), chromedp.Click(css("#signin")),
			truthy(`!document.getElementById("tabs").hidden || !document.getElementById("error").hidden`))
	}
	loginOK := func(ak, sk string) {
		t.Helper()
		login(ak, sk)
		if msg := consoleError(); msg != "" {
			t.Fatalf("login %s: %s", ak, msg)
		}
	}

	// A wrong secret: an error, no tabs, no data.
	login(rootAK, "not-the-secret")
	step("wrong secret", chromedp.WaitVisible(css("#error")))
	errText := get("error text", chromedp.Text(css("#error")))
	noData, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("tabs").hidden && !document.querySelector("#tenants,#buckets,#cluster")`))
	if err != nil || !strings.Contains(errText, "SignatureDoesNotMatch") || !noData {
		t.Fatalf("wrong secret: error %q; tabs hidden and no data: %v %v", errText, noData, err)
	}
	shot("login")

	// Root: cluster health, then a tenant with keys, rate and quota.
	loginOK(rootAK, rootSK)
	step("root cluster", chromedp.WaitVisible(css("#tab-cluster")), chromedp.WaitVisible(css("#health")))
	shot("cluster")
	step("create tenant", chromedp.Click(css("#tab-tenants")), chromedp.WaitVisible(css("#create-tenant")),
		chromedp.SendKeys(css("#tname"), "acme"), chromedp.Click(css(`#create-tenant button[type=submit]`)), chromedp.WaitVisible(css(".new-sk")))
	tenantAK := get("tenant key", chromedp.Text(css(".new-ak")))
	tenantSK := get("tenant secret", chromedp.Text(css(".new-sk")))
	if tenantAK == "" || tenantSK == "" {
		t.Fatalf("no keys shown for the new tenant: %q %q", tenantAK, tenantSK)
	}
	step("add key and limits", chromedp.Click(css(`tr[data-tenant="acme"] button.addkey`)),
		truthy(`(() => { const e = document.querySelector(".new-ak"); return !!e && e.textContent !== `+jsString(tenantAK)+` })()`),
		chromedp.SendKeys(css("#lname"), "acme"), chromedp.SendKeys(css("#lrps"), "50"),
		chromedp.SendKeys(css("#lburst"), "100"), chromedp.SendKeys(css("#lbytes"), "1073741824"),
		chromedp.SendKeys(css("#lart"), "1000"), chromedp.Click(css(`#set-limits button[type=submit]`)),
		truthy(`(() => { const r = document.querySelector('tr[data-tenant="acme"]'); return !!r && r.textContent.includes("50/s burst 100") && r.textContent.includes("1.0 GiB") && r.textContent.includes(", ") })()`))
	shot("tenants")

	// Logout forgets the keys: the login form is back, nothing stored.
	step("logout", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login")))
	clean, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("tabs").hidden && sessionStorage.length === 0 && localStorage.length === 0 && document.cookie === ""`))
	if err != nil || !clean {
		t.Fatalf("after logout: tabs shown or something stored (%v)", err)
	}

	// The tenant: bucket, uploads (one multipart), a folder.
	loginOK(tenantAK, tenantSK)
	step("create bucket", chromedp.WaitVisible(css("#create-bucket")),
		chromedp.SendKeys(css("#bname"), "photos"), chromedp.Click(css(`#create-bucket button[type=submit]`)),
		chromedp.WaitVisible(css(`tr[data-bucket="photos"]`)))
	shot("buckets")
	step("upload", chromedp.Click(css(`tr[data-bucket="photos"] a`)), chromedp.WaitVisible(css("#upload")),
		chromedp.SetUploadFiles(css("#file"), []string{filepath.Join(files, "small.txt"), filepath.Join(files, "big.bin")}),
		chromedp.Click(css(`#upload button[type=submit]`)),
		chromedp.WaitVisible(css(`tr[data-key="small.txt"]`)), chromedp.WaitVisible(css(`tr[data-key="big.bin"]`)))
	step("folder", chromedp.SetValue(css("#prefix"), "docs/"), chromedp.Click(css(`#search button[type=submit]`)),
		truthy(`!!document.querySelector("#upload label") && document.querySelector("#upload label").textContent.includes("docs/")`),
		chromedp.SetUploadFiles(css("#file"), []string{filepath.Join(files, "small.txt")}),
		chromedp.Click(css(`#upload button[type=submit]`)), chromedp.WaitVisible(css(`tr[data-key="docs/small.txt"]`)),
		chromedp.Click(css(".crumbs button:nth-of-type(2)")), chromedp.WaitVisible(css(`tr[data-prefix="docs/"]`)))

	// Metadata, a presigned link fetched outside the browser, a download.
	step("metadata", chromedp.Click(css(`tr[data-key="small.txt"] button.meta`)),
		chromedp.WaitVisible(css("#metadata")), truthy(`(document.getElementById("metadata")?.textContent ?? "").includes("etag")`))
	shot("objects")
	step("link", chromedp.Click(css(`tr[data-key="small.txt"] button.link`)), chromedp.WaitVisible(css("#presigned")))
	presigned := get("presigned", chromedp.Value(css("#presigned")))
	if got := httpGet(t, presigned); !bytes.Equal(got, small) {
		t.Fatalf("presigned GET returned %d bytes, not the file", len(got))
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	step("download", chromedp.Click(css(`tr[data-key="small.txt"] button.download`)))
	if got := waitFile(t, filepath.Join(downloads, "small.txt"), len(small)); !bytes.Equal(got, small) {
		t.Fatalf("downloaded %d bytes, not the uploaded file", len(got))
	}

	// The stored bytes, read with the S3 API; the big one went multipart.
	cli := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(tenantAK, tenantSK, "")})
	for key, want := range map[string][]byte{"small.txt": small, "big.bin": big, "docs/small.txt": small} {
		out, err := cli.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("GetObject %s: %d bytes, err %v; want the uploaded %d", key, len(b), err, len(want))
		}
		if multipart := strings.Contains(aws.ToString(out.ETag), "-"); multipart != (key == "big.bin") {
			t.Fatalf("%s: ETag %s: multipart %v", key, aws.ToString(out.ETag), multipart)
		}
	}

	// A tenant has no metrics (they name every tenant), and the node
	// refuses the tenant's signed scrape.
	noMetrics, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("tab-metrics")`))
	if err != nil || !noMetrics {
		t.Fatalf("a tenant's console shows a Metrics tab (%v)", err)
	}
	if code := signedStatus(t, "http://"+addr+"/_vault/metrics", tenantAK, tenantSK); code != http.StatusForbidden {
		t.Fatalf("a tenant's signed GET of /_vault/metrics: status %d, want 403", code)
	}

	// Delete from the console; the S3 API no longer finds it.
	step("delete", chromedp.Click(css("#tab-buckets")), chromedp.WaitVisible(css(`tr[data-bucket="photos"] a`)),
		chromedp.Click(css(`tr[data-bucket="photos"] a`)), chromedp.WaitVisible(css(`tr[data-key="small.txt"]`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`)(ctx, tg)
			return err
		}),
		chromedp.Click(css(`tr[data-key="small.txt"] button.delete`)),
		chromedp.WaitNotPresent(css(`tr[data-key="small.txt"]`)))
	_, err = cli.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("photos"), Key: aws.String("small.txt")})
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NotFound" {
		t.Fatalf("HeadObject after the console deleted it: %v", err)
	}

	// Root: charts from the node's metrics, read with root's signature.
	step("logout tenant", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login")))
	loginOK(rootAK, rootSK)
	step("metrics", chromedp.Click(css("#tab-metrics")),
		truthy(`(document.getElementById("metrics-note")?.textContent ?? "").startsWith("Refreshed")`),
		chromedp.Sleep(3500*time.Millisecond))
	shot("metrics")
}

// signedStatus GETs url signed (SigV4) with ak and sk and returns the
// status.
func signedStatus(t *testing.T, url, ak, sk string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	req.Header.Set("x-amz-content-sha256", emptySHA)
	if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, emptySHA, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, b)
	}
	return b
}

// waitFile waits for a download to complete at its full size.
func waitFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) == size {
			return b
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, err := os.ReadFile(path)
	t.Fatalf("download %s: %d bytes, %v", path, len(b), err)
	return nil
}
