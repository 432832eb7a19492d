//! Scored documents and their ranking: best first, failed documents last in request order.
//! The CLI, the browser app and the server all rank and print results through here.

use std::cmp::Ordering;
use std::fmt::Display;

use serde_json::{Value, json};

use crate::request::Request;

/// One document's score and the length of the prompt that produced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    /// `logit_yes − logit_no`, whose sigmoid is `score`: exact where `score` saturates at 0 or
    /// 1 in f32 (TEI's `raw_scores`).
    pub logit: f32,
    /// Tokens in the (query, document) prompt, visual tokens included.
    pub tokens: usize,
}

/// Document indices best first; failed documents last, in request order.
pub fn rank<E>(scores: &[Result<f32, E>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: &usize| scores[*i].as_ref().ok().copied();
    order.sort_by(|a, b| match (key(a), key(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    });
    order
}

/// The results as the CLI prints them, best first, at most `top_n`:
/// `{"results": [{"index": 2, "score": 0.91}, …, {"index": 1, "score": null, "error": "…"}]}`.
pub fn results_json<E: Display>(scores: &[Result<f32, E>], top_n: Option<usize>) -> Value {
    let results: Vec<Value> = rank(scores)
        .into_iter()
        .take(top_n.unwrap_or(usize::MAX))
        .map(|i| match &scores[i] {
            Ok(score) => json!({ "index": i, "score": score }),
            Err(e) => json!({ "index": i, "score": null, "error": e.to_string() }),
        })
        .collect();
    json!({ "results": results })
}

/// [`results_json`] of a request's scores, with each PDF page's file and page beside its result
/// (`"pdf": "report.pdf", "page": 7`; a PDF that could not be opened has no `"page"`).
pub fn request_results_json<E: Display>(
    request: &Request,
    scores: &[Result<f32, E>],
    top_n: Option<usize>,
) -> Value {
    let json = results_json(scores, top_n);
    #[cfg(feature = "pdf")]
    let json = with_pdf_pages(json, request);
    #[cfg(not(feature = "pdf"))]
    let _ = request;
    json
}

/// Each PDF page's result with its file and page.
#[cfg(feature = "pdf")]
fn with_pdf_pages(mut json: Value, request: &Request) -> Value {
    if let Some(results) = json["results"].as_array_mut() {
        for result in results {
            let index = result["index"].as_u64().unwrap_or(u64::MAX) as usize;
            let Some(page) = request.documents.get(index).and_then(|d| d.pdf_page()) else {
                continue;
            };
            result["pdf"] = json!(page.name);
            if let Some(number) = page.page {
                result["page"] = json!(number);
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_ties_in_request_order_failures_last() {
        let scores: Vec<Result<f32, String>> = vec![
            Err("bad".into()),
            Ok(0.2),
            Ok(0.9),
            Err("worse".into()),
            Ok(0.2),
        ];
        assert_eq!(rank(&scores), [2, 1, 4, 0, 3]);
        let json = results_json(&scores, Some(4));
        let results = json["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0], json!({"index": 2, "score": 0.9f32}));
        assert_eq!(
            results[3],
            json!({"index": 0, "score": null, "error": "bad"})
        );
    }
}
