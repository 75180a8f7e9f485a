// Package dataset holds product manifests (JSONL, one product a line; docs/manifest.md),
// image listing, resumable JSONL output, sharding and merging, embedding outputs (.npy,
// .safetensors, JSONL), and the published dataset (docs/dataset.md): the Hugging Face
// imagefolder layout (LinkImages, metadata.jsonl), Parquet with one fixed schema (Row),
// the dataset card (Card), the static viewer (WriteView) and filtering by score (Filter).
//
// dataset must not import vision, llm, eval, pipeline or cmd.
package dataset
