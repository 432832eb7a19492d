//! The documents: typed or pasted texts, with images or a video attached to make one document
//! of several parts, and files picked or dropped (images, videos, text files, PDFs, whole
//! folders), each its own document (a PDF one per page). Each is shown as a card of its parts
//! and is removable.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlInputElement;

use super::context::Ctx;
use super::preview::preview;
use crate::files::{Kind, dropped, kind_of, list};
use crate::state::{Doc, Item, MAX_PARTS, MediaFile};

#[component]
pub fn DocumentsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let draft = RwSignal::new(String::new());
    // Images and videos attached to the text being written: one document with it.
    let attached = RwSignal::new_local(Vec::<Item>::new());
    let files = NodeRef::<leptos::html::Input>::new();
    let folder = NodeRef::<leptos::html::Input>::new();
    let attach = NodeRef::<leptos::html::Input>::new();
    let dragging = RwSignal::new(false);

    let empty = move || draft.with(|t| t.trim().is_empty()) && attached.with(Vec::is_empty);
    let add_document = move || {
        if empty() {
            return;
        }
        let text = draft.get_untracked();
        let mut parts = Vec::new();
        if !text.trim().is_empty() {
            parts.push(Item::Text { text, name: None });
        }
        parts.extend(attached.get_untracked());
        state.add(parts);
        draft.set(String::new());
        attached.set(Vec::new());
    };
    let on_attach = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let picked = list(input.files());
        input.set_value("");
        let mut refused = Vec::new();
        attached.update(|parts| {
            for file in picked {
                match kind_of(&file) {
                    _ if parts.len() + 1 >= MAX_PARTS => refused.push(file.name()),
                    Some(Kind::Image) => parts.push(Item::Image(MediaFile::new(file))),
                    Some(Kind::Video) => parts.push(Item::Video(MediaFile::new(file))),
                    _ => refused.push(file.name()),
                }
            }
        });
        if !refused.is_empty() {
            state.notice.set(Some(format!(
                "Not attached: {}. A document holds a text and up to {} images and videos; \
                 add text files and PDFs as documents of their own.",
                refused.join(", "),
                MAX_PARTS - 1
            )));
        }
    };
    let on_files = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let picked = list(input.files());
        input.set_value("");
        ctx.take_files(picked);
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        let files = dropped(&ev);
        spawn_local(async move { ctx.take_files(files.await) });
    };
    let count = move || state.docs.with(Vec::len);

    view! {
        <section class="card" aria-labelledby="documents-title" data-testid="documents">
            <h2 id="documents-title">
                "Documents " <span class="count" data-testid="doc-count">{count}</span>
            </h2>
            <label>
                <span class="label">"Type or paste a text"</span>
                <textarea rows="3" data-testid="doc-text" placeholder="e.g. Cats sleep 12 to 16 hours a day."
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && ev.shift_key() { ev.prevent_default(); add_document(); }
                    }></textarea>
            </label>
            <ul class="attached" data-testid="attached">
                {move || attached.get().into_iter().enumerate().map(|(i, item)| view! {
                    <li>
                        <span class="kind">{item.kind()}</span> " " {item.label()}
                        <button class="small" aria-label=format!("Detach {}", item.label())
                            on:click=move |_| attached.update(|parts| { parts.remove(i); })>"×"</button>
                    </li>
                }).collect_view()}
            </ul>
            <div class="row wrap">
                <button data-testid="add-text" on:click=move |_| add_document() disabled=empty>
                    {move || if attached.with(Vec::is_empty) { "Add text" } else { "Add document" }}
                </button>
                <button data-testid="attach" on:click=move |_| { if let Some(i) = attach.get() { i.click(); } }>
                    "Attach images or a video"
                </button>
                <input type="file" class="hidden" multiple node_ref=attach data-testid="attach-input"
                    accept="image/*,video/*" on:change=on_attach/>
                <span class="hint">"Attached files and the text make one document. Shift+Enter adds it too."</span>
            </div>
            <div class="drop" class:dragging=move || dragging.get() data-testid="drop"
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop>
                <p>"Drop images, videos, PDFs, text files or whole folders here: each file is a document, each PDF page one"</p>
                <p>
                    <button on:click=move |_| { if let Some(i) = files.get() { i.click(); } }>"Choose files"</button>
                    " "
                    <button on:click=move |_| { if let Some(i) = folder.get() { i.click(); } }>"Choose a folder"</button>
                </p>
                <input type="file" class="hidden" multiple node_ref=files data-testid="doc-files"
                    accept="image/*,video/*,text/*,.md,.csv,.json,.txt,application/pdf,.pdf" on:change=on_files/>
                <input type="file" class="hidden" multiple node_ref=folder prop:webkitdirectory=true
                    on:change=on_files/>
            </div>
            {move || state.pdf_activity.get().filter(|_| !state.run.with(|r| r.running)).map(|doing| view! {
                <p class="hint" role="status" data-testid="pdf-activity">{capitalized(&doing)} "…"</p>
            })}
            <ol class="docs" data-testid="docs">
                <For each=move || state.docs.get() key=|d| d.id let(doc)>
                    <DocCard doc=doc/>
                </For>
            </ol>
        </section>
    }
}

/// "Opening report.pdf" from "opening report.pdf".
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What a document is made of, for its card: "image", or "text + image".
pub fn kinds(doc: &Doc) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for part in &doc.parts {
        if !kinds.contains(&part.kind()) {
            kinds.push(part.kind());
        }
    }
    kinds.join(" + ")
}

#[component]
fn DocCard(doc: Doc) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let id = doc.id;
    let label = doc.label();
    let body = preview(&doc, 240, &[]);
    // A PDF that cannot be opened says why as soon as it is added.
    let pdf_error = doc.parts.iter().find_map(|p| match p {
        Item::PdfPage { page: Err(why), .. } => Some(why.clone()),
        _ => None,
    });
    view! {
        <li class="doc" data-testid="doc" data-id=id data-kind=doc.kind()>
            <span class="kind">{kinds(&doc)}</span>
            {body}
            <button class="small remove" aria-label=format!("Remove document {label}")
                data-testid="remove-doc"
                on:click=move |_| ctx.state.remove(id)>"Remove"</button>
            {pdf_error.map(|why| view! { <p class="error wide" data-testid="pdf-error">{why}</p> })}
        </li>
    }
}
