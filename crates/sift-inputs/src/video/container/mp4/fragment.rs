//! Fragmented MP4: the samples of `moof`/`traf`/`trun` boxes, and whether a `sidx` covers the
//! rest of the file (`mov_read_moof`, `mov_read_traf`, `mov_read_trun`, `mov_read_sidx`).

use std::io::{Read, Seek};

use mp4_atom::{Atom, Sidx, Tfdt, Tfhd};

use super::{DISCARD, Entry, KEY, Movie, Trak, be32, children, decode, update_dts_shift};
use crate::video::container::{INT_MAX, MAX_FRAMES, Source, too_many_frames, unreadable};
use crate::video::error::VideoError;

const TRUN_DATA_OFFSET: u32 = 0x01;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x04;
const TRUN_SAMPLE_DURATION: u32 = 0x100;
const TRUN_SAMPLE_SIZE: u32 = 0x200;
const TRUN_SAMPLE_FLAGS: u32 = 0x400;
const TRUN_SAMPLE_CTS: u32 = 0x800;
const SAMPLE_FLAG_IS_NON_SYNC: u32 = 0x0001_0000;
const SAMPLE_FLAG_DEPENDS_YES: u32 = 0x0100_0000;

pub(super) fn read_moof(movie: &mut Movie, moof_offset: u64, buf: &[u8]) -> Result<(), VideoError> {
    let mut implicit_offset = moof_offset;
    for child in children(buf) {
        if &child.kind == b"traf" {
            read_traf(movie, moof_offset, &mut implicit_offset, child.body)?;
        }
    }
    Ok(())
}

/// `mov_read_tfhd`, `mov_read_tfdt` and `mov_read_trun` for one track fragment.
fn read_traf(
    movie: &mut Movie,
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
                let Some(trex) = movie.trex.iter().find(|t| t.track_id == tfhd.track_id) else {
                    frag = None;
                    continue;
                };
                let base_data_offset = match tfhd.base_data_offset {
                    Some(o) => o,
                    None if tfhd.default_base_is_moof => moof_offset,
                    None => *implicit_offset,
                };
                frag = Some(Frag {
                    trak: movie.traks.iter().position(|t| t.track_id == tfhd.track_id),
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
                movie.traks[ti].track_end = dts;
            }
            b"trun" => {
                let Some(f) = &frag else {
                    return Err(unreadable("a 'trun' box comes without a known 'tfhd'"));
                };
                let Some(ti) = f.trak.filter(|&i| movie.traks[i].is_video()) else {
                    continue;
                };
                let file_size = movie.file_size;
                let t = &mut movie.traks[ti];
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
pub(super) fn read_sidx<R: Read + Seek>(
    movie: &mut Movie,
    bytes: &[u8],
    end: u64,
    src: &mut Source<R>,
) -> Result<(), VideoError> {
    // FFmpeg skips a `sidx` it cannot read (e.g. an unknown version).
    let Ok(sidx) = Sidx::decode_body(&mut &bytes[..]) else {
        return Ok(());
    };
    if !movie.traks.iter().any(|t| t.track_id == sidx.reference_id) {
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
    let size = movie.file_size;
    let mut complete = offset == size;
    if !complete && size > 0 {
        let mut tail = [0u8; 4];
        if size >= 4 && src.read_at(size - 4, &mut tail)? == 4 {
            let mfra_size = u64::from(u32::from_be_bytes(tail));
            complete = offset == size.wrapping_sub(mfra_size);
        }
    }
    if complete {
        movie.frag_complete = true;
    }
    Ok(())
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
