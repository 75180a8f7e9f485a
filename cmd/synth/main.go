// Command synth builds synthetic text-image datasets for the fashion domain: it captions
// product images (BLIP-2 + LoRA), rewrites keyword lists into sentence descriptions
// (Llama 3.1 through llama.cpp) and judges the result with Long-CLIP similarity.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at link time by the Makefile (-X main.version=...).
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI with args and returns the process exit code. Errors are printed
// as one line on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
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
			"files; nothing is downloaded at run time.",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     globalFlags(),
		Before:    setupGlobals,
		Commands:  commands(),
		// Errors are printed once by run, with the exit code chosen there.
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    onUsageError,
		HideHelpCommand: true,
		// Repeatable flags take one value each: texts such as "blue jeans, cotton" must not
		// be split at their commas.
		DisableSliceFlagSeparator: true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("unknown command %q (see synth --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	markUsageErrors(app.Commands)
	return app
}

// commands is the list of subcommands, in the order --help shows them.
func commands() []*cli.Command {
	return []*cli.Command{
		pipelineCommand(),
		demoCommand(),
		captionCommand(),
		rewriteCommand(),
		evalCommand(),
		embedCommand(),
		tokenizeCommand(),
		inspectCommand(),
		convertCommand(),
		quantizeCommand(),
		mergeCommand(),
		doctorCommand(),
		benchCommand(),
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
	if errors.As(err, &u) {
		return true
	}
	// urfave/cli v2 keeps its missing-required-flag error type unexported.
	return strings.HasPrefix(err.Error(), "Required flag") || strings.HasPrefix(err.Error(), "Required flags")
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }

func markUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		markUsageErrors(c.Subcommands)
	}
}

func oneLine(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
