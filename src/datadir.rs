//! The data directory: where every file authd keeps lives, and its modes.
//!
//! ```text
//! DIR/               0700
//!   authd.redb       0600  the database
//!   tls/cert.pem     0600  self-signed certificate (made on first start)
//!   tls/key.pem      0600  its private key
//!   tls/names        0600  the names the certificate was made for
//!   admin.json       0600  while a server runs: its loopback URL and admin credential
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Paths inside one data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.root.join(crate::store::redb::DB_FILE)
    }

    /// The TLS directory.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The self-signed certificate.
    pub fn cert(&self) -> PathBuf {
        self.tls().join("cert.pem")
    }

    /// The self-signed certificate's key.
    pub fn key(&self) -> PathBuf {
        self.tls().join("key.pem")
    }

    /// Whether the certificate and its key are both there.
    pub fn has_tls_pair(&self) -> bool {
        self.cert().exists() && self.key().exists()
    }

    /// The names the self-signed certificate covers.
    pub fn cert_names(&self) -> PathBuf {
        self.tls().join("names")
    }

    /// Where a running server leaves its admin URL and credential.
    pub fn admin_credential(&self) -> PathBuf {
        self.root.join("admin.json")
    }

    /// Creates the directory (0700) if needed and refuses one others can read.
    pub fn prepare(&self) -> Result<(), String> {
        create_private_dir(&self.root)?;
        create_private_dir(&self.tls())
    }
}

/// Creates `dir` with mode 0700, or checks that an existing one is private.
/// An existing empty one (`mkdir db` before the first start) holds nothing
/// yet and is made private.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !made_private_if_empty(dir, meta.permissions().mode() & 0o7777) {
                return Err(format!(
                    "{} is accessible to other users (mode {mode:03o}); run `chmod 700 {}`",
                    dir.display(),
                    dir.display()
                ));
            }
            Ok(())
        }
        Ok(_) => Err(format!("{} exists and is not a directory", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            // The umask may have narrowed the mode further; make it exact.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))
        }
        Err(e) => Err(format!("cannot use {}: {e}", dir.display())),
    }
}

/// Makes `dir` private if it is empty; a dir with anything in it is never
/// touched. Emptiness is checked again once the mode is narrowed, so nothing
/// another user slipped in meanwhile is taken for authd's: the dir then gets
/// its whole `mode` back (special bits too) and is refused.
fn made_private_if_empty(dir: &Path, mode: u32) -> bool {
    let empty = || fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    if !empty() || fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).is_err() {
        return false;
    }
    if empty() {
        return true;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode));
    false
}

/// Writes `bytes` to `path` with mode 0600, replacing it atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_private_dirs_and_refuses_open_ones() {
        let t = tempfile::tempdir().unwrap();
        let d = DataDir::new(t.path().join("db"));
        // An empty one made beforehand is made private.
        fs::create_dir(d.root()).unwrap();
        fs::set_permissions(d.root(), fs::Permissions::from_mode(0o755)).unwrap();
        d.prepare().unwrap();
        let mode = fs::metadata(d.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // One with something in it (tls/ now) is refused.
        fs::set_permissions(d.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = d.prepare().unwrap_err();
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn private_files_are_0600() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_private(&p, b"x").unwrap();
        write_private(&p, b"y").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"y");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
