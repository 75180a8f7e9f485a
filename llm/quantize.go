package llm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"synth/llm/llamacpp"
	"synth/weights"
)

// Quantize writes the GGUF model at in (F16, BF16 or F32 weights: what a lab holding
// only an F16 GGUF has) to out as the llama.cpp file type named typ (Q4_K_M, Q8_0, ...,
// as llama-quantize spells them), through llama_model_quantize: the same tensor mix and
// bytes as llama.cpp's quantize tool. imatrix, when not empty, is an importance matrix
// file from llama-imatrix (GGUF, or the older .dat layout) that guides the rounding.
func Quantize(in, out, typ, imatrix string, threads int) error {
	t, err := llamacpp.ParseFType(typ)
	if err != nil {
		return fmt.Errorf("llm: quantize: %w", err)
	}
	p := llamacpp.QuantizeParams{Threads: threads}
	if imatrix != "" {
		if p.IMatrix, err = ReadIMatrix(imatrix); err != nil {
			return err
		}
	}
	if t.NeedsIMatrix() && p.IMatrix == nil {
		return fmt.Errorf("llm: quantize to %s needs an importance matrix (--imatrix)", strings.ToUpper(typ))
	}
	if ai, ao := absPath(in), absPath(out); ai == ao {
		return fmt.Errorf("llm: quantize: --out is the input file %s", in)
	}
	// llama.cpp writes out as it goes: write beside it and rename, so that a failed or
	// interrupted run leaves no partial model under the final name
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.part")
	if err != nil {
		return fmt.Errorf("llm: quantize: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := llamacpp.Quantize(in, tmp.Name(), t, p); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("llm: quantize: %w", err)
	}
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// CheckQuantType says whether typ names a llama.cpp file type Quantize takes.
func CheckQuantType(typ string) error {
	_, err := llamacpp.ParseFType(typ)
	return err
}

// ReadIMatrix reads an importance matrix as llama.cpp's quantize tool does: per tensor
// name the mean squared activation of each input column. GGUF files (llama-imatrix's
// current format) hold <name>.in_sum2 (the sums) and <name>.counts (how many rows were
// summed, per matrix of the tensor); a matrix that saw no input gets ones. The older
// .dat files hold per entry the name, the call count and the sums: the values divided
// by the call count.
func ReadIMatrix(path string) (map[string][]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llm: imatrix: %w", err)
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("llm: imatrix %s: %w", path, err)
	}
	var m map[string][]float32
	if string(magic[:]) == "GGUF" {
		m, err = readIMatrixGGUF(path)
	} else {
		m, err = readIMatrixDat(path)
	}
	if err != nil {
		return nil, fmt.Errorf("llm: imatrix %s: %w", path, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("llm: imatrix %s: no entries", path)
	}
	for name, v := range m {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("llm: imatrix %s: %s holds a non-finite value", path, name)
			}
		}
	}
	return m, nil
}

func readIMatrixGGUF(path string) (map[string][]float32, error) {
	src, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	m := map[string][]float32{}
	for _, t := range src.Tensors() {
		name, ok := strings.CutSuffix(t.Name, ".in_sum2")
		if !ok {
			continue
		}
		sums, err := t.F32()
		if err != nil {
			return nil, err
		}
		ct, err := src.Tensor(name + ".counts")
		if err != nil {
			return nil, fmt.Errorf("%s.in_sum2 without %s.counts", name, name)
		}
		counts, err := ct.F32()
		if err != nil {
			return nil, err
		}
		if len(counts) == 0 || len(sums)%len(counts) != 0 {
			return nil, fmt.Errorf("%s: %d sums for %d counts", name, len(sums), len(counts))
		}
		per := len(sums) / len(counts) // values per matrix (the input width)
		e := make([]float32, len(sums))
		for j, c := range counts {
			for i := range per {
				if c > 0 {
					e[j*per+i] = sums[j*per+i] / c
				} else {
					e[j*per+i] = 1 // no calibration input reached this matrix
				}
			}
		}
		m[name] = e
	}
	return m, nil
}

// readIMatrixDat reads llama-imatrix's older layout (little-endian): int32 entry count,
// then per entry int32 name length, the name, int32 call count, int32 value count, the
// float32 values; what follows the entries (the last call, the dataset name) is unused.
func readIMatrixDat(path string) (map[string][]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &datReader{b: b}
	n := r.i32()
	if r.err == nil && (n <= 0 || n > len(b)/16) {
		return nil, fmt.Errorf("not an importance matrix (%d entries in %d bytes)", n, len(b))
	}
	m := map[string][]float32{}
	for range n {
		l := r.i32()
		name := string(r.bytes(l))
		calls, nval := r.i32(), r.i32()
		raw := r.bytes(4 * nval)
		if r.err != nil {
			return nil, r.err
		}
		if name == "" || calls < 0 {
			return nil, fmt.Errorf("entry %q with %d calls", name, calls)
		}
		v := make([]float32, nval)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			if calls > 0 {
				v[i] /= float32(calls)
			}
		}
		m[name] = v
	}
	return m, r.err
}

type datReader struct {
	b   []byte
	off int
	err error
}

var errShortIMatrix = errors.New("truncated importance matrix")

func (r *datReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		if r.err == nil {
			r.err = errShortIMatrix
		}
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *datReader) i32() int {
	s := r.bytes(4)
	if s == nil {
		return 0
	}
	return int(int32(binary.LittleEndian.Uint32(s)))
}
