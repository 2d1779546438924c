//! Paging, filtering and sorting for the services' list commands, without ever putting user
//! text into SQL: filters become numbered parameters and `sort` must name a whitelisted column.

use tokio_postgres::types::ToSql;

use crate::error::{Error, FieldError, Result};

/// Most rows one list call returns.
pub const MAX_LIMIT: i64 = 200;
/// Rows returned when the caller does not say.
pub const DEFAULT_LIMIT: i64 = 50;

/// `?limit=&offset=&sort=` of a list request. `sort` is a field name, `-field` for descending.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Rows wanted (1..=200, default 50).
    pub limit: Option<i64>,
    /// Rows skipped.
    pub offset: Option<i64>,
    /// A whitelisted field, optionally prefixed with `-` for descending order.
    pub sort: Option<String>,
}

/// A list's filter type names the fields its list sorts by: the one table both checks `sort`
/// ([`ListQuery::resolve`]) and documents it ([`Paging`]), so the two cannot disagree.
pub trait Sorted {
    /// `(field name, SQL column)` pairs; the first is the default order.
    const SORT: &'static [(&'static str, &'static str)];
}

/// The `limit`, `offset` and `sort` parameters of a list filtered by `F`, for the OpenAPI
/// document: the bounds [`ListQuery::resolve`] enforces and the sort fields `F` allows.
pub struct Paging<F>(std::marker::PhantomData<F>);

impl<F: Sorted> utoipa::IntoParams for Paging<F> {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let integer = || {
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        };
        let param = |name: &str, description: String, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema.build()))
                .build()
        };
        let fields: Vec<String> =
            F::SORT.iter().flat_map(|(name, _)| [(*name).to_owned(), format!("-{name}")]).collect();
        let default_sort = F::SORT.first().map(|(name, _)| *name).unwrap_or("id");
        vec![
            param(
                "limit",
                format!("Rows wanted (default {DEFAULT_LIMIT})"),
                integer().minimum(Some(1)).maximum(Some(MAX_LIMIT)).default(Some(DEFAULT_LIMIT.into())),
            ),
            param("offset", "Rows skipped".into(), integer().minimum(Some(0)).default(Some(0.into()))),
            param(
                "sort",
                format!("A field to sort by, `-` first for descending (default `{default_sort}`)"),
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(fields)),
            ),
        ]
    }
}

/// One page of a list, with the total the filter matched.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Rows matching the filter, across all pages.
    pub total: i64,
    /// The limit applied.
    pub limit: i64,
    /// The offset applied.
    pub offset: i64,
}

impl ListQuery {
    /// Checks the query against `sortable` (`(field name, SQL column)` pairs) and returns
    /// `(limit, offset, "ORDER BY ...")`. The default order is the first sortable field.
    pub fn resolve(&self, sortable: &[(&str, &'static str)]) -> Result<(i64, i64, String)> {
        let mut errors = Vec::new();
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            errors.push(FieldError::new("offset", "must not be negative"));
        }
        let (field, desc) = match self.sort.as_deref() {
            Some(s) => match s.strip_prefix('-') {
                Some(f) => (f, true),
                None => (s, false),
            },
            None => (sortable.first().map(|s| s.0).unwrap_or(""), false),
        };
        let column = sortable.iter().find(|(name, _)| *name == field).map(|(_, col)| *col);
        if column.is_none() {
            let names: Vec<&str> = sortable.iter().map(|s| s.0).collect();
            errors.push(FieldError::new(
                "sort",
                format!("must be one of {} (prefix - for descending)", names.join(", ")),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let dir = if desc { "DESC" } else { "ASC" };
        // The column is from the whitelist; `id` breaks ties so pages are stable.
        Ok((limit, offset, format!("ORDER BY {} {dir}, id", column.unwrap_or("id"))))
    }
}

/// A `WHERE` clause built from optional filters, each value a parameter.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    /// An empty filter (matches everything).
    pub fn new() -> Self {
        Filter::default()
    }

    /// Adds `template` with `$?` replaced by this value's parameter number, when `value` is set.
    pub fn and<T: ToSql + Sync + Send + 'static>(&mut self, template: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.params.push(Box::new(v));
            self.clauses.push(template.replace("$?", &format!("${}", self.params.len())));
        }
        self
    }

    /// Adds a fixed condition with no parameter.
    pub fn and_sql(&mut self, clause: &str) -> &mut Self {
        self.clauses.push(clause.to_owned());
        self
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!(" WHERE {}", self.clauses.join(" AND ")) }
    }

    /// The parameters, in order, plus `extra` after them (limit and offset).
    pub fn params<'a>(&'a self, extra: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut out: Vec<&(dyn ToSql + Sync)> = self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        out.extend_from_slice(extra);
        out
    }

    /// Number of parameters so far (the next one is `len() + 1`).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether no parameter was added.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// Runs `SELECT <columns> FROM <from> <filter> <order> LIMIT OFFSET` and the matching count.
pub async fn page<T>(
    client: &impl deadpool_postgres::GenericClient,
    columns: &str,
    from: &str,
    filter: &Filter,
    query: &ListQuery,
    sortable: &[(&str, &'static str)],
    map: impl Fn(&tokio_postgres::Row) -> T,
) -> Result<Page<T>> {
    let (limit, offset, order) = query.resolve(sortable)?;
    let n = filter.len();
    let sql = format!("SELECT {columns} FROM {from}{} {order} LIMIT ${} OFFSET ${}", filter.where_sql(), n + 1, n + 2);
    let rows = client.query(&sql, &filter.params(&[&limit, &offset])).await?;
    let count_sql = format!("SELECT count(*) FROM {from}{}", filter.where_sql());
    let total: i64 = client.query_one(&count_sql, &filter.params(&[])).await?.get(0);
    Ok(Page { items: rows.iter().map(map).collect(), total, limit, offset })
}

/// The constraint a statement violated, when it was a unique violation.
pub fn unique_violation(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    (db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or("").to_owned())
}

/// Whether a statement failed on a foreign key.
pub fn foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}

/// Pushes a "required" error when `value` is blank, and a length error when it is too long.
pub fn require_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        errors.push(FieldError::new(field, "is required"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
}

/// `Err(Validation)` when `errors` is not empty.
pub fn finish(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

/// `Err(Unprocessable)` (422) when `errors` is not empty: for the rules between fields, checked
/// after each field passed on its own ([`finish`], 400).
pub fn finish_rules(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Unprocessable(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORT: &[(&str, &str)] = &[("name", "name"), ("capacity", "capacity")];

    #[test]
    fn sort_must_be_whitelisted_and_limit_bounded() {
        let q = ListQuery { limit: Some(500), offset: Some(-1), sort: Some("name; DROP TABLE x".into()) };
        let Err(Error::Validation(errors)) = q.resolve(SORT) else { panic!("expected validation") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "offset", "sort"]);
        let q = ListQuery { limit: None, offset: None, sort: Some("-capacity".into()) };
        assert_eq!(q.resolve(SORT).unwrap(), (50, 0, "ORDER BY capacity DESC, id".into()));
    }

    #[test]
    fn filters_number_their_parameters() {
        let mut f = Filter::new();
        f.and("a = $?", Some(1i32)).and("b = $?", None::<String>).and("c ILIKE $?", Some("x".to_owned()));
        assert_eq!(f.where_sql(), " WHERE a = $1 AND c ILIKE $2");
        assert_eq!(f.params(&[]).len(), 2);
    }
}
