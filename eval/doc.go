// Package eval computes the evaluation of a synthetic dataset: image-text similarity
// statistics (the paper's Table 1), retrieval metrics, distribution distances, plots and
// reports.
//
// eval works on embeddings and numbers. It must not import vision, llm or cmd.
package eval
