package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vaultaire/vaultaire/cluster"
)

// runCluster is `vaultd cluster SUBCOMMAND`: it asks a node's admin API
// about the cluster with the root credentials.
func runCluster(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("cluster: want status")
	}
	sub, args := args[0], args[1:]
	if sub != "status" {
		return fmt.Errorf("cluster: unknown subcommand %q (want status)", sub)
	}
	fs := flag.NewFlagSet("vaultd cluster "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr(getenv, "VAULT_ENDPOINT", "http://127.0.0.1:9000"), "any node's S3 endpoint")
	data := fs.String("data", "./data", "data directory to read generated root credentials from when the environment has none")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("cluster %s: unexpected argument %q", sub, fs.Arg(0))
	}
	c, err := newAdminClient(getenv, *endpoint, *data)
	if err != nil {
		return err
	}
	var st cluster.Status
	if err := c.do(ctx, http.MethodGet, "/_vault/admin/cluster", &st); err != nil {
		return fmt.Errorf("cluster status from %s: %w", *endpoint, err)
	}
	if *asJSON {
		out, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	return writeClusterStatus(stdout, &st)
}

// writeClusterStatus prints st as a readable report.
func writeClusterStatus(w io.Writer, st *cluster.Status) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	leader := st.Leader
	if leader == "" {
		leader = "(none known)"
	}
	fmt.Fprintf(tw, "node:\t%s\n", st.Node)
	fmt.Fprintf(tw, "leader:\t%s\n", leader)
	fmt.Fprintf(tw, "raft:\tterm %d, commit index %d, applied index %d\n", st.Term, st.CommitIndex, st.AppliedIndex)

	fmt.Fprintf(tw, "\nMEMBERS (%d, %d alive)\n", len(st.Members), countAlive(st.Members))
	fmt.Fprintln(tw, "NAME\tSTATE\tS3\tRAFT\tRPC\tDRIVES")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.Name, m.State, dash(m.S3Addr), dash(m.RaftAddr), dash(m.RPCAddr), m.Drives)
	}

	fmt.Fprintf(tw, "\nRAFT SERVERS (%d)\n", len(st.Servers))
	fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tLEADER")
	for _, s := range st.Servers {
		mark := ""
		if s.Leader {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.Address, s.Suffrage, mark)
	}

	fmt.Fprintln(tw, "\nMAP")
	fmt.Fprintf(tw, "epoch:\t%d\n", st.Map.Epoch)
	fmt.Fprintf(tw, "policy:\t%s\n", dash(st.Map.Policy))
	fmt.Fprintf(tw, "PGs:\t%d over %d drives\n", st.Map.PGs, st.Map.Drives)
	older := "none"
	if len(st.Map.Older) > 0 {
		es := make([]string, len(st.Map.Older))
		for i, e := range st.Map.Older {
			es[i] = strconv.FormatUint(e, 10)
		}
		older = strings.Join(es, ", ") + " (still read, not yet migrated)"
	}
	fmt.Fprintf(tw, "older epochs:\t%s\n", older)

	fmt.Fprintf(tw, "\nDRIVES (%d)\n", len(st.Drives))
	fmt.Fprintln(tw, "ID\tNODE\tZONE\tCLASS\tSTATE\tUSED\tFREE\tERROR")
	for _, d := range st.Drives {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Node, dash(d.Zone), dash(d.Class), d.State,
			humanBytes(d.Used), humanBytes(d.Free), d.Error)
	}
	if len(st.Scrub) > 0 {
		fmt.Fprintf(tw, "\nSCRUB (drives of %s)\n", st.Node)
		fmt.Fprintln(tw, "DRIVE\tPASSES\tPROGRESS\tVERIFIED\tSHARDS\tCORRUPT\tREPAIRED\tLAST PASS\tERROR")
		for _, s := range st.Scrub {
			last := "-"
			if !s.LastPass.IsZero() {
				last = s.LastPass.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Drive, s.Passes, 100*s.Progress,
				humanBytes(s.Bytes), s.Shards, s.Corrupt, s.Repaired, last, s.Error)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// An empty last cell (no leader mark, no drive error) leaves padding.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func countAlive(ms []cluster.MemberStatus) int {
	n := 0
	for _, m := range ms {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// dash stands in for an empty field so table columns stay aligned.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanBytes formats n bytes with a binary unit and one decimal: 512 B,
// 1.5 KiB, 3.2 GiB.
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1023.95 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
