//! What the build fixed: the default model URL (`SIFT_MODEL_URL` at build time), the Hugging
//! Face hub and repository offered (`SIFT_HUB_URL`, `SIFT_HF_REPO`), and the URLs of this
//! build's files, which stay right under a sub-path (`trunk build --public-url`).

/// The model URL the page offers first: `SIFT_MODEL_URL` when the site was built, else none.
pub fn default_model_url() -> String {
    option_env!("SIFT_MODEL_URL")
        .unwrap_or_default()
        .to_string()
}

/// The hub the page converts checkpoints from: `SIFT_HUB_URL` when the site was built, else
/// Hugging Face. Its files are at `<hub><repo>/resolve/<revision>/<file>`.
pub fn hub_url() -> String {
    match option_env!("SIFT_HUB_URL") {
        Some(url) if !url.is_empty() => url.to_string(),
        _ => "https://huggingface.co/".to_string(),
    }
}

/// The repository the page offers first: `SIFT_HF_REPO` when the site was built, else the 2B.
pub fn default_hub_repo() -> String {
    match option_env!("SIFT_HF_REPO") {
        Some(repo) if !repo.is_empty() => repo.to_string(),
        _ => "Qwen/Qwen3-VL-Reranker-2B".to_string(),
    }
}

/// The folder URL of a repository id (its `main` revision), or of a URL given whole (any
/// server laid out like the hub's `resolve/<revision>/` paths).
pub fn hub_folder(repo: &str) -> String {
    let repo = repo.trim().trim_matches('/');
    if repo.starts_with("https://") || repo.starts_with("http://") {
        return format!("{repo}/");
    }
    let hub = hub_url();
    let hub = hub.trim_end_matches('/');
    format!("{hub}/{repo}/resolve/main/")
}

/// The model source for the repository (or folder URL) `repo`.
pub fn hub_source(repo: &str) -> sift_web_protocol::ModelSource {
    sift_web_protocol::ModelSource::Hub {
        url: hub_folder(repo),
        name: repo.trim().trim_matches('/').to_string(),
    }
}

fn document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("the page has a document")
}

/// The build id the post-build step wrote into `<meta name="build-id">`, so that a new build's
/// worker is never served from an old cache.
fn build_id() -> String {
    document()
        .query_selector("meta[name=build-id]")
        .ok()
        .flatten()
        .and_then(|m| m.get_attribute("content"))
        .unwrap_or_else(|| "dev".into())
}

/// The absolute URL of a file of this build, under the page's base URL.
pub fn asset_url(path: &str) -> String {
    let base = document().base_uri().ok().flatten().unwrap_or_default();
    match web_sys::Url::new_with_base(path, &base) {
        Ok(url) => {
            url.search_params().set("v", &build_id());
            url.href()
        }
        Err(_) => path.to_string(),
    }
}

/// The origins this page may fetch from (its Content-Security-Policy's `connect-src`): its
/// own, and the default model's.
pub fn allowed_origins() -> Vec<String> {
    let page = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    let mut origins = vec![page.clone()];
    for url in [default_model_url(), hub_url()] {
        if let Some(origin) = origin_of(&url, &page)
            && !origins.contains(&origin)
        {
            origins.push(origin);
        }
    }
    origins
}

/// The origin of `url`, resolved against `base`.
pub fn origin_of(url: &str, base: &str) -> Option<String> {
    if url.is_empty() {
        return None;
    }
    web_sys::Url::new_with_base(url, base)
        .ok()
        .map(|u| u.origin())
}

/// Absolute form of a URL typed by the user (relative ones are under the page).
pub fn absolute(url: &str) -> String {
    let base = document().base_uri().ok().flatten().unwrap_or_default();
    web_sys::Url::new_with_base(url, &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| url.to_string())
}
