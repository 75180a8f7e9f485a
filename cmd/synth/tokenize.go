package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"synth/dataset"
	"synth/vision/cliptok"
)

// clipVocabName is the merges file upstream ships beside its models.
const clipVocabName = "bpe_simple_vocab_16e6.txt.gz"

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "tokenize texts with Long-CLIP's BPE tokenizer and print the ids as JSON lines",
		ArgsUsage: " ",
		Description: "Runs the tokenizer Long-CLIP uses (upstream cleaning: ftfy-style repair, HTML\n" +
			"unescape, whitespace collapse, lowercase; byte-level BPE; <|startoftext|> ... <|endoftext|>)\n" +
			"with truncation that keeps <|endoftext|> last, as upstream's truncate=True.\n" +
			"Texts come from --text (repeatable) or --texts FILE (one text a line, '-' for stdin; a\n" +
			".jsonl file holds a JSON string a line, for texts with newlines).\n" +
			"Each text prints one line: {\"ids\": [...], \"length\": n, \"truncated\": bool, \"eot_index\": i};\n" +
			"--pad pads ids with zeros to the context length (the model's input row).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vocab", Usage: "the BPE merges file (" + clipVocabName + ")"},
			&cli.StringFlag{Name: "model", Usage: "a Long-CLIP model folder holding " + clipVocabName + " (instead of --vocab)"},
			&cli.IntFlag{Name: "context", Value: cliptok.Context, Usage: "context length (Long-CLIP: 248)"},
			&cli.StringSliceFlag{Name: "text", Usage: "a text to tokenize (repeatable)"},
			&cli.StringFlag{Name: "texts", Usage: "a file with one text a line ('-': standard input), or .jsonl: a JSON string a line"},
			&cli.BoolFlag{Name: "pad", Usage: "pad ids with zeros to --context"},
		},
		Action: runTokenize,
	}
}

type tokenizeLine struct {
	IDs       []int32 `json:"ids"`
	Length    int     `json:"length"`
	Truncated bool    `json:"truncated"`
	EOTIndex  int     `json:"eot_index"`
}

func runTokenize(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("tokenize takes no arguments (use --text or --texts), got %q", c.Args().First())
	}
	vocab := c.String("vocab")
	switch {
	case vocab != "" && c.String("model") != "":
		return usageErrorf("give --vocab or --model, not both")
	case c.String("model") != "":
		vocab = filepath.Join(c.String("model"), clipVocabName)
	case vocab == "":
		return usageErrorf("tokenize needs --vocab FILE or --model DIR")
	}
	texts := c.StringSlice("text")
	if (len(texts) > 0) == (c.String("texts") != "") {
		return usageErrorf("give either --text (repeatable) or --texts FILE")
	}
	ctxLen, err := intInRange(c, "context", 2, maxContext) // 2: SOT and EOT
	if err != nil {
		return err
	}
	tok, err := cliptok.Load(vocab)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	enc := json.NewEncoder(w)
	emit := func(text string) error {
		ids, truncated := tok.Encode(text, ctxLen)
		line := tokenizeLine{IDs: ids, Length: len(ids), Truncated: truncated}
		if c.Bool("pad") {
			line.IDs = cliptok.Pad(ids, ctxLen)
		}
		line.EOTIndex = cliptok.EOTIndex(cliptok.Pad(ids, ctxLen))
		return enc.Encode(line)
	}
	if len(texts) > 0 {
		for _, t := range texts {
			if err := emit(t); err != nil {
				return err
			}
		}
		return nil
	}
	if name := c.String("texts"); strings.EqualFold(filepath.Ext(name), ".jsonl") {
		// a JSON string (or a product line) a line: texts that hold newlines
		texts, err := dataset.ReadTexts(name)
		if err != nil {
			return err
		}
		for _, tx := range texts {
			if err := emit(tx.Text); err != nil {
				return err
			}
		}
		return nil
	}
	var r io.Reader = os.Stdin
	if name := c.String("texts"); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("tokenize: %w", err)
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if n := len(text); n > 0 && text[n-1] == '\r' {
			text = text[:n-1]
		}
		if err := emit(text); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tokenize: read %s: %w", c.String("texts"), err)
	}
	return nil
}
