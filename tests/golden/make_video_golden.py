#!/usr/bin/env python3
"""Golden fixtures for sift's video path, made by the reference's own video reading.

The reference reranker (QwenLM/Qwen3-VL-Embedding src/models/qwen3_vl_reranker.py @ 8ce3aab) reads a
video with qwen-vl-utils 0.0.14 `fetch_video` (through `process_vision_info`), here forced to the
decord 0.6.0 backend (the version the official uv.lock pins; torchvision 0.29 has no `read_video`),
then hands the frames to the transformers 4.57.3 `Qwen3VLProcessor` with `do_resize=False` and
`do_sample_frames=False`. This script writes, under tests/golden/video/:

    clips/*.mp4, clips/vp9.webm      synthetic clips encoded with PyAV 18.1.0 (libx264, libvpx-vp9);
                                     every frame shows a gradient, a moving square and its own frame
                                     number as black/white blocks (bit 0 leftmost, bottom row)
    frames/png5/, frames/jpg70/      frame-list videos (5 PNGs, 70 JPEGs)
    <case>/expected.json             what the reference made of one video (schema below)
    <case>/frame_NNN.png             the resized frames fetch_video returns (uint8 values, before
                                     normalisation), NNN = position in the returned tensor; all of
                                     them, except every 8th and the last for the two 64-frame cases
    bad/                             broken or hostile inputs, bad/README.md, bad/ten_hours.json

A file video is the content element {'type': 'video', 'video': 'file://' + path, 'fps': fps,
'max_frames': max_frames} (reranker defaults fps 1, max_frames 64). A frame list is
{'type': 'video', 'video': ['file://' + frame, ...], 'total_pixels': 7864320} after the reranker's
`sample_frames(frames, 64)`. Both go through fetch_video(image_patch_size=16,
return_video_sample_fps=True, return_video_metadata=True).

expected.json keys:
    case, kind ("file" | "frames"), source (path relative to tests/golden/video, or list of them),
    element (the content element, paths relative), fps, max_frames (sampling arguments; for frame
    lists fps is null and max_frames is the sample_frames cap), sampled_sources (frames only: the
    list after sample_frames), video_backend ("decord" | null), total_frames, video_fps (metadata
    total_num_frames and fps, full precision), sample_fps, container (files only: PyAV's view,
    nb_frames = the container's frame count, 0 if it has none, decoded = frames a full decode gives,
    average_rate), input_height, input_width (the frames before the resize), frames_indices,
    nframes, resized_height, resized_width, video_grid_thw, timestamps (["<0.5 seconds>", ...]),
    prompt ("<|vision_start|><|video_pad|><|vision_end|>"), video_token_ids (the processor's
    expansion of prompt), pixel_values_videos {shape, row_sums, col_sums} (float64 sums of the
    float32 values), saved_frames (positions in the returned tensor saved as frame_NNN.png).
bad/ten_hours.json has the sampling keys (source ... resized_width) for the ten-hour clip.

Run from the repository root, in the reference venv (requirements.txt: adds av 18.1.0, decord 0.6.0),
after fetch_tokenizer.sh, and before make_rerank_golden.py (its video cases copy these clips):

    .venv-golden/bin/pip install -r tests/golden/requirements.txt
    .venv-golden/bin/python tests/golden/make_video_golden.py

decord loads its own FFmpeg into the process, which breaks PyAV encoding afterwards, so all files
are encoded (and probed with PyAV) before anything reads them with decord.
"""

import os

os.environ["FORCE_QWENVL_VIDEO_READER"] = "decord"  # read before qwen_vl_utils is imported

import json
import re
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "video"
CLIPS, FRAMES, BAD = OUT / "clips", OUT / "frames", OUT / "bad"
PROMPT = "<|vision_start|><|video_pad|><|vision_end|>"
FRAME_LIST_TOTAL_PIXELS = 7864320  # the reranker's MAX_TOTAL_PIXELS = 10 * 768 * 32 * 32
FRAME_LIST_MAX = 64                # the reranker's max_frames, used by sample_frames

# name -> (codec, width, height, frame rate, frame count, codec options). One thread, and x264 without
# assembly: with asm on, x264's lookahead (mbtree) gave different bytes from run to run in one process
# here (uninitialised reads?); its C path is deterministic and bit-exact with the asm by design.
X264 = {"threads": "1", "flags": "+bitexact", "crf": "30", "x264-params": "asm=0"}
CLIP_SPECS = {
    "h264.mp4": ("libx264", 320, 240, Fraction(30), 150, {**X264, "g": "30"}),
    "vp9.webm": ("libvpx-vp9", 256, 144, Fraction(25), 150,
                 {"threads": "1", "flags": "+bitexact", "crf": "40", "b": "0", "g": "50",
                  "deadline": "good", "cpu-used": "4", "row-mt": "0"}),
    "ntsc.mp4": ("libx264", 176, 144, Fraction(30000, 1001), 240, {**X264, "g": "30"}),
    "one_second.mp4": ("libx264", 160, 120, Fraction(24), 24, {**X264, "g": "24"}),
    "three_minutes.mp4": ("libx264", 96, 64, Fraction(10), 1800, {**X264, "g": "100"}),
    "portrait.mp4": ("libx264", 144, 256, Fraction(30), 90, {**X264, "g": "30"}),
}

# case -> (clip, fps, max_frames)
FILE_CASES = {
    "h264": ("h264.mp4", 1, 64),
    "h264_fps2_max8": ("h264.mp4", 2.0, 8),
    "vp9": ("vp9.webm", 1, 64),
    "ntsc": ("ntsc.mp4", 1, 64),
    "one_second": ("one_second.mp4", 1, 64),
    "three_minutes": ("three_minutes.mp4", 1, 64),
    "portrait": ("portrait.mp4", 1, 64),
}
FRAME_CASES = {"frames_png5": "png5", "frames_jpg70": "jpg70"}
# All frames of the 64-frame cases would be ~9 MB of PNG (codec noise upscaled to 448x320).
SAVE_EVERY = {"three_minutes": 8, "frames_jpg70": 8}


def draw(i, w, h, bits=12):
    """Frame i: RGB gradient (blue level moves with i), a moving square, i in binary blocks."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1),
                    np.full((h, w), 128 + 100 * np.sin(2 * np.pi * i / 45))], -1)
    s = max(4, min(w, h) // 4)
    tri = lambda t: 1 - abs(2 * (t % 1) - 1)
    sx, sy = int((w - s) * tri(i / 60)), int((h - s) * tri(i / 84))
    img[sy:sy + s, sx:sx + s] = [(255, 255, 255), (255, 40, 40), (40, 40, 255)][(i // 10) % 3]
    bs = max(2, w // (bits + 2))
    y0 = h - bs - max(1, bs // 4)
    for b in range(bits):
        img[y0:y0 + bs, (b + 1) * bs:(b + 2) * bs] = 255 if (i >> b) & 1 else 0
    return np.round(img).astype(np.uint8)


def draw_static(i, w, h):
    """The ten-hour clip: changes once every 600 frames (10 minutes at 1 fps)."""
    return draw(i // 600 * 7, w, h, bits=6)


def encode(path, codec, w, h, rate, n, options, frame=draw, fmt_options=None):
    with av.open(str(path), "w", options={"fflags": "+bitexact", **(fmt_options or {})}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.thread_count = 1
        s.options = options
        for i in range(n):
            f = av.VideoFrame.from_ndarray(frame(i, w, h), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def probe(path, keep_frames=True):
    """PyAV's view of a clip: container frame count, frames a full decode gives, frames as RGB."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = []
        count = 0
        for f in c.decode(video=0):
            count += 1
            if keep_frames:
                frames.append(f.to_ndarray(format="rgb24"))
        return dict(nb_frames=s.frames, decoded=count, average_rate=str(s.average_rate)), frames


def write_media():
    """Everything PyAV encodes; returns PyAV's probe of each clip. Runs before decord is loaded."""
    shutil.rmtree(OUT, ignore_errors=True)
    for d in (CLIPS, FRAMES / "png5", FRAMES / "jpg70", BAD):
        d.mkdir(parents=True)
    probes = {}
    for name, (codec, w, h, rate, n, opts) in CLIP_SPECS.items():
        encode(CLIPS / name, codec, w, h, rate, n, opts)
        probes[name] = probe(CLIPS / name)
    for i in range(5):
        Image.fromarray(draw(i * 7, 100, 75)).save(FRAMES / "png5" / f"f_{i:03d}.png")
    for i in range(70):
        Image.fromarray(draw(i, 64, 48, bits=7)).save(FRAMES / "jpg70" / f"f_{i:03d}.jpg", quality=90)

    rng = np.random.default_rng(20240611)
    (BAD / "corrupt.mp4").write_bytes((CLIPS / "h264.mp4").read_bytes()[:2048]
                                      + rng.integers(0, 256, 30000, dtype=np.uint8).tobytes())
    # mp4 drops a track with no samples unless the moov is written up front (fragmented mp4).
    with av.open(str(BAD / "zero_frames.mp4"), "w",
                 options={"fflags": "+bitexact", "movflags": "empty_moov"}) as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.thread_count = 1
        s.options = dict(X264)
        c.start_encoding()
        for p in s.encode():
            c.mux(p)
    with av.open(str(BAD / "audio_only.m4a"), "w", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        s.options = {"flags": "+bitexact"}
        t = np.arange(16000) / 16000
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        f = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
        f.sample_rate, f.pts = 16000, 0
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    encode(BAD / "ten_hours.mp4", "libx264", 32, 32, Fraction(1), 36000,
           {**X264, "crf": "35", "bf": "0", "g": "300", "x264-params": "asm=0:scenecut=0"}, frame=draw_static)
    probes["ten_hours.mp4"] = probe(BAD / "ten_hours.mp4", keep_frames=False)
    avi = BAD / "unsupported_codec.avi"
    encode(avi, "mpeg4", 64, 48, Fraction(10), 10, {"threads": "1", "flags": "+bitexact"})
    data = avi.read_bytes()
    assert data.count(b"FMP4") == 2, data.count(b"FMP4")  # strh fccHandler, strf biCompression
    avi.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    (BAD / "not_a_video.mp4").write_text("This is a plain text file with an .mp4 name, not a video.\n")
    return probes


BAD_README = """# Bad video inputs (made by tests/golden/make_video_golden.py)

- `corrupt.mp4`: the first 2048 bytes of clips/h264.mp4 (ftyp and the start of mdat; the moov is at the
  end) followed by 30000 random bytes: no moov atom, FFmpeg cannot open it.
- `zero_frames.mp4`: a fragmented mp4 (movflags empty_moov) with one H.264 64x48 track (avcC present) and
  no samples and no fragments: a video stream with zero frames.
- `audio_only.m4a`: 1 s of a 440 Hz sine, AAC mono 16 kHz in an mp4 (ipod) container; no video stream.
- `ten_hours.mp4`: a valid H.264 32x32 clip, 1 fps, 36000 frames (10 hours), no B-frames, keyframe
  every 300 frames, picture changes every 600 frames. Reference sampling in ten_hours.json.
- `unsupported_codec.avi`: a valid 10-frame 64x48 MPEG-4 part 2 AVI whose FourCC (strh fccHandler and
  strf biCompression, `FMP4`) is patched to `ZZZZ`, so FFmpeg maps it to no codec.
- `not_a_video.mp4`: a text file named .mp4.

What the reference (decord 0.6.0 through qwen-vl-utils 0.0.14 fetch_video) does with each:
"""


def relative(p):
    return str(Path(p).relative_to(OUT))


def video_part(processor, video, meta):
    """Run the processor on the minimal prompt; return its outputs for the video."""
    inputs = processor(text=[PROMPT], videos=[video], video_metadata=[meta], do_resize=False,
                       do_sample_frames=False, return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    text = processor.tokenizer.decode(ids)
    stamps = re.findall(r"<[0-9.]+ seconds>", text)
    want = [f"<{t:.1f} seconds>" for t in processor._calculate_timestamps(
        list(meta["frames_indices"]), meta["fps"], processor.video_processor.merge_size)]
    assert stamps == want, (stamps, want)
    pv = inputs["pixel_values_videos"].double()
    return dict(video_grid_thw=inputs["video_grid_thw"][0].tolist(), timestamps=stamps,
                prompt=PROMPT, video_token_ids=ids,
                pixel_values_videos=dict(shape=list(pv.shape), row_sums=pv.sum(1).tolist(),
                                         col_sums=pv.sum(0).tolist()))


def save_frames(case_dir, video):
    """Saves the frames as PNGs (every 8th and the last for the 64-frame cases, to stay small)."""
    import torch
    assert video.dtype.is_floating_point
    assert bool((video == video.round()).all()) and video.min() >= 0 and video.max() <= 255
    frames = video.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    step = SAVE_EVERY.get(case_dir.name, 1)
    saved = sorted(set(range(0, len(frames), step)) | {len(frames) - 1})
    for k in saved:
        Image.fromarray(frames[k]).save(case_dir / f"frame_{k:03d}.png")
    return saved


def main():
    probes = write_media()  # PyAV first: decord must not be loaded yet
    assert "decord" not in sys.modules

    import decord
    import torch
    from qwen_vl_utils import fetch_video
    from transformers import AutoTokenizer
    sys.path.insert(0, str(ROOT))
    sys.dont_write_bytecode = True  # no tests/golden/__pycache__
    from make_rerank_golden import make_processor, sample_frames
    assert decord.__version__ == "0.6.0", decord.__version__

    processor = make_processor(AutoTokenizer.from_pretrained(ROOT / "tokenizer"))
    summary = {}

    for case, (clip, fps, max_frames) in FILE_CASES.items():
        path = CLIPS / clip
        ele = {"type": "video", "video": "file://" + str(path), "fps": fps, "max_frames": max_frames}
        (video, meta), sample_fps = fetch_video(ele, image_patch_size=16, return_video_sample_fps=True,
                                                return_video_metadata=True)
        assert meta["video_backend"] == "decord", meta
        info, pyav_frames = probes[clip]
        # Cross-check decord's decode against PyAV's at the sampled indices.
        vr = decord.VideoReader(str(path))
        raw = vr.get_batch(meta["frames_indices"]).asnumpy()
        diff = max(int(np.abs(raw[k].astype(int) - pyav_frames[i].astype(int)).max())
                   for k, i in enumerate(meta["frames_indices"]))
        case_dir = OUT / case
        case_dir.mkdir()
        exp = dict(case=case, kind="file", source=relative(path),
                   element={**ele, "video": "file://" + relative(path)}, fps=fps, max_frames=max_frames,
                   video_backend=meta["video_backend"], total_frames=meta["total_num_frames"],
                   video_fps=meta["fps"], sample_fps=sample_fps, container=info,
                   input_height=int(raw.shape[1]), input_width=int(raw.shape[2]),
                   frames_indices=list(meta["frames_indices"]), nframes=video.shape[0],
                   resized_height=video.shape[2], resized_width=video.shape[3])
        exp.update(video_part(processor, video, meta))
        exp["saved_frames"] = save_frames(case_dir, video)
        (case_dir / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")
        summary[case] = dict(total_frames=exp["total_frames"], video_fps=exp["video_fps"],
                             container=info, idx=exp["frames_indices"], size=(video.shape[2], video.shape[3]),
                             grid=exp["video_grid_thw"], decord_vs_pyav_maxdiff=diff)

    for case, sub in FRAME_CASES.items():
        frames = sorted((FRAMES / sub).iterdir())
        used = sample_frames(frames, FRAME_LIST_MAX)
        ele = {"type": "video", "video": ["file://" + str(p) for p in used],
               "total_pixels": FRAME_LIST_TOTAL_PIXELS}
        (video, meta), sample_fps = fetch_video(ele, image_patch_size=16, return_video_sample_fps=True,
                                                return_video_metadata=True)
        first = Image.open(frames[0])
        case_dir = OUT / case
        case_dir.mkdir()
        exp = dict(case=case, kind="frames", source=[relative(p) for p in frames],
                   element={**ele, "video": ["file://" + relative(p) for p in used]},
                   fps=None, max_frames=FRAME_LIST_MAX, sampled_sources=[relative(p) for p in used],
                   video_backend=meta.get("video_backend"), total_frames=meta["total_num_frames"],
                   video_fps=meta["fps"], sample_fps=sample_fps,
                   input_height=first.height, input_width=first.width,
                   frames_indices=list(meta["frames_indices"]), nframes=video.shape[0],
                   resized_height=video.shape[2], resized_width=video.shape[3])
        exp.update(video_part(processor, video, meta))
        exp["saved_frames"] = save_frames(case_dir, video)
        (case_dir / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")
        summary[case] = dict(total_frames=exp["total_frames"], video_fps=exp["video_fps"],
                             n_in=len(frames), n_used=len(used), size=(video.shape[2], video.shape[3]),
                             grid=exp["video_grid_thw"])

    # Bad inputs: what the reference does with each.
    readme = BAD_README
    for name in sorted(p.name for p in BAD.iterdir()):
        ele = {"type": "video", "video": "file://" + str(BAD / name), "fps": 1, "max_frames": 64}
        try:
            vr = decord.VideoReader(str(BAD / name))
            opened = f"decord opens it: {len(vr)} frames at {vr.get_avg_fps()} fps"
        except Exception as e:
            opened = f"decord.VideoReader raises {type(e).__name__}"
        try:
            (video, meta), _ = fetch_video(ele, image_patch_size=16, return_video_sample_fps=True,
                                           return_video_metadata=True)
            fetched = f"fetch_video returns {tuple(video.shape)} via {meta['video_backend']}"
        except Exception as e:
            fetched = f"fetch_video raises {type(e).__name__} (decord failed, then the torchvision fallback)"
        readme += f"- `{name}`: {opened}; {fetched}.\n"
        summary["bad/" + name] = (opened, fetched)
    (BAD / "README.md").write_text(readme)

    path = BAD / "ten_hours.mp4"
    ele = {"type": "video", "video": "file://" + str(path), "fps": 1, "max_frames": 64}
    (video, meta), sample_fps = fetch_video(ele, image_patch_size=16, return_video_sample_fps=True,
                                            return_video_metadata=True)
    assert meta["video_backend"] == "decord"
    (BAD / "ten_hours.json").write_text(json.dumps(dict(
        source="bad/ten_hours.mp4", element={**ele, "video": "file://bad/ten_hours.mp4"}, fps=1,
        max_frames=64, video_backend="decord", total_frames=meta["total_num_frames"],
        video_fps=meta["fps"], sample_fps=sample_fps, container=probes["ten_hours.mp4"][0],
        frames_indices=list(meta["frames_indices"]), nframes=video.shape[0],
        resized_height=video.shape[2], resized_width=video.shape[3]), indent=1) + "\n")
    summary["ten_hours"] = dict(total_frames=meta["total_num_frames"], video_fps=meta["fps"],
                                container=probes["ten_hours.mp4"][0], idx=meta["frames_indices"][:5])

    for k, v in summary.items():
        print(k, v)


if __name__ == "__main__":
    main()
