//! argon2id password hashing, run on the blocking pool (it is slow on purpose).

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Hashes computed at once: one per core. Each argon2 hash works in 19 MiB; without a bound a
/// burst of logins would run one per blocking thread (up to 512: ~10 GB) and the allocator
/// would keep what they used. Waiting for a permit costs no more than the hash would have,
/// since the cores are busy anyway.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Runs one argon2 computation on the blocking pool, at most [`HASHING`] at a time.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _permit = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::internal)?
}

/// Longest password accepted, in bytes: anything longer is no stronger and only costs hashing
/// time (a 1 MB "password" would be hashed on every attempt).
pub const MAX_PASSWORD_BYTES: usize = 512;

/// Whether `password` may be set: at most [`MAX_PASSWORD_BYTES`] (else 400 `M_INVALID_PARAM`)
/// and not empty (else 400 `M_WEAK_PASSWORD`).
pub fn acceptable(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid_param(format!(
            "A password may be at most {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    if password.is_empty() {
        return Err(Error::bad_request(
            crate::error::ErrCode::WeakPassword,
            "The password is empty",
        ));
    }
    Ok(())
}

/// Hashes a new password; one over [`MAX_PASSWORD_BYTES`] is refused (400 `M_INVALID_PARAM`)
/// and an empty one is too weak (400 `M_WEAK_PASSWORD`).
pub async fn hash(password: String) -> Result<String> {
    acceptable(&password)?;
    hashing(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::internal)
    })
    .await
}

/// Whether `password` matches; one longer than any accepted password never does (and is not
/// hashed).
pub async fn verify(password: String, stored: String) -> Result<bool> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    hashing(move || {
        let parsed = PasswordHash::new(&stored).map_err(Error::internal)?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}
