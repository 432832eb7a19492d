//! Every committed input of every fuzz target through that target's code (`fuzz/src/lib.rs`):
//! the corpus `fuzz/seed.sh` gathers (fuzz/seeds/ and golden files) and the inputs that once
//! crashed sift (fuzz/regressions/). None may panic. This is how CI runs the fuzz targets:
//! libFuzzer's coverage-instrumented build compiles burn once more (5 to 16 minutes on CI's
//! 2 cores); `fuzz/run.sh` is for exploring new inputs (docs/reliability.md). The `pdf` target's
//! inputs run with this package's `pdf` feature (CI's feature set has it).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_targets;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_runs_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = tempfile::tempdir().unwrap();
    let seeded = Command::new("bash")
        .arg(fuzz.join("seed.sh"))
        .env("FUZZ_CORPUS", corpus.path())
        .status()
        .unwrap();
    assert!(seeded.success(), "fuzz/seed.sh failed");
    let mut panics = Vec::new();
    for (target, run) in fuzz_targets::TARGETS {
        let mut inputs = files_in(&corpus.path().join(target));
        inputs.extend(files_in(&fuzz.join("regressions").join(target)));
        assert!(!inputs.is_empty(), "{target}: no committed inputs");
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                panics.push(format!("{target}: {}", input.display()));
            }
        }
    }
    assert!(panics.is_empty(), "inputs that panic: {panics:#?}");
}
