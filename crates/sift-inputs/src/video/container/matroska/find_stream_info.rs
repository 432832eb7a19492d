//! The frame-rate estimate of `avformat_find_stream_info` (`libavformat/demux.c`:
//! `ff_rfps_add_frame`, `ff_rfps_calculate`, the duration-based estimate snapped to standard
//! rates), for Matroska tracks without `DefaultDuration`.

use super::{Stream, TRACK_TYPE_AUDIO, TRACK_TYPE_VIDEO};
use crate::video::container::{INT_MAX, NOPTS, av_reduce, av_rescale, gcd};

/// `avformat_find_stream_info`'s defaults.
const PROBESIZE: u64 = 5_000_000;
const MAX_ANALYZE_DURATION: i64 = 5_000_000;
const MAX_STD_TIMEBASES: usize = 30 * 12 + 30 + 3 + 6;

/// `FFStreamInfo` and the fields of `FFStream` that `avformat_find_stream_info` reads.
pub(super) struct StreamInfo {
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
    pub(super) fn new(codec: &str, tb: (i64, i64)) -> Self {
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
                self.duration_gcd = gcd(i128::from(self.duration_gcd), i128::from(duration)) as i64;
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
pub(super) struct FindStreamInfo {
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
                        && ((s.r_rate.0 != 0 && s.rate.0 != 0) || info.duration_count >= framecount)
                }
                TRACK_TYPE_AUDIO => info.nb_frames >= 1,
                _ => true,
            }
        })
    }

    pub(super) fn feed(
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
    pub(super) fn finish(&self, streams: &mut [Stream], tb: (i64, i64)) {
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
                        && (info.codec_info_duration as f64 * q2d_tb) < (1001.0 * 11.5) / std as f64
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
                if num != 0 && (ref_rate.0 == 0 || (num as f64 / (12 * 1001) as f64) < 1.01 * ref_q)
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
                    let error =
                        ((rate.0 as f64 / rate.1 as f64) / (std as f64 / (12 * 1001) as f64) - 1.0)
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
