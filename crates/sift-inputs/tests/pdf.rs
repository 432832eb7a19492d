//! PDF pages (feature `pdf`) on the test set of tests/golden/pdf (made by its make.py): every
//! page renders at the model's size, agrees with poppler's `pdftoppm` at that size (SSIM against
//! the committed references), and every broken input is its own typed error.
//!
//! `SIFT_PDF_RENDERS=DIR` also writes each page at the full budget to DIR/<name>-<page>.png, for
//! `make.py --ssim DIR` (the table in docs/pdf.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use sift_inputs::pdf::{DEFAULT_MAX_PDF_PAGES, PageRange, PdfDocument, PdfError, PdfOptions};
use sift_inputs::{ImageOptions, ProcessorConfig, RgbImage, resize_for_model};

/// The files that render, with their page counts.
const RENDERED: [(&str, u32); 5] = [
    ("text", 2),
    ("slide", 1),
    ("scan", 1),
    ("report", 4),
    ("restricted", 1),
];

/// A budget for the tests that need a page but not its detail (renders in a tenth of the time).
const SMALL_BUDGET: u64 = 256 * 32 * 32;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/pdf")
        .join(name)
}

fn open(name: &str) -> Result<PdfDocument, PdfError> {
    PdfDocument::open_path(&golden(&format!("{name}.pdf")), &PdfOptions::default())
}

fn budget(max_pixels: u64) -> ImageOptions {
    ImageOptions {
        max_pixels,
        ..ImageOptions::default()
    }
}

/// A PDF of one page per content stream, with a correct cross-reference table; `media_box` as
/// written in the file, e.g. "0 0 612 792".
fn make_pdf(media_box: &str, contents: &[&str]) -> Vec<u8> {
    let n = contents.len();
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} /MediaBox [{media_box}] >>",
            kids.join(" ")
        ),
    ];
    for (i, content) in contents.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /Contents {} 0 R >>",
            4 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ));
    }
    pdf_of(objects)
}

/// A PDF of `objects`, numbered from 1 (the first the catalog), with its cross-reference table.
fn pdf_of(objects: Vec<String>) -> Vec<u8> {
    pdf_of_bytes(objects.into_iter().map(String::into_bytes).collect())
}

/// [`pdf_of`] for objects that hold binary streams.
fn pdf_of_bytes(objects: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn from_bytes(bytes: Vec<u8>) -> Result<PdfDocument, PdfError> {
    PdfDocument::from_bytes(bytes, &PdfOptions::default())
}

fn render(doc: &PdfDocument, page: u32, opts: &ImageOptions) -> Result<RgbImage, PdfError> {
    doc.render_page(page, opts, &ProcessorConfig::default())
}

#[test]
fn every_page_renders_at_the_models_size() {
    let opts = ImageOptions::default();
    let proc = ProcessorConfig::default();
    let out_dir = std::env::var_os("SIFT_PDF_RENDERS").map(PathBuf::from);
    for (name, pages) in RENDERED {
        let doc = open(name).unwrap();
        assert_eq!(doc.page_count(), pages, "{name}");
        for page in 1..=pages {
            let start = Instant::now();
            let img = render(&doc, page, &opts).unwrap();
            let elapsed = start.elapsed();
            let (w, h) = img.dimensions();
            eprintln!("{name} page {page}: {w}x{h} in {elapsed:.2?}");
            assert_eq!((w, h), doc.render_size(page, &opts, &proc).unwrap());
            assert!(w % 32 == 0 && h % 32 == 0, "{name} {page}: {w}x{h}");
            let pixels = u64::from(w) * u64::from(h);
            // Within the budget, and filling most of it: never a small render scaled up.
            assert!(pixels <= opts.max_pixels, "{name} {page}: {pixels}");
            assert!(
                pixels * 10 >= opts.max_pixels * 9,
                "{name} {page}: {pixels}"
            );
            // The page keeps its shape (to the multiple of 32 smart_resize rounds to).
            let (pw, ph) = doc.page_size(page).unwrap();
            let shape = (f64::from(w) / f64::from(h)) / (pw / ph);
            assert!((0.95..1.05).contains(&shape), "{name} {page}: {shape}");
            // The model keeps the render as it is: no second resampling.
            assert_eq!(resize_for_model(&img, &opts, &proc).unwrap(), img);
            assert!(
                img.pixels().any(|p| p.0 != [255; 3]),
                "{name} {page} is blank"
            );
            if let Some(dir) = &out_dir {
                img.save(dir.join(format!("{name}-{page}.png"))).unwrap();
            }
        }
    }
}

/// SSIM as its authors' reference implementation (Wang's ssim.m) computes it: luma (MATLAB's
/// rgb2gray), downsampled by round(min(w, h) / 256), 11x11 Gaussian window of sigma 1.5,
/// K1 0.01, K2 0.03. docs/pdf.md also gives the stricter SSIM at full resolution (make.py --ssim).
fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    use blazediff_ssim::{Plane, Rgba8, SsimOptions};
    let plane = |img: &RgbImage| {
        let rgba: Vec<u8> = img
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
            .collect();
        let (w, h) = (img.width() as usize, img.height() as usize);
        Plane::from_rgba8(Rgba8::new(&rgba, w, h)).unwrap()
    };
    blazediff_ssim::ssim(&plane(a), &plane(b), &SsimOptions::default())
        .unwrap()
        .score
}

/// The lowest SSIM a page may have against pdftoppm.
const MIN_SSIM: f64 = 0.95;

/// The committed references: each page of these, rendered by pdftoppm at the model's size.
const REFERENCED: [(&str, u32); 4] = [("text", 2), ("slide", 1), ("scan", 1), ("report", 4)];

#[test]
fn pages_match_pdftoppm() {
    let opts = ImageOptions::default();
    let mut worst = 1.0f64;
    for (name, pages) in REFERENCED {
        let doc = open(name).unwrap();
        for page in 1..=pages {
            let ours = render(&doc, page, &opts).unwrap();
            let reference = image::open(golden(&format!("ref/{name}-{page}.webp")))
                .unwrap()
                .to_rgb8();
            assert_eq!(ours.dimensions(), reference.dimensions(), "{name} {page}");
            let score = ssim(&ours, &reference);
            eprintln!(
                "{name} page {page} ({}x{}): SSIM {score:.4}",
                ours.width(),
                ours.height()
            );
            worst = worst.min(score);
            assert!(
                score >= MIN_SSIM,
                "{name} page {page}: SSIM {score:.4} < {MIN_SSIM}"
            );
        }
    }
    eprintln!("lowest SSIM {worst:.4}");
}

#[test]
fn restricted_renders_as_its_unencrypted_source() {
    // Owner-password encryption (printing or copying restricted) needs no password to read.
    let opts = budget(SMALL_BUDGET);
    let plain = render(&open("slide").unwrap(), 1, &opts).unwrap();
    let restricted = render(&open("restricted").unwrap(), 1, &opts).unwrap();
    assert_eq!(plain, restricted);
}

#[test]
fn rendering_is_deterministic() {
    let doc = open("slide").unwrap();
    let opts = budget(SMALL_BUDGET);
    assert_eq!(
        render(&doc, 1, &opts).unwrap(),
        render(&doc, 1, &opts).unwrap()
    );
}

#[test]
fn encrypted_with_a_password() {
    let e = open("encrypted").unwrap_err();
    assert!(matches!(e.cause(), PdfError::Encrypted), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("encrypted.pdf") && msg.contains("password") && msg.contains("qpdf"),
        "{msg}"
    );
}

#[test]
fn damaged_beyond_repair() {
    let e = open("damaged").unwrap_err();
    assert!(matches!(e.cause(), PdfError::Damaged), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("damaged") && msg.contains("re-download"),
        "{msg}"
    );
}

#[test]
fn truncated_is_repaired_from_what_is_left() {
    // report.pdf cut at 60%: its table and trailer are gone, its page tree is not.
    let doc = open("truncated").unwrap();
    let opts = budget(SMALL_BUDGET);
    let full = open("report").unwrap();
    assert_eq!(doc.page_count(), full.page_count());
    for page in 1..=doc.page_count() {
        // Pages whose content is past the cut come out blank: an image, not an error.
        render(&doc, page, &opts).unwrap();
    }
    assert_eq!(
        render(&doc, 1, &opts).unwrap(),
        render(&full, 1, &opts).unwrap()
    );
}

#[test]
fn not_a_pdf() {
    assert!(matches!(from_bytes(Vec::new()), Err(PdfError::Empty)));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let e = from_bytes(png).unwrap_err();
    assert!(matches!(e, PdfError::NotPdf { .. }), "{e:?}");
    assert!(e.to_string().contains(r"\x89PNG"), "{e}");
    // The header may follow up to 1024 bytes of junk, as PDF readers allow.
    let mut late = vec![b' '; 1000];
    late.extend(make_pdf("0 0 100 100", &[""]));
    assert_eq!(from_bytes(late).unwrap().page_count(), 1);
    let mut too_late = vec![b' '; 1024];
    too_late.extend(make_pdf("0 0 100 100", &[""]));
    assert!(matches!(from_bytes(too_late), Err(PdfError::NotPdf { .. })));
}

#[test]
fn size_bound() {
    let bytes = std::fs::read(golden("report.pdf")).unwrap();
    let limit = bytes.len() as u64 - 1;
    let opts = PdfOptions {
        max_bytes: limit,
        ..PdfOptions::default()
    };
    let e = PdfDocument::from_bytes(bytes, &opts).unwrap_err();
    assert!(matches!(e, PdfError::TooLarge { .. }), "{e:?}");
    let e = PdfDocument::open_path(&golden("report.pdf"), &opts).unwrap_err();
    assert!(
        matches!(e.cause(), PdfError::TooLarge { limit: l, .. } if *l == limit),
        "{e:?}"
    );
    assert!(e.to_string().contains("PdfOptions::max_bytes"), "{e}");
}

#[test]
fn paths_that_are_not_regular_files() {
    let e = PdfDocument::open_path(&golden(""), &PdfOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            PdfError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{e:?}"
    );
    let e = PdfDocument::open_path(&golden("missing.pdf"), &PdfOptions::default()).unwrap_err();
    assert!(matches!(e, PdfError::Io { .. }), "{e:?}");
    // A file that is no PDF is refused from its first bytes.
    let e = PdfDocument::open_path(&golden("make.py"), &PdfOptions::default()).unwrap_err();
    assert!(matches!(e.cause(), PdfError::NotPdf { .. }), "{e:?}");
}

#[test]
fn no_pages() {
    let mut empty = make_pdf("0 0 100 100", &[]);
    let at = empty.windows(7).position(|w| w == b"/Count ").unwrap();
    empty[at + 7] = b'0';
    let e = from_bytes(empty).unwrap_err();
    assert!(matches!(e, PdfError::NoPages | PdfError::Damaged), "{e:?}");
}

#[test]
fn page_ranges() {
    let pages = |spec: &str, count| PageRange::parse(spec).unwrap().resolve(count).unwrap();
    assert_eq!(pages("1-5,9", 10), [1, 2, 3, 4, 5, 9]);
    assert_eq!(pages(" 2 , 4 - 6 ", 10), [2, 4, 5, 6]);
    assert_eq!(pages("8-", 10), [8, 9, 10]);
    assert_eq!(pages("3", 3), [3]);
    // In the order given, each page once.
    assert_eq!(pages("9,1-3,2-4,9", 10), [9, 1, 2, 3, 4]);
    assert_eq!("1-5,9".parse::<PageRange>().unwrap().to_string(), "1-5,9");

    let bad = |spec: &str, part: &str, reason: &str| {
        let e = PageRange::parse(spec).unwrap_err();
        let PdfError::PageRange { part: p, .. } = &e else {
            panic!("{spec}: {e:?}");
        };
        assert_eq!(p, part, "{spec}");
        let msg = e.to_string();
        assert!(
            msg.contains(reason) && msg.contains("\"1-5,9\""),
            "{spec}: {msg}"
        );
    };
    bad("", "", "is empty");
    bad("1,,3", "", "empty part");
    bad("1-3,", "", "empty part");
    bad("1-3,x", "x", "not a page number");
    bad("2.5", "2.5", "not a page number");
    bad("1-2-3", "1-2-3", "not a page number");
    bad("+1", "+1", "not a page number");
    bad("0-4", "0-4", "page 0");
    bad("5-3", "5-3", "backwards");
    bad("-5", "-5", "no first page");
    bad("99999999999", "99999999999", "past any PDF's end");

    let out = |spec: &str, count, page| {
        let e = PageRange::parse(spec).unwrap().resolve(count).unwrap_err();
        assert!(
            matches!(e, PdfError::PageOutOfRange { page: p, pages } if p == page && pages == count),
            "{spec}: {e:?}"
        );
        assert!(e.to_string().contains("numbered 1 to"), "{e}");
    };
    out("1-5,9", 8, 9);
    out("4-12", 10, 12);
    out("11-", 10, 11);
}

#[test]
fn pages_per_document() {
    let contents = vec![""; DEFAULT_MAX_PDF_PAGES as usize + 1];
    let doc = from_bytes(make_pdf("0 0 100 100", &contents)).unwrap();
    let e = doc.pages(None).unwrap_err();
    assert!(
        matches!(
            e,
            PdfError::TooManyPages {
                selected: 101,
                pages: 101,
                limit: 100
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"1-100\""), "{e}");
    let range = PageRange::parse("2-101").unwrap();
    assert_eq!(doc.pages(Some(&range)).unwrap().len(), 100);
    let range = PageRange::parse("1-101").unwrap();
    assert!(doc.pages(Some(&range)).is_err());
    let e = render(&doc, 102, &ImageOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            PdfError::PageOutOfRange {
                page: 102,
                pages: 101
            }
        ),
        "{e:?}"
    );
    assert!(render(&doc, 0, &ImageOptions::default()).is_err());
}

#[test]
fn rotated_page_is_shown_turned() {
    let doc = open("text").unwrap();
    // Page 2 is stored 792 x 612 with /Rotate 90.
    let (w, h) = doc.page_size(2).unwrap();
    assert!(h > w, "{w}x{h}");
    let img = render(&doc, 2, &budget(SMALL_BUDGET)).unwrap();
    assert!(img.height() > img.width());
}

#[test]
fn page_shapes_at_the_limits() {
    // 200:1 is the model's limit (spec 4.1), refused before anything is drawn.
    let doc = from_bytes(make_pdf("0 0 2010 10", &[""])).unwrap();
    let e = render(&doc, 1, &ImageOptions::default()).unwrap_err();
    assert!(
        matches!(e, PdfError::PageAspectRatio { page: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("201.0:1"), "{e}");
    let doc = from_bytes(make_pdf("0 0 1990 10", &[""])).unwrap();
    let img = render(&doc, 1, &ImageOptions::default()).unwrap();
    assert!(u64::from(img.width()) * u64::from(img.height()) <= 1_843_200);

    // A page the size of a building, and one of a stamp, render at the same budget.
    for media_box in [
        "0 0 10000000 10000000",
        "0 0 1 1",
        "-500000 -500000 500000 500000",
    ] {
        let doc = from_bytes(make_pdf(
            media_box,
            &["0 0 1 rg -1000000 -1000000 1e9 1e9 re f"],
        ))
        .unwrap();
        let img = render(&doc, 1, &ImageOptions::default()).unwrap();
        assert_eq!(img.dimensions(), (1344, 1344), "{media_box}");
    }

    // A budget the decoding limit does not allow.
    let opts = ImageOptions {
        max_pixels: 100_000_000,
        ..ImageOptions::default()
    };
    let doc = open("slide").unwrap();
    let e = render(&doc, 1, &opts).unwrap_err();
    assert!(matches!(e, PdfError::PageTooLarge { page: 1, .. }), "{e:?}");
}

#[test]
fn hostile_content_renders_or_fails_alone() {
    // Content the interpreter must survive: garbage operators, unbalanced state, a huge path,
    // a missing font, an image with large dimensions and no data.
    let contents = [
        "garbage ) ( ] [ << >> q q q Q Q Q Q Q BT ET ET",
        "q 1e30 0 0 1e30 0 0 cm 0 0 1 1 re f Q 0 0 m 1e38 1e38 l S",
        "BT /NoSuchFont 12 Tf (text) Tj ET",
        // An image declaring more pixels than the decoding limit: refused before rendering.
        "BI /W 100000 /H 100000 /BPC 8 /CS /RGB ID \u{1} EI",
        "/NoSuchXObject Do /NoSuchShading sh",
    ];
    let doc = from_bytes(make_pdf("0 0 100 100", &contents)).unwrap();
    let opts = budget(SMALL_BUDGET);
    for page in 1..=doc.page_count() {
        let start = Instant::now();
        let result = render(&doc, page, &opts);
        assert!(start.elapsed().as_secs() < 10, "page {page}");
        if let Err(e) = result {
            assert!(
                matches!(
                    e,
                    PdfError::RenderFailed { .. } | PdfError::PageImageTooLarge { .. }
                ),
                "page {page}: {e:?}"
            );
        }
    }
}

/// An image that declares more pixels than the decoding limit is refused from its declaration,
/// in milliseconds, inline or as an XObject: hayro pads a short image out to its declared size
/// (the inline case below took 361 s and 5.3 GB before it was checked).
#[test]
fn images_declaring_too_many_pixels_are_refused_before_rendering() {
    let inline = make_pdf(
        "0 0 100 100",
        &["BI /W 200000000 /H 1 /BPC 8 /CS /RGB ID \u{1} EI"],
    );
    let image = "<< /Type /XObject /Subtype /Image /Width 200000000 /Height 1 \
                 /BitsPerComponent 8 /ColorSpace /DeviceRGB /Length 1 >>\nstream\n\u{1}\nendstream";
    let x_object = pdf_of(vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 100 100] >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /XObject << /Im1 5 0 R >> >> >>"
            .to_owned(),
        "<< /Length 31 >>\nstream\nq 100 0 0 100 0 0 cm /Im1 Do Q\nendstream".to_owned(),
        image.to_owned(),
    ]);
    for (what, bytes) in [("inline", inline), ("XObject", x_object)] {
        let doc = from_bytes(bytes).unwrap();
        let start = Instant::now();
        let err = render(&doc, 1, &budget(SMALL_BUDGET)).unwrap_err();
        assert!(
            start.elapsed().as_secs() < 2,
            "{what}: {:?}",
            start.elapsed()
        );
        assert!(
            matches!(
                err,
                PdfError::PageImageTooLarge {
                    page: 1,
                    width: 200_000_000,
                    height: 1,
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("--max-image-pixels"), "{err}");
    }
}

#[test]
fn documents_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<PdfDocument>();
    assert_send::<PdfError>();
}

/// A stream object: `dict`'s entries (without /Length) and its data.
fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A one-page PDF (100 × 100 points): the page's resources, its content stream (object 4),
/// then `more` as objects 5, 6, ...; `annotations` is the page's /Annots entry or "".
fn page_pdf(resources: &str, annotations: &str, content: Vec<u8>, more: Vec<Vec<u8>>) -> Vec<u8> {
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 100 100] >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources {resources} {annotations} >>"
        )
        .into_bytes(),
        content,
    ];
    objects.extend(more);
    pdf_of_bytes(objects)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `len` bytes of `byte` compressed with zlib, written in pieces so the test never holds them.
fn zlib_of(byte: u8, len: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let piece = vec![byte; 1 << 20];
    for start in (0..len).step_by(piece.len()) {
        encoder
            .write_all(&piece[..piece.len().min(len - start)])
            .unwrap();
    }
    encoder.finish().unwrap()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect::<String>() + ">"
}

/// Opens `bytes` with `opts` and renders page 1 at a small budget, which must fail within
/// `seconds`; the error is returned.
fn refused(what: &str, bytes: Vec<u8>, opts: &PdfOptions, seconds: u64) -> PdfError {
    let doc = PdfDocument::from_bytes(bytes, opts).unwrap();
    let start = Instant::now();
    let result = render(&doc, 1, &budget(SMALL_BUDGET));
    assert!(
        start.elapsed().as_secs() < seconds,
        "{what}: {:?}",
        start.elapsed()
    );
    result.map(|_| ()).expect_err(what)
}

/// Streams that expand past the page's limit, as content, inside a form, as an image's data,
/// as a font, as an inline image, as an annotation's appearance, through chained filters
/// (Flate of Flate, Flate of RunLength, Flate of LZW) and through a predictor's row: each is
/// refused before hayro, which decodes every stream whole, is given it.
#[test]
fn decompression_bombs_are_refused_before_rendering() {
    let limit = 16 << 20;
    let opts = PdfOptions {
        max_page_decoded_bytes: limit,
        ..PdfOptions::default()
    };
    // 32 MB of spaces (valid content: whitespace) in 32 KB, then in about 100 bytes.
    let once = zlib_of(b' ', 32 << 20);
    let twice = zlib(&once);
    assert!(twice.len() < 1024, "{}", twice.len());
    let flate2x = "/Filter [/FlateDecode /FlateDecode]";
    let run_length = zlib(&[0x81, b' '].repeat((32 << 20) / 128));
    let lzw = zlib(
        &weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(&vec![b' '; 32 << 20])
            .unwrap(),
    );
    let form = |data: &[u8], filter: &str| {
        stream(
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 100 100] {filter}"),
            data,
        )
    };
    let draws_form = || stream("", b"/Fm0 Do");
    let cases = [
        (
            "content",
            page_pdf("<< >>", "", stream(flate2x, &twice), vec![]),
        ),
        (
            "content, RunLength",
            page_pdf(
                "<< >>",
                "",
                stream("/Filter [/FlateDecode /RunLengthDecode]", &run_length),
                vec![],
            ),
        ),
        (
            "content, LZW",
            page_pdf("<< >>", "", stream("/Filter [/Fl /LZW]", &lzw), vec![]),
        ),
        (
            "a form's content",
            page_pdf(
                "<< /XObject << /Fm0 5 0 R >> >>",
                "",
                draws_form(),
                vec![form(&twice, flate2x)],
            ),
        ),
        (
            "an image's data, in a form",
            page_pdf(
                "<< /XObject << /Fm0 5 0 R >> >>",
                "",
                draws_form(),
                vec![
                    form(b"/Im0 Do", "/Resources << /XObject << /Im0 6 0 R >> >>"),
                    stream(
                        &format!(
                            "/Type /XObject /Subtype /Image /Width 100 /Height 100 \
                             /BitsPerComponent 8 /ColorSpace /DeviceGray {flate2x}"
                        ),
                        &twice,
                    ),
                ],
            ),
        ),
        (
            "an inline image, in a form",
            page_pdf(
                "<< /XObject << /Fm0 5 0 R >> >>",
                "",
                draws_form(),
                vec![form(
                    format!(
                        "BI /W 10 /H 10 /BPC 8 /CS /G /F [/AHx /Fl /Fl] ID {} EI",
                        hex(&twice)
                    )
                    .as_bytes(),
                    "",
                )],
            ),
        ),
        (
            "a font file",
            page_pdf(
                "<< /Font << /F0 5 0 R >> >>",
                "",
                stream("", b"BT /F0 12 Tf (a) Tj ET"),
                vec![
                    b"<< /Type /Font /Subtype /TrueType /BaseFont /X /FontDescriptor 6 0 R >>"
                        .to_vec(),
                    b"<< /Type /FontDescriptor /FontName /X /Flags 32 /FontFile2 7 0 R >>".to_vec(),
                    stream(flate2x, &twice),
                ],
            ),
        ),
        (
            "an annotation's appearance",
            page_pdf(
                "<< >>",
                "/Annots [<< /Type /Annot /Subtype /Stamp /Rect [0 0 100 100] \
                 /AP << /N 5 0 R >> >>]",
                stream("", b""),
                vec![form(&twice, flate2x)],
            ),
        ),
        (
            "a predictor's row",
            page_pdf(
                "<< >>",
                "",
                stream(
                    "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 10000000000 >>",
                    &zlib(b"\x02 "),
                ),
                vec![],
            ),
        ),
    ];
    for (what, bytes) in cases {
        let err = refused(what, bytes, &opts, 5);
        assert!(
            matches!(err, PdfError::PageDecodesTooLarge { page: 1, limit: l } if l == limit),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("PdfOptions::max_page_decoded_bytes"),
            "{err}"
        );
    }
    // At the default limit (256 MiB): 512 MB of spaces in about 500 bytes.
    let huge = zlib(&zlib_of(b' ', 512 << 20));
    assert!(huge.len() < 2048, "{}", huge.len());
    let err = refused(
        "512 MB of content",
        page_pdf("<< >>", "", stream(flate2x, &huge), vec![]),
        &PdfOptions::default(),
        10,
    );
    assert!(
        matches!(err, PdfError::PageDecodesTooLarge { .. }),
        "{err:?}"
    );
}

/// An image declaring more pixels than the decoding limit is refused wherever the page reaches
/// it: in a form, inline in a form, as an image's soft mask, in a tiling pattern, in a Type 3
/// glyph, in an annotation's appearance, in a graphics state's soft mask.
#[test]
fn images_anywhere_in_the_page_are_checked() {
    let huge = stream(
        "/Type /XObject /Subtype /Image /Width 200000000 /Height 1 /BitsPerComponent 8 \
         /ColorSpace /DeviceGray",
        b"\x01",
    );
    let inline = b"BI /W 200000000 /H 1 /BPC 8 /CS /G ID \x01 EI";
    let form = |content: &[u8], resources: &str| {
        stream(
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources << {resources} >>"
            ),
            content,
        )
    };
    let cases = [
        (
            "a form's image",
            page_pdf(
                "<< /XObject << /Fm0 5 0 R >> >>",
                "",
                stream("", b"/Fm0 Do"),
                vec![form(b"/Im0 Do", "/XObject << /Im0 6 0 R >>"), huge.clone()],
            ),
        ),
        (
            "a form's inline image",
            page_pdf(
                "<< /XObject << /Fm0 5 0 R >> >>",
                "",
                stream("", b"/Fm0 Do"),
                vec![form(inline, "")],
            ),
        ),
        (
            "an image's soft mask",
            page_pdf(
                "<< /XObject << /Im0 5 0 R >> >>",
                "",
                stream("", b"q 100 0 0 100 0 0 cm /Im0 Do Q"),
                vec![
                    stream(
                        "/Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 \
                         /ColorSpace /DeviceGray /SMask 6 0 R",
                        b"\x01",
                    ),
                    huge.clone(),
                ],
            ),
        ),
        (
            "a tiling pattern",
            page_pdf(
                "<< /Pattern << /P0 5 0 R >> >>",
                "",
                stream("", b"/Pattern cs /P0 scn 0 0 100 100 re f"),
                vec![stream(
                    "/PatternType 1 /PaintType 1 /TilingType 1 /BBox [0 0 10 10] /XStep 10 \
                     /YStep 10 /Resources << >>",
                    inline,
                )],
            ),
        ),
        (
            "a Type 3 glyph",
            page_pdf(
                "<< /Font << /F0 5 0 R >> >>",
                "",
                stream("", b"BT /F0 12 Tf (a) Tj ET"),
                vec![
                    b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1 1] /FontMatrix [1 0 0 1 0 0] \
                      /CharProcs << /a 6 0 R >> /Encoding << /Differences [97 /a] >> \
                      /FirstChar 97 /LastChar 97 /Widths [1] \
                      /Resources << /XObject << /Im0 7 0 R >> >> >>"
                        .to_vec(),
                    stream("", b"1 0 0 0 1 1 d1 /Im0 Do"),
                    huge.clone(),
                ],
            ),
        ),
        (
            "an annotation's appearance",
            page_pdf(
                "<< >>",
                "/Annots [<< /Type /Annot /Subtype /Stamp /Rect [0 0 100 100] \
                 /AP << /N << /On 5 0 R >> >> /AS /On >>]",
                stream("", b""),
                vec![stream("/BBox [0 0 100 100]", inline)],
            ),
        ),
        (
            "a graphics state's soft mask",
            page_pdf(
                "<< /ExtGState << /GS0 << /SMask << /S /Luminosity /G 5 0 R >> >> >> >>",
                "",
                stream("", b"/GS0 gs 0 0 100 100 re f"),
                vec![form(inline, "")],
            ),
        ),
    ];
    for (what, bytes) in cases {
        let err = refused(what, bytes, &PdfOptions::default(), 2);
        assert!(
            matches!(
                err,
                PdfError::PageImageTooLarge {
                    page: 1,
                    width: 200_000_000,
                    height: 1,
                    ..
                }
            ),
            "{what}: {err:?}"
        );
    }
}

/// Resources that refer to themselves (a form drawing a form that draws the first, a resource
/// dictionary holding itself) are walked once, and the page renders.
#[test]
fn cyclic_resources_are_walked_once() {
    let form = |content: &[u8]| {
        stream(
            "/Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources 7 0 R",
            content,
        )
    };
    let bytes = page_pdf(
        "7 0 R",
        "",
        stream("", b"/Fm0 Do"),
        vec![
            form(b"0 0 10 10 re f /Fm1 Do"),
            form(b"/Fm0 Do"),
            b"<< /XObject << /Fm0 5 0 R /Fm1 6 0 R >> /Self 7 0 R >>".to_vec(),
        ],
    );
    let doc = from_bytes(bytes).unwrap();
    let start = Instant::now();
    render(&doc, 1, &budget(SMALL_BUDGET)).unwrap();
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
}

/// A page that reaches more objects than the walk visits is refused, from the count alone.
#[test]
fn pages_reaching_too_many_objects_are_refused() {
    let junk = "[] ".repeat(1_100_000);
    let bytes = page_pdf(
        &format!("<< /ExtGState << /GS0 << /Junk [{junk}] >> >> >>"),
        "",
        stream("", b""),
        vec![],
    );
    let err = refused("1.1 million arrays", bytes, &PdfOptions::default(), 10);
    assert!(
        matches!(
            err,
            PdfError::PageTooComplex {
                page: 1,
                limit: 1_000_000
            }
        ),
        "{err:?}"
    );
}
