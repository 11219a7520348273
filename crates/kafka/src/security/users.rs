//! SCRAM credential store, persisted as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::scram::{b64_bytes, ScramCredential, ScramHash, MAX_ITERATIONS, MIN_ITERATIONS};
use super::{read_json, write_atomic, SecurityError};

const FORMAT_VERSION: u32 = 1;
const SALT_LEN: usize = 32;
const DECOY_SECRET_LEN: usize = 32;

/// On-disk (and in-memory) shape of the store.
#[derive(Clone, Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    /// Secret for deriving decoy salts of unknown users. Persisted so the decoy for a given
    /// name stays the same across restarts (a changing salt would reveal that the user is fake).
    #[serde(with = "b64_bytes", default)]
    decoy_secret: Vec<u8>,
    users: BTreeMap<String, UserCredentials>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct UserCredentials {
    #[serde(
        rename = "SCRAM-SHA-256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    sha256: Option<ScramCredential>,
    #[serde(
        rename = "SCRAM-SHA-512",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    sha512: Option<ScramCredential>,
}

impl UserCredentials {
    fn get(&self, hash: ScramHash) -> Option<&ScramCredential> {
        match hash {
            ScramHash::Sha256 => self.sha256.as_ref(),
            ScramHash::Sha512 => self.sha512.as_ref(),
        }
    }

    fn slot(&mut self, hash: ScramHash) -> &mut Option<ScramCredential> {
        match hash {
            ScramHash::Sha256 => &mut self.sha256,
            ScramHash::Sha512 => &mut self.sha512,
        }
    }

    fn is_empty(&self) -> bool {
        self.sha256.is_none() && self.sha512.is_none()
    }
}

/// SCRAM credentials per user and mechanism. Never stores plain passwords: only salt,
/// iterations, StoredKey and ServerKey (RFC 5802).
pub struct UserStore {
    path: PathBuf,
    state: RwLock<StoreFile>,
    /// Serializes writers so a slower writer cannot overwrite a newer file with older state;
    /// readers (logins) only take `state` briefly and never wait for disk I/O.
    write_lock: Mutex<()>,
}

impl UserStore {
    /// Opens the store, creating the file (with a fresh decoy secret) if it does not exist.
    pub fn open(path: &Path) -> Result<Arc<Self>, SecurityError> {
        let loaded: Option<StoreFile> = read_json(path)?;
        let mut dirty = loaded.is_none();
        let mut file = loaded.unwrap_or_else(|| StoreFile {
            version: FORMAT_VERSION,
            ..StoreFile::default()
        });
        if file.version != FORMAT_VERSION {
            return Err(SecurityError::Corrupt(format!(
                "{}: unsupported user store version {}",
                path.display(),
                file.version
            )));
        }
        for (user, creds) in &file.users {
            if user.is_empty() {
                return Err(SecurityError::Corrupt(format!(
                    "{}: empty user name",
                    path.display()
                )));
            }
            for hash in ScramHash::ALL {
                if creds.get(hash).is_some_and(|c| !c.is_well_formed(hash)) {
                    return Err(SecurityError::Corrupt(format!(
                        "{}: malformed {} credential for user {user:?}",
                        path.display(),
                        hash.mechanism().name()
                    )));
                }
            }
        }
        if file.decoy_secret.len() < DECOY_SECRET_LEN {
            file.decoy_secret = random_bytes(DECOY_SECRET_LEN);
            dirty = true;
        }
        if dirty {
            persist(path, &file)?;
        }
        tracing::info!(path = %path.display(), users = file.users.len(), "user store opened");
        Ok(Arc::new(UserStore {
            path: path.to_path_buf(),
            state: RwLock::new(file),
            write_lock: Mutex::new(()),
        }))
    }

    /// Creates or replaces the user's SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
    pub fn set_password(&self, user: &str, password: &str) -> Result<(), SecurityError> {
        if user.is_empty() {
            return Err(SecurityError::InvalidRequest(
                "user name is empty".to_string(),
            ));
        }
        if password.is_empty() {
            return Err(SecurityError::InvalidRequest(
                "password is empty".to_string(),
            ));
        }
        // Hash outside any lock: PBKDF2 is deliberately slow.
        let sha256 = ScramCredential::from_password(
            ScramHash::Sha256,
            password,
            random_bytes(SALT_LEN),
            MIN_ITERATIONS,
        )?;
        let sha512 = ScramCredential::from_password(
            ScramHash::Sha512,
            password,
            random_bytes(SALT_LEN),
            MIN_ITERATIONS,
        )?;
        self.update(|file| {
            let entry = file.users.entry(user.to_string()).or_default();
            entry.sha256 = Some(sha256);
            entry.sha512 = Some(sha512);
            ((), true)
        })?;
        tracing::info!(user, "scram credentials set");
        Ok(())
    }

    /// Removes all credentials of `user`; returns whether the user existed.
    pub fn delete_user(&self, user: &str) -> Result<bool, SecurityError> {
        let removed = self.update(|file| {
            let removed = file.users.remove(user).is_some();
            (removed, removed)
        })?;
        if removed {
            tracing::info!(user, "user deleted");
        }
        Ok(removed)
    }

    /// All user names with at least one credential, sorted.
    pub fn users(&self) -> Vec<String> {
        self.state.read().users.keys().cloned().collect()
    }

    /// Checks a PLAIN password against the stored SCRAM-SHA-512 (else SHA-256) credential.
    pub fn verify_plain(&self, user: &str, password: &str) -> bool {
        let found = self
            .credential(user, ScramHash::Sha512)
            .map(|c| (c, ScramHash::Sha512))
            .or_else(|| {
                self.credential(user, ScramHash::Sha256)
                    .map(|c| (c, ScramHash::Sha256))
            });
        match found {
            Some((cred, hash)) => cred.verify_password(hash, password),
            None => {
                // Spend the same PBKDF2 work for unknown users so timing does not tell.
                if let Ok(decoy) = self.decoy_credential(user, ScramHash::Sha512) {
                    let _ = decoy.verify_password(ScramHash::Sha512, password);
                }
                false
            }
        }
    }

    pub(crate) fn credential(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.state
            .read()
            .users
            .get(user)
            .and_then(|c| c.get(hash))
            .cloned()
    }

    /// A credential for a user that does not exist: deterministic per (user, mechanism) so
    /// repeated probes see the same salt, and matching no password.
    pub(crate) fn decoy_credential(
        &self,
        user: &str,
        hash: ScramHash,
    ) -> Result<ScramCredential, SecurityError> {
        let secret = self.state.read().decoy_secret.clone();
        let derive = |label: &str, h: ScramHash| {
            let mut input = Vec::with_capacity(label.len() + user.len() + 16);
            input.extend_from_slice(label.as_bytes());
            input.push(0);
            input.extend_from_slice(hash.mechanism().name().as_bytes());
            input.push(0);
            input.extend_from_slice(user.as_bytes());
            h.hmac(&secret, &input)
        };
        Ok(ScramCredential {
            salt: derive("salt", ScramHash::Sha256)?,
            iterations: MIN_ITERATIONS,
            stored_key: derive("stored-key", hash)?,
            server_key: derive("server-key", hash)?,
        })
    }

    /// DescribeUserScramCredentials, with Kafka's semantics: no users listed means all users;
    /// a user listed twice gets DUPLICATE_RESOURCE, an unknown one RESOURCE_NOT_FOUND.
    pub fn describe_scram(
        &self,
        req: &DescribeUserScramCredentialsRequest,
        _version: i16,
    ) -> DescribeUserScramCredentialsResponse {
        let state = self.state.read();
        // Value: whether the name was requested more than once.
        let mut wanted: IndexMap<String, bool> = IndexMap::new();
        match &req.users {
            Some(list) if !list.is_empty() => {
                for u in list {
                    wanted
                        .entry(u.name.to_string())
                        .and_modify(|dup| *dup = true)
                        .or_insert(false);
                }
            }
            _ => {
                for u in state.users.keys() {
                    wanted.insert(u.clone(), false);
                }
            }
        }
        let results = wanted
            .into_iter()
            .map(|(user, duplicate)| {
                let result = DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()));
                if duplicate {
                    return result
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                        ))));
                }
                let infos: Vec<CredentialInfo> = state
                    .users
                    .get(&user)
                    .map(|creds| {
                        ScramHash::ALL
                            .iter()
                            .filter_map(|&h| {
                                creds.get(h).map(|c| {
                                    CredentialInfo::default()
                                        .with_mechanism(h.type_id())
                                        .with_iterations(
                                            i32::try_from(c.iterations).unwrap_or(i32::MAX),
                                        )
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if infos.is_empty() {
                    result
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        ))))
                } else {
                    result.with_credential_infos(infos)
                }
            })
            .collect();
        DescribeUserScramCredentialsResponse::default().with_results(results)
    }

    /// AlterUserScramCredentials, with Kafka's validation and per-user results. A user may be
    /// altered only once per request (DUPLICATE_RESOURCE otherwise). Valid changes are applied
    /// together and persisted with one write.
    pub fn alter_scram(
        &self,
        req: &AlterUserScramCredentialsRequest,
        _version: i16,
    ) -> AlterUserScramCredentialsResponse {
        enum Change {
            Delete(ScramHash),
            Upsert(ScramHash, ScramCredential),
        }
        // Insertion order keeps results in request order.
        let mut outcome: IndexMap<String, Result<Change, (ResponseError, String)>> =
            IndexMap::new();
        let duplicate = || {
            Err((
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_string(),
            ))
        };

        let _guard = self.write_lock.lock();
        {
            let state = self.state.read();
            for d in &req.deletions {
                let user = d.name.to_string();
                if let Some(prev) = outcome.get_mut(&user) {
                    if prev.is_ok() {
                        *prev = duplicate();
                    }
                    continue;
                }
                let res = validate_user_and_mechanism(&user, d.mechanism).and_then(|hash| {
                    if state.users.get(&user).and_then(|c| c.get(hash)).is_some() {
                        Ok(Change::Delete(hash))
                    } else {
                        Err((
                            ResponseError::ResourceNotFound,
                            "Attempt to delete a user credential that does not exist".to_string(),
                        ))
                    }
                });
                outcome.insert(user, res);
            }
        }
        for u in &req.upsertions {
            let user = u.name.to_string();
            if let Some(prev) = outcome.get_mut(&user) {
                if prev.is_ok() {
                    *prev = duplicate();
                }
                continue;
            }
            let res = validate_user_and_mechanism(&user, u.mechanism).and_then(|hash| {
                let iterations = validate_iterations(u.iterations)?;
                if u.salt.is_empty() {
                    return Err((
                        ResponseError::UnacceptableCredential,
                        "Salt must not be empty".to_string(),
                    ));
                }
                // Hi() always yields one digest; anything else can never verify.
                if u.salted_password.len() != hash.output_len() {
                    return Err((
                        ResponseError::UnacceptableCredential,
                        format!(
                            "Salted password must be {} bytes for {}",
                            hash.output_len(),
                            hash.mechanism().name()
                        ),
                    ));
                }
                ScramCredential::from_salted_password(
                    hash,
                    u.salt.to_vec(),
                    iterations,
                    &u.salted_password,
                )
                .map(|c| Change::Upsert(hash, c))
                .map_err(|e| (ResponseError::UnknownServerError, e.to_string()))
            });
            outcome.insert(user, res);
        }

        let any_change = outcome.values().any(|r| r.is_ok());
        let persisted = if any_change {
            let mut next = self.state.read().clone();
            for (user, res) in &outcome {
                match res {
                    Ok(Change::Delete(hash)) => {
                        if let Some(creds) = next.users.get_mut(user) {
                            *creds.slot(*hash) = None;
                            if creds.is_empty() {
                                next.users.remove(user);
                            }
                        }
                    }
                    Ok(Change::Upsert(hash, cred)) => {
                        *next.users.entry(user.clone()).or_default().slot(*hash) =
                            Some(cred.clone());
                    }
                    Err(_) => {}
                }
            }
            match persist(&self.path, &next) {
                Ok(()) => {
                    *self.state.write() = next;
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, "failed to persist scram credentials");
                    Err(e.to_string())
                }
            }
        } else {
            Ok(())
        };
        drop(_guard);

        let results = outcome
            .into_iter()
            .map(|(user, res)| {
                let result = AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()));
                match (res, &persisted) {
                    (Ok(change), Ok(())) => {
                        let (action, hash) = match change {
                            Change::Delete(h) => ("deleted", h),
                            Change::Upsert(h, _) => ("upserted", h),
                        };
                        tracing::info!(
                            user = %user,
                            mechanism = hash.mechanism().name(),
                            action,
                            "scram credential altered"
                        );
                        result
                    }
                    (Ok(_), Err(msg)) => result
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(StrBytes::from_string(msg.clone()))),
                    (Err((err, msg)), _) => result
                        .with_error_code(err.code())
                        .with_error_message(Some(StrBytes::from_string(msg))),
                }
            })
            .collect();
        AlterUserScramCredentialsResponse::default().with_results(results)
    }

    /// Applies `f` to a copy of the state, persists it if `f` reports a change, then publishes.
    fn update<R>(&self, f: impl FnOnce(&mut StoreFile) -> (R, bool)) -> Result<R, SecurityError> {
        let _guard = self.write_lock.lock();
        let mut next = self.state.read().clone();
        let (r, changed) = f(&mut next);
        if changed {
            persist(&self.path, &next)?;
            *self.state.write() = next;
        }
        Ok(r)
    }
}

fn validate_user_and_mechanism(
    user: &str,
    mechanism: i8,
) -> Result<ScramHash, (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".to_string(),
        ));
    }
    ScramHash::from_type(mechanism).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".to_string(),
        )
    })
}

fn validate_iterations(iterations: i32) -> Result<u32, (ResponseError, String)> {
    let it = u32::try_from(iterations).unwrap_or(0);
    if it < MIN_ITERATIONS {
        Err((
            ResponseError::UnacceptableCredential,
            "Too few iterations".to_string(),
        ))
    } else if it > MAX_ITERATIONS {
        Err((
            ResponseError::UnacceptableCredential,
            "Too many iterations".to_string(),
        ))
    } else {
        Ok(it)
    }
}

fn persist(path: &Path, file: &StoreFile) -> Result<(), SecurityError> {
    let json = serde_json::to_vec_pretty(file)
        .map_err(|e| SecurityError::Corrupt(format!("cannot serialize user store: {e}")))?;
    write_atomic(path, &json)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    fn open(dir: &tempfile::TempDir) -> Arc<UserStore> {
        UserStore::open(&dir.path().join("users.json")).expect("open")
    }

    fn upsert(user: &str, mech: i8, iterations: i32, password: &str) -> ScramCredentialUpsertion {
        let salt = b"some-salt-bytes!".to_vec();
        let salted = match ScramHash::from_type(mech) {
            Some(h) => h.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32),
            None => vec![0u8; 32],
        };
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(mech)
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into())
    }

    fn deletion(user: &str, mech: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(mech)
    }

    fn codes(resp: &AlterUserScramCredentialsResponse) -> Vec<(String, i16)> {
        resp.results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect()
    }

    #[test]
    fn set_password_verify_delete_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        assert!(store.users().is_empty());
        store.set_password("bob", "pw-b").expect("set");
        store.set_password("alice", "pw-a").expect("set");
        assert_eq!(store.users(), vec!["alice", "bob"]);
        assert!(store.verify_plain("alice", "pw-a"));
        assert!(!store.verify_plain("alice", "pw-b"));
        assert!(!store.verify_plain("nobody", "pw-a"));
        assert!(store.set_password("", "x").is_err());
        assert!(store.set_password("x", "").is_err());

        // Plain passwords never reach the disk.
        let raw = std::fs::read_to_string(dir.path().join("users.json")).expect("read");
        assert!(!raw.contains("pw-a"));

        let reopened = open(&dir);
        assert_eq!(reopened.users(), vec!["alice", "bob"]);
        assert!(reopened.verify_plain("bob", "pw-b"));

        assert!(reopened.delete_user("bob").expect("delete"));
        assert!(!reopened.delete_user("bob").expect("delete"));
        let again = open(&dir);
        assert_eq!(again.users(), vec!["alice"]);

        // Password change replaces the old one.
        again.set_password("alice", "new").expect("set");
        assert!(again.verify_plain("alice", "new"));
        assert!(!again.verify_plain("alice", "pw-a"));
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.json");
        std::fs::write(&path, b"[1,2").expect("write");
        assert!(matches!(
            UserStore::open(&path),
            Err(SecurityError::Corrupt(_))
        ));
        std::fs::write(&path, br#"{"version":7,"users":{}}"#).expect("write");
        assert!(matches!(
            UserStore::open(&path),
            Err(SecurityError::Corrupt(_))
        ));
        std::fs::write(
            &path,
            br#"{"version":1,"users":{"a":{"SCRAM-SHA-256":{"salt":"AA==","iterations":4096,"stored_key":"AA==","server_key":"AA=="}}}}"#,
        )
        .expect("write");
        assert!(matches!(
            UserStore::open(&path),
            Err(SecurityError::Corrupt(_))
        ));
        // A hand-written file without a decoy secret gets one.
        std::fs::write(&path, br#"{"version":1,"users":{}}"#).expect("write");
        assert!(UserStore::open(&path).is_ok());
        let raw = std::fs::read_to_string(&path).expect("read");
        assert!(raw.contains("decoy_secret"));
    }

    #[test]
    fn alter_scram_upsert_then_plain_login_and_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            upsert("carol", 2, 8192, "pw"),
            upsert("dave", 1, 4096, "pw2"),
        ]);
        let resp = store.alter_scram(&req, 0);
        assert_eq!(codes(&resp), vec![("carol".into(), 0), ("dave".into(), 0)]);
        assert!(store.verify_plain("carol", "pw"));
        assert!(store.verify_plain("dave", "pw2"));
        assert!(!store.verify_plain("dave", "pw"));

        let all = store.describe_scram(&DescribeUserScramCredentialsRequest::default(), 0);
        assert_eq!(all.error_code, 0);
        let summary: Vec<_> = all
            .results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("carol".to_string(), 0, vec![(2, 8192)]),
                ("dave".to_string(), 0, vec![(1, 4096)]),
            ]
        );

        let req = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            UserName::default().with_name(StrBytes::from_static_str("dave")),
            UserName::default().with_name(StrBytes::from_static_str("nobody")),
            UserName::default().with_name(StrBytes::from_static_str("carol")),
            UserName::default().with_name(StrBytes::from_static_str("carol")),
        ]));
        let resp = store.describe_scram(&req, 0);
        let got: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("dave".to_string(), 0),
                ("nobody".to_string(), 91),
                ("carol".to_string(), 92),
            ]
        );

        // Survives a reopen.
        let reopened = open(&dir);
        assert!(reopened.verify_plain("carol", "pw"));
    }

    #[test]
    fn alter_scram_validation_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store.set_password("erin", "pw").expect("set");
        let mut bad_len = upsert("k", 1, 4096, "pw");
        bad_len.salted_password = vec![1u8; 5].into();
        let mut no_salt = upsert("l", 1, 4096, "pw");
        no_salt.salt = Default::default();
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                deletion("ghost", 1),
                deletion("", 1),
                deletion("erin", 3),
                deletion("erin", 1),
                deletion("twice", 1),
                deletion("twice", 2),
            ])
            .with_upsertions(vec![
                upsert("few", 1, 4095, "pw"),
                upsert("many", 2, 16385, "pw"),
                upsert("neg", 2, -1, "pw"),
                upsert("", 1, 4096, "pw"),
                upsert("mech", 0, 4096, "pw"),
                upsert("erin", 2, 4096, "pw"),
                bad_len,
                no_salt,
                upsert("ok", 1, 16384, "pw"),
            ]);
        let resp = store.alter_scram(&req, 0);
        assert_eq!(
            codes(&resp),
            vec![
                ("ghost".into(), 91),
                ("".into(), 93),
                ("erin".into(), 33),
                ("twice".into(), 91),
                ("few".into(), 93),
                ("many".into(), 93),
                ("neg".into(), 93),
                ("mech".into(), 33),
                ("k".into(), 93),
                ("l".into(), 93),
                ("ok".into(), 0),
            ]
        );
        // The first error for a user sticks; erin is untouched.
        assert!(store.verify_plain("erin", "pw"));
        assert!(store.verify_plain("ok", "pw"));

        // A user altered twice with otherwise valid changes gets DUPLICATE_RESOURCE.
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![deletion("erin", 1)])
            .with_upsertions(vec![upsert("erin", 2, 4096, "other")]);
        assert_eq!(
            codes(&store.alter_scram(&req, 0)),
            vec![("erin".into(), 92)]
        );
        assert!(store.verify_plain("erin", "pw"));

        // Deleting one mechanism keeps the other; deleting both removes the user.
        let req =
            AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion("erin", 2)]);
        assert_eq!(codes(&store.alter_scram(&req, 0)), vec![("erin".into(), 0)]);
        assert_eq!(store.users(), vec!["erin", "ok"]);
        assert!(store.verify_plain("erin", "pw")); // falls back to SHA-256
        let req =
            AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion("erin", 1)]);
        assert_eq!(codes(&store.alter_scram(&req, 0)), vec![("erin".into(), 0)]);
        assert_eq!(store.users(), vec!["ok"]);
        assert_eq!(open(&dir).users(), vec!["ok"]);
    }
}
