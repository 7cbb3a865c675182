//! The OpenAPI 3.1 description of the API, generated from the handlers'
//! `#[utoipa::path]` attributes and the types they return, served at
//! `/openapi.json`, with Swagger UI at `/docs` (its assets are compiled into
//! the binary from the `utoipa-swagger-ui-vendored` crate: the page asks no
//! other host for anything).
//!
//! The error responses every operation can give (problem details) are added
//! by [`ProblemResponses`] rather than repeated on each handler.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::openapi::{RefOr, Required};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::error::{PROBLEM_JSON, ProblemKind};
use super::routes;
use super::routes::upload::CALLBACK_FIELD;
use crate::output::{OPTIONS, OptionSpec};

/// RFC 9457 problem details, as every error is sent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `urn:vidaud:problem:<kind>`, stable per kind of error.
    #[schema(example = "urn:vidaud:problem:not-found")]
    r#type: String,
    #[schema(example = "Not found")]
    title: String,
    #[schema(example = 404)]
    status: u16,
    #[schema(example = "no such job")]
    detail: String,
    /// The same text as `detail` (for clients of the first versions).
    error: String,
    /// The request field at fault, for refused output options.
    field: Option<String>,
}

/// A job's waveform data: BBC audiowaveform's JSON (version 2), as peaks.js
/// and `waveform-data` read it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Waveform {
    #[schema(example = 2)]
    version: u32,
    /// Always 1: the mean of the audio's channels.
    #[schema(example = 1)]
    channels: u32,
    /// The audio's sample rate, Hz.
    #[schema(example = 44100)]
    sample_rate: u32,
    /// Audio frames per min/max pair.
    #[schema(example = 256)]
    samples_per_pixel: u32,
    /// Always 8: values are -128..127 (`floor(127 × sample)`).
    #[schema(example = 8)]
    bits: u32,
    /// Pairs in `data`.
    length: u64,
    /// `min, max` of each block of `samples_per_pixel` frames, in order.
    data: Vec<i8>,
}

/// The multipart form of an upload: the video in `file`, and optionally the
/// output options (the options table, `output::OPTIONS`) as text fields,
/// before or after the file. A text field is never null (leave it out
/// instead), and no other field is taken.
pub struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> RefOr<Schema> {
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/octet-stream");
        let form = OPTIONS.iter().fold(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("file", file)
                .required("file")
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false))),
            |form, option| form.property(option.name, option_schema(option)),
        );
        let form = form.property(CALLBACK_FIELD, callback_schema());
        RefOr::T(Schema::Object(form.build()))
    }
}

impl ToSchema for UploadForm {}

/// The output options as query parameters of `POST /upload`, from the
/// options table.
pub struct OptionQuery;

impl utoipa::IntoParams for OptionQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        OPTIONS
            .iter()
            .map(|option| {
                ParameterBuilder::new()
                    .name(option.name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(option.description()))
                    .schema(Some(option_schema(option)))
                    .build()
            })
            .chain([ParameterBuilder::new()
                .name(CALLBACK_FIELD)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(CALLBACK_DESCRIPTION))
                .schema(Some(callback_schema()))
                .build()])
            .collect()
    }
}

const CALLBACK_DESCRIPTION: &str = "Where this job's events (job.done, job.failed, job.deleted) \
    are POSTed, signed per Standard Webhooks with the `callback_secret` of the answer. \
    Loopback, private and other special addresses are refused unless \
    `webhooks.allowed_networks` allows them.";

fn callback_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uri".into())))
            .description(Some(CALLBACK_DESCRIPTION))
            .examples(["https://example.com/hooks/vidaud"])
            .build(),
    )
}

/// One option's value: text, described by its row of the table.
fn option_schema(option: &OptionSpec) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(option.description()))
            .examples([option.example])
            .build(),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidaud",
        description = "Video-to-audio conversion: upload a video, follow its job, download the audio.\n\n\
            Log in with HTTP Basic at `POST /login` to get a token; send it as \
            `Authorization: Bearer <token>` everywhere else. Every error is \
            `application/problem+json` (RFC 9457) with a stable `type`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        routes::account::register,
        routes::account::login,
        routes::account::validate,
        super::web::session::create,
        super::web::session::show,
        super::web::session::delete,
        routes::upload::upload,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::delete_job,
        routes::jobs::retry_job,
        routes::files::job_audio,
        routes::files::job_waveform,
        routes::links::create_link,
        routes::events::job_events,
        routes::events::all_events,
        routes::options::catalogue,
        routes::me::me,
        routes::me::change_password,
        routes::me::logout_all,
        routes::me::list_users,
        routes::me::disable,
        routes::me::enable,
        routes::me::delete_me,
        routes::me::delete_user,
        routes::me::set_limits,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::show,
        routes::webhooks::delete,
        routes::webhooks::deliveries,
        routes::webhooks::resend,
        routes::webhooks::job_deliveries,
        routes::webhooks::job_resend,
        routes::files::download,
        routes::ops::health,
        routes::ops::ready,
        routes::ops::metrics,
    ),
    components(schemas(Problem, UploadForm, Waveform)),
    modifiers(&Security, &ProblemResponses),
    tags(
        (name = "account", description = "Registration, login, token check"),
        (name = "jobs", description = "Uploads and their conversion jobs"),
        (name = "files", description = "Downloading converted audio"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// Adds the problem responses any operation can give: bad request, not
/// found (unknown ids, and routes), invalid input, rate limits, overload and
/// outages; 401 where a token or password is needed.
struct ProblemResponses;

/// Statuses every operation may answer with.
const EVERYWHERE: [u16; 6] = [400, 404, 422, 429, 500, 503];

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.head,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut statuses = EVERYWHERE.to_vec();
                if secured {
                    statuses.push(401);
                }
                add_problems(operation, &statuses);
            }
        }
    }
}

/// Adds a problem response for each status the operation does not list yet.
fn add_problems(operation: &mut Operation, statuses: &[u16]) {
    for status in statuses {
        let key = status.to_string();
        if operation.responses.responses.contains_key(&key) {
            continue;
        }
        let kinds: Vec<&str> = ProblemKind::with_status(*status)
            .map(ProblemKind::slug)
            .collect();
        let title = ProblemKind::with_status(*status)
            .next()
            .map(ProblemKind::title)
            .unwrap_or("Error");
        let response = ResponseBuilder::new()
            .description(format!("{title} (problem type: {})", kinds.join(", ")))
            .content(
                PROBLEM_JSON,
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build();
        operation.responses.responses.insert(key, response.into());
    }
}

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn docs_router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    let config = Config::from("/openapi.json")
        // No badge fetched from the public validator: nothing leaves the page.
        .validator_url("none")
        .try_it_out_enabled(true);
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .config(config)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_errors_as_problems() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 12, "{:?}", paths.keys());
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                for status in ["400", "404", "500", "503"] {
                    if path == "/ready" && status == "503" {
                        continue; // the readiness report, not a problem
                    }
                    let content = &responses[status]["content"];
                    assert!(
                        content.get(PROBLEM_JSON).is_some(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_upload_takes_exactly_the_options_of_the_table_and_a_callback() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let upload = &doc["paths"]["/upload"]["post"];
        let query: Vec<&str> = upload["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let mut names: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
        names.push(CALLBACK_FIELD);
        assert_eq!(query, names);
        let form = &doc["components"]["schemas"]["UploadForm"];
        assert_eq!(form["additionalProperties"], false);
        assert_eq!(form["required"], serde_json::json!(["file"]));
        let mut fields: Vec<&str> = form["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut expected = names.clone();
        expected.push("file");
        expected.sort_unstable();
        assert_eq!(fields, expected);
        assert_eq!(
            upload["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"],
            "#/components/schemas/UploadForm"
        );
        assert!(
            form["properties"]["bitrate"]["description"]
                .as_str()
                .unwrap()
                .contains("opus 6-510")
        );
    }
}
