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

use crate::i18n::{Lang, Strings};

pub const COOKIE: &str = "pacsbox_session";
/// The login form's double-submit CSRF cookie (there is no session yet to hold a token).
const LOGIN_COOKIE: &str = "pacsbox_login";
pub const MIN_PASSWORD_LEN: usize = 10;
/// A login form is good for this long.
const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// When failed logins lock further tries: `max` failures, each within `lock` of the previous
/// one, lock for `lock` after the last.
struct Limit {
    max: u32,
    lock: Duration,
}

/// Guessing one user's password.
const PER_NAME: Limit = Limit {
    max: 5,
    lock: Duration::from_secs(30),
};
/// One address guessing across user names (a spray): about four tries a minute in the long run.
const PER_CLIENT: Limit = Limit {
    max: 20,
    lock: Duration::from_secs(5 * 60),
};
/// Past this many remembered names or addresses, the expired ones are forgotten.
const THROTTLE_PRUNE_AT: usize = 1024;

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub group: Group,
    pub csrf: String,
    pub must_change_password: bool,
    /// A handle an admin may see and use to end the session (the cookie token is never shown).
    pub id: String,
    /// The address the session was opened from.
    pub client: String,
    pub since_unix: i64,
    /// The user's own language setting (account page), `None`: follow the browser.
    pub language: Option<Lang>,
    /// The language of this request's pages (`routes.rs` sets it from the setting and the
    /// browser's `Accept-Language`).
    pub lang: Lang,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    /// The texts of this request's pages.
    pub fn t(&self) -> &'static Strings {
        self.lang.strings()
    }
}

/// Failed logins for one user name or one client address.
#[derive(Clone, Copy)]
struct Strikes {
    n: u32,
    last: Instant,
}

#[derive(Default)]
struct Throttle {
    by_name: HashMap<String, Strikes>,
    by_client: HashMap<String, Strikes>,
}

pub struct Sessions {
    idle: Duration,
    max_age: Duration,
    /// Signs login-form tokens, so only forms this process handed out are accepted.
    key: [u8; 32],
    map: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
}

/// `; Secure` for a request that came over HTTPS: the browser then never sends the cookie
/// over plain HTTP, where anyone on the LAN could read it.
fn secure(req: &crate::reply::Req) -> &'static str {
    if req.https { "; Secure" } else { "" }
}

pub fn session_cookie(req: &crate::reply::Req, token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        secure(req)
    )
}

pub fn clear_cookie(req: &crate::reply::Req) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(req)
    )
}

pub fn login_cookie(req: &crate::reply::Req, token: &str) -> String {
    format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{}",
        secure(req)
    )
}

/// Whether the login form's CSRF field is the one its cookie was set with.
pub fn login_cookie_matches(req: &crate::reply::Req, csrf: &str) -> bool {
    req.cookies
        .get(LOGIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && c == csrf)
}

/// A value from a request as it may appear in the log: at most 40 characters, no control
/// characters (people type passwords into the user field; 14 KB names must not fill the log).
pub fn loggable(s: &str) -> String {
    pacsbox_audit::printable(s, 40)
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
    // It was shown on a display or kept in a file: never again a password of anyone's.
    archive
        .index()
        .retire_password(&rec.password_hash, rec.created_unix)?;
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

impl Strikes {
    fn locked_for(&self, limit: &Limit) -> Option<Duration> {
        let since = self.last.elapsed();
        (self.n >= limit.max && since < limit.lock).then(|| limit.lock - since)
    }

    /// One more failure; an old run of failures starts over.
    fn add(entry: &mut Strikes, limit: &Limit) {
        if entry.last.elapsed() >= limit.lock {
            entry.n = 0;
        }
        entry.n += 1;
        entry.last = Instant::now();
    }
}

impl Throttle {
    /// Refuses a locked name or address; otherwise counts the try as a failure *before* the
    /// password is checked, so parallel tries cannot all pass the check in one window.
    fn begin(&mut self, name: &str, client: &str) -> Result<(), Duration> {
        if self.by_name.len() + self.by_client.len() > THROTTLE_PRUNE_AT {
            self.by_name.retain(|_, s| s.last.elapsed() < PER_NAME.lock);
            self.by_client
                .retain(|_, s| s.last.elapsed() < PER_CLIENT.lock);
        }
        let locked = [
            self.by_name.get(name).and_then(|s| s.locked_for(&PER_NAME)),
            self.by_client
                .get(client)
                .and_then(|s| s.locked_for(&PER_CLIENT)),
        ];
        if let Some(wait) = locked.into_iter().flatten().max() {
            return Err(wait);
        }
        let fresh = Strikes {
            n: 0,
            last: Instant::now(),
        };
        // Names longer than any user name count under their first characters.
        let key: String = name.chars().take(64).collect();
        Strikes::add(self.by_name.entry(key).or_insert(fresh), &PER_NAME);
        Strikes::add(
            self.by_client.entry(client.to_owned()).or_insert(fresh),
            &PER_CLIENT,
        );
        Ok(())
    }

    /// The try succeeded: it was no failure after all.
    fn succeeded(&mut self, name: &str, client: &str) {
        self.by_name.remove(name);
        if let Some(s) = self.by_client.get_mut(client) {
            s.n = s.n.saturating_sub(1);
        }
    }
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> anyhow::Result<Sessions> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
        Ok(Sessions {
            idle,
            max_age,
            key,
            map: Mutex::new(HashMap::new()),
            throttle: Mutex::new(Throttle::default()),
        })
    }

    fn sign(&self, text: &str) -> String {
        use blake2::Digest;
        // BLAKE2 has no length extension, so hashing key ‖ message is a MAC.
        let mac = blake2::Blake2b512::new()
            .chain_update(self.key)
            .chain_update(text.as_bytes())
            .finalize();
        mac.iter().take(16).map(|x| format!("{x:02x}")).collect()
    }

    /// A token for a login form: its expiry (16 hex digits), a nonce (24) and a MAC (32), all
    /// hex like every other token, so that a pair of cookie and field some other site made up
    /// (`abc`/`abc`) is refused.
    pub fn login_token(&self) -> anyhow::Result<String> {
        let expires = now_unix().saturating_add(LOGIN_FORM_LIFETIME.as_secs() as i64);
        let text = format!("{:016x}{}", expires.max(0), random_token(12)?);
        let mac = self.sign(&text);
        Ok(format!("{text}{mac}"))
    }

    /// Whether `token` came from [`Sessions::login_token`] of this process and has not expired.
    pub fn login_token_valid(&self, token: &str) -> bool {
        if token.len() != 72 || !token.is_ascii() {
            return false;
        }
        let (text, mac) = token.split_at(40);
        let Ok(expires) = i64::from_str_radix(&text[..16], 16) else {
            return false;
        };
        let want = self.sign(text);
        // Compared in constant time: the MAC must not be guessable byte by byte.
        let same = want.len() == mac.len()
            && want
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same && expires >= now_unix()
    }

    /// Checks the password; on success opens a session and returns its cookie token.
    pub fn login(
        &self,
        archive: &Archive,
        user: &str,
        password: &str,
        client: &str,
    ) -> anyhow::Result<Result<String, LoginError>> {
        if let Ok(mut t) = self.throttle.lock()
            && let Err(wait) = t.begin(user, client)
        {
            tracing::warn!(user = %loggable(user), client, "web login refused: locked");
            return Ok(Err(LoginError::Locked(wait.as_secs().max(1))));
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
            tracing::warn!(user = %loggable(user), client, "failed web login");
            return Ok(Err(LoginError::Wrong));
        };
        if let Ok(mut t) = self.throttle.lock() {
            t.succeeded(user, client);
        }
        if let Err(e) = archive.index().record_login(user, now_unix()) {
            // The admins' "last login" column is a convenience; the login itself goes on.
            tracing::warn!(user, error = %e, "could not note the login time");
        }
        let language = match archive.index().user_language(user) {
            Ok(tag) => tag.as_deref().and_then(Lang::parse),
            Err(e) => {
                // The pages then follow the browser; the login itself goes on.
                tracing::warn!(user, error = %e, "could not read the language setting");
                None
            }
        };
        let token = random_token(32)?;
        let now = Instant::now();
        let session = Session {
            user: user.to_owned(),
            group: rec.group,
            csrf: random_token(16)?,
            must_change_password: rec.must_change_password,
            id: random_token(8)?,
            client: client.to_owned(),
            since_unix: now_unix(),
            language,
            lang: language.unwrap_or_default(),
            created: now,
            last_seen: now,
        };
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, s| self.live(s));
            m.insert(token.clone(), session);
        }
        tracing::info!(user, client, "web login");
        Ok(Ok(token))
    }

    /// Not idle too long, and not older than the absolute lifetime (a session on a shared PC
    /// that someone keeps touching still ends).
    fn live(&self, s: &Session) -> bool {
        s.last_seen.elapsed() < self.idle && s.created.elapsed() < self.max_age
    }

    /// The live session for a cookie token (touching it), or None.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut m = self.map.lock().ok()?;
        let s = m.get(token)?;
        if !self.live(s) {
            m.remove(token);
            return None;
        }
        let s = m.get_mut(token)?;
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    /// Every live session, oldest first (the admin's list of who is logged in).
    pub fn list(&self) -> Vec<Session> {
        let Ok(mut m) = self.map.lock() else {
            return Vec::new();
        };
        m.retain(|_, s| self.live(s));
        let mut v: Vec<Session> = m.values().cloned().collect();
        v.sort_by_key(|s| s.since_unix);
        v
    }

    /// Ends the session with this id (from [`Sessions::list`]); returns its user.
    pub fn end(&self, id: &str) -> Option<String> {
        let mut m = self.map.lock().ok()?;
        let token = m.iter().find(|(_, s)| s.id == id).map(|(t, _)| t.clone())?;
        m.remove(&token).map(|s| s.user)
    }

    /// After the user changed their language setting: their sessions follow it at once.
    pub fn language_changed(&self, user: &str, language: Option<Lang>) {
        if let Ok(mut m) = self.map.lock() {
            for s in m.values_mut().filter(|s| s.user == user) {
                s.language = language;
            }
        }
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
    if new == current {
        return Ok(Err(
            "the new password must differ from the current one".into()
        ));
    }
    if let Err(e) = acceptable_password(archive, user, new, confirm)? {
        return Ok(Err(e));
    }
    rec.password_hash = hash_password(new)?;
    rec.must_change_password = false;
    archive.index().put_user(user, &rec)?;
    Ok(Ok(()))
}

/// Passwords at the top of every leaked list and guessed first; with digits or symbols added
/// at either end (`Password123!`) they are refused too.
const COMMON: &[&str] = &[
    "password",
    "passwort",
    "qwerty",
    "qwertz",
    "azerty",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "iloveyou",
    "monkey",
    "dragon",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "master",
    "shadow",
    "superman",
    "trustno1",
    "changeme",
    "secret",
    "default",
    "hospital",
    "clinic",
    "radiology",
    "doctor",
    "dicom",
    "pacs",
    "pacsbox",
    "orthanc",
    "asdfgh",
    "zxcvbn",
    "1q2w3e4r",
    "abc123",
    "p@ssw0rd",
    "passw0rd",
];

/// Why a password is too easy to guess, if it is: short, one repeated or counted-up
/// character, a common password, the user's own name, or a retired one (the first-boot
/// password).
pub fn acceptable_password(
    archive: &Archive,
    user: &str,
    new: &str,
    confirm: &str,
) -> anyhow::Result<Result<(), String>> {
    if new != confirm {
        return Ok(Err("the two new passwords differ".into()));
    }
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Ok(Err(format!(
            "the new password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let lower = new.to_lowercase();
    let first = lower.chars().next().unwrap_or_default();
    let counted =
        |run: &str| run.contains(&lower) || run.chars().rev().collect::<String>().contains(&lower);
    if lower.chars().all(|c| c == first)
        || counted("0123456789012345678901234567890123456789")
        || counted("abcdefghijklmnopqrstuvwxyz")
    {
        return Ok(Err(
            "the new password is a run of one character or of counted-up characters (like 1234567890)".into(),
        ));
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if COMMON.contains(&core) {
        return Ok(Err(
            "the new password contains a common password; choose another".into(),
        ));
    }
    if !user.is_empty() && lower.contains(&user.to_lowercase()) {
        return Ok(Err("the new password contains the user name".into()));
    }
    if archive
        .index()
        .retired_passwords()?
        .iter()
        .any(|phc| verify_password(new, phc))
    {
        return Ok(Err(
            "the new password was the first-boot password; choose another".into(),
        ));
    }
    Ok(Ok(()))
}

/// User names: short, printable, no separators that could confuse logs or URLs.
pub fn acceptable_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
