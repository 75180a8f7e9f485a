package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"github.com/urfave/cli/v2"

	"synth/internal/progress"
	"synth/native"
	"synth/pipeline"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "threads", Usage: "worker threads for compute (0 = physical cores available to this process)"},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info"},
		&cli.StringFlag{Name: "log-format", Usage: "text or json (logs and progress go to stderr)", Value: "text"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar or progress lines (--log-level warn also silences the info logs)"},
	}
}

// Bounds of the global and tokenizer flags (the steps' settings carry their own):
// far past any real use, and low enough that a mistyped value is a usage error naming
// the flag instead of an allocation that kills the process.
const (
	maxThreads = 1024
	maxContext = 1 << 16
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
	if err := native.KernelsOverride(); err != nil {
		return usageErrorf("%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageErrorf("--log-level: %q is not one of debug, info, warn, error", c.String("log-level"))
	}
	if f := strings.ToLower(c.String("log-format")); f != "text" && f != "json" {
		return usageErrorf("--log-format: %q is not text or json", c.String("log-format"))
	}
	installLogger(c, nil)
	return nil
}

// installLogger makes the default logger for the flags in c's lineage, writing through
// the progress reporter so log lines never land inside a progress bar.
func installLogger(c *cli.Context, r *progress.Reporter) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.String("log-level"))) // checked by setupGlobals
	opts := &slog.HandlerOptions{Level: level}
	w := r.LogWriter(c.App.ErrWriter)
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(c.String("log-format"), "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	slog.SetDefault(slog.New(h))
}

// quiet reports --quiet given before or after the command.
func quiet(c *cli.Context) bool {
	for _, l := range c.Lineage() {
		if l.IsSet("quiet") && l.Bool("quiet") {
			return true
		}
	}
	return false
}

// env is what the pipeline's steps share, from the global flags: threads, version,
// the progress reporter (a bar on a terminal, log lines otherwise, nothing with
// --quiet) and the model hash memory.
func env(c *cli.Context, force bool) *pipeline.Env {
	mode := progress.Auto(c.App.ErrWriter, quiet(c), strings.EqualFold(c.String("log-format"), "json"))
	r := progress.New(progress.Options{Mode: mode, W: c.App.ErrWriter})
	installLogger(c, r)
	e := &pipeline.Env{Threads: threads(c), Version: version, Force: force, Progress: r, Log: slog.Default()}
	if dir, err := os.UserCacheDir(); err == nil {
		e.Hashes = pipeline.OpenHashes(filepath.Join(dir, "synth", "model-hashes.json"))
	}
	return e
}

// settingFlags are the flags of a step's settings (pipeline.Settings): one place names
// them for the command line and synth.yaml.
func settingFlags(params any) []cli.Flag {
	pipeline.SetDefaults(params)
	var out []cli.Flag
	for _, s := range pipeline.Settings(params) {
		def := pipeline.Get(params, s.Name)
		if s.Bool {
			out = append(out, &cli.BoolFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: def == "true", Required: s.Required})
			continue
		}
		if s.Default == "" { // no default to show (an optional path, say)
			def = ""
		}
		out = append(out, &cli.StringFlag{Name: s.Name, Aliases: s.Aliases, Usage: s.Usage, Value: def, Required: s.Required})
	}
	return out
}

// readSettings fills params from the command line and validates them; a bad value is
// a usage error naming its flag.
func readSettings(c *cli.Context, params interface{ Validate() error }) error {
	pipeline.SetDefaults(params)
	for _, s := range pipeline.Settings(params) {
		if !c.IsSet(s.Name) {
			continue
		}
		v := c.String(s.Name)
		if s.Bool {
			v = strconv.FormatBool(c.Bool(s.Name))
		}
		if err := pipeline.Set(params, s.Name, v); err != nil {
			return usageErrorf("--%s %v", s.Name, err)
		}
	}
	if err := params.Validate(); err != nil {
		if _, ok := pipeline.AsSettingError(err); ok {
			return stepError(err)
		}
		return usageErrorf("%v", err)
	}
	return nil
}

// noArgs rejects positional arguments of a command that takes none.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("%s takes no arguments, got %q (see synth help %s)", c.Command.Name, c.Args().Slice(), c.Command.Name)
	}
	return nil
}

// stepError makes a step's bad setting a usage error naming its flag.
func stepError(err error) error {
	if se, ok := pipeline.AsSettingError(err); ok {
		if se.Key == "" {
			return usageErrorf("%s", se.Msg)
		}
		return usageErrorf("--%s %s", se.Key, se.Msg)
	}
	return err
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
