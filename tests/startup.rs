//! Starting the server as an operator or a service manager does: port 0 and the address it got,
//! `--version`, and a stray `HAVEN_*` environment variable named in the error.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

fn config(dir: &std::path::Path, address: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "server_name = \"localhost\"\n[listen]\naddress = \"{address}\"\n[database]\npath = \"{}\"\n[logging]\nlevel = \"warn\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn port_zero_binds_a_free_port_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--config")
        .arg(config(dir.path(), "127.0.0.1:0"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(haven_testkit::START_DEADLINE)
        .expect("a line saying where the server listens");
    let addr = line
        .strip_prefix("listening listen.address ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    haven_testkit::wait_started(
        &mut child,
        "haven",
        &format!("http://{addr}/_matrix/client/versions"),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn version_and_a_stray_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("haven {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--config")
        .arg(config(dir.path(), "127.0.0.1:0"))
        .env("HAVEN_HOME", "/home/someone")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable HAVEN_HOME") && err.contains("unknown field `home`"),
        "{err}"
    );
}
