//! A document as the lists show it.

use leptos::prelude::*;

use crate::state::{Item, excerpt};

/// A document as the lists show it: a text's excerpt of `chars` characters, an image, or a
/// playable video, with its file name.
pub fn preview(item: &Item, chars: usize) -> AnyView {
    let (media, name) = match item {
        Item::Text { text, name } => (
            view! { <p class="excerpt">{excerpt(text, chars)}</p> }.into_any(),
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
