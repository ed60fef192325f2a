//! A small client of the management API (`/api/v1`).

use crate::error::{error_chain, CliCode, CliError, LocalCode};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use updraft_api::{ErrorCode, ErrorView};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A management-API answer: the typed value, and the JSON as the server sent
/// it (what `--json` prints, fields this CLI does not know included).
#[derive(Clone, Debug)]
pub struct Answer<T> {
    pub value: T,
    pub json: Value,
}

/// The request body as JSON, as the server will read it.
fn to_json(body: &impl Serialize) -> Result<Value, CliError> {
    serde_json::to_value(body).map_err(|error| {
        CliError::new(
            ErrorCode::InternalError,
            format!("cannot encode the request: {error}"),
        )
    })
}

pub struct ApiClient {
    http: reqwest::Client,
    /// Server base URL without a trailing slash (it may carry a path prefix).
    base: String,
    apikey: String,
}

impl ApiClient {
    /// Fails with `missing_apikey` when no key was given, before any network traffic.
    pub fn new(server: &str, apikey: Option<&str>) -> Result<Self, CliError> {
        let apikey = apikey
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                CliError::new(
                    LocalCode::MissingApikey,
                    "this command needs an API key: pass --apikey KEY or set UPDRAFT_APIKEY \
                 (create one on the server machine with `updraft apikey create --name NAME`)",
                )
            })?;
        let base = server.trim().trim_end_matches('/').to_string();
        let parsed = Url::parse(&base).map_err(|error| {
            CliError::new(
                LocalCode::InvalidServerUrl,
                format!("--server {server:?} is not a URL: {error}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(CliError::new(
                LocalCode::InvalidServerUrl,
                format!(
                    "--server {server:?} must be an http:// or https:// base URL such as {}",
                    crate::args::DEFAULT_SERVER
                ),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("updraft-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::new(LocalCode::ClientError, error_chain(&error)))?;
        Ok(ApiClient {
            http,
            base,
            apikey: apikey.to_string(),
        })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// `<server>/api/v1/<segment>/<segment>…` with every segment percent-encoded
    /// and the query appended.
    pub fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, CliError> {
        let mut text = format!("{}/api/v1", self.base);
        for segment in segments {
            text.push('/');
            text.push_str(&encode_path_segment(segment)?);
        }
        let mut url = Url::parse(&text).map_err(|error| {
            CliError::new(
                LocalCode::InvalidServerUrl,
                format!("cannot build a URL from {text:?}: {error}"),
            )
        })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Answer<T>, CliError> {
        let body = self.send(Method::GET, segments, query, None).await?;
        self.answer(body)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<Answer<T>, CliError> {
        let body = self
            .send(Method::POST, segments, &[], Some(&to_json(body)?))
            .await?;
        self.answer(body)
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<Answer<T>, CliError> {
        let body = self
            .send(Method::PUT, segments, &[], Some(&to_json(body)?))
            .await?;
        self.answer(body)
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<Answer<T>, CliError> {
        let body = self
            .send(Method::PATCH, segments, &[], Some(&to_json(body)?))
            .await?;
        self.answer(body)
    }

    /// A body that must be there, read as `T`.
    fn answer<T: DeserializeOwned>(&self, body: Option<Value>) -> Result<Answer<T>, CliError> {
        let json = expect_body(body)?;
        let value = T::deserialize(&json).map_err(|error| {
            CliError::new(
                LocalCode::InvalidResponse,
                format!(
                    "the server at {} answered with JSON this CLI does not understand: {error}",
                    self.base
                ),
            )
        })?;
        Ok(Answer { value, json })
    }

    /// Any 2xx counts; the usual answer is 204 without a body.
    pub async fn delete(&self, segments: &[&str]) -> Result<(), CliError> {
        self.delete_with_query(segments, &[]).await
    }

    /// A DELETE with query parameters (`force=true`).
    pub async fn delete_with_query(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<(), CliError> {
        self.send(Method::DELETE, segments, query, None)
            .await
            .map(|_| ())
    }

    /// A GET whose answer is read as it arrives (exports); a non-2xx answer
    /// is turned into the usual error.
    pub async fn get_streaming(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, CliError> {
        let url = self.endpoint(segments, query)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.apikey)
            // An export may take long; the connect timeout still applies.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?;
        Err(error_from_response(status, &bytes))
    }

    /// Reads the next piece of a streamed answer. The server had answered
    /// 2xx already: a stream that breaks off now (the server aborts it when
    /// it fails part-way, rather than end it as if complete) is the server
    /// failing, not the server being out of reach.
    pub async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<Vec<u8>>, CliError> {
        response
            .chunk()
            .await
            .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
            .map_err(|error| {
                let cause = match std::error::Error::source(&error) {
                    Some(source) => error_chain(source),
                    None => error_chain(&error),
                };
                CliError::new(
                    LocalCode::ServerFailed,
                    format!(
                        "the server failed while sending its answer, which is incomplete \
                         (see the server's log): {cause}"
                    ),
                )
            })
    }

    /// `Ok(None)` for a 2xx without a body.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, CliError> {
        let url = self.endpoint(segments, query)?;
        let mut request = self.http.request(method, url).bearer_auth(&self.apikey);
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, bytes) = self.exchange(request).await?;
        if !status.is_success() {
            return Err(error_from_response(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            CliError::new(
                LocalCode::InvalidResponse,
                format!(
                    "the server at {} answered with something that is not JSON: {error}",
                    self.base
                ),
            )
        })
    }

    /// A request with a raw body and extra headers (uploads). A refusal with
    /// the API's error body is an answer too, so callers can read its fields
    /// (such as the durable offset of a 409).
    pub async fn send_raw(
        &self,
        method: Method,
        segments: &[&str],
        headers: &[(&str, String)],
        body: reqwest::Body,
        timeout: Duration,
    ) -> Result<RawAnswer, CliError> {
        let url = self.endpoint(segments, &[])?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.apikey)
            .timeout(timeout)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let (status, bytes) = self.exchange(request).await?;
        if status.is_success() {
            return Ok(RawAnswer::Success(
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        match serde_json::from_slice::<ErrorView>(&bytes) {
            Ok(error) => Ok(RawAnswer::Refused(status, error)),
            Err(_) => Err(error_from_response(status, &bytes)),
        }
    }

    /// Sends a request and reads the whole answer; transport failures become `connection_failed`.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), CliError> {
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?;
        Ok((status, bytes.to_vec()))
    }

    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        // reqwest's own top line only repeats the URL; the causes say what went wrong.
        let cause = match std::error::Error::source(error) {
            Some(source) => error_chain(source),
            None => error_chain(error),
        };
        CliError::new(
            LocalCode::ConnectionFailed,
            format!("cannot reach the Updraft server at {}: {cause}", self.base),
        )
    }
}

/// What [`ApiClient::send_raw`] got back.
#[derive(Debug)]
pub enum RawAnswer {
    /// A 2xx, with its JSON (`Null` when there was none).
    Success(Value),
    /// A refusal with the API's error body.
    Refused(StatusCode, ErrorView),
}

fn expect_body(body: Option<Value>) -> Result<Value, CliError> {
    body.ok_or_else(|| {
        CliError::new(
            LocalCode::InvalidResponse,
            "the server answered without a body where one was expected",
        )
    })
}

/// A non-2xx answer as an error: the server's `{"error", "message"}` when it
/// sent one, else `http_<status>` with whatever text came back.
pub fn error_from_response(status: StatusCode, body: &[u8]) -> CliError {
    use serde::Deserialize;
    /// The two fields of an error body, each on its own: a proxy's or an
    /// older server's JSON may carry one without the other.
    #[derive(serde::Deserialize)]
    struct Fields {
        error: Option<Value>,
        message: Option<Value>,
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = json
        .as_ref()
        .filter(|json| json.is_object())
        .and_then(|json| Fields::deserialize(json).ok());
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    // The server's code as sent, even one this build does not know.
    let code = text(parsed.as_ref().and_then(|p| p.error.as_ref()))
        .map_or(CliCode::Http(status.as_u16()), |code| {
            CliCode::Api(ErrorCode::from_wire(&code))
        });
    let message = text(parsed.as_ref().and_then(|p| p.message.as_ref())).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        let reason = status.canonical_reason().unwrap_or("error");
        if text.is_empty() || json.is_some() {
            format!("the server answered HTTP {} {reason}", status.as_u16())
        } else {
            format!(
                "the server answered HTTP {} {reason}: {text}",
                status.as_u16()
            )
        }
    });
    CliError::new(code, message).with_status(status.as_u16())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so `/`, `?`,
/// `#`, `%` and spaces in ids stay inside their segment.
pub fn encode_path_segment(segment: &str) -> Result<String, CliError> {
    // URL parsers resolve `.`/`..` segments (even encoded), which would change the route.
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(CliError::invalid_argument(format!(
            "{segment:?} cannot be used as an id or name"
        )));
    }
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters_in_segments() {
        assert_eq!(
            encode_path_segment("com.example.app").unwrap(),
            "com.example.app"
        );
        assert_eq!(
            encode_path_segment("1.0.0-beta+1").unwrap(),
            "1.0.0-beta%2B1"
        );
        assert_eq!(
            encode_path_segment("a b/c?d#e%").unwrap(),
            "a%20b%2Fc%3Fd%23e%25"
        );
        assert_eq!(encode_path_segment("é").unwrap(), "%C3%A9");
    }

    #[test]
    fn dot_segments_and_empty_ids_are_rejected() {
        for bad in ["", ".", ".."] {
            assert_eq!(
                encode_path_segment(bad).unwrap_err().code,
                CliCode::Local(LocalCode::InvalidArgument)
            );
        }
        assert_eq!(encode_path_segment("...").unwrap(), "...");
    }

    #[test]
    fn endpoint_keeps_base_path_and_encodes_query() {
        let client = ApiClient::new("http://localhost:9000/updraft/", Some("k")).unwrap();
        let url = client
            .endpoint(
                &["apps", "com.x.y", "devices"],
                &[("search", "a&b c".to_string())],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://localhost:9000/updraft/api/v1/apps/com.x.y/devices?search=a%26b+c"
        );
    }

    #[test]
    fn missing_or_blank_apikey_is_refused() {
        for key in [None, Some(""), Some("  ")] {
            let error = ApiClient::new("http://127.0.0.1:8080", key).err().unwrap();
            assert_eq!(error.code, CliCode::Local(LocalCode::MissingApikey));
            assert!(error.message.contains("updraft apikey create"));
            assert!(error.message.contains("UPDRAFT_APIKEY"));
        }
    }

    #[test]
    fn bad_server_urls_are_refused() {
        for server in ["not a url", "ftp://host", "http://host/?x=1"] {
            let error = ApiClient::new(server, Some("k")).err().unwrap();
            assert_eq!(
                error.code,
                CliCode::Local(LocalCode::InvalidServerUrl),
                "{server}"
            );
        }
    }

    #[test]
    fn server_error_body_gives_code_and_message() {
        let error = error_from_response(
            StatusCode::CONFLICT,
            br#"{"error": "app_already_exists", "message": "app com.x.y already exists"}"#,
        );
        assert_eq!(
            error,
            CliError::new(ErrorCode::AppAlreadyExists, "app com.x.y already exists")
                .with_status(409)
        );
    }

    #[test]
    fn non_json_error_falls_back_to_http_status() {
        let error = error_from_response(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(error.code, CliCode::Http(502));
        assert_eq!(
            error.message,
            "the server answered HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn json_error_without_fields_falls_back_per_field() {
        let error = error_from_response(StatusCode::NOT_FOUND, br#"{"message": "no such route"}"#);
        assert_eq!(
            error,
            CliError::new(CliCode::Http(404), "no such route").with_status(404)
        );
        let error = error_from_response(StatusCode::UNAUTHORIZED, b"");
        assert_eq!(
            error,
            CliError::new(
                CliCode::Http(401),
                "the server answered HTTP 401 Unauthorized"
            )
            .with_status(401)
        );
    }
}
