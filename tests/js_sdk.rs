//! Element's everyday actions through matrix-js-sdk (npm, tests/npm/element_flow.mjs) against
//! the real server: the SDK's sync loop, rooms, invites, messages, edits, reactions, threads,
//! an image with its thumbnail, search.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn matrix_js_sdk_does_what_element_does() {
    let dir = haven_testkit::outside::node_packages();
    let s = Server::start().await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("element_flow.mjs"))
        .arg(&s.base)
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
