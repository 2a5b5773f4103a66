//! Crash-safe file writes: the bytes go to a temporary file next to the target, which is flushed
//! to disk (`fsync`) and then renamed over the target, and the directory entry is flushed too.
//! A reader — or a run resumed after a crash — sees either the previous complete file or the new
//! complete file, never a truncated one.
//!
//! [`write_atomically`] does this for any writer callback; [`AtomicFileRecorder`] wraps any of
//! Burn's file recorders (burn-train's checkpointer writes model, optimiser and scheduler state
//! through one) so that its saves become atomic too.

use burn::record::{FileRecorder, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The temporary name a write to `target` goes through: `target` with `.partial` appended, in
/// the same directory (so the final rename cannot cross file systems).
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// Writes `target` atomically: `write` fills a temporary file in the same directory, which is
/// synced to disk and renamed over `target`; the directory is synced after the rename (on Unix).
/// On error the temporary file is removed and `target` is untouched.
///
/// # Errors
/// Any I/O error of creating, writing, syncing or renaming, or the one `write` returns.
pub fn write_atomically<F>(target: impl AsRef<Path>, write: F) -> io::Result<()>
where
    F: FnOnce(&Path) -> io::Result<()>,
{
    let target = target.as_ref();
    let partial = partial_path(target);
    let result = write(&partial)
        .and_then(|()| File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, target));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
        return result;
    }
    sync_parent(target)
}

/// Flushes the directory entry of `path` (the rename) to disk where the platform allows it.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// A [`FileRecorder`] whose saves are atomic ([`write_atomically`]): the inner recorder writes a
/// temporary file that replaces the target only once it is complete and synced. Loading is the
/// inner recorder's. Use it wherever Burn takes a file recorder, e.g. burn-train's
/// `SupervisedTraining::with_file_checkpointer`.
#[derive(Debug, Default, Clone)]
pub struct AtomicFileRecorder<R> {
    inner: R,
}

impl<R> AtomicFileRecorder<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner }
    }
}

impl<B: Backend, R: FileRecorder<B>> Recorder<B> for AtomicFileRecorder<R> {
    type Settings = <R as Recorder<B>>::Settings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        let target = file.with_extension(<R as FileRecorder<B>>::file_extension());
        write_atomically(&target, |partial| {
            // The inner recorder swaps the extension of the path it is given for its own:
            // `x.mpk.partial` becomes `x.mpk.mpk`, never the target itself.
            let written = partial.with_extension(<R as FileRecorder<B>>::file_extension());
            let saved = self
                .inner
                .save_item(item, partial.to_path_buf())
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|()| std::fs::rename(&written, partial));
            if saved.is_err() {
                let _ = std::fs::remove_file(&written);
            }
            saved
        })
        .map_err(|e| RecorderError::Unknown(format!("writing {}: {e}", target.display())))
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        self.inner.load_item(file)
    }
}

impl<B: Backend, R: FileRecorder<B>> FileRecorder<B> for AtomicFileRecorder<R> {
    fn file_extension() -> &'static str {
        <R as FileRecorder<B>>::file_extension()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
    use std::io::Write;

    type Flex = burn::backend::Flex;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vidgen_atomic_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file_and_no_partial() {
        let d = dir("fail");
        let target = d.join("state.bin");
        write_atomically(&target, |p| std::fs::write(p, b"first")).unwrap();
        let err = write_atomically(&target, |p| {
            let mut f = File::create(p)?;
            f.write_all(b"trunc")?;
            Err(io::Error::other("crash mid-write"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "crash mid-write");
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert!(!partial_path(&target).exists());
        write_atomically(&target, |p| std::fs::write(p, b"second")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn recorder_saves_under_the_inner_extension_and_loads_back() {
        let d = dir("recorder");
        let recorder =
            AtomicFileRecorder::new(NamedMpkFileRecorder::<FullPrecisionSettings>::new());
        let values: Vec<f32> = vec![1.5, -2.25, f32::MIN_POSITIVE];
        Recorder::<Flex>::save_item(&recorder, values.clone(), d.join("model-3")).unwrap();
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["model-3.mpk".to_string()]);
        let back: Vec<f32> =
            Recorder::<Flex>::load_item(&recorder, &mut d.join("model-3")).unwrap();
        assert_eq!(back, values);
        // A stale partial file from an earlier crash is replaced, not read.
        std::fs::write(d.join("model-4.mpk.partial"), b"garbage").unwrap();
        Recorder::<Flex>::save_item(&recorder, values.clone(), d.join("model-4")).unwrap();
        assert!(!d.join("model-4.mpk.partial").exists());
        let back: Vec<f32> =
            Recorder::<Flex>::load_item(&recorder, &mut d.join("model-4")).unwrap();
        assert_eq!(back, values);
    }
}
