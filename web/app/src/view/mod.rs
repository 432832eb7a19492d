//! The page: the model, the query, the documents and the ranking, with a notice at the top for
//! anything that went wrong and what to do about it.

mod documents;
mod model;
mod query;
mod results;

use leptos::prelude::*;
use sift_web_protocol::{Media, RerankJob, Side, ToWorker};

use crate::state::{AppState, Item, Run};
use crate::worker::ModelWorker;

/// What every component needs: the state and the worker.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub state: AppState,
    pub worker: StoredValue<ModelWorker, LocalStorage>,
}

impl Ctx {
    pub fn send(&self, message: &ToWorker) {
        self.worker.with_value(|w| w.send(message));
    }

    /// Whether Rerank can run now, or why not (shown on the button's hint).
    pub fn blocked(&self) -> Option<&'static str> {
        let state = self.state;
        if !state.model_ready() {
            Some("Load a model first.")
        } else if state.run.with(|r| r.running) {
            Some("Reranking…")
        } else if state.docs.with(Vec::is_empty) {
            Some("Add at least one document.")
        } else if state.query_text.with(|t| t.trim().is_empty())
            && state.query_image.with(Option::is_none)
            && state.query_video.with(Option::is_none)
        {
            Some("Type a query, or add a query image or video.")
        } else {
            None
        }
    }

    /// Files picked or dropped anywhere: a model folder (it holds the manifest) is loaded as the
    /// model, anything else is added as documents.
    pub fn take_files(&self, files: Vec<web_sys::File>) {
        let state = self.state;
        if files.iter().any(|f| f.name() == crate::MANIFEST) {
            let array: js_sys::Array = files.into_iter().collect();
            self.worker.with_value(|w| {
                crate::messages::load(w, state, sift_web_protocol::ModelSource::Files(array))
            });
        } else {
            leptos::task::spawn_local(crate::files::add_documents(state, files));
        }
    }

    /// Sends the query and every document to the worker; results arrive one by one.
    pub fn rerank(&self) {
        if self.blocked().is_some() {
            return;
        }
        let state = self.state;
        let media = |id: u32, m: &crate::state::MediaFile| Media {
            id,
            name: m.name.clone(),
            file: m.file.clone().into(),
        };
        let text = state.query_text.get_untracked();
        let query = Side {
            texts: if text.trim().is_empty() {
                Vec::new()
            } else {
                vec![text]
            },
            images: state
                .query_image
                .get_untracked()
                .map(|m| media(crate::QUERY_MEDIA, &m))
                .into_iter()
                .collect(),
            videos: state
                .query_video
                .get_untracked()
                .map(|m| media(crate::QUERY_MEDIA, &m))
                .into_iter()
                .collect(),
        };
        let docs = state.docs.get_untracked();
        let documents = docs
            .iter()
            .map(|d| match &d.item {
                Item::Text { text, .. } => Side {
                    texts: vec![text.clone()],
                    ..Side::default()
                },
                Item::Image(m) => Side {
                    images: vec![media(d.id, m)],
                    ..Side::default()
                },
                Item::Video(m) => Side {
                    videos: vec![media(d.id, m)],
                    ..Side::default()
                },
            })
            .collect();
        let job = state.run.with_untracked(|r| r.job) + 1;
        state.run.set(Run {
            job,
            docs: docs.iter().map(|d| d.id).collect(),
            running: true,
            ..Run::default()
        });
        state.notice.set(None);
        let instruction = state.instruction.get_untracked();
        self.send(&ToWorker::Rerank(RerankJob {
            job,
            instruction: (!instruction.trim().is_empty()).then_some(instruction),
            query,
            documents,
            fps: state.fps.get_untracked(),
            max_frames: state.max_frames.get_untracked(),
        }));
    }
}

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    crate::session::restore_and_save(state);
    let worker = ModelWorker::start(state);
    worker.send(&ToWorker::Probe);
    let ctx = Ctx {
        state,
        worker: StoredValue::new_local(worker),
    };
    provide_context(ctx);
    // Ctrl+Enter (⌘+Enter) reranks from anywhere on the page.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            ctx.rerank();
        }
    };
    view! {
        <div class="page" on:keydown=on_key>
            <header class="top">
                <div class="brand">
                    <h1>"sift"</h1>
                    <p class="tagline">
                        "Rank your photos, videos and notes against a question, on your own GPU. "
                        "Nothing you add leaves this page."
                    </p>
                </div>
                <GpuBadge/>
            </header>
            <Notice/>
            <main class="columns">
                <div class="column inputs">
                    <model::ModelPanel/>
                    <query::QueryPanel/>
                    <documents::DocumentsPanel/>
                </div>
                <div class="column outputs">
                    <results::ResultsPanel/>
                </div>
            </main>
            <footer class="foot">
                "sift runs Qwen3-VL-Reranker with WebGPU in this tab. Models are kept in this "
                "browser's private storage; your files are never uploaded."
            </footer>
        </div>
    }
}

/// The GPU the worker found, or why there is none.
#[component]
fn GpuBadge() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || match ctx.state.gpu.get() {
        None => view! { <p class="badge" data-testid="gpu">"Looking for a GPU…"</p> }.into_any(),
        Some(Ok(gpu)) => view! {
            <p class="badge ok" data-testid="gpu" title=gpu.name.clone()>
                "GPU ready: " {short(&gpu.name)} {if gpu.f16 { " · f16" } else { "" }}
            </p>
        }
        .into_any(),
        Some(Err(_)) => {
            view! { <p class="badge bad" data-testid="gpu">"No usable GPU"</p> }.into_any()
        }
    }
}

/// A document as the lists show it: a text's excerpt of `chars` characters, an image, or a
/// playable video, with its file name.
pub fn preview(item: &Item, chars: usize) -> AnyView {
    let (media, name) = match item {
        Item::Text { text, name } => (
            view! { <p class="excerpt">{crate::state::excerpt(text, chars)}</p> }.into_any(),
            name.clone(),
        ),
        Item::Image(m) => (
            view! { <img src=m.url.clone() alt=m.name.clone() loading="lazy"/> }.into_any(),
            Some(m.name.clone()),
        ),
        Item::Video(m) => (
            view! { <video src=m.url.clone() controls muted preload="metadata"></video> }
                .into_any(),
            Some(m.name.clone()),
        ),
    };
    view! {
        <div class="preview">
            {media}
            {name.map(|n| view! { <p class="name">{n}</p> })}
        </div>
    }
    .into_any()
}

fn short(name: &str) -> String {
    crate::state::excerpt(name, 40)
}

/// The latest problem, with what to do; dismissable.
#[component]
fn Notice() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let gpu_problem = move || match ctx.state.gpu.get() {
        Some(Err(why)) => Some(why),
        _ => None,
    };
    view! {
        {move || gpu_problem().map(|why| view! {
            <div class="notice bad" role="alert" data-testid="gpu-problem">
                <strong>"This browser cannot run the model. "</strong>{why}
            </div>
        })}
        {move || ctx.state.notice.get().map(|text| view! {
            <div class="notice" role="alert" data-testid="notice">
                <span>{text}</span>
                <button class="link" on:click=move |_| ctx.state.notice.set(None)>"Dismiss"</button>
            </div>
        })}
    }
}
