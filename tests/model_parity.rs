//! sift's forward pass against the Hugging Face reference, on every golden fixture: position
//! ids, each vision and text intermediate (relative L2 ≤ 1e-4) and the score.

use std::collections::BTreeMap;

use sift_model::{Device, RerankerModel};
use sift_tests::{Case, all_cases, compare_case, golden_intermediates, load_model, model_dir};

fn check_every_fixture(device: &Device, score_tolerance: f64) {
    let mut models: BTreeMap<String, RerankerModel> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut worst_intermediate, mut worst_score) = (0f64, 0f64);
    let cases = all_cases();
    assert!(
        cases.len() >= 16,
        "expected the golden fixtures, found {}",
        cases.len()
    );
    for (model_name, case_name) in &cases {
        let case = Case::load(model_name, case_name);
        let model = models
            .entry(model_name.clone())
            .or_insert_with(|| load_model(model_name, &case, device));
        let report = compare_case(model, &case, score_tolerance);
        worst_intermediate = worst_intermediate.max(report.worst_intermediate);
        worst_score = worst_score.max(report.score_error);
        for golden in golden_intermediates(&case) {
            if !report.compared.contains(&golden) {
                failures.push(format!(
                    "{model_name}/{case_name}: {golden} was never compared"
                ));
            }
        }
        failures.extend(
            report
                .failures
                .iter()
                .map(|f| format!("{model_name}/{case_name}: {f}")),
        );
    }
    eprintln!(
        "{} fixtures: worst intermediate relative L2 {worst_intermediate:.2e}, \
         worst |score - reference| {worst_score:.2e}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_matches_the_reference_on_flex() {
    check_every_fixture(&Device::flex(), 1e-5);
}

#[cfg(feature = "wgpu")]
#[test]
fn every_fixture_matches_the_reference_on_wgpu() {
    check_every_fixture(&Device::wgpu(Default::default()), 1e-4);
}

/// The comparison can fail, and says where: one changed weight in vision block 1 leaves block 0
/// matching and makes block 1, everything after it, and the score differ.
#[test]
fn a_perturbed_weight_fails_the_comparison_where_it_is() {
    let dir = sift_tests::TempDir::new().unwrap();
    sift_tests::copy_model_with(&model_dir("tied-deep"), dir.path(), |name, values| {
        if name == "model.visual.blocks.1.mlp.linear_fc1.weight" {
            values[0] += 0.5;
        }
    });
    let case = Case::load("tied-deep", "image");
    let model = RerankerModel::load(dir.path(), case.score_tokens(), &Device::flex()).unwrap();
    let report = compare_case(&model, &case, 1e-5);
    let failed = |prefix: &str| report.failures.iter().any(|f| f.starts_with(prefix));
    assert!(
        !failed("vision.patch_embed") && !failed("vision.blocks.0"),
        "{report:?}"
    );
    assert!(failed("vision.blocks.1:"), "{report:?}");
    assert!(
        failed("vision.merger") && failed("text.norm") && failed("score"),
        "{report:?}"
    );
}
