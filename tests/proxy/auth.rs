//! Tokens and CORS at the router: nothing reaches Bedrock without a valid token.

use super::*;

#[tokio::test]
async fn no_request_without_a_valid_token_reaches_bedrock() {
    let h = harness(&[]).await;
    for auth in [
        None,
        Some(("authorization", "Bearer wrong")),
        Some(("x-api-key", "wrong")),
        Some(("authorization", TOKEN)),
    ] {
        for (method, uri) in [
            ("POST", "/v1/messages"),
            ("POST", "/v1/messages/count_tokens"),
            ("GET", "/v1/models"),
            ("GET", "/v1/models/claude-sonnet-4-5"),
            ("GET", "/nope"),
        ] {
            let mut req = axum::http::Request::builder().method(method).uri(uri);
            if let Some((k, v)) = auth {
                req = req.header(k, v);
            }
            let reply = send(&h.app, req.body(Body::from(message("hi", false).to_string())).unwrap()).await;
            assert_eq!(reply.status, 401, "{method} {uri} {auth:?}");
            assert_eq!(reply.error_type(), "authentication_error");
            assert!(reply.headers.contains_key("request-id"));
        }
    }
    assert!(h.emulator.requests().is_empty());
    // Both headers work.
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/messages")
        .header("x-api-key", TOKEN)
        .body(Body::from(message("hi", false).to_string()))
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, 200);
    // Health needs no token.
    let health = send(&h.app, axum::http::Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(health.status, 200);
    assert!(health.headers.contains_key("request-id"));
}

#[tokio::test]
async fn cors_headers_only_locally_and_only_when_asked() {
    let preflight = || {
        axum::http::Request::builder()
            .method("OPTIONS")
            .uri("/v1/messages")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let local = harness(&[("CORS_ALLOW_ORIGINS", "https://app.example")]).await;
    let reply = send(&local.app, preflight()).await;
    assert_eq!(reply.headers["access-control-allow-origin"], "https://app.example");

    let lambda = harness(&[
        ("CORS_ALLOW_ORIGINS", "*"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
    ])
    .await;
    let reply = send(&lambda.app, preflight()).await;
    assert!(
        reply.headers.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        reply.headers
    );
    let reply = post(&lambda.app, "/v1/messages", &message("hi", false)).await;
    assert!(reply.headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
}

#[tokio::test]
async fn path_tricks_without_a_token_never_reach_bedrock() {
    let h = harness(&[]).await;
    let paths = [
        "/v1/messages",
        "/v1/messages/",
        "//v1/messages",
        "/v1//messages",
        "/V1/Messages",
        "/v1/./messages",
        "/v1/../v1/messages",
        "/v1/messages%2F",
        "/v1%2Fmessages",
        "/v1/messages%00",
        "/health/../v1/messages",
        "/health/%2e%2e/v1/messages",
        "/./health/../v1/messages",
        "/health/",
        "/HEALTH",
        "/health;/v1/messages",
        "/v1/messages/count_tokens/",
        "/v1/models/../messages",
        "/v1/models/claude-sonnet-4-5/../../messages",
        "/v1/messages?beta=true",
        "/health?next=/v1/messages",
    ];
    let methods = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"];
    for path in paths {
        for method in methods {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(message("hi", false).to_string()))
                .unwrap();
            let reply = send(&h.app, req).await;
            let is_health = path.split('?').next() == Some("/health") && matches!(method, "GET" | "HEAD");
            if is_health {
                assert_eq!(reply.status, 200, "{method} {path}");
            } else {
                assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text());
            }
        }
    }
    assert!(h.emulator.requests().is_empty(), "{:?}", h.emulator.requests());
}
