//! `cargo run --release` builds Haven alone; `cargo build --release --workspace` builds it with
//! the appservices and the test kit. Cargo turns on, in each crate, the features asked for by the
//! packages being built, so when another member asks for more of a crate Haven also uses, the two
//! commands build that crate (and everything above it, Haven included) differently, and each
//! switch rebuilds them. Haven's Cargo.toml asks for those features too; this test fails, naming
//! the crate and the missing features, when that list falls behind.

use std::{collections::BTreeMap, process::Command};

/// `crate version` -> its features, as Cargo resolves them for the packages selected by `args`.
fn resolved(args: &[&str]) -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "--locked", "-e", "normal,build"])
        .args(["--prefix", "none", "-f", "{p} {f}"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with("(*)"))
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let (name, version) = (parts.next()?, parts.next()?);
            let features = parts.next().filter(|f| !f.starts_with('(')).unwrap_or("");
            Some((format!("{name} {version}"), features.to_owned()))
        })
        .collect()
}

#[test]
fn the_server_builds_alike_alone_and_with_the_workspace() {
    let alone = resolved(&["-p", "haven"]);
    let whole = resolved(&["--workspace"]);
    let differ: Vec<String> = alone
        .iter()
        .filter_map(|(krate, features)| {
            let other = whole.get(krate)?;
            (other != features)
                .then(|| format!("{krate}: alone [{features}], with the workspace [{other}]"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "ask for these features in Haven's Cargo.toml too:\n{}",
        differ.join("\n")
    );
}
