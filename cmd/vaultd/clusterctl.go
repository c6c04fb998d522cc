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
// about the cluster, or to change it, with the root credentials.
//
//	vaultd cluster status [--json]
//	vaultd cluster set-erasure [K+M] [--width W|auto]
//	vaultd cluster drain NODE | --drive ID [--undo]
//	vaultd cluster remove NODE [--force]
func runCluster(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const want = "status, set-erasure, drain or remove"
	if len(args) == 0 {
		return errors.New("cluster: want " + want)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("vaultd cluster "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", envOr(getenv, "VAULT_ENDPOINT", "http://127.0.0.1:9000"), "any node's S3 endpoint")
	data := fs.String("data", "./data", "data directory to read generated root credentials from when the environment has none")
	asJSON := fs.Bool("json", false, "print JSON")
	var (
		width        *string
		drive        *string
		undo, force  *bool
		npos, minpos int // positional arguments wanted, at most and at least
		positional   []string
	)
	switch sub {
	case "status":
	case "set-erasure":
		width = fs.String("width", "", "stripe width for new writes: artifacts larger than 4 stripes (4 MiB by default) are spread over this many PGs (1 to 16; 1 unstriped), kept as drives join and leave; auto (or 0): the default, which follows the drive count; without --width the width is kept if the operator set it")
		npos = 1
	case "drain":
		drive = fs.String("drive", "", "drain only this drive (NODE may then be left out)")
		undo = fs.Bool("undo", false, "stop draining: plan the drives back into the map")
		npos = 1
	case "remove":
		force = fs.Bool("force", false, "remove a node that is not drained (a dead node whose data was rebuilt elsewhere)")
		npos, minpos = 1, 1
	default:
		return fmt.Errorf("cluster: unknown subcommand %q (want %s)", sub, want)
	}
	// Positional arguments may come before, between or after the flags.
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		positional, args = append(positional, args[0]), args[1:]
	}
	if len(positional) > npos {
		return fmt.Errorf("cluster %s: unexpected argument %q", sub, positional[npos])
	}
	if len(positional) < minpos || sub == "drain" && len(positional) == 0 && *drive == "" || sub == "set-erasure" && len(positional) == 0 && *width == "" {
		return fmt.Errorf("cluster %s: missing argument (vaultd cluster set-erasure [K+M] [--width W|auto] | drain NODE [--drive ID] | remove NODE [--force])", sub)
	}
	c, err := newAdminClient(getenv, *endpoint, *data)
	if err != nil {
		return err
	}
	switch sub {
	case "set-erasure":
		var req erasureRequest
		if len(positional) > 0 {
			if req.Data, req.Parity, err = parsePolicy(positional[0]); err != nil {
				return fmt.Errorf("cluster set-erasure: %w", err)
			}
		}
		if req.Width, req.DefaultWidth, err = parseWidth(*width); err != nil {
			return fmt.Errorf("cluster set-erasure: %w", err)
		}
		body, _ := json.Marshal(req)
		var ms cluster.MapStatus
		if err := c.send(ctx, http.MethodPost, "/_vault/admin/cluster/erasure", body, &ms); err != nil {
			return fmt.Errorf("cluster set-erasure on %s: %w", *endpoint, err)
		}
		if *asJSON {
			return printJSON(stdout, ms)
		}
		_, err = fmt.Fprintf(stdout, "map epoch %d: erasure %s (%s), stripe width %d (%s), %d PGs over %d drives; older data is re-encoded in the background\n",
			ms.Epoch, ms.Policy, chosenBy(ms.PolicySet), ms.Width, chosenBy(ms.WidthSet), ms.PGs, ms.Drives)
		return err
	case "drain":
		node := ""
		if len(positional) > 0 {
			node = positional[0]
		}
		body, _ := json.Marshal(drainRequest{Node: node, Drive: *drive, Undo: *undo})
		var ds cluster.DrainStatus
		if err := c.send(ctx, http.MethodPost, "/_vault/admin/cluster/drain", body, &ds); err != nil {
			return fmt.Errorf("cluster drain on %s: %w", *endpoint, err)
		}
		if *asJSON {
			return printJSON(stdout, ds)
		}
		_, err = fmt.Fprintf(stdout, "draining %s: new writes avoid them, and their data moves off in the background; follow with vaultd cluster status, then vaultd cluster remove NODE\n",
			dash(strings.Join(ds.Drives, ", ")))
		return err
	case "remove":
		body, _ := json.Marshal(removeRequest{Node: positional[0], Force: *force})
		if err := c.send(ctx, http.MethodPost, "/_vault/admin/cluster/remove", body, nil); err != nil {
			return fmt.Errorf("cluster remove on %s: %w", *endpoint, err)
		}
		_, err = fmt.Fprintf(stdout, "removed %s from the cluster map and (by the leader) from Raft; stop its process\n", positional[0])
		return err
	}
	var st cluster.Status
	if err := c.do(ctx, http.MethodGet, "/_vault/admin/cluster", &st); err != nil {
		return fmt.Errorf("cluster status from %s: %w", *endpoint, err)
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	return writeClusterStatus(stdout, &st)
}

// printJSON prints v indented.
func printJSON(w io.Writer, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// parseWidth parses set-erasure's --width: "" sets nothing, "auto" or
// "0" the default width, a number that width (the node refuses one out
// of range, saying which it takes).
func parseWidth(s string) (width int, auto bool, err error) {
	switch s {
	case "":
		return 0, false, nil
	case "auto", "0":
		return 0, true, nil
	}
	w, err := strconv.Atoi(s)
	if err != nil {
		return 0, false, fmt.Errorf("--width %q: want 1 to 16, or auto (0) for the default, which follows the drive count", s)
	}
	return w, false, nil
}

// chosenBy says who chose a policy or width.
func chosenBy(set bool) string {
	if set {
		return "set by the operator"
	}
	return "follows the drive count"
}

// parsePolicy parses "K+M".
func parsePolicy(s string) (k, m int, err error) {
	ks, ms, ok := strings.Cut(s, "+")
	if ok {
		k, err = strconv.Atoi(ks)
		if err == nil {
			m, err = strconv.Atoi(ms)
		}
	}
	if !ok || err != nil || k < 1 || m < 0 {
		return 0, 0, fmt.Errorf("erasure policy %q: want K+M, K data and M parity shards (K >= 1, M >= 0), such as 4+2", s)
	}
	return k, m, nil
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
	fmt.Fprintf(tw, "policy:\t%s (%s)\n", dash(st.Map.Policy), chosenBy(st.Map.PolicySet))
	fmt.Fprintf(tw, "stripe width:\t%d (%s; large artifacts written now are striped over this many PGs)\n", max(st.Map.Width, 1), chosenBy(st.Map.WidthSet))
	fmt.Fprintf(tw, "PGs:\t%d over %d drives\n", st.Map.PGs, st.Map.Drives)
	older := "none"
	if len(st.Map.Older) > 0 {
		es := make([]string, len(st.Map.Older))
		for i, e := range st.Map.Older {
			es[i] = strconv.FormatUint(e, 10)
		}
		older = strings.Join(es, ", ") + " (still read, not yet migrated)"
		switch n := st.Map.UploadsHolding; {
		case n > 0:
			older += fmt.Sprintf("; %d multipart upload(s) in progress hold them until moved, completed, aborted, or idle for the upload hold (--upload-hold)", n)
		case n < 0:
			older += "; multipart uploads holding them: unknown (a drive did not answer)"
		}
	}
	fmt.Fprintf(tw, "older epochs:\t%s\n", older)
	if d := st.Drain; d != nil {
		fmt.Fprintf(tw, "draining:\t%s: %s\n", strings.Join(d.Drives, ", "), drainText(d, st.Map.UploadsHolding))
		if d.PGsLeft > 0 {
			fmt.Fprintf(tw, "drain rate:\t%s\n", drainRateText(d))
		}
	}

	fmt.Fprintf(tw, "\nDRIVES (%d)\n", len(st.Drives))
	fmt.Fprintln(tw, "ID\tNODE\tZONE\tCLASS\tSTATE\tUSED\tFREE\tERROR")
	for _, d := range st.Drives {
		state := d.State
		if d.Draining {
			state += ", draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Node, dash(d.Zone), dash(d.Class), state,
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

// drainText says what a drain has left and where it stands. The PG
// slots are no measure of progress (they fall only when a whole older
// map is dropped, at the end), so it gives the bytes and the maps.
func drainText(d *cluster.DrainStatus, uploadsHolding int) string {
	if d.PGsLeft == 0 {
		return "done: the drained nodes can be removed"
	}
	var left string
	switch n := len(d.Unreachable); {
	case n == len(d.Drives):
		left = "what they hold is unknown (unreachable)"
	case n > 0:
		left = fmt.Sprintf("at least %s left (%s unreachable)", humanBytes(d.BytesLeft), strings.Join(d.Unreachable, ", "))
	default:
		left = humanBytes(d.BytesLeft) + " left"
	}
	state := "in progress"
	if uploadsHolding > 0 {
		state = fmt.Sprintf("in progress, waiting for %d multipart upload(s) in progress (see older epochs)", uploadsHolding)
	}
	return fmt.Sprintf("%s in %d kept map epoch(s), %s", left, d.MapsLeft, state)
}

// drainRateText says how fast a drain goes and when it should end.
func drainRateText(d *cluster.DrainStatus) string {
	if len(d.Unreachable) > 0 {
		nodes := strings.Join(d.UnreachableNodes, " ")
		return fmt.Sprintf("none: %s of node %s unreachable (down?); the drain waits for them, and if %s is gone for good only `vaultd cluster remove --force %s` ends it (its data is rebuilt from the other shards)",
			strings.Join(d.Unreachable, ", "), dash(strings.Join(d.UnreachableNodes, ", ")), dash(nodes), dash(nodes))
	}
	if d.BytesPerSecond < 0 {
		return "unknown yet (measured over the next seconds; ask again)"
	}
	rate := humanBytes(uint64(d.BytesPerSecond)) + "/s"
	if d.Finishing {
		return rate + "; finishing: the last artifacts move, then the older map epochs are released"
	}
	eta := "unknown"
	if d.ETASeconds >= 0 {
		eta = (time.Duration(d.ETASeconds) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%s, about %s left", rate, eta)
}
