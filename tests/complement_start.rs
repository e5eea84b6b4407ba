//! `complement/start.sh`, the entry point of the Complement image, run outside Docker: with a
//! CA like Complement's it must start Haven with the client API in plain HTTP and federation
//! over TLS with a certificate for the server's name that the CA vouches for.

mod common;

use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn the_complement_entry_point_starts_a_federating_haven() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Complement test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    std::fs::write(ca_dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(ca_dir.join("ca.key"), key.serialize_pem()).unwrap();

    haven_testkit::outside::debian_command("openssl", &["openssl"]);
    let (client_port, fed_port) = (common::Port::new(), common::Port::new());
    let (client, fed) = (client_port.port(), fed_port.port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/complement/start.sh");
    let mut child = haven_testkit::spawn_on(
        Command::new("sh")
            .arg(script)
            .env("SERVER_NAME", format!("localhost:{fed}"))
            .env("COMPLEMENT_CA_DIR", &ca_dir)
            .env("START_DATA_DIR", dir.path().join("data"))
            .env("START_CLIENT_PORT", client.to_string())
            .env("START_FEDERATION_PORT", fed.to_string())
            .env("START_LISTEN_HOST", "127.0.0.1")
            .env("START_BIN", env!("CARGO_BIN_EXE_haven"))
            .env("START_LOG", "warn")
            .stdout(Stdio::null()),
        &[&client_port, &fed_port],
    )
    .unwrap();
    haven_testkit::wait_started(
        &mut child,
        "complement/start.sh",
        &format!("http://127.0.0.1:{client}/_matrix/client/versions"),
    )
    .await;
    // Federation: HTTPS with a certificate for the name, trusted through the CA alone.
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], fed).into())
        .build()
        .unwrap();
    let keys = tls
        .get(format!("https://localhost:{fed}/_matrix/key/v2/server"))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let keys: serde_json::Value = keys.expect("federation over TLS").json().await.unwrap();
    assert_eq!(keys["server_name"], format!("localhost:{fed}"), "{keys}");
}
