//! A 4-bit model given to the library in parts, as a browser gives it (the manifest, the small
//! files, then the shards): it scores exactly as the same model loaded from its directory, its
//! asynchronous scoring (a browser's) equals the synchronous one, and a damaged or missing
//! piece is named; given in parts, it computes in the precision asked, as from its directory.

use sift::{
    Content, Device, ImageSource, LoadError, Loading, Manifest, ModelFiles, Precision, Request,
    RerankOptions, Reranker,
};
use sift_tests::{downloaded_model, golden_dir};

fn request() -> Request {
    let image = |name: &str| {
        Content::image(ImageSource::Path(
            golden_dir().join("rerank/image").join(name),
        ))
    };
    Request {
        query: Content::text("a red painting"),
        documents: vec![
            Content::text("A painting in shades of red."),
            image("red.png"),
            image("sky.jpg"),
            Content::text("Stock prices fell sharply."),
        ],
        ..Request::default()
    }
}

struct Parts {
    _dir: tempfile::TempDir,
    manifest: Manifest,
    files: ModelFiles,
    shards: Vec<Vec<u8>>,
    path: std::path::PathBuf,
}

/// The golden real-vocabulary model, quantized, and its pieces as bytes.
fn parts() -> Parts {
    let source = downloaded_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4");
    sift::quantize(source.path(), &path).unwrap();
    let read = |name: &str| std::fs::read(path.join(name)).unwrap();
    let manifest =
        Manifest::from_json(&read(sift::MANIFEST), std::path::Path::new("test")).unwrap();
    let files = ModelFiles {
        config: read("config.json"),
        tokenizer: read("tokenizer.json"),
        preprocessor_config: manifest
            .file("preprocessor_config.json")
            .map(|_| read("preprocessor_config.json")),
    };
    assert_eq!(
        ModelFiles::names(&manifest),
        ["config.json", "tokenizer.json"]
    );
    let shards = manifest.shards.iter().map(|s| read(&s.file)).collect();
    Parts {
        _dir: dir,
        manifest,
        files,
        shards,
        path,
    }
}

fn scores(reranker: &Reranker) -> Vec<f32> {
    reranker
        .score(&request())
        .into_iter()
        .map(|s| s.unwrap())
        .collect()
}

/// The reranker assembled from `parts` on `device`, its shards added last first.
fn from_parts(parts: &Parts, device: &Device, options: RerankOptions) -> Reranker {
    let mut loading = Loading::start(
        parts.manifest.clone(),
        "test",
        parts.files.clone(),
        device,
        options,
    )
    .unwrap();
    assert_eq!(loading.shards().len(), parts.shards.len());
    for (index, bytes) in parts.shards.iter().enumerate().rev() {
        loading.add_shard(index, bytes).unwrap();
    }
    loading.finish().unwrap()
}

#[test]
fn a_model_given_in_parts_scores_as_its_directory_and_async_as_sync() {
    let parts = parts();
    let from_dir = Reranker::load(&parts.path, RerankOptions::default()).unwrap();
    let from_parts = from_parts(&parts, &Device::flex(), RerankOptions::default());
    let want = scores(&from_dir);
    assert_eq!(scores(&from_parts), want);

    let request = request();
    let query = from_parts.prepare_query(&request);
    for (document, want) in request.documents.iter().zip(&want) {
        let got = pollster::block_on(
            from_parts.score_documents_async(&query, std::slice::from_ref(document)),
        )
        .pop()
        .unwrap()
        .unwrap()
        .score;
        assert_eq!(got, *want);
    }
}

#[test]
fn a_model_given_in_parts_computes_in_the_precision_asked() {
    let parts = parts();
    let f16 = RerankOptions {
        precision: Precision::F16,
        ..RerankOptions::default()
    };
    let in_f16 = scores(&from_parts(&parts, &Device::flex(), f16.clone()));
    assert_eq!(
        in_f16,
        scores(&Reranker::load(&parts.path, f16).unwrap()),
        "in f16, the parts score as the directory does"
    );
    let in_f32 = scores(&from_parts(
        &parts,
        &Device::flex(),
        RerankOptions::default(),
    ));
    assert_ne!(in_f16, in_f32, "f16 was asked, f32 computed");
}

/// The page's f16 mode on the kernels a browser runs (WGSL: lavapipe with `.ci/test
/// --native-gpu`): a 4-bit model from parts in f16 (its weights dequantized straight to f16,
/// attention kept f32) scores within f16's bound on the golden requests of the same parts in f32.
#[cfg(feature = "wgpu")]
#[test]
fn in_f16_on_a_wgsl_gpu_a_model_from_parts_scores_near_f32() {
    let parts = parts();
    let device = Device::wgpu(Default::default());
    let f16 = RerankOptions {
        precision: Precision::F16,
        ..RerankOptions::default()
    };
    let in_f16 = scores(&from_parts(&parts, &device, f16));
    let in_f32 = scores(&from_parts(&parts, &device, RerankOptions::default()));
    let worst = in_f16
        .iter()
        .zip(&in_f32)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("worst |f16 - f32| from parts on the GPU: {worst:.2e}");
    assert!(worst <= 1.5e-4, "{in_f16:?} in f16, {in_f32:?} in f32");
    assert!(worst > 0.0, "f16 was asked, f32 computed");
}

#[test]
fn a_damaged_file_or_a_missing_shard_is_named() {
    let parts = parts();
    let device = Device::flex();
    let start = |files: ModelFiles| {
        Loading::start(
            parts.manifest.clone(),
            "test",
            files,
            &device,
            RerankOptions::default(),
        )
    };
    let mut files = parts.files.clone();
    files.tokenizer[100] ^= 1;
    let message = start(files).err().unwrap().to_string();
    assert!(
        message.contains("tokenizer.json") && message.contains("sha256"),
        "{message}"
    );

    let mut loading = start(parts.files.clone()).unwrap();
    let mut shard = parts.shards[0].clone();
    shard.truncate(shard.len() - 1);
    let message = loading.add_shard(0, &shard).unwrap_err().to_string();
    assert!(message.contains("q4-00001.safetensors"), "{message}");

    let missing = start(parts.files.clone()).unwrap().finish();
    assert!(
        matches!(&missing, Err(LoadError::Model(e)) if e.to_string().contains("q4-00001.safetensors")),
        "{:?}",
        missing.err()
    );
}

#[test]
fn a_tokenizer_from_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = sift_tests::model_dir("untied-gqa4");
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(name), dir.path().join(name)).unwrap();
    }
    let tokenizer = sift_tests::tokenizer_dir().join("tokenizer.json");
    std::fs::copy(tokenizer, dir.path().join("tokenizer.json")).unwrap();
    let message = Reranker::load(dir.path(), RerankOptions::default())
        .err()
        .expect("a tokenizer of 151,669 tokens with a table of 2048 is refused")
        .to_string();
    assert!(
        message.contains("outside the model's 2048 tokens")
            && message.contains("tokenizer.json belongs to another model"),
        "{message}"
    );
}
