package preprocess

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"strings"
	"testing"
)

// Prefetch hands every batch over in order with per-image failures (an error or a
// panicking decoder fails its image alone), and stops at fn's error or at ctx's end.
func TestPrefetch(t *testing.T) {
	paths := []string{"ok0", "bad1", "ok2", "panic3", "ok4"}
	decode := func(p string) (image.Image, error) {
		switch {
		case strings.HasPrefix(p, "bad"):
			return nil, errors.New("broken")
		case strings.HasPrefix(p, "panic"):
			panic("decoder bug")
		}
		img := image.NewGray(image.Rect(0, 0, 10, 8))
		img.SetGray(1, 1, color.Gray{Y: 200})
		return img, nil
	}
	var starts []int
	var failed []string
	err := Prefetch(context.Background(), paths, 2, 4, 2, Batch, decode, func(b Prepared) error {
		starts = append(starts, b.Start)
		if len(b.Pixels) != len(b.Errs)*3*4*4 {
			return fmt.Errorf("batch at %d: %d pixels for %d images", b.Start, len(b.Pixels), len(b.Errs))
		}
		ok, px := b.Compact(4)
		if len(px) != len(ok)*3*4*4 {
			return fmt.Errorf("compact: %d pixels for %d images", len(px), len(ok))
		}
		for i, e := range b.Errs {
			if e != nil {
				failed = append(failed, paths[b.Start+i]+": "+e.Error())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(starts) != "[0 2 4]" {
		t.Errorf("batches at %v, want [0 2 4]", starts)
	}
	if len(failed) != 2 || !strings.Contains(failed[0], "bad1: broken") || !strings.Contains(failed[1], "panic3: decode panic3: decoder panicked") {
		t.Errorf("failures %q", failed)
	}

	stop := errors.New("stop")
	calls := 0
	err = Prefetch(context.Background(), paths, 1, 4, 1, Batch, decode, func(Prepared) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Prefetch(ctx, paths, 1, 4, 1, Batch, decode, func(Prepared) error { calls++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("cancelled: %v after %d calls", err, calls)
	}
}
