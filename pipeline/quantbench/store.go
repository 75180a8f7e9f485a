package quantbench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// rowStore keeps the reference's logit rows in a file, written once in order and read
// back in the same order for each level: a few hundred MB at real vocabulary sizes,
// which need not stay in memory.
type rowStore struct {
	path  string
	width int
	f     *os.File
	w     *bufio.Writer
	r     *bufio.Reader
	rows  int
	buf   []byte
}

func newRowStore(path string, width int) (*rowStore, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("quantbench: %w", err)
	}
	return &rowStore{path: path, width: width, f: f, w: bufio.NewWriterSize(f, 1<<20), buf: make([]byte, 4*width)}, nil
}

// put appends rows (a whole number of width-wide rows).
func (s *rowStore) put(rows []float32) error {
	if len(rows)%s.width != 0 {
		return fmt.Errorf("quantbench: %d logits are not rows of %d", len(rows), s.width)
	}
	for i := 0; i < len(rows); i += s.width {
		for j, v := range rows[i : i+s.width] {
			binary.LittleEndian.PutUint32(s.buf[4*j:], math.Float32bits(v))
		}
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("quantbench: %s: %w", s.path, err)
		}
		s.rows++
	}
	return nil
}

// rewind ends writing (the first time) and starts reading from the first row.
func (s *rowStore) rewind() error {
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("quantbench: %s: %w", s.path, err)
		}
		s.w = nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("quantbench: %s: %w", s.path, err)
	}
	s.r = bufio.NewReaderSize(s.f, 1<<20)
	return nil
}

// next reads the next row into dst (reused).
func (s *rowStore) next(dst []float32) ([]float32, error) {
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		return nil, fmt.Errorf("quantbench: %s: %w", s.path, err)
	}
	dst = append(dst[:0], make([]float32, s.width)...)
	for j := range dst {
		dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(s.buf[4*j:]))
	}
	return dst, nil
}

func (s *rowStore) close() {
	s.f.Close()
	os.Remove(s.path)
}
