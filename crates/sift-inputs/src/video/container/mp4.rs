//! ISO BMFF (MP4, MOV, M4V, 3GP) boxes, read as `libavformat/mov.c` reads them: the box walk
//! and the sample tables here, the sample index in `sample_index`, fragments in `fragment`.

mod fragment;
mod sample_index;

use std::io::{Read, Seek};

use mp4_atom::{
    Atom, Co64, Ctts, Elst, Mdhd, Mvhd, Stco, Stsc, Stss, Stsz, StszSamples, Stts, Tkhd, Trex,
};

use super::{Candidate, ContainerInfo, INT_MAX, Source, av_reduce, best_stream, unreadable};
use crate::video::error::VideoError;

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
/// `mov_read_default`'s nesting limit.
const MAX_DEPTH: u32 = 10;
/// `mov.c`'s default `max_stts_delta`.
const MAX_STTS_DELTA: u32 = u32::MAX - 48000 * 10;

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
        b"avc1" | b"avc2" | b"avc3" | b"avc4" | b"ai5p" | b"ai5q" | b"ai55" | b"ai1p" | b"ai1q"
        | b"ai12" | b"ai13" | b"ai15" | b"ai16" | b"AVin" | b"x264" | b"H264" | b"h264" => "h264",
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" | b"hvt1" => "hevc",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"av01" => "av1",
        b"mp4v" | b"DIVX" | b"XVID" | b"3IV2" => "mpeg4",
        b"s263" | b"h263" | b"H263" => "h263",
        b"jpeg" | b"mjpa" | b"mjpb" | b"AVDJ" | b"dmb1" => "mjpeg",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"mp2v" | b"mp1v" | b"hdv1" | b"hdv2" | b"hdv3" | b"hdv5" | b"hdv6" | b"xdv1" | b"xdv2"
        | b"xdv3" | b"xdv4" | b"xdv5" | b"xdv6" | b"xdv7" | b"xdv8" | b"xdv9" | b"xdva"
        | b"xdvb" | b"xdvc" | b"xdvd" | b"xdve" | b"xdvf" | b"xd51" | b"xd54" | b"xd55"
        | b"xd59" | b"xd5a" | b"xd5b" | b"xd5c" | b"xd5d" | b"xd5e" | b"xd5f" | b"xdhd"
        | b"mx5p" | b"mx4p" | b"mx3p" | b"mx5n" | b"mx4n" | b"mx3n" => "mpeg2video",
        b"dvc " | b"dvcp" | b"dvpp" | b"dv5n" | b"dv5p" | b"dvh2" | b"dvh3" | b"dvh5" | b"dvh6"
        | b"dvhp" | b"dvhq" => "dvvideo",
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
                fragment::read_moof(&mut movie, pos, &bytes)?;
            }
            b"sidx" => {
                let bytes = src.read_range(body, end)?;
                fragment::read_sidx(&mut movie, &bytes, end, src)?;
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
    fn read_trak_children(&self, t: &mut Trak, buf: &[u8], depth: u32) -> Result<(), VideoError> {
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
            sample_index::build_index(self, t)?;
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
            corrected_dts =
                corrected_dts.wrapping_add(i64::from(sample_duration.wrapping_mul(sample_count)));
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
        duration = duration
            .wrapping_add((i64::from(stored) as u64).wrapping_mul(u64::from(sample_count)) as i64);
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
