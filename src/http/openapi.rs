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

/// `GET /api/openapi.json`: public, like any API description. Built once per process.
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(ApiDoc::openapi))
}
