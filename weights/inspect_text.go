package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"synth/internal/escape"
	"synth/internal/human"
)

// oneLineValue renders a metadata value on one line: long strings cut, long arrays shown
// by their first elements and their length.
func oneLineValue(m InspectedMeta) string {
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

// WriteText writes the report as text (synth inspect). Names from the file (tensor names, metadata
// keys, config keys, module names) go through escape.Control: a checkpoint can hold
// escape sequences or NUL bytes in them, which must not reach the terminal.
func (r *Inspection) WriteText(w io.Writer) {
	esc := escape.Control
	fmt.Fprintf(w, "path:       %s\n", esc(r.Path))
	fmt.Fprintf(w, "format:     %s\n", r.Format)
	for _, f := range r.Files {
		fmt.Fprintf(w, "file:       %s (%s, %d tensors)\n", esc(f.Path), human.Bytes(f.Bytes), f.Tensors)
	}
	fmt.Fprintf(w, "tensors:    %d, %s parameters (%d), %s of tensor data\n", r.NumTensors, human.Count(r.Params), r.Params, human.Bytes(r.Bytes))
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
			if m.Key == ConfigKey {
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
