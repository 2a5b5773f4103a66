"""Writes a random STDiT3-XL/2-shaped bf16 checkpoint directory (as the hub publishes Open-Sora
1.2's `hpcai-tech/OpenSora-STDiT-v3`: `config.json` + `model.safetensors`, ~2.4 GB) for measuring
load time and peak memory (`examples/opensora_load.rs`). Not a fixture: never commit its output.

The key names and shapes come from upstream's own `STDiT3` built with the XL config (on the CPU:
~5 GB while it runs), loaded from the Open-Sora snapshot as `golden/gen_opensora_stdit3.py`
does; the values are seeded normals (but `rope.freqs`, upstream's fixed frequencies).

    golden/.venv/bin/python bench/make_stdit3_xl_bf16.py /tmp/stdit3_xl_bf16
"""

import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from gen_opensora_stdit3 import upstream_stdit3  # noqa: E402

# STDiT3-XL/2 (upstream `STDiT3_XL_2`: depth 28, hidden 1152, 16 heads, patch (1, 2, 2)) with
# the published checkpoint's settings.
XL = dict(
    depth=28,
    hidden_size=1152,
    num_heads=16,
    patch_size=(1, 2, 2),
    in_channels=4,
    caption_channels=4096,
    model_max_length=300,
    pred_sigma=True,
    qk_norm=True,
    input_sq_size=512,
    enable_flash_attn=False,
    enable_layernorm_kernel=False,
)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/stdit3_xl_bf16"
    module, _commit = upstream_stdit3()
    model = module.STDiT3(module.STDiT3Config(**XL))
    os.makedirs(out, exist_ok=True)
    model.config.to_json_file(os.path.join(out, "config.json"))
    g = torch.Generator().manual_seed(0)
    # `rope.freqs` holds the fixed RoPE frequencies θ^(−2k/d), which the loader checks: kept.
    tensors = {
        key: (t if key == "rope.freqs" else torch.randn(t.shape, generator=g) * 0.02).to(
            torch.bfloat16
        )
        for key, t in model.state_dict().items()
    }
    del model
    n = sum(t.numel() for t in tensors.values())
    path = os.path.join(out, "model.safetensors")
    save_file(tensors, path)
    print(f"wrote {path}: {len(tensors)} tensors, {n / 1e9:.3f} B parameters, "
          f"{os.path.getsize(path) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
