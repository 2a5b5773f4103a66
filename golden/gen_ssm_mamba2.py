"""Golden fixtures for vidgen-ssm's SSD scan and Mamba2 layer, from mamba-ssm 2.3.2.post1's pure-torch
reference functions: `segsum` / `ssd_minimal_discrete` (modules/ssd_minimal.py) and `rms_norm_ref`
(ops/triton/layernorm_gated.py). Those files import triton / CUDA modules at top level, so only
the needed functions are exec'd from their source text. The Mamba2 forward follows
modules/mamba2.py's `forward` with use_mem_eff_path=False and without causal_conv1d (F.conv1d),
the chunk scan replaced by `ssd_minimal_discrete`; the step follows `Mamba2.step`'s pure-torch
branch (written here for any ngroups).

Run: python golden/gen_ssm_mamba2.py   (writes golden/fixtures/ssm_*.safetensors)

`python golden/gen_ssm_mamba2.py state_dict` writes only the checkpoint fixtures: the g1 layer's
weights as mamba_ssm's `Mamba2.state_dict()` would hold them inside a full model (under
`backbone.layers.3.mixer.`, next to unrelated tensors), as `ssm_mamba2_state_dict.safetensors`
and as a `torch.save` pickle `ssm_mamba2_state_dict.bin`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import math
import os
import sys

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from common import FIXTURES, MAX_BYTES, linear_state, save, seed_everything

GEN = "golden/gen_ssm_mamba2.py"
MAMBA_VERSION = importlib.metadata.version("mamba_ssm")


def _load_functions(relpath: str, names: list[str]) -> dict:
    """Execs only the named top-level functions of a mamba_ssm source file (no imports run)."""
    root = os.path.dirname(importlib.util.find_spec("mamba_ssm").origin)
    path = os.path.join(root, relpath)
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {n.name for n in wanted} == set(names), f"missing in {path}: {names}"
    scope = {"torch": torch, "F": F, "rearrange": rearrange, "repeat": repeat, "math": math}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), scope)
    return scope


_SSD = _load_functions("modules/ssd_minimal.py", ["segsum", "ssd_minimal_discrete"])
ssd_minimal_discrete = _SSD["ssd_minimal_discrete"]
rms_norm_ref = _load_functions("ops/triton/layernorm_gated.py", ["rms_norm_ref"])["rms_norm_ref"]


def heads_from_groups(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[b, l, g, n] -> [b, l, h, n], head h using group h // (h/g) (mamba_chunk_scan_combined)."""
    return repeat(t, "b l g n -> b l (g r) n", r=n_heads // t.shape[2])


def ssd_case(name: str, seed: int, *, batch, length, heads, head_dim, groups, d_state, chunk, init):
    """ssd_minimal_discrete on inputs drawn as in its own test_correctness (dt·x, dt·A)."""
    g = seed_everything(seed)
    x = torch.randn(batch, length, heads, head_dim, generator=g)
    dt = F.softplus(torch.randn(batch, length, heads, generator=g) - 2)
    a = -torch.exp(torch.rand(heads, generator=g))
    b = torch.randn(batch, length, groups, d_state, generator=g)
    c = torch.randn(batch, length, groups, d_state, generator=g)
    s0 = torch.randn(batch, heads, head_dim, d_state, generator=g) if init else None
    xdt, adt = x * dt.unsqueeze(-1), a * dt
    y, final = ssd_minimal_discrete(
        xdt, adt, heads_from_groups(b, heads), heads_from_groups(c, heads), chunk,
        initial_states=None if s0 is None else s0.unsqueeze(1),
    )
    tensors = {"x": xdt, "a": adt, "b": b, "c": c, "y": y, "final_state": final}
    if s0 is not None:
        tensors["initial_state"] = s0
    save(name, tensors, GEN, seed, mamba_ssm=MAMBA_VERSION, chunk_size=chunk, reference="ssd_minimal_discrete")


def mamba2_params(g, d_model, d_state, d_conv, expand, head_dim, groups, bias):
    """Random weights in mamba2.py's shapes (dt_bias, A_log drawn as its __init__ does)."""
    d_inner = expand * d_model
    h = d_inner // head_dim
    conv_dim = d_inner + 2 * groups * d_state
    d_in_proj = 2 * d_inner + 2 * groups * d_state + h
    in_proj = torch.nn.Linear(d_model, d_in_proj, bias=bias)
    out_proj = torch.nn.Linear(d_inner, d_model, bias=bias)
    for lin in (in_proj, out_proj):
        torch.nn.init.normal_(lin.weight, std=0.3, generator=g)
        if lin.bias is not None:
            torch.nn.init.normal_(lin.bias, std=0.1, generator=g)
    dt = torch.exp(torch.rand(h, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    dt = torch.clamp(dt, min=1e-4)
    return {
        "in_proj": in_proj,
        "out_proj": out_proj,
        "conv1d.weight": torch.randn(conv_dim, 1, d_conv, generator=g) * 0.4,
        "conv1d.bias": torch.randn(conv_dim, generator=g) * 0.1,
        "dt_bias": dt + torch.log(-torch.expm1(-dt)),
        "A_log": torch.log(torch.empty(h).uniform_(1, 16, generator=g)),
        "D": torch.randn(h, generator=g),
        "norm.weight": 1 + 0.1 * torch.randn(d_inner, generator=g),
    }


def split_zxbcdt(zxbcdt, d_inner, groups, d_state, h):
    return torch.split(zxbcdt, [d_inner, d_inner + 2 * groups * d_state, h], dim=-1)


def gated_norm(p, y, z, groups, norm_before_gate):
    d_inner = y.shape[-1]
    return rms_norm_ref(y, p["norm.weight"], None, z=z, eps=1e-5, group_size=d_inner // groups,
                        norm_before_gate=norm_before_gate)


def mamba2_forward(p, u, cfg):
    """mamba2.py forward, use_mem_eff_path=False, conv via F.conv1d, scan via ssd_minimal_discrete.

    Also returns the prefill states (conv_state = last d_conv conv inputs, ssm_state = final state).
    """
    d_state, d_conv, head_dim, groups, chunk = (cfg[k] for k in ("d_state", "d_conv", "head_dim", "groups", "chunk"))
    batch, seqlen, _ = u.shape
    zxbcdt = p["in_proj"](u)
    d_inner = p["out_proj"].in_features
    h = d_inner // head_dim
    A = -torch.exp(p["A_log"])
    z, xBC, dt = split_zxbcdt(zxbcdt, d_inner, groups, d_state, h)
    xBC_t = rearrange(xBC, "b l d -> b d l")
    conv_state = F.pad(xBC_t, (d_conv - xBC_t.shape[-1], 0))
    conv = F.conv1d(xBC_t, p["conv1d.weight"], p["conv1d.bias"], padding=d_conv - 1, groups=xBC_t.shape[1])
    xBC = F.silu(conv.transpose(1, 2)[:, : -(d_conv - 1)])
    x, B, C = torch.split(xBC, [d_inner, groups * d_state, groups * d_state], dim=-1)
    # mamba_chunk_scan_combined(..., dt_bias, dt_softplus=True): dt = softplus(dt + dt_bias); D·x added.
    dt = F.softplus(dt + p["dt_bias"])
    x = rearrange(x, "b l (h p) -> b l h p", p=head_dim)
    B = heads_from_groups(rearrange(B, "b l (g n) -> b l g n", g=groups), h)
    C = heads_from_groups(rearrange(C, "b l (g n) -> b l g n", g=groups), h)
    pad = (-seqlen) % chunk  # ssd_minimal_discrete needs whole chunks: pad x·dt and dt·A with zeros
    padt = lambda t: F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
    y, ssm_state = ssd_minimal_discrete(padt(x * dt.unsqueeze(-1)), padt(A * dt), padt(B), padt(C), chunk)
    y = y[:, :seqlen] + x * rearrange(p["D"], "h -> h 1")
    y = rearrange(y, "b l h p -> b l (h p)")
    y = gated_norm(p, y, z, groups, cfg["norm_before_gate"])
    return p["out_proj"](y), conv_state, ssm_state


def mamba2_step(p, u_t, conv_state, ssm_state, cfg):
    """Mamba2.step's pure-torch branch (causal_conv1d_update / selective_state_update absent),
    with B, C repeated per head so ngroups > 1 works as selective_state_update does."""
    d_state, head_dim, groups = cfg["d_state"], cfg["head_dim"], cfg["groups"]
    d_inner = p["out_proj"].in_features
    h = d_inner // head_dim
    z, xBC, dt = split_zxbcdt(p["in_proj"](u_t), d_inner, groups, d_state, h)
    conv_state = torch.roll(conv_state, shifts=-1, dims=-1)
    conv_state[:, :, -1] = xBC
    xBC = F.silu(torch.sum(conv_state * rearrange(p["conv1d.weight"], "d 1 w -> d w"), dim=-1) + p["conv1d.bias"])
    x, B, C = torch.split(xBC, [d_inner, groups * d_state, groups * d_state], dim=-1)
    A = -torch.exp(p["A_log"])
    dt = F.softplus(dt + p["dt_bias"])
    dA = torch.exp(dt * A)
    x = rearrange(x, "b (h p) -> b h p", p=head_dim)
    B = repeat(B, "b (g n) -> b (g r) n", g=groups, r=h // groups)
    C = repeat(C, "b (g n) -> b (g r) n", g=groups, r=h // groups)
    ssm_state = ssm_state * rearrange(dA, "b h -> b h 1 1") + torch.einsum("bh,bhn,bhp->bhpn", dt, B, x)
    y = torch.einsum("bhpn,bhn->bhp", ssm_state, C) + rearrange(p["D"], "h -> h 1") * x
    y = gated_norm(p, rearrange(y, "b h p -> b (h p)"), z, groups, cfg["norm_before_gate"])
    return p["out_proj"](y), conv_state, ssm_state


def mamba2_case(name: str, seed: int, *, d_model, d_state, d_conv, expand, head_dim, groups, chunk,
                batch, prefill, steps, norm_before_gate, bias):
    """Forward over prefill+steps tokens; prefill states; `steps` tokens through `step`."""
    g = seed_everything(seed)
    cfg = dict(d_state=d_state, d_conv=d_conv, head_dim=head_dim, groups=groups, chunk=chunk,
               norm_before_gate=norm_before_gate)
    p = mamba2_params(g, d_model, d_state, d_conv, expand, head_dim, groups, bias)
    u = torch.randn(batch, prefill + steps, d_model, generator=g)
    with torch.no_grad():
        out, _, _ = mamba2_forward(p, u, cfg)
        _, conv_state, ssm_state = mamba2_forward(p, u[:, :prefill], cfg)
        tensors = {"u": u, "out": out, "prefill.conv_state": conv_state, "prefill.ssm_state": ssm_state}
        step_outs = []
        for t in range(prefill, prefill + steps):
            y, conv_state, ssm_state = mamba2_step(p, u[:, t], conv_state.clone(), ssm_state, cfg)
            step_outs.append(y)
        tensors.update({"step.out": torch.stack(step_outs, 1), "step.conv_state": conv_state,
                        "step.ssm_state": ssm_state})
    tensors.update(linear_state("in_proj", p["in_proj"]))
    tensors.update(linear_state("out_proj", p["out_proj"]))
    tensors.update({k: v for k, v in p.items() if isinstance(v, torch.Tensor)})
    save(name, tensors, GEN, seed, mamba_ssm=MAMBA_VERSION, d_model=d_model, d_state=d_state,
         d_conv=d_conv, expand=expand, head_dim=head_dim, n_groups=groups, chunk_size=chunk,
         prefill=prefill, steps=steps, norm_before_gate=norm_before_gate, bias=bias,
         reference="mamba2.py forward (use_mem_eff_path=False) + step, pure-torch")


G1 = dict(d_model=16, d_state=8, d_conv=4, expand=2, head_dim=8, groups=1, chunk=8, batch=2, prefill=13,
          steps=4, norm_before_gate=False, bias=False)
STATE_DICT_PREFIX = "backbone.layers.3.mixer."


def mamba2_state_dict(p) -> dict[str, torch.Tensor]:
    """The keys of mamba_ssm's `Mamba2.state_dict()`: the attributes its __init__ assigns (checked
    against modules/mamba2.py's source, which cannot be imported without its CUDA extensions)."""
    root = os.path.dirname(importlib.util.find_spec("mamba_ssm").origin)
    with open(os.path.join(root, "modules/mamba2.py")) as f:
        source = f.read()
    for attr in ("in_proj", "conv1d", "dt_bias", "A_log", "D", "norm", "out_proj"):
        assert f"self.{attr} =" in source, f"mamba2.py no longer assigns self.{attr}"
    state = {}
    state.update(linear_state("in_proj", p["in_proj"]))
    state.update({k: v for k, v in p.items() if isinstance(v, torch.Tensor)})
    state.update(linear_state("out_proj", p["out_proj"]))
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def state_dict_case(name: str, seed: int) -> None:
    """The g1 layer's weights (same seed and draws as `ssm_mamba2_g1`) under STATE_DICT_PREFIX,
    plus tensors of other layers that a loader must ignore."""
    g = seed_everything(seed)
    cfg = {k: G1[k] for k in ("d_model", "d_state", "d_conv", "expand", "head_dim", "groups", "bias")}
    p = mamba2_params(g, **cfg)
    layer = mamba2_state_dict(p)
    from safetensors.torch import load_file
    golden = load_file(os.path.join(FIXTURES, "ssm_mamba2_g1.safetensors"))
    for key, value in layer.items():
        assert torch.equal(golden[key], value), f"{key} differs from ssm_mamba2_g1"
    extra = seed_everything(seed + 1000)
    state = {
        "backbone.embedding.weight": torch.randn(10, G1["d_model"], generator=extra),
        "backbone.layers.3.norm.weight": torch.ones(G1["d_model"]),
    }
    state.update({STATE_DICT_PREFIX + k: v for k, v in layer.items()})
    save(name, state, GEN, seed, mamba_ssm=MAMBA_VERSION, prefix=STATE_DICT_PREFIX, layer_of="ssm_mamba2_g1")
    path = os.path.join(FIXTURES, f"{name}.bin")
    torch.save(state, path)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        os.remove(path)
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_BYTES}-byte fixture limit")
    print(f"wrote {path} ({size} bytes, {len(state)} tensors)")


def main() -> None:
    if sys.argv[1:] == ["state_dict"]:
        state_dict_case("ssm_mamba2_state_dict", 21)
        return
    ssd_case("ssm_ssd_g1", 11, batch=2, length=48, heads=4, head_dim=8, groups=1, d_state=16, chunk=16, init=False)
    ssd_case("ssm_ssd_g2_init", 12, batch=1, length=64, heads=4, head_dim=8, groups=2, d_state=8, chunk=8, init=True)
    mamba2_case("ssm_mamba2_g1", 21, **G1)
    mamba2_case("ssm_mamba2_g2", 22, d_model=16, d_state=8, d_conv=3, expand=2, head_dim=4, groups=2,
                chunk=4, batch=1, prefill=2, steps=5, norm_before_gate=True, bias=True)
    state_dict_case("ssm_mamba2_state_dict", 21)


if __name__ == "__main__":
    main()
