//! How results are printed for people: a ranked table (programs get `sift::results_json`).

use sift::{DocError, Request, rank};

/// A ranked table of the quick form's documents, named as the user typed them.
pub fn table(
    request: &Request,
    names: &[String],
    scores: &[Result<f32, DocError>],
    top_n: Option<usize>,
) -> String {
    debug_assert_eq!(request.documents.len(), names.len());
    let mut out = String::from("rank  score   document\n");
    for (position, i) in rank(scores)
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
            Ok(score) => out.push_str(&format!("{:<5} {score:.4}  {name}\n", position + 1)),
            Err(e) => out.push_str(&format!("-     error   {name}: {e}\n")),
        }
    }
    out
}
