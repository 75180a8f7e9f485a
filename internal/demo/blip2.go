package demo

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"synth/vision/blip2"
	"synth/vision/nn"
	"synth/weights"
)

// BLIP2Dims are the demo BLIP-2's sizes: the real architecture (EVA ViT at 224 px with
// patch 14, a Q-Former with cross-attention every second layer, OPT) at tiny widths.
type BLIP2Dims struct {
	VisionHidden, VisionLayers, VisionHeads, VisionMLP  int
	QHidden, QLayers, QHeads, QMLP, QCrossFreq, Queries int
	TextHidden, TextLayers, TextHeads, TextFFN, MaxPos  int
	Merges                                              int // OPT tokenizer merges to learn
}

// DemoBLIP2 keeps the demo's captioning fast on 2 cores.
var DemoBLIP2 = BLIP2Dims{
	VisionHidden: 48, VisionLayers: 2, VisionHeads: 4, VisionMLP: 96,
	QHidden: 48, QLayers: 2, QHeads: 4, QMLP: 96, QCrossFreq: 2, Queries: 8,
	TextHidden: 48, TextLayers: 2, TextHeads: 4, TextFFN: 96, MaxPos: 160,
	Merges: 400,
}

const (
	blip2Image = 224
	blip2Patch = 14
)

// WriteBLIP2 writes an HF Blip2ForConditionalGeneration folder (config.json,
// model.safetensors, the OPT tokenizer files, preprocessor_config.json) with random
// weights to dir, and a PEFT LoRA adapter for it to loraDir.
func WriteBLIP2(dir, loraDir string, d BLIP2Dims, seed uint64) error {
	for _, p := range []string{dir, loraDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	vocab, newline, err := writeOPTTokenizer(dir, trainGPT2(corpus(seed), d.Merges))
	if err != nil {
		return err
	}
	cfg := map[string]any{
		"architectures":                   []string{"Blip2ForConditionalGeneration"},
		"model_type":                      "blip-2",
		"num_query_tokens":                d.Queries,
		"use_decoder_only_language_model": true,
		"initializer_factor":              1.0,
		"initializer_range":               0.02,
		"vision_config": map[string]any{
			"model_type": "blip_2_vision_model", "hidden_size": d.VisionHidden,
			"intermediate_size": d.VisionMLP, "num_hidden_layers": d.VisionLayers,
			"num_attention_heads": d.VisionHeads, "image_size": blip2Image, "patch_size": blip2Patch,
			"hidden_act": "gelu", "layer_norm_eps": 1e-6, "qkv_bias": true,
		},
		"qformer_config": map[string]any{
			"model_type": "blip_2_qformer", "hidden_size": d.QHidden, "intermediate_size": d.QMLP,
			"num_hidden_layers": d.QLayers, "num_attention_heads": d.QHeads,
			"cross_attention_frequency": d.QCrossFreq, "encoder_hidden_size": d.VisionHidden,
			"hidden_act": "gelu", "layer_norm_eps": 1e-12,
		},
		"text_config": map[string]any{
			"model_type": "opt", "hidden_size": d.TextHidden, "ffn_dim": d.TextFFN,
			"num_hidden_layers": d.TextLayers, "num_attention_heads": d.TextHeads,
			"vocab_size": vocab, "max_position_embeddings": d.MaxPos,
			"word_embed_proj_dim": d.TextHidden, "activation_function": "relu",
			"do_layer_norm_before": true, "enable_bias": true, "bos_token_id": 2,
			"eos_token_id": newline, "pad_token_id": 1, "tie_word_embeddings": true,
		},
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), cfg); err != nil {
		return err
	}
	// BLIP-2's image processor: 224x224 bicubic, rescale 1/255, OpenAI CLIP mean/std.
	if err := writeJSON(filepath.Join(dir, "preprocessor_config.json"), map[string]any{
		"image_processor_type": "BlipImageProcessor", "do_resize": true,
		"size": map[string]int{"height": blip2Image, "width": blip2Image}, "resample": 3,
		"do_rescale": true, "rescale_factor": 1.0 / 255, "do_normalize": true,
		"image_mean": []float64{0.48145466, 0.4578275, 0.40821073},
		"image_std":  []float64{0.26862954, 0.26130258, 0.27577711}, "do_convert_rgb": true,
	}); err != nil {
		return err
	}

	js, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// the tensors are the ones blip2.Load reads, in the order it reads them
	_, src, err := blip2.Random(js, seed, nn.RandomOptions{}, blip2.Options{})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	tensors := src.Tensors()
	for _, t := range tensors { // tied LM head, stored under both names as HF saves it
		if t.Name == "language_model.model.decoder.embed_tokens.weight" {
			tensors = append(tensors, weights.Tensor{Name: "language_model.lm_head.weight", DType: t.DType, Shape: t.Shape, Data: t.Data})
			break
		}
	}
	if err := weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return writeBLIP2LoRA(loraDir, d, seed)
}

// writeBLIP2LoRA writes a PEFT adapter on OPT's q_proj/v_proj and the Q-Former's
// query/value, as the paper's fine-tuning would (peft 0.10's adapter_config.json keys).
func writeBLIP2LoRA(dir string, d BLIP2Dims, seed uint64) error {
	const r, alpha = 4, 8
	rt := &randTensors{r: rand.New(rand.NewPCG(seed, 0x10a))}
	module := func(name string, out, in int) {
		rt.normal("base_model.model."+name+".lora_A.weight", 0.15, r, in)
		rt.normal("base_model.model."+name+".lora_B.weight", 0.15, out, r)
	}
	for i := 0; i < d.TextLayers; i++ {
		for _, n := range []string{"q_proj", "v_proj"} {
			module(fmt.Sprintf("language_model.model.decoder.layers.%d.self_attn.%s", i, n), d.TextHidden, d.TextHidden)
		}
	}
	for i := 0; i < d.QLayers; i++ {
		for _, n := range []string{"query", "value"} {
			module(fmt.Sprintf("qformer.encoder.layer.%d.attention.attention.%s", i, n), d.QHidden, d.QHidden)
		}
	}
	cfg := map[string]any{
		"peft_type": "LORA", "task_type": nil, "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
		"bias": "none", "fan_in_fan_out": false, "use_rslora": false, "use_dora": false,
		"inference_mode": true, "init_lora_weights": true, "modules_to_save": nil,
		"layers_to_transform": nil, "layers_pattern": nil, "rank_pattern": map[string]any{},
		"alpha_pattern": map[string]any{}, "base_model_name_or_path": "synth-demo-blip2",
		"target_modules": `.*language_model\.model\.decoder\.layers\.\d+\.self_attn\.(q_proj|v_proj)|.*qformer\.encoder\.layer\.\d+\.attention\.attention\.(query|value)`,
	}
	if err := writeJSON(filepath.Join(dir, "adapter_config.json"), cfg); err != nil {
		return err
	}
	return weights.WriteSafetensors(filepath.Join(dir, "adapter_model.safetensors"), rt.sorted(), map[string]string{"format": "pt"})
}
