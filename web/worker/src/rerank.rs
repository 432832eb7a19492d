//! A rerank job: the query read once, then each document read and scored in turn, its result
//! and the ranking so far sent to the page as soon as it is known. Errors reach the page in its
//! own words (`explain`); a query that cannot be read is said once, and the documents are then
//! marked as not scored instead of each repeating why.

use sift::{
    Content, DocError, ImageSource, ModelError, Request, Reranker, Video, VideoError,
    VideoSampling, VideoSource,
};
use sift_web_protocol::{FromWorker, Media, RenderSettings, RerankJob, Side, Stage, VideoSample};

use crate::explain::{NOT_SCORED, Names, doc_error, video_error};
use crate::media::{FrameInbox, probe, read_blob, sample_info};
use crate::reply::{Progress, post};

pub async fn run(reranker: &Reranker, render: &RenderSettings, inbox: &FrameInbox, job: RerankJob) {
    let budget = Budget {
        render: render.clone(),
        sampling: VideoSampling {
            fps: job.fps,
            max_frames: job.max_frames,
        },
        max_tokens: reranker.options().max_visual_tokens,
        max_frame_pixels: reranker.options().image.max_decoded_pixels,
    };
    let query_names = Names::query(&job.query);
    let mut query_videos = Vec::new();
    let query = read_side(
        inbox,
        job.job,
        &job.query,
        query_names,
        &budget,
        &mut query_videos,
    )
    .await
    .map(|query| Request {
        instruction: job.instruction.clone(),
        query,
        fps: Some(job.fps),
        max_frames: Some(job.max_frames),
        ..Request::default()
    });
    if !query_videos.is_empty() {
        post(&FromWorker::QueryVideos {
            job: job.job,
            videos: query_videos,
        });
    }
    let mut query = match query {
        Ok(request) => Some(request),
        Err(message) => {
            post(&FromWorker::QueryFailed {
                job: job.job,
                message,
            });
            None
        }
    };
    let prepared = query
        .as_ref()
        .map(|request| reranker.prepare_query(request));
    // A query the library cannot read (its pixels, its limits) is said once, by the query, and
    // no document is read.
    if let Some(error) = prepared.as_ref().and_then(|p| p.error()) {
        post(&FromWorker::QueryFailed {
            job: job.job,
            message: doc_error(error, Names::query(&job.query)),
        });
        query = None;
    }

    let total = job.documents.len();
    let mut scores: Vec<Option<Result<f32, String>>> = vec![None; total];
    let mut progress = Progress::new(Stage::Scoring, total as u64);
    // Documents read and waiting to be scored together; their indices and how their videos
    // were sampled.
    let mut group: Vec<Content> = Vec::new();
    let mut group_info: Vec<(usize, Vec<VideoSample>)> = Vec::new();
    for (index, side) in job.documents.iter().enumerate() {
        let names = Names::document(side);
        let mut videos = Vec::new();
        let read = match &query {
            Some(_) => read_side(inbox, job.job, side, names, &budget, &mut videos).await,
            // The query failed: nothing more is read.
            None => Err(NOT_SCORED.to_string()),
        };
        match read {
            Ok(document) => {
                group.push(document);
                group_info.push((index, videos));
            }
            Err(e) => {
                scores[index] = Some(Err(e));
                post_scored(job.job, index, &scores, videos);
                progress.add(1);
            }
        }
        let due = group.len() == GROUP_DOCUMENTS || (index + 1 == total && !group.is_empty());
        let Some(prepared_query) = prepared.as_ref().filter(|_| due) else {
            continue;
        };
        let results = reranker.score_documents_async(prepared_query, &group).await;
        group.clear();
        let mut lost = None;
        for ((index, videos), result) in group_info.drain(..).zip(results) {
            let result = match result {
                Ok(scored) => Ok(scored.score),
                Err(e) => {
                    if let DocError::Model(ModelError::Gpu(detail)) = &e {
                        lost = Some(detail.clone());
                    }
                    Err(doc_error(&e, Names::document(&job.documents[index])))
                }
            };
            scores[index] = Some(result);
            post_scored(job.job, index, &scores, videos);
            progress.add(1);
        }
        if let Some(e) = lost {
            // A readback that fails means the device is gone: only a new worker, with a
            // new device, can go on.
            post(&FromWorker::Fatal(format!(
                "the GPU was lost while scoring ({e})"
            )));
            return;
        }
    }
    let scores: Vec<Result<f32, String>> = scores.into_iter().flatten().collect();
    post(&FromWorker::Done {
        job: job.job,
        results_json: with_pdf_pages(sift::results_json(&scores, None), &job.documents).to_string(),
    });
}

/// Each PDF page's result with its file and page, as `sift rerank` prints a request's
/// (`sift::request_results_json`).
fn with_pdf_pages(mut json: serde_json::Value, documents: &[Side]) -> serde_json::Value {
    if let Some(results) = json["results"].as_array_mut() {
        for result in results {
            let index = result["index"].as_u64().unwrap_or(u64::MAX) as usize;
            if let Some(pdf) = documents.get(index).and_then(|d| d.pdf.as_ref()) {
                result["pdf"] = pdf.media.name.clone().into();
                if let Some(page) = pdf.page {
                    result["page"] = page.into();
                }
            }
        }
    }
    json
}

/// Documents read before they are scored together: the library packs them into as few
/// forward passes as fit the GPU, and the page's ranking updates after each group.
const GROUP_DOCUMENTS: usize = 16;

/// Sends document `index`'s result and the ranking so far to the page.
fn post_scored(
    job: u32,
    index: usize,
    scores: &[Option<Result<f32, String>>],
    videos: Vec<VideoSample>,
) {
    post(&FromWorker::Scored {
        job,
        index,
        result: scores[index].clone().expect("just scored"),
        order: ranking_so_far(scores),
        videos,
    });
}

/// The documents scored so far, best first, failures last.
fn ranking_so_far(scores: &[Option<Result<f32, String>>]) -> Vec<usize> {
    let scored: Vec<(usize, &Result<f32, String>)> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
        .collect();
    let results: Vec<Result<f32, &String>> =
        scored.iter().map(|(_, s)| s.as_ref().copied()).collect();
    sift::rank(&results)
        .into_iter()
        .map(|k| scored[k].0)
        .collect()
}

/// How a request's PDF pages are drawn and its videos sampled, and the most image and video
/// tokens a pair may hold (the loaded reranker's limit).
struct Budget {
    render: RenderSettings,
    sampling: VideoSampling,
    max_tokens: usize,
    /// Most pixels of one frame, as for image files (`ImageOptions::max_decoded_pixels`).
    max_frame_pixels: u64,
}

/// A side's content: texts as typed, images as their bytes, videos sampled from their
/// container and captured by the page; or why not, in the page's words. `videos` collects
/// how each video was sampled.
async fn read_side(
    inbox: &FrameInbox,
    job: u32,
    side: &Side,
    names: Names<'_>,
    budget: &Budget,
    videos: &mut Vec<VideoSample>,
) -> Result<Content, String> {
    let mut content = Content {
        texts: side.texts.clone(),
        ..Content::default()
    };
    for (index, media) in side.images.iter().enumerate() {
        let bytes = read_blob(&media.file).map_err(|detail| {
            format!(
                "{} could not be read ({detail}). It may have been moved or changed since it \
                 was added: remove it and add it again.",
                names.image(index)
            )
        })?;
        content.images.push(ImageSource::Bytes(bytes));
    }
    if let Some(pdf) = &side.pdf {
        let page = inbox.page(job, pdf, &budget.render).await?;
        content.images.push(ImageSource::Pixels(page));
    }
    for (index, media) in side.videos.iter().enumerate() {
        let frames = read_video(inbox, job, media, budget, videos)
            .await
            .map_err(|error| video_error(&names.video(index), &error))?;
        content
            .videos
            .push(Video::from(VideoSource::Sampled(frames)));
    }
    Ok(content)
}

async fn read_video(
    inbox: &FrameInbox,
    job: u32,
    media: &Media,
    budget: &Budget,
    videos: &mut Vec<VideoSample>,
) -> Result<sift::VideoFrames, VideoError> {
    let info = probe(&media.file)?;
    sift::video::check_frame_pixels(info.width, info.height, budget.max_frame_pixels)?;
    let plan = sift::video::SamplePlan::new(info.frame_times.len(), info.fps, &budget.sampling)?;
    // Refuse an oversized sample before the page seeks and draws a single frame.
    sift::video::check_sample_tokens(
        info.height,
        info.width,
        plan.indices.len(),
        budget.max_tokens,
    )?;
    let frames = inbox.capture(job, media, &info, plan).await?;
    videos.push(sample_info(media, &info, &frames));
    Ok(frames)
}
