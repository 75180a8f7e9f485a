package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/internal/atomicfile"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "check that every shard of a sharded run is complete and combine them in manifest order",
		ArgsUsage: "SHARD.jsonl...",
		Description: "A job split with --shard i/n (caption, rewrite, embed) writes one output per shard.\n" +
			"merge reads them all, checks that together they hold exactly one record for every\n" +
			"item of the manifest (no item missing, none twice, none foreign), and writes one\n" +
			"output in manifest order, so the result does not depend on how the job was split.\n" +
			"A missing item is reported with the shard that owns it (with --shards N).\n\n" +
			"   synth merge --manifest products.jsonl --per image --shards 4 --out captioned.jsonl \\\n" +
			"       captioned.0.jsonl captioned.1.jsonl captioned.2.jsonl captioned.3.jsonl",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Required: true, Usage: "the manifest the shards were made from"},
			&cli.StringFlag{Name: "per", Value: "product", Usage: "records are per `product` (key id) or per image (key id + image)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "merged JSONL output (must not exist yet)"},
			&cli.IntFlag{Name: "shards", Usage: "the n of --shard i/n, to name the shard owning a missing item"},
			&cli.BoolFlag{Name: "allow-errors", Value: true, Usage: "records with an \"error\" field count as done (false: they count as missing)"},
		},
		Action: mergeAction,
	}
}

func mergeAction(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return usageErrorf("merge: give the shard outputs as arguments")
	}
	per := c.String("per")
	if per != "product" && per != "image" {
		return usageErrorf("--per %q: want product or image", per)
	}
	if c.Int("shards") < 0 {
		return usageErrorf("--shards must be >= 0")
	}
	out := c.String("out")
	if _, err := os.Stat(out); err == nil {
		return usageErrorf("--out %s exists; merge writes a new file", out)
	}
	m, err := dataset.ReadManifest(c.String("manifest"))
	if err != nil {
		return err
	}
	var order []string // expected keys in manifest order
	owner := map[string]string{}
	for _, p := range m.Products {
		if per == "product" {
			order = append(order, p.ID)
			owner[p.ID] = p.ID
			continue
		}
		for _, img := range p.Images {
			k := dataset.JoinKey(p.ID, img)
			order = append(order, k)
			owner[k] = p.ID
		}
	}
	keyOf := dataset.KeyFields("id")
	if per == "image" {
		keyOf = dataset.KeyFields("id", "image")
	}
	recs := map[string]json.RawMessage{}
	from := map[string]string{}
	for _, f := range files {
		err := dataset.ReadRecords(f, func(line int, raw json.RawMessage) error {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(raw, &fields); err != nil {
				return fmt.Errorf("merge: %s:%d: not a JSON object", f, line)
			}
			k, err := keyOf(fields)
			if err != nil {
				return fmt.Errorf("merge: %s:%d: %v", f, line, err)
			}
			if _, ok := owner[k]; !ok {
				return fmt.Errorf("merge: %s:%d: %s is not an item of %s", f, line, showKey(k), m.Path)
			}
			if prev, dup := from[k]; dup {
				return fmt.Errorf("merge: %s is in both %s and %s:%d", showKey(k), prev, f, line)
			}
			if _, failed := fields["error"]; failed && !c.Bool("allow-errors") {
				return nil
			}
			recs[k] = raw
			from[k] = fmt.Sprintf("%s:%d", f, line)
			return nil
		})
		if err != nil {
			return err
		}
	}
	var missing []string
	for _, k := range order {
		if _, ok := recs[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("merge: %d of %d items have no record; first: %s", len(missing), len(order), describeMissing(missing, owner, c.Int("shards")))
	}
	var b strings.Builder
	for _, k := range order {
		b.Write(recs[k])
		b.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(out, []byte(b.String())); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "merge: %d records from %d files -> %s\n", len(order), len(files), out)
	return nil
}

func showKey(k string) string { return strings.ReplaceAll(k, "\x1f", " / ") }

func describeMissing(keys []string, owner map[string]string, shards int) string {
	var parts []string
	for i, k := range keys {
		if i == 5 {
			parts = append(parts, "...")
			break
		}
		s := showKey(k)
		if shards > 0 {
			for i := 0; i < shards; i++ {
				if (dataset.Shard{Index: i, Count: shards}).Has(owner[k]) {
					s += fmt.Sprintf(" (shard %d/%d)", i, shards)
				}
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
