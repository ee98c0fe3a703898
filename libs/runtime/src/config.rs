//! Reading configuration from the environment (twelve-factor): typed values with defaults, and
//! errors that name the variable, so a missing or malformed value stops a service at start with
//! a message an operator can act on.

use std::fmt::Display;
use std::str::FromStr;

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("{name} is not set: {hint}")]
    Missing {
        /// The variable's name.
        name: String,
        /// What the variable is for and how to set it.
        hint: String,
    },
    /// A variable is set but cannot be parsed.
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: String,
        /// The value found.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Reads a variable through a lookup function (the environment in binaries, a map in tests).
pub trait Env {
    /// The value of `name`, `None` when unset. Empty values count as unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// An optional variable, parsed.
///
/// # Errors
/// [`ConfigError::Invalid`] when the variable is set but does not parse.
pub fn optional<T>(env: &impl Env, name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    env.get(name)
        .map(|raw| {
            raw.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
                name: name.to_string(),
                value: raw.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// A variable with a default when unset.
///
/// # Errors
/// [`ConfigError::Invalid`] when the variable is set but does not parse.
pub fn or_default<T>(env: &impl Env, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(optional(env, name)?.unwrap_or(default))
}

/// A required variable.
///
/// # Errors
/// [`ConfigError::Missing`] (with `hint`) when unset, [`ConfigError::Invalid`] when malformed.
pub fn required<T>(env: &impl Env, name: &str, hint: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    optional(env, name)?.ok_or_else(|| ConfigError::Missing {
        name: name.to_string(),
        hint: hint.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn missing_required_value_names_the_variable() {
        let err = required::<String>(&env(&[]), "JT_SECRET_KEY", "32 bytes, base64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "JT_SECRET_KEY is not set: 32 bytes, base64"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(optional::<u32>(&env(&[("N", "  ")]), "N").unwrap(), None);
    }

    #[test]
    fn malformed_value_names_the_variable_and_value() {
        let err = or_default::<SocketAddr>(
            &env(&[("JT_HTTP_ADDR", "localhost")]),
            "JT_HTTP_ADDR",
            "127.0.0.1:8080".parse().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("JT_HTTP_ADDR=\"localhost\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        let e = env(&[("A", "7")]);
        assert_eq!(or_default(&e, "A", 1u32).unwrap(), 7);
        assert_eq!(or_default(&e, "B", 1u32).unwrap(), 1);
    }
}
