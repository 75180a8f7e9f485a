package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

// Row is one image-text record of a published dataset: the fixed schema of every
// configuration's metadata.jsonl and of every Parquet file (docs/dataset.md). Every row
// has every column; a value that does not apply is null (keywords: an empty list).
// params and models are JSON text in both formats, so the two never disagree on a type.
type Row struct {
	// FileName is the image: in metadata.jsonl relative to the metadata file's folder
	// (the imagefolder convention), in Parquet relative to the dataset folder.
	FileName string `json:"file_name" parquet:"file_name"`
	Dataset  string `json:"dataset" parquet:"dataset"`
	ID       string `json:"id" parquet:"id"`
	// Image is the image as the input manifest names it.
	Image    string   `json:"image" parquet:"image"`
	Text     *string  `json:"text" parquet:"text,optional"`
	Keywords []string `json:"keywords" parquet:"keywords,list"`
	Category *string  `json:"category" parquet:"category,optional"`
	Title    *string  `json:"title" parquet:"title,optional"`
	Lang     *string  `json:"lang" parquet:"lang,optional"`

	// Provenance of a synthetic text: the model's file name, the generation parameters
	// (JSON object as text), the sha256 of every model file by role (JSON object as text),
	// the step's fingerprint and synth's version.
	Model       *string `json:"model" parquet:"model,optional"`
	Params      *string `json:"params" parquet:"params,optional"`
	Models      *string `json:"models" parquet:"models,optional"`
	Fingerprint *string `json:"fingerprint" parquet:"fingerprint,optional"`
	Version     *string `json:"version" parquet:"version,optional"`

	Tokens       *int64   `json:"tokens" parquet:"tokens,optional"`
	MS           *float64 `json:"ms" parquet:"ms,optional"`
	Coverage     *float64 `json:"coverage" parquet:"coverage,optional"`
	LowCoverage  *bool    `json:"low_coverage" parquet:"low_coverage,optional"`
	FinishReason *string  `json:"finish_reason" parquet:"finish_reason,optional"`
	Error        *string  `json:"error" parquet:"error,optional"`

	// Score is the Long-CLIP cosine of the image and the text; Rank its 1-based rank
	// among the rows of the same product in the same dataset (1: the best match).
	Score *float64 `json:"score" parquet:"score,optional"`
	Rank  *int64   `json:"rank" parquet:"rank,optional"`
}

// MetadataFile is the imagefolder metadata file of a configuration folder.
const MetadataFile = "metadata.jsonl"

// ParquetSchema is the schema every Parquet file of a published dataset has.
func ParquetSchema() *parquet.Schema { return parquet.SchemaOf(Row{}) }

// WriteParquet writes rows as a Parquet file with the Row schema, FileName made
// relative to the dataset folder by prefixing prefix (the configuration's folder name).
func WriteParquet(path, prefix string, rows []Row) error {
	out := make([]Row, len(rows))
	for i, r := range rows {
		r.FileName = filepath.ToSlash(filepath.Join(prefix, r.FileName))
		if r.Keywords == nil {
			r.Keywords = []string{}
		}
		out[i] = r
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[Row](&buf)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("dataset: parquet %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("dataset: parquet %s: %w", path, err)
	}
	return writeIfChanged(path, buf.Bytes())
}

// ReadParquet reads a file written by WriteParquet.
func ReadParquet(path string) ([]Row, error) {
	rows, err := parquet.ReadFile[Row](path)
	if err != nil {
		return nil, fmt.Errorf("dataset: parquet %s: %w", path, err)
	}
	return rows, nil
}

// WriteMetadata writes rows as dir/metadata.jsonl, one JSON object a line with every
// column present.
func WriteMetadata(dir string, rows []Row) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if r.Keywords == nil {
			r.Keywords = []string{}
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("dataset: metadata %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return writeIfChanged(filepath.Join(dir, MetadataFile), buf.Bytes())
}

// ReadMetadata reads a metadata.jsonl written by WriteMetadata.
func ReadMetadata(path string) ([]Row, error) {
	var rows []Row
	err := ReadRecords(path, func(line int, raw json.RawMessage) error {
		var r Row
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("dataset: %s:%d: %v", path, line, err)
		}
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

// writeIfChanged leaves an identical file alone, so reruns keep time stamps, and
// otherwise replaces it atomically.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	return replaceFile(path, data)
}

// WriteFileIfChanged is writeIfChanged for other packages' files (cards, reports).
func WriteFileIfChanged(path string, data []byte) error { return writeIfChanged(path, data) }
