//! The ranking: best first as documents are scored, each with its score as a number and a bar,
//! failed documents in place with their error, and an export in the CLI's JSON shape.

use leptos::prelude::*;
use sift_web_protocol::VideoSample;

use super::context::Ctx;
use super::preview::preview;
use crate::state::{Doc, DocResult};

/// One row of the ranking.
#[derive(Clone, PartialEq)]
struct Row {
    doc: Doc,
    rank: Option<usize>,
    result: Option<DocResult>,
}

#[component]
pub fn ResultsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    // Scored documents best first, then those still waiting, in request order.
    let rows = move || {
        let run = state.run.get();
        let docs = state.docs.get();
        let find = |id: u32| docs.iter().find(|d| d.id == id).cloned();
        let mut rows: Vec<Row> = Vec::new();
        let mut rank = 0;
        for &id in &run.order {
            let Some(doc) = find(id) else { continue };
            let result = run.results.get(&id).cloned();
            let scored = matches!(result, Some(DocResult { score: Ok(_), .. }));
            rank += usize::from(scored);
            rows.push(Row {
                doc,
                rank: scored.then_some(rank),
                result,
            });
        }
        for &id in &run.docs {
            if !run.results.contains_key(&id)
                && let Some(doc) = find(id)
            {
                rows.push(Row {
                    doc,
                    rank: None,
                    result: None,
                });
            }
        }
        rows
    };
    let summary = move || {
        let run = state.run.get();
        let done = run.results.len();
        let total = run.docs.len();
        if run.running {
            format!("Scoring… {done} of {total} documents")
        } else if total == 0 {
            String::new()
        } else {
            let failed = run.results.values().filter(|r| r.score.is_err()).count();
            match (done < total, failed) {
                (true, _) => format!("Stopped after {done} of {total} documents."),
                (false, 0) => format!("{total} documents ranked."),
                (false, n) => format!(
                    "{total} documents: {} ranked, {n} could not be scored.",
                    total - n
                ),
            }
        }
    };
    let export = move || {
        let Some(json) = state.run.with(|r| r.export.clone()) else {
            return;
        };
        download("sift-results.json", &json);
    };
    view! {
        <section class="card results" aria-labelledby="results-title" aria-live="polite">
            <div class="row">
                <h2 id="results-title" class="grow">"Ranking"</h2>
                <button class="primary" data-testid="rerank"
                    disabled=move || ctx.blocked().is_some()
                    title=move || ctx.blocked().unwrap_or("Ctrl+Enter")
                    on:click=move |_| ctx.rerank()>"Rerank"</button>
            </div>
            <p class="hint" data-testid="run-status"
                data-running=move || state.run.with(|r| r.running).to_string()>
                {summary}
            </p>
            <Show when=move || state.run.with(|r| r.docs.is_empty())>
                <Steps/>
            </Show>
            <ol class="ranking" data-testid="ranking">
                <For each=rows key=|r| (r.doc.id, r.rank, r.result.as_ref().map(|x| format!("{:?}", x.score))) let(row)>
                    <ResultRow row=row/>
                </For>
            </ol>
            <Show when=move || state.run.with(|r| !r.docs.is_empty())>
                <div class="row">
                    <button data-testid="export" disabled=move || state.run.with(|r| r.export.is_none())
                        on:click=move |_| export()>"Export JSON"</button>
                    <span class="hint">"The CLI's shape: " <code>"{\"results\": [{\"index\", \"score\"}]}"</code></span>
                </div>
            </Show>
        </section>
    }
}

/// Before the first rerank: the four steps, each ticked once done.
#[component]
fn Steps() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let step = move |done: Signal<bool>, text: &'static str| {
        view! {
            <li class:done=move || done.get()>{text}</li>
        }
    };
    let has_query = Signal::derive(move || {
        !state.query_text.with(|t| t.trim().is_empty())
            || state.query_image.with(Option::is_some)
            || state.query_video.with(Option::is_some)
    });
    view! {
        <ol class="steps" data-testid="steps">
            {step(Signal::derive(move || state.model_ready()), "Load a model: it stays in this browser for next time.")}
            {step(has_query, "Say what you are looking for: a text, an image or a video.")}
            {step(Signal::derive(move || state.docs.with(|d| !d.is_empty())), "Add the documents to rank: texts, photos, videos, whole folders.")}
            {step(Signal::derive(|| false), "Press Rerank: the best match comes first.")}
        </ol>
    }
}

#[component]
fn ResultRow(row: Row) -> impl IntoView {
    let Row { doc, rank, result } = row;
    let kind = doc.item.kind();
    let preview = preview(&doc.item, 160);
    let (score_view, state_attr) = match &result {
        None => (
            view! { <p class="pending">"scoring…"</p> }.into_any(),
            "pending",
        ),
        Some(DocResult {
            score: Ok(score), ..
        }) => (
            view! {
                <div class="score">
                    <span class="number" data-testid="score">{format!("{score:.4}")}</span>
                    <div class="bar" role="img" aria-label=format!("score {score:.4} of 1")>
                        <div class="fill" style:width=format!("{:.1}%", score * 100.0)></div>
                    </div>
                </div>
            }
            .into_any(),
            "scored",
        ),
        Some(DocResult { score: Err(e), .. }) => (
            view! { <p class="error" role="alert" data-testid="doc-error">{e.clone()}</p> }
                .into_any(),
            "failed",
        ),
    };
    let score_attr = match &result {
        Some(DocResult { score: Ok(s), .. }) => s.to_string(),
        _ => String::new(),
    };
    let videos = result.map(|r| r.videos).unwrap_or_default();
    view! {
        <li class="result" data-testid="result" data-id=doc.id data-kind=kind data-state=state_attr
            data-score=score_attr>
            <span class="rank">{rank.map(|r| r.to_string()).unwrap_or_else(|| "–".into())}</span>
            <span class="kind">{kind}</span>
            {preview}
            {score_view}
            {videos.into_iter().map(video_note).collect_view()}
        </li>
    }
}

/// How a video was sampled: the frames taken and each 2-frame group's time in the prompt.
fn video_note(sample: VideoSample) -> impl IntoView {
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
                "{} of {} frames at {:.2} fps; groups at {} s",
                sample.indices.len(),
                sample.total_frames,
                sample.fps,
                times.join(", ")
            )}
        </p>
    }
}

/// Saves `text` as a file through the browser's download.
fn download(name: &str, text: &str) {
    use wasm_bindgen::JsCast;
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let parts = js_sys::Array::of1(&text.into());
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(document) = web_sys::window().and_then(|w| w.document())
        && let Ok(anchor) = document.create_element("a")
    {
        let anchor: web_sys::HtmlAnchorElement = anchor.unchecked_into();
        anchor.set_href(&url);
        anchor.set_download(name);
        anchor.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}
