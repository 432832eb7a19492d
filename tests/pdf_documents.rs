//! PDF pages as documents through the library (feature `pdf`): a request's `{"pdf", "pages"}`
//! is one document per page, each scored exactly as the page rendered to an image is; a PDF
//! that cannot be opened is its own document's error; results name the file and the page.

use sift::pdf::{PdfDocument, PdfOptions, PdfPage};
use sift::{Content, ImageOptions, ImageSource, Request, RerankOptions, Reranker};
use sift_inputs::ProcessorConfig;
use sift_tests::{downloaded_model, golden_dir};

const REQUEST: &str = r#"{"query": {"text": "a chart of quarterly revenue"},
    "documents": [{"pdf": "report.pdf", "pages": "4,2"}, {"pdf": "damaged.pdf"},
                  {"text": "Revenue grew in the third quarter."}]}"#;

#[test]
fn each_page_is_a_document_scored_as_its_rendered_image() {
    let model = downloaded_model();
    let reranker = Reranker::load(model.path(), RerankOptions::default()).unwrap();
    let dir = golden_dir().join("pdf");
    let request = Request::from_json(REQUEST, &dir).unwrap();
    assert_eq!(
        request.documents.len(),
        4,
        "two pages, the damaged file, the text"
    );
    let scores = reranker.score(&request);

    // The golden model has no preprocessor_config.json: the reranker's is the default.
    let report = PdfDocument::open_path(&dir.join("report.pdf"), &PdfOptions::default()).unwrap();
    let images: Vec<Content> = [4, 2]
        .map(|page| {
            let image = report
                .render_page(page, &ImageOptions::default(), &ProcessorConfig::default())
                .unwrap();
            Content::image(ImageSource::Pixels(image))
        })
        .into();
    let as_images = reranker.score(&Request {
        query: request.query.clone(),
        documents: images,
        ..Request::default()
    });
    for (page, (got, expected)) in scores.iter().zip(&as_images).enumerate() {
        let (got, expected) = (*got.as_ref().unwrap(), *expected.as_ref().unwrap());
        assert!(
            (got - expected).abs() <= 1e-6,
            "page document {page}: {got}, as an image {expected}"
        );
    }
    let damaged = scores[2].as_ref().unwrap_err().to_string();
    assert!(
        damaged.starts_with("damaged.pdf: the PDF is damaged"),
        "{damaged}"
    );
    assert!(scores[3].is_ok());

    let json = sift::request_results_json(&request, &scores, None);
    let by_index = |index: u64| {
        json["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["index"] == index)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (by_index(0)["pdf"].clone(), by_index(0)["page"].clone()),
        ("report.pdf".into(), 4.into())
    );
    assert_eq!(by_index(1)["page"], 2);
    assert_eq!(by_index(2)["pdf"], "damaged.pdf");
    assert!(by_index(2).get("page").is_none());
    assert!(by_index(3).get("pdf").is_none());
}

#[test]
fn pdf_documents_are_refused_where_they_cannot_be() {
    let dir = golden_dir().join("pdf");
    let refused = |json: &str| Request::from_json(json, &dir).unwrap_err().to_string();
    let err = refused(r#"{"query": {"pdf": "report.pdf"}, "documents": [{"text": "x"}]}"#);
    assert!(err.contains("the query cannot be a PDF"), "{err}");
    let err =
        refused(r#"{"query": {"text": "q"}, "documents": [{"pdf": "report.pdf", "text": "x"}]}"#);
    assert!(err.contains("holds only \"pdf\" and \"pages\""), "{err}");
    let err = refused(r#"{"query": {"text": "q"}, "documents": [{"pages": "1"}]}"#);
    assert!(err.contains("\"pages\" belongs to a PDF document"), "{err}");
    // 1,000 pages per request: 251 copies of the 4-page report are refused.
    let report = serde_json::json!({"pdf": "report.pdf"});
    let many = serde_json::json!({"query": {"text": "q"}, "documents": vec![report; 251]});
    let err = refused(&many.to_string());
    assert!(
        err.contains("over 1000 pages, the limit per request"),
        "{err}"
    );
    // A range that does not fit the file is that document's error, not the request's.
    let request = Request::from_json(
        r#"{"query": {"text": "q"}, "documents": [{"pdf": "report.pdf", "pages": "9"}]}"#,
        &dir,
    )
    .unwrap();
    assert_eq!(request.documents.len(), 1);
    let page = request.documents[0].pdf_page().unwrap();
    assert_eq!((page.name.as_str(), page.page), ("report.pdf", None));
}

#[test]
fn a_pdf_held_in_memory_gives_the_pages_its_file_gives() {
    let dir = golden_dir().join("pdf");
    let options = PdfOptions::default();
    let bytes = std::fs::read(dir.join("report.pdf")).unwrap();
    let from_bytes = PdfPage::pages_of_bytes(bytes, "report.pdf", Some("4,2"), &options);
    let from_file = PdfPage::pages_of(&dir.join("report.pdf"), "report.pdf", Some("4,2"), &options);
    let pages = |pages: &[PdfPage]| pages.iter().map(|p| p.page).collect::<Vec<_>>();
    assert_eq!(pages(&from_bytes), [Some(4), Some(2)]);
    assert_eq!(pages(&from_bytes), pages(&from_file));
    let (opts, processor) = (ImageOptions::default(), ProcessorConfig::default());
    assert_eq!(
        from_bytes[0].render(&opts, &processor).unwrap(),
        from_file[0].render(&opts, &processor).unwrap()
    );

    let damaged = std::fs::read(dir.join("damaged.pdf")).unwrap();
    let refused = PdfPage::pages_of_bytes(damaged, "damaged.pdf", None, &options);
    assert_eq!(refused.len(), 1, "one source holding the error");
    let error = refused[0]
        .render(&opts, &processor)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("damaged.pdf: the PDF is damaged"),
        "{error}"
    );
}
