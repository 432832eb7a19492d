//! The ranking: best first as documents are scored, each with its score as a number (with
//! the digits that tell neighbours apart) and a bar, failed documents in place with their
//! error across the row, the run's size and time, and an export in the CLI's JSON shape. A
//! document removed during or after a run leaves its ranking, its counts and its export.

use leptos::prelude::*;

use super::context::Ctx;
use super::documents::kinds;
use super::preview::preview;
use crate::format;
use crate::state::{Doc, DocResult, Run};

/// One row of the ranking.
#[derive(Clone, PartialEq)]
struct Row {
    doc: Doc,
    rank: Option<usize>,
    result: Option<DocResult>,
    /// Decimals shown for scores.
    decimals: usize,
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
        let ranked: Vec<(Doc, Option<DocResult>)> = run
            .order
            .iter()
            .filter_map(|&id| Some((find(id)?, run.results.get(&id).cloned())))
            .collect();
        let scores: Vec<f32> = ranked
            .iter()
            .filter_map(|(_, r)| r.as_ref()?.score.as_ref().ok().copied())
            .collect();
        let decimals = decimals(&scores);
        let mut rows: Vec<Row> = Vec::new();
        let mut rank = 0;
        for (doc, result) in ranked {
            let scored = matches!(result, Some(DocResult { score: Ok(_), .. }));
            rank += usize::from(scored);
            rows.push(Row {
                doc,
                rank: scored.then_some(rank),
                result,
                decimals,
            });
        }
        for id in run.live() {
            if !run.results.contains_key(&id)
                && let Some(doc) = find(id)
            {
                rows.push(Row {
                    doc,
                    rank: None,
                    result: None,
                    decimals,
                });
            }
        }
        rows
    };
    let summary = move || {
        let gpu = match state.gpu.get() {
            Some(Ok(gpu)) => crate::state::excerpt(&gpu.name, 60),
            _ => "this GPU".into(),
        };
        let status = state.run.with(|run| summary(run, &gpu));
        // While a run draws a PDF page, which page (drawing takes about a second a page).
        match state.pdf_activity.get() {
            Some(doing) if state.run.with(|r| r.running) => format!("{status}; {doing}"),
            _ => status,
        }
    };
    let export = move || {
        let Some(json) = state.run.with(Run::export_json) else {
            return;
        };
        download("sift-results.json", &json);
    };
    view! {
        <section class="card results" id="results" aria-labelledby="results-title" aria-live="polite">
            <div class="row rerank-row">
                <h2 id="results-title" class="grow">"Ranking"</h2>
                <button class="primary" data-testid="rerank"
                    disabled=move || ctx.blocked().is_some()
                    title=move || ctx.blocked().unwrap_or("Ctrl+Enter")
                    on:click=move |_| ctx.rerank()>"Rerank"</button>
            </div>
            <Interrupted/>
            <p class="hint" data-testid="run-status"
                data-running=move || state.run.with(|r| r.running).to_string()>
                {summary}
            </p>
            <Show when=move || state.run.with(|r| r.docs.is_empty())>
                <Steps/>
            </Show>
            <ol class="ranking" data-testid="ranking">
                <For each=rows key=|r| (r.doc.id, r.rank, r.decimals, r.result.as_ref().map(|x| format!("{:?}", x))) let(row)>
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

/// Where the run stands, counting only the documents still on the page: "3 documents ranked in
/// 2.1 s on <GPU>." once done.
fn summary(run: &Run, gpu: &str) -> String {
    let total = run.live().count();
    let done = run.live_results().count();
    let failed = run.live_results().filter(|r| r.score.is_err()).count();
    let documents = |n: usize| plural(n, "document");
    if run.running {
        return format!("Scoring… {done} of {}", documents(total));
    }
    if run.docs.is_empty() {
        return String::new();
    }
    if total == 0 {
        return "Every document of the last rerank was removed.".into();
    }
    if done < total {
        return format!("Stopped after {done} of {}.", documents(total));
    }
    let time = run
        .finished
        .map(|end| {
            format!(
                " in {} on {gpu}",
                format::seconds((end - run.started) / 1000.0)
            )
        })
        .unwrap_or_default();
    match failed {
        0 => format!("{} ranked{time}.", documents(total)),
        n => format!(
            "{}{time}: {} ranked, {n} could not be scored.",
            documents(total),
            total - n
        ),
    }
}

/// "1 document", "3 documents".
fn plural(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The fewest decimals (4 at least) that show every two neighbouring scores (best first) that
/// differ as different numbers.
fn decimals(scores: &[f32]) -> usize {
    (4..=8)
        .find(|&d| {
            scores
                .windows(2)
                .all(|w| w[0] == w[1] || format!("{:.d$}", w[0]) != format!("{:.d$}", w[1]))
        })
        .unwrap_or(8)
}

/// A rerank that a reload cut short: said, with a button to run it again.
#[component]
fn Interrupted() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    move || {
        state.interrupted.get().map(|documents| {
            view! {
                <div class="note row wrap" role="status" data-testid="interrupted">
                    <span class="grow">
                        {format!(
                            "The last rerank, of {}, was interrupted: the page was reloaded or \
                             closed before it finished.",
                            plural(documents, "document")
                        )}
                        {move || (!state.model_ready()).then_some(" It can run again once the model has loaded.")}
                    </span>
                    <button class="primary" data-testid="rerun"
                        disabled=move || ctx.blocked().is_some()
                        on:click=move |_| ctx.rerank()>"Rerank again"</button>
                    <button class="link" on:click=move |_| state.interrupted.set(None)>"Dismiss"</button>
                </div>
            }
        })
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
            {step(Signal::derive(move || state.docs.with(|d| !d.is_empty())), "Add the documents to rank: texts, photos, videos, PDFs, whole folders.")}
            {step(Signal::derive(|| false), "Press Rerank: the best match comes first.")}
        </ol>
    }
}

#[component]
fn ResultRow(row: Row) -> impl IntoView {
    let Row {
        doc,
        rank,
        result,
        decimals,
    } = row;
    let videos = result
        .as_ref()
        .map(|r| r.videos.clone())
        .unwrap_or_default();
    let preview = preview(&doc, 160, &videos);
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
                    <span class="number" data-testid="score">{format!("{score:.decimals$}")}</span>
                    <div class="bar" role="img" aria-label=format!("score {score:.decimals$} of 1")>
                        <div class="fill" style:width=format!("{:.1}%", score * 100.0)></div>
                    </div>
                </div>
            }
            .into_any(),
            "scored",
        ),
        Some(DocResult { score: Err(_), .. }) => (
            view! { <p class="pending">"no score"</p> }.into_any(),
            "failed",
        ),
    };
    let error = match &result {
        Some(DocResult { score: Err(e), .. }) => Some(view! {
            <p class="error wide" role="alert" data-testid="doc-error">{e.clone()}</p>
        }),
        _ => None,
    };
    let score_attr = match &result {
        Some(DocResult { score: Ok(s), .. }) => s.to_string(),
        _ => String::new(),
    };
    view! {
        <li class="result" data-testid="result" data-id=doc.id data-kind=doc.kind() data-state=state_attr
            data-score=score_attr>
            <span class="rank">{rank.map(|r| r.to_string()).unwrap_or_else(|| "–".into())}</span>
            <span class="kind">{kinds(&doc)}</span>
            {preview}
            {score_view}
            {error}
        </li>
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
