// Package quant compares a model at a quantization level with its reference (the same
// model at F32, or as stored in F16): the numbers `synth bench quant` reports and the
// report and plots it writes. It works on numbers only (logits, embeddings, texts,
// per-record scores); package pipeline/quantbench runs the models and fills a Report.
//
// The measures, each defined where it is computed:
//
//   - next-token fidelity of a language model, teacher-forced on the reference's own
//     greedy output (NextToken): KL(P_ref || P_level) in nats per position, mean and
//     maximum, and the share of positions whose most likely token is the reference's;
//   - output text agreement (TextAgreement): the share of outputs identical to the
//     reference's, and chrF (ChrF: character 1- to 6-grams, beta 2, Popović 2015);
//   - embedding agreement: the cosine of each embedding to the reference's (mean,
//     minimum), the change in every Table 1 number (from package eval's report), and the
//     rank agreement of per-record scores: Spearman's rho (ties at their average rank)
//     and Kendall's tau-b (Rank);
//   - costs: file size, load time, speed, peak memory.
//
// Every sum over probabilities or scores is float64.
//
// quant imports eval (for Table 1's report fields) and gonum/plot; like eval it must
// not import vision, llm, pipeline or cmd.
package quant
