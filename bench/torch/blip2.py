"""BLIP-2 OPT-2.7B at the real sizes, random weights, PyTorch CPU float32.

Plain-PyTorch re-statement of HF Blip2ForConditionalGeneration's inference path (EVA ViT-g
vision tower with exact GELU, BERT-style post-LN Q-Former with cross-attention every
second layer, language projection, pre-LN OPT decoder with ReLU FFN, learned positions
offset 2, tied LM head) with a KV cache for greedy decoding. Used as the anchor for
synth's BLIP-2 benchmarks; random weights, so the captions are meaningless and decoding
runs a fixed number of steps.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

REAL = dict(v_hidden=1408, v_layers=39, v_heads=16, v_mlp=6144, image=224, patch=14,
            q_hidden=768, q_layers=12, q_heads=12, q_mlp=3072, q_cross_freq=2, queries=32,
            t_hidden=2560, t_layers=32, t_heads=32, t_ffn=10240, vocab=50272, max_pos=2048)
TINY = dict(v_hidden=32, v_layers=2, v_heads=4, v_mlp=64, image=56, patch=14,
            q_hidden=32, q_layers=2, q_heads=4, q_mlp=64, q_cross_freq=1, queries=8,
            t_hidden=32, t_layers=2, t_heads=4, t_ffn=64, vocab=128, max_pos=64)


def heads_attn(q, k, v, heads, mask=None):
    b, tq, w = q.shape
    tk = k.shape[1]
    d = w // heads
    q = q.view(b, tq, heads, d).transpose(1, 2)
    k = k.view(b, tk, heads, d).transpose(1, 2)
    v = v.view(b, tk, heads, d).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    if mask is not None:
        s = s + mask
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(b, tq, w)


class VisionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["v_hidden"]
        self.heads = c["v_heads"]
        self.ln1, self.ln2 = nn.LayerNorm(h, eps=1e-6), nn.LayerNorm(h, eps=1e-6)
        self.qkv, self.proj = nn.Linear(h, 3 * h), nn.Linear(h, h)
        self.fc1, self.fc2 = nn.Linear(h, c["v_mlp"]), nn.Linear(c["v_mlp"], h)

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, -1)
        x = x + self.proj(heads_attn(q, k, v, self.heads))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Vision(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, n = c["v_hidden"], (c["image"] // c["patch"]) ** 2
        self.patch = nn.Conv2d(3, h, c["patch"], c["patch"])
        self.cls = nn.Parameter(torch.randn(1, 1, h) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, h) * 0.02)
        self.layers = nn.ModuleList([VisionLayer(c) for _ in range(c["v_layers"])])
        self.post = nn.LayerNorm(h, eps=1e-6)

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for l in self.layers:
            x = l(x)
        return self.post(x)


class QAttn(nn.Module):
    def __init__(self, h, kv_in, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(h, h), nn.Linear(kv_in, h), nn.Linear(kv_in, h)
        self.out, self.ln = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)

    def forward(self, x, kv):
        return self.ln(self.out(heads_attn(self.q(x), self.k(kv), self.v(kv), self.heads)) + x)


class QLayer(nn.Module):
    def __init__(self, c, cross):
        super().__init__()
        h = c["q_hidden"]
        self.self_attn = QAttn(h, h, c["q_heads"])
        self.cross = QAttn(h, c["v_hidden"], c["q_heads"]) if cross else None
        self.fc1, self.fc2 = nn.Linear(h, c["q_mlp"]), nn.Linear(c["q_mlp"], h)
        self.ln = nn.LayerNorm(h, eps=1e-12)

    def forward(self, x, img):
        x = self.self_attn(x, x)
        if self.cross is not None:
            x = self.cross(x, img)
        return self.ln(self.fc2(F.gelu(self.fc1(x))) + x)


class QFormer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["q_hidden"]
        self.query = nn.Parameter(torch.randn(1, c["queries"], h) * 0.02)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList([QLayer(c, i % c["q_cross_freq"] == 0) for i in range(c["q_layers"])])
        self.proj = nn.Linear(h, c["t_hidden"])

    def forward(self, img):
        x = self.ln(self.query.expand(img.shape[0], -1, -1))
        for l in self.layers:
            x = l(x, img)
        return self.proj(x)


class OPTLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["t_hidden"]
        self.heads = c["t_heads"]
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(h, c["t_ffn"]), nn.Linear(c["t_ffn"], h)

    def forward(self, x, cache, mask):
        h = self.ln1(x)
        k, v = self.k(h), self.v(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
        x = x + self.o(heads_attn(self.q(h), k, v, self.heads, mask))
        return x + self.fc2(F.relu(self.fc1(self.ln2(x)))), (k, v)


class OPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["t_hidden"]
        self.embed = nn.Embedding(c["vocab"], h)
        self.pos = nn.Embedding(c["max_pos"] + 2, h)
        self.layers = nn.ModuleList([OPTLayer(c) for _ in range(c["t_layers"])])
        self.ln = nn.LayerNorm(h)

    def forward(self, emb, start, caches):
        t = emb.shape[1]
        x = emb + self.pos(torch.arange(start, start + t, device=emb.device) + 2)
        mask = None
        if t > 1:
            mask = torch.full((t, start + t), float("-inf"), device=emb.device).triu_(start + 1)
        new = []
        for i, l in enumerate(self.layers):
            x, kv = l(x, caches[i] if caches else None, mask)
            new.append(kv)
        return self.ln(x[:, -1]) @ self.embed.weight.T, new


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timeit(fn, min_seconds, min_iters=1):
    fn()
    sync()
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < min_seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - start) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check's anchor)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (on a GPU)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--tokens", type=int, default=60, help="new tokens per caption")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes, to check the script")
    ap.add_argument("--vision-layers", type=int, default=0, help="cut the vision tower to this depth (0: full)")
    ap.add_argument("--qformer-layers", type=int, default=0, help="cut the Q-Former to this depth (0: full)")
    ap.add_argument("--text-layers", type=int, default=0, help="cut OPT to this depth (0: full)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = dict(TINY if args.tiny else REAL)
    for key, n in (("v_layers", args.vision_layers), ("q_layers", args.qformer_layers), ("t_layers", args.text_layers)):
        if n > 0:
            c[key] = n
    dev = torch.device(args.device)
    vision, qformer, opt = Vision(c).eval().to(dev), QFormer(c).eval().to(dev), OPT(c).eval().to(dev)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.amp)
    base = {"anchor": "pytorch", "model": "tiny" if args.tiny else "blip2-opt-2.7b",
            "vlayers": c["v_layers"], "qlayers": c["q_layers"], "tlayers": c["t_layers"],
            "threads": args.threads, "device": args.device, "dtype": "bf16-amp" if args.amp else "f32",
            "torch": torch.__version__}
    with torch.inference_mode(), amp:
        for b in args.batch:
            px = torch.randn(b, 3, c["image"], c["image"], device=dev)
            sec = timeit(lambda: qformer(vision(px)), args.seconds)
            print(json.dumps({**base, "stage": "vision+qformer", "batch": b, "sec_per_batch": sec,
                              "images_per_sec": b / sec}), flush=True)

            prefix = qformer(vision(px))
            bos = opt.embed(torch.full((b, 1), 2, device=dev))

            def caption():
                emb = torch.cat([prefix, bos], 1)
                logits, caches = opt(emb, 0, None)
                pos = emb.shape[1]
                for _ in range(args.tokens):
                    tok = logits.argmax(-1, keepdim=True)
                    logits, caches = opt(opt.embed(tok), pos, caches)
                    pos += 1

            start = time.perf_counter()
            caption()
            sync()
            total = time.perf_counter() - start
            # decode rate alone: one step per sequence at the cache length reached
            emb = torch.cat([prefix, bos], 1)
            _, caches = opt(emb, 0, None)
            tok = torch.full((b, 1), 5, device=dev)
            step = timeit(lambda: opt(opt.embed(tok), emb.shape[1], caches), args.seconds, 3)
            print(json.dumps({**base, "stage": "opt-decode", "batch": b, "sec_per_step": step,
                              "tokens_per_sec": b / step}), flush=True)
            full = sec + total
            print(json.dumps({**base, "stage": "caption-end-to-end", "batch": b, "new_tokens": args.tokens,
                              "sec_per_batch": full, "captions_per_hour": 3600 * b / full}), flush=True)


if __name__ == "__main__":
    main()
