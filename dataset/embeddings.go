package dataset

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"synth/internal/filelock"
	"synth/weights"
)

// EmbeddingRecord is one line of an embedding output (.jsonl), or of the .items.jsonl
// that names the rows of an array output.
type EmbeddingRecord struct {
	Row       *int      `json:"row,omitempty"`
	ID        string    `json:"id"`
	Image     string    `json:"image,omitempty"`
	Text      *string   `json:"text,omitempty"`
	Embedding []float32 `json:"embedding,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	Model     string    `json:"model,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// EmbeddingSink is where embeddings go: a resumable JSONL file, or an array file
// (.npy float32 [N, E], .safetensors "embeddings" [N, E] + "valid" [N]) written whole at
// the end with FILE.items.jsonl beside it. Opening it takes the output's lock, so a
// second run on the same output fails before it loads a model.
type EmbeddingSink interface {
	// Start names the model and settings (an existing JSONL written by another identity
	// is refused: one file never mixes models) and sizes an array output: n rows of dim.
	Start(identity string, n, dim int) error
	// Done reports whether key is already in the output (JSONL only).
	Done(key string) bool
	// Write records item i of the run (an index into the items to do) under key; rec
	// has Error set, and no Embedding, for an item that failed.
	Write(i int, key string, rec EmbeddingRecord) error
	// Close finishes the output and releases its lock; complete is false when the run
	// stopped early (an array output is then not written at all).
	Close(complete bool) error
}

// EmbeddingFormats are the output extensions OpenEmbeddingSink takes.
var EmbeddingFormats = []string{".jsonl", ".npy", ".safetensors"}

// OpenEmbeddingSink opens and locks the output at path by its extension; key reads a
// JSONL record's key.
func OpenEmbeddingSink(path string, key func(map[string]json.RawMessage) (string, error), normalized bool) (EmbeddingSink, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl":
		out, err := OpenOutput(path, OutputOptions{Key: key, RetryErrors: true})
		if err != nil {
			return nil, err
		}
		return &jsonlSink{out: out, path: path}, nil
	case ".npy", ".safetensors":
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
		lock, err := LockOutput(path)
		if err != nil {
			return nil, err
		}
		return &arraySink{path: path, ext: ext, normalized: normalized, lock: lock}, nil
	}
	return nil, fmt.Errorf("dataset: embeddings %s: want a .jsonl, .npy or .safetensors file", path)
}

type jsonlSink struct {
	out            *Output
	path, identity string
}

// errFirstRecord stops ReadRecords after the first record.
var errFirstRecord = errors.New("first record read")

func (s *jsonlSink) Start(identity string, _, _ int) error {
	s.identity = identity
	err := ReadRecords(s.path, func(line int, raw json.RawMessage) error {
		var rec struct {
			Model string `json:"model"`
		}
		if json.Unmarshal(raw, &rec) == nil && rec.Model != "" && rec.Model != identity {
			return fmt.Errorf("dataset: %s:%d was written by another model or setting (%s, now %s): use another --out", s.path, line, rec.Model, identity)
		}
		if rec.Model != "" {
			return errFirstRecord
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFirstRecord) && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *jsonlSink) Done(key string) bool { return s.out.Done(key) }

func (s *jsonlSink) Write(_ int, key string, rec EmbeddingRecord) error {
	rec.Model = s.identity
	return s.out.Write(key, rec)
}

func (s *jsonlSink) Close(bool) error { return s.out.Close() }

// arraySink keeps every row, in input order, and writes the array file and its
// .items.jsonl at the end.
type arraySink struct {
	path, ext, identity string
	dim                 int
	normalized          bool
	lock                *filelock.Lock
	rows                []float32 // [N, E]
	recs                []EmbeddingRecord
}

func (s *arraySink) Start(identity string, n, dim int) error {
	s.identity, s.dim = identity, dim
	s.rows, s.recs = make([]float32, n*dim), make([]EmbeddingRecord, n)
	return nil
}

func (s *arraySink) Done(string) bool { return false }

func (s *arraySink) Write(i int, _ string, rec EmbeddingRecord) error {
	row := s.rows[i*s.dim : (i+1)*s.dim]
	if rec.Error != "" {
		for j := range row {
			row[j] = float32(math.NaN())
		}
	} else {
		copy(row, rec.Embedding)
	}
	rec.Row, rec.Embedding = &i, nil
	s.recs[i] = rec
	return nil
}

func (s *arraySink) Close(complete bool) (err error) {
	defer func() { err = errors.Join(err, s.lock.Release()) }()
	if !complete {
		return nil // nothing half-written: arrays are all or nothing
	}
	n := len(s.recs)
	if s.ext == ".npy" {
		err = WriteNPY(s.path, s.rows, n, s.dim)
	} else {
		valid := make([]byte, n)
		for i, r := range s.recs {
			if r.Error == "" {
				valid[i] = 1
			}
		}
		err = weights.WriteSafetensors(s.path, []weights.Tensor{
			{Name: "embeddings", DType: weights.F32, Shape: []int{n, s.dim}, Data: float32Bytes(s.rows)},
			{Name: "valid", DType: weights.U8, Shape: []int{n}, Data: valid},
		}, map[string]string{"model": s.identity, "normalized": strconv.FormatBool(s.normalized), "items": filepath.Base(ItemsPath(s.path))})
	}
	if err != nil {
		return err
	}
	return writeAtomic(ItemsPath(s.path), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range s.recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ItemsPath is the .items.jsonl beside an array output: emb.npy -> emb.items.jsonl.
func ItemsPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".items.jsonl"
}

// WriteNPY writes rows [n, d] as a NumPy .npy file (format 1.0, little-endian float32,
// C order).
func WriteNPY(path string, rows []float32, n, d int) error {
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, d)
	// magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	return writeAtomic(path, func(w io.Writer) error {
		pre := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
		if _, err := w.Write(append(pre, header...)); err != nil {
			return err
		}
		_, err := w.Write(float32Bytes(rows))
		return err
	})
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
