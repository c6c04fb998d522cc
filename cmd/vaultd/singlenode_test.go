package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/raft"

	"github.com/vaultaire/vaultaire/internal/testnet"
	"github.com/vaultaire/vaultaire/s3"
)

// startSingleNode runs `vaultd server` in-process as a single node (no
// cluster flags) and returns its S3 and Raft addresses once it serves. It
// is stopped, and must exit cleanly, when the test ends.
func startSingleNode(t *testing.T) (s3Addr, raftAddr string, root aws.Credentials) {
	t.Helper()
	dir := t.TempDir()
	s3Addr, raftAddr = testnet.Addr(t), testnet.Addr(t)
	root = aws.Credentials{AccessKeyID: "SINGLEROOTKEY", SecretAccessKey: "single-root-secret-1"}
	getenv := func(k string) string {
		return map[string]string{"VAULT_ROOT_ACCESS_KEY": root.AccessKeyID, "VAULT_ROOT_SECRET_KEY": root.SecretAccessKey}[k]
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--name", "solo", "--data", dir + "/a," + dir + "/b", "--s3", s3Addr, "--raft", raftAddr, "--log-level", "warn"}, getenv, &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", tail(errb.String(), 16<<10))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("server exited before serving: %v\n%s", err, errb.String())
		default:
		}
		if resp, err := hc.Get("http://" + s3Addr + "/_vault/health"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s3Addr, raftAddr, root
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("single node not healthy after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// raftGauges reads the Raft term and commit index from the node's metrics
// (as root).
func raftGauges(t *testing.T, s3Addr string, root aws.Credentials) (term, commit uint64) {
	t.Helper()
	resp, err := metricsGet(t.Context(), "http://"+s3Addr+"/_vault/metrics", root)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != "vaultaire_raft_term" && name != "vaultaire_raft_commit_index") {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics: %q: %v", sc.Text(), err)
		}
		if name == "vaultaire_raft_term" {
			term = uint64(f)
		} else {
			commit = uint64(f)
		}
		found++
	}
	if found != 2 {
		t.Fatalf("metrics: found %d of the raft term and commit index", found)
	}
	return term, commit
}

// TestSingleNodeRaftAttack replays the probe against the real server
// wiring: a single node's --raft address is reached with raft's own TCP
// transport (no handshake) by a process posing as a leader of a newer
// term, which appends a createKey entry giving it a key of another
// tenant, sends heartbeats and asks for votes. Every RPC must fail, the
// node's term must not move, the injected key must be unknown to S3 and
// the tenant's object must be unchanged.
func TestSingleNodeRaftAttack(t *testing.T) {
	s3Addr, raftAddr, root := startSingleNode(t)
	ctx := t.Context()
	admin := &adminClient{endpoint: "http://" + s3Addr, creds: root, http: &http.Client{Timeout: 30 * time.Second}}
	var victim s3.NewTenant
	if err := admin.do(ctx, http.MethodPut, "/_vault/admin/tenants/victim", &victim); err != nil {
		t.Fatal(err)
	}
	client := func(ak, sk string) *awss3.Client {
		return awss3.New(awss3.Options{
			BaseEndpoint: aws.String("http://" + s3Addr), Region: "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""), UsePathStyle: true, RetryMaxAttempts: 1,
		})
	}
	owner := client(victim.AccessKey, victim.SecretKey)
	body := []byte("the victim's data")
	if _, err := owner.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("private")}); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("private"), Key: aws.String("secret.txt"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}

	// The entry the attacker appends: cluster's command encoding (type
	// byte 3, createKey, then JSON) with a key of its choosing.
	const injectedAK, injectedSK = "INJECTEDACCESSKEY000", "injected-secret-0123456789abcdef"
	payload, err := json.Marshal(map[string]any{"tenant": "victim", "key": map[string]any{
		"access_key": injectedAK, "secret": injectedSK, "created": time.Now().UTC().Format(time.RFC3339Nano),
	}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := append([]byte{3}, payload...)

	attacker, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { attacker.Close() })
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(attacker.LocalAddr())}
	id, target := raft.ServerID("solo"), raft.ServerAddress(raftAddr)

	term, commit := raftGauges(t, s3Addr, root)
	var answered []string
	// A single leader's entries are all of its own term, so the attacker's
	// PrevLogTerm is the current term. A usage flush may append meanwhile:
	// try a few times, reading the index again.
	for try := range 3 {
		_, commit = raftGauges(t, s3Addr, root)
		var resp raft.AppendEntriesResponse
		err := attacker.AppendEntries(id, target, &raft.AppendEntriesRequest{
			RPCHeader: hdr, Term: term + 10 + uint64(try), PrevLogEntry: commit, PrevLogTerm: term,
			Entries:           []*raft.Log{{Index: commit + 1, Term: term + 10 + uint64(try), Type: raft.LogCommand, Data: cmd}},
			LeaderCommitIndex: commit + 1,
		}, &resp)
		if err != nil {
			t.Logf("append: %v", err)
			continue
		}
		answered = append(answered, fmt.Sprintf("append (success %v)", resp.Success))
		if resp.Success {
			break
		}
	}
	var hb raft.AppendEntriesResponse
	if err := attacker.AppendEntries(id, target, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: term + 20, LeaderCommitIndex: commit + 1}, &hb); err == nil {
		answered = append(answered, "heartbeat")
	}
	var vote raft.RequestVoteResponse
	if err := attacker.RequestVote(id, target, &raft.RequestVoteRequest{RPCHeader: hdr, Term: term + 30, LastLogIndex: commit + 100, LastLogTerm: term + 30}, &vote); err == nil {
		answered = append(answered, fmt.Sprintf("vote (granted %v)", vote.Granted))
	}
	if len(answered) > 0 {
		t.Errorf("the node's raft answered an unauthenticated peer: %s", strings.Join(answered, ", "))
	}

	// Default raft timeouts (1 s): a node that stepped down would have
	// held an election of a newer term within a few seconds.
	time.Sleep(3 * time.Second)
	if got, _ := raftGauges(t, s3Addr, root); got != term {
		t.Errorf("raft term = %d after the attack, want %d", got, term)
	}
	_, err = client(injectedAK, injectedSK).GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("private"), Key: aws.String("secret.txt")})
	if got := errorCode(err); got != "InvalidAccessKeyId" {
		t.Errorf("GET with the injected key: code %q (err %v), want InvalidAccessKeyId", got, err)
	}
	got, err := owner.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("private"), Key: aws.String("secret.txt")})
	if err != nil {
		t.Fatalf("GET by the owner: %v", err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || !bytes.Equal(data, body) {
		t.Errorf("object after the attack = %q, %v; want %q", data, err, body)
	}
	var ts []s3.TenantInfo
	if err := admin.do(ctx, http.MethodGet, "/_vault/admin/tenants", &ts); err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts {
		if tn.Name == "victim" && (len(tn.AccessKeys) != 1 || tn.AccessKeys[0] != victim.AccessKey) {
			t.Errorf("victim's access keys = %v, want only %s", tn.AccessKeys, victim.AccessKey)
		}
	}
}
