package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"synth/weights/modellock"
)

func modelsCommand() *cli.Command {
	return &cli.Command{
		Name:  "models",
		Usage: "lock and verify model files (for copies across an air gap)",
		Subcommands: []*cli.Command{
			{
				Name:      "lock",
				Usage:     "print the sha256, size and path of every file under the given folders and files",
				ArgsUsage: "DIR|FILE... > models.lock",
				Description: "Hashes every model file (symlinks to files included, as in a Hugging Face cache)\n" +
					"and prints a models.lock. Paths are written as given; relative ones are read back\n" +
					"relative to the lock file's folder, so run it in the folder the lock will live in:\n\n" +
					"   cd /data && synth models lock models/ > models.lock\n\n" +
					"Copy the folder, then run `synth models check models.lock` on the other side, or give\n" +
					"the lock to synth pipeline (models-lock: in the config, or --models-lock).",
				Action: func(c *cli.Context) error {
					if !c.Args().Present() {
						return usageErrorf("models lock: give the model folders or files to lock")
					}
					start := time.Now()
					entries, err := modellock.Make(c.Args().Slice()...)
					if err != nil {
						return err
					}
					entries = withoutOutput(c, entries)
					if err := modellock.Write(c.App.Writer, entries); err != nil {
						return err
					}
					var bytes int64
					for _, e := range entries {
						bytes += e.Size
					}
					fmt.Fprintf(c.App.ErrWriter, "models lock: %d files, %d bytes hashed in %s\n", len(entries), bytes, time.Since(start).Round(time.Millisecond))
					return nil
				},
			},
			{
				Name:      "check",
				Usage:     "verify the files a models.lock lists: one line saying what is missing or differs",
				ArgsUsage: "models.lock",
				Description: "Reads every file the lock lists (relative paths from the lock's folder) and compares\n" +
					"its size and sha256. Exit code 0 when all match, 1 when any is missing or differs.",
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 1 {
						return usageErrorf("models check: want one models.lock, got %d arguments", c.Args().Len())
					}
					l, err := modellock.Read(c.Args().First())
					if err != nil {
						return err
					}
					r := l.Check()
					if err := r.Err(); err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, r)
					return nil
				},
			},
		},
	}
}

// withoutOutput drops the lock file itself from entries when stdout is redirected into a
// folder being locked (`synth models lock . > models.lock`): the shell created it empty
// before synth ran, so its entry could never match.
func withoutOutput(c *cli.Context, entries []modellock.Entry) []modellock.Entry {
	f, ok := c.App.Writer.(*os.File)
	if !ok {
		return entries
	}
	out, err := f.Stat()
	if err != nil || !out.Mode().IsRegular() {
		return entries
	}
	kept := entries[:0]
	for _, e := range entries {
		if st, err := os.Stat(e.Path); err == nil && os.SameFile(st, out) {
			continue
		}
		kept = append(kept, e)
	}
	return kept
}
