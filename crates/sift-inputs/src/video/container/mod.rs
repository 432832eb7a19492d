//! What FFmpeg, and so decord, reports of a video file, read from its container alone: no
//! decoding and no FFmpeg, so that it also runs in the browser (wasm32), where frames come from a
//! `<video>` element that tells neither the frame count nor the frame rate.
//!
//! decord 0.6.0 indexes a file by reading every packet of the video stream (`av_read_frame`),
//! sorts them by pts, and calls the stream's `avg_frame_rate` the video's fps. This module
//! reproduces, from the container's tables:
//! - MP4/MOV (FFmpeg's `libavformat/mov.c`): the sample index built by `mov_build_index`, the
//!   edit-list rewrite of `mov_fix_index` (advanced edit lists, FFmpeg's default), the samples of
//!   fragments (`trun`), and `avg_frame_rate = av_reduce(timescale * nb_frames_for_fps,
//!   duration_for_fps)` with the sums `mov_read_stts`/`mov_read_trun` keep, as read by
//!   `mov_read_header` (for a fragmented file with a complete `sidx`, only the fragments read before
//!   the first `mdat` count, as in FFmpeg).
//! - WebM/Matroska (`matroskadec.c`): one packet per frame of each (Simple)Block of the track,
//!   stamped with the cluster timestamp plus the block's; `avg_frame_rate` from `DefaultDuration`
//!   (`av_reduce(1e9, default_duration, 30000)`), or else estimated as
//!   `avformat_find_stream_info` estimates it (`demux.c`: `ff_rfps_add_frame`,
//!   `ff_rfps_calculate`, the duration-based estimate snapped to standard rates).
//!
//! MP4 frame times are FFmpeg's pts after `mov_fix_index`: with the usual single edit, (dts +
//! composition offset - the edit's media_time) / timescale, so B-frame clips start at 0; an
//! initial empty edit delays them. Samples the edit list hides but decoding needs (a copy cut
//! between keyframes) are frames to decord, so they are counted, with times before the first
//! shown frame (a browser never shows them).
//!
//! Ported from FFmpeg's current source and checked against ffprobe 5.1 (tests/container_probe.rs);
//! decord 0.6.0's wheels bundle an FFmpeg 4.x, which gives the same answers on the golden clips
//! and whose demuxers differ from the current ones only in corner cases.
//!
//! Known divergences, all on unusual files:
//! - Width and height are the sample entry's (MP4) or `PixelWidth`/`PixelHeight` (Matroska), which
//!   a muxer writes from the decoder's size; FFmpeg reports the decoder's. decord also swaps them
//!   for a 90°/270° rotation, which is not applied here.
//! - Truncated files: decord stops at the first packet whose data starts past the end of the
//!   file; here, in MP4, samples are indexed up to the first one that starts past the end (with
//!   other tracks' samples, FFmpeg may stop a little earlier), and in Matroska a block that does
//!   not end inside the file is dropped.
//! - MP4: `stps`, `sdtp`-based and `sbgp` "rap " keyframes, `stz2`, `cmov`, invalid `stsc` entries
//!   (which FFmpeg repairs), and `sidx`/`mfra`-timed fragments without `tfdt` are not handled;
//!   an edit list with a media time below -1 is refused.
//! - Matroska without `DefaultDuration`: the packets FFmpeg analyses stop as in
//!   `avformat_find_stream_info` (all streams seen, 40 dts deltas of the video, 5 MB, 5 s of video),
//!   except that the 5 s limit of an audio stream is not tracked, and H.264/HEVC dts are taken to
//!   be the block timestamps (FFmpeg derives them from a reorder buffer when there are B-frames).
//!   H.264 packets are timed from the SPS timing info as FFmpeg's parser times them; HEVC's and
//!   AV1's timing info (which FFmpeg's decoder/parser would also use) is not read.
//!   Laced video frames after the first with no duration get FFmpeg's "no pts", sorted first.
//! - An MP4 video track whose samples all have zero duration: FFmpeg would estimate a rate while
//!   probing packets; here it is `NoFrameRate`.
//! - Several video tracks: ranked as `av_find_best_stream` ranks them (default flag, then frames
//!   seen, then bit rate), with the whole file's frame count standing in for the frames FFmpeg
//!   analysed.

mod matroska;
mod mp4;

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::error::VideoError;

/// What FFmpeg (and so decord) reports of a file's video stream, read from the container alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Presentation time, in seconds on the timeline a browser's <video> element uses (MP4:
    /// after applying the edit list's media_time offset; WebM: block timestamps), of every frame
    /// (= packet of the video stream) sorted ascending: frame i of decord is frame_times[i]. Its
    /// len() is decord's total frame count.
    pub frame_times: Vec<f64>,
    /// `avg_frame_rate` exactly as FFmpeg computes it (num/den as f64).
    pub fps: f64,
    /// Coded width and height of the video track, as FFmpeg's decoder reports them.
    pub width: u32,
    pub height: u32,
    /// Short codec name for messages, e.g. "h264", "hevc", "vp8", "vp9", "av1".
    pub codec: String,
}

/// Reads an MP4/MOV (ISO BMFF) or WebM/Matroska file's headers and packet index. Reads only what
/// it must: for MP4, box headers, the `moov` box and any `moof`/`sidx` (skips `mdat` by
/// seeking); for Matroska, the header elements, then the element headers of every cluster and
/// block, skipping block payloads by seeking.
pub fn probe_container<R: Read + Seek>(reader: R) -> Result<ContainerInfo, VideoError> {
    let mut src = Source::new(reader)?;
    let mut head = [0u8; 12];
    let n = src.read_at(0, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        matroska::probe(&mut src)
    } else if mp4::looks_like(head) {
        mp4::probe(&mut src)
    } else {
        Err(unreadable(
            "neither an MP4/MOV nor a WebM/Matroska file (unknown first bytes)",
        ))
    }
}

/// More frames than any real video has (77 hours at 60 fps); a file claiming more is refused
/// instead of allocating gigabytes for its index.
const MAX_FRAMES: usize = 1 << 24;
const INT_MAX: i64 = i32::MAX as i64;
/// FFmpeg's `AV_NOPTS_VALUE`.
const NOPTS: i64 = i64::MIN;

fn unreadable(detail: impl Into<String>) -> VideoError {
    VideoError::Unreadable {
        detail: detail.into(),
    }
}

fn io_error(e: io::Error) -> VideoError {
    unreadable(format!("reading the file failed: {e}"))
}

fn too_many_frames() -> VideoError {
    unreadable(format!(
        "the file claims more than {MAX_FRAMES} video frames"
    ))
}

/// The input with its size and a buffer; forward skips inside the buffer cost no read.
struct Source<R> {
    inner: BufReader<R>,
    pos: u64,
    size: u64,
}

impl<R: Read + Seek> Source<R> {
    fn new(reader: R) -> Result<Self, VideoError> {
        let mut inner = BufReader::with_capacity(1 << 16, reader);
        let size = inner.seek(SeekFrom::End(0)).map_err(io_error)?;
        inner.seek(SeekFrom::Start(0)).map_err(io_error)?;
        Ok(Self {
            inner,
            pos: 0,
            size,
        })
    }

    fn seek_to(&mut self, pos: u64) -> Result<(), VideoError> {
        if pos != self.pos {
            match pos.checked_sub(self.pos) {
                Some(ahead) if ahead < 1 << 20 => {
                    self.inner.seek_relative(ahead as i64).map_err(io_error)?
                }
                _ => {
                    self.inner.seek(SeekFrom::Start(pos)).map_err(io_error)?;
                }
            }
            self.pos = pos;
        }
        Ok(())
    }

    /// Reads at `pos` until `buf` is full or the file ends; returns the bytes read.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, VideoError> {
        self.seek_to(pos)?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        self.pos += filled as u64;
        Ok(filled)
    }

    /// The bytes in `[start, end)`, clipped to the file: never more than the file holds.
    fn read_range(&mut self, start: u64, end: u64) -> Result<Vec<u8>, VideoError> {
        let end = end.min(self.size);
        let len = end.saturating_sub(start);
        let mut buf = Vec::new();
        self.seek_to(start)?;
        (&mut self.inner)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(io_error)?;
        self.pos = start + buf.len() as u64;
        Ok(buf)
    }
}

/// FFmpeg's `av_reduce` (libavutil/rational.c): the closest fraction with both terms at most
/// `max`, by continued fractions. Written out because its exact choice (e.g. 30000/1001 for a
/// DefaultDuration of 33366667 ns) is what decord reports and no crate reproduces it.
fn av_reduce(num: i64, den: i64, max: i64) -> (i64, i64) {
    let negative = (num < 0) != (den < 0);
    let mut num = i128::from(num).abs();
    let mut den = i128::from(den).abs();
    let max = i128::from(max);
    let g = gcd(num, den);
    if g != 0 {
        num /= g;
        den /= g;
    }
    let (mut a0n, mut a0d, mut a1n, mut a1d) = (0i128, 1i128, 1i128, 0i128);
    if num <= max && den <= max {
        (a1n, a1d) = (num, den);
        den = 0;
    }
    while den != 0 {
        let x = num / den;
        let next_den = num - den * x;
        let a2n = x * a1n + a0n;
        let a2d = x * a1d + a0d;
        if a2n > max || a2d > max {
            let mut x = x;
            if a1n != 0 {
                x = (max - a0n) / a1n;
            }
            if a1d != 0 {
                x = x.min((max - a0d) / a1d);
            }
            if den * (2 * x * a1d + a0d) > num * a1d {
                (a1n, a1d) = (x * a1n + a0n, x * a1d + a0d);
            }
            break;
        }
        (a0n, a0d) = (a1n, a1d);
        (a1n, a1d) = (a2n, a2d);
        num = den;
        den = next_den;
    }
    let n = if negative { -a1n } else { a1n };
    (n as i64, a1d as i64)
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// FFmpeg's `av_rescale(a, b, c)`: `a * b / c` rounded to nearest, halves away from zero.
fn av_rescale(a: i64, b: i64, c: i64) -> i64 {
    if c <= 0 || b < 0 {
        return NOPTS;
    }
    let (a, b, c) = (i128::from(a), i128::from(b), i128::from(c));
    let r = if a < 0 {
        -((-a * b + c / 2) / c)
    } else {
        (a * b + c / 2) / c
    };
    r.clamp(i128::from(i64::MIN + 1), i128::from(i64::MAX)) as i64
}

/// One video stream as the demuxer exposes it, before `av_find_best_stream` picks one.
struct Candidate {
    /// Presentation timestamps in `time_base` units, in packet order.
    pts: Vec<i64>,
    time_base: (i64, i64),
    /// `avg_frame_rate` as (num, den); den 0 or num 0 when FFmpeg has none.
    rate: (i64, i64),
    width: u32,
    height: u32,
    codec: String,
    default: bool,
    bit_rate: i64,
    /// Why there is no rate, for the error message.
    rate_detail: String,
}

/// `av_find_best_stream(VIDEO)`: the default-flagged stream first, then the one with more
/// frames (up to 5), then the higher bit rate, then more frames; the first wins ties.
fn best_stream(candidates: Vec<Candidate>) -> Result<ContainerInfo, VideoError> {
    let mut best: Option<(i32, usize, i64, usize, Candidate)> = None;
    for c in candidates {
        let disposition = 1 + i32::from(c.default);
        let count = c.pts.len();
        let multiframe = count.min(5);
        if let Some((bd, bm, bb, bc, _)) = &best {
            let (bd, bm, bb, bc) = (*bd, *bm, *bb, *bc);
            if bd > disposition
                || (bd == disposition && bm > multiframe)
                || (bd == disposition && bm == multiframe && bb > c.bit_rate)
                || (bd == disposition && bm == multiframe && bb == c.bit_rate && bc >= count)
            {
                continue;
            }
        }
        best = Some((disposition, multiframe, c.bit_rate, count, c));
    }
    let Some((.., c)) = best else {
        return Err(VideoError::NoVideoStream);
    };
    if c.pts.is_empty() {
        return Err(VideoError::NoFrames);
    }
    if c.rate.0 <= 0 || c.rate.1 <= 0 {
        return Err(VideoError::NoFrameRate {
            detail: c.rate_detail,
        });
    }
    let mut pts = c.pts;
    // decord sorts its packets by pts; a packet without one (FFmpeg's INT64_MIN) comes first
    // and is placed at the first real time.
    pts.sort_unstable();
    let first_real = pts.iter().copied().find(|&t| t != NOPTS).unwrap_or(0);
    let (num, den) = c.time_base;
    let frame_times = pts
        .iter()
        .map(|&t| if t == NOPTS { first_real } else { t })
        .map(|t| t as f64 * num as f64 / den as f64)
        .collect();
    Ok(ContainerInfo {
        frame_times,
        fps: c.rate.0 as f64 / c.rate.1 as f64,
        width: c.width,
        height: c.height,
        codec: c.codec,
    })
}
