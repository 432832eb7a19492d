//! Matroska and WebM EBML parsing: `libavformat/matroskadec.c`, plus the frame-rate estimate of
//! `avformat_find_stream_info` for tracks without `DefaultDuration` (in `find_stream_info`); the
//! header elements and tracks here, the Clusters and their blocks in `clusters`.
//!
//! EBML is read by hand: matroska-demuxer 0.8 loops forever on a SeekHead that points to
//! itself and panics (`expect_err`) on one that points to two SeekHeads, and its `next_frame`
//! reads every frame's payload, where only block headers are needed here.

mod clusters;
mod find_stream_info;

use std::io::{Read, Seek};

use super::{
    Candidate, ContainerInfo, INT_MAX, Source, av_reduce, av_rescale, best_stream, unreadable,
};
use crate::video::error::VideoError;
use clusters::Walker;
use find_stream_info::{FindStreamInfo, StreamInfo};

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
                    TRACK_TYPE_VIDEO | TRACK_TYPE_AUDIO | TRACK_TYPE_SUBTITLE | TRACK_TYPE_METADATA
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
