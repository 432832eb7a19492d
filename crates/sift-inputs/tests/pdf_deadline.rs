//! The deadline of a page's render (feature `pdf`): a page that renders too slowly is an error
//! at its deadline, its render left to finish on its own thread, and while
//! `MAX_ABANDONED_RENDERS` such renders are running further renders are refused. A test binary
//! of its own: the count of abandoned renders is per process, and would refuse the renders of
//! the other PDF tests while this one holds it.

use std::time::{Duration, Instant};

use sift_inputs::pdf::{MAX_ABANDONED_RENDERS, PdfDocument, PdfError, PdfOptions};
use sift_inputs::{ImageOptions, ProcessorConfig};

/// One page whose content is `fills` paths filling the whole page.
fn slow_pdf(fills: usize) -> Vec<u8> {
    let content = "0 0 m 100 0 l 100 100 l 0 100 l f\n".repeat(fills);
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 100 100] >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    out
}

#[test]
fn slow_renders_stop_at_their_deadline_and_cannot_pile_up() {
    let opts = ImageOptions {
        max_pixels: 256 * 32 * 32,
        ..ImageOptions::default()
    };
    let proc = ProcessorConfig::default();
    let limit = Duration::from_millis(200);
    let pdf_opts = PdfOptions {
        render_timeout: limit,
        ..PdfOptions::default()
    };
    // Seconds of rendering per try here, well past the limit.
    let slow = PdfDocument::from_bytes(slow_pdf(30_000), &pdf_opts).unwrap();
    // A quick page, with the default limit so that a busy machine does not time it out.
    let quick = PdfDocument::from_bytes(slow_pdf(1), &PdfOptions::default()).unwrap();
    quick.render_page(1, &opts, &proc).unwrap();
    for _ in 0..MAX_ABANDONED_RENDERS {
        let start = Instant::now();
        let err = slow.render_page(1, &opts, &proc).unwrap_err();
        assert!(
            start.elapsed() < limit + Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(err, PdfError::RenderTimedOut { page: 1, limit: l } if l == limit),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("PdfOptions::render_timeout"),
            "{err}"
        );
    }
    // Four renders are still running: even a quick page is refused, at once.
    let start = Instant::now();
    let err = quick.render_page(1, &opts, &proc).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, PdfError::RendersStuck { page: 1, running } if running == MAX_ABANDONED_RENDERS),
        "{err:?}"
    );
    // Once they finish, renders are taken again.
    let start = Instant::now();
    loop {
        match quick.render_page(1, &opts, &proc) {
            Ok(_) => break,
            Err(PdfError::RendersStuck { .. }) if start.elapsed() < Duration::from_secs(120) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("after {:?}: {e:?}", start.elapsed()),
        }
    }
}
