//! How results are printed: JSON for programs, a table for people.

use serde_json::{Value, json};
use sift::{DocError, Request};

/// Document indices best first; failed documents last, in request order.
fn ranking(scores: &[Result<f32, DocError>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: &usize| scores[*i].as_ref().ok().copied();
    order.sort_by(|a, b| match (key(a), key(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    });
    order
}

/// `{"results": [{"index": 2, "score": 0.91}, …, {"index": 1, "score": null, "error": "…"}]}`.
pub fn results_json(scores: &[Result<f32, DocError>], top_n: Option<usize>) -> Value {
    let results: Vec<Value> = ranking(scores)
        .into_iter()
        .take(top_n.unwrap_or(usize::MAX))
        .map(|i| match &scores[i] {
            Ok(score) => json!({ "index": i, "score": score }),
            Err(e) => json!({ "index": i, "score": null, "error": e.to_string() }),
        })
        .collect();
    json!({ "results": results })
}

/// A ranked table of the quick form's documents, named as the user typed them.
pub fn table(
    request: &Request,
    names: &[String],
    scores: &[Result<f32, DocError>],
    top_n: Option<usize>,
) -> String {
    debug_assert_eq!(request.documents.len(), names.len());
    let mut out = String::from("rank  score   document\n");
    for (rank, i) in ranking(scores)
        .into_iter()
        .take(top_n.unwrap_or(usize::MAX))
        .enumerate()
    {
        let mut name: String = names[i].chars().take(60).collect();
        if name.len() < names[i].len() {
            name.push('…');
        }
        let name = name.replace('\n', " ");
        match &scores[i] {
            Ok(score) => out.push_str(&format!("{:<5} {score:.4}  {name}\n", rank + 1)),
            Err(e) => out.push_str(&format!("-     error   {name}: {e}\n")),
        }
    }
    out
}
