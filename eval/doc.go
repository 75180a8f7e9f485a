// Package eval computes the evaluation of a synthetic dataset: image-text similarity
// statistics (the paper's Table 1), retrieval metrics, distribution distances, plots and
// reports.
//
// Run is the whole evaluation (the `synth eval` command is its wiring): for each
// dataset manifest, the first being the reference, it samples products, embeds them
// through an Embedder (Long-CLIP, or a fake in tests) with an optional
// dataset/embcache in front, and computes:
//
//   - Table 1 exactly as docs/evaluation.md's protocol: n products with >= 2 images (and a
//     text), k images each; same = cos(I_pk, T_p) (n*k values), diff = cos(I_pk, T_q)
//     for q != p (n*k*(n-1) values); mean and population variance (ddof 0), counts.
//   - std; a 95% percentile-bootstrap interval of each mean, resampling products (see
//     Similarity.BootstrapCI for why not single cosines).
//   - AUC = P(same > diff), ties 1/2, exact by one merge of the sorted values.
//   - recall@1/5/10 image->text and text->image among the sampled products.
//   - image-image cosines, same product vs different products.
//   - for each dataset after the first, the Kolmogorov-Smirnov statistic and the
//     Wasserstein-1 distance of its same and its diff distribution to the reference's.
//
// Score is the per-record score: the cosine of each record's own image and text, every
// distinct input embedded once through the same cache; Ranks orders a product's records.
//
// Report.WriteFiles writes report.md, report.json (every number, the parameters, model
// and manifest hashes, sampled ids and images, exclusions with reasons) and
// similarity.png (histograms with gonum/plot on one y scale with the means marked, and
// the datasets' empirical CDFs compared on one panel).
//
// Sampling is reproducible across Go versions (rng.go): products are ranked by
// SHA-256(seed, id), images chosen by a Fisher-Yates shuffle on math/rand/v2's PCG-DXSM
// stream with the bounded draws written here. Cosines are float32 (the embeddings are);
// every sum over them is float64.
//
// Costs at n = 1000, k = 2, D = 768 (BenchmarkAnalyze): the 2000x1000 cosine matrix by
// gonum Sgemm, 2M diff values sorted once for AUC, KS and W1, the bootstrap's diff means
// as one [R, n] x [n, n] Dgemm, image-image sums from the D x D Gram matrix.
//
// eval works on embeddings and numbers. It must not import vision, llm or cmd.
package eval
