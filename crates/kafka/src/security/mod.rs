//! Authentication (SASL PLAIN, SCRAM-SHA-256/512) and authorization (Kafka-style ACLs).
//!
//! Everything here is synchronous: the stores are small, guarded by `parking_lot` locks, and
//! only touch the disk when an administrator changes them. Password hashing (PBKDF2, 4096+
//! iterations) happens in `UserStore::set_password`, `UserStore::verify_plain` and in
//! `SaslSession::step` for PLAIN, so async callers may prefer `spawn_blocking` for those.

mod acl;
mod allowlist;
mod scram;
mod users;

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;

pub use acl::{
    AclBinding, Authorizer, Operation, PatternType, Permission, ResourceType,
    CLUSTER_RESOURCE_NAME, WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};
pub use allowlist::AllowList;
pub use scram::{SaslSession, SaslStep};
pub use users::UserStore;

/// Errors of the security layer.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("security store i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt security store: {0}")]
    Corrupt(String),
    #[error("unsupported sasl mechanism: {0}")]
    UnsupportedMechanism(String),
    /// The reason is meant for the broker log only; clients get a generic message.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// SASL mechanisms the broker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// Names as announced in SaslHandshake responses.
    pub const ALL_NAMES: [&'static str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

    /// Parses a mechanism name; names are case-sensitive, as in Kafka.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Lengths are public (digest sizes), only the contents must not leak through timing.
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads a JSON document; a missing file is `Ok(None)`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SecurityError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SecurityError::Corrupt(format!("{}: {e}", path.display())))
}

/// Replaces `path` with `data` so that readers (and a crash) see either the old or the new
/// content: write a temp file, fsync it, rename over the target, fsync the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), SecurityError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let file_name = path.file_name().ok_or_else(|| {
        SecurityError::InvalidRequest(format!("not a file path: {}", path.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let result = (|| -> Result<(), SecurityError> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            // Credentials and ACLs are only for the broker's eyes.
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless, but do not leave clutter behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip() {
        for name in Mechanism::ALL_NAMES {
            let m = Mechanism::parse(name).expect("known mechanism");
            assert_eq!(m.name(), name);
        }
        assert_eq!(Mechanism::parse("scram-sha-256"), None);
        assert_eq!(Mechanism::parse("GSSAPI"), None);
    }

    #[test]
    fn shared_types_cross_threads() {
        // The broker keeps these in Arc'd shared state and per-connection tasks.
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<UserStore>();
        send_sync::<Authorizer>();
        send::<SaslSession>();
        send_sync::<SecurityError>();
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn atomic_write_replaces_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("x.json");
        assert!(read_json::<serde_json::Value>(&path)
            .expect("read")
            .is_none());
        write_atomic(&path, b"{\"a\":1}").expect("write");
        write_atomic(&path, b"{\"a\":2}").expect("write");
        let v: serde_json::Value = read_json(&path).expect("read").expect("present");
        assert_eq!(v["a"], 2);
        fs::write(&path, b"{not json").expect("write");
        assert!(matches!(
            read_json::<serde_json::Value>(&path),
            Err(SecurityError::Corrupt(_))
        ));
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
