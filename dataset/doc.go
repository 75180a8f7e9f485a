// Package dataset holds product manifests (JSONL, one product a line), image loading,
// resumable JSONL/Parquet output and sharding.
//
// dataset must not import vision, llm, eval or cmd.
package dataset
