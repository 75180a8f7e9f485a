package embcache

import (
	"fmt"
	"testing"
)

// BenchmarkCache: writing and reading back Long-CLIP-sized vectors (768 float32), in
// batches of 64 as eval writes them. Bytes are the vectors' 3 KB each.
func BenchmarkCache(b *testing.B) {
	const dim, batch = 768, 64
	keys := make([]Key, batch)
	vecs := make([][]float32, batch)
	for i := range keys {
		vecs[i] = vec(uint64(i), dim)
	}
	b.Run(fmt.Sprintf("op=put/dim=%d/batch=%d", dim, batch), func(b *testing.B) {
		c := mustOpen(b, b.TempDir())
		defer c.Close()
		b.SetBytes(4 * dim * batch)
		for n := 0; b.Loop(); n++ {
			for i := range keys {
				keys[i] = textKey(n*batch + i)
			}
			if err := c.PutMany(keys, vecs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("op=get/dim=%d", dim), func(b *testing.B) {
		c := mustOpen(b, b.TempDir())
		defer c.Close()
		for i := range keys {
			keys[i] = textKey(i)
		}
		if err := c.PutMany(keys, vecs); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(4 * dim)
		for n := 0; b.Loop(); n++ {
			if _, ok, err := c.Get(keys[n%batch]); err != nil || !ok {
				b.Fatal("miss", err)
			}
		}
	})
}
