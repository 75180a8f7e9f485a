package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"github.com/urfave/cli/v2"

	"synth/native"
	"synth/native/ggml"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{
			Name:  "threads",
			Usage: "worker threads for compute (0 = physical cores available to this process)",
			Value: 0,
		},
		&cli.StringFlag{
			Name:  "log-level",
			Usage: "debug, info, warn or error",
			Value: "info",
		},
		&cli.StringFlag{
			Name:  "log-format",
			Usage: "text or json (logs go to stderr)",
			Value: "text",
		},
	}
}

// Bounds of resource flags: far past any real use, and low enough that a mistyped value
// (--batch 1000000000) is a usage error naming the flag instead of an allocation that
// kills the process.
const (
	maxThreads   = 1024
	maxBatch     = 1024 // images or texts per forward pass (caption, embed, eval)
	maxBeams     = 64
	maxSlots     = 4096 // caption: batch x beams sequences in one KV cache
	maxContext   = 1 << 16
	maxLLMCtx    = 1 << 20 // rewrite: positions per product (Llama 3.1 trains at 128K)
	maxLLMTokens = 1 << 24 // rewrite: --ctx x --parallel in one llama.cpp context
	maxBootstrap = 1_000_000
)

// intInRange reads an int flag and checks lo <= value <= hi.
func intInRange(c *cli.Context, name string, lo, hi int) (int, error) {
	v := c.Int(name)
	if v < lo || v > hi {
		return v, usageErrorf("--%s %d: want %d to %d", name, v, lo, hi)
	}
	return v, nil
}

// setupGlobals validates the global flags and installs the logger.
func setupGlobals(c *cli.Context) error {
	if _, err := intInRange(c, "threads", 0, maxThreads); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageErrorf("--log-level: %q is not one of debug, info, warn, error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(c.String("log-format")) {
	case "text":
		h = slog.NewTextHandler(c.App.ErrWriter, opts)
	case "json":
		h = slog.NewJSONHandler(c.App.ErrWriter, opts)
	default:
		return usageErrorf("--log-format: %q is not text or json", c.String("log-format"))
	}
	slog.SetDefault(slog.New(h))
	return nil
}

// threads is the worker count the user asked for, or the physical cores this process may
// use. cpuid counts the host's cores, which in a VM or cgroup can be far more than the
// CPUs we are allowed to run on, so the affinity-aware runtime.NumCPU caps it.
func threads(c *cli.Context) int {
	if n := c.Int("threads"); n > 0 {
		return n
	}
	return defaultThreads()
}

func defaultThreads() int {
	n := runtime.NumCPU()
	if p := cpuid.CPU.PhysicalCores; p > 0 && p < n {
		n = p
	}
	return n
}

func describeThreads(c *cli.Context) string {
	if n := c.Int("threads"); n > 0 {
		return fmt.Sprintf("%d (--threads)", n)
	}
	return fmt.Sprintf("%d (physical cores available)", defaultThreads())
}

// deviceFlag is --device of the commands that run BLIP-2 or Long-CLIP.
func deviceFlag() cli.Flag {
	return &cli.StringFlag{Name: "device", Value: "cpu",
		Usage: "where the model runs: cpu (synth's kernels), ggml:CPU, cuda:0 or another ggml device (synth doctor lists them; GPU modules load from $" + ggml.BackendsEnv + " or lib/synth beside the binary)"}
}

// openDevice opens --device; an unknown name is a usage error naming the devices there are.
func openDevice(c *cli.Context) (*native.Device, error) {
	d, err := native.OpenDevice(c.String("device"))
	if err != nil {
		return nil, usageErrorf("--device: %v", err)
	}
	return d, nil
}

// deviceBatch is --batch, or when it is 0 the default for the device: small batches
// keep a CPU's caches warm, a GPU needs many images at once to be busy.
func deviceBatch(c *cli.Context, d *native.Device, cpu, gpu int) (int, error) {
	b := c.Int("batch")
	switch {
	case b < 0:
		return 0, usageErrorf("--batch must be at least 1 (0: the device's default), got %d", b)
	case b > maxBatch:
		return 0, usageErrorf("--batch %d: want 1 to %d (0: the device's default)", b, maxBatch)
	case b > 0:
		return b, nil
	case d.GPU():
		return gpu, nil
	}
	return cpu, nil
}
