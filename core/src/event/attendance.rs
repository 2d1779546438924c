//! `attendance.events`: attendance marked at classroom nodes or by hand, corrections, alerts and
//! reports (seed section 9). Keyed by `course_id`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `attendance.events`.
    pub enum AttendanceEvent on Topic::AttendanceEvents {
        /// One class's attendance, sent when the session closes.
        AttendanceMarked(AttendanceMarkedPayload) = "ATTENDANCE_MARKED",
        /// One student's status corrected after the fact.
        AttendanceUpdated(AttendanceUpdatedPayload) = "ATTENDANCE_UPDATED",
        /// A class's attendance imported in bulk (same shape as `ATTENDANCE_MARKED`).
        AttendanceBulkMarked(AttendanceMarkedPayload) = "ATTENDANCE_BULK_MARKED",
        /// A student fell below the attendance threshold of a course.
        LowAttendanceAlert(LowAttendanceAlertPayload) = "LOW_ATTENDANCE_ALERT",
        /// An attendance report was produced.
        AttendanceReportGenerated(AttendanceReportPayload) = "ATTENDANCE_REPORT_GENERATED",
    }
}

impl AttendanceEvent {
    fn key(&self) -> Option<&str> {
        match self {
            AttendanceEvent::AttendanceMarked(p) | AttendanceEvent::AttendanceBulkMarked(p) => Some(&p.course_id),
            AttendanceEvent::AttendanceUpdated(p) => Some(&p.course_id),
            AttendanceEvent::LowAttendanceAlert(p) => Some(&p.course_id),
            AttendanceEvent::AttendanceReportGenerated(p) => {
                p.course_id.as_deref().or(p.student_id.as_deref()).or(Some(&p.report_id))
            }
        }
    }

    fn check(&self) -> Result<(), EventError> {
        match self {
            AttendanceEvent::AttendanceMarked(p) | AttendanceEvent::AttendanceBulkMarked(p) => p.check_totals(),
            AttendanceEvent::LowAttendanceAlert(p) if p.classes_attended > p.total_classes => {
                Err(EventError::field("payload.classes_attended", "must not exceed total_classes"))
            }
            AttendanceEvent::AttendanceReportGenerated(p) if p.to_date < p.from_date => {
                Err(EventError::field("payload.to_date", "must not be before from_date"))
            }
            _ => Ok(()),
        }
    }
}

/// A student's status in one class (seed: "present, absent, late, excused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceStatus {
    #[default]
    Present,
    Absent,
    Late,
    Excused,
}

impl AttendanceStatus {
    /// Whether the student was in class (late students were).
    pub fn attended(self) -> bool {
        matches!(self, AttendanceStatus::Present | AttendanceStatus::Late)
    }

    /// The status as the seed spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttendanceStatus::Present => "present",
            AttendanceStatus::Absent => "absent",
            AttendanceStatus::Late => "late",
            AttendanceStatus::Excused => "excused",
        }
    }
}

/// Seed `StudentAttendance`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StudentAttendance {
    pub student_id: String,
    pub status: AttendanceStatus,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub remarks: Option<String>,
}

/// Seed `AttendanceMarkedPayload`.
///
/// Totals must agree with the records: `total_students` is the number of records,
/// `present_count` counts present and late students, `absent_count` absent ones (excused
/// students are in neither count).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttendanceMarkedPayload {
    pub attendance_id: String,
    pub entry_id: String,
    pub course_id: String,
    pub course_name: String,
    /// `YYYY-MM-DD`.
    pub class_date: NaiveDate,
    pub marked_by: String,
    pub marked_at: Timestamp,
    pub total_students: u32,
    pub present_count: u32,
    pub absent_count: u32,
    pub student_records: Vec<StudentAttendance>,
}

impl AttendanceMarkedPayload {
    /// Computes the totals from `student_records`.
    pub fn recount(&mut self) {
        self.total_students = self.student_records.len() as u32;
        self.present_count = self.student_records.iter().filter(|r| r.status.attended()).count() as u32;
        self.absent_count = self.student_records.iter().filter(|r| r.status == AttendanceStatus::Absent).count() as u32;
    }

    fn check_totals(&self) -> Result<(), EventError> {
        let mut expected = self.clone();
        expected.recount();
        let wrong = |field: &str, got: u32, want: u32| {
            EventError::field(format!("payload.{field}"), format!("is {got} but student_records give {want}"))
        };
        if self.total_students != expected.total_students {
            return Err(wrong("total_students", self.total_students, expected.total_students));
        }
        if self.present_count != expected.present_count {
            return Err(wrong("present_count", self.present_count, expected.present_count));
        }
        if self.absent_count != expected.absent_count {
            return Err(wrong("absent_count", self.absent_count, expected.absent_count));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.student_records.iter().enumerate() {
            if !seen.insert(r.student_id.as_str()) {
                return Err(EventError::field(
                    format!("payload.student_records[{i}].student_id"),
                    format!("{:?} appears twice", r.student_id),
                ));
            }
        }
        Ok(())
    }
}

/// Ours: one student's status corrected within the correction window.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttendanceUpdatedPayload {
    pub attendance_id: String,
    pub correction_id: String,
    pub entry_id: String,
    pub course_id: String,
    pub class_date: NaiveDate,
    pub student_id: String,
    pub old_status: AttendanceStatus,
    pub new_status: AttendanceStatus,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reason: Option<String>,
    pub corrected_by: String,
    pub corrected_at: Timestamp,
}

/// Seed alert level ("warning, critical").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    #[default]
    Warning,
    Critical,
}

/// Seed `LowAttendanceAlertPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LowAttendanceAlertPayload {
    pub student_id: String,
    pub student_name: String,
    pub course_id: String,
    pub course_name: String,
    pub attendance_percentage: f64,
    pub threshold_percentage: f64,
    pub total_classes: u32,
    pub classes_attended: u32,
    pub alert_level: AlertLevel,
}

/// Ours: an attendance report was produced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttendanceReportPayload {
    pub report_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub course_id: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub student_id: Option<String>,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    /// `csv` or `json`.
    pub format: String,
    pub row_count: u64,
    pub requested_by: String,
    pub generated_at: Timestamp,
}
