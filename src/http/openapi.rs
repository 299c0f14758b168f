//! The pipeline API's OpenAPI 3.1 description, generated from the handlers' types and
//! their `#[utoipa::path]` annotations, served at `/api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A pipeline token from `release token create`"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Release pipeline API", description = "What the deployment pipeline tells Release, and what it may read back. Every error is `{\"error\": message, \"field\": input}` with a precise status; 503 carries `Retry-After`."),
    paths(
        super::deployments::create,
        super::events::create,
        super::applications::list,
        super::applications::show,
        super::applications::release_app_shape,
        super::applications::promotion,
        super::stats::json,
        super::stats::csv,
        super::health::live,
        super::health::ready,
    ),
    modifiers(&Bearer),
    tags(
        (name = "pipeline", description = "Notifications from the deployment pipeline"),
        (name = "applications", description = "What runs where"),
        (name = "stats", description = "Delivery metrics (DORA)"),
        (name = "health", description = "For load balancers and orchestrators"),
    )
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`: public, like any API description. Built once per process,
/// with this server's environments as the `enum` of every environment field and
/// parameter, so the document says exactly what the server accepts.
pub async fn document(
    axum::extract::State(state): axum::extract::State<super::state::ServerState>,
) -> Json<&'static serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(|| {
        let names: Vec<&str> = state.app.store.environments().names();
        with_environments(
            serde_json::to_value(ApiDoc::openapi()).unwrap_or_default(),
            &names,
        )
    }))
}

/// The document with `names` as the `enum` of every property called `environment` (or
/// the form's `deployment[environment]`) and every parameter called `environment` or `to`.
pub fn with_environments(mut doc: serde_json::Value, names: &[&str]) -> serde_json::Value {
    let allowed = serde_json::json!(names);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|v| v.as_object_mut())
    {
        for schema in schemas.values_mut() {
            for key in ["environment", "deployment[environment]"] {
                if let Some(env) = schema.get_mut("properties").and_then(|p| p.get_mut(key)) {
                    env["enum"] = allowed.clone();
                }
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|v| v.as_object_mut()) {
        for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for method in op.values_mut() {
                let Some(params) = method.get_mut("parameters").and_then(|p| p.as_array_mut())
                else {
                    continue;
                };
                for param in params {
                    if matches!(param["name"].as_str(), Some("environment" | "to")) {
                        param["schema"]["enum"] = allowed.clone();
                    }
                }
            }
        }
    }
    doc
}
