//! A deadline for a page's render. hayro has no cancellation and no hook that is called
//! regularly while it interprets a page (its `warning_sink` and font resolvers are called only
//! for some pages, and its drawing device is private), so natively a render runs on a thread of
//! its own: past the deadline the caller gets an error and the thread is left to finish alone.
//! At most [`MAX_ABANDONED_RENDERS`] such threads may be running before further renders are
//! refused, so that hostile files cannot pile them up. wasm32 has no threads: there the render
//! runs inline, and the page's worker is what a deadline terminates.

use super::PdfError;

/// Renders past their deadline that may still be running before further renders are refused
/// with [`PdfError::RendersStuck`] (natively; on wasm32 renders run inline).
pub const MAX_ABANDONED_RENDERS: usize = 4;

#[cfg(not(target_family = "wasm"))]
pub(super) use native::run;

#[cfg(target_family = "wasm")]
pub(super) fn run<T>(
    _page: u32,
    _limit: std::time::Duration,
    job: impl FnOnce() -> T,
) -> Result<T, PdfError> {
    Ok(job())
}

#[cfg(not(target_family = "wasm"))]
mod native {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, PoisonError};
    use std::time::Duration;

    use super::{MAX_ABANDONED_RENDERS, PdfError};

    /// Renders past their deadline that are still running, in this process.
    static ABANDONED: AtomicUsize = AtomicUsize::new(0);

    /// hayro's interpreter recurses into forms, patterns and glyphs (up to 50 deep); the
    /// default 2 MiB of a spawned thread is less than the main thread's 8 MiB.
    const STACK: usize = 8 << 20;

    enum Slot<T> {
        Running,
        Done(T),
        /// The caller stopped waiting; the thread releases its place in `ABANDONED`.
        Abandoned,
    }

    /// Runs `job` on a thread of its own and waits at most `limit` for it.
    pub(in crate::pdf) fn run<T: Send + 'static>(
        page: u32,
        limit: Duration,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PdfError> {
        let running = ABANDONED.load(Ordering::SeqCst);
        if running >= MAX_ABANDONED_RENDERS {
            return Err(PdfError::RendersStuck { page, running });
        }
        let slot = Arc::new((Mutex::new(Slot::Running), Condvar::new()));
        let theirs = Arc::clone(&slot);
        std::thread::Builder::new()
            .name(format!("sift-pdf-page-{page}"))
            .stack_size(STACK)
            .spawn(move || {
                let out = job();
                let (lock, done) = &*theirs;
                let mut slot = lock.lock().unwrap_or_else(PoisonError::into_inner);
                match *slot {
                    Slot::Abandoned => {
                        ABANDONED.fetch_sub(1, Ordering::SeqCst);
                    }
                    _ => {
                        *slot = Slot::Done(out);
                        done.notify_one();
                    }
                }
            })
            .map_err(|e| PdfError::RenderFailed {
                page,
                detail: format!("no thread could be started to render it: {e}"),
            })?;
        let (lock, done) = &*slot;
        let slot = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut slot, _) = done
            .wait_timeout_while(slot, limit, |slot| matches!(slot, Slot::Running))
            .unwrap_or_else(PoisonError::into_inner);
        // Under the lock, so the thread sees either its result taken or the render abandoned.
        match std::mem::replace(&mut *slot, Slot::Abandoned) {
            Slot::Done(out) => Ok(out),
            _ => {
                ABANDONED.fetch_add(1, Ordering::SeqCst);
                Err(PdfError::RenderTimedOut { page, limit })
            }
        }
    }
}
