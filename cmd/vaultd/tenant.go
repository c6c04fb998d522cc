package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/vaultaire/vaultaire/bench"
	"github.com/vaultaire/vaultaire/s3"
)

// adminClient calls a node's /_vault/admin API with root credentials.
type adminClient struct {
	endpoint string
	creds    aws.Credentials
	http     *http.Client
}

// newAdminClient returns a client of endpoint's admin API with the root
// credentials from the environment, or from the first of the data
// directories.
func newAdminClient(getenv func(string) string, endpoint, data string) (*adminClient, error) {
	root, _, err := rootCredentials(getenv, filepath.Clean(strings.Split(data, ",")[0]), false)
	if err != nil {
		return nil, err
	}
	return &adminClient{
		endpoint: endpoint,
		creds:    aws.Credentials{AccessKeyID: root.AccessKey, SecretAccessKey: root.Secret},
		http:     &http.Client{Timeout: 30 * time.Second},
	}, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	return c.send(ctx, method, path, nil, out)
}

// send is do with a request body.
func (c *adminClient) send(ctx context.Context, method, path string, body []byte, out any) error {
	u, err := url.JoinPath(c.endpoint, path)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, c.creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		if xmlErr := xml.Unmarshal(answer, &e); xmlErr == nil && e.Code != "" {
			return fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(answer, out)
	}
	return nil
}

func runTenant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("tenant: want create, add-key, list, delete, set-rate or set-quota")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("vaultd tenant "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr(getenv, "VAULT_ENDPOINT", "http://127.0.0.1:9000"), "a node's S3 endpoint")
	data := fs.String("data", "./data", "data directory to read generated root credentials from when the environment has none")
	asJSON := fs.Bool("json", false, "print JSON")
	rps := fs.Float64("rps", 0, "set-rate: requests per second (0: the default, 100)")
	burst := fs.Int("burst", 0, "set-rate: burst size (0: the default, 200, or the rate)")
	bytesIn := fs.String("bytes-in", "0", "set-rate: most request body bytes per second per node, such as 10MiB (0: unlimited)")
	bytesOut := fs.String("bytes-out", "0", "set-rate: most response body bytes per second per node, such as 10MiB (0: unlimited)")
	quotaBytes := fs.String("bytes", "0", "set-quota: most bytes stored, such as 10GiB (0: unlimited)")
	quotaArtifacts := fs.Int64("artifacts", 0, "set-quota: most artifacts stored (0: unlimited)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c, err := newAdminClient(getenv, *endpoint, *data)
	if err != nil {
		return err
	}
	name := func() (string, error) {
		if len(positional) != 1 {
			return "", fmt.Errorf("tenant %s: want exactly one tenant name", sub)
		}
		return positional[0], nil
	}
	switch sub {
	case "create":
		n, err := name()
		if err != nil {
			return err
		}
		var t s3.NewTenant
		if err := c.do(ctx, http.MethodPut, "/_vault/admin/tenants/"+url.PathEscape(n), &t); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(t)
		}
		fmt.Fprintf(stdout, "tenant:     %s\naccess key: %s\nsecret key: %s\n", t.Name, t.AccessKey, t.SecretKey)
		return nil
	case "add-key":
		n, err := name()
		if err != nil {
			return err
		}
		var t s3.NewTenant
		if err := c.do(ctx, http.MethodPost, "/_vault/admin/tenants/"+url.PathEscape(n)+"/keys", &t); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(t)
		}
		fmt.Fprintf(stdout, "tenant:     %s\naccess key: %s\nsecret key: %s\n", t.Name, t.AccessKey, t.SecretKey)
		return nil
	case "list":
		var ts []s3.TenantInfo
		if err := c.do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(ts)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tSTORED\tARTIFACTS\tQUOTA\tRATE\tACCESS KEYS")
		for _, t := range ts {
			quota := "-"
			if t.Limits.MaxBytes > 0 || t.Limits.MaxArtifacts > 0 {
				quota = fmt.Sprintf("%s/%d", humanLimit(t.Limits.MaxBytes), t.Limits.MaxArtifacts)
			}
			rate := "default"
			if t.Limits.RPS > 0 {
				rate = fmt.Sprintf("%g/s burst %d", t.Limits.RPS, t.Limits.Burst)
			}
			if t.Limits.BytesIn > 0 || t.Limits.BytesOut > 0 {
				rate += fmt.Sprintf(", in %s/s, out %s/s", humanLimit(t.Limits.BytesIn), humanLimit(t.Limits.BytesOut))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.Name, t.Created.UTC().Format(time.RFC3339),
				humanBytes(uint64(max(0, t.Usage.Bytes))), t.Usage.Artifacts, quota, rate, strings.Join(t.AccessKeys, ","))
		}
		return tw.Flush()
	case "set-rate", "set-quota":
		n, err := name()
		if err != nil {
			return err
		}
		l := s3.TenantLimits{RPS: *rps, Burst: *burst, MaxArtifacts: *quotaArtifacts}
		if l.MaxBytes, err = bench.ParseSize(*quotaBytes); err != nil {
			return fmt.Errorf("--bytes: %w", err)
		}
		if l.BytesIn, err = bench.ParseSize(*bytesIn); err != nil {
			return fmt.Errorf("--bytes-in: %w", err)
		}
		if l.BytesOut, err = bench.ParseSize(*bytesOut); err != nil {
			return fmt.Errorf("--bytes-out: %w", err)
		}
		// Each route takes its own fields; this sets all of them.
		what := strings.TrimPrefix(sub, "set-")
		fields := map[string]any{"max_bytes": l.MaxBytes, "max_artifacts": l.MaxArtifacts}
		if what == "rate" {
			fields = map[string]any{"rps": l.RPS, "burst": l.Burst, "bytes_in": l.BytesIn, "bytes_out": l.BytesOut}
		}
		body, _ := json.Marshal(fields)
		return c.send(ctx, http.MethodPut, "/_vault/admin/tenants/"+url.PathEscape(n)+"/"+what, body, nil)
	case "delete":
		n, err := name()
		if err != nil {
			return err
		}
		return c.do(ctx, http.MethodDelete, "/_vault/admin/tenants/"+url.PathEscape(n), nil)
	}
	return fmt.Errorf("tenant: unknown subcommand %q", sub)
}

// humanLimit prints a byte limit, "-" for none.
func humanLimit(n int64) string {
	if n <= 0 {
		return "-"
	}
	return humanBytes(uint64(n))
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// parseInterspersed parses fs from args, accepting flags before, between
// and after the positional arguments, which it returns in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
