//! The documents: typed or pasted texts, and files picked or dropped (images, videos, text
//! files, whole folders), each shown and removable.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlInputElement;

use super::context::Ctx;
use super::preview::preview;
use crate::files::{dropped, list};
use crate::state::{Doc, Item};

#[component]
pub fn DocumentsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let state = ctx.state;
    let draft = RwSignal::new(String::new());
    let files = NodeRef::<leptos::html::Input>::new();
    let folder = NodeRef::<leptos::html::Input>::new();
    let dragging = RwSignal::new(false);

    let add_text = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        state.add(Item::Text { text, name: None });
        draft.set(String::new());
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
        <section class="card" aria-labelledby="documents-title">
            <h2 id="documents-title">
                "Documents " <span class="count" data-testid="doc-count">{count}</span>
            </h2>
            <label>
                <span class="label">"Type or paste a text"</span>
                <textarea rows="3" data-testid="doc-text" placeholder="e.g. Cats sleep 12 to 16 hours a day."
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" && ev.shift_key() { ev.prevent_default(); add_text(); }
                    }></textarea>
            </label>
            <div class="row">
                <button data-testid="add-text" on:click=move |_| add_text()
                    disabled=move || draft.with(|t| t.trim().is_empty())>"Add text"</button>
                <span class="hint">"Shift+Enter adds it too."</span>
            </div>
            <div class="drop" class:dragging=move || dragging.get() data-testid="drop"
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop>
                <p>"Drop images, videos, text files or whole folders here"</p>
                <p>
                    <button on:click=move |_| { if let Some(i) = files.get() { i.click(); } }>"Choose files"</button>
                    " "
                    <button on:click=move |_| { if let Some(i) = folder.get() { i.click(); } }>"Choose a folder"</button>
                </p>
                <input type="file" class="hidden" multiple node_ref=files data-testid="doc-files"
                    accept="image/*,video/*,text/*,.md,.csv,.json,.txt" on:change=on_files/>
                <input type="file" class="hidden" multiple node_ref=folder prop:webkitdirectory=true
                    on:change=on_files/>
            </div>
            <ol class="docs" data-testid="docs">
                <For each=move || state.docs.get() key=|d| d.id let(doc)>
                    <DocCard doc=doc/>
                </For>
            </ol>
        </section>
    }
}

#[component]
fn DocCard(doc: Doc) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let id = doc.id;
    let label = doc.item.label();
    let kind = doc.item.kind();
    let body = preview(&doc.item, 240);
    view! {
        <li class="doc" data-testid="doc" data-id=id data-kind=kind>
            <span class="kind">{kind}</span>
            {body}
            <button class="small remove" aria-label=format!("Remove document {label}")
                data-testid="remove-doc"
                on:click=move |_| {
                    ctx.state.remove(id);
                    // Its result goes too; the job's document order stays, for results to come.
                    ctx.state.run.update(|run| {
                        run.results.remove(&id);
                        run.order.retain(|&d| d != id);
                    });
                }>"Remove"</button>
        </li>
    }
}
