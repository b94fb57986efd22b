//! Users, passwords and sessions.
//!
//! Passwords are argon2id PHC strings in the archive's account table. Sessions live in memory
//! (a restart logs everyone out, which is fine for an appliance) and carry their own CSRF
//! token; the cookie is HttpOnly and SameSite=Strict. Failed logins for a user name are slowed
//! down after a few tries so a LAN neighbour cannot guess passwords at argon2's speed.
//! Every cookie the page sets or reads is spelled here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use pacsbox_archive::Archive;
use pacsbox_archive::accounts::{Group, UserRecord};

pub const COOKIE: &str = "pacsbox_session";
/// The login form's double-submit CSRF cookie (there is no session yet to hold a token).
const LOGIN_COOKIE: &str = "pacsbox_login";
pub const MIN_PASSWORD_LEN: usize = 8;
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub group: Group,
    pub csrf: String,
    pub must_change_password: bool,
    last_seen: Instant,
}

pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

pub fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub fn login_cookie(token: &str) -> String {
    format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict")
}

/// Whether the login form's CSRF field is the one its cookie was set with.
pub fn login_cookie_matches(req: &crate::reply::Req, csrf: &str) -> bool {
    req.cookies
        .get(LOGIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && c == csrf)
}

/// Hex of `n` random bytes from the OS.
pub fn random_token(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A password a person can read off a small display and type: no 0/O, 1/l/I.
pub fn generate_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect())
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub(crate) fn now_unix() -> i64 {
    unix_seconds(std::time::SystemTime::now())
}

/// Seconds since 1970 for any clock value: negative before it, saturated at the ends.
pub(crate) fn unix_seconds(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Creates `admin` when there are no users at all, with the password found in
/// `password_file` (the appliance's first boot makes one on the box) or else a generated one,
/// written there. Returns the password when it created the user.
pub fn ensure_first_admin(
    archive: &Archive,
    password_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    if !archive.index().users()?.is_empty() {
        return Ok(None);
    }
    let given = password_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|p| p.trim().to_owned())
        .filter(|p| p.chars().count() >= MIN_PASSWORD_LEN);
    let password = match &given {
        Some(p) => p.clone(),
        None => generate_password()?,
    };
    let rec = UserRecord {
        password_hash: hash_password(&password)?,
        group: Group::Admin,
        must_change_password: true,
        created_unix: now_unix(),
    };
    if !archive.index().create_user_if_absent("admin", &rec)? {
        return Ok(None);
    }
    if let (Some(f), None) = (password_file, &given) {
        write_private(f, &format!("{password}\n"))?;
    }
    Ok(Some(password))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Wrong,
    #[error("too many failed logins; wait {0} s")]
    Locked(u64),
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the password; on success opens a session and returns its cookie token.
    pub fn login(
        &self,
        archive: &Archive,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Result<String, LoginError>> {
        if let Ok(f) = self.failures.lock()
            && let Some((n, at)) = f.get(user)
            && *n >= MAX_FAILURES
            && at.elapsed() < LOCKOUT
        {
            return Ok(Err(LoginError::Locked(
                (LOCKOUT - at.elapsed()).as_secs().max(1),
            )));
        }
        let rec = archive.index().user(user)?;
        let ok = match &rec {
            Some(r) => verify_password(password, &r.password_hash),
            // Same work whether or not the user exists, so timing does not tell.
            None => {
                let _ = hash_password(password);
                false
            }
        };
        let Some(rec) = rec.filter(|_| ok) else {
            if let Ok(mut f) = self.failures.lock() {
                let e = f.entry(user.to_owned()).or_insert((0, Instant::now()));
                if e.1.elapsed() >= LOCKOUT {
                    *e = (0, Instant::now());
                }
                e.0 += 1;
                e.1 = Instant::now();
            }
            tracing::warn!(user, "failed web login");
            return Ok(Err(LoginError::Wrong));
        };
        if let Ok(mut f) = self.failures.lock() {
            f.remove(user);
        }
        let token = random_token(32)?;
        let session = Session {
            user: user.to_owned(),
            group: rec.group,
            csrf: random_token(16)?,
            must_change_password: rec.must_change_password,
            last_seen: Instant::now(),
        };
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, s| s.last_seen.elapsed() < self.idle);
            m.insert(token.clone(), session);
        }
        tracing::info!(user, "web login");
        Ok(Ok(token))
    }

    /// The live session for a cookie token (touching it), or None.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut m = self.map.lock().ok()?;
        let s = m.get_mut(token)?;
        if s.last_seen.elapsed() >= self.idle {
            m.remove(token);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    pub fn logout(&self, token: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(token);
        }
    }

    /// After a password change: this session no longer needs one, the user's other sessions
    /// end.
    pub fn password_changed(&self, token: &str, user: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|t, s| t == token || s.user != user);
            if let Some(s) = m.get_mut(token) {
                s.must_change_password = false;
            }
        }
    }

    /// Ends every session of a user (deleted or password reset by an admin).
    pub fn end_user(&self, user: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, s| s.user != user);
        }
    }
}

/// Changes a password after checking the current one.
pub fn change_password(
    archive: &Archive,
    user: &str,
    current: &str,
    new: &str,
    confirm: &str,
) -> anyhow::Result<Result<(), String>> {
    let Some(mut rec) = archive.index().user(user)? else {
        return Ok(Err("no such user".into()));
    };
    if !verify_password(current, &rec.password_hash) {
        return Ok(Err("the current password is wrong".into()));
    }
    if let Err(e) = acceptable_password(new, confirm) {
        return Ok(Err(e));
    }
    if new == current {
        return Ok(Err(
            "the new password must differ from the current one".into()
        ));
    }
    rec.password_hash = hash_password(new)?;
    rec.must_change_password = false;
    archive.index().put_user(user, &rec)?;
    Ok(Ok(()))
}

pub fn acceptable_password(new: &str, confirm: &str) -> Result<(), String> {
    if new != confirm {
        return Err("the two new passwords differ".into());
    }
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the new password needs at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    Ok(())
}

/// User names: short, printable, no separators that could confuse logs or URLs.
pub fn acceptable_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
