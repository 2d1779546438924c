//! The downlink snapshots the cloud sends a classroom node (retained on
//! `nimbus/v1/nodes/{node}/down/{kind}`): the room's timetable, the rosters of its courses, the
//! public keys that verify user tokens offline, and the content manifest. Both ends build and read
//! them from these types, so the JSON bodies cannot drift apart.

use alloc::string::String;
use alloc::vec::Vec;

use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

/// One weekly class slot in this room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimetableEntry {
    /// The timetable service's entry id.
    pub entry_id: String,
    /// The course taught.
    pub course_id: String,
    /// Its name (carried into `ATTENDANCE_MARKED`).
    pub course_name: String,
    /// Who teaches it; only they may open its session.
    pub faculty_id: String,
    /// The room.
    pub room_id: String,
    /// ISO weekday, 1 = Monday.
    pub day_of_week: u8,
    /// Start, campus local time.
    pub start_time: NaiveTime,
    /// End, campus local time; the session closes itself then.
    pub end_time: NaiveTime,
    /// First date the entry applies (inclusive).
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
    /// Last date the entry applies (inclusive).
    #[serde(default)]
    pub effective_until: Option<NaiveDate>,
}

impl TimetableEntry {
    /// Whether the entry applies on `date`.
    pub fn applies_on(&self, date: NaiveDate) -> bool {
        date.weekday().number_from_monday() as u8 == self.day_of_week
            && self.effective_from.is_none_or(|f| date >= f)
            && self.effective_until.is_none_or(|u| date <= u)
    }
}

/// A versioned timetable for one room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimetableSnapshot {
    /// Monotonic version; older or equal versions are ignored.
    pub version: u64,
    /// Entries (all for this node's room).
    pub entries: Vec<TimetableEntry>,
}

/// Whether a card belongs to a student or to faculty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Taps are marked as attendance.
    Student,
    /// Taps open sessions.
    Faculty,
}

impl Role {
    /// The name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Faculty => "faculty",
        }
    }
}

/// A card and its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The card UID, upper-case hex.
    pub card_uid: String,
    /// The holder's user id.
    pub user_id: String,
    /// Student or faculty.
    pub role: Role,
    /// Display name.
    pub name: String,
}

/// A faculty member who may use the local page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faculty {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// argon2 hash of the page PIN; no PIN, no page login.
    #[serde(default)]
    pub pin_hash: Option<String>,
    /// Their staff number (the cloud's `register_no`), which they may sign in with instead of
    /// the user id nobody remembers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_number: Option<String>,
    /// Their e-mail address (lower-case), also accepted at sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A student enrolled in a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The course.
    pub course_id: String,
    /// The student.
    pub student_id: String,
    /// Display name.
    pub name: String,
}

/// How a student enrolled in one of the room's courses signs in at the node's student page while
/// the campus uplink may be down. The PIN hash opens only what the node itself serves (the
/// student's course material and attendance on the LAN); the cloud never accepts the PIN, so a
/// node that leaks these hashes cannot be used to act as the student towards the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Their register number (the cloud's `register_no`), what students know by heart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_number: Option<String>,
    /// Their e-mail address (lower-case), also accepted at sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// argon2 hash of their classroom PIN; no PIN, no sign-in at the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_hash: Option<String>,
}

/// Versioned rosters: cards, faculty and enrollments of the courses taught in this room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterSnapshot {
    /// Monotonic version; older or equal versions are ignored.
    pub version: u64,
    /// Every card the node should recognise.
    pub cards: Vec<Card>,
    /// Faculty of the room's courses.
    pub faculty: Vec<Faculty>,
    /// Enrollments of the room's courses.
    pub enrollments: Vec<Enrollment>,
    /// Sign-in credentials of the enrolled students (one entry per student, whatever the number
    /// of their courses here). Absent in snapshots from clouds older than the student page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub students: Vec<Student>,
}

/// One public key of the cloud's token signing key set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// The key id tokens name in their header (`kid`).
    pub kid: String,
    /// The JWS algorithm; always `EdDSA` (Ed25519) today.
    pub alg: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding (the JWK `x`).
    pub x: String,
}

/// The keys a node verifies user tokens with. Carries the active key and the recently retired
/// ones, so tokens signed before a rotation stay valid until they expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysSnapshot {
    /// Monotonic version; older or equal versions are ignored.
    pub version: u64,
    /// The token issuer (`iss`) the keys sign for.
    pub issuer: String,
    /// Every key a valid token may be signed with.
    pub keys: Vec<PublicKey>,
    /// Login sessions revoked (logout, suspension, password or role change) within the last
    /// access-token lifetime: their tokens may still be unexpired, and a node with no uplink
    /// must refuse them too. Older revocations drop out as those tokens expire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_sessions: Vec<String>,
}

/// One published content item a node should cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// The content service's id (a UUID).
    pub content_id: String,
    /// The content version the node must hold; a newer one replaces the cached file.
    pub version: u32,
    /// Title shown to students.
    pub title: String,
    /// File name for `Content-Disposition`.
    pub file_name: String,
    /// MIME type for `Content-Type`.
    pub mime_type: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the bytes; a file is only served once it matches.
    pub sha256: String,
    /// The courses whose students may download it.
    pub course_ids: Vec<String>,
    /// Where the node downloads the bytes from (the cloud's node download route).
    pub url: String,
}

/// The content a node's room needs: the published content of the courses on its timetable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSnapshot {
    /// Monotonic version; older or equal versions are ignored.
    pub version: u64,
    /// The items.
    pub items: Vec<ManifestItem>,
}

/// One announcement a node shows on its student page. The announcement service resolves its
/// targeting (role, department, program, semester, ...) to what a node can check offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The announcement service's id.
    pub announcement_id: String,
    /// Headline.
    pub title: String,
    /// Plain text (never HTML: the node escapes it).
    pub body: String,
    /// When it was published.
    pub published_at: chrono::DateTime<chrono::Utc>,
    /// Shown only to students of these courses; empty: to every student of the room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course_ids: Vec<String>,
    /// Shown only to these users; empty: no restriction by user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// Shown only to these roles (`student`, `faculty`); empty: to everyone in the room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `low`, `normal`, `high` or `urgent`; urgent ones are shown first and prominently.
    #[serde(default = "normal")]
    pub priority: String,
    /// When it stops being shown, on the node's own clock (see [`Announcement::current`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn normal() -> String {
    "normal".to_owned()
}

impl Announcement {
    /// Whether a student of `courses` with id `user_id` may see it.
    pub fn targets(&self, user_id: &str, courses: &[String]) -> bool {
        self.for_role("student")
            && (self.course_ids.is_empty() || self.course_ids.iter().any(|c| courses.contains(c)))
            && (self.user_ids.is_empty() || self.user_ids.iter().any(|u| u == user_id))
    }

    /// Whether people holding `role` are meant to see it.
    pub fn for_role(&self, role: &str) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| r == role)
    }

    /// Whether it is still shown at `now`: it has no expiry, or the expiry is after `now`.
    pub fn current(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// Sorts urgent first, then high, normal, low; newest first within a priority.
    pub fn sort(items: &mut [Announcement]) {
        items.sort_by(|a, b| {
            priority_rank(&b.priority).cmp(&priority_rank(&a.priority)).then(b.published_at.cmp(&a.published_at))
        });
    }
}

/// `urgent` 3, `high` 2, `normal` 1, anything else 0.
pub fn priority_rank(priority: &str) -> u8 {
    match priority {
        "urgent" => 3,
        "high" => 2,
        "normal" => 1,
        _ => 0,
    }
}

/// The announcements for one room (`announcements` snapshot). Minimal on purpose: the node only
/// filters and shows them; no snapshot of this kind means an empty section that is not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementsSnapshot {
    /// Monotonic version; older or equal versions are ignored.
    pub version: u64,
    /// The room's current announcements, newest first.
    pub items: Vec<Announcement>,
}
