//! Opening a file a user named, for images, videos and frames alike: regular files only (a
//! FIFO would block forever, `/dev/zero` never ends, a directory has no data), and reading
//! with a bound: the file's first bytes first, so a header can refuse the file before the
//! rest is read, then the rest up to the bound.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The first bytes read of an image file: enough for every supported format's dimensions
/// unless a JPEG puts large metadata (EXIF, ICC) before its frame header.
pub(crate) const HEADER_BYTES: u64 = 64 << 10;

/// Why a file could not be opened or read.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The operating system's error (missing, unreadable, ...).
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a FIFO (named pipe)", "a directory", ...).
    NotRegular(&'static str),
    /// Larger than the bound.
    TooLarge { size: u64, limit: u64 },
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        OpenError::Io(e)
    }
}

fn kind(file_type: std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Opens `path` if it is a regular file (links followed), with its size. The type is checked
/// before opening (opening a FIFO waits for a writer) and again on the open file, which is
/// opened non-blocking on Unix so that a FIFO swapped in between cannot block either.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), OpenError> {
    if let Some(kind) = kind(std::fs::metadata(path)?.file_type()) {
        return Err(OpenError::NotRegular(kind));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if let Some(kind) = kind(metadata.file_type()) {
        return Err(OpenError::NotRegular(kind));
    }
    Ok((file, metadata.len()))
}

/// An open regular file of at most `limit` bytes, read in two steps: [`BoundedFile::header`],
/// then [`BoundedFile::rest`].
pub(crate) struct BoundedFile {
    file: File,
    limit: u64,
    bytes: Vec<u8>,
}

impl BoundedFile {
    /// Opens `path` (a regular file, see [`open_regular`]) and refuses it if its size is over
    /// `limit`, before anything is read.
    pub fn open(path: &Path, limit: u64) -> Result<Self, OpenError> {
        let (file, size) = open_regular(path)?;
        if size > limit {
            return Err(OpenError::TooLarge { size, limit });
        }
        let capacity = usize::try_from(size).unwrap_or(usize::MAX);
        Ok(Self {
            file,
            limit,
            bytes: Vec::with_capacity(capacity),
        })
    }

    /// The file's first `HEADER_BYTES` bytes (fewer if it is shorter).
    pub fn header(&mut self) -> Result<&[u8], OpenError> {
        let want = HEADER_BYTES.min(self.limit);
        (&mut self.file).take(want).read_to_end(&mut self.bytes)?;
        Ok(&self.bytes)
    }

    /// The whole file, refused if it grew past the limit while it was read.
    pub fn rest(mut self) -> Result<Vec<u8>, OpenError> {
        let read = self.bytes.len() as u64;
        // One byte past the limit tells a file that grew from one that fits.
        let left = (self.limit + 1).saturating_sub(read);
        (&mut self.file).take(left).read_to_end(&mut self.bytes)?;
        let size = self.bytes.len() as u64;
        if size > self.limit {
            return Err(OpenError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_whole_within_its_bound() {
        let dir = std::env::temp_dir().join(format!("sift-file-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut file = BoundedFile::open(&path, 200_000).unwrap();
        assert_eq!(file.header().unwrap().len() as u64, HEADER_BYTES);
        assert_eq!(file.rest().unwrap(), data);
        assert!(matches!(
            BoundedFile::open(&path, 199_999),
            Err(OpenError::TooLarge {
                size: 200_000,
                limit: 199_999
            })
        ));
        assert!(matches!(
            BoundedFile::open(&dir, u64::MAX),
            Err(OpenError::NotRegular("a directory"))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
