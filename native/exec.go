package native

// executor is the backend seam: what a device implements so that the ops API (ops.go,
// attention.go) runs on it. The Ctx validates every argument (shapes, devices, ids)
// before calling, so an executor only computes; a failure inside one is a bug and
// panics. Tensors passed are on the executor's device; dst is never an input unless a
// method says it may be.
//
// The cpu executor runs each call at once on the worker pool (cpu.go). The ggml executor
// records each call as nodes of a ggml graph and computes the graph at sync points: a
// download, an op whose result goes to the host, or a Release that gives memory back
// (ggml_exec.go). Either way the ops see memory in program order.
type executor interface {
	threads() int
	variant() string
	close()
	sync()

	upload(dst Tensor, src []float32)   // dst contiguous
	download(dst []float32, src Tensor) // dst: src's 2-D form row-major

	// dst = act(x W^T + bias) + res; bias may be empty; res may be empty or dst itself
	// (then act is None).
	linear(dst, x Tensor, w *Matrix, bias Tensor, act Epilogue, res Tensor)
	// dst = LayerNorm(x) * gamma + beta; dst may be x; gamma, beta may be empty.
	layerNorm(dst, x, gamma, beta Tensor, eps float32)
	// dst = softmax(scale x) per row (log: log-softmax); dst may be x.
	softmax(dst, x Tensor, scale float32, log bool)
	// dst = act(x); dst may be x.
	activation(dst, x Tensor, act Epilogue)
	// dst = alpha a + beta b, b's rows repeating over a's; dst may be a.
	axpby(dst, a Tensor, alpha float32, b Tensor, beta float32)
	// dst = x / ||x|| per row.
	l2Normalize(dst, x Tensor)
	// out[r] = argmax of row r (first maximum; NaN largest). Syncs.
	argmax(x Tensor, out []int64)
	// the k largest values of each row and their columns, largest first (ties: lower
	// column first; NaN ignored). Syncs.
	topK(x Tensor, k int, idx [][]int32, vals [][]float32)
	// dst [B*gh*gw, C*p*p] = im2col of img [B, C, H, W].
	im2col(dst, img Tensor, patch int)
	// dst row i = row ids[i] of w, dequantized.
	gather(dst Tensor, w *Matrix, ids []int32)
	// dst row i = row ids[i] of table.
	gatherRows(dst, table Tensor, ids []int32)
	// dst = src (same 2-D shape, views allowed, no overlap).
	copy(dst, src Tensor)
	// t = 0.
	zero(t Tensor)
	// x[at[i]] = v for flat indices of x's 2-D form (contiguous x).
	fillAt(x Tensor, at []int32, v float32)
	// x[at[i]] = x < 0 ? x*p : x/p (repetition penalty), flat indices as fillAt.
	penalizeAt(x Tensor, at []int32, p float32)

	// o = attention of q over k, v for sequences described by seq (kernels.SeqFields
	// per sequence: q row, q rows, k row, k rows, first query position, mask offset)
	// and mask (one byte per key, 0 = padded). k and v may be a cache's layer.
	attention(o, q Tensor, k, v kvOperand, seq []int64, mask []byte, p AttnParams)
	// rows dst[i] of a cache layer's keys and values = rows i of k and v.
	kvStore(kv *KVCache, layer int, k, v Tensor, dst []int64)
	// cache rows [dst, dst+n) = rows [src, src+n) in every layer.
	kvCopy(kv *KVCache, dst, src, n int)

	// Backward ops (grad.go): dx = dy W; out = a^T b; LayerNorm's and an activation's
	// input gradients; attention's three gradients (seq and mask as for attention, keys
	// and values activations); cross-entropy's gradient into dl with its summed loss
	// returned (waits); dropout in place with the mask DropoutKeep gives.
	linearBackward(dx, dy Tensor, w *Matrix)
	matMulTN(out, a, b Tensor)
	layerNormBackward(dx, dy, x, gamma Tensor, eps float32)
	activationBackward(dx, dy, pre Tensor, act Epilogue)
	attentionBackward(dq, dk, dv, q, k, v, dout Tensor, seq []int64, mask []byte, p AttnParams)
	crossEntropy(dl, logits Tensor, targets []int32, scale float32) float64
	dropout(x Tensor, p float32, seed uint64)
}

// kvOperand is the keys or values attention reads: an activation tensor, or one layer
// of a KV cache (all its rows, in the cache's element type).
type kvOperand struct {
	t     Tensor   // activations; empty for a cache
	cache *KVCache // the cache, with layer and which (0 keys, 1 values)
	layer int
	which int
}

func actOperand(t Tensor) kvOperand { return kvOperand{t: t} }
