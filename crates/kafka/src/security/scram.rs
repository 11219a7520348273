//! SASL server side: SCRAM-SHA-256/512 (RFC 5802, RFC 7677, as Kafka speaks it) and PLAIN.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::{constant_time_eq, Mechanism, SecurityError, UserStore};

/// Kafka's minimum and maximum SCRAM iteration counts (ScramMechanism.minIterations/maxIterations).
pub(crate) const MIN_ITERATIONS: u32 = 4096;
pub(crate) const MAX_ITERATIONS: u32 = 16384;

/// Upper bound for one client SASL message; real ones are a few hundred bytes.
const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Length of the random part the server adds to the client nonce.
const SERVER_NONCE_LEN: usize = 32;

/// The hash function behind a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub(crate) const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha512];

    pub(crate) fn for_mechanism(m: Mechanism) -> Option<Self> {
        match m {
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(ScramHash::Sha512),
            Mechanism::Plain => None,
        }
    }

    /// Kafka's ScramMechanism type ids used by the (Describe|Alter)UserScramCredentials APIs.
    pub(crate) fn from_type(t: i8) -> Option<Self> {
        match t {
            1 => Some(ScramHash::Sha256),
            2 => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    pub(crate) fn type_id(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    pub(crate) fn mechanism(self) -> Mechanism {
        match self {
            ScramHash::Sha256 => Mechanism::ScramSha256,
            ScramHash::Sha512 => Mechanism::ScramSha512,
        }
    }

    pub(crate) fn output_len(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SecurityError> {
        // HMAC accepts keys of any length, the error arm is unreachable in practice.
        let bad_key = |_| SecurityError::Corrupt("hmac rejected key".to_string());
        Ok(match self {
            ScramHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(bad_key)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(bad_key)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        })
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802 `Hi(password, salt, i)`, i.e. PBKDF2 with HMAC-H and dkLen = output length.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// What the server keeps per user and mechanism (RFC 5802 section 3): never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScramCredential {
    #[serde(with = "b64_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64_bytes")]
    pub server_key: Vec<u8>,
}

// Keys are password-equivalent for offline guessing: keep them out of logs.
impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    pub(crate) fn from_salted_password(
        hash: ScramHash,
        salt: Vec<u8>,
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<Self, SecurityError> {
        let client_key = hash.hmac(salted_password, b"Client Key")?;
        Ok(ScramCredential {
            salt,
            iterations,
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(salted_password, b"Server Key")?,
        })
    }

    pub(crate) fn from_password(
        hash: ScramHash,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, SecurityError> {
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted_password(hash, salt, iterations, &salted)
    }

    /// Recomputes StoredKey from a candidate password and compares in constant time.
    pub(crate) fn verify_password(&self, hash: ScramHash, password: &str) -> bool {
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        match hash.hmac(&salted, b"Client Key") {
            Ok(client_key) => constant_time_eq(&hash.digest(&client_key), &self.stored_key),
            Err(_) => false,
        }
    }

    /// Sanity check used when loading from disk.
    pub(crate) fn is_well_formed(&self, hash: ScramHash) -> bool {
        !self.salt.is_empty()
            && self.iterations > 0
            && self.stored_key.len() == hash.output_len()
            && self.server_key.len() == hash.output_len()
    }
}

pub(crate) mod b64_bytes {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Result of feeding one client message to a [`SaslSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes as `auth_bytes` and wait for the next client message.
    Continue(Vec<u8>),
    /// Authentication succeeded for `user`; send `response` as the final `auth_bytes`.
    Done { user: String, response: Vec<u8> },
}

/// One connection's SASL exchange.
pub struct SaslSession {
    mechanism: Mechanism,
    users: Arc<UserStore>,
    state: State,
    #[cfg(test)]
    fixed_server_nonce: Option<String>,
}

enum State {
    Start,
    /// SCRAM server-first was sent; waiting for client-final.
    ScramFirstSent(Box<ScramPending>),
    /// Succeeded or failed: any further message is a protocol violation.
    Finished,
}

struct ScramPending {
    hash: ScramHash,
    user: String,
    /// False when the credential is a decoy for a user/mechanism we do not know.
    known: bool,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl SaslSession {
    pub fn new(mechanism: Mechanism, users: Arc<UserStore>) -> Self {
        SaslSession {
            mechanism,
            users,
            state: State::Start,
            #[cfg(test)]
            fixed_server_nonce: None,
        }
    }

    /// Lets tests replay published exchanges (RFC 7677) that use a known server nonce.
    #[cfg(test)]
    fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.fixed_server_nonce = Some(nonce.to_string());
        self
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feeds the client's `auth_bytes`. Any `Err` means authentication failed; the session is
    /// then finished and rejects further messages.
    pub fn step(&mut self, client_message: &[u8]) -> Result<SaslStep, SecurityError> {
        // Leave the session finished unless this step explicitly moves it forward.
        let state = std::mem::replace(&mut self.state, State::Finished);
        if client_message.len() > MAX_MESSAGE_LEN {
            return Err(SecurityError::InvalidRequest(format!(
                "sasl message of {} bytes is too large",
                client_message.len()
            )));
        }
        match (state, self.mechanism) {
            (State::Start, Mechanism::Plain) => self.plain(client_message),
            (State::Start, mechanism) => {
                let hash = ScramHash::for_mechanism(mechanism).ok_or_else(|| {
                    SecurityError::UnsupportedMechanism(mechanism.name().to_string())
                })?;
                let (pending, server_first) = self.scram_client_first(hash, client_message)?;
                self.state = State::ScramFirstSent(Box::new(pending));
                Ok(SaslStep::Continue(server_first.into_bytes()))
            }
            (State::ScramFirstSent(pending), _) => scram_client_final(*pending, client_message),
            (State::Finished, _) => Err(SecurityError::InvalidRequest(
                "sasl exchange already finished".to_string(),
            )),
        }
    }

    fn plain(&self, msg: &[u8]) -> Result<SaslStep, SecurityError> {
        let msg = std::str::from_utf8(msg)
            .map_err(|_| SecurityError::InvalidRequest("plain message is not utf-8".to_string()))?;
        let mut parts = msg.split('\0');
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SecurityError::InvalidRequest(
                "plain message must have exactly three nul-separated fields".to_string(),
            ));
        };
        if user.is_empty() {
            return Err(SecurityError::InvalidRequest(
                "plain username is empty".to_string(),
            ));
        }
        if password.is_empty() {
            return Err(SecurityError::InvalidRequest(
                "plain password is empty".to_string(),
            ));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(SecurityError::AuthenticationFailed(format!(
                "user {user:?} requested a different authorization id"
            )));
        }
        if !self.users.verify_plain(user, password) {
            return Err(SecurityError::AuthenticationFailed(format!(
                "invalid credentials for user {user:?}"
            )));
        }
        tracing::debug!(user, mechanism = "PLAIN", "sasl authentication succeeded");
        Ok(SaslStep::Done {
            user: user.to_string(),
            response: Vec::new(),
        })
    }

    fn scram_client_first(
        &self,
        hash: ScramHash,
        msg: &[u8],
    ) -> Result<(ScramPending, String), SecurityError> {
        let msg = std::str::from_utf8(msg).map_err(|_| {
            SecurityError::InvalidRequest("scram client-first is not utf-8".to_string())
        })?;
        let first = parse_client_first(msg)?;
        if let Some(authzid) = &first.authzid {
            if *authzid != first.user {
                return Err(SecurityError::AuthenticationFailed(format!(
                    "user {:?} requested a different authorization id",
                    first.user
                )));
            }
        }

        // Unknown users get a stable decoy credential so the exchange looks the same and
        // fails only at the proof check.
        let (credential, known) = match self.users.credential(&first.user, hash) {
            Some(c) => (c, true),
            None => (self.users.decoy_credential(&first.user, hash)?, false),
        };

        #[cfg(test)]
        let server_nonce = self
            .fixed_server_nonce
            .clone()
            .unwrap_or_else(random_server_nonce);
        #[cfg(not(test))]
        let server_nonce = random_server_nonce();

        let nonce = format!("{}{}", first.nonce, server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let pending = ScramPending {
            hash,
            user: first.user,
            known,
            credential,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((pending, server_first))
    }
}

fn random_server_nonce() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), SERVER_NONCE_LEN)
}

fn scram_client_final(p: ScramPending, msg: &[u8]) -> Result<SaslStep, SecurityError> {
    let msg = std::str::from_utf8(msg).map_err(|_| {
        SecurityError::InvalidRequest("scram client-final is not utf-8".to_string())
    })?;
    // The proof is always the last attribute; everything before it is signed.
    let (without_proof, proof_b64) = msg.rsplit_once(",p=").ok_or_else(|| {
        SecurityError::InvalidRequest("scram client-final has no proof".to_string())
    })?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(|| {
            SecurityError::InvalidRequest("scram client-final must start with c=".to_string())
        })?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| {
            SecurityError::InvalidRequest("scram client-final is missing r=".to_string())
        })?;
    // Any further attributes are extensions we do not interpret; they are covered by the proof.

    let cbind = B64.decode(channel_binding).map_err(|_| {
        SecurityError::InvalidRequest("scram channel binding is not base64".to_string())
    })?;
    // Without channel binding support the client must echo exactly its gs2 header.
    if cbind != p.gs2_header.as_bytes() {
        return Err(SecurityError::AuthenticationFailed(
            "scram channel binding does not match the gs2 header".to_string(),
        ));
    }
    if nonce != p.nonce {
        return Err(SecurityError::AuthenticationFailed(
            "scram nonce does not match".to_string(),
        ));
    }
    let proof = B64
        .decode(proof_b64)
        .map_err(|_| SecurityError::InvalidRequest("scram proof is not base64".to_string()))?;
    if proof.len() != p.hash.output_len() {
        return Err(SecurityError::InvalidRequest(format!(
            "scram proof has {} bytes, expected {}",
            proof.len(),
            p.hash.output_len()
        )));
    }

    let auth_message = format!(
        "{},{},{}",
        p.client_first_bare, p.server_first, without_proof
    );
    let client_signature = p
        .hash
        .hmac(&p.credential.stored_key, auth_message.as_bytes())?;
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    // Evaluate the comparison for decoys too, so both paths cost the same.
    let proof_ok = constant_time_eq(&p.hash.digest(&client_key), &p.credential.stored_key);
    if !(proof_ok && p.known) {
        return Err(SecurityError::AuthenticationFailed(format!(
            "invalid scram proof for user {:?}",
            p.user
        )));
    }
    let server_signature = p
        .hash
        .hmac(&p.credential.server_key, auth_message.as_bytes())?;
    tracing::debug!(
        user = %p.user,
        mechanism = p.hash.mechanism().name(),
        "sasl authentication succeeded"
    );
    Ok(SaslStep::Done {
        user: p.user,
        response: format!("v={}", B64.encode(server_signature)).into_bytes(),
    })
}

/// Parsed SCRAM client-first message.
#[derive(Debug)]
struct ClientFirst<'a> {
    /// `gs2-cbind-flag "," [authzid] ","` exactly as sent.
    gs2_header: &'a str,
    authzid: Option<String>,
    user: String,
    nonce: &'a str,
    /// client-first-message-bare, part of the signed AuthMessage.
    bare: &'a str,
}

fn invalid(msg: &str) -> SecurityError {
    SecurityError::InvalidRequest(msg.to_string())
}

fn parse_client_first(msg: &str) -> Result<ClientFirst<'_>, SecurityError> {
    let mut parts = msg.splitn(3, ',');
    let (Some(cbind_flag), Some(authz), Some(bare)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("scram client-first has no gs2 header"));
    };
    match cbind_flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(invalid("scram channel binding is not supported")),
        _ => return Err(invalid("scram client-first has an invalid gs2 flag")),
    }
    let authzid = if authz.is_empty() {
        None
    } else {
        let a = authz
            .strip_prefix("a=")
            .ok_or_else(|| invalid("scram authzid must start with a="))?;
        Some(decode_saslname(a)?)
    };
    let gs2_header = msg
        .get(..msg.len().saturating_sub(bare.len()))
        .ok_or_else(|| invalid("scram client-first has a malformed gs2 header"))?;

    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        // RFC 5802: a server that does not understand mandatory extensions must fail.
        return Err(invalid("scram mandatory extensions are not supported"));
    }
    let user = first
        .strip_prefix("n=")
        .ok_or_else(|| invalid("scram client-first is missing n="))
        .and_then(decode_saslname)?;
    if user.is_empty() {
        return Err(invalid("scram username is empty"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| invalid("scram client-first is missing r="))?;
    if !is_valid_nonce(nonce) {
        return Err(invalid(
            "scram client nonce is empty or has invalid characters",
        ));
    }
    for ext in attrs {
        let (key, value) = ext
            .split_once('=')
            .ok_or_else(|| invalid("scram extension is not key=value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("scram extension has an invalid name"));
        }
        if key == "tokenauth" {
            if value.eq_ignore_ascii_case("true") {
                return Err(SecurityError::AuthenticationFailed(
                    "delegation token authentication is not supported".to_string(),
                ));
            }
        } else {
            // Kafka ignores extensions it does not know, so do we.
            tracing::debug!(extension = key, "ignoring unknown scram extension");
        }
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        user,
        nonce,
        bare,
    })
}

/// RFC 5802 nonce: printable ASCII except ','.
fn is_valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes an RFC 5802 saslname: ',' and '=' travel as "=2C" and "=3D".
fn decode_saslname(s: &str) -> Result<String, SecurityError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '=' => match (chars.next(), chars.next()) {
                (Some('2'), Some('C')) => out.push(','),
                (Some('3'), Some('D')) => out.push('='),
                _ => return Err(invalid("saslname has an invalid escape")),
            },
            ',' | '\0' => return Err(invalid("saslname has an invalid character")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Encodes a username as a saslname (used by tests and tools building client messages).
#[cfg(test)]
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::AlterUserScramCredentialsRequest;
    use kafka_protocol::protocol::StrBytes;

    fn store() -> (tempfile::TempDir, Arc<UserStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = UserStore::open(&dir.path().join("users.json")).expect("open");
        (dir, users)
    }

    /// Minimal SCRAM client, written from RFC 5802 independently of the server code paths.
    struct Client {
        hash: ScramHash,
        user: String,
        password: String,
        nonce: String,
        gs2: String,
        first_bare: String,
        server_signature: Vec<u8>,
    }

    impl Client {
        fn new(hash: ScramHash, user: &str, password: &str) -> Self {
            Self::with_nonce(hash, user, password, "fyko+d2lbbFgONRv9qkxdawL")
        }

        fn with_nonce(hash: ScramHash, user: &str, password: &str, nonce: &str) -> Self {
            Client {
                hash,
                user: user.to_string(),
                password: password.to_string(),
                nonce: nonce.to_string(),
                gs2: "n,,".to_string(),
                first_bare: String::new(),
                server_signature: Vec::new(),
            }
        }

        fn first(&mut self) -> Vec<u8> {
            self.first_bare = format!("n={},r={}", encode_saslname(&self.user), self.nonce);
            format!("{}{}", self.gs2, self.first_bare).into_bytes()
        }

        fn final_msg(&mut self, server_first: &[u8]) -> Vec<u8> {
            let server_first = std::str::from_utf8(server_first).expect("utf8");
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0u32;
            for attr in server_first.split(',') {
                if let Some(v) = attr.strip_prefix("r=") {
                    nonce = v;
                } else if let Some(v) = attr.strip_prefix("s=") {
                    salt = B64.decode(v).expect("salt");
                } else if let Some(v) = attr.strip_prefix("i=") {
                    iterations = v.parse().expect("iterations");
                }
            }
            assert!(nonce.starts_with(&self.nonce));
            let mut salted = vec![0u8; self.hash.output_len()];
            match self.hash {
                ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                    self.password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted,
                ),
                ScramHash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(
                    self.password.as_bytes(),
                    &salt,
                    iterations,
                    &mut salted,
                ),
            }
            let without_proof = format!("c={},r={nonce}", B64.encode(&self.gs2));
            let auth = format!("{},{server_first},{without_proof}", self.first_bare);
            let client_key = self.hash.hmac(&salted, b"Client Key").expect("hmac");
            let stored_key = self.hash.digest(&client_key);
            let sig = self.hash.hmac(&stored_key, auth.as_bytes()).expect("hmac");
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let server_key = self.hash.hmac(&salted, b"Server Key").expect("hmac");
            self.server_signature = self.hash.hmac(&server_key, auth.as_bytes()).expect("hmac");
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
        }

        fn check_server_final(&self, msg: &[u8]) {
            let expected = format!("v={}", B64.encode(&self.server_signature));
            assert_eq!(std::str::from_utf8(msg).expect("utf8"), expected);
        }
    }

    fn mech(hash: ScramHash) -> Mechanism {
        hash.mechanism()
    }

    fn exchange(
        users: &Arc<UserStore>,
        client: &mut Client,
    ) -> Result<(String, Vec<u8>), SecurityError> {
        let mut session = SaslSession::new(mech(client.hash), users.clone());
        let server_first = match session.step(&client.first())? {
            SaslStep::Continue(b) => b,
            SaslStep::Done { .. } => panic!("scram must not finish after client-first"),
        };
        match session.step(&client.final_msg(&server_first))? {
            SaslStep::Done { user, response } => Ok((user, response)),
            SaslStep::Continue(_) => panic!("scram must finish after client-final"),
        }
    }

    #[test]
    fn scram_full_exchange_both_mechanisms() {
        let (_dir, users) = store();
        users.set_password("alice", "s3cret").expect("set");
        for hash in ScramHash::ALL {
            let mut client = Client::new(hash, "alice", "s3cret");
            let (user, response) = exchange(&users, &mut client).expect("login");
            assert_eq!(user, "alice");
            client.check_server_final(&response);
        }
    }

    #[test]
    fn scram_username_with_escapes() {
        let (_dir, users) = store();
        users.set_password("a,b=c", "pw").expect("set");
        let mut client = Client::new(ScramHash::Sha512, "a,b=c", "pw");
        let (user, _) = exchange(&users, &mut client).expect("login");
        assert_eq!(user, "a,b=c");
    }

    #[test]
    fn scram_wrong_password_fails() {
        let (_dir, users) = store();
        users.set_password("alice", "s3cret").expect("set");
        for hash in ScramHash::ALL {
            let mut client = Client::new(hash, "alice", "wrong");
            assert!(matches!(
                exchange(&users, &mut client),
                Err(SecurityError::AuthenticationFailed(_))
            ));
        }
    }

    #[test]
    fn scram_unknown_user_fails_only_at_proof_with_stable_salt() {
        let (_dir, users) = store();
        let mut salts = Vec::new();
        for _ in 0..2 {
            let mut session = SaslSession::new(Mechanism::ScramSha256, users.clone());
            let mut client = Client::new(ScramHash::Sha256, "ghost", "pw");
            let server_first = match session.step(&client.first()).expect("first step") {
                SaslStep::Continue(b) => b,
                SaslStep::Done { .. } => panic!("unexpected done"),
            };
            let sf = String::from_utf8(server_first.clone()).expect("utf8");
            let salt = sf
                .split(',')
                .find_map(|a| a.strip_prefix("s="))
                .expect("salt")
                .to_string();
            assert!(sf.ends_with(",i=4096"));
            salts.push(salt);
            let res = session.step(&client.final_msg(&server_first));
            assert!(matches!(res, Err(SecurityError::AuthenticationFailed(_))));
        }
        assert_eq!(salts[0], salts[1], "decoy salt must be deterministic");

        // Different user, different decoy salt; and it survives a reopen.
        let path = _dir.path().join("users.json");
        let reopened = UserStore::open(&path).expect("reopen");
        let a = users
            .decoy_credential("ghost", ScramHash::Sha256)
            .expect("decoy");
        let b = reopened
            .decoy_credential("ghost", ScramHash::Sha256)
            .expect("decoy");
        let c = users
            .decoy_credential("ghost2", ScramHash::Sha256)
            .expect("decoy");
        assert_eq!(a.salt, b.salt);
        assert_ne!(a.salt, c.salt);
    }

    #[test]
    fn scram_credential_for_other_mechanism_only_is_unknown() {
        let (_dir, users) = store();
        // Only a SHA-256 credential via AlterUserScramCredentials.
        let salt = b"0123456789abcdef".to_vec();
        let salted = ScramHash::Sha256.salted_password(b"pw", &salt, 4096);
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_static_str("bob"))
                .with_mechanism(1)
                .with_iterations(4096)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        ]);
        let resp = users.alter_scram(&req, 0);
        assert_eq!(resp.results[0].error_code, 0);
        let mut ok = Client::new(ScramHash::Sha256, "bob", "pw");
        assert!(exchange(&users, &mut ok).is_ok());
        let mut other = Client::new(ScramHash::Sha512, "bob", "pw");
        assert!(exchange(&users, &mut other).is_err());
    }

    #[test]
    fn alter_scram_upsertion_then_scram_login() {
        let (_dir, users) = store();
        // What a client (e.g. kafka-configs) sends: it salts and hashes the password itself.
        let salt256 = b"client-chosen-salt-256".to_vec();
        let salt512 = b"client-chosen-salt-512".to_vec();
        let salted256 =
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(b"hunter2", &salt256, 8192).to_vec();
        let salted512 =
            pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(b"hunter2", &salt512, 4096).to_vec();
        let up = |mech: i8, it: i32, salt: Vec<u8>, salted: Vec<u8>| {
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_static_str("frank"))
                .with_mechanism(mech)
                .with_iterations(it)
                .with_salt(salt.into())
                .with_salted_password(salted.into())
        };
        // One user per request (Kafka rejects altering a user twice in one request).
        for u in [
            up(1, 8192, salt256.clone(), salted256),
            up(2, 4096, salt512.clone(), salted512),
        ] {
            let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]);
            assert_eq!(users.alter_scram(&req, 0).results[0].error_code, 0);
        }
        for (hash, salt, iterations) in [
            (ScramHash::Sha256, salt256, 8192),
            (ScramHash::Sha512, salt512, 4096),
        ] {
            let mut session = SaslSession::new(hash.mechanism(), users.clone());
            let mut client = Client::new(hash, "frank", "hunter2");
            let Ok(SaslStep::Continue(sf)) = session.step(&client.first()) else {
                panic!("first step failed");
            };
            let sf_text = String::from_utf8(sf.clone()).expect("utf8");
            assert!(sf_text.contains(&format!(",s={},i={iterations}", B64.encode(&salt))));
            let Ok(SaslStep::Done { user, response }) = session.step(&client.final_msg(&sf)) else {
                panic!("final step failed");
            };
            assert_eq!(user, "frank");
            client.check_server_final(&response);

            let mut wrong = Client::new(hash, "frank", "hunter3");
            assert!(exchange(&users, &mut wrong).is_err());
        }
        assert!(users.verify_plain("frank", "hunter2"));
    }

    #[test]
    fn rfc7677_sha256_test_vector() {
        let (_dir, users) = store();
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(b"pencil", &salt, 4096).to_vec();
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_static_str("user"))
                .with_mechanism(1)
                .with_iterations(4096)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        ]);
        assert_eq!(users.alter_scram(&req, 0).results[0].error_code, 0);

        let mut session = SaslSession::new(Mechanism::ScramSha256, users.clone())
            .with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let server_first = session
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .expect("first");
        assert_eq!(
            server_first,
            SaslStep::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let done = session
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .expect("final");
        assert_eq!(
            done,
            SaslStep::Done {
                user: "user".to_string(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
    }

    #[test]
    fn scram_authzid_and_gs2_variants() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");

        // authzid equal to the user and "y" flag are fine; the channel binding must echo it.
        for gs2 in ["n,a=alice,", "y,,"] {
            let mut client = Client::new(ScramHash::Sha256, "alice", "pw");
            client.gs2 = gs2.to_string();
            assert!(exchange(&users, &mut client).is_ok(), "gs2 {gs2}");
        }

        let mut other = Client::new(ScramHash::Sha256, "alice", "pw");
        other.gs2 = "n,a=mallory,".to_string();
        assert!(matches!(
            exchange(&users, &mut other),
            Err(SecurityError::AuthenticationFailed(_))
        ));
    }

    #[test]
    fn scram_channel_binding_mismatch_fails() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let mut session = SaslSession::new(Mechanism::ScramSha256, users.clone());
        let mut client = Client::new(ScramHash::Sha256, "alice", "pw");
        let Ok(SaslStep::Continue(sf)) = session.step(&client.first()) else {
            panic!("first step failed");
        };
        let good = String::from_utf8(client.final_msg(&sf)).expect("utf8");
        // "eSws" is base64("y,,") while the client sent "n,,".
        let bad = good.replacen("c=biws", "c=eSws", 1);
        assert!(matches!(
            session.step(bad.as_bytes()),
            Err(SecurityError::AuthenticationFailed(_))
        ));
    }

    #[test]
    fn scram_tampered_nonce_fails() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let mut session = SaslSession::new(Mechanism::ScramSha256, users.clone());
        let mut client = Client::new(ScramHash::Sha256, "alice", "pw");
        let Ok(SaslStep::Continue(sf)) = session.step(&client.first()) else {
            panic!("first step failed");
        };
        let good = String::from_utf8(client.final_msg(&sf)).expect("utf8");
        let bad = good.replacen(",r=", ",r=X", 1);
        assert!(session.step(bad.as_bytes()).is_err());
    }

    #[test]
    fn scram_malformed_client_first_fails_cleanly() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=alice,r=abc",
            b"p=tls-unique,,n=alice,r=abc",
            b"n,b=alice,n=alice,r=abc",
            b"n,,m=foo,n=alice,r=abc",
            b"n,,n=alice",
            b"n,,n=alice,r=",
            b"n,,n=,r=abc",
            b"n,,n=al=ice,r=abc",
            b"n,,n=al=2,r=abc",
            b"n,,r=abc,n=alice",
            b"n,,n=alice,r=abc,bogus",
            b"n,,n=alice,r=abc,=x",
            b"n,,n=alice,r=abc,tokenauth=true",
            b"n,,n=alice,r=a\x7fc",
            b"n,,n=\xff\xfe,r=abc",
            b"\0\0\0",
        ];
        for case in cases {
            let mut session = SaslSession::new(Mechanism::ScramSha512, users.clone());
            assert!(
                session.step(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
            // A failed session stays failed.
            assert!(session.step(b"n,,n=alice,r=abc").is_err());
        }
        let huge = vec![b'a'; MAX_MESSAGE_LEN + 1];
        let mut session = SaslSession::new(Mechanism::ScramSha512, users.clone());
        assert!(session.step(&huge).is_err());

        // Unknown extensions and tokenauth=false are accepted.
        for ok in [
            &b"n,,n=alice,r=abc,tokenauth=false"[..],
            &b"n,,n=alice,r=abc,foo=bar"[..],
        ] {
            let mut session = SaslSession::new(Mechanism::ScramSha512, users.clone());
            assert!(matches!(session.step(ok), Ok(SaslStep::Continue(_))));
        }
    }

    #[test]
    fn scram_malformed_client_final_fails_cleanly() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let cases: &[&[u8]] = &[
            b"",
            b"c=biws",
            b"c=biws,r=abc",
            b"p=AAAA",
            b"r=x,c=biws,p=AAAA",
            b"c=!!!,r=x,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=biws,r=NONCE,p=!!notbase64",
            b"c=biws,r=NONCE,p=AAAA",
            b"c=biws,r=NONCE,p=",
            b"\xff,p=AAAA",
        ];
        for case in cases {
            let mut session = SaslSession::new(Mechanism::ScramSha256, users.clone());
            let mut client = Client::new(ScramHash::Sha256, "alice", "pw");
            let Ok(SaslStep::Continue(sf)) = session.step(&client.first()) else {
                panic!("first step failed");
            };
            let sf = String::from_utf8(sf).expect("utf8");
            let nonce = sf
                .split(',')
                .find_map(|a| a.strip_prefix("r="))
                .expect("nonce")
                .to_string();
            let msg = String::from_utf8_lossy(case).replace("NONCE", &nonce);
            let msg = if case.first() == Some(&0xff) {
                case.to_vec()
            } else {
                msg.into_bytes()
            };
            assert!(
                session.step(&msg).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(&msg)
            );
            assert!(session.step(b"anything").is_err());
        }
    }

    #[test]
    fn session_rejects_messages_after_success() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let mut session = SaslSession::new(Mechanism::Plain, users.clone());
        assert!(session.step(b"\0alice\0pw").is_ok());
        assert!(session.step(b"\0alice\0pw").is_err());
    }

    #[test]
    fn plain_ok_and_failures() {
        let (_dir, users) = store();
        users.set_password("alice", "pw").expect("set");
        let ok: &[&[u8]] = &[b"\0alice\0pw", b"alice\0alice\0pw"];
        for msg in ok {
            let mut session = SaslSession::new(Mechanism::Plain, users.clone());
            assert_eq!(
                session.step(msg).expect("plain login"),
                SaslStep::Done {
                    user: "alice".to_string(),
                    response: Vec::new()
                }
            );
        }
        let bad: &[&[u8]] = &[
            b"\0alice\0wrong",
            b"\0ghost\0pw",
            b"bob\0alice\0pw",
            b"\0alice",
            b"alice\0pw",
            b"\0alice\0pw\0extra",
            b"\0\0pw",
            b"\0alice\0",
            b"",
            b"\0al\xffice\0pw",
        ];
        for msg in bad {
            let mut session = SaslSession::new(Mechanism::Plain, users.clone());
            assert!(
                session.step(msg).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn saslname_codec() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").expect("decode"), "a,b=c");
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert!(decode_saslname("a=2c").is_err());
        assert!(decode_saslname("a=").is_err());
        assert!(decode_saslname("a=3").is_err());
        assert!(decode_saslname("é=3D").is_ok());
    }
}
