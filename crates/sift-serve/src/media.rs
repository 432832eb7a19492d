//! Images, videos and PDFs named in a request: data URIs always; paths only inside `--media-root`;
//! remote URLs only with `--allow-remote-media`, never to loopback or private addresses unless
//! `--allow-private-media`, and within a size and time limit.

use std::io::{Cursor, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use sift::{ImageSource, Video, VideoSampling, VideoSource};
use tempfile::TempPath;

use crate::error::ApiError;
use crate::limits::Limits;

/// Where media may come from.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Fetch `http(s)://` media (`--allow-remote-media`).
    pub allow_remote: bool,
    /// Let remote fetches reach loopback, private and link-local addresses
    /// (`--allow-private-media`).
    pub allow_private: bool,
    /// The directory local paths are read from (`--media-root`); none means no local paths.
    pub root: Option<PathBuf>,
    /// Most bytes one remote file may have.
    pub max_remote_bytes: u64,
    /// Most time one remote fetch may take.
    pub remote_timeout: Duration,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        Self {
            allow_remote: false,
            allow_private: false,
            root: None,
            max_remote_bytes: 64 << 20,
            remote_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Image,
    Video,
    #[cfg(feature = "pdf")]
    Pdf,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            #[cfg(feature = "pdf")]
            Kind::Pdf => "PDF",
        }
    }

    /// The media types a data URI of this kind may have, as a message shows them.
    fn media_types(self) -> &'static str {
        match self {
            Kind::Image => "image/*",
            Kind::Video => "video/*",
            #[cfg(feature = "pdf")]
            Kind::Pdf => "application/pdf",
        }
    }

    fn accepts(self, media_type: &str) -> bool {
        match self {
            Kind::Image => media_type.starts_with("image/"),
            Kind::Video => media_type.starts_with("video/"),
            #[cfg(feature = "pdf")]
            Kind::Pdf => media_type == "application/pdf",
        }
    }
}

/// Media bytes, or a file under the media root.
enum Media {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Reads media references into the library's sources. Video bytes are written to temporary
/// files (FFmpeg decodes files), kept alive in `temp_files` until the request is scored.
pub struct MediaReader<'a> {
    pub policy: &'a MediaPolicy,
    pub limits: &'a Limits,
    pub temp_files: Vec<TempPath>,
    /// Pixels of the request's images, sampled video frames and PDF pages so far.
    pixels: u64,
    /// PDF pages of the request so far.
    #[cfg(feature = "pdf")]
    pdf_pages: usize,
}

impl<'a> MediaReader<'a> {
    pub fn new(policy: &'a MediaPolicy, limits: &'a Limits) -> Self {
        Self {
            policy,
            limits,
            temp_files: Vec::new(),
            pixels: 0,
            #[cfg(feature = "pdf")]
            pdf_pages: 0,
        }
    }

    /// An image, its size read from its header and held to the limits before it is queued.
    /// A header that cannot be read is left for the library's decoder to name.
    pub async fn image(&mut self, reference: &str, at: &str) -> Result<ImageSource, ApiError> {
        let media = self.read(reference, Kind::Image, at).await?;
        let size = match &media {
            Media::Bytes(bytes) => imagesize::blob_size(bytes),
            Media::File(path) => imagesize::size(path),
        };
        if let Ok(size) = size {
            let pixels = (size.width as u64).saturating_mul(size.height as u64);
            if pixels > self.limits.max_image_pixels {
                return Err(ApiError::too_large(format!(
                    "{at}: an image of {}x{} = {pixels} pixels, over the server's limit of {} \
                     pixels per image (--max-image-pixels); downscale it",
                    size.width, size.height, self.limits.max_image_pixels
                )));
            }
            self.count_pixels(pixels, at)?;
        }
        Ok(match media {
            Media::Bytes(bytes) => ImageSource::Bytes(bytes),
            Media::File(path) => ImageSource::Path(path),
        })
    }

    /// Adds to the request's pixels, refusing the request past `--max-request-pixels`.
    fn count_pixels(&mut self, pixels: u64, at: &str) -> Result<(), ApiError> {
        self.pixels = self.pixels.saturating_add(pixels);
        let limit = self.limits.max_request_pixels;
        if self.pixels > limit {
            return Err(ApiError::too_large(format!(
                "{at}: the request's images, video frames and PDF pages add up to over {limit} \
                 pixels, the server's limit per request (--max-request-pixels); send fewer or \
                 smaller images per request, fewer video frames (max_frames) or fewer PDF pages \
                 (\"pages\")"
            )));
        }
        Ok(())
    }

    /// A video, its container checked (MP4, MOV, WebM or Matroska), its frame size and the
    /// frames `sampling` would take held to the limits, all before anything is decoded.
    pub async fn video(
        &mut self,
        reference: &str,
        sampling: &VideoSampling,
        at: &str,
    ) -> Result<Video, ApiError> {
        if sampling.max_frames > self.limits.max_video_frames {
            return Err(ApiError::too_large(format!(
                "{at}: max_frames {} is over the server's limit of {} frames per video \
                 (--max-video-frames); ask for fewer frames",
                sampling.max_frames, self.limits.max_video_frames
            )));
        }
        let media = self.read(reference, Kind::Video, at).await?;
        let probed = match &media {
            Media::Bytes(bytes) => sift::video::probe_container(Cursor::new(bytes.as_slice())),
            Media::File(path) => std::fs::File::open(path)
                .map_err(|e| ApiError::bad_request(format!("{at}: cannot read the video: {e}")))
                .map(sift::video::probe_container)?,
        };
        let info = probed.map_err(|e| {
            ApiError::unsupported_media(format!(
                "{at}: the video cannot be read: {e}. The server takes MP4, MOV, WebM and \
                 Matroska files"
            ))
        })?;
        let pixels = u64::from(info.width) * u64::from(info.height);
        if pixels > self.limits.max_image_pixels {
            return Err(ApiError::too_large(format!(
                "{at}: the video's frames are {}x{} = {pixels} pixels, over the server's limit of \
                 {} pixels per frame (--max-image-pixels); downscale the video",
                info.width, info.height, self.limits.max_image_pixels
            )));
        }
        let frames = info.frame_times.len().min(sampling.max_frames) as u64;
        self.count_pixels(pixels.saturating_mul(frames), at)?;
        let path = match media {
            Media::File(path) => path,
            Media::Bytes(bytes) => {
                let mut file = tempfile::Builder::new()
                    .prefix("sift-video-")
                    .tempfile()
                    .map_err(|e| internal(format!("cannot store the video for decoding: {e}")))?;
                std::io::Write::write_all(&mut file, &bytes)
                    .map_err(|e| internal(format!("cannot store the video for decoding: {e}")))?;
                let path = file.into_temp_path();
                let kept = path.to_path_buf();
                self.temp_files.push(path);
                kept
            }
        };
        Ok(Video {
            source: VideoSource::Path(path),
            fps: Some(sampling.fps),
            max_frames: Some(sampling.max_frames),
        })
    }

    /// The pages of a PDF (`pages` selects them, e.g. "1-5,9"; every page without it): a data
    /// URI of type application/pdf, or a path under the media root, refused unless it starts as
    /// a PDF does. Each page counts against the request's pixels at `page_pixels` (a page is
    /// rendered at the model's budget), and the request may hold at most
    /// `sift::pdf::MAX_REQUEST_PDF_PAGES` pages. A file that opens but cannot be used (damaged,
    /// password-protected, a range past its end) is one page source holding the error, so that
    /// it is that document's error; each page is rendered, within the library's PDF bounds,
    /// when its document is scored.
    #[cfg(feature = "pdf")]
    pub async fn pdf(
        &mut self,
        reference: &str,
        pages: Option<&str>,
        page_pixels: u64,
        at: &str,
    ) -> Result<Vec<sift::pdf::PdfPage>, ApiError> {
        use sift::pdf::{MAX_REQUEST_PDF_PAGES, PdfOptions, PdfPage, looks_like_pdf};
        let media = self.read(reference, Kind::Pdf, at).await?;
        let not_pdf = || {
            ApiError::unsupported_media(format!(
                "{at}: the \"pdf\" file is not a PDF (it does not start with %PDF-); send a PDF \
                 file, and an image as \"image\""
            ))
        };
        let options = PdfOptions::default();
        // A data URI's text stands for the file in messages, without its data.
        let shown = match reference.trim().split_once(',') {
            Some((header, _)) if reference.trim().starts_with("data:") => format!("{header},…"),
            _ => reference.trim().to_string(),
        };
        let pages = match media {
            Media::Bytes(bytes) => {
                if !looks_like_pdf(&bytes) {
                    return Err(not_pdf());
                }
                PdfPage::pages_of_bytes(bytes, &shown, pages, &options)
            }
            Media::File(path) => {
                let mut head = Vec::with_capacity(1024);
                std::fs::File::open(&path)
                    .and_then(|file| file.take(1024).read_to_end(&mut head))
                    .map_err(|e| internal(format!("{at}: the PDF could not be read: {e}")))?;
                if !looks_like_pdf(&head) {
                    return Err(not_pdf());
                }
                PdfPage::pages_of(&path, &shown, pages, &options)
            }
        };
        let selected = pages.iter().filter(|page| page.page.is_some()).count();
        self.pdf_pages += selected;
        if self.pdf_pages > MAX_REQUEST_PDF_PAGES {
            return Err(ApiError::too_large(format!(
                "{at}: the request's PDFs add up to over {MAX_REQUEST_PDF_PAGES} pages, the \
                 limit per request; choose fewer with \"pages\" (e.g. \"1-10\"), or split the \
                 request"
            )));
        }
        self.count_pixels(page_pixels.saturating_mul(selected as u64), at)?;
        Ok(pages)
    }

    async fn read(&self, reference: &str, kind: Kind, at: &str) -> Result<Media, ApiError> {
        let reference = reference.trim();
        if let Some(data) = reference.strip_prefix("data:") {
            return data_uri(data, kind, at).map(Media::Bytes);
        }
        let lower = reference.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if !self.policy.allow_remote {
                return Err(ApiError::forbidden(format!(
                    "{at}: remote {} URLs are off on this server; send the file as a data URI \
                     (data:{};base64,...), or start the server with --allow-remote-media",
                    kind.name(),
                    kind.media_types()
                )));
            }
            let policy = self.policy.clone();
            let url = reference.to_string();
            let place = at.to_string();
            return tokio::task::spawn_blocking(move || fetch(&url, &policy, &place))
                .await
                .map_err(|e| internal(format!("{at}: the fetch stopped: {e}")))?
                .map(Media::Bytes);
        }
        let path = reference.strip_prefix("file://").unwrap_or(reference);
        self.local(Path::new(path), kind, at).map(Media::File)
    }

    /// A path inside the media root, after resolving `..` and links. A path that leads out of
    /// the root is refused before the file system is asked, so that the answer is the same
    /// whether something exists there or not; no answer shows where the root is.
    fn local(&self, path: &Path, kind: Kind, at: &str) -> Result<PathBuf, ApiError> {
        let Some(root) = &self.policy.root else {
            return Err(ApiError::forbidden(format!(
                "{at}: \"{}\" is a local path, and this server reads no local files; send the \
                 {} as a data URI, or start the server with --media-root DIR",
                path.display(),
                kind.name()
            )));
        };
        let outside = || {
            ApiError::forbidden(format!(
                "{at}: \"{}\" is outside the media root; give a path relative to the media \
                 root, inside it",
                path.display()
            ))
        };
        // `root` is canonical (made so at start-up); `..` is resolved here by name, then links
        // by canonicalize, whose answer is checked again.
        let mut joined = PathBuf::new();
        for component in root.join(path).components() {
            match component {
                Component::ParentDir => {
                    joined.pop();
                }
                Component::CurDir => {}
                other => joined.push(other),
            }
        }
        if !joined.starts_with(root) {
            return Err(outside());
        }
        let missing = || {
            ApiError::bad_request(format!(
                "{at}: there is no {} file \"{}\" in the media root; give the path of a file \
                 inside it, relative to it",
                kind.name(),
                path.display()
            ))
        };
        let resolved = joined.canonicalize().map_err(|_| missing())?;
        if !resolved.starts_with(root) {
            return Err(outside());
        }
        if !resolved.is_file() {
            return Err(missing());
        }
        Ok(resolved)
    }
}

/// A failure of the server's own (a temporary file, a stopped fetch): 500.
fn internal(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// The bytes of a data URI's payload (after `data:`), base64 only, of a media type `kind`
/// accepts.
fn data_uri(data: &str, kind: Kind, at: &str) -> Result<Vec<u8>, ApiError> {
    let Some((header, payload)) = data.split_once(',') else {
        return Err(ApiError::bad_request(format!(
            "{at}: the data URI has no ',' before its data; write data:<type>;base64,<data>"
        )));
    };
    let mut parts = header.split(';');
    let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !parts.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(ApiError::bad_request(format!(
            "{at}: the data URI is not base64; write data:<type>;base64,<data>"
        )));
    }
    let generic = media_type.is_empty() || media_type == "application/octet-stream";
    if !generic && !kind.accepts(&media_type) {
        return Err(ApiError::unsupported_media(format!(
            "{at}: a data URI of type {media_type} where {} {} is expected; send a file of type {}",
            if kind.name() == "image" { "an" } else { "a" },
            kind.name(),
            kind.media_types()
        )));
    }
    // Some clients wrap long base64 lines.
    let compact: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{at}: the data URI's base64 is invalid ({e}); encode the file with standard \
                 base64"
            ))
        })
}

/// Fetches a remote file, within the policy's size and time limits.
fn fetch(url: &str, policy: &MediaPolicy, at: &str) -> Result<Vec<u8>, ApiError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(policy.remote_timeout)
        .resolver(PublicOnly {
            allow_private: policy.allow_private,
        })
        .build();
    let failed = |detail: String| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!("{at}: fetching {url} failed: {detail}"),
        )
    };
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => failed(format!("the server answered {code}")),
        ureq::Error::Transport(t) => {
            if t.to_string().contains(PRIVATE_REFUSED) {
                ApiError::forbidden(format!(
                    "{at}: {url} resolves only to addresses that are not public (loopback, \
                     private, link-local or another special-purpose block), which this server \
                     does not fetch from; start it with --allow-private-media to allow that"
                ))
            } else {
                failed(t.to_string())
            }
        }
    })?;
    let limit = policy.max_remote_bytes;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(ApiError::too_large(format!(
            "{at}: {url} is over the limit of {limit} bytes for a remote file"
        )));
    }
    Ok(bytes)
}

const PRIVATE_REFUSED: &str = "resolves only to addresses that are not public";

/// Resolves host names and drops loopback, private, link-local and other non-public addresses,
/// so a fetch (redirects included) cannot reach the server's own network.
struct PublicOnly {
    allow_private: bool,
}

impl ureq::Resolver for PublicOnly {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        let allowed: Vec<SocketAddr> = all
            .into_iter()
            .filter(|a| self.allow_private || is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{netloc} {PRIVATE_REFUSED}"),
            ));
        }
        Ok(allowed)
    }
}

/// Whether a fetch may go to `ip`: a unicast address that IANA's special-purpose registries
/// mark globally reachable, or that no entry of theirs covers (the most specific entry
/// decides). IPv4 addresses written in IPv6 (mapped, compatible, NAT64) are judged by the IPv4
/// address they carry, since that is where the packets go.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !v4.is_multicast() && globally_reachable(u32::from(v4).into(), 32, IPV4_SPECIAL)
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let carried_v4 = match bits >> 32 {
                // ::ffff:a.b.c.d (mapped), 64:ff9b::a.b.c.d (NAT64's well-known prefix).
                0xffff | 0x0064_ff9b_0000_0000_0000_0000 => Some(bits as u32),
                // ::a.b.c.d (compatible, deprecated); :: and ::1 are themselves in the table.
                0 if bits > 1 => Some(bits as u32),
                _ => None,
            };
            match carried_v4 {
                Some(v4) => is_public(IpAddr::V4(v4.into())),
                None => !v6.is_multicast() && globally_reachable(bits, 128, IPV6_SPECIAL),
            }
        }
    }
}

/// Whether the most specific entry of `table` covering `address` (its top `width` bits used)
/// says globally reachable; true where none covers it.
fn globally_reachable(address: u128, width: u32, table: &[(u128, u32, bool)]) -> bool {
    table
        .iter()
        .filter(|&&(net, prefix, _)| {
            let shift = width - prefix;
            prefix == 0 || (address >> shift) == (net >> shift)
        })
        .max_by_key(|&&(_, prefix, _)| prefix)
        .is_none_or(|&(_, _, global)| global)
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u128 {
    u32::from_be_bytes([a, b, c, d]) as u128
}

/// IANA IPv4 Special-Purpose Address Registry (iana-ipv4-special-registry, as of 2025): block,
/// prefix length, "Globally Reachable". The deprecated 6to4 relay block (192.88.99.0/24, "N/A")
/// and the reserved 240.0.0.0/4 are not reachable for a fetch.
const IPV4_SPECIAL: &[(u128, u32, bool)] = &[
    (v4(0, 0, 0, 0), 8, false),          // "This network", RFC 791
    (v4(10, 0, 0, 0), 8, false),         // Private-Use, RFC 1918
    (v4(100, 64, 0, 0), 10, false),      // Shared Address Space (carrier NAT), RFC 6598
    (v4(127, 0, 0, 0), 8, false),        // Loopback, RFC 1122
    (v4(169, 254, 0, 0), 16, false),     // Link Local, RFC 3927
    (v4(172, 16, 0, 0), 12, false),      // Private-Use, RFC 1918
    (v4(192, 0, 0, 0), 24, false),       // IETF Protocol Assignments, RFC 6890
    (v4(192, 0, 0, 9), 32, true),        // Port Control Protocol Anycast, RFC 7723
    (v4(192, 0, 0, 10), 32, true),       // Traversal Using Relays around NAT Anycast, RFC 8155
    (v4(192, 0, 2, 0), 24, false),       // Documentation (TEST-NET-1), RFC 5737
    (v4(192, 31, 196, 0), 24, true),     // AS112-v4, RFC 7535
    (v4(192, 52, 193, 0), 24, true),     // AMT, RFC 7450
    (v4(192, 88, 99, 0), 24, false),     // Deprecated 6to4 Relay Anycast, RFC 7526
    (v4(192, 168, 0, 0), 16, false),     // Private-Use, RFC 1918
    (v4(192, 175, 48, 0), 24, true),     // Direct Delegation AS112 Service, RFC 7534
    (v4(198, 18, 0, 0), 15, false),      // Benchmarking, RFC 2544
    (v4(198, 51, 100, 0), 24, false),    // Documentation (TEST-NET-2), RFC 5737
    (v4(203, 0, 113, 0), 24, false),     // Documentation (TEST-NET-3), RFC 5737
    (v4(240, 0, 0, 0), 4, false),        // Reserved, RFC 1112
    (v4(255, 255, 255, 255), 32, false), // Limited Broadcast, RFC 919
];

/// IANA IPv6 Special-Purpose Address Registry (iana-ipv6-special-registry, as of 2025), as
/// above. Teredo (2001::/32) and 6to4 (2002::/16) are "N/A" there, tunnels to addresses the
/// server cannot check: not reachable for a fetch; so are the deprecated site-local fec0::/10
/// and the IPv4-compatible ::/96 that RFC 4291 deprecated (judged by their IPv4 address above).
const IPV6_SPECIAL: &[(u128, u32, bool)] = &[
    (0, 128, false),                                        // Unspecified, RFC 4291
    (1, 128, false),                                        // Loopback, RFC 4291
    (0xffff_0000_0000, 96, false),                          // IPv4-mapped, RFC 4291
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96, true),  // IPv4-IPv6 Translat., RFC 6052
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, false), // Local-Use IPv4/IPv6, RFC 8215
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, false), // Discard-Only, RFC 6666
    (0x0100_0000_0000_0001_0000_0000_0000_0000, 64, false), // Dummy IPv6 Prefix, RFC 9780
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, false), // IETF Protocol Assignments, RFC 2928
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 32, false), // TEREDO, RFC 4380 (N/A)
    (0x2001_0001_0000_0000_0000_0000_0000_0001, 128, true), // PCP Anycast, RFC 7723
    (0x2001_0001_0000_0000_0000_0000_0000_0002, 128, true), // TURN Anycast, RFC 8155
    (0x2001_0001_0000_0000_0000_0000_0000_0003, 128, true), // DNS-SD SRP Anycast, RFC 9665
    (0x2001_0002_0000_0000_0000_0000_0000_0000, 48, false), // Benchmarking, RFC 5180
    (0x2001_0003_0000_0000_0000_0000_0000_0000, 32, true),  // AMT, RFC 7450
    (0x2001_0004_0112_0000_0000_0000_0000_0000, 48, true),  // AS112-v6, RFC 7535
    (0x2001_0010_0000_0000_0000_0000_0000_0000, 28, false), // Deprecated ORCHID, RFC 4843
    (0x2001_0020_0000_0000_0000_0000_0000_0000, 28, true),  // ORCHIDv2, RFC 7343
    (0x2001_0030_0000_0000_0000_0000_0000_0000, 28, true),  // Drone Remote ID, RFC 9374
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, false), // Documentation, RFC 3849
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16, false), // 6to4, RFC 3056 (N/A)
    (0x2620_004f_8000_0000_0000_0000_0000_0000, 48, true),  // Direct Delegation AS112, RFC 7534
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20, false), // Documentation, RFC 9637
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16, false), // Segment Routing SIDs, RFC 9602
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, false),  // Unique-Local, RFC 4193
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, false), // Link-Local Unicast, RFC 4291
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, false), // Site-local, deprecated by RFC 3879
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1.1.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "224.0.0.1",
            "2001:db8::1",
            "2001:2::1",
            "2001::1",
            "2002:7f00:1::1",
            "3fff::1",
            "5f00::1",
            "100::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::1.1.1.1",
            "192.0.0.9",
            "198.20.0.1",
            "2001:1::1",
            "2001:4:112::1",
            "2620:4f:8000::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn data_uris_are_base64_of_the_expected_kind() {
        assert_eq!(
            data_uri("image/png;base64,aGk=", Kind::Image, "x").unwrap(),
            b"hi"
        );
        assert_eq!(data_uri(";base64,aG k=", Kind::Image, "x").unwrap(), b"hi");
        let status = |r: Result<Vec<u8>, ApiError>| r.unwrap_err().status.as_u16();
        assert_eq!(status(data_uri("image/png,hi", Kind::Image, "x")), 400);
        assert_eq!(
            status(data_uri("image/png;base64,@@", Kind::Image, "x")),
            400
        );
        assert_eq!(
            status(data_uri("video/mp4;base64,aGk=", Kind::Image, "x")),
            415
        );
        assert_eq!(
            status(data_uri("application/pdf;base64,aGk=", Kind::Video, "x")),
            415
        );
    }
}
