//! What one request may ask for. Each limit is checked before any work is queued, and a request
//! over one gets a 413 that names the limit, its flag and the value found.

use std::time::Duration;

/// The server's limits; the defaults suit a 2B model on one GPU.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes in a request body (`--max-body-bytes`); images and videos travel inside it as data
    /// URIs.
    pub max_body_bytes: usize,
    /// Documents in one request (`--max-documents`).
    pub max_documents: usize,
    /// Characters in one text (`--max-text-chars`). Longer prompts are cut to the model's
    /// `max_length` anyway; this bounds what is tokenized.
    pub max_text_chars: usize,
    /// Pixels of one image or video frame, read from its header before decoding
    /// (`--max-image-pixels`): the library's own limit (`ImageOptions::max_decoded_pixels`),
    /// which `apply` sets, and by default the same value.
    pub max_image_pixels: u64,
    /// Frames sampled from one video (`--max-video-frames`): a request's `max_frames` above it
    /// is refused.
    pub max_video_frames: usize,
    /// Images and videos in the query or in one document (`--max-media-per-item`).
    pub max_media_per_item: usize,
    /// Pixels of all the images and sampled video frames of one request, from their headers
    /// (`--max-request-pixels`): decoding and resizing them holds the model's thread.
    pub max_request_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_documents: 1000,
            max_text_chars: 200_000,
            max_image_pixels: sift::ImageOptions::default().max_decoded_pixels,
            max_video_frames: 64,
            max_media_per_item: 8,
            max_request_pixels: 100_000_000,
        }
    }
}

impl Limits {
    /// The model's options with this server's limits applied: images are refused from their
    /// header above `max_image_pixels`, before any pixel is decoded.
    pub fn apply(&self, mut options: sift::RerankOptions) -> sift::RerankOptions {
        options.image.max_decoded_pixels = self.max_image_pixels;
        options
    }
}

/// What one connection, and all of them together, may hold and for how long: slow or stalled
/// clients are cut off, and the server's memory and file descriptors stay bounded.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once (`--max-connections`); more are answered 503 and closed at once.
    /// Lowered at start-up, with a warning, to what the open-file limit allows.
    pub max_connections: usize,
    /// Time to send a request's header, counted from when the server waits for it, so also the
    /// time a kept-alive connection may stay idle (`--header-timeout`).
    pub header_timeout: Duration,
    /// Time to send a request's whole body (`--body-timeout`); then 408.
    pub body_timeout: Duration,
    /// Bytes of request bodies held at once, over all requests (`--max-body-bytes-total`); a
    /// body that does not fit gets 503 with Retry-After.
    pub max_body_bytes_total: usize,
    /// Time from a request's arrival to its answer, queue included (`--request-timeout`); then
    /// 504, and its scoring stops before the next pass.
    pub request_timeout: Duration,
    /// Time the requests in flight get to finish after Ctrl-C or SIGTERM
    /// (`--shutdown-timeout`); then their connections are closed and the server exits.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            max_body_bytes_total: 256 << 20,
            request_timeout: Duration::from_secs(120),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
