//! Video files through FFmpeg (the `ffmpeg-next` binding), read the way decord 0.6.0 reads them
//! for the reference: the frame count is the number of video packets, frame `i` is the `i`-th
//! packet in presentation order, the rate is the stream's `avg_frame_rate`, and frames are
//! converted to RGB24 by swscale at their own size.

use std::path::Path;
use std::sync::Once;

use ffmpeg::format::Pixel;
use ffmpeg::media::Type;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg::{Packet, Rational, Rescale};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

use super::container::probe_container;
use super::error::VideoError;
use super::sampling::{SamplePlan, VideoSampling, check_frame_pixels, check_sample_tokens};
use super::{FrameCollector, VideoFrames};
use crate::file::{OpenError, open_regular};

/// One video packet of the index: where it sits in time and whether decoding can start there.
#[derive(Clone, Copy)]
struct IndexedPacket {
    pts: i64,
    key: bool,
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // The library reports through its return values; FFmpeg's own log would only add noise
        // to the caller's stderr.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        let _ = ffmpeg::init();
    });
}

pub(super) fn read_video(
    path: &Path,
    sampling: &VideoSampling,
    max_tokens: usize,
    max_frame_pixels: u64,
) -> Result<VideoFrames, VideoError> {
    init();
    // Checked before FFmpeg opens the path: a FIFO would block it, a device never end, and a
    // missing file would surface as FFmpeg's terse "No such file". An MP4/MOV or WebM/MKV
    // file's frame size is read from its header by sift's own probe, before FFmpeg reads (and
    // for some codecs decodes) anything.
    let file = open_regular(path).map_err(|e| match e {
        OpenError::NotRegular(kind) => VideoError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        },
        OpenError::Io(source) => VideoError::Io {
            path: path.to_path_buf(),
            source,
        },
        OpenError::TooLarge { size, limit } => VideoError::Unreadable {
            detail: format!("{size} bytes, over the limit of {limit}"),
        },
    })?;
    if let Ok(info) = probe_container(std::io::BufReader::new(file.0)) {
        check_frame_pixels(info.width, info.height, max_frame_pixels)?;
    }
    let mut input = ffmpeg::format::input(path).map_err(|e| VideoError::Unreadable {
        detail: e.to_string(),
    })?;
    let stream = input
        .streams()
        .best(Type::Video)
        .ok_or(VideoError::NoVideoStream)?;
    let stream_index = stream.index();
    let time_base = stream.time_base();
    let rate = stream.avg_frame_rate();
    let parameters = stream.parameters();
    let codec_name = codec_name(&parameters);
    let mut context = ffmpeg::codec::Context::from_parameters(parameters).map_err(|e| {
        VideoError::Unreadable {
            detail: e.to_string(),
        }
    })?;
    // Frame threads change nothing in the output (decoding is bit-exact), only the speed.
    context.set_threading(ffmpeg::codec::threading::Config::kind(
        ffmpeg::codec::threading::Type::Frame,
    ));
    let decoder = context
        .decoder()
        .video()
        .map_err(|_| VideoError::UnsupportedCodec { codec: codec_name })?;
    // Every other container: the size FFmpeg read from it, still before any frame is decoded
    // here (for a codec whose size the container lacks, FFmpeg decoded one frame to find it).
    check_frame_pixels(decoder.width(), decoder.height(), max_frame_pixels)?;
    let index = index_packets(&mut input, stream_index)?;
    let total = index.len();
    if total == 0 {
        return Err(VideoError::NoFrames);
    }
    if rate.numerator() <= 0 || rate.denominator() <= 0 {
        return Err(VideoError::NoFrameRate {
            detail: format!("avg_frame_rate {rate}"),
        });
    }
    let video_fps = f64::from(rate.numerator()) / f64::from(rate.denominator());
    let plan = SamplePlan::new(total, video_fps, sampling)?;
    check_sample_tokens(
        decoder.height(),
        decoder.width(),
        plan.indices.len(),
        max_tokens,
    )?;
    let indices = plan.indices.clone();
    let mut collector = FrameCollector::new(plan);

    let mut reader = FrameReader {
        input,
        decoder,
        stream_index,
        time_base,
        index,
        position: None,
        drained: false,
        scaler: None,
        decoded: 0,
    };
    // `get_batch` decodes each distinct index once; repeats are copies.
    let mut previous: Option<(usize, RgbImage)> = None;
    for &target in &indices {
        let full = match previous.take() {
            Some((index, frame)) if index == target => frame,
            _ => reader.frame_at(target)?,
        };
        collector.push(&full)?;
        previous = Some((target, full));
    }
    collector.finish(reader.decoded)
}

/// The codec's name for messages, with the FourCC when FFmpeg does not know the codec.
fn codec_name(parameters: &ffmpeg::codec::Parameters) -> String {
    let id = parameters.id();
    if id != ffmpeg::codec::Id::None {
        return format!("{id:?}");
    }
    // SAFETY: `parameters` wraps a valid AVCodecParameters owned by the open input.
    let tag = unsafe { (*parameters.as_ptr()).codec_tag };
    let fourcc: String = tag
        .to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    format!("with FourCC '{fourcc}' (unknown to FFmpeg)")
}

/// Reads every packet of the stream (no decoding): decord's `IndexKeyframes`.
fn index_packets(
    input: &mut ffmpeg::format::context::Input,
    stream_index: usize,
) -> Result<Vec<IndexedPacket>, VideoError> {
    let mut index = Vec::new();
    let mut packet = Packet::empty();
    loop {
        match packet.read(input) {
            Ok(()) => {
                if packet.stream() == stream_index
                    && let Some(pts) = packet.pts().or(packet.dts())
                {
                    index.push(IndexedPacket {
                        pts,
                        key: packet.is_key(),
                    });
                }
            }
            Err(ffmpeg::Error::Eof) => break,
            // A damaged tail: keep what was indexed, as far as it decodes.
            Err(_) if !index.is_empty() => break,
            Err(e) => {
                return Err(VideoError::Corrupt {
                    detail: e.to_string(),
                });
            }
        }
    }
    index.sort_by_key(|p| p.pts);
    Ok(index)
}

/// Decodes frames by index, seeking only when a keyframe lies between the current position
/// and the target (so nearby samples reuse one pass through the stream).
struct FrameReader {
    input: ffmpeg::format::context::Input,
    decoder: ffmpeg::decoder::Video,
    stream_index: usize,
    time_base: Rational,
    index: Vec<IndexedPacket>,
    /// Index of the last decoded frame, once decoding has started after a seek.
    position: Option<usize>,
    /// The decoder has been sent end-of-stream.
    drained: bool,
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    /// Frames the decoder has produced.
    decoded: usize,
}

impl FrameReader {
    fn frame_at(&mut self, target: usize) -> Result<RgbImage, VideoError> {
        let key = (0..=target).rev().find(|&i| self.index[i].key).unwrap_or(0);
        let must_seek = match self.position {
            None => true,
            Some(pos) => pos >= target || key > pos,
        };
        if must_seek {
            self.seek_to(key)?;
        }
        let target_pts = self.index[target].pts;
        let mut frame = VideoFrame::empty();
        loop {
            if !self.next_frame(&mut frame)? {
                return Err(VideoError::Corrupt {
                    detail: format!(
                        "the stream ended before frame {target} of {} decoded",
                        self.index.len()
                    ),
                });
            }
            let Some(pts) = frame.timestamp().or(frame.pts()) else {
                continue;
            };
            self.position = Some(self.index.partition_point(|p| p.pts < pts));
            if pts >= target_pts {
                return self.convert_to_rgb(&frame);
            }
        }
    }

    fn seek_to(&mut self, key: usize) -> Result<(), VideoError> {
        let ts = self.index[key]
            .pts
            .rescale(self.time_base, ffmpeg::rescale::TIME_BASE);
        self.input.seek(ts, ..ts).map_err(|e| VideoError::Corrupt {
            detail: format!("seeking failed: {e}"),
        })?;
        self.decoder.flush();
        self.drained = false;
        self.position = None;
        Ok(())
    }

    /// The next decoded frame; false at the end of the stream.
    fn next_frame(&mut self, frame: &mut VideoFrame) -> Result<bool, VideoError> {
        let mut packet = Packet::empty();
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    self.decoded += 1;
                    return Ok(true);
                }
                Err(ffmpeg::Error::Eof) => return Ok(false),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => {
                    return Err(VideoError::Corrupt {
                        detail: e.to_string(),
                    });
                }
            }
            if self.drained {
                return Ok(false);
            }
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => {
                    // A damaged packet is skipped, as players do; the frames after the next
                    // keyframe still decode.
                    let _ = self.decoder.send_packet(&packet);
                }
                Ok(()) => {}
                Err(_) => {
                    self.drained = true;
                    let _ = self.decoder.send_eof();
                }
            }
        }
    }

    fn convert_to_rgb(&mut self, frame: &VideoFrame) -> Result<RgbImage, VideoError> {
        let (format, width, height) = (frame.format(), frame.width(), frame.height());
        if self.scaler.as_ref().map(|(_, key)| *key) != Some((format, width, height)) {
            let context = scaling::Context::get(
                format,
                width,
                height,
                Pixel::RGB24,
                width,
                height,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| VideoError::Corrupt {
                detail: format!("no conversion from {format:?} to RGB: {e}"),
            })?;
            self.scaler = Some((context, (format, width, height)));
        }
        let (scaler, _) = self.scaler.as_mut().expect("scaler was just set");
        let mut rgb = VideoFrame::empty();
        scaler
            .run(frame, &mut rgb)
            .map_err(|e| VideoError::Corrupt {
                detail: e.to_string(),
            })?;
        // Rows of the RGB frame are padded to the plane's stride.
        let (stride, data) = (rgb.stride(0), rgb.data(0));
        let row = width as usize * 3;
        let mut pixels = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(RgbImage::from_raw(width, height, pixels).expect("buffer matches the frame size"))
    }
}
