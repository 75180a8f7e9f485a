// Command synth builds synthetic text-image datasets for the fashion domain: it captions
// product images (BLIP-2 + LoRA), rewrites keyword lists into sentence descriptions
// (Llama 3.1 through llama.cpp) and judges the result with Long-CLIP similarity.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"synth/internal/escape"
	"synth/pipeline"
)

// version and cgoFlags are set at link time by the Makefile (-X main.version=...,
// -X 'main.cgoFlags=$(CGO_CFLAGS)'); synth doctor reads cgoFlags to say whether this
// binary is portable or tuned for its build machine.
var (
	version  = "dev"
	cgoFlags = ""
)

// Exit codes.
const (
	exitOK          = 0
	exitRuntime     = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report a command stopped by Ctrl-C
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI with args and returns the process exit code. Errors are printed
// as one line on stderr. SIGINT and SIGTERM cancel the commands' context: they stop
// at the next batch, keep what is written, and the exit code is 130.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		if err == nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "synth: %s\n", oneLine(err.Error()))
		return exitInterrupted
	case err == nil:
		return exitOK
	}
	fmt.Fprintf(stderr, "synth: %s\n", oneLine(err.Error()))
	if isUsage(err) {
		return exitUsage
	}
	return exitRuntime
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "synth",
		Usage:   "build synthetic text-image datasets for the fashion domain (offline, native)",
		Version: version,
		Description: "synth follows the paper's three steps: caption product images with BLIP-2 + LoRA,\n" +
			"rewrite keyword lists into long sentence descriptions with Llama 3.1 and few-shot\n" +
			"style examples, and evaluate with Long-CLIP image-text similarity. Weights are local\n" +
			"files; nothing is downloaded at run time. 'synth help COMMAND' shows a command's flags.",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     globalFlags(),
		Before:    setupGlobals,
		Commands:  commands(),
		// Errors are printed once by run, with the exit code chosen there.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		// Repeatable flags take one value each: texts such as "blue jeans, cotton" must not
		// be split at their commas.
		DisableSliceFlagSeparator: true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				name := c.Args().First()
				var names []string
				for _, cmd := range c.App.Commands {
					names = append(names, cmd.Name)
				}
				if s := pipeline.Suggest(name, names); s != "" {
					return usageErrorf("unknown command %q; did you mean %q? (see synth --help)", name, s)
				}
				return usageErrorf("unknown command %q (see synth --help)", name)
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, c := range app.Commands {
		prepare(c, c.Name)
	}
	return app
}

// commands is the list of subcommands, in the order --help shows them.
func commands() []*cli.Command {
	return []*cli.Command{
		pipelineCommand(),
		demoCommand(),
		translateCommand(),
		finetuneCommand(),
		captionCommand(),
		rewriteCommand(),
		evalCommand(),
		embedCommand(),
		viewCommand(),
		filterCommand(),
		tokenizeCommand(),
		inspectCommand(),
		convertCommand(),
		quantizeCommand(),
		mergeCommand(),
		modelsCommand(),
		doctorCommand(),
		benchCommand(),
	}
}

// prepare gives every command the same conventions: usage errors exit 2 with a
// suggestion for a mistyped flag, a missing required flag is one line (urfave/cli would
// print the whole help before it), and --quiet is accepted after the command too.
func prepare(c *cli.Command, path string) {
	if c.OnUsageError == nil {
		c.OnUsageError = onUsageError
	}
	var required []string
	for _, f := range c.Flags {
		if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
			required = append(required, f.Names()[0])
			unrequire(f)
		}
	}
	if c.Action != nil && c.Subcommands == nil {
		c.Flags = append(c.Flags, &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar or progress lines (--log-level warn also silences the info logs)"})
		act := c.Action
		c.Action = func(ctx *cli.Context) error {
			for _, n := range required {
				if !ctx.IsSet(n) {
					return usageErrorf("%s: --%s is required (see synth help %s)", path, n, path)
				}
				if empty(ctx, n) { // --out "" used to get as far as "open : no such file"
					return usageErrorf("%s: --%s is empty", path, n)
				}
			}
			return act(ctx)
		}
	}
	for _, sub := range c.Subcommands {
		prepare(sub, path+" "+sub.Name)
	}
}

func unrequire(f cli.Flag) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.Required = false
	case *cli.StringSliceFlag:
		f.Required = false
	case *cli.IntFlag:
		f.Required = false
	case *cli.BoolFlag:
		f.Required = false
	}
}

// usageError marks errors caused by how synth was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// onUsageError marks flag parsing errors as usage errors and suggests the closest
// flag for an unknown one.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		flags := c.App.Flags
		if c.Command != nil && c.Command.Name != "" {
			flags = c.Command.Flags
		}
		name = strings.TrimLeft(name, "-")
		if s := cli.SuggestFlag(flags, name, false); s != "" {
			return usageErrorf("unknown flag --%s; did you mean %s?", name, s)
		}
		return usageErrorf("unknown flag --%s", name)
	}
	return usageError{err}
}

// empty reports a string flag given as "" (or a repeatable one with an empty value).
func empty(c *cli.Context, name string) bool {
	for _, v := range c.StringSlice(name) {
		if strings.TrimSpace(v) == "" {
			return true
		}
	}
	return len(c.StringSlice(name)) == 0 && strings.TrimSpace(c.String(name)) == ""
}

// oneLine makes an error one line of plain text: line breaks become spaces and other
// control characters (from names in a file, say) are escaped.
func oneLine(s string) string {
	return escape.Control(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}
