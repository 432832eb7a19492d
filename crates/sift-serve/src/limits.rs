//! What one request may ask for. Each limit is checked before any work is queued, and a request
//! over one gets a 413 that names the limit, its flag and the value found.

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
