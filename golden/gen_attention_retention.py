"""Golden fixtures for vidgen-attention's multi-scale retention, from torchscale 0.3.0's own
`MultiScaleRetention` and `RetNetRelPos` (RetNet, Sun et al. 2023, sec. 2; FlashVideo sec. 2.2).

One tiny layer with random weights runs in all three of torchscale's forms on the same input:
parallel, chunkwise (`recurrent_chunk_size` 4, which divides the length, as torchscale asserts) and
recurrent, token by token with `incremental_state`. The state after the recurrent run is saved too.
torchscale's group norm eps is `args.layernorm_eps` (default 1e-6; see torchscale issue #40): the
main case uses that default, and `eps0.*` repeats the parallel form with eps 0, where the group norm
is exactly scale invariant.

Run: python golden/gen_attention_retention.py   (writes golden/fixtures/attn_retention.safetensors)
"""

from __future__ import annotations

import torch

from torchscale.architecture.config import RetNetConfig
from torchscale.architecture.retnet import RetNetRelPos
from torchscale.component.multiscale_retention import MultiScaleRetention

from common import linear_state, save, seed_everything

GEN = "golden/gen_attention_retention.py"


def retention() -> None:
    seed = 40
    seed_everything(seed)
    batch, length, d_model, value_dim, n_heads, chunk = 2, 12, 32, 64, 4, 4
    args = RetNetConfig(
        decoder_embed_dim=d_model,
        decoder_value_embed_dim=value_dim,
        decoder_retention_heads=n_heads,
        recurrent_chunk_size=chunk,
    )
    eps = args.layernorm_eps
    msr = MultiScaleRetention(args, d_model, value_dim, n_heads).eval()
    rel_pos = RetNetRelPos(args)
    x = torch.randn(batch, length, d_model)

    tensors = {"x": x}
    for name in ("q_proj", "k_proj", "v_proj", "g_proj", "out_proj"):
        tensors.update(linear_state(name, getattr(msr, name)))

    with torch.no_grad():
        par_pos = rel_pos(length)
        (sin, cos), mask = par_pos
        tensors.update({"rel_pos.sin": sin, "rel_pos.cos": cos, "rel_pos.mask": mask})
        tensors["parallel.out"] = msr(x, par_pos)

        chunk_pos = rel_pos(length, chunkwise_recurrent=True)
        inner_mask, cross_decay, query_inner_decay, value_inner_decay = chunk_pos[1]
        tensors.update(
            {
                "chunk.inner_mask": inner_mask,
                "chunk.cross_decay": cross_decay.flatten(),
                "chunk.query_inner_decay": query_inner_decay.squeeze(-1),
                "chunk.value_inner_decay": value_inner_decay.squeeze(-1),
            }
        )
        tensors["chunkwise.out"] = msr(x, chunk_pos, chunkwise_recurrent=True)

        state: dict = {}
        steps = []
        for n in range(length):
            step_pos = rel_pos(n + 1, activate_recurrent=True)
            steps.append(msr(x[:, n : n + 1], step_pos, incremental_state=state))
        tensors["recurrent.out"] = torch.cat(steps, dim=1)
        # torchscale's prev_key_value is [B, H, head_dim (value), key_dim]; scale is [H].
        tensors["recurrent.prev_key_value"] = state["prev_key_value"]
        tensors["recurrent.scale"] = state["scale"]

        msr.group_norm.eps = 0.0
        tensors["eps0.parallel.out"] = msr(x, par_pos)

    save(
        "attn_retention",
        tensors,
        GEN,
        seed,
        batch=batch,
        length=length,
        d_model=d_model,
        value_dim=value_dim,
        n_heads=n_heads,
        chunk_size=chunk,
        eps=eps,
    )


if __name__ == "__main__":
    retention()
