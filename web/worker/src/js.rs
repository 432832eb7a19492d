//! JavaScript values as Rust sees them.

use wasm_bindgen::{JsCast, JsValue};

/// A JavaScript error as a sentence.
pub fn js_error(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
