//! The model: where it comes from (the official checkpoint on Hugging Face, converted here; a
//! 4-bit model's URL; or a folder on this computer), what it needs, the
//! progress of every long step, and what this browser stores.

use leptos::prelude::*;
use sift_quant::MANIFEST;
use sift_web_protocol::{ModelSource, Stage, ToWorker};
use web_sys::HtmlInputElement;

use super::context::Ctx;
use crate::config;
use crate::format;
use crate::messages::load;
use crate::state::ModelState;

#[component]
pub fn ModelPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let folder = NodeRef::<leptos::html::Input>::new();
    let busy = move || state.model_busy();
    let no_gpu = move || matches!(state.gpu.get(), Some(Err(_)));

    let load_url = move || {
        let url = config::absolute(state.model_url.get_untracked().trim());
        if let Some(problem) = url_problem(&url) {
            state.model.set(ModelState::Failed(problem));
            return;
        }
        ctx.worker
            .with_value(|w| load(w, state, ModelSource::Url(url)));
    };
    let load_hub = move || {
        let repo = state.hub_repo.get_untracked();
        if repo.trim().is_empty() {
            state.model.set(ModelState::Failed(
                "Type a Hugging Face repository, such as Qwen/Qwen3-VL-Reranker-2B.".into(),
            ));
            return;
        }
        let source = config::hub_source(&repo);
        if let ModelSource::Hub { url, .. } = &source
            && let Some(problem) = url_problem(url)
        {
            state.model.set(ModelState::Failed(problem));
            return;
        }
        ctx.worker.with_value(|w| load(w, state, source));
    };
    let on_folder = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let files = crate::files::list(input.files());
        input.set_value("");
        if files.iter().any(|f| f.name() == MANIFEST) {
            ctx.take_files(files);
        } else if !files.is_empty() {
            state.model.set(ModelState::Failed(format!(
                "That folder has no {}: pick the folder `sift quantize` wrote.",
                MANIFEST
            )));
        }
    };

    // A model folder (or its files) dropped on this card loads; documents go to their box.
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        let files = crate::files::dropped(&ev);
        leptos::task::spawn_local(async move {
            let files = files.await;
            if files.iter().any(|f| f.name() == MANIFEST) {
                ctx.take_files(files);
            } else {
                state.notice.set(Some(format!(
                    "That is not a model folder: it has no {}. Drop a folder made by `sift \
                     quantize` here, and documents in the Documents box.",
                    MANIFEST
                )));
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="model-title"
            on:dragover=move |ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <h2 id="model-title">"Model"</h2>
            <form class="row" on:submit=move |ev| { ev.prevent_default(); load_hub(); }>
                <label class="grow">
                    <span class="label">"Official model on Hugging Face"</span>
                    <input type="text" data-testid="hub-repo" list="hub-repos"
                        placeholder="Qwen/Qwen3-VL-Reranker-2B"
                        prop:value=move || state.hub_repo.get()
                        on:input=move |ev| state.hub_repo.set(event_target_value(&ev))/>
                    <datalist id="hub-repos">
                        <option value="Qwen/Qwen3-VL-Reranker-2B"/>
                        <option value="Qwen/Qwen3-VL-Reranker-8B"/>
                    </datalist>
                </label>
                <button type="submit" class="primary" data-testid="hub-load"
                    disabled=move || busy() || no_gpu()>"Convert and load"</button>
            </form>
            <p class="hint">
                "Fetched once (about 4 GB for the 2B, 17 GB for the 8B) and converted to 4 bits \
                 in this browser as it arrives; only the 4-bit model is kept (1.4 GB, 4.8 GB). \
                 Nothing you rank leaves this computer."
            </p>
            <form class="row" on:submit=move |ev| { ev.prevent_default(); load_url(); }>
                <label class="grow">
                    <span class="label">"4-bit model URL"</span>
                    <input type="url" data-testid="model-url" placeholder="https://…/qwen3-vl-reranker-2b-q4/"
                        prop:value=move || state.model_url.get()
                        on:input=move |ev| state.model_url.set(event_target_value(&ev))/>
                </label>
                <button type="submit" data-testid="load"
                    disabled=move || busy() || no_gpu()>"Load model"</button>
            </form>
            <p class="hint">
                "Or "
                <button class="link" disabled=move || busy() || no_gpu()
                    on:click=move |_| { if let Some(input) = folder.get() { input.click(); } }>
                    "load a model folder from this computer"
                </button>
                " (made by " <code>"sift quantize"</code> "), or drop it here."
                <input type="file" class="hidden" node_ref=folder prop:webkitdirectory=true multiple
                    data-testid="model-folder"
                    on:change=on_folder/>
            </p>
            <PrecisionChoice/>
            <ModelStatus/>
            <FitLine/>
            <StorageLine/>
            <super::speed::SpeedPanel/>
        </section>
    }
}

/// A reason the page cannot fetch from `url` (its security policy allows only some origins).
fn url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some(
            "Type the URL of a 4-bit model folder, or load a folder from this computer.".into(),
        );
    }
    let page = web_sys::window()?.location().origin().ok()?;
    let origin = config::origin_of(url, &page)?;
    let allowed = config::allowed_origins();
    (!allowed.contains(&origin)).then(|| {
        format!(
            "This page may only fetch from {} (its privacy policy, set when the site was built). \
             Download the model folder and load it from this computer instead, or build the \
             site with SIFT_MODEL_URL (a 4-bit model) or SIFT_HUB_URL (a hub) at {origin}.",
            allowed.join(" and ")
        )
    })
}

pub(super) fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Checking => "Checking the model",
        Stage::Downloading => "Downloading",
        Stage::Copying => "Copying into this browser's storage",
        Stage::Converting => "Converting to 4 bits",
        Stage::Loading => "Loading onto the GPU",
        Stage::WarmingUp => "Compiling GPU kernels (first run)",
        Stage::Scoring => "Scoring",
        Stage::MakingWeights => "Making random weights",
        Stage::Measuring => "Timing",
    }
}

/// Whether the linear layers compute in f16, where the browser gives the GPU `shader-f16`: the
/// user's choice, since scores then differ slightly from full precision. Changing it loads the
/// model in use again (from storage, nothing fetched).
#[component]
fn PrecisionChoice() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let has_f16 = move || matches!(state.gpu.get(), Some(Ok(gpu)) if gpu.f16);
    let busy = move || state.model_busy();
    let on_change = move |ev: leptos::ev::Event| {
        state.f16.set(event_target_checked(&ev));
        if matches!(state.model.get_untracked(), ModelState::Ready(_)) {
            ctx.worker.with_value(|w| {
                if let Some(source) = w.loaded() {
                    load(w, state, source);
                }
            });
        }
    };
    view! {
        <label class="check" data-testid="f16-choice">
            <input type="checkbox" data-testid="f16"
                prop:checked=move || state.f16.get() && has_f16()
                disabled=move || !has_f16() || busy()
                on:change=on_change/>
            " Compute in f16 "
            <span class="hint">
                {move || if has_f16() {
                    "(faster: 9% on an H200, possibly more on GPUs whose f16 runs at twice the \
                     rate of f32; scores move by up to about 1e-4 from full precision. Changing \
                     it loads the model again.)"
                } else {
                    "(not offered: this browser gives this GPU no f16 arithmetic, shader-f16, so \
                     the model computes in f32.)"
                }}
            </span>
        </label>
    }
}

#[component]
fn ModelStatus() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    // Ticks once a second while working, so the rate and time left move even between messages.
    let now = RwSignal::new(js_sys::Date::now());
    let handle = set_interval_with_handle(
        move || now.set(js_sys::Date::now()),
        std::time::Duration::from_millis(1000),
    )
    .ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    move || match state.model.get() {
        ModelState::Starting => view! {
            <p class="status" data-testid="model-status">"Starting the model worker…"</p>
        }
        .into_any(),
        ModelState::Idle => view! {
            <p class="status" data-testid="model-status">"No model loaded."</p>
        }
        .into_any(),
        ModelState::Failed(why) => view! {
            <p class="status bad" role="alert" data-testid="model-status">{why}</p>
        }
        .into_any(),
        ModelState::Ready(summary) => view! {
            <p class="status ok" data-testid="model-status" data-state="ready">
                "Ready: " {summary.source.clone()} ", " {summary.layers} " layers, hidden size "
                {summary.hidden_size} ", "
                {format::bytes(summary.gpu_weight_bytes)} " on the GPU"
                {if summary.f16 { ", computing in f16" } else { "" }}
                ", text up to " {summary.max_length} " tokens"
                {if summary.from_storage { ", loaded from this browser's storage" } else { "" }} "."
            </p>
        }
        .into_any(),
        ModelState::Working(p) => {
            let fraction = if p.total > 0 {
                p.done as f64 / p.total as f64
            } else {
                0.0
            };
            let figures = match p.stage {
                Stage::Downloading | Stage::Copying | Stage::Loading if p.total > 0 => {
                    format::transfer(p.done, p.total, p.started, now.get())
                }
                _ => String::new(),
            };
            let known = p.total > 0 && p.stage != Stage::WarmingUp;
            view! {
                <div class="progress" data-testid="progress" data-stage=format!("{:?}", p.stage)>
                    <p class="status">
                        <strong>{stage_name(p.stage)}</strong>
                        {(!figures.is_empty()).then(|| format!(" · {figures}"))}
                        {(!p.detail.is_empty()).then(|| format!(" · {}", p.detail))}
                    </p>
                    <ProgressBar fraction=known.then_some(fraction)/>
                </div>
            }
            .into_any()
        }
    }
}

/// A progress bar at `fraction` done, or moving without a figure (`None`).
#[component]
pub(super) fn ProgressBar(fraction: Option<f64>) -> impl IntoView {
    let percent = fraction.unwrap_or(0.0) * 100.0;
    view! {
        <div class="bar" class:indeterminate=fraction.is_none() role="progressbar"
            aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{percent:.0}")>
            <div class="fill" style:width=format!("{percent:.1}%")></div>
        </div>
    }
}

/// What the model needs, known once its manifest is read.
#[component]
fn FitLine() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || {
        ctx.state.fit.get().map(|fit| {
            let gpu = match ctx.state.gpu.get() {
                Some(Ok(gpu)) => format!(" (this GPU binds up to {})", format::bytes(gpu.max_binding)),
                _ => String::new(),
            };
            view! {
                <p class="hint" data-testid="fit">
                    "Needs " {format::bytes(fit.storage_bytes)} " of storage and about "
                    {format::bytes(fit.gpu_weight_bytes)} " of GPU memory for its weights; its largest buffer is "
                    {format::bytes(fit.largest_buffer)} {gpu} "."
                </p>
            }
        })
    }
}

/// What the page keeps in this browser (its models and your files, as it stored them) and
/// the space left, and the stored models, each removable.
#[component]
fn StorageLine() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let remove = move |key: String| {
        if matches!(state.model.get_untracked(), ModelState::Ready(ref m) if m.key == key) {
            ctx.worker.with_value(|w| w.forget_model());
            state.model.set(ModelState::Idle);
        }
        if state
            .last_model
            .with_untracked(|m| m.as_ref().is_some_and(|m| m.key == key))
        {
            state.last_model.set(None);
        }
        ctx.send(&ToWorker::Remove(key));
    };
    let in_use =
        move |key: &str| matches!(state.model.get(), ModelState::Ready(ref m) if m.key == key);
    // The files kept for the next visit: every image and video of the query and documents.
    let files_bytes = move || {
        let docs: f64 = state.docs.with(|docs| {
            docs.iter()
                .flat_map(|d| d.parts.iter().filter_map(|p| p.media()))
                .map(|m| m.file.size())
                .sum()
        });
        let query: f64 = [state.query_image.get(), state.query_video.get()]
            .iter()
            .flatten()
            .map(|m| m.file.size())
            .sum();
        (docs + query) as u64
    };
    view! {
        <div class="storage">
            <p class="hint" data-testid="storage">
                {move || {
                    let models: u64 = state.stored.with(|m| m.iter().map(|m| m.bytes).sum());
                    let s = state.storage.get();
                    let free = if s.quota == 0 {
                        String::new()
                    } else {
                        format!(" · {} free", format::bytes(s.quota.saturating_sub(s.used)))
                    };
                    match (models, files_bytes()) {
                        (0, 0) => format!("Nothing kept in this browser yet{free}"),
                        (models, files) => format!(
                            "Kept in this browser: models {}, your files {}{free}",
                            format::bytes(models),
                            format::bytes(files)
                        ),
                    }
                }}
                {move || match state.persisted.get() {
                    Some(true) => " · kept until you remove it.",
                    Some(false) => " · the browser may clear it when space runs low.",
                    None => ".",
                }}
            </p>
            <ul class="stored" data-testid="stored-models">
                <For each=move || state.stored.get() key=|m| (m.key.clone(), m.complete, m.bytes) let(m)>
                    <li>
                        <span class="grow">
                            {m.source.clone()} " · " {format::bytes(m.bytes)}
                            {if m.complete { "" } else { " · incomplete (Load resumes it)" }}
                            {
                                let key = m.key.clone();
                                move || in_use(&key).then_some(" · in use")
                            }
                        </span>
                        {
                            let key = m.key.clone();
                            let load_key = m.key.clone();
                            let complete = m.complete;
                            let used = m.key.clone();
                            view! {
                                <button class="small" disabled=move || !complete || in_use(&used)
                                    on:click=move |_| ctx.worker.with_value(|w| load(w, state, ModelSource::Stored(load_key.clone())))>
                                    "Load"
                                </button>
                                <button class="small" aria-label="Remove this stored model"
                                    on:click=move |_| remove(key.clone())>"Remove"</button>
                            }
                        }
                    </li>
                </For>
            </ul>
        </div>
    }
}
