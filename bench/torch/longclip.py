"""Long-CLIP encoders at the released sizes, random weights, PyTorch CPU float32.

The architecture follows upstream model_longclip.CLIP (pre-LN residual blocks with
nn.MultiheadAttention and QuickGELU MLPs; ln_pre/ln_post in the vision tower; the text
tower with a causal mask over 248 positions and positional_embedding/_res split at 20).
Used as the anchor for synth's Long-CLIP benchmarks.
"""
import argparse
import json
import time

import torch
from torch import nn

SIZES = {
    "L": dict(embed=768, v_width=1024, v_layers=24, v_heads=16, patch=14, res=224,
              t_width=768, t_layers=12, t_heads=12),
    "B": dict(embed=512, v_width=768, v_layers=12, v_heads=12, patch=16, res=224,
              t_width=512, t_layers=12, t_heads=8),
}
CONTEXT = 248
VOCAB = 49408


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))

    def forward(self, x, mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Vision(nn.Module):
    def __init__(self, s):
        super().__init__()
        w = s["v_width"]
        grid = s["res"] // s["patch"]
        self.conv1 = nn.Conv2d(3, w, s["patch"], s["patch"], bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * 0.02)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, w) * 0.01)
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList([Block(w, s["v_heads"]) for _ in range(s["v_layers"])])
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, s["embed"]) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [B, grid^2, w]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.ln_pre(x).transpose(0, 1)  # [T, B, w] like upstream (batch_first=False)
        for b in self.blocks:
            x = b(x)
        return self.ln_post(x[0]) @ self.proj


class Text(nn.Module):
    def __init__(self, s):
        super().__init__()
        w = s["t_width"]
        self.token_embedding = nn.Embedding(VOCAB, w)
        self.positional_embedding = nn.Parameter(torch.randn(CONTEXT, w) * 0.01)
        self.positional_embedding_res = nn.Parameter(torch.randn(CONTEXT, w) * 0.01)
        self.blocks = nn.ModuleList([Block(w, s["t_heads"]) for _ in range(s["t_layers"])])
        self.ln_final = nn.LayerNorm(w)
        self.text_projection = nn.Parameter(torch.randn(w, s["embed"]) * w ** -0.5)
        mask = torch.full((CONTEXT, CONTEXT), float("-inf")).triu_(1)
        self.register_buffer("mask", mask)
        m1 = torch.zeros(CONTEXT, 1)
        m1[:20] = 1
        self.register_buffer("mask1", m1)
        self.register_buffer("mask2", 1 - m1)

    def forward(self, ids):
        x = self.token_embedding(ids)
        x = x + self.positional_embedding * self.mask1 + self.positional_embedding_res * self.mask2
        x = x.transpose(0, 1)
        for b in self.blocks:
            x = b(x, self.mask)
        x = self.ln_final(x.transpose(0, 1))
        return x[torch.arange(x.shape[0], device=ids.device), ids.argmax(-1)] @ self.text_projection


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timeit(fn, min_seconds, min_iters=2):
    fn()  # warm-up
    sync()
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < min_seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - start) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="L", choices=SIZES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check's anchor)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (on a GPU)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--text-len", type=int, default=60, help="tokens before EOT (the rest is padding)")
    ap.add_argument("--layers", type=int, default=0,
                    help="blocks per tower (0: the real counts); fewer blocks of the real shapes make short runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = dict(SIZES[args.size])
    if args.layers > 0:
        s["v_layers"] = s["t_layers"] = args.layers
    dev = torch.device(args.device)
    vision, text = Vision(s).eval().to(dev), Text(s).eval().to(dev)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.amp)
    with torch.inference_mode(), amp:
        for b in args.batch:
            img = torch.randn(b, 3, s["res"], s["res"], device=dev)
            sec = timeit(lambda: vision(img), args.seconds)
            print(json.dumps({"anchor": "pytorch", "model": f"LongCLIP-{args.size}", "tower": "image",
                              "layers": s["v_layers"], "batch": b, "threads": args.threads, "device": args.device, "amp": args.amp, "sec_per_batch": sec,
                              "items_per_sec": b / sec, "torch": torch.__version__}), flush=True)
            ids = torch.zeros(b, CONTEXT, dtype=torch.long, device=dev)
            ids[:, 0] = 49406
            ids[:, 1:args.text_len + 1] = torch.randint(1, 49000, (b, args.text_len), device=dev)
            ids[:, args.text_len + 1] = 49407
            sec = timeit(lambda: text(ids), args.seconds)
            print(json.dumps({"anchor": "pytorch", "model": f"LongCLIP-{args.size}", "tower": "text",
                              "layers": s["t_layers"], "batch": b, "threads": args.threads, "device": args.device, "amp": args.amp, "sec_per_batch": sec,
                              "items_per_sec": b / sec, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
