//! The model's one thread: requests wait in a bounded queue and are scored one at a time, so
//! the GPU works on one request's documents at once. A full queue refuses new work (503) rather
//! than growing; a request whose client went away stops before its next document.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use sift::{DocError, Request, Reranker, Scored};
use tempfile::TempPath;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Each request's documents' results, in request order.
pub type Results = Vec<Vec<Result<Scored, DocError>>>;

struct Job {
    requests: Vec<Request>,
    cancelled: Arc<AtomicBool>,
    reply: oneshot::Sender<Results>,
    /// Video files written for this job, deleted once it is done.
    _media: Vec<TempPath>,
}

pub struct Scorer {
    sender: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    thread: std::thread::JoinHandle<()>,
}

/// Cancels a job when the handler waiting for it is dropped (its client disconnected).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Scorer {
    pub fn start(reranker: Reranker, capacity: usize, metrics: Arc<Metrics>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Job>(capacity.max(1));
        let thread_metrics = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("sift-scorer".into())
            .spawn(move || {
                let mut reranker = reranker;
                while let Some(job) = receiver.blocking_recv() {
                    thread_metrics.queue_depth.dec();
                    run(&reranker, job, &thread_metrics);
                    if reranker.needs_reload() {
                        tracing::warn!("a forward pass panicked; loading the model again");
                        match reranker.reloaded() {
                            Ok(fresh) => reranker = fresh,
                            Err(error) => {
                                // The thread ends: /health reports it, requests get a 503.
                                tracing::error!(%error, "the model could not be loaded again");
                                return;
                            }
                        }
                    }
                }
            })
            .expect("the OS starts a thread");
        Self {
            sender,
            metrics,
            thread,
        }
    }

    /// Whether the model's thread still runs.
    pub fn alive(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Queues `requests` and waits for their scores. Dropping the returned future (the client
    /// went away) cancels the rest of the work.
    pub async fn score(
        &self,
        requests: Vec<Request>,
        media: Vec<TempPath>,
    ) -> Result<Results, ApiError> {
        let (reply, results) = oneshot::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = Job {
            requests,
            cancelled: cancelled.clone(),
            reply,
            _media: media,
        };
        self.metrics.queue_depth.inc();
        if let Err(e) = self.sender.try_send(job) {
            self.metrics.queue_depth.dec();
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the server is busy: {} requests are already waiting (--max-queue); \
                             retry after a second, or run more replicas",
                            self.sender.max_capacity()
                        ),
                    )
                },
                mpsc::error::TrySendError::Closed(_) => stopped(),
            });
        }
        // Dropped with this future: before the answer, it cancels the job; after, the job is
        // done and the flag is read no more.
        let _cancel = CancelOnDrop(cancelled);
        results.await.map_err(|_| stopped())
    }
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the model's thread has stopped; restart the server (its log says why)",
    )
}

fn run(reranker: &Reranker, job: Job, metrics: &Metrics) {
    metrics.scoring.set(1);
    let total: usize = job.requests.iter().map(|r| r.documents.len()).sum();
    let mut done = 0;
    let mut results = Vec::with_capacity(job.requests.len());
    // Whether the client has gone; then the `left` documents are counted as cancelled.
    let cancelled = |left: usize| {
        let gone = job.cancelled.load(Ordering::Relaxed);
        if gone {
            metrics.documents_cancelled.inc_by(left as u64);
            tracing::info!(
                documents_left = left,
                "client went away; its request is cancelled"
            );
        }
        gone
    };
    for request in &job.requests {
        if cancelled(total - done) {
            break;
        }
        let query = reranker.prepare_query(request);
        let scores = reranker.score_documents(&query, &request.documents, |scored| {
            scored == request.documents.len() || !cancelled(total - done - scored)
        });
        for s in scores.iter().flatten() {
            metrics.documents.inc();
            metrics.tokens.inc_by(s.tokens as u64);
        }
        done += scores.len();
        let finished = scores.len() == request.documents.len();
        results.push(scores);
        if !finished {
            break;
        }
    }
    metrics.scoring.set(0);
    if done == total {
        // The client may have gone in the meantime; then nobody reads this.
        let _ = job.reply.send(results);
    }
}
