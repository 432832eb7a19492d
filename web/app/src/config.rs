//! What the build fixed: the default model URL (`SIFT_MODEL_URL` at build time), and the URLs
//! of this build's files, which stay right under a sub-path (`trunk build --public-url`).

/// The model URL the page offers first: `SIFT_MODEL_URL` when the site was built, else none.
pub fn default_model_url() -> String {
    option_env!("SIFT_MODEL_URL")
        .unwrap_or_default()
        .to_string()
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
    if let Some(origin) = origin_of(&default_model_url(), &page) {
        origins.push(origin);
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
