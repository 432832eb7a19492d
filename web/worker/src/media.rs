//! The user's images and videos, read in the worker: images whole, videos by their container
//! (sift reads the frame count, rate and frame times as FFmpeg would) and frames the page
//! captures from a `<video>` element at the times sift asks for.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use futures::StreamExt;
use futures::channel::mpsc;
use js_sys::{ArrayBuffer, Uint8Array};
use sift::video::{ContainerInfo, FrameCollector, SamplePlan, group_timestamps, probe_container};
use sift::{RgbImage, VideoError, VideoFrames};
use sift_web_protocol::{FromWorker, Media, PdfPart, RenderSettings, VideoSample};
use web_sys::{Blob, FileReaderSync};

use crate::js::js_error;
use crate::reply::post;

/// The whole of a small blob (an image), or the browser's reason it cannot be read.
pub fn read_blob(blob: &Blob) -> Result<Vec<u8>, String> {
    let reader = FileReaderSync::new().map_err(|e| js_error(&e))?;
    let buffer: ArrayBuffer = reader
        .read_as_array_buffer(blob)
        .map_err(|e| js_error(&e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// A blob as `Read + Seek`, read through a window of `WINDOW` bytes so that a container
/// parser's many small reads cost one browser read per window.
struct BlobReader {
    blob: Blob,
    reader: FileReaderSync,
    size: u64,
    position: u64,
    window_start: u64,
    window: Vec<u8>,
}

const WINDOW: u64 = 1 << 20;

impl BlobReader {
    fn new(blob: &Blob) -> Result<Self, String> {
        Ok(Self {
            blob: blob.clone(),
            reader: FileReaderSync::new().map_err(|e| js_error(&e))?,
            size: blob.size() as u64,
            position: 0,
            window_start: 0,
            window: Vec::new(),
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || out.is_empty() {
            return Ok(0);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if self.position < self.window_start || self.position >= window_end {
            let end = (self.position + WINDOW).min(self.size);
            let slice = self
                .blob
                .slice_with_f64_and_f64(self.position as f64, end as f64)
                .map_err(|e| io::Error::other(js_error(&e)))?;
            let buffer = self
                .reader
                .read_as_array_buffer(&slice)
                .map_err(|e| io::Error::other(js_error(&e)))?;
            self.window = Uint8Array::new(&buffer).to_vec();
            self.window_start = self.position;
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.position - self.window_start) as usize;
        let n = out.len().min(self.window.len() - offset);
        out[..n].copy_from_slice(&self.window[offset..offset + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.position)
    }
}

/// The video stream of a file, as FFmpeg would report it.
pub fn probe(blob: &Blob) -> Result<ContainerInfo, VideoError> {
    let reader = BlobReader::new(blob).map_err(|detail| VideoError::Unreadable { detail })?;
    probe_container(reader)
}

/// A captured frame or a drawn PDF page, or why the page could not capture or draw it.
pub enum FrameMessage {
    Frame {
        index: usize,
        width: u32,
        height: u32,
        rgba: Uint8Array,
    },
    Page {
        width: u32,
        height: u32,
        rgb: Uint8Array,
    },
    Failed(String),
}

/// Where the frames of each video being captured (or the PDF page being drawn) go, by (job,
/// media id).
type Waiting = HashMap<(u32, u32), mpsc::UnboundedSender<FrameMessage>>;

/// Routes frames and PDF pages the page sends to the document part waiting for them.
#[derive(Clone, Default)]
pub struct FrameInbox {
    waiting: Rc<RefCell<Waiting>>,
}

impl FrameInbox {
    /// Delivers a message from the page; frames for a video nobody waits for are dropped.
    pub fn deliver(&self, job: u32, video: u32, message: FrameMessage) {
        if let Some(sender) = self.waiting.borrow().get(&(job, video)) {
            let _ = sender.unbounded_send(message);
        }
    }

    /// Asks the page for the PDF page of `pdf`, drawn by the page's renderer at `settings`; or
    /// why it could not be drawn, as the page words it.
    pub async fn page(
        &self,
        job: u32,
        pdf: &PdfPart,
        settings: &RenderSettings,
    ) -> Result<RgbImage, String> {
        let (sender, mut replies) = mpsc::unbounded();
        let key = (job, pdf.media.id);
        self.waiting.borrow_mut().insert(key, sender);
        post(&FromWorker::NeedPage {
            job,
            media: pdf.media.id,
            settings: settings.clone(),
        });
        let reply = replies.next().await;
        self.waiting.borrow_mut().remove(&key);
        let place = match pdf.page {
            Some(page) => format!("Page {page} of {}", pdf.media.name),
            None => pdf.media.name.clone(),
        };
        match reply {
            Some(FrameMessage::Page { width, height, rgb }) => RgbImage::from_raw(
                width,
                height,
                rgb.to_vec(),
            )
            .ok_or_else(|| {
                format!(
                    "{place} arrived with the wrong number of pixels. Press Rerank to try again."
                )
            }),
            Some(FrameMessage::Failed(message)) => Err(message),
            Some(FrameMessage::Frame { .. }) | None => Err(format!(
                "{place} was not drawn: the page sent something else. Press Rerank to try again."
            )),
        }
    }

    /// Asks the page for the planned frames of `media` and resizes each as it arrives.
    pub async fn capture(
        &self,
        job: u32,
        media: &Media,
        info: &ContainerInfo,
        plan: SamplePlan,
    ) -> Result<VideoFrames, VideoError> {
        let (sender, mut frames) = mpsc::unbounded();
        self.waiting.borrow_mut().insert((job, media.id), sender);
        post(&FromWorker::NeedFrames {
            job,
            video: media.id,
            seek_times: seek_times(&info.frame_times, &plan.indices),
        });
        let wanted = plan.indices.len();
        let mut collector = FrameCollector::new(plan);
        let mut result = Ok(());
        for expected in 0..wanted {
            match frames.next().await {
                Some(FrameMessage::Frame {
                    index,
                    width,
                    height,
                    rgba,
                }) if index == expected => {
                    let frame = rgb(width, height, &rgba).ok_or_else(|| VideoError::Corrupt {
                        detail: format!("frame {index} arrived with the wrong number of pixels"),
                    });
                    result = frame.and_then(|frame| collector.push(&frame));
                }
                Some(FrameMessage::Frame { index, .. }) => {
                    result = Err(VideoError::Corrupt {
                        detail: format!("frame {index} arrived where frame {expected} was due"),
                    });
                }
                Some(FrameMessage::Page { .. }) => {
                    result = Err(VideoError::Corrupt {
                        detail: format!("a PDF page arrived where frame {expected} was due"),
                    });
                }
                Some(FrameMessage::Failed(detail)) => {
                    result = Err(VideoError::NotPlayable { detail });
                }
                None => {
                    result = Err(VideoError::NotPlayable {
                        detail: "the page stopped sending frames".into(),
                    });
                }
            }
            if result.is_err() {
                break;
            }
        }
        self.waiting.borrow_mut().remove(&(job, media.id));
        result?;
        collector.finish(wanted)
    }
}

/// Where to seek the element to show each sampled frame: halfway to the next frame, so that
/// rounding in the browser's timeline never lands on a neighbour.
fn seek_times(frame_times: &[f64], indices: &[usize]) -> Vec<f64> {
    let last = frame_times.len().saturating_sub(1);
    let mean_duration = if last > 0 {
        (frame_times[last] - frame_times[0]) / last as f64
    } else {
        0.0
    };
    indices
        .iter()
        .map(|&i| match frame_times.get(i + 1) {
            Some(next) => (frame_times[i] + next) / 2.0,
            None => frame_times[i.min(last)] + mean_duration / 2.0,
        })
        .collect()
}

/// RGBA pixels from a canvas as an RGB image (the alpha of a video frame is opaque).
fn rgb(width: u32, height: u32, rgba: &Uint8Array) -> Option<RgbImage> {
    let rgba = rgba.to_vec();
    if rgba.len() != width as usize * height as usize * 4 {
        return None;
    }
    let rgb = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(width, height, rgb)
}

/// How a video was sampled, for the page.
pub fn sample_info(media: &Media, info: &ContainerInfo, frames: &VideoFrames) -> VideoSample {
    VideoSample {
        video: media.id,
        total_frames: info.frame_times.len(),
        fps: frames.fps,
        indices: frames.indices.clone(),
        timestamps: group_timestamps(&frames.indices, frames.fps),
    }
}
