//! The query: text, an image and a video (any of them), the instruction, and how videos are
//! sampled.

use leptos::prelude::*;
use web_sys::HtmlInputElement;

use super::context::Ctx;
use crate::files::{Kind, kind_of, list};
use crate::kept_files::{QUERY_IMAGE, QUERY_VIDEO};
use crate::state::MediaFile;

#[component]
pub fn QueryPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    view! {
        <section class="card" aria-labelledby="query-title">
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
            <details>
                <summary>"Instruction and video sampling"</summary>
                <label>
                    <span class="label">"Instruction"</span>
                    <textarea rows="2" data-testid="instruction"
                        placeholder=move || state.default_instruction.get()
                        prop:value=move || state.instruction.get()
                        on:input=move |ev| state.instruction.set(event_target_value(&ev))></textarea>
                </label>
                <div class="row">
                    <label>
                        <span class="label">"Frames per second"</span>
                        <input type="number" min="0.1" step="0.1" data-testid="fps"
                            prop:value=move || state.fps.get().to_string()
                            on:change=move |ev| {
                                match event_target_value(&ev).parse::<f64>() {
                                    Ok(v) if v.is_finite() && v > 0.0 => state.fps.set(v),
                                    _ => state.notice.set(Some("Frames per second must be a positive number, such as 1.".into())),
                                }
                            }/>
                    </label>
                    <label>
                        <span class="label">"Most frames"</span>
                        <input type="number" min="2" step="2" data-testid="max-frames"
                            prop:value=move || state.max_frames.get().to_string()
                            on:change=move |ev| {
                                match event_target_value(&ev).parse::<usize>() {
                                    Ok(v) if v >= 2 => state.max_frames.set(v),
                                    _ => state.notice.set(Some("Most frames must be a whole number of 2 or more.".into())),
                                }
                            }/>
                    </label>
                </div>
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
                Some(MediaFile { name, url, .. }) => view! {
                    <figure class="thumb">
                        {if kind == Kind::Image {
                            view! { <img src=url alt=name.clone()/> }.into_any()
                        } else {
                            view! { <video src=url controls muted preload="metadata"></video> }.into_any()
                        }}
                        <figcaption>
                            <span>{label} ": " {name.clone()}</span>
                            <button class="small" aria-label=format!("Remove the {}", label.to_lowercase())
                                on:click=move |_| state.set_query_media(key, None)>"Remove"</button>
                        </figcaption>
                    </figure>
                }
                .into_any(),
            }}
        </div>
    }
}
