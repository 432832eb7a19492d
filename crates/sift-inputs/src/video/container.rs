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
        mkv::probe(&mut src)
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

/// ISO BMFF (MP4, MOV, M4V, 3GP): `libavformat/mov.c`.
mod mp4 {
    use mp4_atom::{
        Atom, Co64, Ctts, Elst, Mdhd, Mvhd, Sidx, Stco, Stsc, Stss, Stsz, StszSamples, Stts, Tfdt,
        Tfhd, Tkhd, Trex,
    };

    use super::*;

    /// Box types FFmpeg's `mov_probe` accepts at the start of a file.
    const FIRST_BOXES: [&[u8; 4]; 15] = [
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"pdin", b"styp",
        b"sidx", b"moof", b"junk", b"PICT", b"prfl",
    ];

    pub(super) fn looks_like(head: &[u8]) -> bool {
        head.len() >= 8 && FIRST_BOXES.iter().any(|b| head[4..8] == b[..])
    }

    /// `AVINDEX_KEYFRAME` and `AVINDEX_DISCARD_FRAME`.
    const KEY: u8 = 1;
    const DISCARD: u8 = 2;
    /// `moov`, `moof` and `sidx` are read whole; a real one is a few MiB even for 10 hours of
    /// video, so a larger claim is refused rather than read into memory.
    const MAX_HEADER_BOX: u64 = 256 << 20;
    /// Steps `mov_fix_index` may take (searches and copies over all edits): far above any real
    /// edit list, and a bound on what a hostile one can cost.
    const EDIT_WORK: u64 = 1 << 27;
    /// `mov_read_default`'s nesting limit.
    const MAX_DEPTH: u32 = 10;
    /// `mov.c`'s default `max_stts_delta`.
    const MAX_STTS_DELTA: u32 = u32::MAX - 48000 * 10;
    const TRUN_DATA_OFFSET: u32 = 0x01;
    const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x04;
    const TRUN_SAMPLE_DURATION: u32 = 0x100;
    const TRUN_SAMPLE_SIZE: u32 = 0x200;
    const TRUN_SAMPLE_FLAGS: u32 = 0x400;
    const TRUN_SAMPLE_CTS: u32 = 0x800;
    const SAMPLE_FLAG_IS_NON_SYNC: u32 = 0x0001_0000;
    const SAMPLE_FLAG_DEPENDS_YES: u32 = 0x0100_0000;

    #[derive(Clone, Copy)]
    struct Entry {
        pos: u64,
        timestamp: i64,
        flags: u8,
    }

    /// A box inside a buffer: its type and its body.
    struct Child<'a> {
        kind: [u8; 4],
        body: &'a [u8],
    }

    /// Size and type of a box header at the start of `b`, as `mov_read_default` reads them:
    /// `(type, header length, box length)`; size 0 runs to `available`. None when too short or
    /// smaller than its own header. The size is 64-bit on every target (mp4-atom's `Header`
    /// keeps a `usize`, which would wrap for a >4 GiB `mdat` on wasm32).
    fn box_header(b: &[u8], available: u64) -> Option<([u8; 4], u64, u64)> {
        let size = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
        let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            0 => (8, available),
            1 => (16, u64::from_be_bytes(b.get(8..16)?.try_into().ok()?)),
            n => (8, u64::from(n)),
        };
        (size >= header).then_some((kind, header, size))
    }

    /// The boxes inside `buf`; a box overrunning its parent is cut at the parent's end, as in
    /// `mov_read_default`, and a malformed header ends the list.
    fn children(buf: &[u8]) -> Vec<Child<'_>> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while buf.len() - pos >= 8 {
            let rest = &buf[pos..];
            let Some((kind, header, size)) = box_header(rest, rest.len() as u64) else {
                break;
            };
            let len = usize::try_from(size).unwrap_or(usize::MAX).min(rest.len());
            let header = header as usize;
            if len < header {
                break;
            }
            out.push(Child {
                kind,
                body: &rest[header..len],
            });
            pos += len;
        }
        out
    }

    /// A leaf box decoded by mp4-atom. Bytes after the fields are ignored, as FFmpeg skips them
    /// ("garbage at atom end"), where `Decode::decode` would refuse the box.
    fn decode<T: Atom>(child: &Child<'_>) -> Result<T, VideoError> {
        let mut b = child.body;
        T::decode_body(&mut b).map_err(|e| {
            unreadable(format!(
                "the '{}' box is malformed ({e})",
                String::from_utf8_lossy(&child.kind)
            ))
        })
    }

    fn be32(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    fn be16(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    #[derive(Default)]
    struct Trak {
        track_id: u32,
        enabled: bool,
        handler: [u8; 4],
        /// `sc->time_scale`, 0 until `mdhd`.
        time_scale: i32,
        fourcc: Option<[u8; 4]>,
        width: u32,
        height: u32,
        /// `(count, duration)` after `mov_read_stts`'s corrections.
        stts: Vec<(u32, u32)>,
        /// `(count, offset)` entries kept by `mov_read_ctts`; None without (valid) `ctts`.
        ctts: Option<Vec<(u32, i32)>>,
        dts_shift: i32,
        /// None without `stss` (every sample is a keyframe); empty: `keyframe_absent`.
        stss: Option<Vec<u32>>,
        stsc: Vec<(u32, u32)>,
        chunk_offsets: Vec<u64>,
        stsz_sample_size: u32,
        sample_sizes: Vec<u32>,
        sample_count: u32,
        /// `(duration in movie timescale, media time)`.
        elst: Vec<(i64, i64)>,
        duration_for_fps: i64,
        nb_frames_for_fps: i64,
        time_offset: i64,
        track_end: i64,
        stream_size: u64,
        entries: Vec<Entry>,
        /// The composition offset of entry `i` is `ctts_per_entry[i]` when `i` is in range.
        ctts_per_entry: Vec<i32>,
        has_ctts_data: bool,
        /// `avg_frame_rate`, set when the header has been read.
        rate: (i64, i64),
    }

    impl Trak {
        fn is_video(&self) -> bool {
            match &self.handler {
                b"vide" => true,
                b"soun" => false,
                _ => self.fourcc.is_some_and(|f| codec_name(f).is_some()),
            }
        }
    }

    /// FFmpeg's codec for a video sample entry type (`ff_codec_movvideo_tags`, the common ones).
    fn codec_name(fourcc: [u8; 4]) -> Option<&'static str> {
        Some(match &fourcc {
            b"avc1" | b"avc2" | b"avc3" | b"avc4" | b"ai5p" | b"ai5q" | b"ai55" | b"ai1p"
            | b"ai1q" | b"ai12" | b"ai13" | b"ai15" | b"ai16" | b"AVin" | b"x264" | b"H264"
            | b"h264" => "h264",
            b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" | b"hvt1" => "hevc",
            b"vp08" => "vp8",
            b"vp09" => "vp9",
            b"av01" => "av1",
            b"mp4v" | b"DIVX" | b"XVID" | b"3IV2" => "mpeg4",
            b"s263" | b"h263" | b"H263" => "h263",
            b"jpeg" | b"mjpa" | b"mjpb" | b"AVDJ" | b"dmb1" => "mjpeg",
            b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
            b"mp2v" | b"mp1v" | b"hdv1" | b"hdv2" | b"hdv3" | b"hdv5" | b"hdv6" | b"xdv1"
            | b"xdv2" | b"xdv3" | b"xdv4" | b"xdv5" | b"xdv6" | b"xdv7" | b"xdv8" | b"xdv9"
            | b"xdva" | b"xdvb" | b"xdvc" | b"xdvd" | b"xdve" | b"xdvf" | b"xd51" | b"xd54"
            | b"xd55" | b"xd59" | b"xd5a" | b"xd5b" | b"xd5c" | b"xd5d" | b"xd5e" | b"xd5f"
            | b"xdhd" | b"mx5p" | b"mx4p" | b"mx3p" | b"mx5n" | b"mx4n" | b"mx3n" => "mpeg2video",
            b"dvc " | b"dvcp" | b"dvpp" | b"dv5n" | b"dv5p" | b"dvh2" | b"dvh3" | b"dvh5"
            | b"dvh6" | b"dvhp" | b"dvhq" => "dvvideo",
            b"AVdn" | b"AVdh" => "dnxhd",
            b"raw " | b"2vuy" | b"yuv2" | b"v210" => "rawvideo",
            b"png " | b"MPNG" => "png",
            b"gif " => "gif",
            b"rle " => "qtrle",
            b"cvid" => "cinepak",
            b"SVQ1" => "svq1",
            b"SVQ3" => "svq3",
            _ => return None,
        })
    }

    #[derive(Default)]
    struct Movie {
        /// `c->time_scale` (mvhd), 0 until read.
        time_scale: i32,
        traks: Vec<Trak>,
        trex: Vec<Trex>,
        advanced_editlist: bool,
        found_moov: bool,
        found_mdat: bool,
        frag_complete: bool,
        file_size: u64,
    }

    pub(super) fn probe<R: Read + Seek>(src: &mut Source<R>) -> Result<ContainerInfo, VideoError> {
        let file_size = src.size;
        let mut movie = Movie {
            advanced_editlist: true,
            file_size,
            ..Movie::default()
        };
        let mut header_done = false;
        let mut pos = 0u64;
        // `mov_read_header` reads top-level boxes until it has `moov` and `mdat` and the next
        // box would be the file's end (or, with a complete `sidx`, right away); decord then
        // reads the remaining fragments packet by packet.
        while file_size.saturating_sub(pos) >= 8 {
            let mut head = [0u8; 16];
            let n = src.read_at(pos, &mut head)?;
            let Some((kind, header, size)) = box_header(&head[..n], file_size - pos) else {
                break;
            };
            let end = pos.saturating_add(size);
            let body = pos + header;
            let header_box = matches!(&kind, b"moov" | b"moof" | b"sidx");
            if header_box && end.min(file_size) - pos > MAX_HEADER_BOX {
                return Err(unreadable(format!(
                    "the '{}' box is {} MiB, far larger than a real one",
                    String::from_utf8_lossy(&kind),
                    (end.min(file_size) - pos) >> 20
                )));
            }
            match &kind {
                b"moov" if !movie.found_moov => {
                    let bytes = src.read_range(body, end)?;
                    movie.read_moov(&bytes)?;
                    movie.found_moov = true;
                }
                b"mdat" if size > header => movie.found_mdat = true,
                b"moof" => {
                    let bytes = src.read_range(body, end)?;
                    movie.read_moof(pos, &bytes)?;
                }
                b"sidx" => {
                    let bytes = src.read_range(body, end)?;
                    movie.read_sidx(&bytes, end, src)?;
                }
                _ => {}
            }
            if !header_done
                && movie.found_moov
                && movie.found_mdat
                && (movie.frag_complete || end == file_size)
            {
                header_done = true;
                movie.set_rates();
            }
            pos = end;
        }
        if !movie.found_moov {
            return Err(unreadable(
                "no 'moov' box, the index of an MP4/MOV file: the file is truncated or damaged",
            ));
        }
        if !header_done {
            movie.set_rates();
        }
        let candidates = movie
            .traks
            .into_iter()
            .filter(Trak::is_video)
            .map(|t| t.into_candidate())
            .collect();
        best_stream(candidates)
    }

    impl Movie {
        fn read_moov(&mut self, buf: &[u8]) -> Result<(), VideoError> {
            for child in children(buf) {
                match &child.kind {
                    b"mvhd" => {
                        let mvhd: Mvhd = decode(&child)?;
                        self.time_scale = mvhd.timescale as i32;
                        if self.time_scale <= 0 {
                            self.time_scale = 1;
                        }
                    }
                    b"trak" => {
                        let mut trak = Trak::default();
                        self.read_trak_children(&mut trak, child.body, 0)?;
                        self.finish_trak(&mut trak)?;
                        self.traks.push(trak);
                    }
                    b"mvex" => {
                        for c in children(child.body) {
                            if &c.kind == b"trex" {
                                self.trex.push(decode(&c)?);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }

        /// The `trak` subtree, box by box as `mov_read_default` visits it.
        fn read_trak_children(
            &self,
            t: &mut Trak,
            buf: &[u8],
            depth: u32,
        ) -> Result<(), VideoError> {
            for child in children(buf) {
                match &child.kind {
                    b"edts" | b"mdia" | b"minf" | b"stbl" if depth < MAX_DEPTH => {
                        self.read_trak_children(t, child.body, depth + 1)?
                    }
                    b"tkhd" => {
                        let tkhd: Tkhd = decode(&child)?;
                        t.track_id = tkhd.track_id;
                        t.enabled = tkhd.enabled;
                    }
                    b"elst" => {
                        let elst: Elst = decode(&child)?;
                        t.elst = elst
                            .entries
                            .iter()
                            .map(|e| {
                                (
                                    e.segment_duration as i64,
                                    e.media_time.map_or(-1, |m| m as i64),
                                )
                            })
                            .collect();
                    }
                    b"mdhd" => {
                        if t.time_scale != 0 {
                            return Err(unreadable("a track has two 'mdhd' boxes"));
                        }
                        let mdhd: Mdhd = decode(&child)?;
                        t.time_scale = mdhd.timescale as i32;
                        if t.time_scale <= 0 {
                            t.time_scale = 1;
                        }
                    }
                    b"hdlr" => {
                        // A MOV has a second, data-reference `hdlr` in `minf` ("alis"): only
                        // media types change the stream's type, as in `mov_read_hdlr`.
                        if let Some(h) = child.body.get(8..12)
                            && (t.handler == [0; 4] || h == b"vide" || h == b"soun")
                        {
                            t.handler.copy_from_slice(h);
                        }
                    }
                    b"stsd" => read_stsd(t, child.body)?,
                    b"stts" => read_stts(t, decode(&child)?),
                    b"ctts" => read_ctts(t, decode(&child)?),
                    b"stss" => t.stss = Some(decode::<Stss>(&child)?.entries),
                    b"stsc" => {
                        let stsc: Stsc = decode(&child)?;
                        t.stsc = stsc
                            .entries
                            .iter()
                            .map(|e| (e.first_chunk, e.samples_per_chunk))
                            .collect();
                    }
                    b"stsz" => match decode::<Stsz>(&child)?.samples {
                        StszSamples::Identical { count, size } => {
                            t.stsz_sample_size = size;
                            t.sample_count = count;
                            t.sample_sizes.clear();
                        }
                        StszSamples::Different { sizes } => {
                            t.stsz_sample_size = 0;
                            t.sample_count = sizes.len() as u32;
                            t.sample_sizes = sizes;
                        }
                    },
                    b"stco" => {
                        let stco: Stco = decode(&child)?;
                        t.chunk_offsets = stco.entries.iter().map(|&o| u64::from(o)).collect();
                    }
                    b"co64" => t.chunk_offsets = decode::<Co64>(&child)?.entries,
                    _ => {}
                }
            }
            Ok(())
        }

        /// The end of `mov_read_trak`: sanity checks, then `mov_build_index`.
        fn finish_trak(&mut self, t: &mut Trak) -> Result<(), VideoError> {
            let chunk_count = t.chunk_offsets.len();
            if chunk_count == 0 && t.stts.is_empty() && !t.stsc.is_empty() {
                t.stsc.clear();
            }
            // `mov_read_trak` keeps a track whose tables do not fit together, without samples.
            if (chunk_count > 0
                && (t.stts.is_empty()
                    || t.stsc.is_empty()
                    || (t.stsz_sample_size == 0 && t.sample_count == 0)))
                || (chunk_count == 0 && t.sample_count > 0)
            {
                return Ok(());
            }
            if let Some(&(first, _)) = t.stsc.last()
                && first as usize > chunk_count
            {
                return Err(unreadable(
                    "the 'stsc' box names chunks that 'stco' does not have",
                ));
            }
            if t.time_scale <= 0 {
                t.time_scale = if self.time_scale > 0 {
                    self.time_scale
                } else {
                    1
                };
            }
            // Advanced edit lists do not work with fragments, whose tables are empty here; FFmpeg
            // then turns them off for this and every later track.
            if t.stts.is_empty() && self.advanced_editlist {
                self.advanced_editlist = false;
            }
            if t.is_video() {
                self.build_index(t)?;
            }
            Ok(())
        }

        /// `mov_build_index` for a video track, then `mov_fix_index`.
        fn build_index(&self, t: &mut Trak) -> Result<(), VideoError> {
            let mut current_dts: i64 = 0;
            if !t.elst.is_empty() {
                let (mut edit_start_index, mut empty_duration, mut start_time) = (0, 0i64, 0i64);
                for (i, &(duration, time)) in t.elst.iter().enumerate() {
                    if i == 0 && time == -1 {
                        empty_duration = duration;
                        edit_start_index = 1;
                    } else if i == edit_start_index && time >= 0 {
                        start_time = time;
                    }
                }
                if (empty_duration != 0 || start_time != 0) && self.time_scale > 0 {
                    if empty_duration != 0 {
                        empty_duration = av_rescale(
                            empty_duration,
                            i64::from(t.time_scale),
                            i64::from(self.time_scale),
                        );
                    }
                    t.time_offset = start_time.wrapping_sub(empty_duration);
                    if !self.advanced_editlist {
                        current_dts = -t.time_offset;
                    }
                }
            }
            current_dts -= i64::from(t.dts_shift);
            let sample_count = t.sample_count as usize;
            if sample_count == 0 {
                return Ok(());
            }
            if let Some(ctts) = &t.ctts {
                t.has_ctts_data = true;
                'expand: for &(count, offset) in ctts {
                    for _ in 0..count {
                        if t.ctts_per_entry.len() >= sample_count.min(MAX_FRAMES) {
                            break 'expand;
                        }
                        t.ctts_per_entry.push(offset);
                    }
                }
            }
            let keyframe_absent = t.stss.as_ref().is_some_and(|k| k.is_empty());
            let keyframes: &[u32] = t.stss.as_deref().unwrap_or(&[]);
            let key_off = u32::from(keyframes.first().is_some_and(|&k| k > 0));
            let (mut stsc_index, mut stss_index, mut stts_index) = (0usize, 0usize, 0usize);
            let (mut stts_sample, mut current_sample) = (0u32, 0usize);
            let mut complete = true;
            'chunks: for (i, &chunk_offset) in t.chunk_offsets.iter().enumerate() {
                let mut current_offset = chunk_offset;
                while stsc_index + 1 < t.stsc.len() && i + 1 == t.stsc[stsc_index + 1].0 as usize {
                    stsc_index += 1;
                }
                for j in 0..t.stsc[stsc_index].1 {
                    if current_sample >= sample_count {
                        // "wrong sample count": FFmpeg returns before fixing the index.
                        complete = false;
                        break 'chunks;
                    }
                    let mut keyframe = false;
                    if !keyframe_absent
                        && (keyframes.is_empty()
                            || (current_sample as u64 + u64::from(key_off))
                                == u64::from(keyframes[stss_index]))
                    {
                        keyframe = true;
                        if stss_index + 1 < keyframes.len() {
                            stss_index += 1;
                        }
                    }
                    if keyframe_absent && i == 0 && j == 0 {
                        keyframe = true;
                    }
                    let sample_size = if t.stsz_sample_size > 0 {
                        t.stsz_sample_size
                    } else {
                        t.sample_sizes[current_sample]
                    };
                    if sample_size > 0x3FFF_FFFF || current_offset > i64::MAX as u64 {
                        complete = false;
                        break 'chunks;
                    }
                    // decord's reading stops at the first packet that starts past the end.
                    if current_offset >= self.file_size {
                        break 'chunks;
                    }
                    if t.entries.len() >= MAX_FRAMES {
                        return Err(too_many_frames());
                    }
                    t.entries.push(Entry {
                        pos: current_offset,
                        timestamp: current_dts,
                        flags: if keyframe { KEY } else { 0 },
                    });
                    current_offset += u64::from(sample_size);
                    t.stream_size += u64::from(sample_size);
                    current_dts = current_dts.wrapping_add(i64::from(t.stts[stts_index].1));
                    stts_sample += 1;
                    current_sample += 1;
                    if stts_index + 1 < t.stts.len() && stts_sample == t.stts[stts_index].0 {
                        stts_sample = 0;
                        stts_index += 1;
                    }
                }
            }
            if complete && self.advanced_editlist {
                self.fix_index(t)?;
            }
            Ok(())
        }

        /// `mov_fix_index`: keeps the samples the edit list shows (plus those needed to decode
        /// them, flagged discard) and rewrites their timestamps onto the edited timeline.
        fn fix_index(&self, t: &mut Trak) -> Result<(), VideoError> {
            if t.elst.is_empty() || t.entries.is_empty() {
                return Ok(());
            }
            let mut budget = EDIT_WORK;
            let too_complex = || unreadable("the edit list is too long to apply");
            let old = std::mem::take(&mut t.entries);
            let old_ctts = std::mem::take(&mut t.ctts_per_entry);
            let has_ctts = t.has_ctts_data;
            let dts_shift = i64::from(t.dts_shift);
            let mut new: Vec<Entry> = Vec::with_capacity(old.len());
            let mut new_ctts: Vec<i32> = Vec::new();
            let mut min_corrected_pts: i64 = -1;
            let mut edit_list_dts_entry_end: i64 = 0;
            if dts_shift > 0 {
                edit_list_dts_entry_end -= dts_shift;
            }
            let mut empty_edits_sum_duration: i64 = 0;
            let mut found_non_empty_edit = false;
            for &(duration, media_time) in &t.elst {
                if self.time_scale == 0 {
                    break;
                }
                let edit_list_duration = av_rescale(
                    duration,
                    i64::from(t.time_scale),
                    i64::from(self.time_scale),
                );
                let mut edit_list_dts_counter = edit_list_dts_entry_end;
                edit_list_dts_entry_end = edit_list_dts_entry_end.wrapping_add(edit_list_duration);
                if !found_non_empty_edit && media_time == -1 {
                    empty_edits_sum_duration =
                        empty_edits_sum_duration.wrapping_add(edit_list_duration);
                    continue;
                }
                found_non_empty_edit = true;
                let search = |any, budget: &mut u64| {
                    find_prev_closest_index(
                        &old, &old_ctts, has_ctts, dts_shift, media_time, any, budget,
                    )
                };
                let start = match search(false, &mut budget) {
                    Some(i) => i,
                    None => search(true, &mut budget).unwrap_or(0),
                };
                if budget == 0 {
                    return Err(too_complex());
                }
                let mut edit_list_start_encountered = false;
                let mut found_keyframe_after_edit = false;
                let mut frame_duration_buffer: Vec<i64> = Vec::new();
                let edit_end = edit_list_duration.wrapping_add(media_time);
                let mut current = start;
                while current < old.len() {
                    budget = budget.checked_sub(1).ok_or_else(too_complex)?;
                    if new.len() >= MAX_FRAMES {
                        return Err(too_many_frames());
                    }
                    let frame_duration = if current + 1 < old.len() {
                        old[current + 1]
                            .timestamp
                            .wrapping_sub(old[current].timestamp)
                    } else {
                        edit_list_duration
                    };
                    let mut flags = old[current].flags;
                    let mut curr_cts = old[current].timestamp.wrapping_add(dts_shift);
                    let mut curr_ctts: i64 = 0;
                    if has_ctts && current < old_ctts.len() {
                        curr_ctts = i64::from(old_ctts[current]);
                        curr_cts = curr_cts.wrapping_add(curr_ctts);
                        new_ctts.push(old_ctts[current]);
                    }
                    if curr_cts < media_time || curr_cts >= edit_end {
                        flags |= DISCARD;
                        if !edit_list_start_encountered {
                            frame_duration_buffer.push(frame_duration);
                        }
                    } else {
                        let corrected = edit_list_dts_counter
                            .wrapping_add(curr_ctts)
                            .wrapping_add(dts_shift);
                        min_corrected_pts = if min_corrected_pts < 0 {
                            corrected
                        } else {
                            min_corrected_pts.min(corrected)
                        };
                        if !edit_list_start_encountered {
                            edit_list_start_encountered = true;
                            // The frames before the edit get timestamps counting back from it.
                            let mut end_ts = edit_list_dts_counter;
                            let n = new.len();
                            for (k, d) in frame_duration_buffer.iter().rev().enumerate() {
                                end_ts = end_ts.wrapping_sub(*d);
                                new[n - 1 - k].timestamp = end_ts;
                            }
                            frame_duration_buffer.clear();
                        }
                    }
                    new.push(Entry {
                        pos: old[current].pos,
                        timestamp: edit_list_dts_counter,
                        flags,
                    });
                    if edit_list_start_encountered {
                        edit_list_dts_counter = edit_list_dts_counter.wrapping_add(frame_duration);
                    }
                    if curr_cts.wrapping_add(frame_duration) >= edit_end && flags & KEY != 0 {
                        // With B-frames, the next keyframe may still be followed by frames of
                        // the edit: wait for one more.
                        if has_ctts && !found_keyframe_after_edit {
                            found_keyframe_after_edit = true;
                            current += 1;
                            continue;
                        }
                        break;
                    }
                    current += 1;
                }
            }
            min_corrected_pts = min_corrected_pts.wrapping_sub(empty_edits_sum_duration);
            if min_corrected_pts > 0 {
                for e in &mut new {
                    e.timestamp = e.timestamp.wrapping_sub(min_corrected_pts);
                }
            }
            t.entries = new;
            t.ctts_per_entry = new_ctts;
            Ok(())
        }

        fn read_moof(&mut self, moof_offset: u64, buf: &[u8]) -> Result<(), VideoError> {
            let mut implicit_offset = moof_offset;
            for child in children(buf) {
                if &child.kind == b"traf" {
                    self.read_traf(moof_offset, &mut implicit_offset, child.body)?;
                }
            }
            Ok(())
        }

        /// `mov_read_tfhd`, `mov_read_tfdt` and `mov_read_trun` for one track fragment.
        fn read_traf(
            &mut self,
            moof_offset: u64,
            implicit_offset: &mut u64,
            buf: &[u8],
        ) -> Result<(), VideoError> {
            struct Frag {
                trak: Option<usize>,
                base_data_offset: u64,
                duration: u32,
                size: u32,
                flags: u32,
            }
            let mut frag: Option<Frag> = None;
            let mut tfdt_dts: Option<i64> = None;
            let mut next_trun_dts: Option<i64> = None;
            for child in children(buf) {
                match &child.kind {
                    b"tfhd" => {
                        let tfhd: Tfhd = decode(&child)?;
                        let Some(trex) = self.trex.iter().find(|t| t.track_id == tfhd.track_id)
                        else {
                            frag = None;
                            continue;
                        };
                        let base_data_offset = match tfhd.base_data_offset {
                            Some(o) => o,
                            None if tfhd.default_base_is_moof => moof_offset,
                            None => *implicit_offset,
                        };
                        frag = Some(Frag {
                            trak: self.traks.iter().position(|t| t.track_id == tfhd.track_id),
                            base_data_offset,
                            duration: tfhd
                                .default_sample_duration
                                .unwrap_or(trex.default_sample_duration),
                            size: tfhd.default_sample_size.unwrap_or(trex.default_sample_size),
                            flags: tfhd
                                .default_sample_flags
                                .unwrap_or(trex.default_sample_flags),
                        });
                        next_trun_dts = None;
                    }
                    b"tfdt" => {
                        let Some(ti) = frag.as_ref().and_then(|f| f.trak) else {
                            continue;
                        };
                        let tfdt: Tfdt = decode(&child)?;
                        let dts = tfdt.base_media_decode_time as i64;
                        tfdt_dts = Some(dts);
                        self.traks[ti].track_end = dts;
                    }
                    b"trun" => {
                        let Some(f) = &frag else {
                            return Err(unreadable("a 'trun' box comes without a known 'tfhd'"));
                        };
                        let Some(ti) = f.trak.filter(|&i| self.traks[i].is_video()) else {
                            continue;
                        };
                        let file_size = self.file_size;
                        let t = &mut self.traks[ti];
                        let time_offset = t.time_offset;
                        let dts = match (next_trun_dts, tfdt_dts) {
                            (Some(n), _) => n.wrapping_sub(time_offset),
                            (None, Some(d)) => d.wrapping_sub(time_offset),
                            _ => t.track_end.wrapping_sub(time_offset),
                        };
                        let (end_dts, end_offset) = read_trun(
                            t,
                            child.body,
                            dts,
                            f.base_data_offset,
                            (f.duration, f.size, f.flags),
                            file_size,
                        )?;
                        next_trun_dts = Some(end_dts.wrapping_add(time_offset));
                        t.track_end = end_dts.wrapping_add(time_offset);
                        *implicit_offset = end_offset;
                    }
                    _ => {}
                }
            }
            Ok(())
        }

        /// `mov_read_sidx`: whether the segment index covers the rest of the file, which ends
        /// `mov_read_header` early.
        fn read_sidx<R: Read + Seek>(
            &mut self,
            bytes: &[u8],
            end: u64,
            src: &mut Source<R>,
        ) -> Result<(), VideoError> {
            // FFmpeg skips a `sidx` it cannot read (e.g. an unknown version).
            let Ok(sidx) = Sidx::decode_body(&mut &bytes[..]) else {
                return Ok(());
            };
            if !self.traks.iter().any(|t| t.track_id == sidx.reference_id) {
                return Ok(());
            }
            let mut offset = end.saturating_add(sidx.first_offset);
            for r in &sidx.references {
                if r.reference_type {
                    return Err(unreadable(
                        "the 'sidx' box refers to another 'sidx', which FFmpeg does not support",
                    ));
                }
                offset = offset.saturating_add(u64::from(r.referenced_size));
            }
            let size = self.file_size;
            let mut complete = offset == size;
            if !complete && size > 0 {
                let mut tail = [0u8; 4];
                if size >= 4 && src.read_at(size - 4, &mut tail)? == 4 {
                    let mfra_size = u64::from(u32::from_be_bytes(tail));
                    complete = offset == size.wrapping_sub(mfra_size);
                }
            }
            if complete {
                self.frag_complete = true;
            }
            Ok(())
        }

        /// `avg_frame_rate` as `mov_read_header` sets it, from what has been read so far.
        fn set_rates(&mut self) {
            let movie_scale = self.time_scale;
            for t in &mut self.traks {
                let mut scale = t.time_scale;
                if scale <= 0 {
                    scale = if movie_scale > 0 { movie_scale } else { 1 };
                }
                t.time_scale = scale;
                if t.nb_frames_for_fps > 0 && t.duration_for_fps > 0 {
                    t.rate = av_reduce(
                        i64::from(scale).wrapping_mul(t.nb_frames_for_fps),
                        t.duration_for_fps,
                        INT_MAX,
                    );
                }
            }
        }
    }

    /// `ff_index_search_timestamp` with `AVSEEK_FLAG_BACKWARD` (and `AVSEEK_FLAG_ANY` if `any`).
    fn index_search_backward(entries: &[Entry], wanted: i64, any: bool) -> Option<usize> {
        let nb = entries.len() as i64;
        let (mut a, mut b) = (-1i64, nb);
        if b > 0 && entries[(b - 1) as usize].timestamp < wanted {
            a = b - 1;
        }
        while b - a > 1 {
            let mut m = (a + b) >> 1;
            while entries[m as usize].flags & DISCARD != 0 && m < b && m < nb - 1 {
                m += 1;
                if m == b && entries[m as usize].timestamp >= wanted {
                    m = b - 1;
                    break;
                }
            }
            let ts = entries[m as usize].timestamp;
            if ts >= wanted {
                b = m;
            }
            if ts <= wanted {
                a = m;
            }
        }
        let mut m = a;
        if !any {
            while m >= 0 && m < nb && entries[m as usize].flags & KEY == 0 {
                m -= 1;
            }
        }
        (m >= 0 && m < nb).then_some(m as usize)
    }

    /// `find_prev_closest_index` on the unedited index (one ctts value per sample).
    fn find_prev_closest_index(
        old: &[Entry],
        ctts: &[i32],
        has_ctts: bool,
        dts_shift: i64,
        timestamp_pts: i64,
        any: bool,
        budget: &mut u64,
    ) -> Option<usize> {
        let mut timestamp_pts = timestamp_pts;
        if dts_shift > 0 {
            timestamp_pts = timestamp_pts.wrapping_sub(dts_shift);
        }
        let mut index = index_search_backward(old, timestamp_pts, any)? as i64;
        let mut i = index;
        while i > 0 && old[i as usize].timestamp == old[i as usize - 1].timestamp {
            if any || old[i as usize - 1].flags & KEY != 0 {
                index = i - 1;
            }
            i -= 1;
        }
        if has_ctts {
            // With one ctts entry per sample, the ctts index is the sample index.
            let mut ctts_index = index.min(ctts.len() as i64);
            while index >= 0 && ctts_index >= 0 && (ctts_index as usize) < ctts.len() {
                if *budget == 0 {
                    return None;
                }
                *budget -= 1;
                let e = old[index as usize];
                if e.timestamp
                    .wrapping_add(i64::from(ctts[ctts_index as usize]))
                    <= timestamp_pts
                    && e.flags & KEY != 0
                {
                    break;
                }
                index -= 1;
                ctts_index -= 1;
            }
        }
        (index >= 0).then_some(index as usize)
    }

    /// `mov_read_stsd` as far as the stream's codec and size go: the first sample entry.
    fn read_stsd(t: &mut Trak, body: &[u8]) -> Result<(), VideoError> {
        // Hand-parsed: mp4-atom's `Stsd` decodes every child box of every entry (avcC, colr,
        // ...) and refuses entries FFmpeg plays; only the type and the size are needed.
        let entries = be32(body, 4).unwrap_or(0);
        if entries == 0 || entries > 1024 || entries as usize > body.len() / 8 {
            return Err(unreadable(format!("the 'stsd' box has {entries} entries")));
        }
        let entry = body.get(8..).unwrap_or(&[]);
        let Some(fourcc) = entry.get(4..8) else {
            return Err(unreadable("the 'stsd' box is truncated"));
        };
        let fourcc: [u8; 4] = [fourcc[0], fourcc[1], fourcc[2], fourcc[3]];
        t.fourcc = Some(fourcc);
        // VisualSampleEntry: 8-byte box header, 6 reserved, data reference, 16 bytes, then
        // width and height.
        if let (Some(w), Some(h)) = (be16(entry, 32), be16(entry, 34)) {
            t.width = u32::from(w);
            t.height = u32::from(h);
        }
        Ok(())
    }

    /// `mov_read_stts`, with its repair of huge deltas and its sums for the frame rate.
    fn read_stts(t: &mut Trak, stts: Stts) {
        t.stts.clear();
        let (mut duration, mut total_sample_count) = (0i64, 0i64);
        let (mut current_dts, mut corrected_dts) = (0i64, 0i64);
        for e in &stts.entries {
            let sample_count = e.sample_count;
            let sample_duration = e.sample_delta;
            let mut stored = sample_duration;
            // C: `unsigned * unsigned` wraps at 32 bits before joining the int64 sums.
            if sample_duration > MAX_STTS_DELTA {
                let delta_magnitude = sample_duration as i32;
                stored = 1;
                corrected_dts = corrected_dts.wrapping_add(
                    if delta_magnitude < 0 {
                        i64::from(delta_magnitude)
                    } else {
                        1
                    }
                    .wrapping_mul(i64::from(sample_count)),
                );
            } else {
                corrected_dts = corrected_dts
                    .wrapping_add(i64::from(sample_duration.wrapping_mul(sample_count)));
            }
            current_dts = current_dts.wrapping_add(i64::from(stored.wrapping_mul(sample_count)));
            if current_dts > corrected_dts {
                let drift = (current_dts - corrected_dts) / i64::from(sample_count.max(1));
                let correction: u32 = if i64::from(stored) > drift {
                    drift as u32
                } else {
                    stored.wrapping_sub(1)
                };
                current_dts =
                    current_dts.wrapping_sub(i64::from(correction.wrapping_mul(sample_count)));
                stored = stored.wrapping_sub(correction);
            }
            duration = duration.wrapping_add(
                (i64::from(stored) as u64).wrapping_mul(u64::from(sample_count)) as i64,
            );
            total_sample_count += i64::from(sample_count);
            t.stts.push((sample_count, stored));
        }
        if duration > 0
            && duration <= i64::MAX - t.duration_for_fps
            && total_sample_count <= INT_MAX - t.nb_frames_for_fps
        {
            t.duration_for_fps += duration;
            t.nb_frames_for_fps += total_sample_count;
        }
    }

    /// `mov_read_ctts`: entries with a positive count; the dts shift from all but the last two.
    fn read_ctts(t: &mut Trak, ctts: Ctts) {
        let entries = ctts.entries.len();
        if entries == 0 {
            return;
        }
        let mut kept = Vec::new();
        for (i, e) in ctts.entries.iter().enumerate() {
            let count = e.sample_count as i32;
            let duration = e.sample_offset as i32;
            if count <= 0 {
                continue;
            }
            kept.push((count as u32, duration));
            if duration.unsigned_abs() > 1 << 28 && i + 2 < entries {
                // "CTTS invalid": FFmpeg drops the table.
                t.ctts = None;
                return;
            }
            if i + 2 < entries {
                update_dts_shift(t, duration);
            }
        }
        t.ctts = Some(kept);
    }

    fn update_dts_shift(t: &mut Trak, duration: i32) {
        if duration < 0 {
            let d = if duration == i32::MIN {
                duration + 1
            } else {
                duration
            };
            t.dts_shift = t.dts_shift.max(-d);
        }
    }

    /// `mov_read_trun`: appends the run's samples; returns the dts after the run and the
    /// offset after its data.
    fn read_trun(
        t: &mut Trak,
        body: &[u8],
        mut dts: i64,
        base_data_offset: u64,
        (default_duration, default_size, default_flags): (u32, u32, u32),
        file_size: u64,
    ) -> Result<(i64, u64), VideoError> {
        // Hand-parsed: mp4-atom 0.17 skips the first sample's per-sample flags when the run
        // also has first-sample flags, misreading the rest of the run.
        let malformed = || unreadable("the 'trun' box is malformed");
        let flags = be32(body, 0).ok_or_else(malformed)? & 0x00FF_FFFF;
        let entries = be32(body, 4).ok_or_else(malformed)?;
        let mut at = 8;
        let mut data_offset = 0i64;
        if flags & TRUN_DATA_OFFSET != 0 {
            data_offset = i64::from(be32(body, at).ok_or_else(malformed)? as i32);
            at += 4;
        }
        let mut first_sample_flags = default_flags;
        if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
            first_sample_flags = be32(body, at).ok_or_else(malformed)?;
            at += 4;
        }
        let mut offset = base_data_offset.wrapping_add_signed(data_offset);
        // FFmpeg compares every sample with the last one before the run, not with each other.
        let prev_dts = t.entries.last().map(|e| e.timestamp);
        for i in 0..entries {
            let mut read = |present: u32| -> Option<Option<u32>> {
                if flags & present == 0 {
                    return Some(None);
                }
                let v = be32(body, at)?;
                at += 4;
                Some(Some(v))
            };
            // FFmpeg stops at the end of the box data, keeping the samples read so far.
            let (Some(duration), Some(size), Some(sample_flags), Some(cts)) = (
                read(TRUN_SAMPLE_DURATION),
                read(TRUN_SAMPLE_SIZE),
                read(TRUN_SAMPLE_FLAGS),
                read(TRUN_SAMPLE_CTS),
            ) else {
                break;
            };
            let sample_duration = duration.unwrap_or(default_duration);
            let sample_size = size.unwrap_or(default_size);
            let sample_flags = sample_flags.unwrap_or(if i == 0 {
                first_sample_flags
            } else {
                default_flags
            });
            let ctts = cts.unwrap_or(0) as i32;
            update_dts_shift(t, ctts);
            if sample_size == 0 {
                return Err(unreadable("a fragment has a sample of size 0"));
            }
            if offset >= file_size {
                break;
            }
            if t.entries.len() >= MAX_FRAMES {
                return Err(too_many_frames());
            }
            let keyframe = sample_flags & (SAMPLE_FLAG_IS_NON_SYNC | SAMPLE_FLAG_DEPENDS_YES) == 0;
            let mut entry_flags = if keyframe { KEY } else { 0 };
            // Fragments can overlap in time: FFmpeg discards the overlap after decoding.
            if prev_dts.is_some_and(|p| p >= dts) {
                entry_flags |= DISCARD;
            }
            // Samples of fragments carry their own composition offset (one per entry).
            t.has_ctts_data = true;
            while t.ctts_per_entry.len() < t.entries.len() {
                t.ctts_per_entry.push(0);
            }
            t.entries.push(Entry {
                pos: offset,
                timestamp: dts,
                flags: entry_flags,
            });
            t.ctts_per_entry.push(ctts);
            dts = dts.wrapping_add(i64::from(sample_duration));
            offset = offset.wrapping_add(u64::from(sample_size));
            t.stream_size += u64::from(sample_size);
            if i64::from(sample_duration) <= i64::MAX - t.duration_for_fps
                && t.nb_frames_for_fps < INT_MAX
            {
                t.duration_for_fps += i64::from(sample_duration);
                t.nb_frames_for_fps += 1;
            }
        }
        Ok((dts, offset))
    }

    impl Trak {
        fn into_candidate(self) -> Candidate {
            let dts_shift = i64::from(self.dts_shift);
            let pts = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| match self.ctts_per_entry.get(i) {
                    Some(&c) if self.has_ctts_data => e
                        .timestamp
                        .saturating_add(dts_shift.saturating_add(i64::from(c))),
                    _ => e.timestamp,
                })
                .collect();
            // i128: a hostile stts's counts and durations overflow i64.
            let duration: i128 = self
                .stts
                .iter()
                .map(|&(c, d)| i128::from(c) * i128::from(d))
                .sum();
            let bit_rate = if duration > 0 {
                (i128::from(self.stream_size) * 8 * i128::from(self.time_scale) / duration) as i64
            } else {
                0
            };
            let codec = self.fourcc.map_or_else(
                || "unknown".to_string(),
                |f| {
                    codec_name(f).map_or_else(
                        || String::from_utf8_lossy(&f).trim().to_string(),
                        str::to_string,
                    )
                },
            );
            Candidate {
                pts,
                time_base: (1, i64::from(self.time_scale.max(1))),
                rate: self.rate,
                width: self.width,
                height: self.height,
                codec,
                default: self.enabled,
                bit_rate,
                rate_detail: "the video track's samples have no duration".to_string(),
            }
        }
    }
}

/// Matroska and WebM: `libavformat/matroskadec.c`, plus the frame-rate estimate of
/// `avformat_find_stream_info` for tracks without `DefaultDuration`.
///
/// EBML is read by hand: matroska-demuxer 0.8 loops forever on a SeekHead that points to
/// itself and panics (`expect_err`) on one that points to two SeekHeads, and its `next_frame`
/// reads every frame's payload, where only block headers are needed here.
mod mkv {
    use super::*;

    const EBML: u32 = 0x1A45_DFA3;
    const SEGMENT: u32 = 0x1853_8067;
    const SEEK_HEAD: u32 = 0x114D_9B74;
    const SEEK: u32 = 0x4DBB;
    const SEEK_ID: u32 = 0x53AB;
    const SEEK_POSITION: u32 = 0x53AC;
    const INFO: u32 = 0x1549_A966;
    const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    const TRACKS: u32 = 0x1654_AE6B;
    const TRACK_ENTRY: u32 = 0xAE;
    const TRACK_NUMBER: u32 = 0xD7;
    const TRACK_TYPE: u32 = 0x83;
    const CODEC_ID: u32 = 0x86;
    const CODEC_PRIVATE: u32 = 0x63A2;
    const DEFAULT_DURATION: u32 = 0x23_E383;
    const FLAG_DEFAULT: u32 = 0x88;
    const CODEC_DELAY: u32 = 0x56AA;
    const VIDEO: u32 = 0xE0;
    const PIXEL_WIDTH: u32 = 0xB0;
    const PIXEL_HEIGHT: u32 = 0xBA;
    const FRAME_RATE: u32 = 0x23_83E3;
    const CLUSTER: u32 = 0x1F43_B675;
    const CLUSTER_TIMESTAMP: u32 = 0xE7;
    const SIMPLE_BLOCK: u32 = 0xA3;
    const BLOCK_GROUP: u32 = 0xA0;
    const BLOCK: u32 = 0xA1;
    const BLOCK_DURATION: u32 = 0x9B;
    /// Top-level elements: one of them ends a cluster of unknown size.
    const LEVEL1: [u32; 9] = [
        CLUSTER,
        SEEK_HEAD,
        INFO,
        TRACKS,
        0x1C53_BB6B,
        0x1254_C367,
        0x1043_A770,
        0x1941_A469,
        SEGMENT,
    ];
    const TRACK_TYPE_VIDEO: u64 = 1;
    const TRACK_TYPE_AUDIO: u64 = 2;
    const TRACK_TYPE_SUBTITLE: u64 = 0x11;
    const TRACK_TYPE_METADATA: u64 = 0x21;
    /// Header elements are read whole; none is this large in a real file.
    const MAX_HEADER_ELEMENT: u64 = 64 << 20;
    /// `avformat_find_stream_info`'s defaults.
    const PROBESIZE: u64 = 5_000_000;
    const MAX_ANALYZE_DURATION: i64 = 5_000_000;
    const MAX_STD_TIMEBASES: usize = 30 * 12 + 30 + 3 + 6;

    /// An element header: id, where its data starts, and its size (None: unknown).
    struct Element {
        id: u32,
        data: u64,
        size: Option<u64>,
    }

    /// An EBML variable-length number at the start of `b`: (value, length, all value bits set).
    fn vint(b: &[u8], max_len: usize) -> Option<(u64, usize, bool)> {
        let first = *b.first()?;
        let len = first.leading_zeros() as usize + 1;
        if len > max_len || b.len() < len {
            return None;
        }
        let mut value = u64::from(first) & (0xFFu64 >> len);
        for &byte in &b[1..len] {
            value = (value << 8) | u64::from(byte);
        }
        let all_ones = value == (1u64 << (7 * len)) - 1;
        Some((value, len, all_ones))
    }

    /// An element header at the start of `b` (`pos` is its place in the file).
    fn element_in(b: &[u8], pos: u64) -> Option<Element> {
        let (_, id_len, _) = vint(b, 4)?;
        let id = b[..id_len]
            .iter()
            .fold(0u32, |a, &x| (a << 8) | u32::from(x));
        let (size, size_len, unknown) = vint(&b[id_len..], 8)?;
        Some(Element {
            id,
            data: pos + (id_len + size_len) as u64,
            size: (!unknown).then_some(size),
        })
    }

    fn read_element<R: Read + Seek>(
        src: &mut Source<R>,
        pos: u64,
    ) -> Result<Option<Element>, VideoError> {
        let mut b = [0u8; 12];
        let n = src.read_at(pos, &mut b)?;
        Ok(element_in(&b[..n], pos))
    }

    /// The children of a master element held in memory: (id, data).
    fn children(buf: &[u8]) -> Vec<(u32, &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let Some(e) = element_in(&buf[pos..], 0) else {
                break;
            };
            let start = (pos + e.data as usize).min(buf.len());
            let end = match e.size {
                Some(s) => start.saturating_add(usize::try_from(s).unwrap_or(usize::MAX)),
                None => buf.len(),
            }
            .min(buf.len());
            out.push((e.id, &buf[start..end]));
            pos = end;
        }
        out
    }

    fn uint(b: &[u8]) -> Option<u64> {
        (b.len() <= 8).then(|| b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn float(b: &[u8]) -> Option<f64> {
        match b.len() {
            0 => Some(0.0),
            4 => Some(f64::from(f32::from_be_bytes(b.try_into().ok()?))),
            8 => Some(f64::from_be_bytes(b.try_into().ok()?)),
            _ => None,
        }
    }

    #[derive(Clone)]
    struct Track {
        number: u64,
        kind: u64,
        codec_id: String,
        default_duration: u64,
        flag_default: bool,
        codec_delay: u64,
        width: u64,
        height: u64,
        /// CodecPrivate, kept for H.264 only (its avcC).
        codec_private: Vec<u8>,
    }

    fn read_track(buf: &[u8]) -> Track {
        let mut t = Track {
            number: 0,
            kind: 0,
            codec_id: String::new(),
            default_duration: 0,
            flag_default: true,
            codec_delay: 0,
            width: 0,
            height: 0,
            codec_private: Vec::new(),
        };
        let mut frame_rate = 0.0;
        for (id, data) in children(buf) {
            match id {
                TRACK_NUMBER => t.number = uint(data).unwrap_or(0),
                TRACK_TYPE => t.kind = uint(data).unwrap_or(0),
                CODEC_ID => {
                    t.codec_id = String::from_utf8_lossy(data)
                        .trim_end_matches('\0')
                        .to_string()
                }
                DEFAULT_DURATION => t.default_duration = uint(data).unwrap_or(0),
                FLAG_DEFAULT => t.flag_default = uint(data).unwrap_or(1) != 0,
                CODEC_DELAY => t.codec_delay = uint(data).unwrap_or(0),
                CODEC_PRIVATE => t.codec_private = data.to_vec(),
                VIDEO => {
                    for (vid, vdata) in children(data) {
                        match vid {
                            PIXEL_WIDTH => t.width = uint(vdata).unwrap_or(0),
                            PIXEL_HEIGHT => t.height = uint(vdata).unwrap_or(0),
                            FRAME_RATE => frame_rate = float(vdata).unwrap_or(0.0),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // The deprecated FrameRate element stands in for a missing DefaultDuration.
        if t.kind == TRACK_TYPE_VIDEO && t.default_duration == 0 && frame_rate > 0.0 {
            t.default_duration = (1e9 / frame_rate) as u64;
        }
        if t.codec_id != "V_MPEG4/ISO/AVC" {
            t.codec_private = Vec::new();
        }
        t
    }

    /// The duration FFmpeg gives each packet of an H.264 track that has no DefaultDuration, in
    /// stream units: its parser reads the frame rate from the SPS timing info
    /// (`time_scale / (2 * num_units_in_tick)`), and `compute_frame_duration` turns it into a
    /// frame duration rounded down (41 ms for 24000/1001 fps). 0 without timing info.
    fn h264_packet_duration(avcc: &[u8], tb: (i64, i64)) -> i64 {
        use h264_reader::avcc::AvcDecoderConfigurationRecord;
        use h264_reader::nal::{Nal, RefNal, sps::SeqParameterSet};
        let Ok(record) = AvcDecoderConfigurationRecord::try_from(avcc) else {
            return 0;
        };
        let Some(Ok(sps)) = record.sequence_parameter_sets().next() else {
            return 0;
        };
        let Ok(sps) = SeqParameterSet::from_bits(RefNal::new(sps, &[], true).rbsp_bits()) else {
            return 0;
        };
        let Some(timing) = sps.vui_parameters.and_then(|v| v.timing_info) else {
            return 0;
        };
        if timing.num_units_in_tick == 0 || timing.time_scale == 0 {
            return 0;
        }
        // avctx->framerate = time_scale / (2 * num_units_in_tick), as den/num.
        let (fr_den, fr_num) = av_reduce(
            2 * i64::from(timing.num_units_in_tick),
            i64::from(timing.time_scale),
            1 << 30,
        );
        if fr_den * 1000 <= fr_num {
            return 0;
        }
        // A field's duration (H.264 counts 2 ticks a frame), times 1 + repeat_pict (1 for a
        // progressive frame).
        let (n, d) = av_reduce(fr_den, fr_num * 2, INT_MAX);
        let (n, d) = av_reduce(n * 2, d, INT_MAX);
        if n == 0 || d == 0 {
            return 0;
        }
        // av_rescale_rnd(1, n * tb.den, d * tb.num, AV_ROUND_DOWN)
        (i128::from(n) * i128::from(tb.1) / (i128::from(d) * i128::from(tb.0))) as i64
    }

    fn codec_name(codec_id: &str) -> String {
        match codec_id {
            "V_MPEG4/ISO/AVC" => "h264",
            "V_MPEGH/ISO/HEVC" => "hevc",
            "V_VP8" => "vp8",
            "V_VP9" => "vp9",
            "V_AV1" => "av1",
            "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/AP" => "mpeg4",
            "V_MPEG2" => "mpeg2video",
            "V_MPEG1" => "mpeg1video",
            "V_THEORA" => "theora",
            "V_MJPEG" => "mjpeg",
            "V_PRORES" => "prores",
            "V_FFV1" => "ffv1",
            other => return other.strip_prefix("V_").unwrap_or(other).to_lowercase(),
        }
        .to_string()
    }

    pub(super) fn probe<R: Read + Seek>(src: &mut Source<R>) -> Result<ContainerInfo, VideoError> {
        let file_size = src.size;
        // The EBML header, then the Segment.
        let Some(ebml) = read_element(src, 0)? else {
            return Err(unreadable("the EBML header is malformed"));
        };
        let Some(ebml_size) = ebml.size.filter(|_| ebml.id == EBML) else {
            return Err(unreadable("the EBML header is malformed"));
        };
        let mut pos = ebml.data.saturating_add(ebml_size);
        let segment = loop {
            let Some(e) = read_element(src, pos)? else {
                return Err(unreadable("no Matroska Segment: the file is truncated"));
            };
            if e.id == SEGMENT {
                break e;
            }
            match e.size {
                Some(s) => pos = e.data.saturating_add(s),
                None => return Err(unreadable("no Matroska Segment")),
            }
        };
        let segment_end = segment
            .size
            .map_or(file_size, |s| segment.data.saturating_add(s).min(file_size));

        // Level-1 elements up to the first Cluster (`matroska_read_header`), then those a
        // SeekHead points to (`matroska_execute_seekhead`).
        let mut timestamp_scale: u64 = 1_000_000;
        let mut tracks: Option<Vec<Track>> = None;
        let mut info_seen = false;
        let mut seek_targets: Vec<(u32, u64)> = Vec::new();
        let mut first_cluster = None;
        let mut pos = segment.data;
        while pos < segment_end {
            let Some(e) = read_element(src, pos)? else {
                break;
            };
            if e.id == CLUSTER {
                first_cluster = Some(pos);
                break;
            }
            let Some(size) = e.size else { break };
            let end = e.data.saturating_add(size);
            match e.id {
                INFO | TRACKS | SEEK_HEAD if size <= MAX_HEADER_ELEMENT => {
                    let bytes = src.read_range(e.data, end)?;
                    read_level1(
                        e.id,
                        &bytes,
                        segment.data,
                        &mut timestamp_scale,
                        &mut tracks,
                        &mut info_seen,
                        &mut seek_targets,
                    );
                }
                _ => {}
            }
            pos = end;
        }
        for (id, target) in seek_targets {
            let done = match id {
                INFO => info_seen,
                TRACKS => tracks.is_some(),
                _ => true,
            };
            if done || target >= file_size {
                continue;
            }
            if let Some(e) = read_element(src, target)?
                && e.id == id
                && let Some(size) = e.size.filter(|&s| s <= MAX_HEADER_ELEMENT)
            {
                let bytes = src.read_range(e.data, e.data.saturating_add(size))?;
                let mut ignored = Vec::new();
                read_level1(
                    id,
                    &bytes,
                    segment.data,
                    &mut timestamp_scale,
                    &mut tracks,
                    &mut info_seen,
                    &mut ignored,
                );
            }
        }
        if timestamp_scale == 0 {
            timestamp_scale = 1_000_000;
        }
        if timestamp_scale > u64::from(u32::MAX) {
            return Err(unreadable(format!(
                "TimestampScale {timestamp_scale} is not a usable time base"
            )));
        }
        let tracks = tracks.unwrap_or_default();
        let all_numbers: Vec<u64> = tracks.iter().map(|t| t.number).collect();
        let tracks: Vec<Track> = tracks
            .into_iter()
            .filter(|t| {
                t.number != 0
                    && !t.codec_id.is_empty()
                    && matches!(
                        t.kind,
                        TRACK_TYPE_VIDEO
                            | TRACK_TYPE_AUDIO
                            | TRACK_TYPE_SUBTITLE
                            | TRACK_TYPE_METADATA
                    )
            })
            .collect();
        if !tracks.iter().any(|t| t.kind == TRACK_TYPE_VIDEO) {
            return Err(VideoError::NoVideoStream);
        }

        // The stream time base: `avpriv_set_pts_info(st, 64, time_scale, 1e9)`.
        let time_base = av_reduce(timestamp_scale as i64, 1_000_000_000, INT_MAX);
        let mut walker = Walker {
            streams: tracks.iter().map(|t| Stream::new(t, time_base)).collect(),
            numbers: all_numbers,
            time_base,
            probe: FindStreamInfo::default(),
        };
        if let Some(start) = first_cluster {
            walker.walk(src, start, segment_end)?;
        }
        walker.probe.finish(&mut walker.streams, time_base);

        let candidates = walker
            .streams
            .into_iter()
            .zip(&tracks)
            .filter(|(_, t)| t.kind == TRACK_TYPE_VIDEO)
            .map(|(s, t)| Candidate {
                pts: s.pts,
                time_base,
                rate: s.rate,
                width: u32::try_from(t.width).unwrap_or(u32::MAX),
                height: u32::try_from(t.height).unwrap_or(u32::MAX),
                codec: codec_name(&t.codec_id),
                default: t.flag_default,
                bit_rate: 0,
                rate_detail: "no DefaultDuration, and the block timestamps give no steady rate"
                    .to_string(),
            })
            .collect();
        best_stream(candidates)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_level1(
        id: u32,
        bytes: &[u8],
        segment_data: u64,
        timestamp_scale: &mut u64,
        tracks: &mut Option<Vec<Track>>,
        info_seen: &mut bool,
        seek_targets: &mut Vec<(u32, u64)>,
    ) {
        match id {
            INFO if !*info_seen => {
                *info_seen = true;
                for (cid, data) in children(bytes) {
                    if cid == TIMESTAMP_SCALE {
                        *timestamp_scale = uint(data).unwrap_or(1_000_000);
                    }
                }
            }
            TRACKS if tracks.is_none() => {
                *tracks = Some(
                    children(bytes)
                        .into_iter()
                        .filter(|(cid, _)| *cid == TRACK_ENTRY)
                        .map(|(_, data)| read_track(data))
                        .collect(),
                );
            }
            SEEK_HEAD => {
                for (cid, data) in children(bytes) {
                    if cid != SEEK {
                        continue;
                    }
                    let (mut target_id, mut target_pos) = (None, None);
                    for (sid, sdata) in children(data) {
                        match sid {
                            SEEK_ID => target_id = uint(sdata),
                            SEEK_POSITION => target_pos = uint(sdata),
                            _ => {}
                        }
                    }
                    if let (Some(i), Some(p)) = (target_id, target_pos)
                        && let Ok(i) = u32::try_from(i)
                        && (i == INFO || i == TRACKS)
                        && seek_targets.len() < 64
                    {
                        seek_targets.push((i, segment_data.saturating_add(p)));
                    }
                }
            }
            _ => {}
        }
    }

    /// One track of the file, with what is gathered about its packets.
    struct Stream {
        number: u64,
        kind: u64,
        /// `codec_delay` in stream time base units.
        codec_delay: i64,
        /// Video only: pts of every packet, in packet order.
        pts: Vec<i64>,
        /// `avg_frame_rate`; (0, 0) until known.
        rate: (i64, i64),
        /// `r_frame_rate`.
        r_rate: (i64, i64),
        /// The duration FFmpeg computes for a packet without one (H.264 with SPS timing).
        computed_duration: i64,
        info: StreamInfo,
    }

    impl Stream {
        fn new(t: &Track, time_base: (i64, i64)) -> Self {
            let mut rate = (0, 0);
            let mut r_rate = (0, 0);
            if t.kind == TRACK_TYPE_VIDEO && t.default_duration > 0 {
                let div = if t.default_duration <= i64::MAX as u64 {
                    1
                } else {
                    2
                };
                rate = av_reduce(
                    1_000_000_000 / div,
                    (t.default_duration / div as u64) as i64,
                    30000,
                );
                if rate.0 < rate.1 * 1000 && rate.0 > rate.1 * 5 {
                    r_rate = rate;
                }
            }
            let codec = codec_name(&t.codec_id);
            let computed_duration = if t.kind == TRACK_TYPE_VIDEO && codec == "h264" {
                h264_packet_duration(&t.codec_private, time_base)
            } else {
                0
            };
            Self {
                computed_duration,
                number: t.number,
                kind: t.kind,
                codec_delay: av_rescale(
                    i64::try_from(t.codec_delay).unwrap_or(i64::MAX),
                    time_base.1,
                    time_base.0.saturating_mul(1_000_000_000),
                ),
                pts: Vec::new(),
                rate,
                r_rate,
                info: StreamInfo::new(&codec, time_base),
            }
        }
    }

    /// `FFStreamInfo` and the fields of `FFStream` that `avformat_find_stream_info` reads.
    struct StreamInfo {
        /// `av_q2d(st->time_base) > 0.0005`: a coarse time base (mkv's milliseconds) needs
        /// twice the frames.
        tb_coarse: bool,
        nb_frames: u64,
        tb_unreliable: bool,
        last_dts: i64,
        duration_count: i64,
        rfps_duration_sum: i64,
        duration_gcd: i64,
        duration_error: Option<Box<[[[f64; MAX_STD_TIMEBASES]; 2]; 2]>>,
        codec_info_duration: i64,
        codec_info_duration_fields: i64,
        fps_first_dts: i64,
        fps_first_dts_idx: u64,
        fps_last_dts: i64,
        fps_last_dts_idx: u64,
    }

    impl StreamInfo {
        fn new(codec: &str, tb: (i64, i64)) -> Self {
            // `tb_unreliable`: no decoder frame rate is known for a block's codec here, so the
            // stream time base decides, except for H.264 and HEVC, which are always unreliable.
            let tb_unreliable = matches!(codec, "h264" | "hevc" | "mpeg2video" | "gif")
                || tb.1 >= 101 * tb.0
                || tb.1 < 5 * tb.0;
            Self {
                tb_coarse: tb.0 as f64 / tb.1 as f64 > 0.0005,
                nb_frames: 0,
                tb_unreliable,
                last_dts: NOPTS,
                duration_count: 0,
                rfps_duration_sum: 0,
                duration_gcd: 0,
                duration_error: None,
                codec_info_duration: 0,
                codec_info_duration_fields: 0,
                fps_first_dts: NOPTS,
                fps_first_dts_idx: 0,
                fps_last_dts: NOPTS,
                fps_last_dts_idx: 0,
            }
        }

        /// `ff_rfps_add_frame`.
        fn rfps_add_frame(&mut self, ts: i64, tb: (i64, i64)) {
            let last = self.last_dts;
            if ts != NOPTS
                && last != NOPTS
                && ts > last
                && (ts as u64).wrapping_sub(last as u64) < i64::MAX as u64
            {
                let dts = ts as f64 * (tb.0 as f64 / tb.1 as f64);
                let duration = ts - last;
                let errors = self
                    .duration_error
                    .get_or_insert_with(|| Box::new([[[0.0; MAX_STD_TIMEBASES]; 2]; 2]));
                for i in 0..MAX_STD_TIMEBASES {
                    if errors[0][1][i] < 1e10 {
                        let framerate = std_framerate(i);
                        let sdts = dts * framerate as f64 / (1001 * 12) as f64;
                        for j in 0..2 {
                            let ticks = (sdts + j as f64 * 0.5).round_ties_even() as i64;
                            let error = sdts - ticks as f64 + j as f64 * 0.5;
                            errors[j][0][i] += error;
                            errors[j][1][i] += error * error;
                        }
                    }
                }
                if self.rfps_duration_sum <= i64::MAX - duration {
                    self.duration_count += 1;
                    self.rfps_duration_sum += duration;
                }
                if self.duration_count % 10 == 0 {
                    let n = self.duration_count as f64;
                    for i in 0..MAX_STD_TIMEBASES {
                        if errors[0][1][i] < 1e10 {
                            let a0 = errors[0][0][i] / n;
                            let error0 = errors[0][1][i] / n - a0 * a0;
                            let a1 = errors[1][0][i] / n;
                            let error1 = errors[1][1][i] / n - a1 * a1;
                            if error0 > 0.04 && error1 > 0.04 {
                                errors[0][1][i] = 2e10;
                                errors[1][1][i] = 2e10;
                            }
                        }
                    }
                }
                // The first 4 deltas may jitter.
                if self.duration_count > 3 {
                    self.duration_gcd =
                        gcd(i128::from(self.duration_gcd), i128::from(duration)) as i64;
                }
            }
            if ts != NOPTS {
                self.last_dts = ts;
            }
        }
    }

    /// `get_std_framerate`: the rates FFmpeg snaps to, in units of 1/(12*1001) fps.
    fn std_framerate(i: usize) -> i64 {
        let i = i as i64;
        if i < 30 * 12 {
            return (i + 1) * 1001;
        }
        let i = i - 30 * 12;
        if i < 30 {
            return (i + 31) * 1001 * 12;
        }
        let i = i - 30;
        if i < 3 {
            return [80, 120, 240][i as usize] * 1001 * 12;
        }
        [24, 30, 60, 12, 15, 48][(i - 3) as usize] * 1000 * 12
    }

    /// The packet loop of `avformat_find_stream_info`, fed the packets in file order.
    #[derive(Default)]
    struct FindStreamInfo {
        read_size: u64,
        done: bool,
    }

    impl FindStreamInfo {
        /// Whether every stream has what FFmpeg waits for ("All info found").
        fn all_info_found(streams: &[Stream]) -> bool {
            streams.iter().all(|s| {
                let info = &s.info;
                match s.kind {
                    TRACK_TYPE_VIDEO => {
                        let mut framecount = 20;
                        if info.tb_coarse {
                            framecount *= 2;
                        }
                        if !info.tb_unreliable {
                            framecount = 0;
                        }
                        // A frame must have been decoded (pixel format) and a dts seen.
                        info.nb_frames >= 1
                            && ((s.r_rate.0 != 0 && s.rate.0 != 0)
                                || info.duration_count >= framecount)
                    }
                    TRACK_TYPE_AUDIO => info.nb_frames >= 1,
                    _ => true,
                }
            })
        }

        fn feed(
            &mut self,
            streams: &mut [Stream],
            index: usize,
            dts: i64,
            duration: i64,
            size: u64,
            tb: (i64, i64),
        ) {
            if self.done {
                return;
            }
            if Self::all_info_found(streams) || self.read_size >= PROBESIZE {
                self.done = true;
                return;
            }
            self.read_size += size;
            let s = &mut streams[index];
            let info = &mut s.info;
            if dts != NOPTS && info.nb_frames > 1 {
                if info.fps_last_dts != NOPTS && info.fps_last_dts >= dts {
                    info.fps_first_dts = NOPTS;
                    info.fps_last_dts = NOPTS;
                }
                if info.fps_last_dts != NOPTS
                    && info.fps_last_dts_idx > info.fps_first_dts_idx
                    && (dts as u64).wrapping_sub(info.fps_last_dts as u64) / 1000
                        > (info.fps_last_dts as u64).wrapping_sub(info.fps_first_dts as u64)
                            / (info.fps_last_dts_idx - info.fps_first_dts_idx)
                {
                    info.fps_first_dts = NOPTS;
                    info.fps_last_dts = NOPTS;
                }
                if info.fps_first_dts == NOPTS {
                    info.fps_first_dts = dts;
                    info.fps_first_dts_idx = info.nb_frames;
                }
                info.fps_last_dts = dts;
                info.fps_last_dts_idx = info.nb_frames;
            }
            if info.nb_frames > 1 && s.kind == TRACK_TYPE_VIDEO {
                let mut t = av_rescale(info.codec_info_duration, tb.0 * 1_000_000, tb.1);
                if s.rate.0 > 0 {
                    t = t.max(av_rescale(
                        info.nb_frames as i64,
                        s.rate.1 * 1_000_000,
                        s.rate.0,
                    ));
                }
                if t == 0
                    && info.nb_frames > 30
                    && info.fps_first_dts != NOPTS
                    && info.fps_last_dts != NOPTS
                {
                    let dur = info.fps_last_dts.saturating_sub(info.fps_first_dts);
                    t = t.max(av_rescale(dur, tb.0 * 1_000_000, tb.1));
                }
                if t >= MAX_ANALYZE_DURATION {
                    self.done = true;
                    return;
                }
                if duration > 0 && duration < i64::MAX - info.codec_info_duration {
                    info.codec_info_duration += duration;
                    info.codec_info_duration_fields += 2;
                }
            }
            if s.kind == TRACK_TYPE_VIDEO {
                info.rfps_add_frame(dts, tb);
            }
            info.nb_frames += 1;
        }

        /// `ff_rfps_calculate`, then the duration-based estimate, for streams without a rate.
        fn finish(&self, streams: &mut [Stream], tb: (i64, i64)) {
            let q2d_tb = tb.0 as f64 / tb.1 as f64;
            for s in streams.iter_mut().filter(|s| s.kind == TRACK_TYPE_VIDEO) {
                let info = &s.info;
                if info.tb_unreliable
                    && info.duration_count > 15
                    && info.duration_gcd > (tb.1 / (500 * tb.0)).max(1)
                    && s.r_rate.0 == 0
                    && info.duration_gcd < i64::MAX / tb.0
                {
                    s.r_rate = av_reduce(tb.1, tb.0 * info.duration_gcd, INT_MAX);
                }
                if info.duration_count > 1
                    && s.r_rate.0 == 0
                    && info.tb_unreliable
                    && let Some(errors) = &info.duration_error
                {
                    let mut num = 0i64;
                    let mut best_error = 0.01;
                    let ref_rate = (tb.1, tb.0);
                    for j in 0..MAX_STD_TIMEBASES {
                        let std = std_framerate(j);
                        if info.codec_info_duration != 0
                            && (info.codec_info_duration as f64 * q2d_tb)
                                < (1001.0 * 11.5) / std as f64
                        {
                            continue;
                        }
                        if info.codec_info_duration == 0 && std < 1001 * 12 {
                            continue;
                        }
                        let mean_duration =
                            q2d_tb * info.rfps_duration_sum as f64 / info.duration_count as f64;
                        if mean_duration < (1001.0 * 12.0 * 0.8) / std as f64 {
                            continue;
                        }
                        for k in 0..2 {
                            let n = info.duration_count as f64;
                            let a = errors[k][0][j] / n;
                            let error = errors[k][1][j] / n - a * a;
                            if error < best_error && best_error > 0.000000001 {
                                best_error = error;
                                num = std;
                            }
                        }
                    }
                    let ref_q = ref_rate.0 as f64 / ref_rate.1 as f64;
                    if num != 0
                        && (ref_rate.0 == 0 || (num as f64 / (12 * 1001) as f64) < 1.01 * ref_q)
                    {
                        s.r_rate = av_reduce(num, 12 * 1001, INT_MAX);
                    }
                }
                let info = &s.info;
                if s.rate.0 == 0
                    && s.r_rate.0 != 0
                    && info.rfps_duration_sum != 0
                    && info.codec_info_duration <= 0
                    && info.duration_count > 2
                    && (1.0 / ((s.r_rate.0 as f64 / s.r_rate.1 as f64) * q2d_tb)
                        - info.rfps_duration_sum as f64 / info.duration_count as f64)
                        .abs()
                        <= 1.0
                {
                    s.rate = s.r_rate;
                }
                // "estimate average framerate if not set by demuxer"
                if info.codec_info_duration_fields != 0
                    && s.rate.0 == 0
                    && info.codec_info_duration != 0
                {
                    if info.codec_info_duration >= i64::MAX / tb.0 / 2
                        || info.codec_info_duration_fields >= i64::MAX / tb.1
                        || info.codec_info_duration < 0
                    {
                        continue;
                    }
                    let rate = av_reduce(
                        info.codec_info_duration_fields * tb.1,
                        info.codec_info_duration * 2 * tb.0,
                        60000,
                    );
                    s.rate = rate;
                    let mut best_fps = 0;
                    let mut best_error = 0.01;
                    for j in 0..MAX_STD_TIMEBASES {
                        let std = std_framerate(j);
                        let error = ((rate.0 as f64 / rate.1 as f64)
                            / (std as f64 / (12 * 1001) as f64)
                            - 1.0)
                            .abs();
                        if error < best_error {
                            best_error = error;
                            best_fps = std;
                        }
                    }
                    if best_fps != 0 {
                        s.rate = av_reduce(best_fps, 12 * 1001, INT_MAX);
                    }
                }
            }
        }
    }

    struct Walker {
        streams: Vec<Stream>,
        /// Every TrackNumber of Tracks, with or without a stream.
        numbers: Vec<u64>,
        time_base: (i64, i64),
        probe: FindStreamInfo,
    }

    impl Walker {
        /// The Clusters from `start` to the end of the Segment; a damaged element makes FFmpeg
        /// resync at the next Cluster, as done here.
        fn walk<R: Read + Seek>(
            &mut self,
            src: &mut Source<R>,
            start: u64,
            end: u64,
        ) -> Result<(), VideoError> {
            let mut pos = start;
            while pos < end {
                let Some(e) = read_element(src, pos)? else {
                    match resync(src, pos + 1, end)? {
                        Some(p) => {
                            pos = p;
                            continue;
                        }
                        None => break,
                    }
                };
                match e.id {
                    CLUSTER => match self.cluster(src, &e, end)? {
                        Ok(next) => pos = next,
                        Err(bad) => match resync(src, bad + 1, end)? {
                            Some(p) => pos = p,
                            None => break,
                        },
                    },
                    SEGMENT | EBML => break,
                    _ => match e.size {
                        Some(s) => pos = e.data.saturating_add(s),
                        None => break,
                    },
                }
            }
            Ok(())
        }

        /// One Cluster: Ok(where the next element starts), or Err(position of a damaged element).
        fn cluster<R: Read + Seek>(
            &mut self,
            src: &mut Source<R>,
            cluster: &Element,
            segment_end: u64,
        ) -> Result<Result<u64, u64>, VideoError> {
            let end = cluster.size.map_or(segment_end, |s| {
                cluster.data.saturating_add(s).min(segment_end)
            });
            let mut cluster_time: Option<u64> = None;
            let mut pos = cluster.data;
            while pos < end {
                let Some(e) = read_element(src, pos)? else {
                    return Ok(Err(pos));
                };
                if cluster.size.is_none() && LEVEL1.contains(&e.id) {
                    return Ok(Ok(pos));
                }
                let Some(size) = e.size else {
                    return Ok(Err(pos));
                };
                let elem_end = e.data.saturating_add(size);
                if elem_end > src.size {
                    // Cut short by the end of the file: FFmpeg's read fails at EOF.
                    return Ok(Ok(src.size));
                }
                match e.id {
                    CLUSTER_TIMESTAMP => match read_uint(src, e.data, size)? {
                        Some(v) => cluster_time = Some(v),
                        None => return Ok(Err(pos)),
                    },
                    SIMPLE_BLOCK if !self.block(src, e.data, size, cluster_time, 0)? => {
                        return Ok(Err(pos));
                    }
                    BLOCK_GROUP => {
                        let mut block = None;
                        let mut duration = 0u64;
                        let mut p = e.data;
                        while p < elem_end {
                            let Some(c) = read_element(src, p)? else {
                                return Ok(Err(pos));
                            };
                            let Some(csize) = c.size else {
                                return Ok(Err(pos));
                            };
                            match c.id {
                                BLOCK => block = Some((c.data, csize)),
                                BLOCK_DURATION => match read_uint(src, c.data, csize)? {
                                    Some(v) => duration = v,
                                    None => return Ok(Err(pos)),
                                },
                                _ => {}
                            }
                            p = c.data.saturating_add(csize);
                        }
                        if let Some((data, bsize)) = block
                            && bsize > 0
                            && !self.block(src, data, bsize, cluster_time, duration)?
                        {
                            return Ok(Err(pos));
                        }
                    }
                    _ => {}
                }
                pos = elem_end;
            }
            Ok(Ok(end))
        }

        /// `matroska_parse_block` without the payload: one packet per laced frame. Returns
        /// false for a block FFmpeg rejects (which makes it resync).
        fn block<R: Read + Seek>(
            &mut self,
            src: &mut Source<R>,
            data: u64,
            size: u64,
            cluster_time: Option<u64>,
            block_duration: u64,
        ) -> Result<bool, VideoError> {
            let mut head = [0u8; 12];
            let n = src.read_at(data, &mut head[..size.min(12) as usize])?;
            let Some((number, num_len, _)) = vint(&head[..n], 8) else {
                return Ok(false);
            };
            let Some(index) = self.streams.iter().position(|s| s.number == number) else {
                // A track without a stream is ignored; an unknown track number is an error.
                return Ok(self.numbers.contains(&number));
            };
            let rest = size - num_len as u64;
            if rest < 3 {
                return Ok(false);
            }
            let block_time = i16::from_be_bytes([head[num_len], head[num_len + 1]]);
            let flags = head[num_len + 2];
            let lacing = (flags & 0x06) >> 1;
            let payload = rest - 3;
            let tb_delay = self.streams[index].codec_delay;
            // `timecode` in stream units, or no pts when the cluster has no timestamp or the
            // block would start before 0.
            let timecode = match cluster_time {
                Some(ct) if block_time >= 0 || ct >= u64::from(block_time.unsigned_abs()) => (ct
                    as i64)
                    .wrapping_add(i64::from(block_time))
                    .wrapping_sub(tb_delay),
                _ => NOPTS,
            };
            let laces = if lacing == 0 {
                vec![payload]
            } else {
                match lace_sizes(src, data + num_len as u64 + 3, payload, lacing)? {
                    Some(l) => l,
                    None => return Ok(false),
                }
            };
            let block_duration = i64::try_from(block_duration).unwrap_or(i64::MAX);
            let n_laces = laces.len() as i64;
            let mut timecode = timecode;
            let tb = self.time_base;
            for (k, &lace_size) in laces.iter().enumerate() {
                let k = k as i64;
                let lace_duration = block_duration.saturating_mul(k + 1) / n_laces
                    - block_duration.saturating_mul(k) / n_laces;
                let s = &mut self.streams[index];
                if s.kind == TRACK_TYPE_VIDEO {
                    if s.pts.len() >= MAX_FRAMES {
                        return Err(too_many_frames());
                    }
                    s.pts.push(timecode);
                }
                let duration = if lace_duration > 0 {
                    lace_duration
                } else {
                    s.computed_duration
                };
                self.probe
                    .feed(&mut self.streams, index, timecode, duration, lace_size, tb);
                if timecode != NOPTS {
                    timecode = if lace_duration != 0 {
                        timecode.wrapping_add(lace_duration)
                    } else {
                        NOPTS
                    };
                }
            }
            Ok(true)
        }
    }

    fn read_uint<R: Read + Seek>(
        src: &mut Source<R>,
        at: u64,
        size: u64,
    ) -> Result<Option<u64>, VideoError> {
        if size > 8 {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        let n = src.read_at(at, &mut b[..size as usize])?;
        Ok((n as u64 == size).then(|| uint(&b[..n]).unwrap_or(0)))
    }

    /// `matroska_parse_laces`: the size of each frame of a laced block, None if inconsistent.
    fn lace_sizes<R: Read + Seek>(
        src: &mut Source<R>,
        at: u64,
        size: u64,
        lacing: u8,
    ) -> Result<Option<Vec<u64>>, VideoError> {
        if size == 0 {
            return Ok(None);
        }
        // The lacing header: a count, then (Xiph, EBML) the sizes; never longer than the block.
        let mut head = vec![0u8; size.min(1 << 16) as usize];
        let n = src.read_at(at, &mut head)?;
        let head = &head[..n];
        if head.is_empty() {
            return Ok(None);
        }
        let laces = usize::from(head[0]) + 1;
        let mut size = size - 1;
        let mut p = 1usize;
        let mut sizes = Vec::with_capacity(laces);
        match lacing {
            1 => {
                let mut total = 0u64;
                for _ in 0..laces - 1 {
                    let mut lace = 0u64;
                    loop {
                        if size <= total {
                            return Ok(None);
                        }
                        let Some(&byte) = head.get(p) else {
                            return Ok(None);
                        };
                        total += u64::from(byte);
                        lace += u64::from(byte);
                        p += 1;
                        size -= 1;
                        if byte != 0xFF {
                            break;
                        }
                    }
                    sizes.push(lace);
                }
                if size < total {
                    return Ok(None);
                }
                sizes.push(size - total);
            }
            2 => {
                if !size.is_multiple_of(laces as u64) {
                    return Ok(None);
                }
                sizes.resize(laces, size / laces as u64);
            }
            _ => {
                let Some((first, len, _)) = vint(&head[p..], 8) else {
                    return Ok(None);
                };
                if first > INT_MAX as u64 {
                    return Ok(None);
                }
                p += len;
                let mut total = first;
                sizes.push(first);
                for _ in 1..laces.saturating_sub(1) {
                    let Some((raw, len, _)) = vint(&head[p..], 8) else {
                        return Ok(None);
                    };
                    p += len;
                    let delta = raw as i64 - ((1i64 << (7 * len - 1)) - 1);
                    let prev = *sizes.last().unwrap_or(&0) as i64;
                    let next = prev + delta;
                    if !(0..=INT_MAX).contains(&next) {
                        return Ok(None);
                    }
                    sizes.push(next as u64);
                    total += next as u64;
                }
                let used = (p - 1) as u64;
                if size < used || size - used < total {
                    return Ok(None);
                }
                // As in FFmpeg, the last size is what remains (with one lace, the only one).
                let last = size - used - total;
                if laces == 1 {
                    sizes[0] = last;
                } else {
                    sizes.push(last);
                }
            }
        }
        Ok(Some(sizes))
    }

    /// `matroska_resync`: the next Cluster at or after `from`, by scanning for its ID.
    fn resync<R: Read + Seek>(
        src: &mut Source<R>,
        from: u64,
        end: u64,
    ) -> Result<Option<u64>, VideoError> {
        const ID: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
        let mut pos = from;
        let mut buf = vec![0u8; 1 << 16];
        while pos < end {
            let n = src.read_at(pos, &mut buf)?;
            if n < 4 {
                return Ok(None);
            }
            if let Some(i) = buf[..n].windows(4).position(|w| w == ID) {
                return Ok(Some(pos + i as u64));
            }
            pos += (n - 3) as u64;
        }
        Ok(None)
    }
}
