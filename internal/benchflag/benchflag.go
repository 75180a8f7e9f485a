// Package benchflag parses what the benchmarks' flags and environment variables share:
// comma lists of sizes (batches, slots, depths). Benchmarks only; standard library only.
package benchflag

import (
	"fmt"
	"strconv"
	"strings"
)

// Ints parses a comma list of positive integers; the empty list is def.
func Ints(s string, def ...int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want a comma list of positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}
