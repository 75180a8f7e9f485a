package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"synth/dataset/embcache"
)

// BenchmarkAnalyze is the statistics of one dataset at the paper's size (everything Run
// does after embedding), and its parts.
func BenchmarkAnalyze(b *testing.B) {
	for _, n := range []int{100, 1000} {
		const k, d = 2, 768
		r := rand.New(rand.NewPCG(1, 2))
		images, texts := randomSample(r, n, k, d)
		name := fmt.Sprintf("n=%d/k=%d/d=%d", n, k, d)
		b.Run("part=all/"+name, func(b *testing.B) {
			for b.Loop() {
				analyze(&DatasetReport{}, images, texts, k, DefaultBootstrap, newRNG(1, "bench"))
			}
		})
		b.Run("part=cosines/"+name, func(b *testing.B) {
			for b.Loop() {
				NewSimilarity(images, texts, k)
			}
		})
		s := NewSimilarity(images, texts, k)
		b.Run("part=sort+auc/"+name, func(b *testing.B) {
			for b.Loop() {
				same, diff := s.Same(), s.Diff()
				sortFloat32(same)
				sortFloat32(diff)
				AUC(same, diff)
			}
		})
		b.Run("part=bootstrap/"+name, func(b *testing.B) {
			for b.Loop() {
				s.BootstrapCI(DefaultBootstrap, newRNG(1, "bench"))
			}
		})
		b.Run("part=recall/"+name, func(b *testing.B) {
			for b.Loop() {
				s.ImageToText()
				s.TextToImage()
			}
		})
		b.Run("part=imageimage/"+name, func(b *testing.B) {
			for b.Loop() {
				ImageImage(images, k)
			}
		})
	}
}

// BenchmarkRunCache is Run on one dataset at the paper's size with the fake embedder
// (768 wide), with no cache, with a cold cache (filled as it goes) and with a warm one.
// The fake embedder is nearly free, so this measures what Run and the cache cost around
// the model, not what the cache saves: that is the model's time for every input it
// holds (report.json's embedding counts).
func BenchmarkRunCache(b *testing.B) {
	root := b.TempDir()
	const n = 1000
	ps := goodProducts("p", n, 2, func(id string) string { return id + ": a description" })
	m := writeDataset(b, filepath.Join(root, "d"), ps)
	cfg := Config{Datasets: []Dataset{{Name: "d", Manifest: m}}, Products: n}
	run := func(b *testing.B, c *embcache.Cache) {
		cfg.Cache = c
		if _, err := Run(context.Background(), cfg, &fakeEmbedder{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run(fmt.Sprintf("cache=none/n=%d", n), func(b *testing.B) {
		for b.Loop() {
			run(b, nil)
		}
	})
	b.Run(fmt.Sprintf("cache=cold/n=%d", n), func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			c, err := embcache.Open(filepath.Join(root, fmt.Sprint("cold", i)))
			if err != nil {
				b.Fatal(err)
			}
			run(b, c)
			c.Close()
		}
	})
	c, err := embcache.Open(filepath.Join(root, "warm"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	run(b, c)
	b.Run(fmt.Sprintf("cache=warm/n=%d", n), func(b *testing.B) {
		for b.Loop() {
			run(b, c)
		}
	})
}
