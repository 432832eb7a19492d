//! The query: text, an image and a video (any of them), why it could not be read if it could
//! not, the instruction, how videos are sampled and where document text is cut.

use leptos::prelude::*;
use web_sys::HtmlInputElement;

use super::context::Ctx;
use super::preview::{VideoThumb, image, video_note};
use crate::files::{Kind, kind_of, list};
use crate::kept_files::{QUERY_IMAGE, QUERY_VIDEO};
use crate::messages::load;
use crate::state::ModelState;

#[component]
pub fn QueryPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    // A value the page cannot use is replaced on screen by the one it uses, and said why.
    let correct = move |ev: &leptos::ev::Event, used: String, note: Option<String>| {
        event_target::<HtmlInputElement>(ev).set_value(&used);
        state.settings_note.set(note);
    };
    let on_fps = move |ev: leptos::ev::Event| match event_target_value(&ev).trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => {
            state.fps.set(v);
            state.settings_note.set(None);
        }
        _ => {
            let kept = state.fps.get_untracked();
            correct(
                &ev,
                kept.to_string(),
                Some(format!(
                    "Frames per second must be a number above 0: the page keeps {kept}."
                )),
            );
        }
    };
    let on_max_frames = move |ev: leptos::ev::Event| {
        let typed = event_target_value(&ev).trim().parse::<f64>().ok();
        let (used, note) = match typed {
            Some(v) if v.is_finite() && v >= 2.0 => {
                // The reference samples frames in pairs: an odd count is rounded down.
                let even = (v as usize) / 2 * 2;
                let note = (even as f64 != v).then(|| {
                    format!("Frames are sampled in pairs: Most frames {v} becomes {even}.")
                });
                (even, note)
            }
            Some(v) if v.is_finite() && v > 0.0 => (
                2,
                Some("A video needs at least 2 frames: Most frames becomes 2.".to_string()),
            ),
            _ => {
                let kept = state.max_frames.get_untracked();
                (
                    kept,
                    Some(format!(
                        "Most frames must be a whole number of 2 or more: the page keeps {kept}."
                    )),
                )
            }
        };
        state.max_frames.set(used);
        correct(&ev, used.to_string(), note);
    };
    let on_max_length = move |ev: leptos::ev::Event| {
        let text = event_target_value(&ev);
        let wanted = match text.trim() {
            "" => Some(None),
            typed => match typed.parse::<usize>() {
                Ok(v) if v > 0 => Some(Some(v)),
                _ => None,
            },
        };
        let Some(wanted) = wanted else {
            let kept = state.max_length.get_untracked();
            correct(
                &ev,
                kept.map(|v| v.to_string()).unwrap_or_default(),
                Some(
                    "Text length limit must be a whole number of tokens above 0 (empty: the \
                     model's own limit): the page keeps the one it had."
                        .into(),
                ),
            );
            return;
        };
        correct(&ev, wanted.map(|v| v.to_string()).unwrap_or_default(), None);
        if wanted == state.max_length.get_untracked() {
            return;
        }
        state.max_length.set(wanted);
        // The limit is the loaded model's: it loads again, from storage.
        if matches!(state.model.get_untracked(), ModelState::Ready(_)) {
            ctx.worker.with_value(|w| {
                if let Some(source) = w.loaded() {
                    load(w, state, source);
                }
            });
        }
    };
    let query_error = move || state.run.with(|r| r.query_error.clone());
    view! {
        <section class="card" aria-labelledby="query-title" data-testid="query">
            <h2 id="query-title">"Query"</h2>
            <label>
                <span class="label">"What are you looking for?"</span>
                <textarea rows="2" data-testid="query-text" placeholder="e.g. a cat asleep on a sofa"
                    prop:value=move || state.query_text.get()
                    on:input=move |ev| state.query_text.set(event_target_value(&ev))></textarea>
            </label>
            <div class="row wrap">
                <QueryMedia key=QUERY_IMAGE kind=Kind::Image label="Query image"/>
                <QueryMedia key=QUERY_VIDEO kind=Kind::Video label="Query video"/>
            </div>
            {move || query_error().map(|e| view! {
                <p class="error" role="alert" data-testid="query-error">{e}</p>
            })}
            <details>
                <summary>"Instruction and settings"</summary>
                <label>
                    <span class="label">"Instruction"</span>
                    <textarea rows="2" data-testid="instruction"
                        placeholder=move || state.default_instruction.get()
                        prop:value=move || state.instruction.get()
                        on:input=move |ev| state.instruction.set(event_target_value(&ev))></textarea>
                </label>
                <div class="row wrap">
                    <label>
                        <span class="label">"Frames per second"</span>
                        <input type="number" min="0.1" step="0.1" data-testid="fps"
                            prop:value=move || state.fps.get().to_string()
                            on:change=on_fps/>
                    </label>
                    <label>
                        <span class="label">"Most frames"</span>
                        <input type="number" min="2" step="2" data-testid="max-frames"
                            prop:value=move || state.max_frames.get().to_string()
                            on:change=on_max_frames/>
                    </label>
                    <label>
                        <span class="label">"Text length limit (tokens)"</span>
                        <input type="number" min="1" step="1" data-testid="max-length"
                            placeholder=move || state.default_max_length.get().to_string()
                            prop:value=move || state.max_length.get().map(|v| v.to_string()).unwrap_or_default()
                            on:change=on_max_length/>
                    </label>
                </div>
                {move || state.settings_note.get().map(|note| view! {
                    <p class="note" role="status" data-testid="settings-note">{note}</p>
                })}
                <p class="hint">
                    "Videos are sampled at this rate, up to Most frames. Document text longer \
                     than the limit is cut, as the reference cuts it; changing the limit loads \
                     the model again."
                </p>
            </details>
        </section>
    }
}

/// The query's image or video: a picker, then a preview with a remove button.
#[component]
fn QueryMedia(key: &'static str, kind: Kind, label: &'static str) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let signal = if kind == Kind::Image {
        state.query_image
    } else {
        state.query_video
    };
    let accept = if kind == Kind::Image {
        "image/*"
    } else {
        "video/*"
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let file = list(input.files()).into_iter().next();
        input.set_value("");
        match file {
            Some(file) if kind_of(&file) == Some(kind) => state.set_query_media(key, Some(file)),
            Some(file) => state.notice.set(Some(format!(
                "{} is not {}; pick {}.",
                file.name(),
                if kind == Kind::Image {
                    "an image"
                } else {
                    "a video"
                },
                if kind == Kind::Image {
                    "a PNG, JPEG, WebP, GIF, BMP or TIFF image"
                } else {
                    "an MP4, WebM or MOV video"
                }
            ))),
            None => {}
        }
    };
    let test_id = format!("{key}-input");
    let input = NodeRef::<leptos::html::Input>::new();
    view! {
        <div class="query-media">
            <input type="file" class="hidden" accept=accept data-testid=test_id node_ref=input on:change=on_pick/>
            {move || match signal.get() {
                None => view! {
                    <button on:click=move |_| { if let Some(i) = input.get() { i.click(); } }>
                        "Add a " {label.to_lowercase()}
                    </button>
                }
                .into_any(),
                Some(media) => view! {
                    <figure class="thumb">
                        {if kind == Kind::Image {
                            image(&media)
                        } else {
                            view! { <VideoThumb media=media.clone()/> }.into_any()
                        }}
                        <figcaption>
                            <span>{label} ": " {media.name.clone()}</span>
                            <button class="small" aria-label=format!("Remove the {}", label.to_lowercase())
                                on:click=move |_| state.set_query_media(key, None)>"Remove"</button>
                        </figcaption>
                        // How the last rerank sampled it, under it.
                        {move || (kind == Kind::Video).then(|| {
                            state.run.with(|r| r.query_videos.clone()).into_iter().map(video_note).collect_view()
                        })}
                    </figure>
                }
                .into_any(),
            }}
        </div>
    }
}
