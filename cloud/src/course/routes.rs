//! Course routes: departments, programs, subjects, semesters and the academic calendar, courses
//! (with prerequisites and faculty), enrollments (capacity and waitlist are the service's).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::course::courses::{self, Course, CourseFilter, CourseUpdate, NewCourse};
use crate::course::departments::{self, Department, DepartmentFilter, DepartmentUpdate, NewDepartment};
use crate::course::enrollments::{self, Enrollment, EnrollmentFilter, NewEnrollment};
use crate::course::faculty::{self, Assignment, NewAssignment};
use crate::course::programs::{self, NewProgram, Program, ProgramFilter};
use crate::course::semesters::{self, CalendarEvent, NewCalendarEvent, NewSemester, Semester};
use crate::course::subjects::{self, NewSubject, Subject, SubjectFilter};
use crate::http::ServicesState;
use crate::http::{Access, ApiJson, ApiPath, ApiRoutes, AppError};
use crate::http::{Acting, Listing};
use crate::listing::Page;

const READ: Access = Access::Permission("course:read");
const WRITE: Access = Access::Permission("course:write");
const ENROLL_READ: Access = Access::Permission("enrollment:read");
const ENROLL_WRITE: Access = Access::Permission("enrollment:write");

type Answer<T> = Result<Json<T>, AppError>;
type Created<T> = Result<(StatusCode, Json<T>), AppError>;

/// A list without filters (only paging and sorting).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoFilter {}

impl crate::listing::Sorted for NoFilter {
    const SORT: &'static [(&'static str, &'static str)] = crate::course::semesters::SORTABLE;
}

/// The other course of a prerequisite or corequisite link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "course_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d" }))]
pub struct Link {
    /// The course required before (prerequisite) or alongside (corequisite): an existing course
    /// other than the one in the path (else 422).
    pub course_id: Uuid,
}

/// The course routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/departments", READ, get(list_departments))
        .route(Method::POST, "/api/v1/departments", WRITE, post(create_department))
        .route(Method::GET, "/api/v1/departments/:id", READ, get(get_department))
        .route(Method::PATCH, "/api/v1/departments/:id", WRITE, patch(update_department))
        .route(Method::GET, "/api/v1/programs", READ, get(list_programs))
        .route(Method::POST, "/api/v1/programs", WRITE, post(create_program))
        .route(Method::GET, "/api/v1/programs/:id", READ, get(get_program))
        .route(Method::GET, "/api/v1/subjects", READ, get(list_subjects))
        .route(Method::POST, "/api/v1/subjects", WRITE, post(create_subject))
        .route(Method::GET, "/api/v1/subjects/:id", READ, get(get_subject))
        .route(Method::GET, "/api/v1/semesters", READ, get(list_semesters))
        .route(Method::POST, "/api/v1/semesters", WRITE, post(create_semester))
        .route(Method::GET, "/api/v1/semesters/:id", READ, get(get_semester))
        .route(Method::POST, "/api/v1/semesters/:id/current", WRITE, post(set_current_semester))
        .route(Method::GET, "/api/v1/semesters/:id/calendar", READ, get(calendar))
        .route(Method::POST, "/api/v1/calendar-events", WRITE, post(add_calendar_event))
        .route(Method::GET, "/api/v1/courses", READ, get(list_courses))
        .route(Method::POST, "/api/v1/courses", WRITE, post(create_course))
        .route(Method::GET, "/api/v1/courses/:id", READ, get(get_course))
        .route(Method::PATCH, "/api/v1/courses/:id", WRITE, patch(update_course))
        .route(Method::DELETE, "/api/v1/courses/:id", WRITE, delete(delete_course))
        .route(Method::POST, "/api/v1/courses/:id/activate", WRITE, post(activate_course))
        .route(Method::POST, "/api/v1/courses/:id/deactivate", WRITE, post(deactivate_course))
        .route(Method::POST, "/api/v1/courses/:id/prerequisites", WRITE, post(add_prerequisite))
        .route(Method::POST, "/api/v1/courses/:id/corequisites", WRITE, post(add_corequisite))
        .route(Method::GET, "/api/v1/courses/:id/faculty", READ, get(course_faculty))
        .route(Method::POST, "/api/v1/courses/:id/faculty", WRITE, post(assign_faculty))
        .route(Method::DELETE, "/api/v1/courses/:id/faculty/:faculty_id", WRITE, delete(unassign_faculty))
        .route(Method::GET, "/api/v1/enrollments", ENROLL_READ, get(list_enrollments))
        .route(Method::POST, "/api/v1/enrollments", ENROLL_WRITE, post(enroll))
        .route(Method::DELETE, "/api/v1/courses/:id/enrollments/:student_id", ENROLL_WRITE, delete(drop_enrollment))
}

/// The course routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_departments,
    create_department,
    get_department,
    update_department,
    list_programs,
    create_program,
    get_program,
    list_subjects,
    create_subject,
    get_subject,
    list_semesters,
    create_semester,
    get_semester,
    set_current_semester,
    calendar,
    add_calendar_event,
    list_courses,
    create_course,
    get_course,
    update_course,
    delete_course,
    activate_course,
    deactivate_course,
    add_prerequisite,
    add_corequisite,
    course_faculty,
    assign_faculty,
    unassign_faculty,
    list_enrollments,
    enroll,
    drop_enrollment
))]
pub struct Doc;

#[utoipa::path(get, path = "/api/v1/departments", tag = "course", params(DepartmentFilter, crate::listing::Paging<DepartmentFilter>), responses((status = 200, description = "A page of departments")))]
async fn list_departments(State(s): State<ServicesState>, l: Listing<DepartmentFilter>) -> Answer<Page<Department>> {
    Ok(Json(departments::list_departments(&s.course, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/departments", tag = "course", request_body = NewDepartment, responses((status = 201, description = "The department"), (status = 409, description = "Code taken")))]
async fn create_department(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewDepartment>,
) -> Created<Department> {
    Ok((StatusCode::CREATED, Json(departments::create_department(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The department")))]
async fn get_department(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Department> {
    Ok(Json(departments::get_department(&s.course, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/departments/{id}", tag = "course", params(("id" = Uuid, Path)), request_body = DepartmentUpdate, responses((status = 200, description = "The updated department")))]
async fn update_department(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<DepartmentUpdate>,
) -> Answer<Department> {
    Ok(Json(departments::update_department(&s.course, &a, id, input).await?))
}

#[utoipa::path(get, path = "/api/v1/programs", tag = "course", params(ProgramFilter, crate::listing::Paging<ProgramFilter>), responses((status = 200, description = "A page of programs")))]
async fn list_programs(State(s): State<ServicesState>, l: Listing<ProgramFilter>) -> Answer<Page<Program>> {
    Ok(Json(programs::list_programs(&s.course, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/programs", tag = "course", request_body = NewProgram, responses((status = 201, description = "The program"), (status = 409, description = "Code taken"), (status = 422, description = "No such department")))]
async fn create_program(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewProgram>,
) -> Created<Program> {
    Ok((StatusCode::CREATED, Json(programs::create_program(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/programs/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The program")))]
async fn get_program(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Program> {
    Ok(Json(programs::get_program(&s.course, id).await?))
}

#[utoipa::path(get, path = "/api/v1/subjects", tag = "course", params(SubjectFilter, crate::listing::Paging<SubjectFilter>), responses((status = 200, description = "A page of subjects")))]
async fn list_subjects(State(s): State<ServicesState>, l: Listing<SubjectFilter>) -> Answer<Page<Subject>> {
    Ok(Json(subjects::list_subjects(&s.course, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/subjects", tag = "course", request_body = NewSubject, responses((status = 201, description = "The subject"), (status = 409, description = "Code taken"), (status = 422, description = "No such department")))]
async fn create_subject(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewSubject>,
) -> Created<Subject> {
    Ok((StatusCode::CREATED, Json(subjects::create_subject(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/subjects/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The subject")))]
async fn get_subject(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Subject> {
    Ok(Json(subjects::get_subject(&s.course, id).await?))
}

#[utoipa::path(get, path = "/api/v1/semesters", tag = "course", params(NoFilter, crate::listing::Paging<NoFilter>), responses((status = 200, description = "A page of semesters")))]
async fn list_semesters(State(s): State<ServicesState>, l: Listing<NoFilter>) -> Answer<Page<Semester>> {
    Ok(Json(semesters::list_semesters(&s.course, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/semesters", tag = "course", request_body = NewSemester, responses((status = 201, description = "The semester"), (status = 409, description = "Name taken"), (status = 422, description = "The end is not after the start")))]
async fn create_semester(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewSemester>,
) -> Created<Semester> {
    Ok((StatusCode::CREATED, Json(semesters::create_semester(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/semesters/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The semester")))]
async fn get_semester(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Semester> {
    Ok(Json(semesters::get_semester(&s.course, id).await?))
}

#[utoipa::path(post, path = "/api/v1/semesters/{id}/current", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "Now the current semester")))]
async fn set_current_semester(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Semester> {
    Ok(Json(semesters::set_current_semester(&s.course, &a, id).await?))
}

#[utoipa::path(get, path = "/api/v1/semesters/{id}/calendar", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The semester's calendar events")))]
async fn calendar(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Vec<CalendarEvent>> {
    Ok(Json(semesters::calendar(&s.course, id).await?))
}

#[utoipa::path(post, path = "/api/v1/calendar-events", tag = "course", request_body = NewCalendarEvent, responses((status = 201, description = "The calendar event"), (status = 422, description = "No such semester, the end before the start, or dates outside the semester")))]
async fn add_calendar_event(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewCalendarEvent>,
) -> Created<CalendarEvent> {
    Ok((StatusCode::CREATED, Json(semesters::add_calendar_event(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/courses", tag = "course", params(CourseFilter, crate::listing::Paging<CourseFilter>), responses((status = 200, description = "A page of courses")))]
async fn list_courses(State(s): State<ServicesState>, l: Listing<CourseFilter>) -> Answer<Page<Course>> {
    Ok(Json(courses::list_courses(&s.course, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/courses", tag = "course", request_body = NewCourse, responses((status = 201, description = "The course"), (status = 409, description = "Code taken"), (status = 422, description = "No such subject, department, program or semester")))]
async fn create_course(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewCourse>,
) -> Created<Course> {
    Ok((StatusCode::CREATED, Json(courses::create_course(&s.course, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/courses/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The course")))]
async fn get_course(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Course> {
    Ok(Json(courses::get_course(&s.course, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/courses/{id}", tag = "course", params(("id" = Uuid, Path)), request_body = CourseUpdate, responses((status = 200, description = "The updated course"), (status = 409, description = "Code taken"), (status = 422, description = "Capacity below the students enrolled, or no such semester")))]
async fn update_course(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<CourseUpdate>,
) -> Answer<Course> {
    Ok(Json(courses::update_course(&s.course, &a, id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/courses/{id}", tag = "course", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 409, description = "Students are enrolled or waiting; deactivate it instead")))]
async fn delete_course(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    courses::delete_course(&s.course, &a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/activate", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "Active")))]
async fn activate_course(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Course> {
    Ok(Json(courses::set_course_active(&s.course, &a, id, true).await?))
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/deactivate", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "Inactive")))]
async fn deactivate_course(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Course> {
    Ok(Json(courses::set_course_active(&s.course, &a, id, false).await?))
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/prerequisites", tag = "course", params(("id" = Uuid, Path)), request_body = Link, responses((status = 204, description = "Linked"), (status = 409, description = "The other course already requires this one"), (status = 422, description = "No such course, or the course itself")))]
async fn add_prerequisite(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(link): ApiJson<Link>,
) -> Result<StatusCode, AppError> {
    courses::add_prerequisite(&s.course, &a, id, link.course_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/corequisites", tag = "course", params(("id" = Uuid, Path)), request_body = Link, responses((status = 204, description = "Linked"), (status = 422, description = "No such course, or the course itself")))]
async fn add_corequisite(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(link): ApiJson<Link>,
) -> Result<StatusCode, AppError> {
    courses::add_corequisite(&s.course, &a, id, link.course_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/courses/{id}/faculty", tag = "course", params(("id" = Uuid, Path)), responses((status = 200, description = "The course's faculty")))]
async fn course_faculty(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Vec<Assignment>> {
    Ok(Json(faculty::course_faculty(&s.course, id).await?))
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/faculty", tag = "course", params(("id" = Uuid, Path)), request_body = NewAssignment, responses((status = 201, description = "Assigned (again: the role changed)"), (status = 422, description = "No active faculty member with this id")))]
async fn assign_faculty(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<NewAssignment>,
) -> Created<Assignment> {
    Ok((StatusCode::CREATED, Json(faculty::assign_faculty(&s.course, &s.users, &a, id, input).await?)))
}

#[utoipa::path(delete, path = "/api/v1/courses/{id}/faculty/{faculty_id}", tag = "course", params(("id" = Uuid, Path), ("faculty_id" = String, Path, pattern = r"^[^\u0000]*$")), responses((status = 204, description = "Unassigned")))]
async fn unassign_faculty(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath((id, faculty_id)): ApiPath<(Uuid, String)>,
) -> Result<StatusCode, AppError> {
    faculty::unassign_faculty(&s.course, &a, id, &faculty_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/enrollments", tag = "course", params(EnrollmentFilter, crate::listing::Paging<EnrollmentFilter>), responses((status = 200, description = "A page of enrollments")))]
async fn list_enrollments(State(s): State<ServicesState>, l: Listing<EnrollmentFilter>) -> Answer<Page<Enrollment>> {
    Ok(Json(enrollments::list_enrollments(&s.course, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/enrollments", tag = "course", request_body = NewEnrollment, responses((status = 201, description = "Enrolled, or waitlisted when the course is full"), (status = 409, description = "Already enrolled, waiting or completed, or the course is inactive"), (status = 422, description = "No such course, or no active student with this id")))]
async fn enroll(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewEnrollment>,
) -> Created<Enrollment> {
    Ok((StatusCode::CREATED, Json(enrollments::enroll(&s.course, &s.users, &a, input).await?)))
}

#[utoipa::path(delete, path = "/api/v1/courses/{id}/enrollments/{student_id}", tag = "course", params(("id" = Uuid, Path), ("student_id" = String, Path, pattern = r"^[^\u0000]*$")), responses((status = 200, description = "Dropped; the first waiting student promoted")))]
async fn drop_enrollment(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath((id, student_id)): ApiPath<(Uuid, String)>,
) -> Answer<Value> {
    let (dropped, promoted) = enrollments::drop_enrollment(&s.course, &a, id, &student_id).await?;
    Ok(Json(json!({ "dropped": dropped, "promoted": promoted })))
}
