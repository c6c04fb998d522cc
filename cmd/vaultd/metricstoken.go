package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// metricsTokenFile is the file under the first data directory that holds
// the generated metrics token.
const metricsTokenFile = "metrics-token"

// metricsToken returns the bearer token that /_vault/metrics requires
// (s3.Config.MetricsToken) and where it came from: VAULT_METRICS_TOKEN
// (file ""); else the first line of the file VAULT_METRICS_TOKEN_FILE;
// else the file metrics-token in dir, created with a random token (32
// bytes, hex) at the first start. A token file must be readable by its
// owner only (mode 0600 or stricter); the generated one is. A cluster's
// nodes each generate their own: set VAULT_METRICS_TOKEN or
// VAULT_METRICS_TOKEN_FILE alike on every node for one token.
func metricsToken(getenv func(string) string, dir string) (token, file string, created bool, err error) {
	if tok := getenv("VAULT_METRICS_TOKEN"); tok != "" {
		return tok, "", false, nil
	}
	file = getenv("VAULT_METRICS_TOKEN_FILE")
	if file == "" {
		file = filepath.Join(dir, metricsTokenFile)
		switch _, err := os.Stat(file); {
		case errors.Is(err, fs.ErrNotExist):
			b := make([]byte, 32)
			rand.Read(b)
			if err := writeFileAtomic(file, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return "", "", false, fmt.Errorf("metrics token: write %s: %w", file, err)
			}
			created = true
		case err != nil:
			return "", "", false, fmt.Errorf("metrics token: %w", err)
		}
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", "", false, fmt.Errorf("metrics token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", "", false, fmt.Errorf("metrics token file %s has mode %04o: it must be readable by its owner only (chmod 600)", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", false, fmt.Errorf("metrics token: %w", err)
	}
	token, _, _ = strings.Cut(string(b), "\n")
	if token = strings.TrimSpace(token); token == "" {
		return "", "", false, fmt.Errorf("metrics token file %s is empty", file)
	}
	return token, file, created, nil
}
