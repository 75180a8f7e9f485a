package longclip

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"synth/weights"
)

// roundedByUpstream reports whether upstream's build_model rounds the parameter to
// float16 (convert_weights, applied before load_state_dict; longclip.load then calls
// model.float() on the CPU): weight and bias of every Conv2d and Linear (conv1,
// attn.out_proj, mlp.c_fc, mlp.c_proj), MultiheadAttention's in_proj_weight and
// in_proj_bias, and the text_projection and visual.proj parameters. LayerNorms, the
// token and positional embeddings, class_embedding and logit_scale keep float32.
func roundedByUpstream(name string) bool {
	switch name {
	case "text_projection", "visual.proj", "visual.conv1.weight":
		return true
	}
	for _, suffix := range []string{
		".attn.in_proj_weight", ".attn.in_proj_bias",
		".attn.out_proj.weight", ".attn.out_proj.bias",
		".mlp.c_fc.weight", ".mlp.c_fc.bias",
		".mlp.c_proj.weight", ".mlp.c_proj.bias",
	} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// roundUpstreamFP16 returns an in-memory view of src in which the parameters upstream
// rounds to float16 hold float32 values rounded to the nearest float16 (ties to even,
// torch's .half()). Tensors stored quantized are left as they are. The other tensors
// share src's memory, so src must stay open.
func roundUpstreamFP16(src *weights.Source) (*weights.Source, error) {
	ts := src.Tensors()
	for i, t := range ts {
		if !roundedByUpstream(t.Name) || !t.DType.IsFloat() || t.DType.IsQuantized() {
			continue
		}
		v, err := t.F32()
		if err != nil {
			return nil, fmt.Errorf("longclip: round %s to float16: %w", t.Name, err)
		}
		b := make([]byte, 4*len(v))
		for j, x := range v {
			r := weights.F16ToF32(weights.F32ToF16(x))
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(r))
		}
		ts[i] = weights.Tensor{Name: t.Name, DType: weights.F32, Shape: t.Shape, Data: b}
	}
	out, err := weights.FromTensors(src.Path(), ts, src.Config(), src.Metadata())
	if err != nil {
		return nil, fmt.Errorf("longclip: %w", err)
	}
	return out, nil
}
