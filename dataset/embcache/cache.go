package embcache

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"

	"synth/internal/filelock"
)

// Key identifies one cached vector; see ImageKey and TextKey.
type Key [32]byte

// Kinds of input, part of every key so an image and a text can never collide.
const (
	kindImage = "image"
	kindText  = "text"
)

// keyVersion changes when the key derivation does, turning every old entry into a miss.
const keyVersion = "synth/embcache/key/v1"

// ImageKey is the key of an image embedding: model is the hex SHA-256 of the model file,
// preprocessing names the image transform (e.g. "clip-224"), imageSHA256 is the SHA-256
// of the image file's bytes.
func ImageKey(model, preprocessing string, imageSHA256 [32]byte) Key {
	return newKey(kindImage, model, preprocessing, imageSHA256)
}

// TextKey is the key of a text embedding: model as for ImageKey, preprocessing names the
// tokenizer settings (e.g. "cliptok-248"), text is the exact text embedded.
func TextKey(model, preprocessing, text string) Key {
	return newKey(kindText, model, preprocessing, sha256.Sum256([]byte(text)))
}

// newKey hashes length-prefixed fields, so no choice of strings can make two different
// field lists hash the same bytes.
func newKey(kind, model, preprocessing string, content [32]byte) Key {
	h := sha256.New()
	for _, f := range []string{keyVersion, kind, model, preprocessing, string(content[:])} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		h.Write([]byte(f))
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// ErrLocked is wrapped by Open's error when another process (or another Cache of this
// one) has the cache open; the message names its pid.
var ErrLocked = filelock.ErrLocked

// ErrFormat marks a file that is not an embcache file of this version.
var ErrFormat = errors.New("embcache: not a cache file of this version")

const (
	vectorsName = "vectors"
	indexName   = "index"
	lockName    = "lock"

	headerSize = 16
	// recordSize: key [32] | offset u64 | dim u32 | vector CRC u32 | record CRC u32.
	recordSize = 32 + 8 + 4 + 4 + 4
	// maxDim bounds a vector's length: far above any embedding (Long-CLIP's is 768), it
	// keeps a corrupt record from asking for gigabytes.
	maxDim = 1 << 16
	// formatVersion is stored in both headers.
	formatVersion = 1
)

var (
	vectorsMagic = [8]byte{'S', 'Y', 'N', 'T', 'H', 'V', 'E', 'C'}
	indexMagic   = [8]byte{'S', 'Y', 'N', 'T', 'H', 'I', 'D', 'X'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

type entry struct {
	offset int64 // byte offset of the vector in the vectors file
	dim    uint32
	crc    uint32 // CRC-32C of the vector's bytes
}

// Stats counts what a Cache did since Open.
type Stats struct {
	Entries int // vectors in the index now
	Hits    int // Get calls that returned a vector
	Misses  int // Get calls that did not (corrupt vectors included)
	Corrupt int // Get calls that found a vector whose checksum failed
	Puts    int // vectors written
	// Recovered at Open: index records dropped (torn tail or bad checksum) and bytes of
	// vectors no record pointed to, truncated.
	DroppedRecords int
	DroppedBytes   int64
}

// Cache is an open cache folder. Methods are safe for concurrent use.
type Cache struct {
	dir      string
	lock     *filelock.Lock
	vectors  *os.File
	index    *os.File
	mu       sync.RWMutex
	entries  map[Key]entry
	vecEnd   int64 // where the next vector goes
	indexEnd int64 // where the next record goes
	stats    Stats
	closed   bool
}

// Open opens the cache in dir, creating the folder and its files when absent, and
// recovers from an earlier process that was killed while writing (see the package doc).
func Open(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embcache: %w", err)
	}
	c := &Cache{dir: dir, entries: map[Key]entry{}}
	ok := false
	defer func() {
		if !ok {
			c.closeFiles()
		}
	}()
	var err error
	if c.lock, err = filelock.Acquire(filepath.Join(dir, lockName)); err != nil {
		return nil, fmt.Errorf("embcache: cache %w", err)
	}
	if c.vectors, err = openWithHeader(filepath.Join(dir, vectorsName), vectorsMagic); err != nil {
		return nil, err
	}
	if c.index, err = openWithHeader(filepath.Join(dir, indexName), indexMagic); err != nil {
		return nil, err
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// openWithHeader opens path read-write, writing the header to a new or empty file and
// checking it otherwise. A file shorter than the header is taken as a header torn by a
// crash during creation and rewritten.
func openWithHeader(path string, magic [8]byte) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embcache: %w", err)
	}
	var want [headerSize]byte
	copy(want[:], magic[:])
	binary.LittleEndian.PutUint32(want[8:], formatVersion)
	var got [headerSize]byte
	n, err := f.ReadAt(got[:], 0)
	switch {
	case n == headerSize:
		if got != want {
			f.Close()
			return nil, fmt.Errorf("%w: %s", ErrFormat, path)
		}
	case err == io.EOF:
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("embcache: %w", err)
		}
		if _, err := f.WriteAt(want[:], 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("embcache: %w", err)
		}
	default:
		f.Close()
		return nil, fmt.Errorf("embcache: read %s: %w", path, err)
	}
	return f, nil
}

// load reads the index into memory. Whole records with a bad checksum, or pointing past
// the end of the vectors file, are skipped; a partial record at the end is truncated; so
// are vector bytes past the last vector a record points to.
func (c *Cache) load() error {
	vst, err := c.vectors.Stat()
	if err != nil {
		return fmt.Errorf("embcache: %w", err)
	}
	ist, err := c.index.Stat()
	if err != nil {
		return fmt.Errorf("embcache: %w", err)
	}
	vecSize := vst.Size()
	whole := (ist.Size() - headerSize) / recordSize
	c.indexEnd = headerSize + whole*recordSize
	c.vecEnd = headerSize
	if ist.Size() > c.indexEnd {
		c.stats.DroppedRecords++
		if err := c.index.Truncate(c.indexEnd); err != nil {
			return fmt.Errorf("embcache: truncate torn index record: %w", err)
		}
	}

	r := io.NewSectionReader(c.index, headerSize, whole*recordSize)
	buf := make([]byte, 4096*recordSize)
	for read := int64(0); read < whole*recordSize; {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), whole*recordSize-read)])
		if err != nil {
			return fmt.Errorf("embcache: read index: %w", err)
		}
		for rec := buf[:n]; len(rec) > 0; rec = rec[recordSize:] {
			k, e, ok := decodeRecord(rec[:recordSize])
			if !ok || e.offset < headerSize || e.offset+4*int64(e.dim) > vecSize {
				c.stats.DroppedRecords++
				continue
			}
			c.entries[k] = e
			c.vecEnd = max(c.vecEnd, e.offset+4*int64(e.dim))
		}
		read += int64(n)
	}
	if vecSize > c.vecEnd {
		c.stats.DroppedBytes = vecSize - c.vecEnd
		if err := c.vectors.Truncate(c.vecEnd); err != nil {
			return fmt.Errorf("embcache: truncate orphan vectors: %w", err)
		}
	}
	c.stats.Entries = len(c.entries)
	return nil
}

func encodeRecord(dst []byte, k Key, e entry) {
	copy(dst[:32], k[:])
	binary.LittleEndian.PutUint64(dst[32:], uint64(e.offset))
	binary.LittleEndian.PutUint32(dst[40:], e.dim)
	binary.LittleEndian.PutUint32(dst[44:], e.crc)
	binary.LittleEndian.PutUint32(dst[48:], crc32.Checksum(dst[:48], castagnoli))
}

func decodeRecord(src []byte) (Key, entry, bool) {
	var k Key
	if crc32.Checksum(src[:48], castagnoli) != binary.LittleEndian.Uint32(src[48:]) {
		return k, entry{}, false
	}
	copy(k[:], src[:32])
	e := entry{
		offset: int64(binary.LittleEndian.Uint64(src[32:])),
		dim:    binary.LittleEndian.Uint32(src[40:]),
		crc:    binary.LittleEndian.Uint32(src[44:]),
	}
	if e.dim == 0 || e.dim > maxDim || e.offset < 0 || e.offset > math.MaxInt64/2 {
		return k, entry{}, false
	}
	return k, e, true
}

// Get returns the vector stored under k. ok is false when there is none or when the
// stored vector fails its checksum (then a Put of k replaces it). err reports I/O
// failures only.
func (c *Cache) Get(k Key) (vec []float32, ok bool, err error) {
	c.mu.RLock()
	e, found := c.entries[k]
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return nil, false, errClosed
	}
	if !found {
		c.count(func(s *Stats) { s.Misses++ })
		return nil, false, nil
	}
	b := make([]byte, 4*int(e.dim))
	if _, err := c.vectors.ReadAt(b, e.offset); err != nil {
		return nil, false, fmt.Errorf("embcache: read vector at %d: %w", e.offset, err)
	}
	if crc32.Checksum(b, castagnoli) != e.crc {
		c.mu.Lock()
		// Forget it so that the next Put of k writes a good copy.
		if cur, ok := c.entries[k]; ok && cur == e {
			delete(c.entries, k)
			c.stats.Entries = len(c.entries)
		}
		c.stats.Misses++
		c.stats.Corrupt++
		c.mu.Unlock()
		return nil, false, nil
	}
	vec = make([]float32, e.dim)
	for i := range vec {
		vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	c.count(func(s *Stats) { s.Hits++ })
	return vec, true, nil
}

func (c *Cache) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

var errClosed = errors.New("embcache: cache is closed")

// Put stores vec under k. A key already present with a vector of the same length is
// left as it is (the cache is content-addressed, so the vector is the same).
func (c *Cache) Put(k Key, vec []float32) error {
	return c.PutMany([]Key{k}, [][]float32{vec})
}

// PutMany stores vecs[i] under keys[i], with one write to each file for the batch.
func (c *Cache) PutMany(keys []Key, vecs [][]float32) error {
	if len(keys) != len(vecs) {
		return fmt.Errorf("embcache: %d keys for %d vectors", len(keys), len(vecs))
	}
	for i, v := range vecs {
		if len(v) == 0 || len(v) > maxDim {
			return fmt.Errorf("embcache: vector %d has length %d (want 1..%d)", i, len(v), maxDim)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	var data, recs []byte
	type pending struct {
		k Key
		e entry
	}
	var added []pending
	seen := map[Key]bool{}
	off := c.vecEnd
	for i, v := range vecs {
		k := keys[i]
		if e, ok := c.entries[k]; (ok && int(e.dim) == len(v)) || seen[k] {
			continue
		}
		seen[k] = true
		start := len(data)
		for _, x := range v {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
		}
		e := entry{offset: off, dim: uint32(len(v)), crc: crc32.Checksum(data[start:], castagnoli)}
		off += int64(len(data) - start)
		rec := make([]byte, recordSize)
		encodeRecord(rec, k, e)
		recs = append(recs, rec...)
		added = append(added, pending{k, e})
	}
	if len(added) == 0 {
		return nil
	}
	// Vectors before records: a crash in between leaves only unreferenced vector bytes.
	if _, err := c.vectors.WriteAt(data, c.vecEnd); err != nil {
		return fmt.Errorf("embcache: write vectors: %w", err)
	}
	if _, err := c.index.WriteAt(recs, c.indexEnd); err != nil {
		return fmt.Errorf("embcache: write index: %w", err)
	}
	c.vecEnd = off
	c.indexEnd += int64(len(recs))
	for _, p := range added {
		c.entries[p.k] = p.e
	}
	c.stats.Puts += len(added)
	c.stats.Entries = len(c.entries)
	return nil
}

// Len is the number of vectors in the cache.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Stats returns the counters since Open.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stats
}

// Dir is the folder the cache lives in.
func (c *Cache) Dir() string { return c.dir }

// Sync flushes both files to stable storage. Put does not, since surviving a killed
// process needs no fsync; call Sync where a power loss must not lose work.
func (c *Cache) Sync() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	if err := c.vectors.Sync(); err != nil {
		return fmt.Errorf("embcache: sync: %w", err)
	}
	if err := c.index.Sync(); err != nil {
		return fmt.Errorf("embcache: sync: %w", err)
	}
	return nil
}

// Close syncs and closes the files and releases the lock. Calling it again is a no-op.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var first error
	for _, f := range []*os.File{c.vectors, c.index} {
		if err := f.Sync(); err != nil && first == nil {
			first = fmt.Errorf("embcache: sync: %w", err)
		}
	}
	if err := c.closeFiles(); err != nil && first == nil {
		first = err
	}
	return first
}

func (c *Cache) closeFiles() error {
	var first error
	for _, f := range []*os.File{c.vectors, c.index} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("embcache: close: %w", err)
		}
	}
	if err := c.lock.Release(); err != nil && first == nil {
		first = fmt.Errorf("embcache: %w", err)
	}
	return first
}
