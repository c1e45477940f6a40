//! The `rotate-token` steps against moto: full rotations of plain and JSON secrets.

use super::*;

/// The staging labels of every version, and each version's value (None without one).
#[derive(Debug, PartialEq, Eq)]
struct Versions {
    stages: BTreeMap<String, BTreeSet<String>>,
    values: BTreeMap<String, Option<String>>,
}

impl Versions {
    async fn read(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Self {
        let metadata = sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("DescribeSecret");
        let stages: BTreeMap<String, BTreeSet<String>> = metadata
            .version_ids_to_stages()
            .expect("versions")
            .iter()
            .map(|(id, stages)| (id.clone(), stages.iter().cloned().collect()))
            .collect();
        let mut values = BTreeMap::new();
        for id in stages.keys() {
            let value = sm.get_secret_value().secret_id(name).version_id(id).send().await.ok();
            values.insert(id.clone(), value.and_then(|v| v.secret_string().map(str::to_string)));
        }
        Self { stages, values }
    }

    fn with(&self, stage: &str) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|(_, s)| s.contains(stage))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn value(&self, id: &str) -> &str {
        self.values[id]
            .as_deref()
            .unwrap_or_else(|| panic!("version {id} has no value"))
    }
}

/// What Secrets Manager does before it invokes the rotation function: turn rotation on and
/// create the AWSPENDING version (without a value) under a fresh ClientRequestToken. moto does
/// this in RotateSecret and then invokes the configured Lambda, so a do-nothing Lambda is
/// registered with moto ("use_docker": false) and our steps are run here instead.
async fn start_rotation(sm: &aws_sdk_secretsmanager::Client, name: &str) -> String {
    let function = rotation_function().await;
    let version = version_id();
    sm.rotate_secret()
        .secret_id(name)
        .client_request_token(&version)
        .rotation_lambda_arn(function)
        .rotation_rules(RotationRulesType::builder().automatically_after_days(30).build())
        .send()
        .await
        .expect("RotateSecret");
    let metadata = sm
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .expect("DescribeSecret");
    assert_eq!(metadata.rotation_enabled(), Some(true), "moto marks rotation enabled");
    let stages = &metadata.version_ids_to_stages().expect("versions")[&version];
    assert_eq!(
        stages,
        &["AWSPENDING".to_string()],
        "RotateSecret leaves a pending version"
    );
    version
}

/// Registers (once per moto, idempotently) the do-nothing Lambda moto invokes on RotateSecret,
/// and returns its ARN.
async fn rotation_function() -> &'static str {
    const ROLE: &str = "arn:aws:iam::123456789012:role/rotate-token-test";
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-token-test";
    let config = moto_call(
        None,
        "POST",
        "/moto-api/config",
        "application/json",
        r#"{"lambda": {"use_docker": false}}"#,
    )
    .await;
    assert!(
        (200..300).contains(&config.0),
        "moto-api config: {} {}",
        config.0,
        config.1
    );
    let role = moto_call(
        Some("iam"),
        "POST",
        "/",
        "application/x-www-form-urlencoded",
        "Action=CreateRole&Version=2010-05-08&RoleName=rotate-token-test&AssumeRolePolicyDocument=%7B%7D",
    )
    .await;
    assert!(
        role.0 == 200 || role.1.contains("EntityAlreadyExists"),
        "CreateRole: {} {}",
        role.0,
        role.1
    );
    // An empty zip archive: moto stores the code but never runs it.
    let zip = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
    let body = serde_json::json!({
        "FunctionName": "rotate-token-test",
        "Runtime": "provided.al2023",
        "Role": ROLE,
        "Handler": "bootstrap",
        "Code": {"ZipFile": zip},
    });
    let function = moto_call(
        Some("lambda"),
        "POST",
        "/2015-03-31/functions",
        "application/json",
        &body.to_string(),
    )
    .await;
    assert!(
        function.0 == 201 || function.1.contains("ResourceConflictException") || function.1.contains("already exist"),
        "CreateFunction: {} {}",
        function.0,
        function.1
    );
    FUNCTION
}

/// One HTTP/1.1 request to moto for the services this crate has no SDK for. moto routes by the
/// credential scope of the Authorization header and does not check the signature.
async fn moto_call(service: Option<&str>, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let host = moto().trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connect to moto");
    let mut request = Vec::new();
    let _ = write!(
        request,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    );
    if let Some(service) = service {
        let _ = write!(
            request,
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        );
    }
    let _ = write!(
        request,
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(&request).await.expect("send to moto");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read from moto");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn event(name: &str, version: &str, step: Step) -> RotationEvent {
    let step_name = match step {
        Step::CreateSecret => "createSecret",
        Step::SetSecret => "setSecret",
        Step::TestSecret => "testSecret",
        Step::FinishSecret => "finishSecret",
    };
    // Built from JSON, as the Lambda runtime does, so the field names are tested too.
    serde_json::from_value(serde_json::json!({"Step": step_name, "SecretId": name, "ClientRequestToken": version}))
        .expect("event")
}

const STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];

/// Runs the four steps as Secrets Manager would, each twice: the second run must change nothing.
async fn rotate(
    sm: &aws_sdk_secretsmanager::Client,
    rotator: &Rotator,
    name: &str,
    rotation_token: Option<&str>,
) -> String {
    let version = start_rotation(sm, name).await;
    for step in STEPS {
        let mut event = event(name, &version, step);
        event.rotation_token = rotation_token.map(str::to_string);
        rotator.run(&event).await.unwrap_or_else(|e| panic!("{step:?}: {e}"));
        let after_first = Versions::read(sm, name).await;
        rotator
            .run(&event)
            .await
            .unwrap_or_else(|e| panic!("{step:?} again: {e}"));
        assert_eq!(
            Versions::read(sm, name).await,
            after_first,
            "re-running {step:?} changed the secret"
        );
    }
    version
}

/// After a finished rotation: the new version is AWSCURRENT and nothing else, the old one is
/// AWSPREVIOUS, nothing is AWSPENDING, and every step run again changes nothing.
async fn assert_rotated(sm: &aws_sdk_secretsmanager::Client, rotator: &Rotator, name: &str, version: &str, old: &str) {
    let versions = Versions::read(sm, name).await;
    assert_eq!(versions.with("AWSCURRENT"), [version], "{versions:?}");
    assert_eq!(
        versions.stages[version],
        BTreeSet::from(["AWSCURRENT".to_string()]),
        "{versions:?}"
    );
    assert_eq!(versions.with("AWSPREVIOUS"), [old], "{versions:?}");
    assert!(versions.with("AWSPENDING").is_empty(), "{versions:?}");
    for step in STEPS {
        rotator
            .run(&event(name, version, step))
            .await
            .unwrap_or_else(|e| panic!("{step:?} after finish: {e}"));
    }
    assert_eq!(
        Versions::read(sm, name).await,
        versions,
        "steps after the rotation changed the secret"
    );
}

#[tokio::test]
async fn rotate_token_rotates_a_plain_secret_through_all_four_steps() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());
    let name = unique("rotate-plain");
    let first = token();
    create_secret(&sm, &name, &first).await;
    let first_version = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "0"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(status(&app, &first).await, StatusCode::OK);

    let version = rotate(&sm, &rotator, &name, None).await;
    assert_rotated(&sm, &rotator, &name, &version, &first_version).await;
    let second = Versions::read(&sm, &name).await.value(&version).to_string();
    assert_ne!(second, first);
    assert!(!second.trim_start().starts_with('{'), "a plain secret stays plain");
    assert_eq!(second.len(), 43);

    // The running proxy picks the new token up on its first use; the old one still works.
    assert_eq!(status(&app, &second).await, StatusCode::OK);
    assert_eq!(models(&app, &first, Via::ApiKey).await.status, StatusCode::OK);
    let (fresh, _state) = proxy(moto(), &name, &[]).await;
    assert_eq!(status(&fresh, &second).await, StatusCode::OK);
    assert_eq!(status(&fresh, &first).await, StatusCode::OK);

    // A second rotation retires the first token.
    let next = rotate(&sm, &rotator, &name, None).await;
    assert_rotated(&sm, &rotator, &name, &next, &version).await;
    let third = Versions::read(&sm, &name).await.value(&next).to_string();
    assert_eq!(status(&app, &third).await, StatusCode::OK);
    assert_eq!(status(&app, &second).await, StatusCode::OK);
    assert_eq!(status(&app, &first).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotate_token_rotates_a_json_secret_keeping_the_names_and_policies() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());
    let name = unique("rotate-json");
    let (alice, ci) = (token(), token());
    create_secret(
        &sm,
        &name,
        &serde_json::json!({"tokens": {"alice": alice, "ci": {"token": ci, "models": ["claude-*"], "max_tokens": 64000}}})
            .to_string(),
    )
    .await;
    let first_version = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "0"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;

    // A RotationToken, as Secrets Manager sends for assumed-role rotation, is passed along.
    let version = rotate(&sm, &rotator, &name, Some("rotation-token-from-secrets-manager")).await;
    assert_rotated(&sm, &rotator, &name, &version, &first_version).await;

    let value: Value = serde_json::from_str(Versions::read(&sm, &name).await.value(&version)).expect("JSON stays JSON");
    let tokens = value["tokens"].as_object().expect("a tokens object");
    assert_eq!(tokens.keys().collect::<Vec<_>>(), ["alice", "ci"], "names are kept");
    let new_alice = tokens["alice"].as_str().unwrap();
    let new_ci = tokens["ci"]["token"].as_str().unwrap();
    assert_eq!(
        tokens["ci"]["models"],
        serde_json::json!(["claude-*"]),
        "a caller's policy is kept"
    );
    assert_eq!(tokens["ci"]["max_tokens"], 64000);
    assert!(new_alice.len() >= 43 && new_ci.len() >= 43);
    assert!(new_alice != alice && new_ci != ci && new_alice != new_ci);

    for token in [new_alice, new_ci, &alice, &ci] {
        assert_eq!(status(&app, token).await, StatusCode::OK);
    }
    let (fresh, _state) = proxy(moto(), &name, &[]).await;
    for token in [new_alice, new_ci, &alice, &ci] {
        assert_eq!(status(&fresh, token).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn rotate_token_refuses_secrets_that_are_not_being_rotated() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());

    let name = unique("not-enabled");
    create_secret(&sm, &name, &token()).await;
    let err = rotator
        .run(&event(&name, &version_id(), Step::CreateSecret))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::RotationNotEnabled { .. }), "{err}");

    let name = unique("bad-versions");
    create_secret(&sm, &name, &token()).await;
    let version = start_rotation(&sm, &name).await;
    let err = rotator
        .run(&event(&name, &version_id(), Step::CreateSecret))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::UnknownVersion { .. }), "{err}");

    // A pending value too short to be one of ours fails testSecret, and nothing is promoted.
    sm.put_secret_value()
        .secret_id(&name)
        .client_request_token(&version)
        .secret_string("tiny-sekrit")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue");
    let err = rotator
        .run(&event(&name, &version, Step::TestSecret))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RotationError::TokenTooShort { ref name, len: 11, .. } if name == "default"),
        "{err}"
    );
    assert!(!err.to_string().contains("sekrit"), "{err}");

    // A version that is neither AWSCURRENT nor AWSPENDING (here the old AWSPREVIOUS after an edit).
    let name = unique("not-pending");
    create_secret(&sm, &name, &token()).await;
    let old = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    put_value(&sm, &name, &token()).await;
    start_rotation(&sm, &name).await;
    let err = rotator.run(&event(&name, &old, Step::FinishSecret)).await.unwrap_err();
    assert!(matches!(err, RotationError::NotPending { .. }), "{err}");
}
