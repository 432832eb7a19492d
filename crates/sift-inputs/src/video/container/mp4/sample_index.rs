//! `mov_build_index` and `mov_fix_index`: a video track's sample index from its tables, and its
//! rewrite onto the timeline of the edit list.

use super::{DISCARD, Entry, KEY, Movie, Trak};
use crate::video::container::{MAX_FRAMES, av_rescale, too_many_frames, unreadable};
use crate::video::error::VideoError;

/// Steps `mov_fix_index` may take (searches and copies over all edits): far above any real
/// edit list, and a bound on what a hostile one can cost.
const EDIT_WORK: u64 = 1 << 27;

/// `mov_build_index` for a video track, then `mov_fix_index`.
pub(super) fn build_index(movie: &Movie, t: &mut Trak) -> Result<(), VideoError> {
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
        if (empty_duration != 0 || start_time != 0) && movie.time_scale > 0 {
            if empty_duration != 0 {
                empty_duration = av_rescale(
                    empty_duration,
                    i64::from(t.time_scale),
                    i64::from(movie.time_scale),
                );
            }
            t.time_offset = start_time.wrapping_sub(empty_duration);
            if !movie.advanced_editlist {
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
            if current_offset >= movie.file_size {
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
    if complete && movie.advanced_editlist {
        fix_index(movie, t)?;
    }
    Ok(())
}

/// `mov_fix_index`: keeps the samples the edit list shows (plus those needed to decode
/// them, flagged discard) and rewrites their timestamps onto the edited timeline.
fn fix_index(movie: &Movie, t: &mut Trak) -> Result<(), VideoError> {
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
        if movie.time_scale == 0 {
            break;
        }
        let edit_list_duration = av_rescale(
            duration,
            i64::from(t.time_scale),
            i64::from(movie.time_scale),
        );
        let mut edit_list_dts_counter = edit_list_dts_entry_end;
        edit_list_dts_entry_end = edit_list_dts_entry_end.wrapping_add(edit_list_duration);
        if !found_non_empty_edit && media_time == -1 {
            empty_edits_sum_duration = empty_edits_sum_duration.wrapping_add(edit_list_duration);
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
