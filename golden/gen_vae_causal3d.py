"""Golden fixtures for vidgen-vae's causal temporal autoencoder (Open-Sora 1.2, report sec. 3.1).

Open-Sora is not installable here, so this file re-implements `opensora/models/vae/vae_temporal.py`
(`CausalConv3d`, `ResBlock`, `Encoder`, `Decoder`, `VAE_Temporal`) in plain torch, following the
upstream structure and state-dict keys: causal convs pad time only in front with
`(k_t - 1) + (1 - stride)` zero frames (`pad_mode="constant"`) and space with `k // 2` zeros, then
convolve unpadded; the decoder upsamples time with a conv to 2C channels and
`B (C ts) T H W -> B C (T ts) H W`; `encode` pads the clip in front to a multiple of the factor,
`decode` drops those frames again.

Besides the upstream clip-wide GroupNorm (`norm=clip`), outputs are also written with per-frame
GroupNorm statistics (`norm=frame`, the causal variant vidgen can stream), same weights.

Fixture: vae_c3d_temporal.safetensors (weights under their Open-Sora keys; inputs `in.*`;
outputs `out.<norm>.<case>.{moments,recon}`).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import save, seed_everything

SEED = 0
CFG = dict(in_out=4, latent=4, embed=4, filters=4, res=1, mults=(1, 1, 2, 2),
           tdown=(False, True, True), groups=2)


class CausalConv3d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, bias=True):
        super().__init__()
        k = (k, k, k) if isinstance(k, int) else k
        self.time_pad = (k[0] - 1) + (1 - stride)
        self.pad = (k[2] // 2, k[2] // 2, k[1] // 2, k[1] // 2, self.time_pad, 0)
        self.conv = nn.Conv3d(cin, cout, k, stride=(stride, 1, 1), bias=bias)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad, mode="constant"))


def group_norm(norm, x, per_frame):
    if not per_frame:
        return norm(x)
    b, c, t, h, w = x.shape
    y = norm(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = CausalConv3d(cin, cout, 3, bias=False)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = CausalConv3d(cout, cout, 3, bias=False)
        self.conv3 = CausalConv3d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x, pf):
        h = self.conv1(F.silu(group_norm(self.norm1, x, pf)))
        h = self.conv2(F.silu(group_norm(self.norm2, h, pf)))
        return h + (self.conv3(x) if self.conv3 is not None else x)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        f, n = c["filters"], len(c["mults"])
        self.conv_in = CausalConv3d(c["in_out"], f, 3, bias=False)
        self.block_res_blocks, self.conv_blocks = nn.ModuleList(), nn.ModuleList()
        prev = f
        for i in range(n):
            width = f * c["mults"][i]
            items = nn.ModuleList()
            for _ in range(c["res"]):
                items.append(ResBlock(prev, width, c["groups"]))
                prev = width
            self.block_res_blocks.append(items)
            if i < n - 1:
                self.conv_blocks.append(
                    CausalConv3d(prev, width, 3, stride=2) if c["tdown"][i] else nn.Identity())
        self.res_blocks = nn.ModuleList([ResBlock(prev, prev, c["groups"]) for _ in range(c["res"])])
        self.norm1 = nn.GroupNorm(c["groups"], prev)
        self.conv2 = CausalConv3d(prev, 2 * c["latent"], 1)

    def forward(self, x, pf):
        x = self.conv_in(x)
        for i, blocks in enumerate(self.block_res_blocks):
            for b in blocks:
                x = b(x, pf)
            if i < len(self.conv_blocks):
                x = self.conv_blocks[i](x)
        for b in self.res_blocks:
            x = b(x, pf)
        return self.conv2(F.silu(group_norm(self.norm1, x, pf)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        f, n = c["filters"], len(c["mults"])
        self.tdown = c["tdown"]
        prev = f * c["mults"][-1]
        self.conv1 = CausalConv3d(c["latent"], prev, 3)
        self.res_blocks = nn.ModuleList([ResBlock(prev, prev, c["groups"]) for _ in range(c["res"])])
        self.block_res_blocks, self.conv_blocks = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(n)):
            width = f * c["mults"][i]
            items = nn.ModuleList()
            for _ in range(c["res"]):
                items.append(ResBlock(prev, width, c["groups"]))
                prev = width
            self.block_res_blocks.insert(0, items)
            if i > 0:
                self.conv_blocks.insert(
                    0, CausalConv3d(prev, prev * 2, 3) if self.tdown[i - 1] else nn.Identity())
        self.norm1 = nn.GroupNorm(c["groups"], prev)
        self.conv_out = CausalConv3d(prev, c["in_out"], 3)

    def forward(self, x, pf):
        x = self.conv1(x)
        for b in self.res_blocks:
            x = b(x, pf)
        for i in reversed(range(len(self.block_res_blocks))):
            for b in self.block_res_blocks[i]:
                x = b(x, pf)
            if i > 0:
                ts = 2 if self.tdown[i - 1] else 1
                x = self.conv_blocks[i - 1](x)
                b_, ct, t, h, w = x.shape
                # "B (C ts) T H W -> B C (T ts) H W"
                x = x.reshape(b_, ct // ts, ts, t, h, w).permute(0, 1, 3, 2, 4, 5)
                x = x.reshape(b_, ct // ts, t * ts, h, w)
        return self.conv_out(F.silu(group_norm(self.norm1, x, pf)))


class VAETemporal(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.factor = 2 ** sum(c["tdown"])
        self.encoder = Encoder(c)
        self.quant_conv = CausalConv3d(2 * c["latent"], 2 * c["embed"], 1)
        self.post_quant_conv = CausalConv3d(c["embed"], c["latent"], 1)
        self.decoder = Decoder(c)

    def pad(self, t):
        return (self.factor - t % self.factor) % self.factor

    def encode(self, x, pf):
        x = F.pad(x, (0, 0, 0, 0, self.pad(x.shape[2]), 0))
        return self.quant_conv(self.encoder(x, pf))

    def decode(self, z, num_frames, pf):
        x = self.decoder(self.post_quant_conv(z), pf)
        return x[:, :, self.pad(num_frames):]


def main():
    g = seed_everything(SEED)
    model = VAETemporal(CFG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Randomise GroupNorm affine too, so gamma/beta loading is exercised.
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim > 1 else 0.2)
                    + (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0))
    tensors = {k: v for k, v in model.state_dict().items()}
    cases = {"t9": 9, "t6": 6, "t1": 1}
    with torch.no_grad():
        for case, t in cases.items():
            x = torch.randn(1, CFG["in_out"], t, 3, 4, generator=g)
            tensors[f"in.{case}"] = x
            for norm, pf in (("clip", False), ("frame", True)):
                moments = model.encode(x, pf)
                mean = moments[:, : CFG["embed"]]
                tensors[f"out.{norm}.{case}.moments"] = moments
                tensors[f"out.{norm}.{case}.recon"] = model.decode(mean, t, pf)
    save("vae_c3d_temporal", tensors, "gen_vae_causal3d.py", SEED,
         **{f"cfg.{k}": v for k, v in CFG.items()})


if __name__ == "__main__":
    main()
