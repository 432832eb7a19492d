//! Images and videos named in a request: data URIs always; paths only inside `--media-root`;
//! remote URLs only with `--allow-remote-media`, never to loopback or private addresses unless
//! `--allow-private-media`, and within a size and time limit.

use std::io::{Cursor, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
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
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
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
}

impl MediaReader<'_> {
    pub async fn image(&mut self, reference: &str, at: &str) -> Result<ImageSource, ApiError> {
        Ok(match self.read(reference, Kind::Image, at).await? {
            Media::Bytes(bytes) => ImageSource::Bytes(bytes),
            Media::File(path) => ImageSource::Path(path),
        })
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
                     (data:{}/...;base64,...), or start the server with --allow-remote-media",
                    kind.name(),
                    kind.name()
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

    /// A path inside the media root, after resolving `..` and links.
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
                "{at}: \"{}\" is outside the media root {}; give a path inside it",
                path.display(),
                root.display()
            ))
        };
        let joined = root.join(path);
        let resolved = joined.canonicalize().map_err(|e| {
            ApiError::bad_request(format!(
                "{at}: cannot open \"{}\" under the media root: {e}",
                path.display()
            ))
        })?;
        // `root` is canonical (checked at start-up), so this also catches links leading out.
        if !resolved.starts_with(root) {
            return Err(outside());
        }
        if !resolved.is_file() {
            return Err(ApiError::bad_request(format!(
                "{at}: \"{}\" is not a file",
                path.display()
            )));
        }
        Ok(resolved)
    }
}

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
    let expected = format!("{}/", kind.name());
    let generic = media_type.is_empty() || media_type == "application/octet-stream";
    if !generic && !media_type.starts_with(&expected) {
        return Err(ApiError::unsupported_media(format!(
            "{at}: a data URI of type {media_type} where an {} is expected; send an {}/* file",
            kind.name(),
            kind.name()
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
                    "{at}: {url} resolves to a loopback or private address, which this server \
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

const PRIVATE_REFUSED: &str = "resolves only to loopback or private addresses";

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

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

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
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
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
