//! Outside packages some tests need (Node packages, Synapse in a Python virtualenv, commands from
//! Debian's packages), installed on first use so that the README's test command alone is enough
//! on a fresh machine.
//!
//! Tests run in parallel threads and, under nextest, in parallel processes: each installation
//! holds an exclusive file lock while it checks and installs, and records what it installed
//! (a digest of the lockfile or requirements) only once it has finished, so a half-done
//! installation (a killed run) is done again and a changed lockfile is installed anew.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The repository's root (this crate is `appservices/testkit`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// Runs `f` holding an exclusive lock on `<dir>/.install.lock` (across threads and processes).
fn locked<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    std::fs::create_dir_all(dir).expect("a directory for the lock");
    let lock = File::create(dir.join(".install.lock")).expect("the install lock file");
    lock.lock().expect("the install lock");
    let out = f();
    drop(lock);
    out
}

/// A short digest of a file's bytes, to know whether what was installed from it is current.
fn digest(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    // FNV-1a: enough to notice an edited lockfile; not a security check.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn on_path(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

/// Installs Debian's `packages` (as root, with apt-get; otherwise the panic says what to
/// install, and why: `need`).
pub fn apt_install(packages: &[&str], need: &str) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(
        root && on_path("apt-get"),
        "{need}: install Debian's {packages:?}"
    );
    locked(&std::env::temp_dir().join("haven-tests-apt"), || {
        run(
            Command::new("apt-get").args(["update", "-q"]),
            "apt-get update",
        );
        run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get install",
        );
    });
}

/// Makes sure `command` is on the PATH, installing Debian's `packages` when it is missing.
pub fn debian_command(command: &str, packages: &[&str]) {
    if on_path(command) {
        return;
    }
    locked(&std::env::temp_dir().join("haven-tests-commands"), || {
        if !on_path(command) {
            apt_install(packages, &format!("this test needs `{command}`"));
        }
    });
    assert!(on_path(command), "{packages:?} installed no `{command}`");
}

/// `tests/npm` with its `node_modules` installed from `package-lock.json` (matrix-js-sdk,
/// matrix-bot-sdk): the directory to run its scripts in with `node`.
pub fn node_packages() -> PathBuf {
    debian_command("node", &["nodejs"]);
    debian_command("npm", &["npm"]);
    let dir = repo_root().join("tests/npm");
    let want = digest(&dir.join("package-lock.json"));
    let marker = dir.join("node_modules/.haven-installed");
    locked(&dir, || {
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
            return;
        }
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir),
            "npm ci in tests/npm",
        );
        std::fs::write(&marker, &want).expect("the install marker");
    });
    dir
}

/// The Python of `tests/synapse/.venv`, with Synapse installed from the pinned requirements.
pub fn synapse_python() -> PathBuf {
    debian_command("python3", &["python3", "python3-venv"]);
    let dir = repo_root().join("tests/synapse");
    let venv = dir.join(".venv");
    let want = digest(&dir.join("requirements.txt"));
    let marker = venv.join(".haven-installed");
    locked(&dir, || {
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
            return;
        }
        let make_venv = || {
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !make_venv() {
            // Debian's own python3 makes virtualenvs only with python3-venv.
            apt_install(&["python3-venv"], "python3 cannot make a virtualenv");
            assert!(make_venv(), "python3 cannot make a virtualenv");
        }
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(dir.join("requirements.txt")),
            "installing Synapse into tests/synapse/.venv",
        );
        std::fs::write(&marker, &want).expect("the install marker");
    });
    venv.join("bin/python")
}
