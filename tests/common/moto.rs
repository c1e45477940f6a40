//! moto_server for the tests that need AWS services besides Bedrock (Secrets Manager,
//! DynamoDB): `MOTO_ENDPOINT` (e.g. `http://127.0.0.1:5000`) points at a running one; without
//! it, one is started from `.venv/bin/moto_server` for the test binary and stopped with it.

use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Moto {
    endpoint: String,
    // The shell that started moto. Its stdin stays open for the life of the test binary; when
    // it closes, the shell kills moto (see `start_moto`).
    _shell: Option<Mutex<std::process::Child>>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// moto's URL, e.g. `http://127.0.0.1:5000`.
pub fn moto() -> &'static str {
    &MOTO
        .get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
            Ok(url) if !url.trim().is_empty() => Moto {
                endpoint: url.trim().trim_end_matches('/').to_string(),
                _shell: None,
            },
            _ => start_moto(),
        })
        .endpoint
}

fn start_moto() -> Moto {
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server");
    assert!(
        std::path::Path::new(server).exists(),
        "MOTO_ENDPOINT is not set and {server} does not exist; create the venv with moto[server] or start moto_server and export MOTO_ENDPOINT"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // The shell waits on its stdin, which only this process holds: when the test binary exits
    // (however it exits), the pipe closes, `read` returns and moto is killed.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
        .arg(server)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _shell: Some(Mutex::new(child)),
    }
}

/// A name no other test (or test process) uses: moto's state outlives a test run.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A fresh budgets table in moto's DynamoDB, shaped as Terraform creates it (pk, sk).
pub async fn usage_table() -> (aws_sdk_dynamodb::Client, String) {
    let sdk = super::sdk_config(moto()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique("usage");
    let key = |name: &str, kind| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(key("pk", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("sk", aws_sdk_dynamodb::types::KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .send()
        .await
        .expect("create the usage table in moto");
    (client, table)
}
