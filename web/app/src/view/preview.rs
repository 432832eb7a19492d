//! A document as the lists show it: each of its parts, images as the model sees them, videos
//! as a poster frame, PDF pages as the renderer drew them for the model (once drawn; opened
//! larger on a click), and under each video how the last rerank sampled it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sift_web_protocol::VideoSample;

use super::context::Ctx;
use crate::state::{Doc, Item, MediaFile, Poster, excerpt, media_id};

/// A document's parts: texts' excerpts of `chars` characters, images, videos; `samples` tell
/// how its videos were sampled (by media id).
pub fn preview(doc: &Doc, chars: usize, samples: &[VideoSample]) -> AnyView {
    let parts = doc
        .parts
        .iter()
        .enumerate()
        .map(|(part, item)| {
            let id = media_id(doc.id, part);
            let sample = samples.iter().find(|s| s.video == id).cloned();
            part_view(doc.id, item, chars, sample)
        })
        .collect_view();
    view! { <div class="parts">{parts}</div> }.into_any()
}

/// One part of document `doc`, with its file name; a video with its sampling note.
fn part_view(doc: u32, item: &Item, chars: usize, sample: Option<VideoSample>) -> AnyView {
    let (media, name) = match item {
        Item::Text { text, name } => (
            view! { <p class="excerpt">{excerpt(text, chars)}</p> }.into_any(),
            name.clone(),
        ),
        Item::Image(m) => (image(m), Some(m.name.clone())),
        Item::Video(m) => (
            view! { <VideoThumb media=m.clone()/> }.into_any(),
            Some(m.name.clone()),
        ),
        Item::PdfPage { page, .. } => (
            pdf_page(doc, item.label(), page.is_ok()),
            Some(item.label()),
        ),
    };
    view! {
        <div class="preview" data-part=item.kind()>
            {media}
            {name.map(|n| view! { <p class="name">{n}</p> })}
            {sample.map(video_note)}
        </div>
    }
    .into_any()
}

/// An image as stored, as the model sees it: the reference ignores an EXIF rotation, so the
/// preview does too (`image-orientation: none` in the stylesheet). One the browser cannot show
/// says so instead of showing a broken picture.
pub fn image(m: &MediaFile) -> AnyView {
    let broken = RwSignal::new(false);
    let (url, name) = (m.url.clone(), m.name.clone());
    view! {
        <Show when=move || !broken.get() fallback=|| no_preview("this browser cannot show it")>
            <img class="as-stored" src=url.clone() alt=name.clone() loading="lazy"
                on:error=move |_| broken.set(true)/>
        </Show>
    }
    .into_any()
}

/// A PDF page as the renderer drew it for the model, once it has been (a click shows it
/// larger); before that, when it will be.
fn pdf_page(doc: u32, label: String, opened: bool) -> AnyView {
    let state = expect_context::<Ctx>().state;
    let drawn = move || state.renders.with(|r| r.get(&doc).cloned());
    (move || match drawn() {
        Some(url) => {
            let (shown, title) = (url.clone(), label.clone());
            view! {
                <button class="page-thumb" data-testid="pdf-thumb"
                    aria-label=format!("Show {label} larger")
                    on:click=move |_| state.viewing.set(Some((shown.clone(), title.clone())))>
                    <img src=url alt=label.clone()/>
                </button>
            }
            .into_any()
        }
        None if opened => no_preview("the page is drawn when it is ranked").into_any(),
        None => no_preview("the PDF cannot be opened").into_any(),
    })
    .into_any()
}

fn no_preview(why: &'static str) -> impl IntoView {
    view! { <p class="no-preview" data-testid="no-preview">"No preview: " {why}</p> }
}

/// A video that shows a frame of itself before it is played, captured once per video on the
/// page (an element left to load only its metadata shows a black box).
#[component]
pub fn VideoThumb(media: MediaFile) -> impl IntoView {
    let state = expect_context::<Ctx>().state;
    let url = media.url.clone();
    if state.posters.with_untracked(|p| !p.contains_key(&url)) {
        state.posters.update(|p| {
            p.insert(url.clone(), Poster::Capturing);
        });
        let (file, key) = (media.file.clone(), url.clone());
        spawn_local(async move {
            let poster = match crate::capture::poster(&file).await {
                Some(frame) => Poster::Frame(frame),
                None => Poster::Unplayable,
            };
            state.posters.update(|p| {
                p.insert(key, poster);
            });
        });
    }
    let poster = move || state.posters.with(|p| p.get(&url).cloned());
    move || match poster() {
        Some(Poster::Unplayable) => no_preview("this browser cannot play it").into_any(),
        Some(Poster::Frame(frame)) => view! {
            <video src=media.url.clone() controls muted preload="none" poster=frame
                data-testid="video-thumb"></video>
        }
        .into_any(),
        _ => view! { <p class="no-preview">"Loading a preview…"</p> }.into_any(),
    }
}

/// How a video was sampled: the frames taken and each 2-frame group's time in the prompt.
pub fn video_note(sample: VideoSample) -> impl IntoView {
    let times: Vec<String> = sample
        .timestamps
        .iter()
        .map(|t| format!("{t:.1}"))
        .collect();
    let indices: Vec<String> = sample.indices.iter().map(|i| i.to_string()).collect();
    view! {
        <p class="hint video-note" data-testid="video-sample" data-video=sample.video
            data-timestamps=times.join(",") data-indices=indices.join(",")>
            {format!(
                "{} of {} frames sampled (a {:.2} fps video); the model reads them in pairs \
                 stamped {} s.",
                sample.indices.len(),
                sample.total_frames,
                sample.fps,
                times.join(", ")
            )}
        </p>
    }
}
