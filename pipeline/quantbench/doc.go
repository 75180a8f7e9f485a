// Package quantbench is `synth bench quant`: it measures what each quantization level
// costs and changes, for the three models of the method on the user's own sample, and
// fills a quant.Report (package eval/quant: the measures, the report and the plots).
//
// For every model the reference is the model as given, its float weights computed in
// float32. Levels of the vision models are files synth writes itself: the reference
// checkpoint converted with weights.ConvertToGGUF (what `synth convert --type LEVEL`
// writes), loaded and run like any GGUF, then removed. Levels of the Llama are the GGUF
// files the user gives for them (synth does not quantize Llama GGUFs yet). A level a
// model cannot take is reported with the reason, not measured.
//
//   - Long-CLIP (--eval-model): the Table 1 evaluation of package eval on the sample,
//     once with the reference and once per level, every embedding recorded; the cosine
//     of each level embedding to the reference's, the change in every Table 1 number,
//     and the rank agreement of the per-record scores (each sampled image's cosine with
//     its product's text).
//   - BLIP-2 (--caption-model): the first image of each of the first n products with
//     one, preprocessed once; greedy captions by each level; the reference's captions
//     teacher-forced through every level (blip2.Model.TeacherForce) for next-token KL
//     and top-1 agreement; exact matches and chrF of the captions.
//   - Llama (--rewrite-model): the rewrite prompts (built-in instruction and examples)
//     of the first n products with keywords; greedy rewrites by each level; the
//     reference's rewrites teacher-forced through every level (llm.Scorer); exact
//     matches, chrF and the change in keyword coverage (llm.Coverage).
//
// Costs per level: the file's size, the load time, the speed of the work (images/s,
// tokens/s) on the device asked for, and the process's peak resident memory from before
// the load to the end of the work (Linux: VmHWM, reset per level through
// /proc/self/clear_refs).
//
// The reference's logits are kept in a file in the report folder while the levels run
// (n x tokens x vocabulary float32 values: about 300 MB for BLIP-2 OPT at 50 captions
// of 30 tokens) and removed at the end.
//
// quantbench sits beside the pipeline's steps: it may import vision, llm, eval and
// dataset, and must not import cmd.
package quantbench
