//! A forward pass that panics, as burn does when the GPU fails to allocate or is lost: a
//! batch's documents are computed again one at a time, a document whose own pass panics gets
//! its own error, the next one is scored, and the model is loaded again before more work. Its own test binary: fail points are global to the process.

use sift::{Content, DocError, Request, RerankOptions, Reranker};
use sift_tests::downloaded_model;

#[test]
fn a_panicking_forward_pass_is_the_documents_error_and_the_model_is_loaded_again() {
    let scenario = fail::FailScenario::setup();
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let request = Request {
        query: Content::text("a red painting"),
        documents: vec![
            Content::text("A painting in shades of red."),
            Content::text("Stock prices fell sharply."),
        ],
        ..Request::default()
    };
    let expected: Vec<f32> = reranker
        .score(&request)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(!reranker.needs_reload());

    // The next two forward passes panic: the batch's, then the first document's alone.
    fail::cfg("sift::forward", "2*panic(out of GPU memory)").unwrap();
    let scores = reranker.score(&request);
    match &scores[0] {
        Err(e @ DocError::Crashed(message)) => {
            assert!(message.contains("out of GPU memory"), "{e}");
            assert!(e.to_string().contains("loaded again"), "{e}");
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    // Computed whole here, after the query's shared prefix before: equal up to the last bits.
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-6;
    assert!(
        close(*scores[1].as_ref().unwrap(), expected[1]),
        "{scores:?}"
    );
    assert!(reranker.needs_reload());

    let reranker = reranker.reloaded().unwrap();
    assert!(!reranker.needs_reload());
    let again: Vec<f32> = reranker
        .score(&request)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        again.iter().zip(&expected).all(|(&a, &b)| close(a, b)),
        "{again:?} vs {expected:?}"
    );
    scenario.teardown();
}
