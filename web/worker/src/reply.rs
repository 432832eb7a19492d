//! Messages to the page: each answer as it is known, and the progress of long steps.

use sift_web_protocol::{FromWorker, Stage, encode};
use wasm_bindgen::JsCast;
use web_sys::DedicatedWorkerGlobalScope;

/// Sends a message to the page.
pub fn post(message: &FromWorker) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    // Posting only fails for values that cannot be cloned, which ours never are.
    let _ = scope.post_message(&encode(message));
}

/// Sends a message whose `transfer` objects (pixel buffers) move to the page, not copied.
pub fn post_with_transfer(message: &FromWorker, transfer: &js_sys::Array) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message_with_transfer(&encode(message), transfer);
}

/// Progress of a long step, sent to the page at most every 100 ms.
pub struct Progress {
    stage: Stage,
    pub done: u64,
    pub total: u64,
    detail: String,
    last_post: f64,
}

impl Progress {
    pub fn new(stage: Stage, total: u64) -> Self {
        let progress = Self {
            stage,
            done: 0,
            total,
            detail: String::new(),
            last_post: js_sys::Date::now(),
        };
        progress.send();
        progress
    }

    fn send(&self) {
        post(&FromWorker::Progress {
            stage: self.stage,
            done: self.done,
            total: self.total,
            detail: self.detail.clone(),
        });
    }

    pub fn detail(&mut self, detail: &str) {
        self.detail = detail.to_string();
        self.send();
    }

    /// Changes the detail without a message of its own: it goes with the next progress.
    pub fn note(&mut self, detail: &str) {
        if self.detail != detail {
            self.detail = detail.to_string();
        }
    }

    pub fn add(&mut self, n: u64) {
        self.set(self.done + n);
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        let now = js_sys::Date::now();
        if now - self.last_post >= 100.0 || done >= self.total {
            self.last_post = now;
            self.send();
        }
    }
}
