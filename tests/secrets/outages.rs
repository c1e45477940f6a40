//! Secrets Manager unreachable, after start and before it.

use super::*;

#[tokio::test]
async fn known_tokens_keep_working_when_secrets_manager_goes_away() {
    let logs = Logs::default();
    let _guard = logs.capture_all();
    let sm = secrets().await;
    let name = unique("goes-away");
    let good = token();
    create_secret(&sm, &name, &good).await;
    let mut forwarder = Forwarder::start(0).await;
    let (app, _state) = proxy(
        &forwarder.url(),
        &name,
        &[("TOKEN_REFRESH_SECONDS", "1"), ("TOKEN_MISS_REFRESH_SECONDS", "1")],
    )
    .await;
    assert_eq!(status(&app, &good).await, StatusCode::OK);

    forwarder.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // This request finds the tokens stale and starts a background re-read, which fails.
    assert_eq!(status(&app, &good).await, StatusCode::OK);
    assert_eq!(status(&app, &token()).await, StatusCode::UNAUTHORIZED);

    let deadline = Instant::now() + Duration::from_secs(20);
    let warned = loop {
        let warning = logs.lines().into_iter().find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("keeping the last good ones"))
        });
        if warning.is_some() || Instant::now() > deadline {
            break warning;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let warned = warned.expect("a warning that the re-read failed");
    assert!(warned["error"].as_str().is_some_and(|e| !e.is_empty()), "{warned}");
    assert_eq!(status(&app, &good).await, StatusCode::OK, "known tokens keep working");
    assert_eq!(models(&app, &good, Via::ApiKey).await.status, StatusCode::OK);
}

#[tokio::test]
async fn no_request_gets_through_until_the_first_read_succeeds() {
    let sm = secrets().await;
    let name = unique("unreachable-at-start");
    let good = token();
    create_secret(&sm, &name, &good).await;
    let port = closed_port();
    let (app, _state) = proxy(
        &format!("http://127.0.0.1:{port}"),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1")],
    )
    .await;

    for (token, via) in [
        (good.as_str(), Via::Bearer),
        (good.as_str(), Via::ApiKey),
        ("some-other-token", Via::Bearer),
    ] {
        let reply = models(&app, token, via).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{via:?}: {}", reply.body);
        assert_eq!(reply.error_type(), "api_error");
        let message = reply.error_message();
        assert!(
            message.contains("token store") && message.contains("unavailable"),
            "{message}"
        );
    }

    // Secrets Manager comes back on the same address: the first request once the rate limit
    // allows another read reads and succeeds.
    let _forwarder = Forwarder::start(port).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&app, &good).await, StatusCode::OK);
    assert_eq!(status(&app, "some-other-token").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_at_cold_start_costs_at_most_two_reads_for_300_requests_and_lets_none_in() {
    for outage in [Outage::Hang, Outage::Error] {
        let down = DownSecretsManager::start(outage).await;
        // Without a bound on the call, start-up itself would wait forever on a hung one.
        let (app, _state) = tokio::time::timeout(
            Duration::from_secs(30),
            proxy(&down.url(), "bedrock-proxy/tokens", &[("TOKEN_READ_TIMEOUT_MS", "500")]),
        )
        .await
        .expect("start-up must not wait on a hung Secrets Manager");
        assert_eq!(down.get_secret_value_calls(), 1, "{outage:?}: the cold-start read");

        const FLOOD: usize = 300;
        let started = Instant::now();
        let requests: Vec<_> = (0..FLOOD)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { models(&app, &token(), Via::Bearer).await })
            })
            .collect();
        // Generous bound, for a loaded machine: each caller waits at most for the one read in
        // flight (0.5 s); callers queued behind a lock, one hung read each, would take minutes.
        let replies = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(requests))
            .await
            .expect("no caller may wait on a hung Secrets Manager for long");
        let took = started.elapsed();
        for reply in replies {
            let reply = reply.expect("request task");
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{outage:?}: {}",
                reply.body
            );
            assert_eq!(reply.error_type(), "api_error");
        }
        let calls = down.get_secret_value_calls();
        println!(
            "{outage:?}: {FLOOD} concurrent requests during the outage; {calls} GetSecretValue calls in all, \
             answered in {took:?}"
        );
        assert!(
            calls <= 2,
            "{outage:?}: {FLOOD} requests during an outage caused {calls} GetSecretValue calls; at most 2 expected"
        );
        // Within TOKEN_MISS_REFRESH_SECONDS (30 s by default) no request causes another read.
        assert_eq!(status(&app, &token()).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.get_secret_value_calls(), calls, "{outage:?}");
    }
}
