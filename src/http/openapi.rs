//! The pipeline API's OpenAPI 3.1 description, generated from the handlers' types and
//! their `#[utoipa::path]` annotations, served at `/api/openapi.json`.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: a message, and the input at fault when there is one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorJson {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

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
    info(title = "Release pipeline API", description = "What the deployment pipeline tells Release, and what it may read back."),
    paths(super::stats::json, super::stats::csv),
    modifiers(&Bearer),
    tags((name = "stats", description = "Delivery metrics (DORA)"))
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`: public, like any API description.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
