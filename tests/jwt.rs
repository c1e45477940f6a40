//! JWT callers against a loopback OpenID issuer (`common::idp`) whose keys are made here: good
//! tokens answer and are logged as the person; every bad input gets the static token's 401; the
//! key cache survives the issuer going down, picks up a rotation, and bounds a flood of unknown
//! key ids; group policies and required claims are enforced.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::idp::{b64, now, sign_hs256, signing_input, Idp, Key};
use common::{harness, message, send, Harness, Logs, Reply, TOKEN};
use serde_json::{json, Value};

/// What the proxy answers a wrong static token; every refused JWT must get exactly this.
const UNAUTHORIZED: &str = "invalid bearer token: send it as 'Authorization: Bearer <token>' or 'x-api-key: <token>'";

async fn proxy_for(idp: &Idp, extra_issuer: Value, env: &[(&str, &str)]) -> Harness {
    let issuers = idp.issuers_env(extra_issuer);
    let mut all = vec![("OIDC_ISSUERS", issuers.as_str())];
    all.extend_from_slice(env);
    harness(&all).await
}

async fn call(h: &Harness, token: &str, model: &str, max_tokens: u64) -> Reply {
    let mut body = message("hi", false);
    body["model"] = model.into();
    body["max_tokens"] = max_tokens.into();
    let req = Request::builder()
        .method("POST")
        .uri("/v1/messages")
        .header("x-api-key", token)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(&h.app, req).await
}

async fn ask(h: &Harness, token: &str) -> Reply {
    call(h, token, "claude-sonnet-4-5", 64).await
}

fn assert_refused(reply: &Reply) {
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": UNAUTHORIZED}})
    );
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        match v {
            Value::Null => {
                claims.as_object_mut().unwrap().remove(k);
            }
            v => claims[k] = v.clone(),
        }
    }
    claims
}

#[tokio::test]
async fn a_good_token_answers_and_the_log_line_names_the_person() {
    let (rsa, ec) = (Key::rsa("rsa-1", 0), Key::ec("ec-1"));
    let idp = Idp::start(&[&rsa, &ec]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let logs = Logs::default();
    let _guard = logs.capture();
    for (key, who) in [(&rsa, "alice@example.com"), (&ec, "bob@example.com")] {
        let token = key.sign(&idp.claims(who));
        let reply = ask(&h, &token).await;
        assert_eq!(reply.status, 200, "{}: {}", key.alg(), reply.text());
        let request_id = reply.headers["request-id"].to_str().unwrap();
        assert_eq!(logs.request_line(request_id)["caller"], who);
        let all = String::from_utf8(serde_json::to_vec(&logs.lines()).unwrap()).unwrap();
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !all.contains(signature) && !all.contains(&token[..40]),
            "token text in the logs"
        );
    }
    // The static token keeps working beside JWTs, and the key set was read once, at start.
    assert_eq!(ask(&h, TOKEN).await.status, 200);
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn an_expired_token_is_refused_and_the_log_says_why() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let logs = Logs::default();
    let _guard = logs.capture();
    let claims = with(idp.claims("a@example.com"), json!({"exp": now() - 120}));
    let reply = ask(&h, &key.sign(&claims)).await;
    assert_refused(&reply);
    let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
    assert_eq!(line["error"], "jwt refused: expired");
    // Within the leeway (60 s) it still counts as valid.
    let claims = with(idp.claims("a@example.com"), json!({"exp": now() - 20}));
    assert_eq!(ask(&h, &key.sign(&claims)).await.status, 200);
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let claims = with(
        idp.claims("a@example.com"),
        json!({"nbf": now() + 600, "exp": now() + 900}),
    );
    assert_refused(&ask(&h, &key.sign(&claims)).await);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({"audience": ["bedrock-proxy", "other-proxy"]}), &[]).await;
    for aud in [json!("someone-else"), json!(["a", "b"]), json!(null), json!(5)] {
        let claims = with(idp.claims("a@example.com"), json!({ "aud": aud }));
        assert_refused(&ask(&h, &key.sign(&claims)).await);
    }
    // Any one of the configured audiences, alone or in a list, is ours.
    for aud in [json!("other-proxy"), json!(["x", "bedrock-proxy"])] {
        let claims = with(idp.claims("a@example.com"), json!({ "aud": aud }));
        assert_eq!(ask(&h, &key.sign(&claims)).await.status, 200);
    }
}

#[tokio::test]
async fn a_token_from_an_unconfigured_issuer_is_refused_without_any_fetch() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let fetches = idp.jwks_fetches();
    let trailing_slash = format!("{}/", idp.url);
    for iss in [json!("https://evil.example.com"), json!(trailing_slash), json!(null)] {
        let claims = with(idp.claims("a@example.com"), json!({ "iss": iss }));
        assert_refused(&ask(&h, &key.sign(&claims)).await);
    }
    assert_eq!(idp.jwks_fetches(), fetches);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let claims = idp.claims("a@example.com");
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.", signing_input(&json!({"alg": alg, "kid": "rsa-1"}), &claims));
        assert_refused(&ask(&h, &unsigned).await);
        // A real signature behind `none` does not help either.
        let signed = key.sign_with_header(&json!({"alg": alg, "kid": "rsa-1"}), &claims);
        assert_refused(&ask(&h, &signed).await);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (rsa, ec) = (Key::rsa("rsa-1", 0), Key::ec("ec-1"));
    let idp = Idp::start(&[&rsa, &ec]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let fetches = idp.jwks_fetches();
    let claims = idp.claims("a@example.com");
    for key in [&rsa, &ec] {
        let jwk = key.jwk().to_string();
        for secret in [key.public_bytes(), jwk.into_bytes()] {
            for alg in ["HS256", "HS384", "HS512"] {
                let header = json!({"alg": alg, "kid": key.kid(), "typ": "JWT"});
                assert_refused(&ask(&h, &sign_hs256(&header, &claims, &secret)).await);
            }
        }
    }
    // An HMAC token never causes a fetch, whatever its kid.
    let header = json!({"alg": "HS256", "kid": "made-up"});
    assert_refused(&ask(&h, &sign_hs256(&header, &claims, b"x")).await);
    assert_eq!(idp.jwks_fetches(), fetches);
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let (rsa, ec) = (Key::rsa("rsa-1", 0), Key::ec("ec-1"));
    let idp = Idp::start(&[&rsa, &ec]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    for key in [&rsa, &ec] {
        let token = key.sign(&idp.claims("mallory@example.com"));
        let (header, rest) = token.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let forged = with(idp.claims("mallory@example.com"), json!({"email": "ceo@example.com"}));
        let tampered = format!("{header}.{}.{signature}", b64(forged.to_string().as_bytes()));
        assert_refused(&ask(&h, &tampered).await);
        // A signature of the right alg but from the other key, or cut short, is no better.
        let mut cut = token.clone();
        cut.truncate(token.len() - 4);
        assert_refused(&ask(&h, &cut).await);
    }
    // ES256 header on the RSA key's kid: the key decides the algorithm, not the token.
    let mismatched = ec.sign_with_header(&json!({"alg": "ES256", "kid": "rsa-1"}), &idp.claims("a@example.com"));
    assert_refused(&ask(&h, &mismatched).await);
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_costs_one_fetch() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key, &Key::ec("ec-1")]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    assert_eq!(idp.jwks_fetches(), 1);
    let claims = idp.claims("a@example.com");
    for _round in 0..2 {
        let tokens: Vec<String> = (0..40)
            .map(|i| {
                key.sign_with_header(
                    &json!({"alg": "RS256", "kid": format!("unknown-{i}-{}", now())}),
                    &claims,
                )
            })
            .collect();
        let replies = futures_util::future::join_all(tokens.iter().map(|t| ask(&h, t))).await;
        replies.iter().for_each(assert_refused);
    }
    // One refetch for 80 unknown kids: the first asked, the rest joined it or were inside the
    // minute. The discovery document was not read again (its jwks_uri is kept).
    assert_eq!(idp.jwks_fetches(), 2);
    assert_eq!(idp.discovery_fetches(), 1);
    // A token without a kid, when the issuer has several keys, names no key.
    let no_kid = key.sign_with_header(&json!({"alg": "RS256"}), &claims);
    assert_refused(&ask(&h, &no_kid).await);
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn garbage_is_refused_like_a_wrong_token() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let header = b64(br#"{"alg":"RS256","kid":"rsa-1"}"#);
    let long = "A".repeat(6000);
    let garbage = [
        "garbage".to_string(),
        "a.b.c".to_string(),
        "..".to_string(),
        format!("{header}.!!!.sig"),
        format!("{header}.{}.sig", b64(b"not json")),
        format!("{header}.{}.sig", b64(b"[1,2]")),
        format!("{header}.e30.{long}"),
        format!("{}.e30.sig", b64(b"{not json")),
        format!("{}.e30.sig", b64(br#"{"alg":"RS256","crit":["exp"]}"#)),
        format!("eyJ{long}"),
    ];
    for token in &garbage {
        assert_refused(&ask(&h, token).await);
    }
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_issuer_is_down() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    idp.set_down(true);
    let token = key.sign(&idp.claims("a@example.com"));
    for _ in 0..3 {
        assert_eq!(ask(&h, &token).await.status, 200);
    }
    // An unknown kid tries once, fails, and changes nothing for the known key.
    let other = Key::rsa("rsa-2", 1);
    assert_refused(&ask(&h, &other.sign(&idp.claims("a@example.com"))).await);
    assert_eq!(ask(&h, &token).await.status, 200);
    assert!(idp.jwks_fetches() + idp.discovery_fetches() <= 3);
}

#[tokio::test]
async fn an_issuer_down_at_start_is_asked_again_by_the_first_token() {
    let key = Key::ec("ec-1");
    let idp = Idp::start(&[&key]).await;
    idp.set_down(true);
    let h = proxy_for(&idp, json!({}), &[]).await;
    idp.set_down(false);
    assert_eq!(ask(&h, &key.sign(&idp.claims("a@example.com"))).await.status, 200);
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_and_the_withdrawn_key_stops_working() {
    let (old, new) = (Key::rsa("2026-old", 0), Key::rsa("2026-new", 1));
    let idp = Idp::start(&[&old]).await;
    let h = proxy_for(&idp, json!({}), &[]).await;
    let claims = idp.claims("a@example.com");
    assert_eq!(ask(&h, &old.sign(&claims)).await.status, 200);
    idp.publish(&[&new]);
    assert_eq!(ask(&h, &new.sign(&claims)).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 2);
    // The refetched set no longer holds the old key.
    assert_refused(&ask(&h, &old.sign(&claims)).await);
}

fn groups_secret() -> String {
    json!({
        "tokens": {"ops": "static-ops-token-0123456789"},
        "groups": {
            "haiku-users": {"models": ["claude-haiku-*"], "max_tokens": 1000},
            "sonnet-users": {"models": ["claude-sonnet-*"], "max_tokens": 4000},
            "pooled": {"pool": {"daily_tokens": 100}},
            "metered": {"daily_tokens": 100}
        }
    })
    .to_string()
}

#[tokio::test]
async fn a_jwt_caller_gets_the_most_permissive_policy_of_its_groups() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let secret = groups_secret();
    let h = proxy_for(&idp, json!({}), &[("BEARER_TOKEN", &secret)]).await;
    let token = |email: &str, groups: Value| key.sign(&with(idp.claims(email), json!({ "groups": groups })));

    let alice = token("alice@example.com", json!(["haiku-users", "not-ours"]));
    let refused = call(&h, &alice, "claude-sonnet-4-5", 100).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_type(), "permission_error");
    assert_eq!(call(&h, &alice, "claude-haiku-4-5", 1000).await.status, 200);
    assert_eq!(call(&h, &alice, "claude-haiku-4-5", 2000).await.status, 400);

    // Two groups: the union of their models, the larger max_tokens.
    let bob = token("bob@example.com", json!(["haiku-users", "sonnet-users"]));
    assert_eq!(call(&h, &bob, "claude-sonnet-4-5", 4000).await.status, 200);
    assert_eq!(call(&h, &bob, "claude-haiku-4-5", 4000).await.status, 200);
    assert_eq!(call(&h, &bob, "claude-opus-5-5", 100).await.status, 403);

    // In none of the secret's groups, or with no groups claim at all: 403, not 401.
    for carol in [
        token("carol@example.com", json!(["sales"])),
        key.sign(&idp.claims("carol@example.com")),
    ] {
        let reply = call(&h, &carol, "claude-haiku-4-5", 100).await;
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert!(reply.text().contains("none of the groups"), "{}", reply.text());
    }
    // Static tokens keep working beside group policies.
    assert_eq!(
        call(&h, "static-ops-token-0123456789", "claude-opus-5-5", 100)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_issuers_own_groups_apply_to_every_caller_it_signs_for() {
    let key = Key::ec("ec-1");
    let idp = Idp::start(&[&key]).await;
    let secret = groups_secret();
    let h = proxy_for(
        &idp,
        json!({"groups_claim": null, "groups": ["haiku-users"]}),
        &[("BEARER_TOKEN", &secret)],
    )
    .await;
    let token = key.sign(&with(idp.claims("ci@example.com"), json!({"groups": ["sonnet-users"]})));
    assert_eq!(call(&h, &token, "claude-haiku-4-5", 100).await.status, 200);
    // The token's own `groups` claim is not read for this issuer.
    assert_eq!(call(&h, &token, "claude-sonnet-4-5", 100).await.status, 403);
}

#[tokio::test]
async fn required_claims_must_match_and_a_token_without_a_caller_name_is_refused() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let claims_rule = json!({"claims": {"repository_owner": "acme", "ref": ["refs/heads/main", "refs/tags/v*"]}});
    let h = proxy_for(&idp, claims_rule, &[]).await;
    let token = |changes: Value| key.sign(&with(idp.claims("ci@example.com"), changes));

    let good = token(json!({"repository_owner": "acme", "ref": "refs/tags/v1.4.0"}));
    assert_eq!(ask(&h, &good).await.status, 200);
    for (changes, claim) in [
        (
            json!({"repository_owner": "evil", "ref": "refs/heads/main"}),
            "repository_owner",
        ),
        (json!({"repository_owner": "acme", "ref": "refs/heads/feature"}), "ref"),
        (json!({"repository_owner": "acme"}), "ref"),
    ] {
        let reply = ask(&h, &token(changes)).await;
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert_eq!(reply.error_type(), "permission_error");
        assert!(reply.text().contains(claim), "{}", reply.text());
        assert!(
            !reply.text().contains("acme"),
            "the rule's values are not told: {}",
            reply.text()
        );
    }
    let nameless = token(json!({"repository_owner": "acme", "ref": "refs/heads/main", "email": null}));
    let reply = ask(&h, &nameless).await;
    assert_eq!(reply.status, 403);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("\"email\""), "{message}");
}

#[tokio::test]
async fn a_groups_pool_counts_every_members_spend_and_a_member_budget_each_ones_own() {
    let key = Key::rsa("rsa-1", 0);
    let idp = Idp::start(&[&key]).await;
    let secret = groups_secret();
    let h = proxy_for(&idp, json!({}), &[("BEARER_TOKEN", &secret)]).await;
    let jwt = h.state.jwt.as_ref().expect("OIDC_ISSUERS configured");
    let caller = |email: &str, group: &str| {
        let token = key.sign(&with(idp.claims(email), json!({ "groups": [group] })));
        let tokens = &h.state.tokens;
        async move { jwt.authenticate(&token, tokens, None).await.expect("accepted") }
    };
    let budgets = usage_budgets().await;
    // The pool: erin's spend uses up what frank may spend too.
    let (erin, frank) = (
        caller("erin@example.com", "pooled").await,
        caller("frank@example.com", "pooled").await,
    );
    assert_eq!(erin.pools.len(), 1);
    for account in budgets.admit(&erin).await.unwrap() {
        budgets.record_account(&account, 150).await;
    }
    let err = budgets.admit(&frank).await.unwrap_err();
    assert_eq!(err.status_and_type().1, "rate_limit_error");
    assert!(err.to_string().contains("the group \"pooled\""), "{err}");
    // A member budget: each member has their own.
    let (gina, hal) = (
        caller("gina@example.com", "metered").await,
        caller("hal@example.com", "metered").await,
    );
    assert!(gina.pools.is_empty());
    for account in budgets.admit(&gina).await.unwrap() {
        budgets.record_account(&account, 150).await;
    }
    assert!(budgets.admit(&gina).await.is_err());
    assert!(budgets.admit(&hal).await.is_ok());
}

async fn usage_budgets() -> bedrock_anthropic_proxy::usage::budgets::Budgets {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let sdk = common::sdk_config(common::moto::moto()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("usage-jwt-{}-{}", std::process::id(), now());
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .send()
        .await
        .expect("create the usage table in moto");
    bedrock_anthropic_proxy::usage::budgets::Budgets::new(client, table, Duration::from_secs(3600))
}
