//! Sign-in for the classroom pages: faculty (the page at `/` and the API) and students (the
//! student page at `/student`, see [`super::student`]), each with their own session store and
//! cookie, so a student's session is never accepted by a faculty route nor the other way round.
//!
//! A faculty member signs in with their user id, staff number or e-mail and their classroom PIN
//! (verified with argon2 against `faculty.pin_hash`, which the cloud delivers in the roster
//! snapshot) and gets a random 256-bit token: as the `nimbus_session` cookie
//! (`HttpOnly; SameSite=Strict`) for the page, or in JSON for tooling, which sends it back as
//! `Authorization: Bearer <token>`. Tokens live only in memory and die with the process (a
//! restart signs everyone out; nothing secret is ever written to disk). They expire after 8 hours.
//!
//! Forged form posts: every form of the page carries a token, and a post whose token does not
//! match is refused whatever its headers say. Page forms carry the login's own token; the sign-in
//! form, which has no login yet, pairs a hidden field with the `nimbus_form` cookie set when the
//! form was served (double submit). The browser's own headers are checked as well
//! ([`origin_allows`]): `Sec-Fetch-Site` other than `same-origin` or an `Origin` naming another
//! host is refused. `Origin: null` is not: Chromium sends it for a same-origin post from a page
//! whose referrer policy withholds the origin, so it proves nothing either way and the token
//! decides. The page itself says `Referrer-Policy: same-origin`, so browsers do send its origin.
//!
//! A student signs in the same way with their register number, e-mail or user id and their own
//! classroom PIN (`students.pin_hash`, from the same snapshot): cookie `nimbus_student`
//! (`HttpOnly; SameSite=Strict; Path=/student`), form cookie `nimbus_student_form`.
//!
//! Brute force is throttled per person and per client address: after 5 failed attempts for one
//! person within 10 minutes, further attempts for them are refused for 5 minutes (429 with
//! `Retry-After`), whatever the PIN; after 10 failed attempts from one address within 10
//! minutes (whoever they were for), that address is refused for 5 minutes. For the person, an
//! attempt counts as failed from the moment it starts until its PIN verifies, so parallel guesses
//! cannot slip past the limit; the address is charged when a PIN turns out wrong and checked again
//! right before each verification (they run two at a time), so a whole class behind one NAT
//! signing in at once is not mistaken for a guesser. Unknown ids are verified against a dummy hash and throttled the same way, so
//! neither the answer nor its timing tells whether an id exists. Faculty and students have
//! separate throttles; PIN verifications (argon2, ~19 MiB each) share one limit.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use maud::html;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::error::{ApiForm, ApiJson, AppError};
use super::view::{Fetches, html_page, layout};
use super::{AppState, blocking};

/// The page's session cookie.
pub const COOKIE: &str = "nimbus_session";
/// The sign-in form's token cookie (double submit: it must equal the form's hidden field).
pub const FORM_COOKIE: &str = "nimbus_form";
/// The hidden field every form of the page carries its token in.
pub const FORM_TOKEN_FIELD: &str = "csrf";
/// How long a login lasts.
pub const LOGIN_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed attempts for one id that trigger a lockout ...
pub const MAX_FAILURES: usize = 5;
/// ... when they fall within this window ...
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// ... and how long the lockout lasts.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Failed attempts from one client address (for anyone) within [`FAILURE_WINDOW`] that lock the
/// address out for [`LOCKOUT`]: a guesser cannot cycle through a class's register numbers.
pub const MAX_ADDRESS_FAILURES: usize = 10;

/// Longest staff id or PIN considered (longer ones simply fail).
const MAX_CREDENTIAL_LEN: usize = 128;
/// Above this many throttle entries, stale ones are swept out.
const THROTTLE_SWEEP_AT: usize = 1024;
/// PIN checks running at once: each argon2 verification takes ~19 MiB, and a flood of logins must
/// not exhaust a Pi's memory through the blocking pool. Others wait their turn.
const CONCURRENT_VERIFICATIONS: usize = 2;
/// Longest login lifetime accepted by [`Logins::new`].
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A flash message shown once on the next page render.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
}

struct LoginSession {
    user_id: String,
    name: String,
    /// The PIN hash the sign-in was verified against: a session is worth only as much as the
    /// credential it came from (see [`SignedIn::credential`]).
    credential: Arc<str>,
    /// The token the page's forms must carry (not the session token: that one never appears in
    /// the HTML).
    form_token: String,
    expires: Instant,
    flash: Option<Flash>,
}

#[derive(Default)]
struct Attempts {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Failed attempts per key (a person, or a client address) and their lockouts.
struct Throttle {
    max_failures: usize,
    map: Mutex<HashMap<String, Attempts>>,
}

/// The in-memory logins of one audience (faculty or students) and their brute-force throttles.
pub(crate) struct Logins {
    ttl: Duration,
    sessions: Mutex<HashMap<String, LoginSession>>,
    people: Throttle,
    addresses: Throttle,
    verifications: Arc<tokio::sync::Semaphore>,
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The semaphore every PIN verification of the node takes (see [`CONCURRENT_VERIFICATIONS`]).
pub(crate) fn verification_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS))
}

impl Logins {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self::sharing(ttl, verification_slots())
    }

    /// Logins whose PIN checks take turns with those of other audiences on `verifications`.
    pub(crate) fn sharing(ttl: Duration, verifications: Arc<tokio::sync::Semaphore>) -> Self {
        Logins {
            ttl: ttl.min(MAX_TTL),
            sessions: Mutex::default(),
            people: Throttle { max_failures: MAX_FAILURES, map: Mutex::default() },
            addresses: Throttle { max_failures: MAX_ADDRESS_FAILURES, map: Mutex::default() },
            verifications,
        }
    }

    /// The verification slots these logins use.
    pub(crate) fn verifications(&self) -> Arc<tokio::sync::Semaphore> {
        self.verifications.clone()
    }

    /// Starts an attempt for person `id` from `addr` at `now`: refused with the seconds to wait
    /// while the address or the person is locked out; otherwise counted as a failure of the
    /// person until [`Logins::succeeded`] says otherwise (so parallel guesses at one person
    /// cannot slip past their limit). The address is charged only for PINs that turn out wrong
    /// ([`Logins::address_failed`]): a class behind one NAT signing in at once is not a guesser.
    fn begin_attempt(&self, id: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        self.address_allows(addr, now)?;
        self.people.begin(id, now)
    }

    /// Whether `addr` may try a PIN now. Checked again right before each verification: those run
    /// [`CONCURRENT_VERIFICATIONS`] at a time, so parallel guesses from one address overrun its
    /// limit by at most that many.
    fn address_allows(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        addr.map_or(Ok(()), |a| self.addresses.check(&a.to_string(), now))
    }

    /// A wrong PIN (or a malformed attempt) from `addr`. A success never takes one back: one valid
    /// account must not refill a guesser's budget.
    fn address_failed(&self, addr: Option<IpAddr>, now: Instant) {
        if let Some(a) = addr {
            self.addresses.record(&a.to_string(), now);
        }
    }

    fn succeeded(&self, id: &str) {
        self.people.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

impl Throttle {
    /// Refused with the seconds to wait while `key` is locked out; otherwise one more failure.
    fn begin(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.check(key, now)?;
        self.record(key, now);
        Ok(())
    }

    /// Refused with the seconds to wait while `key` is locked out, or locks it out now if it has
    /// reached its limit of failures within [`FAILURE_WINDOW`].
    fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = map.get_mut(key) else { return Ok(()) };
        if let Some(until) = a.locked_until {
            if until > now {
                return Err(secs_ceil(until - now).max(1));
            }
            a.locked_until = None;
            a.failures.clear();
        }
        a.failures.retain(|t| now.saturating_duration_since(*t) < FAILURE_WINDOW);
        if a.failures.len() >= self.max_failures {
            a.failures.clear();
            a.locked_until = Some(now + LOCKOUT);
            tracing::warn!(key, "too many failed logins; locked out");
            return Err(secs_ceil(LOCKOUT));
        }
        Ok(())
    }

    /// One more failure for `key`.
    fn record(&self, key: &str, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= THROTTLE_SWEEP_AT {
            map.retain(|_, a| {
                a.locked_until.is_some_and(|u| u > now)
                    || a.failures.iter().any(|t| now.saturating_duration_since(*t) < FAILURE_WINDOW)
            });
        }
        map.entry(key.to_owned()).or_default().failures.push(now);
    }
}

impl Logins {
    fn create(&self, user_id: String, name: String, credential: &str, now: Instant) -> String {
        let token = random_token();
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        let session = LoginSession {
            user_id,
            name,
            credential: credential.into(),
            form_token: random_token(),
            expires: now + self.ttl,
            flash: None,
        };
        map.insert(token.clone(), session);
        token
    }

    pub(crate) fn lookup(&self, token: &str, now: Instant) -> Option<SignedIn> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(token) {
            Some(s) if s.expires > now => Some(SignedIn {
                user_id: s.user_id.clone(),
                name: s.name.clone(),
                token: token.to_owned(),
                form_token: s.form_token.clone(),
                credential: s.credential.clone(),
            }),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    pub(crate) fn remove(&self, token: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(token);
    }

    /// Leaves a message for the next page render of this login.
    pub(crate) fn set_flash(&self, token: &str, flash: Flash) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(token) {
            s.flash = Some(flash);
        }
    }

    /// Takes the pending message of this login.
    pub(crate) fn take_flash(&self, token: &str) -> Option<Flash> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(token).and_then(|s| s.flash.take())
    }
}

/// 256 bits from the OS's random source, as 64 hex digits.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if let Err(e) = from_os {
        // Not Linux? uuid v4 draws from the same OS source (getrandom): 2 x 122 random bits.
        tracing::warn!(error = %e, "no /dev/urandom; building the token from uuid v4");
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signed-in faculty member.
pub type Faculty = SignedIn;

/// A signed-in person (faculty or student, by the store that knows the token).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Their token.
    pub(crate) token: String,
    /// The token their page's forms carry.
    pub(crate) form_token: String,
    /// The PIN hash they signed in with. The student page ends a session whose person's hash in
    /// the roster is no longer this one (PIN reset or cleared, student suspended or no longer
    /// enrolled here) at the next roster snapshot, instead of letting it run for 8 hours.
    pub(crate) credential: Arc<str>,
}

impl SignedIn {
    /// Whether a form post carries this login's form token.
    pub(crate) fn form_token_matches(&self, sent: &str) -> bool {
        tokens_match(&self.form_token, sent)
    }
}

/// Compares two tokens in time independent of where they differ.
pub(crate) fn tokens_match(expected: &str, sent: &str) -> bool {
    let (a, b) = (expected.as_bytes(), sent.as_bytes());
    !a.is_empty() && a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE)
}

pub(crate) fn named_cookie<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim())
}

/// The API's caller, from `Authorization: Bearer <token>`; 401 otherwise.
#[derive(Debug, Clone)]
pub struct ApiFaculty(pub Faculty);

#[axum::async_trait]
impl FromRequestParts<AppState> for ApiFaculty {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(AppError::unauthorized("Authentication required"));
        };
        state
            .logins
            .lookup(token, Instant::now())
            .map(ApiFaculty)
            .ok_or_else(|| AppError::unauthorized("Invalid or expired token"))
    }
}

/// The page's viewer, from the session cookie; a redirect to `/login` otherwise.
#[derive(Debug, Clone)]
pub struct PageFaculty(pub Faculty);

#[axum::async_trait]
impl FromRequestParts<AppState> for PageFaculty {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        cookie(&parts.headers)
            .and_then(|token| state.logins.lookup(token, Instant::now()))
            .map(PageFaculty)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// Whether the browser's own headers allow a state-changing form post (defence in depth beside
/// the form tokens and `SameSite=Strict`). Browsers set these headers themselves; a page cannot.
///
/// - `Sec-Fetch-Site` (sent to secure contexts: `localhost`, HTTPS): only `same-origin` passes;
///   `same-site` (another port of the same host shares our cookies) and `cross-site` do not.
/// - `Origin`: a real origin must name the `Host` the request was sent to. `null` passes here:
///   Chromium sends it for a same-origin post when the referrer policy withholds the origin, so it
///   neither proves nor disproves anything, and the form token decides.
/// - Neither header (tools, very old browsers): passes; the form token decides.
pub(crate) fn origin_allows(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none` is a navigation the user started (typed, bookmarked); a form post never is.
        if site.as_bytes() != b"same-origin" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == "null" {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Whom a sign-in is for: each audience has its own logins, cookies and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// The faculty page (`/`) and the API.
    Faculty,
    /// The student page (`/student`).
    Student,
}

impl Audience {
    /// The session cookie's name.
    pub(crate) fn cookie(self) -> &'static str {
        match self {
            Audience::Faculty => COOKIE,
            Audience::Student => STUDENT_COOKIE,
        }
    }

    /// The session cookie's path: the student cookie never reaches the faculty routes.
    fn cookie_path(self) -> &'static str {
        match self {
            Audience::Faculty => "/",
            Audience::Student => "/student",
        }
    }

    fn form_cookie(self) -> &'static str {
        match self {
            Audience::Faculty => FORM_COOKIE,
            Audience::Student => STUDENT_FORM_COOKIE,
        }
    }

    /// The sign-in form's address.
    pub(crate) fn login_path(self) -> &'static str {
        match self {
            Audience::Faculty => "/login",
            Audience::Student => "/student/login",
        }
    }

    /// The page a sign-in leads to.
    fn home(self) -> &'static str {
        match self {
            Audience::Faculty => "/",
            Audience::Student => "/student",
        }
    }

    /// This audience's logins.
    pub(crate) fn logins(self, state: &AppState) -> &Logins {
        match self {
            Audience::Faculty => &state.logins,
            Audience::Student => &state.students,
        }
    }

    fn who(self) -> &'static str {
        match self {
            Audience::Faculty => "faculty",
            Audience::Student => "student",
        }
    }

    /// `Set-Cookie` values: the session, and the ones that clear the session and the form token.
    fn set_session(self, token: &str, ttl: Duration) -> String {
        format!(
            "{}={token}; HttpOnly; SameSite=Strict; Path={}; Max-Age={}",
            self.cookie(),
            self.cookie_path(),
            ttl.as_secs()
        )
    }

    fn clear_session(self) -> String {
        format!("{}=; HttpOnly; SameSite=Strict; Path={}; Max-Age=0", self.cookie(), self.cookie_path())
    }

    fn clear_form(self) -> String {
        format!("{}=; HttpOnly; SameSite=Strict; Path={}; Max-Age=0", self.form_cookie(), self.login_path())
    }
}

/// The student page's session cookie.
pub const STUDENT_COOKIE: &str = "nimbus_student";
/// The student sign-in form's token cookie.
pub const STUDENT_FORM_COOKIE: &str = "nimbus_student_form";

enum Verdict {
    Ok { token: String, user_id: String, name: String, expires_at: DateTime<Utc> },
    Wrong,
    Throttled(u64),
}

/// An argon2 hash (same parameters as [`crate::auth::hash_pin`]) of a PIN nobody has: unknown
/// ids are verified against it so they cost as much time as known ones.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Q+sjUUuRQteYPNKTSCHvUg$+69U49CsQMObb+DCpYv7RRT8Jx8R/m0YWx48bBh2Nf8";

/// `(user_id, name, pin_hash)` of a person found by a sign-in name.
type Person = (String, String, Option<String>);

/// The person of `table` (`faculty` or `students`) a sign-in name means: their user id, or their
/// `number_column` (staff or register number) or e-mail (any case). A user id wins over another
/// person's number or e-mail; a name that still means two people means nobody.
fn person_by_sign_in_name(
    c: &rusqlite::Connection,
    table: &str,
    number_column: &str,
    sign_in: &str,
) -> crate::Result<Option<Person>> {
    let by_id: Option<Person> = c
        .prepare_cached(&format!("SELECT user_id, name, pin_hash FROM {table} WHERE user_id = ?1"))?
        .query_row([sign_in], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    let mut stmt = c.prepare_cached(&format!(
        "SELECT user_id, name, pin_hash FROM {table} WHERE {number_column} = ?1 OR email = lower(?1) LIMIT 2"
    ))?;
    let mut rows: Vec<Person> =
        stmt.query_map([sign_in], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    Ok(if rows.len() == 1 { rows.pop() } else { None })
}

/// The faculty member a sign-in name means: their user id, staff number or e-mail (any case).
/// Returns `(user_id, name, pin_hash)`.
pub(crate) fn faculty_by_sign_in_name(c: &rusqlite::Connection, sign_in: &str) -> crate::Result<Option<Person>> {
    person_by_sign_in_name(c, "faculty", "staff_number", sign_in)
}

/// The student (enrolled in a course of this room) a sign-in name means: their user id,
/// register number or e-mail (any case).
pub(crate) fn student_by_sign_in_name(c: &rusqlite::Connection, sign_in: &str) -> crate::Result<Option<Person>> {
    person_by_sign_in_name(c, "students", "register_number", sign_in)
}

async fn check_credentials(
    state: &AppState,
    audience: Audience,
    sign_in: &str,
    pin: &str,
    addr: Option<IpAddr>,
) -> Result<Verdict, AppError> {
    let logins = audience.logins(state);
    if sign_in.is_empty() || sign_in.len() > MAX_CREDENTIAL_LEN || pin.is_empty() || pin.len() > MAX_CREDENTIAL_LEN {
        // Still a failed attempt from this address (counted under one key for every malformed
        // name, so no oversized name is kept in memory).
        if let Err(secs) = logins.begin_attempt("\0malformed", addr, Instant::now()) {
            return Ok(Verdict::Throttled(secs));
        }
        logins.address_failed(addr, Instant::now());
        return Ok(Verdict::Wrong);
    }
    let store = state.attendance.store().clone();
    let name = sign_in.to_owned();
    let row = blocking(move || {
        Ok(store.with(|c| match audience {
            Audience::Faculty => faculty_by_sign_in_name(c, &name),
            Audience::Student => student_by_sign_in_name(c, &name),
        })?)
    })
    .await?;
    // Guesses are counted per person, whichever of their names they use; unknown names per name.
    let throttle_key = row.as_ref().map_or_else(|| sign_in.to_lowercase(), |(id, ..)| id.clone());
    if let Err(secs) = logins.begin_attempt(&throttle_key, addr, Instant::now()) {
        return Ok(Verdict::Throttled(secs));
    }
    // The permit moves into the blocking task: it is held until the hash is checked even if the
    // client goes away meanwhile.
    let slot = logins.verifications.clone().acquire_owned().await.map_err(AppError::internal)?;
    // The address may have used up its budget while this attempt waited for its turn.
    if let Err(secs) = logins.address_allows(addr, Instant::now()) {
        return Ok(Verdict::Throttled(secs));
    }
    let pin_owned = pin.to_owned();
    let found = blocking(move || {
        let _slot = slot;
        Ok(match row {
            Some((user_id, name, Some(hash))) => {
                crate::auth::verify_pin(&pin_owned, &hash).then_some((user_id, name, hash))
            }
            _ => {
                // Same work as a real check, so timing does not tell whether the id exists.
                let _ = crate::auth::verify_pin(&pin_owned, DUMMY_HASH);
                None
            }
        })
    })
    .await?;
    let Some((user_id, name, hash)) = found else {
        logins.address_failed(addr, Instant::now());
        tracing::info!(sign_in, audience = audience.who(), "failed login");
        return Ok(Verdict::Wrong);
    };
    logins.succeeded(&throttle_key);
    let token = logins.create(user_id.clone(), name.clone(), &hash, Instant::now());
    let ttl = TimeDelta::from_std(logins.ttl).unwrap_or(TimeDelta::MAX);
    let expires_at = state.attendance.now().utc.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
    tracing::info!(user_id, audience = audience.who(), "signed in");
    Ok(Verdict::Ok { token, user_id, name, expires_at })
}

/// The login form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    csrf: String,
}

/// The sign-in page with a fresh form token, set both in the form and in the audience's form
/// cookie.
fn login_page(audience: Audience, status: StatusCode, message: Option<&str>, user_id: &str) -> Response {
    let form_token = random_token();
    let (heading, name_label, hint) = match audience {
        Audience::Faculty => ("Faculty sign-in", "Staff number, e-mail or user ID", None),
        Audience::Student => (
            "Student sign-in",
            "Register number or e-mail",
            Some("Use the classroom PIN you set in NimbusU. It works here even when the campus network is down."),
        ),
    };
    let body = html! {
        h1 { (heading) }
        @if let Some(m) = message {
            p.flash.err role="alert" { (m) }
        }
        @if let Some(h) = hint {
            p.muted { (h) }
        }
        form.login method="post" action=(audience.login_path()) {
            input type="hidden" name=(FORM_TOKEN_FIELD) value=(form_token);
            label {
                (name_label) " "
                input name="user_id" value=(user_id) autocomplete="username" required
                    maxlength=(MAX_CREDENTIAL_LEN) autocapitalize="none" autofocus;
            }
            label {
                "PIN "
                input name="pin" type="password" inputmode="numeric" autocomplete="current-password" required
                    maxlength=(MAX_CREDENTIAL_LEN);
            }
            button type="submit" { "Sign in" }
        }
        @if audience == Audience::Student {
            p { a href="/login" { "Faculty sign-in" } }
        } @else {
            p { a href="/student" { "Student page" } }
        }
    };
    let mut res = html_page(status, layout("Sign in", None, body), None, Fetches::None);
    let cookie = format!(
        "{}={form_token}; HttpOnly; SameSite=Strict; Path={}; Max-Age=86400",
        audience.form_cookie(),
        audience.login_path()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn peer_ip(peer: Option<ConnectInfo<SocketAddr>>) -> Option<IpAddr> {
    peer.map(|ConnectInfo(a)| a.ip())
}

/// `GET /login` and `GET /student/login`.
pub(crate) async fn login_form_for(audience: Audience, state: &AppState, headers: &HeaderMap) -> Response {
    let live = named_cookie(headers, audience.cookie())
        .and_then(|t| audience.logins(state).lookup(t, Instant::now()))
        .is_some();
    if live {
        return Redirect::to(audience.home()).into_response();
    }
    login_page(audience, StatusCode::OK, None, "")
}

/// `GET /login`.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    login_form_for(Audience::Faculty, &state, &headers).await
}

/// `POST /login` and `POST /student/login`.
pub(crate) async fn login_submit_for(
    audience: Audience,
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
    form: LoginForm,
) -> Result<Response, AppError> {
    if !origin_allows(headers) {
        return Err(AppError::forbidden("Cross-origin form submission refused"));
    }
    let user_id = form.user_id.trim();
    let paired = named_cookie(headers, audience.form_cookie()).is_some_and(|c| tokens_match(c, &form.csrf));
    if !paired {
        // A stale tab or cleared cookies look the same as a forged post: nothing is checked, and
        // a fresh form is offered.
        tracing::info!(audience = audience.who(), "sign-in form without its token refused");
        let msg = "This sign-in form has expired or did not come from this page. Please sign in again.";
        return Ok(login_page(audience, StatusCode::FORBIDDEN, Some(msg), user_id));
    }
    Ok(match check_credentials(state, audience, user_id, &form.pin, peer_ip(peer)).await? {
        Verdict::Ok { token, .. } => {
            let mut res = Redirect::to(audience.home()).into_response();
            let ttl = audience.logins(state).ttl;
            for cookie in [audience.set_session(&token, ttl), audience.clear_form()] {
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        Verdict::Wrong => {
            let msg = match audience {
                Audience::Faculty => "Staff ID or PIN is incorrect.",
                Audience::Student => "Register number or PIN is incorrect.",
            };
            login_page(audience, StatusCode::UNAUTHORIZED, Some(msg), user_id)
        }
        Verdict::Throttled(secs) => {
            let minutes = secs.div_ceil(60);
            let msg = format!("Too many failed attempts. Try again in {minutes} minute(s).");
            let mut res = login_page(audience, StatusCode::TOO_MANY_REQUESTS, Some(&msg), user_id);
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
    })
}

/// `POST /login`.
pub(crate) async fn login_submit(
    State(state): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    ApiForm(form): ApiForm<LoginForm>,
) -> Result<Response, AppError> {
    login_submit_for(Audience::Faculty, &state, &headers, peer, form).await
}

/// `POST /logout` form.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout` and `POST /student/logout`: only with the page's form token (a forged post
/// must not sign anyone out).
pub(crate) async fn logout_for(
    audience: Audience,
    state: &AppState,
    headers: &HeaderMap,
    form: Result<ApiForm<LogoutForm>, AppError>,
) -> Result<Response, AppError> {
    let mut res = Redirect::to(audience.login_path()).into_response();
    let logins = audience.logins(state);
    // Without a live login there is nothing to end, and no cookie is touched: a forged post from
    // another site (which the browser sends without our cookie) must not clear it either.
    if let Some(who) = named_cookie(headers, audience.cookie()).and_then(|t| logins.lookup(t, Instant::now())) {
        let sent = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
        if !origin_allows(headers) || !who.form_token_matches(sent) {
            return Err(AppError::forbidden("Cross-origin form submission refused"));
        }
        logins.remove(&who.token);
        if let Ok(v) = HeaderValue::from_str(&audience.clear_session()) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<ApiForm<LogoutForm>, AppError>,
) -> Result<Response, AppError> {
    logout_for(Audience::Faculty, &state, &headers, form).await
}

/// `POST /api/login` body.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiLogin {
    user_id: String,
    pin: String,
}

/// `POST /api/login` answer.
#[derive(Debug, Serialize)]
pub(crate) struct ApiToken {
    token: String,
    expires_at: DateTime<Utc>,
    user_id: String,
    name: String,
}

/// `POST /api/login`.
pub(crate) async fn api_login(
    State(state): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    ApiJson(body): ApiJson<ApiLogin>,
) -> Result<axum::Json<ApiToken>, AppError> {
    let user_id = body.user_id.trim();
    match check_credentials(&state, Audience::Faculty, user_id, &body.pin, peer_ip(peer)).await? {
        Verdict::Ok { token, user_id, name, expires_at } => {
            Ok(axum::Json(ApiToken { token, expires_at, user_id, name }))
        }
        Verdict::Wrong => Err(AppError::unauthorized("Invalid staff id or PIN")),
        Verdict::Throttled(secs) => Err(AppError::too_many_requests(secs)),
    }
}

/// `POST /api/logout`: the token stops working.
pub(crate) async fn api_logout(State(state): State<AppState>, ApiFaculty(who): ApiFaculty) -> StatusCode {
    state.logins.remove(&who.token);
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_the_window_lock_an_id_out_for_five_minutes() {
        let l = Logins::new(LOGIN_TTL);
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(i)), Ok(()));
        }
        assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(10)), Err(300));
        assert_eq!(l.begin_attempt("other", None, t0 + Duration::from_secs(10)), Ok(()), "per id");
        assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(70)), Err(240));
        assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(311)), Ok(()), "lockout over");
    }

    #[test]
    fn ten_failures_from_one_address_lock_it_out_whoever_they_were_for() {
        let l = Logins::new(LOGIN_TTL);
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.7".parse().unwrap(), "10.0.0.8".parse().unwrap());
        for i in 0..10 {
            assert_eq!(l.begin_attempt(&format!("s{i}"), Some(a), t0), Ok(()), "{i}");
            l.address_failed(Some(a), t0);
        }
        assert_eq!(l.begin_attempt("s99", Some(a), t0), Err(300), "the address is locked");
        l.succeeded("s1");
        assert_eq!(l.begin_attempt("s1", Some(a), t0), Err(300), "a success does not unlock the address");
        assert_eq!(l.begin_attempt("s99", Some(b), t0), Ok(()), "other addresses are not");
        assert_eq!(l.begin_attempt("s99", Some(a), t0 + LOCKOUT), Ok(()), "lockout over");
    }

    #[test]
    fn a_class_behind_one_address_signing_in_at_once_is_not_throttled() {
        let l = Logins::new(LOGIN_TTL);
        let t0 = Instant::now();
        let nat: IpAddr = "10.0.0.1".parse().unwrap();
        // 200 attempts begun before any PIN is checked: none is a failure of the address yet.
        for i in 0..200 {
            assert_eq!(l.begin_attempt(&format!("s{i}"), Some(nat), t0), Ok(()), "{i}");
        }
        for i in 0..200 {
            l.succeeded(&format!("s{i}"));
        }
        assert_eq!(l.address_allows(Some(nat), t0), Ok(()));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count_and_success_resets() {
        let l = Logins::new(LOGIN_TTL);
        let t0 = Instant::now();
        for i in 0..4 {
            l.begin_attempt("f", None, t0 + Duration::from_secs(i)).unwrap();
        }
        // 11 minutes later the first four have aged out.
        for i in 0..5 {
            assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(660 + i)), Ok(()));
        }
        l.succeeded("f");
        assert_eq!(l.begin_attempt("f", None, t0 + Duration::from_secs(700)), Ok(()));
    }

    #[test]
    fn tokens_are_256_random_bits_in_hex_and_expire() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_token());
        let l = Logins::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let tok = l.create("f".into(), "F".into(), "h", t0);
        assert_eq!(l.lookup(&tok, t0 + Duration::from_secs(59)).map(|f| f.user_id), Some("f".into()));
        assert!(l.lookup(&tok, t0 + Duration::from_secs(60)).is_none());
        assert!(l.lookup("garbage", t0).is_none());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = crate::auth::hash_pin("1234").unwrap();
        let params = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&real), "same algorithm, version and cost");
        assert!(!crate::auth::verify_pin("1234", DUMMY_HASH));
    }

    #[test]
    fn cookies_and_bearer_tokens_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; nimbus_session=abc ; c=d"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer xyz"));
        assert_eq!(cookie(&h), Some("abc"));
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn a_foreign_origin_is_refused_and_a_null_one_left_to_the_form_token() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("10.0.0.5:8080"));
        assert!(origin_allows(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://10.0.0.5:8080"));
        assert!(origin_allows(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!origin_allows(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://10.0.0.5:9999"));
        assert!(!origin_allows(&h), "another port is another origin");
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(origin_allows(&h), "Chromium's same-origin post under a no-referrer policy");
    }

    #[test]
    fn only_a_same_origin_fetch_site_may_post() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8480"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        for (site, ok) in [("same-origin", true), ("same-site", false), ("cross-site", false), ("none", false)] {
            h.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(origin_allows(&h), ok, "{site}");
        }
    }

    #[test]
    fn tokens_match_only_when_equal_and_not_empty() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("", ""));
    }
}
