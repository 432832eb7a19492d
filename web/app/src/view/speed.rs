//! *Measure speed*, in the model's card: how fast this browser runs the model, before anything
//! is downloaded.

use leptos::prelude::*;
use sift_web_protocol::{BenchShape, SpeedRow};

use super::context::Ctx;
use super::model::{ProgressBar, stage_name};
use crate::speed::{self, SpeedState};

#[component]
pub fn SpeedPanel() -> impl IntoView {
    let state = expect_context::<Ctx>().state;
    let running = move || speed::running(state);
    let no_gpu = move || matches!(state.gpu.get(), Some(Err(_)));
    let in_f16 = move || state.f16.get() && matches!(state.gpu.get(), Some(Ok(gpu)) if gpu.f16);
    view! {
        <div class="speed" data-testid="speed">
            <p class="hint">
                "How fast is this GPU? "
                <button class="link" data-testid="measure-speed" disabled=move || running() || no_gpu()
                    on:click=move |_| speed::measure(state, BenchShape::B2)>"Measure speed"</button>
                " times text and image pairs (1 and 16 documents a query, as "
                <code>"sift bench"</code> " does) on random weights at the 2B model's shape: \
                 nothing is downloaded, a loaded model stays loaded; a minute or two, about 2 GB \
                 of memory."
                {move || in_f16().then_some(" In f16, as chosen above.")}
            </p>
            {move || match state.speed.get() {
                SpeedState::Idle => None,
                SpeedState::Running { progress, rows } => Some(view! {
                    <div class="progress" data-testid="speed-progress">
                        <p class="status">
                            <strong>{progress.as_ref().map_or("Starting", |p| stage_name(p.stage))}</strong>
                            {progress.as_ref().filter(|p| !p.detail.is_empty()).map(|p| format!(" · {}", p.detail))}
                        </p>
                        <ProgressBar fraction=progress.as_ref().filter(|p| p.total > 0)
                            .map(|p| p.done as f64 / p.total as f64)/>
                    </div>
                    <SpeedTable rows=rows caption=None/>
                }.into_any()),
                SpeedState::Done { gpu, f16, shape, rows } => {
                    let caption = format!(
                        "On {gpu}{}, {}, random 4-bit weights; one timed request per row after one \
                         that compiles the kernels.",
                        if f16 { " in f16" } else { "" },
                        match shape {
                            BenchShape::B2 => "the 2B model's shape",
                            BenchShape::Tiny => "the tiny test shape",
                        }
                    );
                    Some(view! { <SpeedTable rows=rows caption=Some(caption)/> }.into_any())
                }
                SpeedState::Failed { why, rows } => Some(view! {
                    <p class="status bad" role="alert" data-testid="speed-failed">{why}</p>
                    <SpeedTable rows=rows caption=None/>
                }.into_any()),
            }}
        </div>
    }
}

/// The rows timed: milliseconds per pair, pairs per second, tokens per pair.
#[component]
fn SpeedTable(rows: Vec<SpeedRow>, caption: Option<String>) -> impl IntoView {
    let done = caption.is_some();
    (!rows.is_empty()).then(|| {
        view! {
            <table class="speed" data-testid="speed-table" data-done=done.to_string()>
                {caption.map(|c| view! { <caption>{c}</caption> })}
                <thead>
                    <tr><th>"pairs"</th><th>"ms per pair"</th><th>"pairs per second"</th><th>"tokens per pair"</th></tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! {
                        <tr data-workload=row.workload.clone() data-documents=row.documents.to_string()
                            data-ms=format!("{}", row.ms_per_pair)>
                            <td>{format!("{}, {} document{}", row.workload, row.documents,
                                if row.documents == 1 { "" } else { "s" })}</td>
                            <td>{format!("{:.1}", row.ms_per_pair)}</td>
                            <td>{format!("{:.2}", 1e3 / row.ms_per_pair)}</td>
                            <td>{row.tokens_per_pair}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    })
}
