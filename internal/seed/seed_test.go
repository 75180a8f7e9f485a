package seed

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// The layout is fixed: rewrite's records carry seeds made with it, and a resumed run must
// give the products it has not done yet the same seeds as an uninterrupted one.
func TestItemLayout(t *testing.T) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%d", uint64(42), "p123", 1)
	if got, want := Item(42, "p123", "1"), h.Sum64(); got != want {
		t.Errorf("Item(42, p123, 1) = %x, want %x", got, want)
	}
}

func TestItemSeparatesParts(t *testing.T) {
	seen := map[uint64]string{}
	for _, c := range []struct {
		run   uint64
		parts []string
	}{
		{0, []string{"p1", "a.jpg"}}, {1, []string{"p1", "a.jpg"}}, {0, []string{"p1a", ".jpg"}},
		{0, []string{"p1", "a.jpg", ""}}, {0, []string{"p1"}}, {10, nil}, {1, []string{"0"}},
	} {
		v := Item(c.run, c.parts...)
		key := fmt.Sprint(c.run, c.parts)
		if prev, dup := seen[v]; dup {
			t.Errorf("%s and %s give the same seed", prev, key)
		}
		seen[v] = key
	}
}
