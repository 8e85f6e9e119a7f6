//! Values that must never reach a log, an error message or a command line.
//!
//! [`Secret`] wraps a value so that `{}` and `{:?}` print `***`. The only way
//! to get at the value is the explicitly named [`Secret::expose`] (or
//! [`Secret::into_exposed`]), which makes every use easy to find with grep.
//! It deliberately does not implement `Serialize`: writing a secret anywhere
//! must be a visible decision at the call site.
//!
//! [`Password`] is a `Secret<String>` with a generator that reads the kernel's
//! random source.

use std::fmt;
use std::io;

/// A value whose `Debug` and `Display` output is `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

/// A password: a secret string.
pub type Password = Secret<String>;

const REDACTED: &str = "***";

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value. Name chosen so every use stands out in review.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// Number of characters in a generated password. Each character carries
/// log2(62) ≈ 5.95 bits, so 32 characters give ≈ 190 bits (well above 128).
pub const PASSWORD_LEN: usize = 32;

/// The password alphabet: ASCII letters and digits only, so a password can sit
/// unquoted in a libpq connection string, a URL, a shell word or YAML.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Largest multiple of the alphabet size that fits in a byte; random bytes at
/// or above it are discarded so every character is equally likely.
const UNBIASED_LIMIT: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;

impl Secret<String> {
    /// Generates a fresh random password of [`PASSWORD_LEN`] alphanumerics
    /// from the kernel's CSPRNG (`getrandom(2)`).
    pub fn generate() -> io::Result<Password> {
        let mut password = String::with_capacity(PASSWORD_LEN);
        let mut buffer = [0u8; 64];
        while password.len() < PASSWORD_LEN {
            fill_random(&mut buffer)?;
            let usable = buffer.iter().filter(|&&byte| byte < UNBIASED_LIMIT);
            for &byte in usable.take(PASSWORD_LEN - password.len()) {
                password.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
        buffer.fill(0);
        Ok(Secret(password))
    }
}

/// Fills `buffer` from `getrandom(2)`, which blocks only until the kernel's
/// pool is first seeded (relevant on a freshly booted machine).
pub fn fill_random(buffer: &mut [u8]) -> io::Result<()> {
    use nix::libc;
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: `rest` is a valid, writable slice of `rest.len()` bytes for
        // the whole call; getrandom writes at most that many bytes into it.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += got as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_do_not_leak() {
        let secret = Secret::new("hunter2hunter2".to_string());
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2hunter2");
    }

    #[test]
    fn generated_password_has_expected_length_and_charset() {
        let password = Password::generate().unwrap();
        assert_eq!(password.expose().len(), PASSWORD_LEN);
        assert!(password.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn generated_password_carries_at_least_128_bits() {
        let bits = PASSWORD_LEN as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 128.0, "only {bits} bits");
    }

    #[test]
    fn two_generated_passwords_differ() {
        let first = Password::generate().unwrap();
        let second = Password::generate().unwrap();
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn generated_password_does_not_leak_through_formatting() {
        let password = Password::generate().unwrap();
        assert_eq!(format!("{password} {password:?}"), "*** ***");
    }

    #[test]
    fn alphabet_is_unbiased_modulo() {
        assert_eq!(ALPHABET.len(), 62);
        assert_eq!(UNBIASED_LIMIT, 248);
    }
}
