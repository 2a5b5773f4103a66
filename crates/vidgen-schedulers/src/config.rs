//! Scheduler configs as JSON: serialisation, and loading diffusers' `scheduler_config.json` with
//! unknown keys reported rather than silently dropped.
//!
//! Every config struct uses diffusers' key names, so a diffusers file deserialises directly. Keys
//! starting with `_` (`_class_name`, `_diffusers_version`) are file metadata and ignored; any other
//! key the config does not have is returned in [`Loaded::unknown_keys`] (or rejected by
//! [`Loaded::strict`]). Enum-valued keys with an unknown value fail with
//! [`SchedulerError::UnknownVariant`] naming the key, the value and the accepted names.

use crate::error::SchedulerError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A string-valued config enum with a fixed set of names (as diffusers spells them).
pub trait ConfigEnum: Sized + Copy + 'static {
    /// All accepted names.
    const NAMES: &'static [&'static str];
    /// The variants, in the order of [`ConfigEnum::NAMES`].
    const VARIANTS: &'static [Self];

    /// The name of this variant.
    fn name(self) -> &'static str;

    /// Parses a name.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownVariant`] naming `field`, the value and the accepted names.
    fn parse(field: &str, value: &str) -> Result<Self, SchedulerError> {
        Self::NAMES
            .iter()
            .position(|n| *n == value)
            .map(|i| Self::VARIANTS[i])
            .ok_or_else(|| SchedulerError::UnknownVariant {
                field: field.to_owned(),
                value: value.to_owned(),
                expected: Self::NAMES,
            })
    }
}

/// Declares a `Copy` enum with serde names and a [`ConfigEnum`] impl in one place.
macro_rules! config_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $crate::config::ConfigEnum for $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
            const VARIANTS: &'static [Self] = &[$(Self::$variant),+];
            fn name(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::error::SchedulerError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as $crate::config::ConfigEnum>::parse(stringify!($name), s)
            }
        }
    };
}
pub(crate) use config_enum;

/// A config read from JSON, with the keys it did not recognise.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<C> {
    /// The config (validated).
    pub config: C,
    /// Keys present in the file that the config does not have, sorted.
    pub unknown_keys: Vec<String>,
}

impl<C: SchedulerConfig> Loaded<C> {
    /// The config, or an error if the file had unknown keys.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownKeys`].
    pub fn strict(self) -> Result<C, SchedulerError> {
        if self.unknown_keys.is_empty() {
            Ok(self.config)
        } else {
            Err(SchedulerError::UnknownKeys {
                scheduler: C::NAME,
                keys: self.unknown_keys,
            })
        }
    }
}

/// A scheduler configuration that round-trips through JSON with diffusers' key names.
pub trait SchedulerConfig: Serialize + DeserializeOwned + Default + Clone {
    /// Name used in messages (the diffusers class the keys follow).
    const NAME: &'static str;
    /// Enum-valued keys and the names each accepts, checked before deserialising so that a bad
    /// value gives [`SchedulerError::UnknownVariant`].
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])];

    /// Checks the values.
    ///
    /// # Errors
    /// The first invalid field, as a [`SchedulerError`].
    fn validate(&self) -> Result<(), SchedulerError>;

    /// Serialises to pretty JSON with diffusers' key names.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("scheduler configs always serialise")
    }

    /// Reads a config from JSON (ours, or diffusers' `scheduler_config.json`). Missing keys take
    /// their defaults.
    ///
    /// # Errors
    /// [`SchedulerError::Json`] for malformed JSON or a wrongly typed value,
    /// [`SchedulerError::UnknownVariant`] for an unknown enum name, or the error of
    /// [`SchedulerConfig::validate`].
    fn from_json(text: &str) -> Result<Loaded<Self>, SchedulerError> {
        let json = |source| SchedulerError::Json {
            scheduler: Self::NAME,
            source,
        };
        let map: Map<String, Value> = serde_json::from_str(text).map_err(json)?;
        let known = match serde_json::to_value(Self::default()).map_err(json)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (key, names) in Self::ENUM_KEYS {
            if let Some(Value::String(v)) = map.get(*key)
                && !names.contains(&v.as_str())
            {
                return Err(SchedulerError::UnknownVariant {
                    field: (*key).to_owned(),
                    value: v.clone(),
                    expected: names,
                });
            }
        }
        let mut unknown_keys = Vec::new();
        let mut kept = Map::new();
        for (key, value) in map {
            if key.starts_with('_') {
                continue;
            }
            if known.contains_key(&key) {
                kept.insert(key, value);
            } else {
                unknown_keys.push(key);
            }
        }
        unknown_keys.sort();
        let config: Self = serde_json::from_value(Value::Object(kept)).map_err(json)?;
        config.validate()?;
        Ok(Loaded {
            config,
            unknown_keys,
        })
    }
}
