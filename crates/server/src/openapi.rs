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
/// timeout, or no token can be checked) with a problem: added wherever an annotation does not
/// say more.
fn add_common_problems(document: &mut serde_json::Value) {
    let common = [
        ("400", "malformed request (query, path or JSON)"),
        ("401", "no valid bearer token"),
        ("403", "outside the token's role or sites"),
        ("422", "well-formed but invalid values"),
        (
            "503",
            "not answered within the request timeout, the store stopped, or no token can be checked on this node (`tokens-unavailable`)",
        ),
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

/// Where an annotation can only name a plain type, the document says exactly what the
/// server accepts and sends (so that a schema-valid request is a valid one, and the other
/// way round): the `If-Match` header, ids in token requests, the export's formats, the raw
/// append's array of 1 to `APPEND_EVENTS_MAX` event lines, and the live feed's messages.
fn say_exactly_what_is_accepted(document: &mut serde_json::Value) {
    use serde_json::json;
    fn set(document: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
        if let Some(slot) = document.pointer_mut(pointer) {
            *slot = value;
        }
    }
    // Field tokens name their person (and the sites they may work at); no other role is
    // bound to sites.
    let id = json!({"$ref": "#/components/schemas/EntityId"});
    set(
        document,
        "/components/schemas/TokenRequest",
        json!({"oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["role", "actor"], "properties": {
                "role": {"const": "field"},
                "sites": {"type": "array", "items": id, "description": "the sites it may work at"},
                "actor": id}},
            {"type": "object", "additionalProperties": false, "required": ["role"], "properties": {
                "role": {"enum": ["supervisor", "auditor", "admin"]},
                "sites": {"type": "array", "maxItems": 0},
                "actor": {"oneOf": [{"type": "null"}, id]}}}
        ]}),
    );
    // Kinds that gridwatch alone writes (day seals) are neither commands nor raw appends.
    let system: Vec<String> = events_schema::samples::one_of_each()
        .into_iter()
        .filter(|event| event.facts().access() == events_schema::Access::System)
        .map(|event| event.event_type().to_owned())
        .collect();
    if let Some(variants) =
        document.pointer_mut("/components/schemas/CommandRequest/oneOf").and_then(|v| v.as_array_mut())
    {
        variants.retain(|variant| {
            let data = variant["properties"]["data"]["$ref"].as_str().unwrap_or_default();
            !system.iter().any(|kind| data.ends_with(&format!("/{kind}")))
        });
    }
    // Event ids are UUIDv7s (the log is ordered by them within a millisecond).
    let v7 = json!({"oneOf": [{"type": "null"}, {"type": "string", "format": "uuid",
        "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"}]});
    if let Some(variants) =
        document.pointer_mut("/components/schemas/CommandRequest/oneOf").and_then(|v| v.as_array_mut())
    {
        for variant in variants.iter_mut() {
            variant["properties"]["event_id"] = v7.clone();
        }
    }
    // An event line is one of the event types, each with its own data (the same data as
    // the command that records it), at its current schema version.
    let data_types: Vec<String> = document
        .pointer("/components/schemas/CommandRequest/oneOf")
        .and_then(|variants| variants.as_array())
        .map(|variants| {
            variants
                .iter()
                .filter_map(|variant| variant["properties"]["data"]["$ref"].as_str())
                .filter_map(|reference| reference.rsplit('/').next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // A raw append checks the data's shape (types, required and unknown fields), not the
    // rules that commands keep (no empty names, intervals in range): its data points at
    // copies of the payload schemas without those rules.
    let shapes = shape_schemas(document);
    if let Some(base) = document.pointer("/components/schemas/EventLine/properties").cloned() {
        let variants: Vec<serde_json::Value> = data_types
            .iter()
            .map(|event_type| {
                let mut properties = base.clone();
                properties["event_type"] = json!({"const": event_type});
                let data = if shapes.contains(event_type) { format!("{event_type}Shape") } else { event_type.clone() };
                properties["data"] = json!({"$ref": format!("#/components/schemas/{data}")});
                properties["event_id"] = v7.clone();
                if let Some(version) = events_schema::Event::current_schema_version(event_type) {
                    properties["schema_version"] = json!({"oneOf": [{"type": "null"}, {"const": version}]});
                }
                json!({"type": "object", "additionalProperties": false, "required": ["event_type", "data"],
                       "properties": properties})
            })
            .collect();
        let description = document.pointer("/components/schemas/EventLine/description").cloned();
        let mut line = json!({"oneOf": variants});
        if let Some(description) = description {
            line["description"] = description;
        }
        set(document, "/components/schemas/EventLine", line);
    }
    set(
        document,
        "/paths/~1api~1v1~1streams~1{stream_id}~1events/post/requestBody/content/application~1json/schema",
        json!({"type": "array", "minItems": 1, "maxItems": store::APPEND_EVENTS_MAX,
               "items": {"$ref": "#/components/schemas/EventLine"}}),
    );
    set(
        document,
        "/paths/~1api~1v1~1events~1live/get/responses/200/content/text~1event-stream/schema",
        json!({
            "description": "one message per event: `id` is its global position, `data` its envelope as JSON",
            "type": "object",
            "required": ["id", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "event": {"type": "string", "enum": ["message"]},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"$ref": "#/components/schemas/RecordedEvent"}},
                "retry": {"type": "integer", "minimum": 0}
            }
        }),
    );
    let parameters = [
        (
            "/paths/~1api~1v1~1commands/post/parameters",
            "If-Match",
            json!({"type": "string", "pattern": "^\\s*(W/)?\"?\\+?[0-9]{1,19}\"?\\s*$"}),
        ),
        (
            "/paths/~1api~1v1~1days~1{day}~1export/get/parameters",
            "format",
            json!({"type": "string", "enum": ["ndjson", "cloudevents"]}),
        ),
        (
            "/paths/~1api~1v1~1events~1live/get/parameters",
            "Last-Event-ID",
            json!({"type": "string", "pattern": "^\\s*\\+?[0-9]{1,19}\\s*$"}),
        ),
    ];
    for (pointer, name, schema) in parameters {
        if let Some(list) = document.pointer_mut(pointer).and_then(|list| list.as_array_mut()) {
            for parameter in list.iter_mut().filter(|parameter| parameter["name"] == name) {
                parameter["schema"] = schema.clone();
            }
        }
    }
}

/// The rules the payload schemas carry beyond their shape: texts that must not be blank,
/// lists that must not be empty, counts and intervals in range.
fn without_rules(schema: &mut serde_json::Value, renamed: &std::collections::HashSet<String>) -> bool {
    let mut changed = false;
    match schema {
        serde_json::Value::Object(fields) => {
            if fields.get("pattern").and_then(|p| p.as_str()) == Some("\\S") {
                fields.remove("pattern");
                changed = true;
            }
            if fields.get("minItems").and_then(|n| n.as_u64()) == Some(1) {
                fields.remove("minItems");
                changed = true;
            }
            if fields.get("type").and_then(|t| t.as_str()) == Some("integer") {
                if fields.get("minimum").and_then(|n| n.as_u64()).is_some_and(|n| n > 0) {
                    fields.insert("minimum".into(), 0.into());
                    changed = true;
                }
                if fields.get("maximum").and_then(|n| n.as_u64()).is_some_and(|n| n < u64::from(u32::MAX)) {
                    fields.insert("maximum".into(), u32::MAX.into());
                    changed = true;
                }
            }
            if let Some(reference) = fields.get_mut("$ref") {
                let target = reference.as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default().to_owned();
                if renamed.contains(&target) {
                    *reference = format!("#/components/schemas/{target}Shape").into();
                    changed = true;
                }
            }
            for value in fields.values_mut() {
                changed |= without_rules(value, renamed);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                changed |= without_rules(item, renamed);
            }
        }
        _ => {}
    }
    changed
}

/// Adds `<Name>Shape` beside every component schema that carries rules beyond its shape
/// (and beside those that refer to one), and returns their names.
fn shape_schemas(document: &mut serde_json::Value) -> std::collections::HashSet<String> {
    let mut renamed = std::collections::HashSet::new();
    let Some(components) = document.pointer("/components/schemas").and_then(|c| c.as_object()).cloned() else {
        return renamed;
    };
    // Until nothing changes: a schema that refers to a renamed one is renamed too.
    loop {
        let before = renamed.len();
        for (name, schema) in &components {
            let whole_requests = ["CommandRequest", "Command", "EventLine", "RecordedEvent"];
            if name.ends_with("Shape") || whole_requests.contains(&name.as_str()) || renamed.contains(name) {
                continue;
            }
            if without_rules(&mut schema.clone(), &renamed) {
                renamed.insert(name.clone());
            }
        }
        if renamed.len() == before {
            break;
        }
    }
    if let Some(target) = document.pointer_mut("/components/schemas").and_then(|c| c.as_object_mut()) {
        for name in &renamed {
            let mut schema = components[name].clone();
            without_rules(&mut schema, &renamed);
            target.insert(format!("{name}Shape"), schema);
        }
    }
    renamed
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
    say_exactly_what_is_accepted(&mut document);
    document
}
