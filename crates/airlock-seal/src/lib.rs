//! Sealed secrets: the real upstream credentials, encrypted at rest.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per seal (random nonces are safe at this size),
//! and the secret's name and environment as associated data, so a ciphertext moved to another
//! row of the store fails to open instead of injecting the wrong credential. The master key lives
//! in a file created with mode 0600 or in `AIRLOCK_MASTER_KEY`, never in the store.

use airlock_core::Secret;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that can carry the master key (64 hex characters).
pub const KEY_ENV: &str = "AIRLOCK_MASTER_KEY";

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file does not exist.
    // A new key cannot open what the old one sealed, so the way out is the backup, not `init`
    // (which also refuses to run over an existing airlock.toml).
    #[error("master key file `{0}` is missing; sealed secrets open only with the key that sealed them, so restore that file from your backup (or set {KEY_ENV} to its 64 hex characters). Only a brand-new installation with no sealed secrets should run `airlock init` to create a key")]
    Missing(PathBuf),
    /// The key file could not be read or written.
    #[error("cannot access master key file `{path}`: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error, said in the message and not chained as a source, so that error
        /// printers that walk the chain say it once.
        error: std::io::Error,
    },
    /// The key file or variable does not hold 64 hex characters.
    #[error("master key from {0} is not 64 hex characters (32 bytes); restore the key file from your backup, or fix the variable")]
    Format(String),
    /// The key file can be read by other users.
    #[error("master key file `{0}` is readable by other users; run `chmod 600` on it")]
    Permissions(PathBuf),
    /// The file already exists and would be overwritten.
    #[error("master key file `{0}` already exists; refusing to overwrite it (secrets sealed with it would be lost)")]
    Exists(PathBuf),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Why a sealed secret could not be opened or sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Wrong key, or the ciphertext or its name/environment binding was altered.
    #[error("sealed secret does not open with this master key (wrong key, or the stored ciphertext was altered or moved)")]
    Open,
    /// Encryption failed (only on a broken random source).
    #[error("sealing failed")]
    Seal,
}

/// The 256-bit key that seals upstream secrets.
pub struct MasterKey(Secret<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.id())
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<MasterKey, KeyError> {
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).map_err(|_| KeyError::Random)?;
        Ok(MasterKey(Secret::new(k)))
    }

    fn from_hex(s: &str, source: &str) -> Result<MasterKey, KeyError> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut k).map_err(|_| KeyError::Format(source.to_string()))?;
        Ok(MasterKey(Secret::new(k)))
    }

    /// Loads the key from `AIRLOCK_MASTER_KEY` if set, else from `path`, refusing a key file
    /// that other users can read.
    pub fn load(path: &Path) -> Result<MasterKey, KeyError> {
        // An empty variable counts as unset, so `AIRLOCK_MASTER_KEY=` cannot shadow the key file.
        if let Some(v) = std::env::var(KEY_ENV).ok().filter(|v| !v.trim().is_empty()) {
            return MasterKey::from_hex(&v, KEY_ENV);
        }
        let io = |error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing(path.to_path_buf()))
            }
            Err(e) => return Err(io(e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(KeyError::Permissions(path.to_path_buf()));
            }
        }
        let _ = meta;
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        MasterKey::from_hex(&text, &format!("`{}`", path.display()))
    }

    /// Writes the key to a new file with mode 0600; never overwrites.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_path_buf())
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    error: e,
                }
            }
        })?;
        let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(self.0.expose())));
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|error| KeyError::Io {
                path: path.to_path_buf(),
                error,
            })
    }

    /// A public fingerprint of the key (16 hex characters), stored beside each sealed secret so a
    /// wrong key is reported as such.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"airlock-key-id");
        h.update(self.0.expose());
        hex::encode(&h.finalize()[..8])
    }

    /// Encrypts `plaintext`, bound to `context` (the secret's name and environment).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
        let cipher = XChaCha20Poly1305::new(self.0.expose().into());
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).map_err(|_| SealError::Seal)?;
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Seal)?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Decrypts a sealed secret; fails if the key or the `context` differ from sealing time.
    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Secret<Vec<u8>>, SealError> {
        let cipher = XChaCha20Poly1305::new(self.0.expose().into());
        cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map(Secret::new)
            .map_err(|_| SealError::Open)
    }
}

/// A secret as stored: nonce and ciphertext (with its authentication tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The random per-seal nonce.
    pub nonce: [u8; 24],
    /// Ciphertext followed by the 16-byte Poly1305 tag.
    pub ciphertext: Vec<u8>,
}

/// The associated data that binds a sealed secret to its name and environment.
pub fn context(name: &str, env: &str) -> Vec<u8> {
    format!("airlock-secret-v1\0{name}\0{env}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_its_own_name_and_environment() {
        let k = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let s = k
            .seal(&context("db", "production"), b"pg-password")
            .unwrap();
        assert_eq!(
            k.open(&context("db", "production"), &s).unwrap().expose(),
            b"pg-password"
        );
        assert!(other.open(&context("db", "production"), &s).is_err());
        assert!(k.open(&context("db", "staging"), &s).is_err());
        assert!(k.open(&context("api", "production"), &s).is_err());
    }

    #[test]
    fn the_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("airlock.key");
        let k = MasterKey::generate().unwrap();
        k.write_new(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(MasterKey::load(&p), Err(KeyError::Permissions(_))));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(MasterKey::load(&p).unwrap().id(), k.id());
        assert!(matches!(k.write_new(&p), Err(KeyError::Exists(_))));
    }

    #[test]
    fn debug_output_shows_only_the_key_id() {
        let k = MasterKey::generate().unwrap();
        let d = format!("{k:?}");
        assert!(d.contains(&k.id()));
        assert!(!d.contains(&hex::encode(k.0.expose())));
    }

    proptest! {
        #[test]
        fn flipping_any_ciphertext_bit_makes_opening_fail(msg in proptest::collection::vec(any::<u8>(), 0..64), bit in 0usize..1000) {
            let k = MasterKey::generate().unwrap();
            let mut s = k.seal(b"ctx", &msg).unwrap();
            let i = bit % (s.ciphertext.len() * 8);
            s.ciphertext[i / 8] ^= 1 << (i % 8);
            prop_assert!(k.open(b"ctx", &s).is_err());
        }
    }
}
