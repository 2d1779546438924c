//! `timetable.events`: timetables, their entries and detected conflicts (seed section 8). Keyed
//! by `timetable_id`.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `timetable.events`.
    pub enum TimetableEvent on Topic::TimetableEvents {
        /// A draft timetable was created.
        TimetableCreated(TimetablePayload) = "TIMETABLE_CREATED",
        /// A timetable became effective; classroom nodes get it through the downlink.
        TimetablePublished(TimetablePublishedPayload) = "TIMETABLE_PUBLISHED",
        /// Timetable fields changed.
        TimetableUpdated(TimetablePayload) = "TIMETABLE_UPDATED",
        /// A class slot was added.
        EntryAdded(TimetableEntryPayload) = "ENTRY_ADDED",
        /// A class slot changed.
        EntryModified(TimetableEntryPayload) = "ENTRY_MODIFIED",
        /// A class slot was removed.
        EntryDeleted(TimetableEntryPayload) = "ENTRY_DELETED",
        /// Two entries want one room at the same time.
        RoomConflictDetected(ScheduleConflictPayload) = "ROOM_CONFLICT_DETECTED",
        /// Two entries want one faculty member at the same time.
        FacultyConflictDetected(ScheduleConflictPayload) = "FACULTY_CONFLICT_DETECTED",
    }
}

impl TimetableEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            TimetableEvent::TimetableCreated(p) | TimetableEvent::TimetableUpdated(p) => &p.timetable_id,
            TimetableEvent::TimetablePublished(p) => &p.timetable_id,
            TimetableEvent::EntryAdded(p) | TimetableEvent::EntryModified(p) | TimetableEvent::EntryDeleted(p) => {
                &p.timetable_id
            }
            TimetableEvent::RoomConflictDetected(p) | TimetableEvent::FacultyConflictDetected(p) => &p.timetable_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        let (day, start, end) = match self {
            TimetableEvent::EntryAdded(p) | TimetableEvent::EntryModified(p) | TimetableEvent::EntryDeleted(p) => {
                (p.day_of_week, p.start_time, p.end_time)
            }
            TimetableEvent::RoomConflictDetected(p) | TimetableEvent::FacultyConflictDetected(p) => {
                (p.day_of_week, p.start_time, p.end_time)
            }
            _ => return Ok(()),
        };
        if !(1..=7).contains(&day) {
            return Err(EventError::field("payload.day_of_week", format!("{day} is not 1 (Monday) to 7 (Sunday)")));
        }
        if end <= start {
            return Err(EventError::field("payload.end_time", "must be after start_time"));
        }
        Ok(())
    }
}

/// Ours: a timetable created or updated.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimetablePayload {
    pub timetable_id: String,
    pub semester_id: String,
    pub department_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub program_id: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub semester_number: Option<i32>,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// Seed `TimetablePublishedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimetablePublishedPayload {
    pub timetable_id: String,
    pub semester_id: String,
    pub semester_name: String,
    pub department_id: String,
    pub department_name: String,
    pub program_id: String,
    pub semester_number: i32,
    pub entry_count: i32,
    pub published_by: String,
    pub published_at: Timestamp,
    pub effective_from: Timestamp,
}

/// Ours: one weekly class slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimetableEntryPayload {
    pub entry_id: String,
    pub timetable_id: String,
    pub course_id: String,
    pub faculty_id: String,
    pub room_id: String,
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    pub day_of_week: u8,
    /// Local campus time, `HH:MM:SS`.
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
    #[serde(default)]
    pub effective_until: Option<NaiveDate>,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// Ours: a rejected entry and the one it collides with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConflictPayload {
    pub conflict_id: String,
    pub timetable_id: String,
    pub entry_id: String,
    pub conflicting_entry_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub room_id: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub faculty_id: Option<String>,
    pub day_of_week: u8,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub detected_at: Timestamp,
}

/// A valid slot (Monday 08:00-09:00), so defaults pass [`TimetableEvent`]'s checks.
fn default_slot() -> (u8, NaiveTime, NaiveTime) {
    let at = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or(NaiveTime::MIN);
    (1, at(8), at(9))
}

impl Default for TimetableEntryPayload {
    fn default() -> Self {
        let (day_of_week, start_time, end_time) = default_slot();
        TimetableEntryPayload {
            entry_id: String::new(),
            timetable_id: String::new(),
            course_id: String::new(),
            faculty_id: String::new(),
            room_id: String::new(),
            day_of_week,
            start_time,
            end_time,
            effective_from: None,
            effective_until: None,
            changed_by: String::new(),
            changed_at: Timestamp::default(),
        }
    }
}

impl Default for ScheduleConflictPayload {
    fn default() -> Self {
        let (day_of_week, start_time, end_time) = default_slot();
        ScheduleConflictPayload {
            conflict_id: String::new(),
            timetable_id: String::new(),
            entry_id: String::new(),
            conflicting_entry_id: String::new(),
            room_id: None,
            faculty_id: None,
            day_of_week,
            start_time,
            end_time,
            detected_at: Timestamp::default(),
        }
    }
}
