//! What can go wrong converting or reading a quantized model; each message names the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The directory has no manifest.
    #[error(
        "{} has no {}; it is not a sift 4-bit model directory (make one with `sift quantize`)",
        dir.display(), crate::MANIFEST
    )]
    NotQuantized { dir: PathBuf },

    /// The manifest cannot be parsed or describes something inconsistent.
    #[error("{}: {detail}; re-create the directory with `sift quantize`", path.display())]
    BadManifest { path: PathBuf, detail: String },

    /// A shard named by the manifest is not there.
    #[error(
        "{} names the shard {file}, which is missing; copy or download the whole directory again",
        crate::MANIFEST
    )]
    MissingShard { file: String },

    /// A shard (or copied file) is shorter or longer than the manifest says.
    #[error(
        "{file} is {found} bytes but the manifest says {expected}; the download was cut short \
         or the file was changed: copy or download it again"
    )]
    SizeMismatch {
        file: String,
        expected: u64,
        found: u64,
    },

    /// A shard's bytes are not the ones the manifest was written with.
    #[error(
        "{file} has sha256 {found} but the manifest says {expected}; the file is damaged: copy \
         or download it again"
    )]
    ChecksumMismatch {
        file: String,
        expected: String,
        found: String,
    },

    /// The source model cannot be converted.
    #[error("the source model: {0}")]
    Source(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> QuantError + '_ {
    move |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    }
}
