package embcache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func vec(seed uint64, dim int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func textKey(i int) Key { return TextKey("modelhash", "cliptok-248", fmt.Sprintf("text %d", i)) }

func mustOpen(t testing.TB, dir string) *Cache {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustGet(t *testing.T, c *Cache, k Key) ([]float32, bool) {
	t.Helper()
	v, ok, err := c.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func TestKeysSeparateEverythingThatDecidesAVector(t *testing.T) {
	img := sha256.Sum256([]byte("jpeg bytes"))
	keys := map[Key]string{}
	add := func(name string, k Key) {
		if prev, dup := keys[k]; dup {
			t.Errorf("%s and %s have the same key", name, prev)
		}
		keys[k] = name
	}
	add("image", ImageKey("m1", "clip-224", img))
	add("image other model", ImageKey("m2", "clip-224", img))
	add("image other preprocessing", ImageKey("m1", "clip-336", img))
	add("image other bytes", ImageKey("m1", "clip-224", sha256.Sum256([]byte("png bytes"))))
	add("text of the same hash", TextKey("m1", "clip-224", "jpeg bytes"))
	// Field boundaries are length-prefixed: moving a character between fields changes the key.
	add("text a|bc", TextKey("a", "bc", "x"))
	add("text ab|c", TextKey("ab", "c", "x"))
	if ImageKey("m1", "clip-224", img) != ImageKey("m1", "clip-224", img) {
		t.Error("the same inputs give different keys")
	}
}

func TestPutGetAndReopen(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir)
	for i := range 10 {
		if err := c.Put(textKey(i), vec(uint64(i), 768)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := mustGet(t, c, textKey(99)); ok {
		t.Error("a key never put was found")
	}
	// A different length is a different vector; storing it supersedes the old one.
	if err := c.Put(textKey(3), vec(33, 512)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = mustOpen(t, dir)
	defer c.Close()
	if c.Len() != 10 {
		t.Fatalf("reopened cache has %d entries, want 10", c.Len())
	}
	for i := range 10 {
		want := vec(uint64(i), 768)
		if i == 3 {
			want = vec(33, 512)
		}
		got, ok := mustGet(t, c, textKey(i))
		if !ok || !slices.Equal(got, want) {
			t.Errorf("entry %d: ok=%v, vector differs=%v", i, ok, !slices.Equal(got, want))
		}
	}
	if s := c.Stats(); s.Hits != 10 || s.DroppedRecords != 0 || s.DroppedBytes != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestPutSameKeyTwiceWritesOnce(t *testing.T) {
	c := mustOpen(t, t.TempDir())
	defer c.Close()
	v := vec(1, 16)
	if err := c.PutMany([]Key{textKey(1), textKey(1)}, [][]float32{v, v}); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(textKey(1), v); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Puts != 1 {
		t.Errorf("%d vectors written, want 1", s.Puts)
	}
}

// A process killed while writing leaves a torn index record and/or vector bytes that no
// record points to. Open must drop exactly those and keep everything before.
func TestRecoversFromTornWrites(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		cutIndex, addVectors int64 // bytes cut from the index end, garbage appended to vectors
	}{
		{"torn index record", 7, 0},
		{"whole record lost, its vector orphaned", recordSize, 0},
		{"vector written, no record", 0, 4 * 768},
		{"torn vector, no record", 0, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := mustOpen(t, dir)
			for i := range 5 {
				if err := c.Put(textKey(i), vec(uint64(i), 768)); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			idx, vecs := filepath.Join(dir, indexName), filepath.Join(dir, vectorsName)
			truncateBy(t, idx, tc.cutIndex)
			appendBytes(t, vecs, int(tc.addVectors))

			c = mustOpen(t, dir)
			want := 5
			if tc.cutIndex > 0 {
				want = 4
			}
			if c.Len() != want {
				t.Fatalf("%d entries after recovery, want %d", c.Len(), want)
			}
			s := c.Stats()
			if (tc.cutIndex%recordSize != 0) != (s.DroppedRecords == 1) {
				t.Errorf("DroppedRecords = %d", s.DroppedRecords)
			}
			if s.DroppedBytes == 0 {
				t.Error("orphan vector bytes were not dropped")
			}
			for i := range want {
				if got, ok := mustGet(t, c, textKey(i)); !ok || !slices.Equal(got, vec(uint64(i), 768)) {
					t.Errorf("entry %d lost or changed", i)
				}
			}
			// Appending after recovery must land on record and vector boundaries.
			if err := c.Put(textKey(7), vec(7, 768)); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c = mustOpen(t, dir)
			defer c.Close()
			if got, ok := mustGet(t, c, textKey(7)); !ok || !slices.Equal(got, vec(7, 768)) {
				t.Error("entry written after recovery is not read back")
			}
			if s := c.Stats(); s.DroppedRecords != 0 || s.DroppedBytes != 0 {
				t.Errorf("second reopen dropped data: %+v", s)
			}
		})
	}
}

func TestCorruptDataIsAMissAndIsReplaced(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir)
	for i := range 3 {
		if err := c.Put(textKey(i), vec(uint64(i), 64)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	// Flip a byte of vector 1 and of index record 2.
	flip(t, filepath.Join(dir, vectorsName), headerSize+4*64+10)
	flip(t, filepath.Join(dir, indexName), headerSize+2*recordSize+33)

	c = mustOpen(t, dir)
	defer c.Close()
	if s := c.Stats(); s.DroppedRecords != 1 || c.Len() != 2 {
		t.Fatalf("record with a bad checksum: stats %+v, %d entries", s, c.Len())
	}
	if _, ok := mustGet(t, c, textKey(1)); ok {
		t.Fatal("a vector with a bad checksum was returned")
	}
	if s := c.Stats(); s.Corrupt != 1 {
		t.Errorf("Corrupt = %d", s.Corrupt)
	}
	if err := c.Put(textKey(1), vec(1, 64)); err != nil {
		t.Fatal(err)
	}
	if got, ok := mustGet(t, c, textKey(1)); !ok || !slices.Equal(got, vec(1, 64)) {
		t.Error("the corrupt vector was not replaced by Put")
	}
	if got, ok := mustGet(t, c, textKey(0)); !ok || !slices.Equal(got, vec(0, 64)) {
		t.Error("an intact vector was lost")
	}
}

func TestOpenRejectsForeignFileAndSecondOpener(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	c.Close()
	c = mustOpen(t, dir) // the lock is released by Close
	c.Close()
	if err := c.Put(textKey(1), vec(1, 4)); err == nil {
		t.Error("Put on a closed cache succeeded")
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, vectorsName), []byte("not a cache file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); !errors.Is(err, ErrFormat) {
		t.Errorf("Open on a foreign file: %v, want ErrFormat", err)
	}
}

func TestPutRejectsBadVectors(t *testing.T) {
	c := mustOpen(t, t.TempDir())
	defer c.Close()
	if err := c.Put(textKey(1), nil); err == nil {
		t.Error("empty vector accepted")
	}
	if err := c.PutMany([]Key{textKey(1)}, nil); err == nil {
		t.Error("mismatched keys and vectors accepted")
	}
}

// Run with -race: writers and readers of one Cache at once.
func TestConcurrentUse(t *testing.T) {
	c := mustOpen(t, t.TempDir())
	defer c.Close()
	const workers, each = 4, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := w*each + i
				if err := c.Put(textKey(id), vec(uint64(id), 32)); err != nil {
					t.Error(err)
					return
				}
				// Read a key another worker may or may not have written yet.
				other := ((w+1)%workers)*each + i
				if v, ok, err := c.Get(textKey(other)); err != nil {
					t.Error(err)
				} else if ok && !slices.Equal(v, vec(uint64(other), 32)) {
					t.Errorf("entry %d read back wrong", other)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() != workers*each {
		t.Errorf("%d entries, want %d", c.Len(), workers*each)
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
