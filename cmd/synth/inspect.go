package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/internal/escape"
	"synth/weights"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show a checkpoint's format, metadata, tensors and parameter count",
		ArgsUsage: "PATH",
		Description: "PATH is a model folder (config.json + safetensors, sharded or not, or .bin/.pt),\n" +
			"a .safetensors, .pt/.bin (torch.save zip) or .gguf file, or a PEFT adapter folder.\n" +
			"Prints the format, the files (shards), the config, the metadata (long arrays such as\n" +
			"vocabularies are summarised), every tensor with dtype, shape (PyTorch order, also for\n" +
			"GGUF) and byte size, and the parameter count. An adapter folder also shows the LoRA\n" +
			"targets and scaling. Nothing is executed: .pt pickles go through an allow-list.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("inspect takes one PATH (see synth inspect --help)")
			}
			r, err := weights.Inspect(c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printInspect(c.App.Writer, r)
			return nil
		},
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// oneLineValue renders a metadata value on one line: long strings cut, long arrays shown
// by their first elements and their length.
func oneLineValue(m weights.InspectedMeta) string {
	if str, ok := m.Value.(string); ok {
		s := fmt.Sprintf("%q", str)
		if len(s) > 80 {
			s = s[:72] + fmt.Sprintf(`..." (%d bytes)`, len(str))
		}
		return s
	}
	b := marshalPlain(m.Value)
	if m.Len == 0 {
		return string(b)
	}
	var elems []json.RawMessage
	json.Unmarshal(b, &elems)
	var sb strings.Builder
	sb.WriteByte('[')
	shown := 0
	for i, e := range elems {
		if sb.Len()+len(e) > 90 {
			break
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.Write(e)
		shown++
	}
	if shown < m.Len {
		fmt.Fprintf(&sb, ", ...] (%d values)", m.Len)
	} else {
		sb.WriteByte(']')
	}
	return sb.String()
}

// printInspect prints the report as text. Names from the file (tensor names, metadata
// keys, config keys, module names) go through escape.Control: a checkpoint can hold
// escape sequences or NUL bytes in them, which must not reach the terminal.
func printInspect(w io.Writer, r *weights.Inspection) {
	esc := escape.Control
	fmt.Fprintf(w, "path:       %s\n", esc(r.Path))
	fmt.Fprintf(w, "format:     %s\n", r.Format)
	for _, f := range r.Files {
		fmt.Fprintf(w, "file:       %s (%s, %d tensors)\n", esc(f.Path), humanBytes(f.Bytes), f.Tensors)
	}
	fmt.Fprintf(w, "tensors:    %d, %s parameters (%d), %s of tensor data\n", r.NumTensors, humanCount(r.Params), r.Params, humanBytes(r.Bytes))
	var dts []string
	for k, v := range r.DTypes {
		dts = append(dts, fmt.Sprintf("%s x%d", k, v))
	}
	sort.Strings(dts)
	fmt.Fprintf(w, "dtypes:     %s\n", strings.Join(dts, ", "))
	if len(r.Config) > 0 {
		fmt.Fprintln(w, "config:")
		var v any
		json.Unmarshal(r.Config, &v)
		printConfig(w, "  ", "", v)
	}
	if len(r.Metadata) > 0 {
		fmt.Fprintln(w, "metadata:")
		for _, m := range r.Metadata {
			if m.Key == weights.ConfigKey {
				fmt.Fprintf(w, "  %s = (config.json, %d bytes, shown above)\n", m.Key, len(r.Config))
				continue
			}
			fmt.Fprintf(w, "  %s = %s\n", esc(m.Key), oneLineValue(m))
		}
	}
	if a := r.Adapter; a != nil {
		fmt.Fprintf(w, "adapter:    LoRA r=%d alpha=%g rslora=%v, %d modules\n", a.R, a.Alpha, a.RSLoRA, len(a.Modules))
		if a.TargetRegex != "" {
			fmt.Fprintf(w, "  target_modules (regex): %s\n", esc(a.TargetRegex))
		} else {
			fmt.Fprintf(w, "  target_modules: %s\n", esc(strings.Join(a.TargetModules, ", ")))
		}
		for i, m := range a.Modules {
			fmt.Fprintf(w, "  %s (scale %g)\n", esc(m), a.Scales[i])
		}
		for _, s := range a.Saved {
			fmt.Fprintf(w, "  modules_to_save: %s\n", esc(s))
		}
	}
	fmt.Fprintln(w, "tensors:")
	width := 0
	for _, t := range r.Tensors {
		width = max(width, len(esc(t.Name)))
	}
	for _, t := range r.Tensors {
		line := fmt.Sprintf("  %-*s  %-5s %-18s %10d", width, esc(t.Name), t.DType, fmt.Sprint(t.Shape), t.Bytes)
		if t.File != "" {
			line += "  " + esc(t.File)
		}
		fmt.Fprintln(w, line)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", esc(n))
	}
}

// marshalPlain is json.Marshal without HTML escaping (tokens like "&" stay readable).
func marshalPlain(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// printConfig prints a JSON config as dotted key = value lines.
func printConfig(w io.Writer, indent, prefix string, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			printConfig(w, indent, prefix+k+".", x[k])
		}
	default:
		s := string(marshalPlain(x))
		if len(s) > 100 {
			s = s[:96] + "..."
		}
		fmt.Fprintf(w, "%s%s = %s\n", indent, escape.Control(strings.TrimSuffix(prefix, ".")), s)
	}
}
