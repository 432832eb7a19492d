#!/usr/bin/env python3
"""Golden fixtures for sift's forward pass, made by the Hugging Face reference.

Builds tiny randomly initialised Qwen3-VL models (transformers 4.57.3, the version the official
reranker pins), saves each in the Hugging Face layout (config.json + bf16 model.safetensors) and,
for a set of inputs, the reference's intermediate tensors and score:

    tests/golden/models/<model>/{config.json, model.safetensors}
    tests/golden/cases/<model>__<case>.safetensors   tensors (inputs, intermediates)
    tests/golden/cases/<model>__<case>.json          metadata (score, logit, yes/no ids, items)

Weights are rounded to bf16 before the fp32 run, so the bf16 file loaded as fp32 is exactly the
model that produced the outputs. Run from the repository root:

    python3 -m venv .venv-golden && .venv-golden/bin/pip install -r tests/golden/requirements.txt
    .venv-golden/bin/python tests/golden/make_golden.py
"""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

ROOT = Path(__file__).resolve().parent
REAL = dict(image=151655, video=151656, vision_start=151652, vision_end=151653, yes=9693, no=2152,
            im_start=151644, im_end=151645, newline=198, assistant=77091)

# Small vocabularies keep fixtures small; their special ids are remapped in the config.
SMALL = dict(image=2000, video=2001, vision_start=2002, vision_end=2003, yes=1500, no=1501,
             im_start=2010, im_end=2011, newline=198, assistant=1234)

MODELS = {
    # The real vocabulary, so the real tokenizer's ids work; tied head (like the 2B); DeepStack
    # after every vision block; GQA 2.
    "tied-real-vocab": dict(
        ids=REAL, tie=True,
        text=dict(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, mrope_section=[2, 1, 1]),
        vision=dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2,
                    num_position_embeddings=2304, deepstack_visual_indexes=[0, 1, 2])),
    # Untied head (like the 8B); GQA 4; vision head_dim 12 (not a power of two); a 4x4
    # position-embedding grid, so real images upsample it; DeepStack taps at depths 1 and 3.
    "untied-gqa4": dict(
        ids=SMALL, tie=False,
        text=dict(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, head_dim=16, mrope_section=[2, 3, 3]),
        vision=dict(depth=4, hidden_size=48, intermediate_size=96, num_heads=4,
                    num_position_embeddings=16, deepstack_visual_indexes=[1, 3])),
    # Tied; GQA 2; vision head_dim 20; an 8x8 grid; taps at 0, 2, 4; more text layers than taps.
    "tied-deep": dict(
        ids=SMALL, tie=True,
        text=dict(vocab_size=2048, hidden_size=48, intermediate_size=96, num_hidden_layers=5,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, mrope_section=[4, 2, 2]),
        vision=dict(depth=5, hidden_size=40, intermediate_size=80, num_heads=2,
                    num_position_embeddings=64, deepstack_visual_indexes=[0, 2, 4])),
    # Untied; GQA 4 with a single KV head; one DeepStack tap; a 6x6 grid.
    "untied-one-kv": dict(
        ids=SMALL, tie=False,
        text=dict(vocab_size=2048, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=16, mrope_section=[4, 2, 2]),
        vision=dict(depth=2, hidden_size=24, intermediate_size=48, num_heads=2,
                    num_position_embeddings=36, deepstack_visual_indexes=[1])),
}

# Visual items are (kind, grid_thw). Grids are in patches; h and w are even (2x2 merge), odd after
# merging where possible.
CASES = {
    "text": [],
    "image": [("image", "query", (1, 6, 10))],
    "two-images": [("image", "document", (1, 4, 6)), ("image", "document", (1, 10, 4))],
    "query-and-document-images": [("image", "query", (1, 2, 2)), ("image", "document", (1, 6, 6))],
    "video": [("video", "document", (2, 4, 6))],
    "video-and-image": [("video", "query", (2, 4, 4)), ("image", "document", (1, 6, 10))],
}
CASES_FOR = {
    "tied-real-vocab": list(CASES),
    "untied-gqa4": ["text", "image", "two-images", "query-and-document-images"],
    "tied-deep": ["text", "image", "two-images", "query-and-document-images", "video"],
    "untied-one-kv": ["text", "image", "query-and-document-images", "video-and-image"],
}


def build_config(spec):
    ids, t, v = spec["ids"], spec["text"], spec["vision"]
    text = dict(t, rms_norm_eps=1e-6, rope_theta=5e6, max_position_embeddings=4096,
                tie_word_embeddings=spec["tie"], hidden_act="silu",
                rope_scaling={"rope_type": "default", "mrope_section": t["mrope_section"],
                              "mrope_interleaved": True})
    del text["mrope_section"]
    vision = dict(v, patch_size=16, temporal_patch_size=2, spatial_merge_size=2, in_channels=3,
                  out_hidden_size=t["hidden_size"], hidden_act="gelu_pytorch_tanh")
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=spec["tie"],
                         image_token_id=ids["image"], video_token_id=ids["video"],
                         vision_start_token_id=ids["vision_start"],
                         vision_end_token_id=ids["vision_end"])


def randomise(model, generator):
    """Weights of a trained-looking scale: non-zero biases, norm weights away from 1, and every
    value representable in bf16 so the bf16 checkpoint is exactly this model."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            elif "pos_embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def prompt_ids(items, ids, rng, vocab):
    """A reranker-shaped prompt: system and instruction text, the query block, the document block,
    then the 5-token suffix. Text tokens are random ids that avoid every special id."""
    special = {v for k, v in ids.items() if k not in ("newline", "assistant", "yes", "no")}

    def text(n):
        out = []
        while len(out) < n:
            t = int(rng.integers(0, min(vocab, 150000)))
            if t not in special:
                out.append(t)
        return out

    seq = [ids["im_start"], *text(6), ids["im_end"], ids["newline"], ids["im_start"], *text(9)]
    for side in ("query", "document"):
        seq += text(3)
        for kind, item_side, (t, h, w) in items:
            if item_side != side:
                continue
            per_group = (h // 2) * (w // 2)
            if kind == "image":
                seq += [ids["vision_start"], *[ids["image"]] * (t * per_group), ids["vision_end"]]
            else:  # each 2-frame group gets its own timestamp text and vision block
                for _ in range(t):
                    seq += text(4) + [ids["vision_start"], *[ids["video"]] * per_group,
                                      ids["vision_end"]]
        seq += text(5)
    return seq + [ids["im_end"], ids["newline"], ids["im_start"], ids["assistant"], ids["newline"]]


def pixels(grid, rng, frames_per_patch):
    """Patch rows as the processor makes them: (uint8 - 127.5) / 127.5."""
    t, h, w = grid
    raw = rng.integers(0, 256, size=(t * h * w, 3 * frames_per_patch * 16 * 16))
    return torch.tensor((raw - 127.5) / 127.5, dtype=torch.float32)


class Recorder:
    """Forward hooks that keep each intermediate the Rust port compares against."""

    def __init__(self, model):
        self.out = {}
        m = model.model
        vis, lm = m.visual, m.language_model
        self.kind = None
        hooks = [vis.patch_embed.register_forward_hook(self.vision("patch_embed"))]
        hooks.append(vis.blocks[0].register_forward_pre_hook(self.vision_pre("embed")))
        for i, blk in enumerate(vis.blocks):
            hooks.append(blk.register_forward_hook(self.vision(f"blocks.{i}")))
        for k, merger in enumerate(vis.deepstack_merger_list):
            hooks.append(merger.register_forward_hook(self.vision(f"deepstack.{k}")))
        hooks.append(vis.merger.register_forward_hook(self.vision("merger")))
        original_interp = vis.fast_pos_embed_interpolate

        def interp(grid_thw):
            pe = original_interp(grid_thw)
            self.put(f"vision.{self.kind}.pos_embed", pe)
            return pe

        vis.fast_pos_embed_interpolate = interp
        hooks.append(lm.register_forward_pre_hook(self.text_inputs, with_kwargs=True))
        # A decoder layer's output after the DeepStack add is the next module's input.
        for i in range(1, len(lm.layers)):
            hooks.append(lm.layers[i].register_forward_pre_hook(self.layer_input(f"text.layers.{i - 1}")))
        hooks.append(lm.norm.register_forward_pre_hook(self.layer_input(f"text.layers.{len(lm.layers) - 1}")))
        hooks.append(lm.norm.register_forward_hook(lambda mod, a, out: self.put("text.norm", out[0])))
        self.hooks = hooks

    def put(self, key, tensor):
        assert key not in self.out, key
        self.out[key] = tensor.detach().clone().contiguous()

    def vision(self, name):
        return lambda mod, args, out: self.put(f"vision.{self.kind}.{name}", out)

    def vision_pre(self, name):
        return lambda mod, args: self.put(f"vision.{self.kind}.{name}", args[0])

    def layer_input(self, key):
        return lambda mod, args: self.put(key, args[0][0])

    def text_inputs(self, mod, args, kwargs):
        self.put("text.inputs_embeds", kwargs["inputs_embeds"][0])
        self.put("position_ids", kwargs["position_ids"][:, 0, :])


def run_case(model, cfg_spec, items, rng):
    ids = cfg_spec["ids"]
    vocab = cfg_spec["text"]["vocab_size"]
    seq = prompt_ids(items, ids, rng, vocab)
    images = [g for kind, _, g in items if kind == "image"]
    videos = [g for kind, _, g in items if kind == "video"]
    inputs = dict(input_ids=torch.tensor([seq]), attention_mask=torch.ones(1, len(seq), dtype=torch.long))
    # Pixels are drawn in sequence order, so the Rust side can hand items over in that order.
    per_item = [pixels(g, rng, 2) for _, _, g in items]
    if images:
        inputs["pixel_values"] = torch.cat([p for p, (k, _, _) in zip(per_item, items) if k == "image"])
        inputs["image_grid_thw"] = torch.tensor(images)
    if videos:
        inputs["pixel_values_videos"] = torch.cat([p for p, (k, _, _) in zip(per_item, items) if k == "video"])
        inputs["video_grid_thw"] = torch.tensor(videos)

    rec = Recorder(model)
    vis = model.model.visual
    original_forward = vis.forward

    # Images and videos go through the vision tower in separate calls, images first.
    call_kinds = ["image"] * bool(images) + ["video"] * bool(videos)

    def forward(hidden_states, grid_thw, **kw):
        rec.kind = call_kinds.pop(0)
        return original_forward(hidden_states, grid_thw, **kw)

    vis.forward = forward
    with torch.no_grad():
        h = model.model(**inputs).last_hidden_state[0, -1]
        lm_head = model.lm_head.weight
        w = lm_head[ids["yes"]] - lm_head[ids["no"]]
        logit = torch.dot(h, w)
        full = model.lm_head(h)
        score = torch.sigmoid(logit)
    vis.forward = original_forward
    for hook in rec.hooks:
        hook.remove()
    del vis.fast_pos_embed_interpolate

    tensors = dict(rec.out)
    tensors["input_ids"] = inputs["input_ids"][0]
    for i, p in enumerate(per_item):
        tensors[f"items.{i}.pixel_values"] = p
    meta = dict(
        items=[dict(kind=k, side=s, grid_thw=list(g)) for k, s, g in items],
        yes_id=ids["yes"], no_id=ids["no"],
        logit=float(logit), logit_via_lm_head=float(full[ids["yes"]] - full[ids["no"]]),
        score=float(score), seq_len=len(seq),
    )
    return {k: v.contiguous() for k, v in tensors.items()}, meta


def main():
    torch.manual_seed(0)
    models_dir, cases_dir = ROOT / "models", ROOT / "cases"
    for d in (models_dir, cases_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for m_index, (name, spec) in enumerate(MODELS.items()):
        generator = torch.Generator().manual_seed(1000 + m_index)
        config = build_config(spec)
        model = Qwen3VLForConditionalGeneration(config).eval()
        randomise(model, generator)
        if spec["tie"]:
            model.tie_weights()
        # Saved from a copy: casting the model itself would also round its rotary inv_freq
        # buffers to bf16, which the released checkpoints, loaded in fp32, never do.
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(models_dir / name,
                                                                 safe_serialization=True)
        rng = np.random.default_rng(2000 + m_index)
        for case in CASES_FOR[name]:
            tensors, meta = run_case(model, spec, CASES[case], rng)
            meta.update(model=name, case=case)
            save_file(tensors, cases_dir / f"{name}__{case}.safetensors")
            (cases_dir / f"{name}__{case}.json").write_text(json.dumps(meta, indent=1) + "\n")
            print(f"{name:16} {case:28} L={meta['seq_len']:4} score={meta['score']:.6f}")


if __name__ == "__main__":
    main()
