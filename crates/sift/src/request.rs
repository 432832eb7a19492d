//! A rerank request, in the shape of the reference's `process(inputs)`:
//! `{"instruction": "...", "query": {"text": "...", "image": "a.jpg"}, "documents": [...],
//! "fps": 1.0, "max_frames": 64}`, where `text`, `image` and `video` take one value or a list.
//! A video is a file path, `{"path": "a.mp4", "fps": 2.0, "max_frames": 16}` (its own sampling),
//! or `{"frames": ["f0.jpg", "f1.jpg", ...]}` (a video given as frame images).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sift_inputs::RgbImage;
use sift_inputs::video::{VideoFrames, VideoSampling};

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Path(PathBuf),
    Bytes(Vec<u8>),
    Pixels(RgbImage),
    /// A PDF's page, rendered when its document is read (feature `pdf`).
    #[cfg(feature = "pdf")]
    PdfPage(crate::pdf::PdfPage),
}

/// Where a video comes from.
#[derive(Debug, Clone)]
pub enum VideoSource {
    /// A video file, decoded with FFmpeg (the `video` feature).
    Path(PathBuf),
    /// The frames of a video as images, in order.
    Frames(Vec<ImageSource>),
    /// A video file's frames, sampled and decoded by the caller (a browser's `<video>`
    /// element) as [`VideoSampling`] and the file's container say (`SamplePlan`), and resized
    /// by a `FrameCollector`: scored as the file itself would be.
    Sampled(VideoFrames),
}

/// A video and, optionally, its own sampling (else the request's, else the reference's).
#[derive(Debug, Clone)]
pub struct Video {
    pub source: VideoSource,
    /// Frames sampled per second of a video file.
    pub fps: Option<f64>,
    /// Most frames sampled from a file, or kept from a frame list (default 64).
    pub max_frames: Option<usize>,
}

impl Video {
    /// How this video is sampled if it is a file: its own settings, else `request`'s.
    pub fn sampling(&self, request: &VideoSampling) -> VideoSampling {
        VideoSampling {
            fps: self.fps.unwrap_or(request.fps),
            max_frames: self.max_frames.unwrap_or(request.max_frames),
        }
    }
}

impl From<VideoSource> for Video {
    fn from(source: VideoSource) -> Self {
        Video {
            source,
            fps: None,
            max_frames: None,
        }
    }
}

/// One side of a pair: any mix of texts, images and videos.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub texts: Vec<String>,
    pub images: Vec<ImageSource>,
    pub videos: Vec<Video>,
}

impl Content {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            texts: vec![text.into()],
            ..Self::default()
        }
    }

    pub fn image(source: ImageSource) -> Self {
        Self {
            images: vec![source],
            ..Self::default()
        }
    }

    pub fn video(video: impl Into<Video>) -> Self {
        Self {
            videos: vec![video.into()],
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `None` uses the reranker's default instruction.
    pub instruction: Option<String>,
    pub query: Content,
    pub documents: Vec<Content>,
    /// Frames sampled per second of a video file, for files without their own
    /// (reference default 1.0).
    pub fps: Option<f64>,
    /// Most frames sampled from a video file, for files without their own (reference default
    /// 64). As in the reference, frame lists are not affected: they keep up to 64 frames, or
    /// their own `max_frames`.
    pub max_frames: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request is not valid JSON for a rerank request: {0}")]
    Json(String),
    #[error("the request has no documents: give at least one in \"documents\"")]
    NoDocuments,
    #[error("{0}")]
    Pdf(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(v) => vec![v],
            Self::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentJson {
    text: Option<OneOrMany<String>>,
    image: Option<OneOrMany<String>>,
    video: Option<OneOrMany<VideoJson>>,
    /// A PDF whose pages are each a document: documents only, alone.
    pdf: Option<String>,
    /// The PDF's pages, 1-based ("1-5,9"); every page without it.
    pages: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum VideoJson {
    Path(String),
    File(VideoFileJson),
    Frames(VideoFramesJson),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoFileJson {
    path: String,
    fps: Option<f64>,
    max_frames: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoFramesJson {
    frames: Vec<String>,
    max_frames: Option<usize>,
}

impl VideoJson {
    fn into_video(self, base: &Path) -> Video {
        match self {
            Self::Path(path) => VideoSource::Path(base.join(path)).into(),
            Self::File(file) => Video {
                source: VideoSource::Path(base.join(file.path)),
                fps: file.fps,
                max_frames: file.max_frames,
            },
            Self::Frames(list) => Video {
                source: VideoSource::Frames(
                    list.frames
                        .into_iter()
                        .map(|f| ImageSource::Path(base.join(f)))
                        .collect(),
                ),
                fps: None,
                max_frames: list.max_frames,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    instruction: Option<String>,
    query: ContentJson,
    documents: Vec<ContentJson>,
    fps: Option<f64>,
    max_frames: Option<usize>,
}

impl<T> OneOrMany<T> {
    /// The values of an optional field: none, one, or the list.
    fn list(field: Option<Self>) -> Vec<T> {
        field.map(Self::into_vec).unwrap_or_default()
    }
}

impl ContentJson {
    /// A document: itself, or one per page of its PDF.
    fn into_documents(self, base: &Path) -> Result<Vec<Content>, RequestError> {
        let Some(pdf) = self.pdf.clone() else {
            if self.pages.is_some() {
                return Err(RequestError::Pdf(
                    "\"pages\" belongs to a PDF document: give \"pdf\" with it".into(),
                ));
            }
            return Ok(vec![self.into_content(base)]);
        };
        if self.text.is_some() || self.image.is_some() || self.video.is_some() {
            return Err(RequestError::Pdf(format!(
                "the document with \"pdf\": \"{pdf}\" also has text, images or videos; a PDF \
                 document holds only \"pdf\" and \"pages\" (each page is ranked as a document \
                 of its own), so give the others as documents of their own"
            )));
        }
        pdf_pages(&base.join(&pdf), &pdf, self.pages.as_deref())
    }

    fn into_content(self, base: &Path) -> Content {
        let paths = |field| {
            OneOrMany::list(field)
                .into_iter()
                .map(|p: String| base.join(p))
        };
        Content {
            texts: OneOrMany::list(self.text),
            images: paths(self.image).map(ImageSource::Path).collect(),
            videos: OneOrMany::list(self.video)
                .into_iter()
                .map(|v| v.into_video(base))
                .collect(),
        }
    }
}

/// The documents of a PDF: one per selected page (a file that cannot be used: one document
/// holding its error).
#[cfg(feature = "pdf")]
fn pdf_pages(path: &Path, name: &str, pages: Option<&str>) -> Result<Vec<Content>, RequestError> {
    let options = sift_inputs::pdf::PdfOptions::default();
    Ok(crate::pdf::PdfPage::pages_of(path, name, pages, &options)
        .into_iter()
        .map(|page| Content::image(ImageSource::PdfPage(page)))
        .collect())
}

#[cfg(not(feature = "pdf"))]
fn pdf_pages(_: &Path, name: &str, _: Option<&str>) -> Result<Vec<Content>, RequestError> {
    Err(RequestError::Pdf(format!(
        "{name}: this build of sift reads no PDFs; rebuild it with the `pdf` feature (the \
         `sift` command has it by default)"
    )))
}

impl Content {
    /// The PDF page this document is, if it is one (its file and page, for its result).
    #[cfg(feature = "pdf")]
    pub fn pdf_page(&self) -> Option<&crate::pdf::PdfPage> {
        match (
            self.texts.is_empty(),
            self.videos.is_empty(),
            self.images.as_slice(),
        ) {
            (true, true, [ImageSource::PdfPage(page)]) => Some(page),
            _ => None,
        }
    }
}

impl Request {
    /// The sampling of video files without their own: the request's, else the reference's
    /// defaults.
    pub fn video_sampling(&self) -> VideoSampling {
        let default = VideoSampling::default();
        VideoSampling {
            fps: self.fps.unwrap_or(default.fps),
            max_frames: self.max_frames.unwrap_or(default.max_frames),
        }
    }

    /// Parses a JSON request; relative image and video paths are taken from `base_dir`.
    pub fn from_json(json: &str, base_dir: &Path) -> Result<Self, RequestError> {
        let parsed: RequestJson =
            serde_json::from_str(json).map_err(|e| RequestError::Json(e.to_string()))?;
        if parsed.documents.is_empty() {
            return Err(RequestError::NoDocuments);
        }
        if parsed.query.pdf.is_some() || parsed.query.pages.is_some() {
            return Err(RequestError::Pdf(
                "the query cannot be a PDF: PDFs are documents, each page ranked against the \
                 query; give a page as an image (e.g. `pdftoppm -png -f 3 -l 3 file.pdf page`)"
                    .into(),
            ));
        }
        let mut documents = Vec::with_capacity(parsed.documents.len());
        #[cfg(feature = "pdf")]
        let mut pdf_pages = 0;
        for document in parsed.documents {
            let read = document.into_documents(base_dir)?;
            // Counted as each PDF is opened, so that no file is read past the limit.
            #[cfg(feature = "pdf")]
            {
                pdf_pages += read.iter().filter(|d| d.pdf_page().is_some()).count();
                let limit = crate::pdf::MAX_REQUEST_PDF_PAGES;
                if pdf_pages > limit {
                    return Err(RequestError::Pdf(format!(
                        "the request's PDFs give over {limit} pages, the limit per request; \
                         choose pages with \"pages\" (e.g. \"1-20\"), or split the request"
                    )));
                }
            }
            documents.extend(read);
        }
        Ok(Self {
            instruction: parsed.instruction,
            query: parsed.query.into_content(base_dir),
            documents,
            fps: parsed.fps,
            max_frames: parsed.max_frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_or_a_list_and_paths_relative_to_the_request() {
        let json = r#"{"query": {"text": "q", "image": "a.jpg"},
                       "documents": [{"text": ["x", "y"]}, {"image": ["b.png", "/abs/c.jpg"]}]}"#;
        let r = Request::from_json(json, Path::new("/req")).unwrap();
        assert_eq!(r.query.texts, ["q"]);
        assert!(matches!(&r.query.images[0], ImageSource::Path(p) if p == Path::new("/req/a.jpg")));
        assert_eq!(r.documents[0].texts, ["x", "y"]);
        assert!(
            matches!(&r.documents[1].images[1], ImageSource::Path(p) if p == Path::new("/abs/c.jpg"))
        );
    }

    #[test]
    fn videos_are_paths_files_with_sampling_or_frame_lists() {
        let json = r#"{"query": {"video": "q.mp4"}, "fps": 2.0,
                       "documents": [{"video": [{"path": "d.webm", "fps": 0.5, "max_frames": 8},
                                                {"frames": ["f0.png", "f1.png"]}]}]}"#;
        let r = Request::from_json(json, Path::new("/req")).unwrap();
        assert_eq!(r.fps, Some(2.0));
        let q = &r.query.videos[0];
        assert!(matches!(&q.source, VideoSource::Path(p) if p == Path::new("/req/q.mp4")));
        assert_eq!((q.fps, q.max_frames), (None, None));
        let d = &r.documents[0].videos;
        assert!(matches!(&d[0].source, VideoSource::Path(p) if p == Path::new("/req/d.webm")));
        assert_eq!((d[0].fps, d[0].max_frames), (Some(0.5), Some(8)));
        assert!(matches!(&d[1].source, VideoSource::Frames(f) if f.len() == 2));
    }

    #[test]
    fn malformed_requests_are_refused_with_the_reason() {
        let err = Request::from_json(r#"{"query": {}, "documents": []}"#, Path::new("."));
        assert!(matches!(err, Err(RequestError::NoDocuments)));
        let err = Request::from_json(
            r#"{"query": {"txt": "q"}, "documents": [{}]}"#,
            Path::new("."),
        );
        assert!(err.unwrap_err().to_string().contains("unknown field `txt`"));
    }
}
