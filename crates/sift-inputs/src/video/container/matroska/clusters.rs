//! The Clusters of a Matroska Segment and their blocks, without the payloads: one packet per
//! laced frame (`matroska_parse_cluster`, `matroska_parse_block`, `matroska_parse_laces`), with
//! `matroska_resync` after a damaged element.

use std::io::{Read, Seek};

use super::find_stream_info::FindStreamInfo;
use super::{
    BLOCK, BLOCK_DURATION, BLOCK_GROUP, CLUSTER, CLUSTER_TIMESTAMP, EBML, Element, LEVEL1, SEGMENT,
    SIMPLE_BLOCK, Stream, TRACK_TYPE_VIDEO, read_element, uint, vint,
};
use crate::video::container::{INT_MAX, MAX_FRAMES, NOPTS, Source, too_many_frames};
use crate::video::error::VideoError;

pub(super) struct Walker {
    pub(super) streams: Vec<Stream>,
    /// Every TrackNumber of Tracks, with or without a stream.
    pub(super) numbers: Vec<u64>,
    pub(super) time_base: (i64, i64),
    pub(super) probe: FindStreamInfo,
}

impl Walker {
    /// The Clusters from `start` to the end of the Segment; a damaged element makes FFmpeg
    /// resync at the next Cluster, as done here.
    pub(super) fn walk<R: Read + Seek>(
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
