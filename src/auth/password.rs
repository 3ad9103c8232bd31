//! Password hashing with argon2id. Hashing costs tens of milliseconds and its
//! full memory cost, so it runs on threads of its own ([`super::hashing_pool`])
//! and neither a socket task nor a store read ever waits on it.
//!
//! Parameters come from config (`argon2_memory_kib`, `argon2_iterations`,
//! `argon2_parallelism`); the defaults are OWASP's argon2id recommendation
//! (19 MiB, 2 passes, 1 lane). Hashes are PHC strings that carry their own
//! parameters, so changing the config does not invalidate stored hashes.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use super::hashing_pool::HashingPool;
use crate::error::{Error, Result};

/// Hashes and verifies passwords off the async workers.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    threads: HashingPool,
    /// A hash of a random password, verified against for unknown users so a
    /// wrong username costs as much time as a wrong password.
    decoy: Arc<String>,
}

impl PasswordHashing {
    /// Builds the hasher; fails on parameters argon2 refuses.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let decoy = hash_with(&params, &super::random_token(24))?;
        crate::memory::release_freed();
        let threads = crate::pool_sizes::PoolSizes::of_this_machine().hashing_threads;
        Ok(PasswordHashing {
            params,
            threads: HashingPool::start(threads)?,
            decoy: Arc::new(decoy),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let params = self.params.clone();
        let password = password.to_string();
        self.blocking(move || hash_with(&params, &password)).await
    }

    /// Whether `password` matches `hash`. `None` verifies against a decoy and
    /// returns false, taking the same time as a real check.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.decoy.as_str().to_string(), str::to_string);
        let password = password.to_string();
        let matched = self
            .blocking(move || {
                Ok(argon2()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok())
            })
            .await?;
        Ok(known && matched)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.threads
            .run(|| {
                let result = job();
                // The argon2 block was freed on this thread, which may idle now.
                crate::memory::release_freed();
                result
            })
            .await
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

fn hash_with(params: &Params, password: &str) -> Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoys_fail() {
        let hashing = PasswordHashing::new(8192, 1, 1).unwrap();
        let hash = hashing.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert!(hashing.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hashing.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!hashing.verify("correct horse", None).await.unwrap());
        assert!(!hashing.verify("x", Some("not a phc string")).await.unwrap());
    }
}
