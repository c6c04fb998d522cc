package bench

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteTable writes res as a table for people.
func WriteTable(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s %s × %d on %s (bucket %s", res.Workload, FormatSize(res.Size), res.Concurrency, res.Endpoint, res.Bucket)
	if res.Objects > 0 {
		fmt.Fprintf(w, ", %d objects", res.Objects)
	}
	if res.Mix != "" {
		fmt.Fprintf(w, ", mix %s", res.Mix)
	}
	if res.Verify {
		fmt.Fprint(w, ", verified")
	}
	fmt.Fprintf(w, "), %.1fs measured\n", res.Seconds)
	fmt.Fprintln(tw, "op\tops\tops/s\tMiB/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	row := func(name string, ops int64, opsPerSec, mib float64, l LatencyMS, errs string) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n",
			name, ops, opsPerSec, mib2(mib), l.P50, l.P90, l.P99, l.P999, l.Max, errs)
	}
	names := make([]string, 0, len(res.ByOp))
	for n := range res.ByOp {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := res.ByOp[n]
		row("  "+n, o.Ops, o.OpsPerSec, -1, o.Latency, "")
	}
	row(string(res.Workload), res.Ops, res.OpsPerSec, res.MiBPerSec, res.Latency, fmt.Sprint(res.ErrorOps))
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.KeysPerSec > 0 {
		fmt.Fprintf(w, "keys listed: %.0f/s\n", res.KeysPerSec)
	}
	for _, code := range sortedCodes(res.Errors) {
		msg := res.Samples[code]
		if len(msg) > 160 {
			msg = msg[:160] + "…"
		}
		fmt.Fprintf(w, "error %s: %d  (%s)\n", code, res.Errors[code], msg)
	}
	return nil
}

func mib2(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// WritePlot draws res.Series, throughput above latency, to w as SVG, or as
// PNG if name ends in .png.
func WritePlot(w io.Writer, name string, res *Result) error {
	thr := plot.New()
	thr.Title.Text = fmt.Sprintf("%s %s × %d: throughput", res.Workload, FormatSize(res.Size), res.Concurrency)
	thr.X.Label.Text = "seconds"
	lat := plot.New()
	lat.Title.Text = "latency"
	lat.X.Label.Text = "seconds"
	lat.Y.Label.Text = "ms"

	ops, mib, mean, mx := make(plotter.XYs, len(res.Series)), make(plotter.XYs, len(res.Series)),
		make(plotter.XYs, len(res.Series)), make(plotter.XYs, len(res.Series))
	p99 := make(plotter.XYs, len(res.Series))
	for i, s := range res.Series {
		x := float64(s.T) + 1
		ops[i] = plotter.XY{X: x, Y: float64(s.Ops)}
		mib[i] = plotter.XY{X: x, Y: s.MiB}
		mean[i] = plotter.XY{X: x, Y: s.MeanLatMS}
		mx[i] = plotter.XY{X: x, Y: s.MaxLatMS}
		p99[i] = plotter.XY{X: x, Y: s.P99LatMS}
	}
	if res.Bytes > 0 {
		thr.Y.Label.Text = "MiB/s"
		if err := addLine(thr, "MiB/s", mib, 0); err != nil {
			return err
		}
	} else {
		thr.Y.Label.Text = "ops/s"
		if err := addLine(thr, "ops/s", ops, 0); err != nil {
			return err
		}
	}
	if err := addLine(lat, "mean", mean, 1); err != nil {
		return err
	}
	if err := addLine(lat, "p99", p99, 3); err != nil {
		return err
	}
	if err := addLine(lat, "max", mx, 2); err != nil {
		return err
	}
	thr.Y.Min, lat.Y.Min = 0, 0

	const width, height = 20 * vg.Centimeter, 18 * vg.Centimeter
	var c vg.CanvasWriterTo
	if strings.EqualFold(filepath.Ext(name), ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	} else {
		c = vgsvg.New(width, height)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{thr}, {lat}}, tiles, dc)
	thr.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	_, err := c.WriteTo(w)
	return err
}

func addLine(p *plot.Plot, label string, xys plotter.XYs, color int) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(color)
	p.Add(l)
	p.Legend.Add(label, l)
	p.Legend.Top = true
	return nil
}
