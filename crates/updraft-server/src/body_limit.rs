//! Refuses a request whose declared `Content-Length` is over its route's
//! limit before any of the body is read: the client gets its 413 while it
//! is still sending (or before it starts, with `Expect: 100-continue`), and
//! the server never buffers a byte of it. Bodies without a length (chunked)
//! still meet the handlers' own caps as they are read.

use crate::error::{ApiError, DeviceResponse, ErrorCode};
use crate::metrics::UpdateCheckOutcome;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready};
use std::task::{Context, Poll};
use updraft_core::error::{DeviceError, DeviceErrorCode};

/// How much of a refused body is read and dropped before the connection
/// closes (nginx's lingering close does the same), in bytes and in time.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(10);

async fn discard(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read >= LINGER_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Which error body a refusal carries: the route's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Management API: `{"error", "message", "limit"}`.
    Api,
    /// Device routes: the device envelope, with `kind: "failed"` on
    /// `/updates` and `/updates/manifest_size`, as their handlers refuse a
    /// body too large.
    Device,
}

/// A `tower::Layer` for `Router::route_layer`.
#[derive(Clone, Copy, Debug)]
pub struct ContentLengthLimit {
    limit: u64,
    shape: Shape,
}

impl ContentLengthLimit {
    pub fn new(limit: u64, shape: Shape) -> Self {
        ContentLengthLimit { limit, shape }
    }

    /// The refusal for `declared` bytes, or `None` when within the limit.
    fn check(&self, request: &Request) -> Option<Response> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        (declared > self.limit).then(|| self.refusal(declared, request.uri().path()))
    }

    fn refusal(&self, declared: u64, path: &str) -> Response {
        let limit = self.limit;
        match self.shape {
            Shape::Api => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                format!("the request body is {declared} bytes; this route takes at most {limit}"),
            )
            .with("limit", limit)
            .into_response(),
            Shape::Device => {
                let err = DeviceError::bad_request(
                    DeviceErrorCode::BodyTooLarge,
                    format!("Request body is larger than {limit} bytes"),
                )
                .with_status(413);
                let update_check =
                    path.ends_with("/updates") || path.ends_with("/updates/manifest_size");
                if !update_check {
                    return DeviceResponse(err).into_response();
                }
                let mut response = DeviceResponse::update_check(err);
                response
                    .extensions_mut()
                    .insert(UpdateCheckOutcome::rejected(
                        DeviceErrorCode::BodyTooLarge,
                        413,
                    ));
                response
            }
        }
    }
}

impl<S> tower::Layer<S> for ContentLengthLimit {
    type Service = ContentLengthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContentLengthService {
            inner,
            limit: *self,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ContentLengthService<S> {
    inner: S,
    limit: ContentLengthLimit,
}

impl<S> tower::Service<Request> for ContentLengthService<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limit.check(&request) {
            Some(refusal) => {
                // A lingering close: a client that sends the body anyway gets
                // to finish writing and read the 413, instead of a reset.
                tokio::spawn(discard(request.into_body()));
                Either::Left(futures_util::future::ready(Ok(refusal)))
            }
            None => Either::Right(self.inner.call(request)),
        }
    }
}
