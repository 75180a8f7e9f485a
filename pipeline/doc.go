// Package pipeline is the paper's method as typed steps that call the libraries:
// Caption (BLIP-2 + LoRA, vision/blip2), Rewrite (an LLM through llama.cpp, llm), Eval
// (Long-CLIP Table 1 and per-record scores, eval and vision/longclip), then the
// published dataset (dataset: imagefolder configurations, Parquet, the card, the
// viewer). The commands of cmd/synth run one step each; synth pipeline runs a Plan
// read from synth.yaml (Config).
//
// Every step's settings are one Params struct whose tags give the flag and YAML names,
// aliases and defaults (settings.go, docs/parameters.md). Every record a step writes
// carries a Provenance (docs/provenance.md): a rerun whose fingerprint differs stops
// with a message saying what changed, or recomputes with Env.Force; it never skips
// silently. Steps check every model, adapter, manifest and setting before any of them
// runs (Step.Check), and report progress through internal/progress.
//
// pipeline imports vision, llm, eval, dataset and internal; only cmd imports it.
package pipeline
