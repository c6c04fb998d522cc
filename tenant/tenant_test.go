package tenant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSecretRedacted: a Key and its Secret never show the secret, whatever
// prints, logs or marshals them.
func TestSecretRedacted(t *testing.T) {
	k := NewKey(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	secret := string(k.Secret)
	tn := Tenant{Name: "acme", AccessKeys: []string{k.AccessKey}}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outputs["fmt "+verb+" key"] = fmt.Sprintf(verb, k)
		outputs["fmt "+verb+" secret"] = fmt.Sprintf(verb, k.Secret)
		outputs["fmt "+verb+" ptr"] = fmt.Sprintf(verb, &k)
	}
	outputs["Sprint"] = fmt.Sprint(k, k.Secret, []Key{k}, map[string]Key{"a": k})
	outputs["Println"] = fmt.Sprintln(k, tn)
	outputs["error"] = fmt.Errorf("wrapped %v", k.Secret).Error()
	jb, _ := json.Marshal(k)
	outputs["json"] = string(jb)
	for name, h := range map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		"json": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("key", "key", k, "secret", k.Secret, "any", any(k), "slice", []Key{k}, "struct", struct{ K Key }{k})
		l.Info("attr", slog.Any("k", &k), slog.Group("g", "s", k.Secret))
		outputs["slog "+name] = buf.String()
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
	}
	if !strings.Contains(outputs["slog text"], k.AccessKey) || !strings.Contains(outputs["fmt %v key"], "REDACTED") {
		t.Errorf("redaction hides too much: %s / %s", outputs["slog text"], outputs["fmt %v key"])
	}
	if k.Secret.String() != "REDACTED" || len(secret) != SecretLen {
		t.Errorf("String() = %q, len(string(secret)) = %d", k.Secret.String(), len(secret))
	}
}
