//! Attendance reports from `attendance_service_db`: per course (a row per student), per student
//! (a row per course) and per day (a row per class date and course), each over a date range, as
//! JSON or CSV (`?format=csv` or `Accept: text/csv`). Admins see every course; faculty only the
//! courses they are assigned to (`faculty_courses`), so a report cannot leak another teacher's
//! class. Students see their own attendance at `/api/v1/me/attendance`.

use axum::Json;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::http::Params;
use crate::http::ServicesState;
use crate::http::{Access, ApiPath, ApiRoutes, AppError, Caller};

const READ: Access = Access::Permission("attendance:read");
/// Longest range one report may cover.
pub const MAX_RANGE_DAYS: u64 = 366;

/// How a report is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/json` (the default, unless `Accept` asks for `text/csv`).
    #[default]
    Json,
    /// `text/csv`, as an attachment.
    Csv,
}

/// `?from=&to=&format=` of the per-course, per-student and own reports. The range is at most
/// [`MAX_RANGE_DAYS`] days and `from` is not after `to` (else 422).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First class date included (default: 30 days before `to`).
    #[serde(default, deserialize_with = "crate::http::fields::strict_date_opt")]
    #[param(schema_with = crate::http::fields::date)]
    pub from: Option<NaiveDate>,
    /// Last class date included (default: today).
    #[serde(default, deserialize_with = "crate::http::fields::strict_date_opt")]
    #[param(schema_with = crate::http::fields::date)]
    pub to: Option<NaiveDate>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

/// The daily report's query: [`ReportQuery`]'s and one course.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// First class date included (default: 30 days before `to`).
    #[serde(default, deserialize_with = "crate::http::fields::strict_date_opt")]
    #[param(schema_with = crate::http::fields::date)]
    pub from: Option<NaiveDate>,
    /// Last class date included (default: today).
    #[serde(default, deserialize_with = "crate::http::fields::strict_date_opt")]
    #[param(schema_with = crate::http::fields::date)]
    pub to: Option<NaiveDate>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
    /// Only this course.
    #[param(schema_with = no_nul)]
    pub course_id: Option<String>,
}

impl DailyQuery {
    fn report(&self) -> ReportQuery {
        ReportQuery { from: self.from, to: self.to, format: self.format }
    }
}

fn no_nul() -> utoipa::openapi::Object {
    crate::http::fields::free_text(None, false)
}

/// An id of a path or filter, which PostgreSQL compares as text: no NUL (400).
fn plain_id(field: &str, value: &str) -> Result<(), AppError> {
    let mut errors = Vec::new();
    crate::http::fields::check_free_text(&mut errors, field, value);
    Ok(crate::listing::finish(errors)?)
}

/// Counts of one report row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    /// What the row is about: a student id, a course id, or a date and course.
    pub key: String,
    /// The course, in the daily report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course_id: Option<String>,
    /// Marked present.
    pub present: i64,
    /// Marked late (counts as attended).
    pub late: i64,
    /// Marked absent.
    pub absent: i64,
    /// Excused (not counted).
    pub excused: i64,
    /// `present + late + absent`.
    pub total_classes: i64,
    /// `100 * (present + late) / total_classes`, two decimals; `None` before any class counts.
    pub percentage: Option<f64>,
}

/// A report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// `course`, `student` or `daily`.
    #[schema(schema_with = report_kinds)]
    pub report: &'static str,
    /// The course or student, for the first two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// First date included.
    pub from: NaiveDate,
    /// Last date included.
    pub to: NaiveDate,
    /// The rows, ordered by key.
    pub rows: Vec<Row>,
}

fn report_kinds() -> utoipa::openapi::Object {
    crate::http::schema::one_of(&["course", "student", "daily"])
}

/// The report routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/reports/attendance/courses/:course_id", READ, get(course_report))
        .route(Method::GET, "/api/v1/reports/attendance/students/:student_id", READ, get(student_report))
        .route(Method::GET, "/api/v1/reports/attendance/daily", READ, get(daily_report))
        .route(Method::GET, "/api/v1/me/attendance", Access::Authenticated, get(my_attendance))
}

/// The report routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(course_report, student_report, daily_report, my_attendance))]
pub struct Doc;

/// Which courses the caller may see.
enum Scope {
    All,
    Courses(Vec<String>),
}

impl Scope {
    async fn of(s: &ServicesState, caller: &Caller) -> Result<Scope> {
        if caller.has_role("admin") {
            return Ok(Scope::All);
        }
        let c = s.course.get().await?;
        let rows =
            c.query("SELECT course_id::text FROM faculty_courses WHERE faculty_id = $1", &[&caller.user_id]).await?;
        Ok(Scope::Courses(rows.iter().map(|r| r.get(0)).collect()))
    }

    fn allows(&self, course_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Courses(ids) => ids.iter().any(|c| c == course_id),
        }
    }

    /// The courses filter as a SQL array parameter (`None` = all).
    fn courses(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Courses(ids) => Some(ids.clone()),
        }
    }
}

/// The dates of a report: each is a valid date by then (400 otherwise), so what is left are the
/// rules between them (422).
fn range(q: &ReportQuery) -> Result<(NaiveDate, NaiveDate)> {
    let to = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = q.from.unwrap_or_else(|| to.checked_sub_days(Days::new(30)).unwrap_or(to));
    let mut rules = Vec::new();
    if from > to {
        rules.push(FieldError::new("from", "must not be after `to`"));
    } else if (to - from).num_days() as u64 > MAX_RANGE_DAYS {
        rules.push(FieldError::new("to", format!("a report covers at most {MAX_RANGE_DAYS} days")));
    }
    crate::listing::finish_rules(rules)?;
    Ok((from, to))
}

const COUNTS: &str = "count(*) FILTER (WHERE status = 'present'), count(*) FILTER (WHERE status = 'late'),
                      count(*) FILTER (WHERE status = 'absent'), count(*) FILTER (WHERE status = 'excused')";

fn row(key: String, course_id: Option<String>, r: &tokio_postgres::Row, first: usize) -> Row {
    let (present, late, absent, excused): (i64, i64, i64, i64) =
        (r.get(first), r.get(first + 1), r.get(first + 2), r.get(first + 3));
    let total_classes = present + late + absent;
    let percentage =
        (total_classes > 0).then(|| ((100.0 * (present + late) as f64 / total_classes as f64) * 100.0).round() / 100.0);
    Row { key, course_id, present, late, absent, excused, total_classes, percentage }
}

/// Per student of one course.
pub async fn by_course(s: &ServicesState, course_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<Row>> {
    let c = s.attendance.get().await?;
    let rows = c
        .query(
            &format!(
                "SELECT student_id, {COUNTS} FROM attendance_records
                 WHERE course_id = $1 AND class_date BETWEEN $2 AND $3 GROUP BY student_id ORDER BY student_id"
            ),
            &[&course_id, &from, &to],
        )
        .await?;
    Ok(rows.iter().map(|r| row(r.get(0), None, r, 1)).collect())
}

/// Per course of one student, limited to `courses` when given.
pub async fn by_student(
    s: &ServicesState,
    student_id: &str,
    courses: Option<Vec<String>>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Row>> {
    let c = s.attendance.get().await?;
    let rows = c
        .query(
            &format!(
                "SELECT course_id, {COUNTS} FROM attendance_records
                 WHERE student_id = $1 AND class_date BETWEEN $2 AND $3
                   AND ($4::text[] IS NULL OR course_id = ANY($4))
                 GROUP BY course_id ORDER BY course_id"
            ),
            &[&student_id, &from, &to, &courses],
        )
        .await?;
    Ok(rows.iter().map(|r| row(r.get(0), None, r, 1)).collect())
}

/// Per class date and course.
pub async fn daily(
    s: &ServicesState,
    course_id: Option<&str>,
    courses: Option<Vec<String>>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Row>> {
    let c = s.attendance.get().await?;
    let rows = c
        .query(
            &format!(
                "SELECT class_date::text, course_id, {COUNTS} FROM attendance_records
                 WHERE class_date BETWEEN $1 AND $2 AND ($3::text IS NULL OR course_id = $3)
                   AND ($4::text[] IS NULL OR course_id = ANY($4))
                 GROUP BY class_date, course_id ORDER BY class_date, course_id"
            ),
            &[&from, &to, &course_id, &courses],
        )
        .await?;
    Ok(rows.iter().map(|r| row(r.get(0), Some(r.get(1)), r, 2)).collect())
}

#[utoipa::path(get, path = "/api/v1/reports/attendance/courses/{course_id}", tag = "attendance", params(("course_id" = String, Path, pattern = r"^[^\u0000]*$"), ReportQuery), responses((status = 200, description = "One row per student", content((Report = "application/json"), (String = "text/csv")), headers(("Content-Disposition" = String, description = "`attachment; filename=...` (CSV only)"))), (status = 404, description = "Not a course the caller may see"), (status = 422, description = "`from` after `to`, or a range over 366 days")))]
async fn course_report(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(course_id): ApiPath<String>,
    Params(q): Params<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    plain_id("course_id", &course_id)?;
    let (from, to) = range(&q)?;
    if !Scope::of(&s, &caller).await?.allows(&course_id) {
        // Not 403: whether a course the caller does not teach has records is not theirs to know.
        return Err(AppError::from(Error::NotFound { what: "course", id: course_id }));
    }
    let rows = by_course(&s, &course_id, from, to).await?;
    Ok(answer(Report { report: "course", subject: Some(course_id), from, to, rows }, &q, &headers))
}

#[utoipa::path(get, path = "/api/v1/reports/attendance/students/{student_id}", tag = "attendance", params(("student_id" = String, Path, pattern = r"^[^\u0000]*$"), ReportQuery), responses((status = 200, description = "One row per course (faculty: only their courses)", content((Report = "application/json"), (String = "text/csv")), headers(("Content-Disposition" = String, description = "`attachment; filename=...` (CSV only)"))), (status = 422, description = "`from` after `to`, or a range over 366 days")))]
async fn student_report(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(student_id): ApiPath<String>,
    Params(q): Params<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    plain_id("student_id", &student_id)?;
    let (from, to) = range(&q)?;
    let scope = Scope::of(&s, &caller).await?;
    let rows = by_student(&s, &student_id, scope.courses(), from, to).await?;
    Ok(answer(Report { report: "student", subject: Some(student_id), from, to, rows }, &q, &headers))
}

#[utoipa::path(get, path = "/api/v1/reports/attendance/daily", tag = "attendance", params(DailyQuery), responses((status = 200, description = "One row per class date and course", content((Report = "application/json"), (String = "text/csv")), headers(("Content-Disposition" = String, description = "`attachment; filename=...` (CSV only)"))), (status = 422, description = "`from` after `to`, or a range over 366 days")))]
async fn daily_report(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Params(daily_q): Params<DailyQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(c) = daily_q.course_id.as_deref() {
        plain_id("course_id", c)?;
    }
    let q = daily_q.report();
    let (from, to) = range(&q)?;
    let scope = Scope::of(&s, &caller).await?;
    let rows = daily(&s, daily_q.course_id.as_deref(), scope.courses(), from, to).await?;
    Ok(answer(Report { report: "daily", subject: None, from, to, rows }, &q, &headers))
}

/// A student's own attendance, per course.
#[utoipa::path(get, path = "/api/v1/me/attendance", tag = "attendance", params(ReportQuery), responses((status = 200, description = "The caller's attendance per course", content((Report = "application/json"), (String = "text/csv")), headers(("Content-Disposition" = String, description = "`attachment; filename=...` (CSV only)"))), (status = 422, description = "`from` after `to`, or a range over 366 days")))]
async fn my_attendance(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Params(q): Params<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (from, to) = range(&q)?;
    let rows = by_student(&s, &caller.user_id, None, from, to).await?;
    Ok(answer(Report { report: "student", subject: Some(caller.user_id), from, to, rows }, &q, &headers))
}

/// JSON, or CSV when asked for by `format=csv` or `Accept: text/csv`.
fn answer(report: Report, q: &ReportQuery, headers: &HeaderMap) -> Response {
    let wants_csv = q.format == Some(Format::Csv)
        || (q.format.is_none()
            && headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv")));
    if !wants_csv {
        return Json(report).into_response();
    }
    let file = format!(
        "attendance-{}-{}-{}-{}.csv",
        report.report,
        report.subject.as_deref().map(file_safe).unwrap_or_else(|| "all".into()),
        report.from,
        report.to
    );
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        to_csv(&report),
    )
        .into_response()
}

fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(64).collect()
}

/// RFC 4180 CSV. A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab, CR) is
/// prefixed with `'`: ids come from nodes and users, and a report must not run code when opened.
pub fn to_csv(report: &Report) -> String {
    let first = match report.report {
        "course" => "student_id",
        "daily" => "class_date",
        _ => "course_id",
    };
    let mut out = String::new();
    let daily = report.report == "daily";
    out.push_str(first);
    if daily {
        out.push_str(",course_id");
    }
    out.push_str(",present,late,absent,excused,total_classes,percentage\r\n");
    for r in &report.rows {
        out.push_str(&cell(&r.key));
        if daily {
            out.push(',');
            out.push_str(&cell(r.course_id.as_deref().unwrap_or("")));
        }
        let pct = r.percentage.map(|p| format!("{p:.2}")).unwrap_or_default();
        out.push_str(&format!(",{},{},{},{},{},{pct}\r\n", r.present, r.late, r.absent, r.excused, r.total_classes));
    }
    out
}

fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: Vec<Row>) -> Report {
        let d = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        Report { report: "course", subject: Some("c1".into()), from: d, to: d, rows }
    }

    fn r(key: &str, present: i64, late: i64, absent: i64) -> Row {
        let total = present + late + absent;
        Row {
            key: key.into(),
            course_id: None,
            present,
            late,
            absent,
            excused: 0,
            total_classes: total,
            percentage: (total > 0).then(|| ((100.0 * (present + late) as f64 / total as f64) * 100.0).round() / 100.0),
        }
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let csv = to_csv(&report(vec![r("s1", 2, 1, 1), r("s2", 0, 0, 0)]));
        assert_eq!(
            csv,
            "student_id,present,late,absent,excused,total_classes,percentage\r\ns1,2,1,1,0,4,75.00\r\ns2,0,0,0,0,0,\r\n"
        );
    }

    #[test]
    fn csv_cells_cannot_become_formulas_or_break_columns() {
        let csv = to_csv(&report(vec![r("=HYPERLINK(\"x\")", 1, 0, 0), r("a,b", 1, 0, 0)]));
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\",1"), "{csv}");
        assert!(csv.contains("\"a,b\",1"), "{csv}");
    }

    #[test]
    fn ranges_are_checked_field_by_field() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let bad = ReportQuery { from: d("2026-10-02"), to: d("2026-10-01"), ..Default::default() };
        assert!(matches!(range(&bad), Err(Error::Unprocessable(f)) if f[0].field == "from"));
        let long = ReportQuery { from: d("2024-01-01"), to: d("2026-01-01"), ..Default::default() };
        assert!(matches!(range(&long), Err(Error::Unprocessable(f)) if f[0].field == "to"));
        let ok = ReportQuery { from: d("2026-09-01"), to: d("2026-09-30"), ..Default::default() };
        assert_eq!(range(&ok).unwrap(), (d("2026-09-01").unwrap(), d("2026-09-30").unwrap()));
    }

    #[test]
    fn the_query_takes_exactly_what_the_document_says() {
        let q = |s: &str| serde_urlencoded::from_str::<ReportQuery>(s);
        let ok = q("from=2026-09-01&to=2026-09-30&format=csv").unwrap();
        assert_eq!((ok.from.map(|d| d.to_string()), ok.format), (Some("2026-09-01".into()), Some(Format::Csv)));
        assert!(q("").unwrap().from.is_none());
        for bad in ["format=xml", "from=2026-9-01", "to=%202026-09-01", "course_id=c1", "from="] {
            assert!(q(bad).is_err(), "{bad}");
        }
        let daily = serde_urlencoded::from_str::<DailyQuery>("course_id=c1&format=json").unwrap();
        assert_eq!((daily.course_id.as_deref(), daily.report().format), (Some("c1"), Some(Format::Json)));
    }

    #[test]
    fn percentages_match_the_summary_tables_rounding() {
        assert_eq!(r("s", 1, 0, 2).percentage, Some(33.33));
        assert_eq!(r("s", 0, 0, 0).percentage, None);
    }
}
