package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"synth/internal/atomicfile"
)

// safetensors layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data; offsets are relative to the end of the header.

// maxSafetensorsHeader is the reference implementation's limit (safetensors
// MAX_HEADER_SIZE, 100 MB); no honest header is anywhere near it.
const maxSafetensorsHeader = 100_000_000

type stEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// parseSafetensors validates everything in the header, like the reference implementation
// and a little more: header size limits, valid UTF-8 JSON object, no duplicate names,
// known dtypes, non-negative dims, dtype x shape = byte length, offsets in bounds,
// non-overlapping and covering the data exactly. The tensors' Data are views of data,
// ordered by offset.
func parseSafetensors(data []byte, file string) ([]Tensor, []KV, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("weights: %s: %w: %s", file, ErrFormat, fmt.Sprintf(format, args...))
	}
	if len(data) < 8 {
		return nil, nil, fail("safetensors file of %d bytes has no header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxSafetensorsHeader {
		return nil, nil, fail("safetensors header length %d exceeds the limit %d", n, maxSafetensorsHeader)
	}
	if n > uint64(len(data)-8) {
		return nil, nil, fail("safetensors header length %d runs past the end of the %d-byte file", n, len(data))
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, fail("safetensors header does not start with '{'")
	}
	if !utf8.Valid(header) {
		return nil, nil, fail("safetensors header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fail("safetensors header is not a JSON object")
	}
	type item struct {
		t          Tensor
		begin, end int64
	}
	var (
		items []item
		meta  []KV
		seen  = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fail("safetensors header JSON: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, nil, fail("duplicate entry %q in the safetensors header", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			var m map[string]string
			if err := dec.Decode(&m); err != nil {
				return nil, nil, fail("__metadata__ must map strings to strings: %v", err)
			}
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				meta = append(meta, KV{Key: k, Value: m[k]})
			}
			continue
		}
		var e stEntry
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fail("tensor %q: bad header entry: %v", name, err)
		}
		dt, ok := dtypeFromSafetensors(e.DType)
		if !ok {
			return nil, nil, fail("tensor %q: unknown or unsupported dtype %q", name, e.DType)
		}
		if e.Shape == nil {
			return nil, nil, fail("tensor %q: no shape", name)
		}
		shape := make([]int, len(e.Shape))
		for i, s := range e.Shape {
			if s < 0 || int64(int(s)) != s {
				return nil, nil, fail("tensor %q: invalid dimension %d in shape %v", name, s, e.Shape)
			}
			shape[i] = int(s)
		}
		if len(e.Offsets) != 2 {
			return nil, nil, fail("tensor %q: data_offsets must be [begin, end], got %v", name, e.Offsets)
		}
		begin, end := e.Offsets[0], e.Offsets[1]
		if begin < 0 || end < begin || end > int64(len(body)) {
			return nil, nil, fail("tensor %q: data_offsets [%d, %d] outside the %d data bytes", name, begin, end, len(body))
		}
		cnt, err := numel(shape)
		if err != nil {
			return nil, nil, fail("tensor %q: %v", name, err)
		}
		size, err := dt.ByteSize(cnt)
		if err != nil || size != end-begin {
			return nil, nil, fail("tensor %q: %s %v needs %d bytes but data_offsets [%d, %d] hold %d", name, dt, e.Shape, size, begin, end, end-begin)
		}
		items = append(items, item{t: Tensor{Name: name, DType: dt, Shape: shape}, begin: begin, end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fail("safetensors header JSON: %v", err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimRight(rest, " \t\r\n")) != 0 {
		return nil, nil, fail("trailing bytes after the safetensors header object")
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].begin != items[j].begin {
			return items[i].begin < items[j].begin
		}
		return items[i].end < items[j].end
	})
	var pos int64
	for _, it := range items {
		if it.begin != pos {
			if it.begin < pos {
				return nil, nil, fail("tensor %q: data_offsets [%d, %d] overlap the previous tensor (which ends at %d)", it.t.Name, it.begin, it.end, pos)
			}
			return nil, nil, fail("tensor %q: %d unused bytes before it (data_offsets [%d, %d])", it.t.Name, it.begin-pos, it.begin, it.end)
		}
		pos = it.end
	}
	if pos != int64(len(body)) {
		return nil, nil, fail("tensors cover %d of the %d data bytes (truncated or padded file)", pos, len(body))
	}
	out := make([]Tensor, len(items))
	for i, it := range items {
		it.t.Data = body[it.begin:it.end:it.end]
		out[i] = it.t
	}
	return out, meta, nil
}

// WriteSafetensors writes tensors (in the given order) and string metadata to path in
// the safetensors format, through a temporary file renamed into place. Only dtypes
// safetensors has are accepted (no ggml quantized types).
func WriteSafetensors(path string, tensors []Tensor, meta map[string]string) error {
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		comma()
		hdr.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				hdr.WriteByte(',')
			}
			kj, _ := json.Marshal(k)
			vj, _ := json.Marshal(meta[k])
			hdr.Write(kj)
			hdr.WriteByte(':')
			hdr.Write(vj)
		}
		hdr.WriteByte('}')
	}
	seen := map[string]bool{}
	var off int64
	for _, t := range tensors {
		if err := checkTensor(t); err != nil {
			return fmt.Errorf("weights: write %s: %w", path, err)
		}
		st := t.DType.info().st
		if st == "" {
			return fmt.Errorf("weights: write %s: tensor %q: %w: safetensors has no %s", path, t.Name, ErrDType, t.DType)
		}
		if seen[t.Name] || t.Name == "__metadata__" {
			return fmt.Errorf("weights: write %s: duplicate or reserved tensor name %q", path, t.Name)
		}
		seen[t.Name] = true
		comma()
		nj, _ := json.Marshal(t.Name)
		hdr.Write(nj)
		hdr.WriteString(`:{"dtype":"` + st + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		end := off + int64(len(t.Data))
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 { // the reference writer pads with spaces to 8 bytes
		hdr.WriteByte(' ')
	}
	return writeAtomic(path, func(w io.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(hdr.Bytes()); err != nil {
			return err
		}
		for _, t := range tensors {
			if _, err := w.Write(t.Data); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeAtomic writes path through internal/atomicfile, so that a failed write never
// leaves a truncated file under the final name.
func writeAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	return nil
}
