//! The OpenAPI document, generated from the handlers' annotations (utoipa), with the
//! schemas of commands and event envelopes generated from their types (schemars) added as
//! components.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{live, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "gridwatch", description = "Event-sourced incident and patrol tracker: commands, live status, audit replay, after-action reports."),
    paths(
        routes::execute_command, routes::status, routes::issues, routes::issue, routes::timeline, routes::replay,
        routes::report, routes::events, live::live, routes::append_events, routes::create_token,
        routes::list_tokens, routes::revoke_token, routes::healthz,
        routes::readyz, routes::metrics, routes::openapi, routes::verify, routes::seal_key, routes::day_export, routes::day_seals, routes::seal_day, routes::event_proof, routes::backup,
    ),
    components(schemas(
        routes::CommandRequest, routes::AppendResponse, routes::AppendedEventBody, routes::TokenRequest,
        routes::TokenResponse, crate::problem::Problem, crate::auth::Role, crate::auth::TokenInfo,
        routes::VerifyResponse, routes::VerifyProblemBody, routes::SealProblemBody, routes::SealKeyResponse,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every `/api/v1` operation can also answer 400 (a bad query or path), 401, 403 and 503 (a
/// timeout) with a problem: added wherever an annotation does not say more.
fn add_common_problems(document: &mut serde_json::Value) {
    let common = [
        ("400", "malformed request (query, path or JSON)"),
        ("401", "no valid bearer token"),
        ("403", "outside the token's role or sites"),
        ("422", "well-formed but invalid values"),
        ("503", "not answered within the request timeout, or the store stopped"),
    ];
    let Some(paths) = document.get_mut("paths").and_then(|paths| paths.as_object_mut()) else { return };
    for (_, item) in paths.iter_mut().filter(|(path, _)| path.starts_with("/api/v1")) {
        let Some(operations) = item.as_object_mut() else { continue };
        for operation in operations.values_mut() {
            let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
            for (status, description) in common {
                responses.entry(status).or_insert_with(|| {
                    serde_json::json!({
                        "description": description,
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    })
                });
            }
        }
    }
}

/// Points the parts of the document that stand for domain types at the schemas generated
/// from those types (added below as components), so the two cannot drift apart: the issue
/// filters' `category` and `severity`, and the command body, which is one of the commands
/// (`command` + `data`, exactly as in `Command`) with the request's own optional fields.
fn refer_to_generated_schemas(document: &mut serde_json::Value, command: &serde_json::Value) {
    for (name, schema) in [("category", "IssueCategory"), ("severity", "Severity")] {
        if let Some(parameters) =
            document.pointer_mut("/paths/~1api~1v1~1issues/get/parameters").and_then(|p| p.as_array_mut())
        {
            for parameter in parameters.iter_mut().filter(|parameter| parameter["name"] == name) {
                parameter["schema"] = serde_json::json!({ "$ref": format!("#/components/schemas/{schema}") });
            }
        }
    }
    let Some(request) = document.pointer("/components/schemas/CommandRequest").cloned() else { return };
    let Some(variants) = command["oneOf"].as_array() else { return };
    let variants: Vec<serde_json::Value> = variants
        .iter()
        .map(|variant| {
            let mut variant = variant.clone();
            if let (Some(properties), Some(extra)) =
                (variant["properties"].as_object_mut(), request["properties"].as_object())
            {
                for (field, schema) in extra.iter().filter(|(field, _)| *field != "command" && *field != "data") {
                    properties.insert(field.clone(), schema.clone());
                }
            }
            variant
        })
        .collect();
    let mut body = serde_json::json!({ "oneOf": variants });
    if let Some(description) = request.get("description") {
        body["description"] = description.clone();
    }
    document["components"]["schemas"]["CommandRequest"] = body;
}

/// The whole document as JSON, built once.
pub fn openapi_document() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(build_document)
}

fn build_document() -> serde_json::Value {
    // Built from types at compile time: a document that does not serialize is a bug.
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    let schemas = [
        ("Command", generator.root_schema_for::<domain::Command>().to_value()),
        ("EventLine", generator.root_schema_for::<events_schema::EventLine>().to_value()),
        ("RecordedEvent", generator.root_schema_for::<events_schema::EnvelopeJson<'_>>().to_value()),
    ];
    let definitions = generator.take_definitions(true);
    add_common_problems(&mut document);
    refer_to_generated_schemas(&mut document, &schemas[0].1);
    if let Some(components) = document.pointer_mut("/components/schemas").and_then(|value| value.as_object_mut()) {
        for (name, mut schema) in schemas {
            if let Some(object) = schema.as_object_mut() {
                object.remove("$schema");
                object.remove("$defs");
            }
            components.insert(name.to_owned(), schema);
        }
        for (name, schema) in definitions {
            components.entry(name).or_insert(schema);
        }
    }
    document
}
