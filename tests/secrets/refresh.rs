//! Reading and refreshing the token secret: cold start, console edits, periodic and on-miss
//! re-reads, a flood of bad tokens, named callers in the logs.

use super::*;

#[tokio::test]
async fn cold_start_reads_the_token_and_refuses_others() {
    let sm = secrets().await;
    let name = unique("cold-start");
    let good = token();
    create_secret(&sm, &name, &good).await;

    let (app, _state) = proxy(moto(), &name, &[]).await;

    assert_eq!(models(&app, &good, Via::Bearer).await.status, StatusCode::OK);
    assert_eq!(models(&app, &good, Via::ApiKey).await.status, StatusCode::OK);
    for via in [Via::Bearer, Via::ApiKey] {
        let wrong = models(&app, &token(), via).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{via:?}");
        assert_eq!(wrong.body["type"], "error");
        assert_eq!(wrong.error_type(), "authentication_error", "{via:?}");
    }
}

#[tokio::test]
async fn a_console_edit_works_within_seconds_and_the_previous_token_survives_one_edit() {
    let sm = secrets().await;
    let name = unique("console-edit");
    let (first, second, third) = (token(), token(), token());
    create_secret(&sm, &name, &first).await;
    // Periodic refresh far away: only the on-miss re-read can pick up the edits.
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(status(&app, &first).await, StatusCode::OK);

    put_value(&sm, &name, &second).await;
    // Within about a second (the miss rate limit); the margin is for a busy moto.
    let took = accepted_within(&app, &second, Duration::from_secs(10)).await;
    println!("a console edit was accepted after {took:?}");
    assert!(took.is_some(), "the new token was not accepted within 10 s");
    assert_eq!(
        status(&app, &first).await,
        StatusCode::OK,
        "AWSPREVIOUS must still be accepted"
    );

    put_value(&sm, &name, &third).await;
    assert!(accepted_within(&app, &third, Duration::from_secs(10)).await.is_some());
    assert_eq!(
        status(&app, &second).await,
        StatusCode::OK,
        "the new AWSPREVIOUS must be accepted"
    );
    let oldest = models(&app, &first, Via::Bearer).await;
    assert_eq!(oldest.status, StatusCode::UNAUTHORIZED, "two edits ago must be refused");
    assert_eq!(oldest.error_type(), "authentication_error");
}

#[tokio::test]
async fn periodic_refresh_picks_up_a_change_without_any_miss_refresh() {
    let sm = secrets().await;
    let name = unique("periodic");
    let (old, new) = (token(), token());
    create_secret(&sm, &name, &old).await;
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_REFRESH_SECONDS", "1"), ("TOKEN_MISS_REFRESH_SECONDS", "3600")],
    )
    .await;

    put_value(&sm, &name, &new).await;
    // Right after start the miss re-read is rate-limited for an hour, so this must fail...
    assert_eq!(status(&app, &new).await, StatusCode::UNAUTHORIZED);
    // ...and only the periodic re-read (every second, started by any request) can let it in.
    let took = accepted_within(&app, &new, Duration::from_secs(10)).await;
    println!("the periodic refresh picked up a change after {took:?}");
    assert!(
        took.is_some(),
        "a changed value was not picked up by the periodic refresh within 10 s"
    );
    assert_eq!(status(&app, &old).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_tokens_reads_the_secret_a_bounded_number_of_times() {
    let sm = secrets().await;
    let name = unique("flood");
    let (old, good) = (token(), token());
    create_secret(&sm, &name, &old).await;
    put_value(&sm, &name, &good).await; // so that each read is two calls (AWSCURRENT + AWSPREVIOUS)
    let forwarder = Forwarder::start(0).await;
    let (app, _state) = proxy(
        &forwarder.url(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(
        forwarder.get_secret_value_calls(),
        2,
        "the cold-start read is AWSCURRENT + AWSPREVIOUS"
    );
    // Past the miss rate limit, so the flood may (and should) cause one re-read.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    const FLOOD: usize = 300;
    let started = Instant::now();
    let requests: Vec<_> = (0..FLOOD)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { status(&app, &token()).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("request task"), StatusCode::UNAUTHORIZED);
    }
    let flood_took = started.elapsed();
    let calls = forwarder.get_secret_value_calls() - 2;
    println!("{FLOOD} concurrent bad tokens caused {calls} GetSecretValue calls in {flood_took:?}");
    assert!(
        calls >= 2,
        "the first miss after the rate limit should re-read the secret (saw {calls} calls)"
    );
    assert!(
        calls <= 4,
        "{FLOOD} bad tokens caused {calls} GetSecretValue calls; at most 2 reads (4 calls) expected"
    );
    assert_eq!(status(&app, &good).await, StatusCode::OK);
}

#[tokio::test]
async fn named_callers_are_logged_by_name_and_tokens_never_are() {
    let logs = Logs::default();
    let _guard = logs.capture_all();
    let sm = secrets().await;
    let name = unique("named");
    let (alice, ci) = (token(), token());
    let secret = serde_json::json!({"tokens": {"alice": alice, "ci": ci}}).to_string();
    create_secret(&sm, &name, &secret).await;
    let (app, _state) = proxy(moto(), &name, &[]).await;

    assert_eq!(status(&app, &alice).await, StatusCode::OK);
    assert_eq!(models(&app, &ci, Via::ApiKey).await.status, StatusCode::OK);
    let stranger = token();
    assert_eq!(status(&app, &stranger).await, StatusCode::UNAUTHORIZED);

    let callers: Vec<(String, u64)> = logs
        .requests()
        .iter()
        .map(|l| {
            (
                l["caller"].as_str().unwrap_or_default().to_string(),
                l["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        callers,
        [
            ("alice".to_string(), 200),
            ("ci".to_string(), 200),
            ("-".to_string(), 401)
        ],
        "one line per request naming the caller"
    );
    let text = logs.text();
    assert!(
        text.contains("bearer tokens loaded from secrets manager"),
        "the cold-start read is logged"
    );
    for (who, value) in [("alice", &alice), ("ci", &ci), ("the stranger", &stranger)] {
        assert!(!text.contains(value.as_str()), "the token of {who} appears in the logs");
    }
}
