//! The page: the model, the query, the documents and the ranking, with a notice at the top for
//! anything that went wrong and what to do about it.

mod context;
mod documents;
mod model;
mod preview;
mod query;
mod results;
mod speed;

use leptos::prelude::*;
use sift_web_protocol::ToWorker;

use crate::renderer::Renderer;
use crate::state::AppState;
use crate::worker::ModelWorker;
use context::Ctx;

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    crate::session::restore_and_save(state);
    let renderer = Renderer::new(state);
    let handler = {
        let renderer = renderer.clone();
        std::rc::Rc::new(move |worker: &ModelWorker, state, message| {
            crate::messages::handle(worker, &renderer, state, message)
        })
    };
    let worker = ModelWorker::start(state, handler);
    worker.send(&ToWorker::Probe);
    // `?bench`: measure speed as soon as the page opens (a link to share, and CI's test).
    if let Some(shape) = crate::speed::requested_shape() {
        crate::speed::measure(state, shape);
    }
    let ctx = Ctx {
        state,
        worker: StoredValue::new_local(worker),
        renderer: StoredValue::new_local(renderer),
    };
    provide_context(ctx);
    // Ctrl+Enter (⌘+Enter) reranks from anywhere on the page.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
            ev.prevent_default();
            ctx.rerank();
        } else if ev.key() == "Escape" {
            state.viewing.set(None);
        }
    };
    view! {
        <div class="page" on:keydown=on_key>
            <header class="top">
                <div class="brand">
                    <h1>"sift"</h1>
                    <p class="tagline">
                        "Rank your photos, videos, PDFs and notes against a question, on your own GPU. "
                        "Nothing you add leaves this page."
                    </p>
                </div>
                <GpuBadge/>
            </header>
            <Notice/>
            // Once a run starts, narrow screens put the results first (the stylesheet).
            <main class="columns" class:has-run=move || state.run.with(|r| !r.docs.is_empty())>
                <div class="column inputs">
                    <model::ModelPanel/>
                    <query::QueryPanel/>
                    <documents::DocumentsPanel/>
                </div>
                <div class="column outputs">
                    <results::ResultsPanel/>
                </div>
            </main>
            <Viewer/>
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

fn short(name: &str) -> String {
    crate::state::excerpt(name, 40)
}

/// A drawn PDF page, large, over the page; a click outside it, Close or Escape closes it.
#[component]
fn Viewer() -> impl IntoView {
    let state = expect_context::<Ctx>().state;
    move || {
        state.viewing.get().map(|(url, label)| {
            let name = label.clone();
            view! {
                <div class="viewer" role="dialog" aria-modal="true" aria-label=name
                    data-testid="viewer" on:click=move |_| state.viewing.set(None)>
                    <figure on:click=|ev| ev.stop_propagation()>
                        <img src=url alt=label.clone()/>
                        <figcaption class="row">
                            <span class="grow">{label}</span>
                            <button data-testid="viewer-close" on:click=move |_| state.viewing.set(None)>"Close"</button>
                        </figcaption>
                    </figure>
                </div>
            }
        })
    }
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
