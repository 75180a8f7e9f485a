"""LoRA training of BLIP-2's OPT-2.7B language model, random weights, PyTorch CPU.

The anchor of synth's finetune benchmark (go test -bench TrainStep ./vision/lora/): the
same recipe at the same shapes, as HF transformers + PEFT run it, in plain PyTorch (no
transformers in Debian): a pre-LN OPT decoder (ReLU FFN, learned positions offset 2,
final LayerNorm, LM head tied to the token embeddings) in train mode (dropout 0.1 after
attention and after fc2), frozen; LoRA r 16, alpha 32, dropout 0.05 on q_proj and k_proj;
inputs = 32 cached query embeddings + 60 text tokens per example, batch 4; HF's loss
(the text positions shifted by one, mean cross-entropy); AdamW; gradient norm clipped
to 1. One JSON object on stdout: tokens/s (text tokens) and the peak RSS.

    python3 bench/torch/finetune.py --threads 2 --steps 3
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        self.a = nn.Parameter(torch.empty(r, base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.drop = nn.Dropout(dropout)
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (self.drop(x) @ self.a.t() @ self.b.t()) * self.scale


class Layer(nn.Module):
    def __init__(self, h, heads, ffn, dropout):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(h, ffn), nn.Linear(ffn, h)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        b, t, w = x.shape
        d = w // self.heads
        h = self.ln1(x)
        q = (self.q(h) * d ** -0.5).view(b, t, self.heads, d).transpose(1, 2)
        k = self.k(h).view(b, t, self.heads, d).transpose(1, 2)
        v = self.v(h).view(b, t, self.heads, d).transpose(1, 2)
        s = q @ k.transpose(-1, -2) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, w)
        x = x + self.drop(self.o(a))
        return x + self.drop(self.fc2(F.relu(self.fc1(self.ln2(x)))))


class OPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.pos = nn.Embedding(c["max_pos"] + 2, c["hidden"])
        self.layers = nn.ModuleList(Layer(c["hidden"], c["heads"], c["ffn"], c["dropout"]) for _ in range(c["layers"]))
        self.norm = nn.LayerNorm(c["hidden"])

    def forward(self, prefix, ids, labels):
        b, q = prefix.shape[0], prefix.shape[1]
        x = torch.cat([prefix, self.embed(ids)], 1)
        t = x.shape[1]
        x = x + self.pos(torch.arange(t) + 2)
        mask = torch.full((t, t), float("-inf")).triu(1)
        for ly in self.layers:
            x = ly(x, mask)
        logits = self.norm(x)[:, q:, :] @ self.embed.weight.t()
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tokens", type=int, default=60)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = dict(vocab=50272, hidden=2560, heads=32, ffn=10240, layers=a.layers, max_pos=2048, dropout=0.1)
    m = OPT(c)
    for prm in m.parameters():
        prm.requires_grad_(False)
    for ly in m.layers:
        ly.q = LoRALinear(ly.q, 16, 32, 0.05)
        ly.k = LoRALinear(ly.k, 16, 32, 0.05)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.0)
    prefix = torch.randn(a.batch, 32, c["hidden"])
    ids = torch.randint(3, c["vocab"], (a.batch, a.tokens))

    def step():
        opt.zero_grad()
        loss = m(prefix, ids, ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sec = time.perf_counter() - t0
    print(json.dumps({"bench": "finetune", "impl": "torch", "layers": a.layers, "batch": a.batch, "tokens": a.tokens,
                      "threads": a.threads, "steps": a.steps, "s_per_step": sec / a.steps,
                      "tokens_per_s": a.steps * a.batch * a.tokens / sec,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)}))


if __name__ == "__main__":
    main()
