//! Where a forward pass spends its time, for `sift bench --profile`: each stage waits for the
//! device before and after it (so GPU work is counted where it is queued), and a stage inside
//! another is counted once, in the inner one. Off, a stage is a plain call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::tensor::Device;

/// Seconds per stage since [`start`], in the order stages first ran; `None` when off.
static PROFILE: Mutex<Option<Profile>> = Mutex::new(None);

#[derive(Default)]
struct Profile {
    totals: Vec<(&'static str, Duration)>,
    /// Time spent in the stages running inside each open stage, innermost last.
    inner: Vec<Duration>,
}

/// Starts (or restarts) profiling in this process.
pub fn start() {
    *lock() = Some(Profile::default());
}

/// Stops profiling and returns each stage's own time (without the stages inside it).
pub fn stop() -> Vec<(&'static str, Duration)> {
    lock().take().map(|p| p.totals).unwrap_or_default()
}

fn lock() -> std::sync::MutexGuard<'static, Option<Profile>> {
    PROFILE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `work` as stage `name` of a profile when one is on.
pub(crate) fn stage<T>(name: &'static str, device: &Device, work: impl FnOnce() -> T) -> T {
    if lock()
        .as_mut()
        .map(|p| p.inner.push(Duration::ZERO))
        .is_none()
    {
        return work();
    }
    // A device error surfaces in the work itself; the profile only needs the wait.
    let _ = device.sync();
    let started = Instant::now();
    let out = work();
    let _ = device.sync();
    let elapsed = started.elapsed();
    if let Some(p) = lock().as_mut() {
        let inner = p.inner.pop().unwrap_or_default();
        if let Some(outer) = p.inner.last_mut() {
            *outer += elapsed;
        }
        let own = elapsed.saturating_sub(inner);
        match p.totals.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += own,
            None => p.totals.push((name, own)),
        }
    }
    out
}
