//! What the page does with each message from the worker.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sift_web_protocol::{FromWorker, ModelSource, Stage, ToWorker};

use crate::renderer::Renderer;
use crate::state::{
    AppState, DocResult, Item, LastModel, ModelState, Progress, QUERY_MEDIA, media_part,
};
use crate::worker::ModelWorker;

pub fn handle(worker: &ModelWorker, renderer: &Renderer, state: AppState, message: FromWorker) {
    match message {
        // The renderer's and the speed measurement's answers go to them, not here.
        FromWorker::Ready { .. }
        | FromWorker::Fatal(_)
        | FromWorker::PdfOpened { .. }
        | FromWorker::PageRendered { .. }
        | FromWorker::PageNotRendered { .. }
        | FromWorker::SpeedRow(_)
        | FromWorker::SpeedDone { .. }
        | FromWorker::SpeedFailed(_) => {}
        FromWorker::Probed {
            gpu,
            storage,
            models,
        } => {
            let first = state.gpu.get_untracked().is_none();
            state.gpu.set(Some(gpu.clone()));
            state.storage.set(storage);
            state.stored.set(models.clone());
            if state.model.get_untracked() == ModelState::Starting {
                state.model.set(ModelState::Idle);
            }
            // On a visit, the model used last loads from storage, with no download; before
            // any was used, one already stored for the URL or repository in the boxes.
            if first && gpu.is_ok() {
                let stored = |key: &str| models.iter().any(|m| m.complete && m.key == key);
                let url = normalized(&crate::config::absolute(&state.model_url.get_untracked()));
                let hub = crate::config::hub_source(&state.hub_repo.get_untracked());
                let hub_stored = |name: &str| {
                    let label = sift_web_protocol::hub_label(name);
                    models.iter().any(|m| m.complete && m.source == label)
                };
                let last = state.last_model.get_untracked().filter(|m| stored(&m.key));
                if let Some(last) = last {
                    load(worker, state, last.source());
                } else if models
                    .iter()
                    .any(|m| m.complete && normalized(&m.source) == url)
                {
                    load(worker, state, ModelSource::Url(url));
                } else if let ModelSource::Hub { name, .. } = &hub
                    && hub_stored(name)
                {
                    load(worker, state, hub);
                }
            }
        }
        FromWorker::Fit(fit) => state.fit.set(Some(fit)),
        FromWorker::Progress {
            stage,
            done,
            total,
            detail,
        } => {
            if stage == Stage::Scoring {
                return;
            }
            state.model.update(|model| {
                let previous = match model {
                    ModelState::Working(p) => Some(&*p),
                    _ => None,
                };
                *model = ModelState::Working(Progress::after(previous, stage, done, total, detail));
            });
        }
        FromWorker::Loaded(summary) => {
            if let Some(source) = worker.loaded() {
                state
                    .last_model
                    .set(Some(LastModel::new(summary.key.clone(), &source)));
            }
            state.model.set(ModelState::Ready(summary));
            request_persistence(state);
        }
        FromWorker::LoadFailed(message) => match state.model.get_untracked() {
            ModelState::Ready(_) => state.notice.set(Some(message)),
            _ => state.model.set(ModelState::Failed(message)),
        },
        FromWorker::NeedFrames {
            job,
            video,
            seek_times,
        } => {
            let file = if video == QUERY_MEDIA {
                state.query_video.get_untracked().map(|m| m.file)
            } else {
                let (doc, part) = media_part(video);
                state.docs.with_untracked(|docs| {
                    docs.iter()
                        .find(|d| d.id == doc)
                        .and_then(|d| match d.parts.get(part) {
                            Some(Item::Video(m)) => Some(m.file.clone()),
                            _ => None,
                        })
                })
            };
            let worker = worker.clone();
            match file {
                Some(file) => spawn_local(crate::capture::send_frames(
                    worker, job, video, file, seek_times,
                )),
                None => worker.send(&ToWorker::FramesFailed {
                    job,
                    video,
                    message: "it was removed from the page.".into(),
                }),
            }
        }
        FromWorker::NeedPage {
            job,
            media,
            settings,
        } => {
            let (doc, part) = media_part(media);
            let item = state.docs.with_untracked(|docs| {
                docs.iter()
                    .find(|d| d.id == doc)
                    .and_then(|d| d.parts.get(part).cloned())
            });
            let worker = worker.clone();
            let failed = move |message: String| ToWorker::PageFailed {
                job,
                media,
                message,
            };
            match item {
                Some(Item::PdfPage {
                    pdf,
                    page: Ok(page),
                }) => {
                    let renderer = renderer.clone();
                    spawn_local(async move {
                        match renderer.render(pdf, page, settings).await {
                            Ok(drawn) => {
                                show_render(state, doc, &drawn.preview);
                                let transfer = js_sys::Array::of1(&drawn.rgb.buffer());
                                worker.send_with_transfer(
                                    &ToWorker::Page {
                                        job,
                                        media,
                                        width: drawn.width,
                                        height: drawn.height,
                                        rgb: drawn.rgb,
                                    },
                                    Some(transfer),
                                );
                            }
                            Err(message) => worker.send(&failed(message)),
                        }
                    });
                }
                Some(Item::PdfPage { page: Err(why), .. }) => worker.send(&failed(why)),
                _ => worker.send(&failed(
                    "This page was removed from the page before it was drawn.".into(),
                )),
            }
        }
        FromWorker::QueryVideos { job, videos } => state.run.update(|run| {
            if run.job == job {
                run.query_videos = videos;
            }
        }),
        FromWorker::QueryFailed { job, message } => state.run.update(|run| {
            if run.job == job {
                run.query_error = Some(message);
            }
        }),
        FromWorker::Scored {
            job,
            index,
            result,
            order,
            videos,
        } => state.run.update(|run| {
            if run.job != job {
                return;
            }
            let Some(&id) = run.docs.get(index) else {
                return;
            };
            run.results.insert(
                id,
                DocResult {
                    score: result,
                    videos,
                },
            );
            run.order = order
                .iter()
                .filter_map(|&i| run.docs.get(i).copied())
                .collect();
        }),
        FromWorker::Done { job, results_json } => state.run.update(|run| {
            if run.job == job {
                run.running = false;
                run.export = Some(results_json);
                run.finished = Some(js_sys::Date::now());
            }
        }),
    }
}

/// Keeps a drawn PDF page to show with its document (the last drawing replaces the one
/// before).
fn show_render(state: AppState, doc: u32, png: &web_sys::Blob) {
    let Ok(url) = web_sys::Url::create_object_url_with_blob(png) else {
        return;
    };
    if state
        .docs
        .with_untracked(|docs| !docs.iter().any(|d| d.id == doc))
    {
        let _ = web_sys::Url::revoke_object_url(&url);
        return;
    }
    if let Some(old) = state.renders.try_update(|r| r.insert(doc, url)).flatten() {
        let _ = web_sys::Url::revoke_object_url(&old);
    }
}

/// A folder URL with one trailing slash, for comparing.
fn normalized(url: &str) -> String {
    format!("{}/", url.trim_end_matches('/'))
}

/// Asks the worker to load a model, showing the first step at once.
pub fn load(worker: &ModelWorker, state: AppState, source: ModelSource) {
    state.fit.set(None);
    state.model.set(ModelState::Working(Progress {
        stage: Stage::Checking,
        done: 0,
        total: 0,
        detail: String::new(),
        started: (0, js_sys::Date::now()),
    }));
    worker.send(&state.load_message(source));
}

/// Asks the browser to keep this site's storage (models are large to fetch again); the answer
/// is shown next to the storage figures.
fn request_persistence(state: AppState) {
    let Some(storage) = web_sys::window().map(|w| w.navigator().storage()) else {
        return;
    };
    spawn_local(async move {
        let granted = match storage.persist() {
            Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise)
                .await
                .ok()
                .and_then(|v| v.as_bool()),
            Err(_) => None,
        };
        state.persisted.set(granted);
    });
}
