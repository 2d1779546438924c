//! Who an announcement is for, and whether it reaches one person: the one rule the API's
//! `me/announcements` query, the notification fan-out and the classroom snapshot all follow.
//!
//! Every kind but `user_ids` is a **filter**: a person must match one value of each kind the
//! announcement names (students of program P *and* in semester 3). `everyone` names no filter
//! and reaches every active person; named users are reached in addition to the filters.
//! A person's values come from the services that own them ([`Profile`]): their role from the
//! user service; departments, programs, semesters and courses (enrolled or taught) from the
//! course service; rooms (where their courses are timetabled) from the timetable service.
//! Groups would be the communication service's group conversations, which are not resolved
//! yet: a group target reaches nobody rather than everybody until they are.

use nimbus_core::event::announcement::Target;
use serde::{Deserialize, Serialize};

use super::fields;
use crate::error::FieldError;

/// The roles an announcement may name.
pub const ROLES: [&str; 4] = ["student", "faculty", "admin", "staff"];

/// Values one announcement may name in all.
pub const MAX_VALUES: usize = 1_000;

/// The targets of one announcement, as the API takes and returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "roles": ["student"], "course_ids": ["5f1e2d3c-4b5a-4978-8a6b-1c2d3e4f5a6b"] }))]
pub struct Targets {
    /// Everyone (narrowed by any filter also named).
    #[serde(default)]
    #[schema(default = false)]
    pub everyone: bool,
    /// Role names (`student`, `faculty`, `admin`, `staff`).
    #[serde(default)]
    #[schema(schema_with = role_list)]
    pub roles: Vec<String>,
    /// Departments (their programs' students and their faculty).
    #[serde(default)]
    #[schema(schema_with = fields::uuid_list)]
    pub department_ids: Vec<String>,
    /// Programs (their students).
    #[serde(default)]
    #[schema(schema_with = fields::uuid_list)]
    pub program_ids: Vec<String>,
    /// Semester numbers (students enrolled in a course of that semester).
    #[serde(default)]
    #[schema(schema_with = semester_list)]
    pub semesters: Vec<i32>,
    /// Courses (enrolled students and assigned faculty).
    #[serde(default)]
    #[schema(schema_with = fields::uuid_list)]
    pub course_ids: Vec<String>,
    /// Groups of the communication service (1–64 characters each).
    #[serde(default)]
    #[schema(schema_with = fields::name_list)]
    pub group_ids: Vec<String>,
    /// Named people, reached in addition to the filters.
    #[serde(default)]
    #[schema(schema_with = fields::uuid_list)]
    pub user_ids: Vec<String>,
    /// Rooms (room number or id, 1–64 characters each): shown on their classroom nodes, and
    /// reaching the people whose courses are timetabled there.
    #[serde(default)]
    #[schema(schema_with = fields::name_list)]
    pub room_ids: Vec<String>,
}

fn role_list() -> utoipa::openapi::schema::ArrayBuilder {
    fields::enum_list(&ROLES)
}

fn semester_list() -> utoipa::openapi::schema::ArrayBuilder {
    fields::int_list(1, 20)
}

/// One person's values, as the owning services know them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The user id.
    pub user_id: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Departments (a student's program's, a faculty member's own).
    pub department_ids: Vec<String>,
    /// A student's program.
    pub program_ids: Vec<String>,
    /// Semesters of the courses a student is enrolled in.
    pub semesters: Vec<i32>,
    /// Courses enrolled in or taught.
    pub course_ids: Vec<String>,
    /// Communication groups (none until that service exists).
    pub group_ids: Vec<String>,
    /// Rooms (numbers and ids) where those courses are timetabled.
    pub room_ids: Vec<String>,
}

/// The filter kinds in the order they are stored as `announcement_targets.target_type`.
pub const FILTER_KINDS: [&str; 7] = ["role", "department", "program", "semester", "course", "group", "room"];

impl Targets {
    /// Whether any filter kind is named.
    fn names_a_filter(&self) -> bool {
        !(self.roles.is_empty()
            && self.department_ids.is_empty()
            && self.program_ids.is_empty()
            && self.semesters.is_empty()
            && self.course_ids.is_empty()
            && self.group_ids.is_empty()
            && self.room_ids.is_empty())
    }

    /// Whether the filters reach anyone (false when only users are named).
    pub fn has_filter(&self) -> bool {
        self.everyone || self.names_a_filter()
    }

    /// Whether it reaches `p` (see the module docs).
    pub fn reaches(&self, p: &Profile) -> bool {
        if self.user_ids.contains(&p.user_id) {
            return true;
        }
        fn one_of<T: PartialEq>(wanted: &[T], has: &[T]) -> bool {
            wanted.is_empty() || wanted.iter().any(|w| has.contains(w))
        }
        self.has_filter()
            && one_of(&self.roles, &p.roles)
            && one_of(&self.department_ids, &p.department_ids)
            && one_of(&self.program_ids, &p.program_ids)
            && one_of(&self.semesters, &p.semesters)
            && one_of(&self.course_ids, &p.course_ids)
            && one_of(&self.group_ids, &p.group_ids)
            && one_of(&self.room_ids, &p.room_ids)
    }

    /// The seed's `target_audience`: `all`, the one kind named (`courses`, `roles`, …), or
    /// `mixed`.
    pub fn audience_name(&self) -> &'static str {
        let named: Vec<&'static str> = [
            (!self.roles.is_empty(), "roles"),
            (!self.department_ids.is_empty(), "departments"),
            (!self.program_ids.is_empty(), "programs"),
            (!self.semesters.is_empty(), "semesters"),
            (!self.course_ids.is_empty(), "courses"),
            (!self.group_ids.is_empty(), "groups"),
            (!self.user_ids.is_empty(), "users"),
            (!self.room_ids.is_empty(), "rooms"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        match named.as_slice() {
            [] => "all",
            [one] if !self.everyone => one,
            _ => "mixed",
        }
    }

    /// The seed's `target_details` (its five lists; roles, semesters and rooms are ours and
    /// travel in the announcement service's own data).
    pub fn seed_target(&self) -> Target {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Target {
            department_ids: some(&self.department_ids),
            program_ids: some(&self.program_ids),
            course_ids: some(&self.course_ids),
            group_ids: some(&self.group_ids),
            user_ids: some(&self.user_ids),
        }
    }

    /// The `announcement_targets` rows.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if self.everyone {
            rows.push(("everyone", String::new()));
        }
        let mut add = |kind: &'static str, values: &[String]| rows.extend(values.iter().map(|v| (kind, v.clone())));
        add("role", &self.roles);
        add("department", &self.department_ids);
        add("program", &self.program_ids);
        add("semester", &self.semesters.iter().map(i32::to_string).collect::<Vec<_>>());
        add("course", &self.course_ids);
        add("group", &self.group_ids);
        add("user", &self.user_ids);
        add("room", &self.room_ids);
        rows
    }

    /// Rebuilds targets from their rows (unknown kinds are ignored).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut t = Targets::default();
        for (kind, value) in rows {
            let v = value.to_owned();
            match kind {
                "everyone" => t.everyone = true,
                "role" => t.roles.push(v),
                "department" => t.department_ids.push(v),
                "program" => t.program_ids.push(v),
                "semester" => t.semesters.extend(value.parse::<i32>().ok()),
                "course" => t.course_ids.push(v),
                "group" => t.group_ids.push(v),
                "user" => t.user_ids.push(v),
                "room" => t.room_ids.push(v),
                _ => {}
            }
        }
        t.normalise();
        t
    }

    /// Trims, lower-cases roles, sorts and removes duplicates.
    pub fn normalise(&mut self) {
        fn tidy(v: &mut Vec<String>) {
            for s in v.iter_mut() {
                *s = s.trim().to_owned();
            }
            v.sort();
            v.dedup();
        }
        for r in self.roles.iter_mut() {
            *r = r.to_ascii_lowercase();
        }
        for v in [
            &mut self.roles,
            &mut self.department_ids,
            &mut self.program_ids,
            &mut self.course_ids,
            &mut self.group_ids,
            &mut self.user_ids,
            &mut self.room_ids,
        ] {
            tidy(v);
        }
        self.semesters.sort();
        self.semesters.dedup();
    }

    /// Field errors of the targets as sent (before [`Targets::normalise`]): each value on its
    /// own, as the document states it (400).
    pub fn field_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(r) = self.roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
            errors.push(FieldError::new(
                "targets.roles",
                format!("{:?} is not one of {}", truncate(r), ROLES.join(", ")),
            ));
        }
        for (field, values) in [
            ("targets.department_ids", &self.department_ids),
            ("targets.program_ids", &self.program_ids),
            ("targets.course_ids", &self.course_ids),
            ("targets.user_ids", &self.user_ids),
        ] {
            if let Some(v) = values.iter().find(|v| !fields::is_uuid(v)) {
                errors.push(FieldError::new(field, format!("{:?} is not a uuid", truncate(v))));
            }
        }
        for (field, values) in [("targets.group_ids", &self.group_ids), ("targets.room_ids", &self.room_ids)] {
            let mut e = Vec::new();
            for v in values {
                fields::text(&mut e, field, v, 64);
            }
            if !e.is_empty() {
                errors.push(FieldError::new(field, "every value must be 1 to 64 characters, not blank"));
            }
        }
        if self.semesters.iter().any(|s| !(1..=20).contains(s)) {
            errors.push(FieldError::new("targets.semesters", "must be between 1 and 20"));
        }
        errors
    }

    /// The rules over all the targets (after [`Targets::normalise`]), which no schema states
    /// (422): at least one target, at most [`MAX_VALUES`] values in all.
    pub fn rule_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !self.everyone && !self.names_a_filter() && self.user_ids.is_empty() {
            errors.push(FieldError::new("targets", "must name at least one target (or everyone)"));
        }
        let count = self.rows().len();
        if count > MAX_VALUES {
            errors.push(FieldError::new("targets", format!("must name at most {MAX_VALUES} values in all")));
        }
        errors
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn person(user: &str, role: &str) -> Profile {
        Profile { user_id: user.into(), roles: vec![role.into()], ..Profile::default() }
    }

    #[test]
    fn filters_narrow_together_and_named_users_are_added() {
        let mut cs3 = person("s1", "student");
        cs3.department_ids = vec!["cs".into()];
        cs3.semesters = vec![3];
        let mut cs5 = cs3.clone();
        cs5.user_id = "s2".into();
        cs5.semesters = vec![5];
        let mut prof = person("f1", "faculty");
        prof.department_ids = vec!["cs".into()];
        let t = Targets { department_ids: vec!["cs".into()], semesters: vec![3], ..Targets::default() };
        assert!(t.reaches(&cs3));
        assert!(!t.reaches(&cs5), "semester 5 is not semester 3");
        assert!(!t.reaches(&prof), "faculty have no semester");
        let with_named = Targets { user_ids: vec!["f1".into()], ..t.clone() };
        assert!(with_named.reaches(&prof));
        let only_named = Targets { user_ids: vec!["f1".into()], ..Targets::default() };
        assert!(only_named.reaches(&prof) && !only_named.reaches(&cs3));
    }

    #[test]
    fn everyone_reaches_all_and_a_role_narrows_it() {
        let all = Targets { everyone: true, ..Targets::default() };
        assert!(all.reaches(&person("a", "admin")) && all.reaches(&person("s", "student")));
        let faculty = Targets { everyone: true, roles: vec!["faculty".into()], ..Targets::default() };
        assert!(faculty.reaches(&person("f", "faculty")) && !faculty.reaches(&person("s", "student")));
        assert_eq!(faculty.audience_name(), "mixed");
        assert_eq!(all.audience_name(), "all");
        assert_eq!(Targets { course_ids: vec!["c".into()], ..Targets::default() }.audience_name(), "courses");
    }

    #[test]
    fn a_group_reaches_nobody_until_groups_exist() {
        let t = Targets { group_ids: vec!["g1".into()], ..Targets::default() };
        assert!(!t.reaches(&person("s", "student")));
    }

    #[test]
    fn targets_survive_their_rows() {
        let mut t = Targets {
            everyone: false,
            roles: vec!["Student".into()],
            semesters: vec![3, 1],
            course_ids: vec![Uuid::nil().to_string()],
            room_ids: vec!["B-101".into()],
            ..Targets::default()
        };
        t.normalise();
        let rows = t.rows();
        let back = Targets::from_rows(rows.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, t);
        assert!(t.field_errors().is_empty() && t.rule_errors().is_empty());
    }

    #[test]
    fn bad_targets_are_named_field_by_field() {
        let fields = |e: Vec<FieldError>| e.into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(fields(Targets::default().rule_errors()), ["targets"]);
        let bad = Targets {
            roles: vec!["wizard".into(), "Student".into()],
            course_ids: vec!["not-a-uuid".into()],
            user_ids: vec![Uuid::nil().simple().to_string()],
            semesters: vec![0],
            room_ids: vec![" ".into()],
            ..Targets::default()
        };
        assert_eq!(
            fields(bad.field_errors()),
            ["targets.roles", "targets.course_ids", "targets.user_ids", "targets.room_ids", "targets.semesters"]
        );
        let many = Targets { room_ids: (0..1001).map(|i| format!("r{i}")).collect(), ..Targets::default() };
        assert!(many.field_errors().is_empty());
        assert_eq!(fields(many.rule_errors()), ["targets"]);
    }
}
