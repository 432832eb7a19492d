//! Golden fixtures made by `tests/golden/make_golden.py` (the Hugging Face reference), and the
//! comparisons that prove sift computes the same thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sift_model::{
    Device, ModelInput, RerankerModel, ScoreTokens, Tensor, Trace, VisualItem, VisualKind,
};

/// Largest relative L2 error allowed for an intermediate tensor.
pub const INTERMEDIATE_TOLERANCE: f64 = 1e-4;

pub use tempfile::TempDir;

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

pub fn model_dir(model: &str) -> PathBuf {
    golden_dir().join("models").join(model)
}

/// Every (model, case) pair that has a fixture.
pub fn all_cases() -> Vec<(String, String)> {
    let mut cases: Vec<(String, String)> = std::fs::read_dir(golden_dir().join("cases"))
        .expect("tests/golden/cases exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            let (model, case) = stem.split_once("__")?;
            Some((model.to_string(), case.to_string()))
        })
        .collect();
    cases.sort();
    cases
}

#[derive(Debug, Deserialize)]
pub struct ItemMeta {
    pub kind: String,
    pub grid_thw: [usize; 3],
}

#[derive(Debug, Deserialize)]
pub struct CaseMeta {
    pub items: Vec<ItemMeta>,
    pub yes_id: u32,
    pub no_id: u32,
    pub logit: f64,
    pub score: f64,
}

/// A tensor from a fixture, widened to f64 (floats) or kept as i64 (ids).
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

pub struct Case {
    pub meta: CaseMeta,
    pub tensors: BTreeMap<String, (Vec<usize>, Values)>,
}

impl Case {
    pub fn load(model: &str, case: &str) -> Case {
        let base = golden_dir().join("cases").join(format!("{model}__{case}"));
        let meta: CaseMeta =
            serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).unwrap())
                .unwrap();
        let bytes = std::fs::read(base.with_extension("safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = file
            .iter()
            .map(|(name, view)| {
                let data = view.data();
                let values = match view.dtype() {
                    safetensors::Dtype::F32 => Values::Float(
                        data.chunks_exact(4)
                            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                            .collect(),
                    ),
                    safetensors::Dtype::I64 => Values::Int(
                        data.chunks_exact(8)
                            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                            .collect(),
                    ),
                    other => panic!("unexpected fixture dtype {other:?}"),
                };
                (name.to_string(), (view.shape().to_vec(), values))
            })
            .collect();
        Case { meta, tensors }
    }

    pub fn floats(&self, name: &str) -> &[f64] {
        match &self.tensors[name].1 {
            Values::Float(v) => v,
            Values::Int(_) => panic!("{name} is not a float tensor"),
        }
    }

    pub fn ints(&self, name: &str) -> &[i64] {
        match &self.tensors[name].1 {
            Values::Int(v) => v,
            Values::Float(_) => panic!("{name} is not an integer tensor"),
        }
    }

    pub fn input_ids(&self) -> Vec<u32> {
        self.ints("input_ids").iter().map(|&i| i as u32).collect()
    }

    pub fn visual_items(&self) -> Vec<VisualItem> {
        self.meta
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| VisualItem {
                kind: match item.kind.as_str() {
                    "image" => VisualKind::Image,
                    _ => VisualKind::Video,
                },
                pixel_values: self
                    .floats(&format!("items.{i}.pixel_values"))
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
                grid_thw: item.grid_thw,
            })
            .collect()
    }

    /// The model input, with position ids computed by sift (compared separately).
    pub fn model_input(&self, model: &RerankerModel) -> ModelInput {
        let visuals = self.visual_items();
        let input_ids = self.input_ids();
        let position_ids = sift::model_input::position_ids(model.config(), &input_ids, &visuals)
            .expect("fixture prompts are well formed");
        ModelInput {
            input_ids,
            position_ids,
            visuals,
        }
    }

    pub fn score_tokens(&self) -> ScoreTokens {
        ScoreTokens {
            yes: self.meta.yes_id,
            no: self.meta.no_id,
        }
    }
}

pub fn relative_l2(actual: &[f64], expected: &[f64]) -> f64 {
    let diff: f64 = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|e| e * e).sum();
    (diff / norm.max(1e-30)).sqrt()
}

/// What a comparison of one case found: every quantity compared, and those out of tolerance.
#[derive(Debug, Default)]
pub struct Report {
    pub compared: Vec<String>,
    pub failures: Vec<String>,
    /// The largest relative L2 error of any intermediate.
    pub worst_intermediate: f64,
    /// |score − reference score|.
    pub score_error: f64,
}

impl Report {
    fn tensor(&mut self, name: &str, shape: &[usize], actual: &[f64], case: &Case, golden: &str) {
        let (expected_shape, _) = &case.tensors[golden];
        self.compared.push(golden.to_string());
        if shape != expected_shape.as_slice() {
            self.failures.push(format!(
                "{name}: shape {shape:?}, reference {expected_shape:?}"
            ));
            return;
        }
        let err = relative_l2(actual, case.floats(golden));
        self.worst_intermediate = self.worst_intermediate.max(err);
        if err.is_nan() || err > INTERMEDIATE_TOLERANCE {
            self.failures.push(format!(
                "{name}: relative L2 error {err:.3e} against {golden}"
            ));
        }
    }

    /// Compares every traced tensor with the fixture tensor `golden_name(trace name)`.
    fn traced(
        &mut self,
        traced: Vec<(String, Tensor<2>)>,
        case: &Case,
        golden_name: impl Fn(&str) -> String,
    ) {
        for (name, tensor) in traced {
            let shape = tensor.dims().to_vec();
            let values: Vec<f64> = tensor.into_data().iter::<f32>().map(f64::from).collect();
            self.tensor(&name, &shape, &values, case, &golden_name(&name));
        }
    }
}

/// Compares sift with the reference on one fixture: position ids, every vision and text
/// intermediate, the logit and the score (within `score_tolerance`).
pub fn compare_case(model: &RerankerModel, case: &Case, score_tolerance: f64) -> Report {
    let mut report = Report::default();
    let input = case.model_input(model);

    report.compared.push("position_ids".into());
    let expected_positions = case.ints("position_ids");
    let actual_positions: Vec<i64> = input.position_ids.concat();
    if actual_positions != expected_positions {
        report
            .failures
            .push("position_ids differ from the reference".into());
    }

    // The reference runs images and videos through the vision tower in separate calls.
    for (kind, label) in [(VisualKind::Image, "image"), (VisualKind::Video, "video")] {
        let items: Vec<VisualItem> = input
            .visuals
            .iter()
            .filter(|v| v.kind == kind)
            .cloned()
            .collect();
        if items.is_empty() {
            continue;
        }
        let mut trace = Trace::on();
        model
            .vision()
            .forward(&items, model.device(), &mut trace)
            .expect("vision forward");
        report.traced(trace.into_tensors(), case, |name| {
            format!("vision.{label}.{}", name.trim_start_matches("vision."))
        });
    }

    let mut trace = Trace::on();
    let logit = model.logit(&input, &mut trace).expect("forward");
    // The vision intermediates of the full pass were compared per kind above.
    let text_only = trace
        .into_tensors()
        .into_iter()
        .filter(|(name, _)| name.starts_with("text."))
        .collect();
    report.traced(text_only, case, str::to_string);

    let logit = logit.into_data().iter::<f32>().next().unwrap() as f64;
    let score = 1.0 / (1.0 + (-logit).exp());
    report.compared.push("score".into());
    report.score_error = (score - case.meta.score).abs();
    if report.score_error > score_tolerance || score.is_nan() {
        report.failures.push(format!(
            "score {score:.8} (logit {logit:.8}), reference {:.8} (logit {:.8})",
            case.meta.score, case.meta.logit
        ));
    }
    report
}

/// Every float intermediate a fixture holds (the inputs excluded), which a comparison must cover.
pub fn golden_intermediates(case: &Case) -> Vec<String> {
    case.tensors
        .keys()
        .filter(|k| k.starts_with("vision.") || k.starts_with("text."))
        .cloned()
        .collect()
}

pub fn load_model(model: &str, case: &Case, device: &Device) -> RerankerModel {
    RerankerModel::load(&model_dir(model), case.score_tokens(), device)
        .expect("fixture model loads")
}

/// A model's tensors as f32, in file order: (name, shape, values).
pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Reads `dir/model.safetensors` (bf16 or f32) as f32 tensors.
pub fn read_model(dir: &Path) -> Tensors {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = file
        .iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                other => panic!("unexpected weight dtype {other:?}"),
            };
            (name.to_string(), view.shape().to_vec(), values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Writes `tensors` as f32 safetensors into `dir` with `config_from`'s config.json: one
/// `model.safetensors` for `shards == 1`, otherwise that many shards and an index, the way
/// `save_pretrained` lays out a large model.
pub fn write_model(dir: &Path, config_from: &Path, tensors: &Tensors, shards: usize) {
    std::fs::copy(config_from.join("config.json"), dir.join("config.json")).unwrap();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let per_shard = tensors.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (shard, chunk) in tensors.chunks(per_shard).enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", shard + 1)
        };
        let views: Vec<(String, safetensors::tensor::TensorView)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (name, shape, _))| {
                let data = &bytes[shard * per_shard + i];
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    data,
                )
                .unwrap();
                weight_map.insert(name.clone(), file.clone().into());
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    if shards > 1 {
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
}

/// Copies the model in `from` into `to` as f32, letting `edit` change any tensor's values.
pub fn copy_model_with(from: &Path, to: &Path, mut edit: impl FnMut(&str, &mut Vec<f32>)) {
    let mut tensors = read_model(from);
    for (name, _, values) in &mut tensors {
        edit(name, values);
    }
    write_model(to, from, &tensors, 1);
}

/// The real Qwen3 tokenizer, fetched by `tests/golden/fetch_tokenizer.sh` (`.ci/run` runs it).
pub fn tokenizer_dir() -> PathBuf {
    let dir = golden_dir().join("tokenizer");
    assert!(
        dir.join("tokenizer.json").exists(),
        "the real tokenizer is missing: run tests/golden/fetch_tokenizer.sh"
    );
    dir
}

/// The `tied-real-vocab` model with the real tokenizer, laid out as a Hugging Face download
/// (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`).
pub fn downloaded_model() -> TempDir {
    let dir = TempDir::new().unwrap();
    let model = model_dir("tied-real-vocab");
    for (from, name) in [
        (&model, "config.json"),
        (&model, "model.safetensors"),
        (&tokenizer_dir(), "tokenizer.json"),
        (&tokenizer_dir(), "tokenizer_config.json"),
    ] {
        std::fs::copy(from.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// An end-to-end case of `tests/golden/rerank/`: a request made of files and what the
/// reference computed for each document.
pub struct RerankCase {
    pub dir: PathBuf,
    pub max_length: usize,
    pub documents: Vec<ExpectedDocument>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedDocument {
    pub input_ids: Vec<u32>,
    pub score: f64,
}

#[derive(Deserialize)]
struct ExpectedJson {
    max_length: usize,
    documents: Vec<ExpectedDocument>,
}

impl RerankCase {
    pub fn load(name: &str) -> Self {
        let dir = golden_dir().join("rerank").join(name);
        let expected: ExpectedJson =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        Self {
            dir,
            max_length: expected.max_length,
            documents: expected.documents,
        }
    }

    pub fn request_path(&self) -> PathBuf {
        self.dir.join("request.json")
    }
}

/// The cases of `tests/golden/rerank/`; those with video files need the `video` feature.
#[cfg(feature = "video")]
pub const RERANK_CASES: &[&str] = &[
    "text",
    "truncated",
    "image",
    "mixed",
    "video_document",
    "video_query",
    "video_mixed",
];
#[cfg(not(feature = "video"))]
pub const RERANK_CASES: &[&str] = &["text", "truncated", "image", "mixed"];
