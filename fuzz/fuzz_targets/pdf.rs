//! The `pdf` target: `sift_fuzz::pdf` (fuzz/src/lib.rs says what it covers).
//!
//! libfuzzer-sys aborts on every panic, caught or not. sift catches the renderer's panics
//! (hayro is young, and it and the crates it uses parse untrusted fonts, images and content;
//! each panic costs only its page, `PdfError::RenderFailed`), so a panic raised in a crate from
//! the registry is let through here, printed to the log, and fuzzing goes on; a panic in sift's
//! own code still aborts and is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        let aborting = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let third_party = info
                .location()
                .is_some_and(|at| at.file().contains("/registry/src/"));
            if third_party {
                eprintln!("caught in a dependency: {info}");
            } else {
                aborting(info);
            }
        }));
    },
    |bytes: &[u8]| sift_fuzz::pdf(bytes)
);
