package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"github.com/urfave/cli/v2"

	"synth/native"
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

// setupGlobals validates the global flags and installs the logger.
func setupGlobals(c *cli.Context) error {
	if c.Int("threads") < 0 {
		return usageErrorf("--threads must be >= 0, got %d", c.Int("threads"))
	}
	if err := native.KernelsOverride(); err != nil {
		return usageErrorf("%v", err)
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
