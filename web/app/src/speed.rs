//! The page's *Measure speed* (or `?bench`): `sift bench`'s workload timed in this browser on
//! random weights at the 2B's shape (`?bench=tiny`: the tiny shape, for a CPU-emulated GPU),
//! what a person checks before converting 4 GB. It runs in a worker of its own, ended when it
//! is done: the loaded model and a rerank are left alone, and the memory the random weights
//! took goes back to the browser.

use std::cell::RefCell;

use leptos::prelude::*;
use sift_web_protocol::{BenchShape, FromWorker, SpeedRow, ToWorker, encode};

use crate::state::{AppState, Progress};
use crate::worker::{Launched, launch, post};

/// Where the speed measurement is.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum SpeedState {
    #[default]
    Idle,
    /// Working: the current step, and the rows timed so far.
    Running {
        progress: Option<Progress>,
        rows: Vec<SpeedRow>,
    },
    Done {
        gpu: String,
        f16: bool,
        shape: BenchShape,
        rows: Vec<SpeedRow>,
    },
    /// Why it stopped, with the rows timed before.
    Failed { why: String, rows: Vec<SpeedRow> },
}

impl SpeedState {
    pub fn rows(&self) -> &[SpeedRow] {
        match self {
            Self::Idle => &[],
            Self::Running { rows, .. } | Self::Done { rows, .. } | Self::Failed { rows, .. } => {
                rows
            }
        }
    }
}

/// The shape `?bench` (the 2B's, also `?bench=2b`) or `?bench=tiny` asks for, if the page was
/// opened with one; another value is ignored.
pub fn requested_shape() -> Option<BenchShape> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    match params.get("bench")?.as_str() {
        "" | "2b" => Some(BenchShape::B2),
        "tiny" => Some(BenchShape::Tiny),
        _ => None,
    }
}

thread_local! {
    /// The measurement's worker and its handlers, while it runs.
    static RUNNING: RefCell<Option<Launched>> = const { RefCell::new(None) };
}

/// Starts measuring in a new worker (unless a measurement is running).
pub fn measure(state: AppState, shape: BenchShape) {
    if RUNNING.with(|r| r.borrow().is_some()) {
        return;
    }
    let f16 = state.f16.get_untracked();
    state.speed.set(SpeedState::Running {
        progress: None,
        rows: Vec::new(),
    });
    let on_message = move |message: Result<FromWorker, String>| match message {
        Ok(message) => receive(state, shape, f16, message),
        Err(e) => stopped(
            state,
            shape,
            &format!("it sent a message the page cannot read ({e})"),
        ),
    };
    let on_error = move |detail: String| stopped(state, shape, &detail);
    match launch("sift-speed", on_message, on_error) {
        Ok(launched) => RUNNING.with(|r| *r.borrow_mut() = Some(launched)),
        Err(e) => stopped(state, shape, &format!("its worker could not start ({e:?})")),
    }
}

fn receive(state: AppState, shape: BenchShape, f16: bool, message: FromWorker) {
    match message {
        FromWorker::Ready { .. } => RUNNING.with(|r| {
            if let Some(launched) = r.borrow_mut().as_mut() {
                let _ = web_sys::Url::revoke_object_url(&launched.script_url);
                post(
                    &launched.worker,
                    &encode(&ToWorker::MeasureSpeed { shape, f16 }),
                    None,
                );
            }
        }),
        FromWorker::Progress {
            stage,
            done,
            total,
            detail,
        } => state.speed.update(|speed| {
            if let SpeedState::Running { progress, .. } = speed {
                *progress = Some(Progress::after(
                    progress.as_ref(),
                    stage,
                    done,
                    total,
                    detail,
                ));
            }
        }),
        FromWorker::SpeedRow(row) => state.speed.update(|speed| {
            if let SpeedState::Running { rows, .. } = speed {
                rows.push(row);
            }
        }),
        FromWorker::SpeedDone { gpu, f16 } => {
            end();
            let rows = state.speed.with_untracked(|s| s.rows().to_vec());
            state.speed.set(SpeedState::Done {
                gpu,
                f16,
                shape,
                rows,
            });
        }
        FromWorker::SpeedFailed(why) => {
            end();
            let rows = state.speed.with_untracked(|s| s.rows().to_vec());
            state.speed.set(SpeedState::Failed {
                why: format!("Measuring speed failed: {why}."),
                rows,
            });
        }
        FromWorker::Fatal(detail) => stopped(state, shape, &detail),
        _ => {}
    }
}

/// The measurement's worker died (a GPU or the tab out of memory, a crash): say so, keep the
/// rows.
fn stopped(state: AppState, shape: BenchShape, detail: &str) {
    end();
    let rows = state.speed.with_untracked(|s| s.rows().to_vec());
    let lower = detail.to_lowercase();
    // A wasm allocation that fails ends in `unreachable`, a JavaScript one in a RangeError.
    let out_of_memory = ["memory", "unreachable", "rangeerror"]
        .iter()
        .any(|sign| lower.contains(sign));
    let advice = match (out_of_memory, shape) {
        (true, BenchShape::B2) => {
            " This GPU or this tab ran out of memory for the 2B's random weights (about 2 GB): \
             close other tabs that use the GPU and try again; a model that cannot be measured \
             here cannot run here either."
        }
        (true, BenchShape::Tiny) => {
            " This GPU or this tab ran out of memory: close other tabs that use the GPU and try \
             again."
        }
        (false, _) => {
            " Reload the page and try again; if it happens again, this browser's WebGPU cannot \
             run the model."
        }
    };
    state.speed.set(SpeedState::Failed {
        why: format!("Measuring speed stopped: {detail}.{advice}"),
        rows,
    });
}

/// Ends the measurement's worker, freeing its memory.
fn end() {
    if let Some(launched) = RUNNING.with(|r| r.borrow_mut().take()) {
        launched.worker.terminate();
        // Revoked on `Ready` too; a worker that never got there still holds its script's URL.
        let _ = web_sys::Url::revoke_object_url(&launched.script_url);
        // Its handlers are dropped after the one running now returns.
        leptos::task::spawn_local(async move { drop(launched) });
    }
}

/// Whether a measurement is running (so the button waits).
pub fn running(state: AppState) -> bool {
    state
        .speed
        .with(|s| matches!(s, SpeedState::Running { .. }))
}
