//! The OpenAPI schemas of the values the pipeline sends: a repository, an environment, a
//! version, a commit SHA, a person. Each is described once here and used by every body
//! that carries it (`#[schema(schema_with = fields::version)]`): the JSON notification,
//! the form its older clients send and the event cannot disagree on what a version is.
//! The patterns say what the `domain` parsers accept (`GitRef::parse`, `Sha::parse`, ...).

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// A string `pattern` describes; `nullable` for an optional field.
fn text(pattern: &str, nullable: bool) -> ObjectBuilder {
    let kind: utoipa::openapi::schema::SchemaType = if nullable {
        [Type::String, Type::Null].into_iter().collect()
    } else {
        Type::String.into()
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .pattern(Some(pattern))
}

/// One example value, as the document has always shown it (`example`, which OpenAPI 3.1
/// still reads beside `examples`).
#[allow(deprecated)]
fn with_example(schema: ObjectBuilder, example: &str) -> RefOr<Schema> {
    schema.example(Some(example.into())).into()
}

pub fn repo() -> RefOr<Schema> {
    with_example(
        text(
            r"^[A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,8}){0,2}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$",
            false,
        )
        .description(Some(
            "`owner/name` (also accepted: a GitHub URL, or a bare name with `default_owner`).",
        )),
        "alphagov/content-store",
    )
}

/// The server lists its environments as this field's `enum` (`openapi::with_environments`).
pub fn environment() -> RefOr<Schema> {
    with_example(
        text(r"^[a-z0-9_-]{1,100}$", false)
            .description(Some("A configured environment (the document lists them).")),
        "staging",
    )
}

pub fn version() -> RefOr<Schema> {
    with_example(
        text(
            r"^[A-Za-z0-9_][A-Za-z0-9_+=,-]{0,60}([./][A-Za-z0-9_][A-Za-z0-9_+=,-]{0,60}){0,3}$",
            false,
        )
        .max_length(Some(255))
        .description(Some("A git ref (tag, branch) or a commit SHA.")),
        "v301",
    )
}

/// Optional wherever it is sent.
pub fn sha() -> RefOr<Schema> {
    text(r"^([0-9a-fA-F]{7,40}|[0-9a-fA-F]{64})$", true).into()
}

/// Who deployed: optional wherever it is sent.
pub fn deployed_by() -> RefOr<Schema> {
    text(r"^[A-Za-z0-9][^\u0000-\u001F\u007F-\u009F]{0,99}$", true)
        .max_length(Some(100))
        .description(Some("1 to 100 printable characters."))
        .into()
}
